package up_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/cli/up"
	"github.com/shoal-dev/shoal/internal/localk8s"
	"github.com/shoal-dev/shoal/internal/localk8s/kubelet"
)

// appManifest is a Deployment of two pods running the "app" image, a
// ClusterIP Service and an Ingress in front of them. MARKER in the pods'
// environment finds their processes in /proc.
const appManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: app
          image: IMAGE
          env:
            - {name: MARKER, value: "DIR"}
          ports:
            - {name: http, containerPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  selector: {app: app}
  ports:
    - {name: http, port: 80, targetPort: http}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
spec:
  rules:
    - host: app.localhost
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service: {name: app, port: {name: http}}
`

// sleeper is the "app" image: a process that runs until it is killed.
const sleeper = "#!/bin/sh\nexec sleep 600\n"

// TestBadInputLeavesNothing gives `shoal up` input it must refuse, some of
// it found only once the DNS server, the front doors and a first pod run.
// Each must end in an error naming what was wrong, quickly, with no
// process of the test's and no listener on the test's addresses left.
func TestBadInputLeavesNothing(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Fatal("the cluster DNS on port 53 needs root")
	}
	n := netsOf("127.0.35.0/24", "127.0.36.0/24")
	tests := []struct {
		name     string
		replicas string
		image    string
		// occupy names an address held by the test during Run: the
		// second pod's IP and port, the API's or the Ingress's.
		occupy string
		want   []string // in the error; DIR is the manifest's folder, ADDR the occupied address
		is     error
		// started says a pod's process ran before the error, so that
		// there was something to clean up.
		started bool
	}{
		{
			name: "YAML type error", replicas: "two", image: "app",
			want: []string{"DIR/app.yaml:6:", "spec.replicas", "string"},
			is:   localk8s.ErrManifests,
		},
		{
			name: "unknown image", replicas: "2", image: "example.com/team/unknown:1.0",
			want: []string{"example.com/team/unknown:1.0", "--image"},
			is:   localk8s.ErrUnknownImage,
		},
		{
			// The first pod (127.0.35.2) starts; the second's address is taken.
			name: "port in use on a pod IP", replicas: "2", image: "app",
			occupy:  "pod",
			want:    []string{"containerPort 8080", "127.0.35.3", "in use"},
			is:      kubelet.ErrPortInUse,
			started: true,
		},
		{
			name: "API address in use", replicas: "2", image: "app",
			occupy: "api",
			want:   []string{"API", "ADDR", "address already in use"},
		},
		{
			// The DNS server and the Service's front door run by then.
			name: "Ingress address in use", replicas: "2", image: "app",
			occupy: "ingress",
			want:   []string{"ingress", "ADDR", "address already in use"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			script := filepath.Join(dir, "app.sh")
			if err := os.WriteFile(script, []byte(sleeper), 0o755); err != nil {
				t.Fatal(err)
			}
			manifest := strings.NewReplacer("REPLICAS", tt.replicas, "IMAGE", tt.image, "DIR", dir).Replace(appManifest)
			if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte(manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			o := localk8s.Config{
				Paths:       []string{filepath.Join(dir, "app.yaml")},
				Images:      []string{"app=" + script},
				Addr:        "127.0.0.1:0",
				IngressAddr: "127.0.0.1:0",
				PodNet:      n.pod,
				ServiceNet:  n.service,
				RunDir:      filepath.Join(dir, "run"),
				Logger:      slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
				OnReady:     func(localk8s.Info) { t.Error("OnReady called for bad input") },
			}
			addr := ""
			if tt.occupy != "" {
				at := "127.0.0.1:0"
				if tt.occupy == "pod" {
					at = "127.0.35.3:8080"
				}
				ln, err := net.Listen("tcp", at)
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				addr = ln.Addr().String()
				switch tt.occupy {
				case "api":
					o.Addr = addr
				case "ingress":
					o.IngressAddr = addr
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			err := up.Run(ctx, o, &syncBuffer{})
			took := time.Since(start)
			if ctx.Err() != nil {
				t.Fatalf("Run ran until its context ended (%v): %v", took, err)
			}
			if err == nil {
				t.Fatal("Run returned nil")
			}
			t.Logf("error after %s: %v", took.Round(time.Millisecond), err)
			for _, w := range tt.want {
				w = strings.NewReplacer("DIR", dir, "ADDR", addr).Replace(w)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q", w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error is not %v", tt.is)
			}
			logs, _ := filepath.Glob(filepath.Join(o.RunDir, "logs", "app-*_app.log"))
			if tt.started && len(logs) == 0 {
				t.Errorf("no pod process was started before the error: nothing to clean up")
			}
			// Run has returned: whatever it started must be gone already.
			if ps := processesUnder(t, dir); len(ps) > 0 {
				t.Errorf("processes left running:\n%s", strings.Join(ps, "\n"))
			}
			var left []string
			for _, s := range socketsIn(t, n) {
				if !strings.HasSuffix(s, " "+addr) { // the test's own
					left = append(left, s)
				}
			}
			if len(left) > 0 {
				t.Errorf("sockets left on %s and %s: %v", n.pod, n.service, left)
			}
		})
	}
}
