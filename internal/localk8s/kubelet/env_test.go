package kubelet

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

func resourceEnv(name, res, divisor string) corev1.EnvVar {
	sel := &corev1.ResourceFieldSelector{Resource: res}
	if divisor != "" {
		sel.Divisor = resource.MustParse(divisor)
	}
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: sel}}
}

func secretEnv(name, secret, key string, optional bool) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key, Optional: &optional}}}
}

// envConfig is a pod config whose images all resolve to /bin/true, for
// tests that build containers without running them.
func envConfig(c corev1.Container) Config {
	store := map[string]map[string]string{
		"Secret/app":       {"token": "s3cret", "url": "redis://x"},
		"ConfigMap/common": {"LEVEL": "debug", "bad key": "skipped", "MODE": "fast"},
	}
	return Config{
		Name: "web-7d9f-abcde", Namespace: "shop", UID: "uid-1",
		IP:          netip.MustParseAddr("127.0.1.5"),
		Labels:      map[string]string{"app": "web", "tier": "front"},
		Annotations: map[string]string{"note": `say "hi"`},
		Spec:        corev1.PodSpec{Containers: []corev1.Container{c}, ServiceAccountName: "web-sa"},
		Binary: func(image string) (string, error) {
			if strings.HasPrefix(image, "unknown") {
				return "", errors.New("no such image")
			}
			return "/bin/true", nil
		},
		Lookup: func(kind, name, key string) (string, error) {
			if v, ok := store[kind+"/"+name][key]; ok {
				return v, nil
			}
			return "", fmt.Errorf("%s %s has no key %s", kind, name, key)
		},
		LookupAll: func(kind, name string) (map[string]string, error) {
			if m, ok := store[kind+"/"+name]; ok {
				return m, nil
			}
			return nil, errors.New("not found")
		},
		BaseEnv:    []string{"PATH=/bin:/usr/bin", "HOME=/root"},
		NodeCPU:    4,
		NodeMemory: 8 << 30,
	}
}

func TestContainerEnv(t *testing.T) {
	yes := true
	tests := []struct {
		name string
		c    corev1.Container
		want []string // entries that must be present
		not  []string // names that must be absent
	}{
		{
			name: "literal values and expansion of earlier names only",
			c: corev1.Container{Env: []corev1.EnvVar{
				{Name: "A", Value: "x"},
				{Name: "B", Value: "$(A)-$(C)-$$(A)-$(PATH)"},
				{Name: "C", Value: "late"},
			}},
			want: []string{"A=x", "B=x-$(C)-$(A)-$(PATH)", "C=late", "PATH=/bin:/usr/bin", "HOME=/root", "HOST=127.0.1.5"},
		},
		{
			name: "downward API fields",
			c: corev1.Container{Env: []corev1.EnvVar{
				fieldEnv("POD_NAME", "metadata.name"), fieldEnv("NS", "metadata.namespace"),
				fieldEnv("UID", "metadata.uid"), fieldEnv("POD_IP", "status.podIP"),
				fieldEnv("HOST_IP", "status.hostIP"), fieldEnv("NODE", "spec.nodeName"),
				fieldEnv("APP", "metadata.labels['app']"), fieldEnv("NOTE", "metadata.annotations['note']"),
				fieldEnv("MISSING", "metadata.labels['nope']"), fieldEnv("SA", "spec.serviceAccountName"),
				fieldEnv("LABELS", "metadata.labels"),
				{Name: "URL", Value: "http://$(POD_IP):8080"},
			}},
			want: []string{"POD_NAME=web-7d9f-abcde", "NS=shop", "UID=uid-1", "POD_IP=127.0.1.5",
				"HOST_IP=127.0.0.1", "NODE=localhost", "APP=web", `NOTE=say "hi"`, "MISSING=", "SA=web-sa",
				"LABELS=app=\"web\"\ntier=\"front\"", "URL=http://127.0.1.5:8080"},
		},
		{
			name: "resource fields with divisors",
			c: corev1.Container{
				Resources: corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{"cpu": resource.MustParse("1500m"), "memory": resource.MustParse("64Mi")},
					Requests: corev1.ResourceList{"cpu": resource.MustParse("250m")},
				},
				Env: []corev1.EnvVar{
					resourceEnv("GOMAXPROCS", "limits.cpu", "1"), resourceEnv("GOMEMLIMIT", "limits.memory", ""),
					resourceEnv("MEM_MI", "limits.memory", "1Mi"), resourceEnv("REQ_M", "requests.cpu", "1m"),
					resourceEnv("REQ_MEM", "requests.memory", "1Mi"),
				},
			},
			want: []string{"GOMAXPROCS=2", "GOMEMLIMIT=67108864", "MEM_MI=64", "REQ_M=250", "REQ_MEM=64"},
		},
		{
			name: "limits default to the node",
			c: corev1.Container{Env: []corev1.EnvVar{
				resourceEnv("GOMAXPROCS", "limits.cpu", "1"), resourceEnv("MEM_GI", "limits.memory", "1Gi"),
				resourceEnv("REQ", "requests.cpu", "1m"),
			}},
			want: []string{"GOMAXPROCS=4", "MEM_GI=8", "REQ=0"},
		},
		{
			name: "secrets, optional missing left out",
			c: corev1.Container{Env: []corev1.EnvVar{
				secretEnv("TOKEN", "app", "token", false), secretEnv("OPT", "app", "nope", true),
				secretEnv("OPT2", "absent", "x", true),
			}},
			want: []string{"TOKEN=s3cret"},
			not:  []string{"OPT", "OPT2"},
		},
		{
			name: "envFrom with prefix, env wins, invalid keys skipped",
			c: corev1.Container{
				EnvFrom: []corev1.EnvFromSource{
					{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "common"}}},
					{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Optional: &yes}},
				},
				Env: []corev1.EnvVar{{Name: "CM_MODE", Value: "slow,$(CM_LEVEL)"}},
			},
			want: []string{"CM_LEVEL=debug", "CM_MODE=slow,debug"},
			not:  []string{"CM_bad key"},
		},
		{
			name: "manifest HOST and PATH win",
			c:    corev1.Container{Env: []corev1.EnvVar{{Name: "HOST", Value: "0.0.0.0"}, {Name: "PATH", Value: "/opt/bin"}}},
			want: []string{"HOST=0.0.0.0", "PATH=/opt/bin"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.Name, tt.c.Image = "app", "ghcr.io/x/app:v1"
			p, err := newPod(envConfig(tt.c))
			if err != nil {
				t.Fatal(err)
			}
			env := p.containers[0].env
			for _, w := range tt.want {
				if !slices.Contains(env, w) {
					t.Errorf("env lacks %q; have %q", w, env)
				}
			}
			for _, n := range tt.not {
				for _, kv := range env {
					if strings.HasPrefix(kv, n+"=") {
						t.Errorf("env has %q, want no %s", kv, n)
					}
				}
			}
			seen := map[string]bool{}
			for _, kv := range env {
				n, _, _ := strings.Cut(kv, "=")
				if seen[n] {
					t.Errorf("env has %s twice: %q", n, env)
				}
				seen[n] = true
			}
		})
	}
}

func TestContainerArgv(t *testing.T) {
	env := []corev1.EnvVar{{Name: "PORT", Value: "8080"}, {Name: "ADDR", Value: "$(HOST):$(PORT)"}}
	tests := []struct {
		name          string
		command, args []string
		want          []string
	}{
		{"image entrypoint", nil, nil, []string{"/bin/true"}},
		{"args replace the default arguments", nil, []string{"--port=$(PORT)", "$$(PORT)"}, []string{"/bin/true", "--port=8080", "$(PORT)"}},
		{"command naming the image binary", []string{"/app", "-v"}, []string{"x"}, []string{"/bin/true", "-v", "x"}},
		{"command naming the binary", []string{"true"}, nil, []string{"/bin/true"}},
		{"command from PATH", []string{"sh", "-c", "echo $(ADDR) $HOME"}, nil, []string{"/bin/sh", "-c", "echo $(HOST):8080 $HOME"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := corev1.Container{Name: "app", Image: "ghcr.io/x/app:v1", Command: tt.command, Args: tt.args, Env: env}
			p, err := newPod(envConfig(c))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.containers[0].argv; !slices.Equal(got, tt.want) {
				t.Errorf("argv = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestInvalidPod(t *testing.T) {
	grpc := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 0}}}
	twoHandlers := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090}, TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9090)}}}
	named := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstrName("admin")}}}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantMsg string
	}{
		{"unknown image", func(c *Config) { c.Spec.Containers[0].Image = "unknown/thing" }, `image "unknown/thing": no such image`},
		{"missing secret key", func(c *Config) {
			c.Spec.Containers[0].Env = []corev1.EnvVar{secretEnv("S", "app", "nope", false)}
		}, `env S: Secret "app" key "nope"`},
		{"no secret source", func(c *Config) {
			c.Lookup = nil
			c.Spec.Containers[0].Env = []corev1.EnvVar{secretEnv("S", "app", "token", false)}
		}, "no source of Secrets"},
		{"bad field path", func(c *Config) {
			c.Spec.Containers[0].Env = []corev1.EnvVar{fieldEnv("X", "status.phase")}
		}, `fieldRef "status.phase": unsupported`},
		{"bad env name", func(c *Config) { c.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "1X"}} }, `env "1X": not a valid`},
		{"grpc probe without a port", func(c *Config) { c.Spec.Containers[0].LivenessProbe = grpc }, "livenessProbe: grpc: port 0 out of range"},
		{"grpc and tcpSocket", func(c *Config) { c.Spec.Containers[0].ReadinessProbe = twoHandlers }, "readinessProbe: want exactly one of exec, httpGet, tcpSocket, grpc; have 2"},
		{"unknown named port", func(c *Config) { c.Spec.Containers[0].ReadinessProbe = named }, `readinessProbe: httpGet: port "admin"`},
		{"command not found", func(c *Config) { c.Spec.Containers[0].Command = []string{"no-such-cmd"} }, `command: "no-such-cmd" not found`},
		{"restart policy", func(c *Config) { c.Spec.RestartPolicy = "Sometimes" }, `unknown restartPolicy "Sometimes"`},
		{"no binary resolver", func(c *Config) { c.Binary = nil }, "no Binary resolver"},
		{"no IP", func(c *Config) { c.IP = netip.Addr{} }, "no IP"},
		{"duplicate names", func(c *Config) {
			c.Spec.Containers = append(c.Spec.Containers, c.Spec.Containers[0])
		}, `duplicate name "app"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := envConfig(corev1.Container{Name: "app", Image: "app"})
			tt.mutate(&cfg)
			_, err := Start(cfg)
			if err == nil {
				t.Fatal("Start succeeded")
			}
			if !errors.Is(err, ErrInvalidPod) {
				t.Errorf("error %v is not ErrInvalidPod", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.HasPrefix(err.Error(), "kubelet: pod web-7d9f-abcde") {
				t.Errorf("error %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name, in string
		want     string
		wantErr  bool
	}{
		{"plain", "42 (app) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 3 7 20 0 5 0 100 1000 10", "2.1s", false},
		{"name with spaces and parens", "42 (a) b (c) R 1 42 42 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0", "30ms", false},
		{"no paren", "42 app S", "", true},
		{"short", "42 (app) S 1 2 3", "", true},
		{"negative", "42 (app) S 1 42 42 0 -1 0 0 0 0 0 -1 2 0 0", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestImageName(t *testing.T) {
	for in, want := range map[string]string{
		"thumbnailer": "thumbnailer", "ghcr.io/shoal-dev/gallery:v1.2": "gallery",
		"localhost:5000/x/redis:7@sha256:abc": "redis", "redis@sha256:abc": "redis",
	} {
		if got := imageName(in); got != want {
			t.Errorf("imageName(%q) = %q, want %q", in, got, want)
		}
	}
}

func intstrName(name string) intstr.IntOrString { return intstr.FromString(name) }
