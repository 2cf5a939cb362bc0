package lint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/kustomize/kyaml/openapi"
)

func ruleIDs(rep *Report) []string {
	var ids []string
	for _, f := range rep.Findings {
		ids = append(ids, f.Rule)
	}
	return ids
}

// TestRules runs each rule's fixtures: the bad one must trip the rule and
// the good one must be clean of every rule.
func TestRules(t *testing.T) {
	for _, r := range Rules() {
		for _, kind := range []string{"bad", "good"} {
			name := r.ID + "-" + kind
			t.Run(name, func(t *testing.T) {
				path := filepath.Join("testdata", "rules", name+".yaml")
				rep, err := (&Linter{}).Lint(path)
				if err != nil {
					t.Fatal(err)
				}
				ids := ruleIDs(rep)
				switch kind {
				case "bad":
					if !slices.Contains(ids, r.ID) {
						t.Fatalf("%s: want a %s finding, got %v", path, r.ID, rep.Findings)
					}
					for _, f := range rep.Findings {
						if f.Rule == r.ID && (f.Path != path || f.Line == 0 || f.Why == "" || f.Fix == "" || f.Severity != r.Severity) {
							t.Errorf("finding lacks location or rule text: %+v", f)
						}
					}
				case "good":
					if len(rep.Findings) != 0 {
						t.Fatalf("%s: want no findings, got %v", path, rep.Findings)
					}
				}
			})
		}
	}
}

func TestRulesAreDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules() {
		if seen[r.ID] {
			t.Errorf("duplicate rule ID %s", r.ID)
		}
		seen[r.ID] = true
		if r.Name == "" || r.Why == "" || r.Fix == "" || strings.Contains(r.Why, "\n") {
			t.Errorf("rule %s needs a name and a one-line why and fix", r.ID)
		}
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "lint.md"))
	if err != nil {
		t.Fatal(err)
	}
	for id := range seen {
		if !strings.Contains(string(doc), id) {
			t.Errorf("docs/lint.md does not describe %s", id)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	const deploy = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: web
`
	tests := []struct {
		name     string
		in       string
		wantLine int
		wantMsg  string
	}{
		{"unknown field", strings.Replace(deploy, "image: web", "image: web\n          imagePullPolicey: Always", 1),
			15, `unknown field "spec.template.spec.containers[0].imagePullPolicey"`},
		{"unknown top-level field", deploy + "extra: 1\n", 15, `unknown field "extra"`},
		{"case matters", strings.Replace(deploy, "  selector:", "  Selector:", 1), 6, `unknown field "spec.Selector"`},
		{"wrong type", strings.Replace(deploy, "image: web", "image: web\n          ports:\n            - containerPort: http", 1),
			16, "containerPort: cannot use string"},
		{"quantity", strings.Replace(deploy, "image: web", "image: web\n          resources: {requests: {cpu: lots}}", 1),
			15, "spec.template.spec.containers[0].resources.requests.cpu: quantities must match"},
		{"duplicate key", strings.Replace(deploy, "image: web", "image: web\n          image: web2", 1), 15, "already set in map"},
		{"yaml syntax", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: [1, 2\n", 6, "invalid YAML"},
		{"second document", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n" + deploy + "bogus: true\n", 19, `unknown field "bogus"`},
		{"not a mapping", "- a\n- b\n", 1, "not a Kubernetes object"},
		{"no kind", "apiVersion: v1\nmetadata: {name: a}\n", 1, "apiVersion and kind are required"},
		{"metadata not a mapping", "apiVersion: v1\nkind: ConfigMap\nmetadata: 3\n", 3, "metadata"},
		{"tab indentation", "apiVersion: v1\nkind: ConfigMap\n\tmetadata: {}\n", 3, "invalid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := (&Linter{}).LintBytes("in.yaml", []byte(tt.in))
			for _, f := range rep.Findings {
				if f.Rule != ruleDecode.ID {
					continue
				}
				if f.Path != "in.yaml" || f.Line != tt.wantLine || !strings.Contains(f.Message, tt.wantMsg) {
					t.Fatalf("got %s, want in.yaml:%d with %q", f, tt.wantLine, tt.wantMsg)
				}
				return
			}
			t.Fatalf("no SH000 finding; got %v", rep.Findings)
		})
	}
}

func TestKustomizationFindingsNameOverlayAndObject(t *testing.T) {
	dir := filepath.Join("testdata", "kustomize", "bad")
	rep, err := (&Linter{}).Lint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Objects != 1 {
		t.Fatalf("objects = %d, want 1", rep.Objects)
	}
	var got bool
	for _, f := range rep.Findings {
		if f.Rule == ruleNoReadiness.ID {
			got = true
			if f.Path != dir || f.Object != "Deployment/lab-web" || f.Line != 0 {
				t.Errorf("finding %+v: want path %s, object Deployment/lab-web, no line", f, dir)
			}
		}
	}
	if !got {
		t.Fatalf("no %s finding in %v", ruleNoReadiness.ID, rep.Findings)
	}
}

func TestKustomizeBuildFailureIsAFinding(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte("resources: [missing.yaml]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := (&Linter{}).Lint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Rule != ruleDecode.ID || rep.Findings[0].Path != dir {
		t.Fatalf("got %v, want one SH000 on %s", rep.Findings, dir)
	}
}

func TestFolderSplitsKustomizations(t *testing.T) {
	rep, err := (&Linter{}).Lint("testdata/kustomize")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Inputs != 1 || rep.Objects != 1 {
		t.Fatalf("inputs=%d objects=%d, want the one kustomization built once", rep.Inputs, rep.Objects)
	}
}

func TestMissingPathIsInputError(t *testing.T) {
	_, err := (&Linter{}).Lint(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, ErrInput) {
		t.Fatalf("err = %v, want ErrInput", err)
	}
}

func TestDisableAndIgnoreAnnotation(t *testing.T) {
	path := filepath.Join("testdata", "rules", "SH012-bad.yaml")
	rep, err := (&Linter{Disable: []string{"SH012"}}).Lint(path)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(ruleIDs(rep), "SH012") {
		t.Fatalf("disabled rule reported: %v", rep.Findings)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ann := strings.Replace(string(data), "  name: web\n", "  name: web\n  annotations:\n    shoal.dev/lint-ignore: SH004, SH012\n", 1)
	if rep := (&Linter{}).LintBytes(path, []byte(ann)); slices.Contains(ruleIDs(rep), "SH012") {
		t.Fatalf("ignored rule reported: %v", rep.Findings)
	}
}

func TestFindIP(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"url", "redis://10.0.0.7:6379/0", "10.0.0.7"},
		{"flag", "--peer=192.168.1.20", "192.168.1.20"},
		{"ipv6", "http://[fd00::12]:80", "fd00::12"},
		{"loopback", "127.0.0.1:8080", ""},
		{"unspecified", "0.0.0.0:9090", ""},
		{"duration", "5s", ""},
		{"time", "12:30", ""},
		{"dns", "redis.default.svc:6379", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := findIP(tt.in); got != tt.want {
				t.Fatalf("findIP(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestProbeBudget(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantAll string
		wantErr bool
	}{
		{"all", "2s", "2s", false},
		{"paths", "/readyz=2s, /livez=500ms", "0s", false},
		{"bad", "soon", "", true},
		{"negative", "/readyz=-1s", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := parseProbeBudget(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && b.all.String() != tt.wantAll {
				t.Fatalf("all = %s, want %s", b.all, tt.wantAll)
			}
		})
	}
}

func FuzzLint(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "rules", "*.yaml"))
	more, _ := filepath.Glob(filepath.Join("testdata", "k8s137", "*.yaml"))
	for _, p := range append(files, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("apiVersion: v1\nkind: Service\nspec: {selector: {a: b}, ports: [{targetPort: x}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep := (&Linter{}).LintBytes("fuzz.yaml", data)
		for _, f := range rep.Findings {
			if f.Path != "fuzz.yaml" || f.Rule == "" {
				t.Fatalf("finding without path or rule: %+v", f)
			}
		}
	})
}

// TestWhatShoalUpRefuses covers each check of the rules `shoal up` refuses
// on (SH007, SH011, SH016-SH018), one row per way to trip them, as read
// from YAML; internal/localk8s/cluster's TestValidate has the same rows for
// objects built in code.
func TestWhatShoalUpRefuses(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "rules", "SH018-good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const hpa = "---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\n" +
		"spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: TARGET}, minReplicas: 2, maxReplicas: 5}\n"
	const keda = "---\napiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: web}\n" +
		"spec: {triggers: [{type: prometheus, metadata: {query: up, threshold: '1'}}]}\n"
	const api = "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  selector: {matchLabels: {app: web}}\n" +
		"  template:\n    metadata: {labels: {app: web, tier: api}}\n    spec: {containers: [{name: api, image: example.com/api:1}]}\n"
	tests := []struct {
		name     string
		old, new string // replaced once in the base
		add      string // appended to the base
		rule     string
		want     string // in the message
	}{
		{name: "no containers", rule: IDInvalidSpec, want: "spec.template.spec.containers is empty",
			old: "      containers:\n        - name: web\n", new: "      containers: []\n      initContainers:\n        - name: web\n"},
		{name: "container without image", rule: IDInvalidSpec, want: `container "web" has no image`,
			old: "          image: example.com/web:1\n"},
		{name: "selector missing", rule: IDInvalidSpec, want: "spec.selector is missing",
			old: "  selector:\n    matchLabels: {app: web}\n"},
		{name: "selector invalid", rule: IDInvalidSpec, want: "spec.selector: ",
			old: "    matchLabels: {app: web}\n", new: "    matchLabels: {app: web}\n    matchExpressions: [{key: app, operator: Near}]\n"},
		{name: "selector does not match template", rule: IDInvalidSpec, want: "spec.selector does not match spec.template.metadata.labels",
			old: "    matchLabels: {app: web}\n", new: "    matchLabels: {app: other}\n"},
		{name: "negative replicas", rule: IDInvalidSpec, want: "spec.replicas -1 is negative",
			old: "spec:\n  selector:", new: "spec:\n  replicas: -1\n  selector:"},
		{name: "unknown strategy", rule: IDInvalidSpec, want: `spec.strategy.type "BlueGreen" is neither RollingUpdate nor Recreate`,
			old: "spec:\n  selector:", new: "spec:\n  strategy: {type: BlueGreen}\n  selector:"},
		{name: "maxSurge not a percentage", rule: IDInvalidSpec, want: `spec.strategy.rollingUpdate.maxSurge "25" is neither`,
			old: "spec:\n  selector:", new: "spec:\n  strategy: {rollingUpdate: {maxSurge: '25'}}\n  selector:"},
		{name: "negative maxUnavailable", rule: IDInvalidSpec, want: `spec.strategy.rollingUpdate.maxUnavailable "-1" is neither`,
			old: "spec:\n  selector:", new: "spec:\n  strategy: {rollingUpdate: {maxUnavailable: -1}}\n  selector:"},
		{name: "rollingUpdate with Recreate", rule: IDInvalidSpec, want: "spec.strategy.rollingUpdate may not be set when spec.strategy.type is Recreate",
			old: "spec:\n  selector:", new: "spec:\n  strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}\n  selector:"},
		{name: "service port out of range", rule: IDInvalidSpec, want: "spec.ports[0].port 70000 is out of range",
			old: "port: 80,", new: "port: 70000,"},
		{name: "service targetPort out of range", rule: IDInvalidSpec, want: "spec.ports[0].targetPort 65536 is out of range",
			old: "targetPort: http}", new: "targetPort: 65536}"},
		{name: "service declared twice", rule: IDDuplicateObject, want: "declared more than once",
			add: "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 81}]}\n"},
		{name: "deployment declared twice", rule: IDDuplicateObject, want: "declared more than once",
			add: strings.ReplaceAll(api, "name: api}", "name: web}")},
		{name: "named targetPort no selected container declares", rule: IDServiceTargetPortUnknown, want: `targetPort "admin2" is not the name of a port of any selected container`,
			old: "targetPort: http}", new: "targetPort: admin2}"},
		{name: "named targetPort one selected template lacks", rule: IDServiceTargetPortUnknown, want: `targetPort "http" is not the name of a port of Deployment/api, whose pods the Service selects`,
			add: api},
		{name: "HPA target missing", rule: IDAutoscalerTargetMissing, want: "scaleTargetRef Deployment/api matches no",
			add: strings.Replace(hpa, "TARGET", "api", 1)},
		{name: "HPA target in another namespace", rule: IDAutoscalerTargetMissing, want: "scaleTargetRef Deployment/web matches no",
			add: strings.Replace(strings.Replace(hpa, "TARGET", "web", 1), "{name: web}", "{name: web, namespace: other}", 1)},
		{name: "ScaledObject without scaleTargetRef", rule: IDAutoscalerTargetMissing, want: "spec.scaleTargetRef names no workload",
			add: keda},
		{name: "ScaledObject target missing", rule: IDAutoscalerTargetMissing, want: "scaleTargetRef Deployment/api matches no",
			add: strings.Replace(keda, "spec: {", "spec: {scaleTargetRef: {name: api}, ", 1)},
		{name: "Ingress path to a missing Service", rule: IDIngressBackendMissing, want: `path "/" sends to Service "api"`,
			old: "backend:\n              service: {name: web", new: "backend:\n              service: {name: api"},
		{name: "Ingress default backend to a missing Service", rule: IDIngressBackendMissing, want: `spec.defaultBackend sends to Service "api"`,
			old: "service: {name: web, port: {name: http}}\n  rules:", new: "service: {name: api, port: {name: http}}\n  rules:"},
		{name: "Ingress to a Service in another namespace", rule: IDIngressBackendMissing, want: `sends to Service "web"`,
			old: "kind: Ingress\nmetadata:\n  name: web\n", new: "kind: Ingress\nmetadata:\n  name: web\n  namespace: other\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := string(base)
			if tt.old != "" {
				if !strings.Contains(in, tt.old) {
					t.Fatalf("base has no %q", tt.old)
				}
				in = strings.Replace(in, tt.old, tt.new, 1)
			}
			rep := (&Linter{}).LintBytes("in.yaml", []byte(in+tt.add))
			for _, f := range rep.Findings {
				if f.Rule == IDInvalidDocument {
					t.Fatalf("input does not decode: %s", f)
				}
			}
			for _, f := range rep.Findings {
				if f.Rule == tt.rule && strings.Contains(f.Message, tt.want) {
					if f.Line == 0 {
						t.Errorf("finding has no line: %s", f)
					}
					return
				}
			}
			t.Fatalf("no %s finding with %q; got %v", tt.rule, tt.want, rep.Findings)
		})
	}
}

func TestServiceTargetPortOfASidecar(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "rules", "SH011-bad.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, initContainer string
		want                bool
	}{
		{"init container", "      initContainers:\n        - {name: proxy, image: example.com/proxy:1, ports: [{name: web, containerPort: 8081}]}\n", true},
		{"sidecar", "      initContainers:\n        - {name: proxy, image: example.com/proxy:1, restartPolicy: Always, ports: [{name: web, containerPort: 8081}]}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.Replace(string(base), "      containers:\n", tt.initContainer+"      containers:\n", 1)
			rep := (&Linter{}).LintBytes("in.yaml", []byte(in))
			if got := slices.Contains(ruleIDs(rep), IDServiceTargetPortUnknown); got != tt.want {
				t.Fatalf("SH011 reported: %v, want %v; findings %v", got, tt.want, rep.Findings)
			}
		})
	}
}

// TestLintDocuments checks objects built in code, with the rules Only
// names, and without the ignore annotation, which such documents lack.
func TestLintDocuments(t *testing.T) {
	rep, err := (&Linter{}).Lint(filepath.Join("testdata", "rules", "SH016-bad.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var docs []*Document
	for _, d := range rep.Documents {
		docs = append(docs, &Document{Kind: d.Kind, Name: d.Name, Namespace: d.Namespace, Object: d.Object})
	}
	got := (&Linter{Only: []string{IDInvalidSpec, IDServiceSelectsNothing}}).LintDocuments(docs...)
	if len(got.Findings) == 0 || got.Inputs != 1 || got.Objects != len(docs) {
		t.Fatalf("report %+v, want findings over one input of %d objects", got, len(docs))
	}
	for _, f := range got.Findings {
		if f.Rule != IDInvalidSpec && f.Rule != IDServiceSelectsNothing {
			t.Errorf("rule %s ran, not in Only: %s", f.Rule, f)
		}
		if f.Path != "" || f.Line != 0 || f.Object == "" {
			t.Errorf("finding %+v: want no path or line, and the object", f)
		}
	}
	disabled := (&Linter{Only: []string{IDInvalidSpec}, Disable: []string{IDInvalidSpec}}).LintDocuments(docs...)
	if len(disabled.Findings) != 0 {
		t.Errorf("Disable did not win over Only: %v", disabled.Findings)
	}
}

// TestGRPCRules covers the signals of SH022-SH024 one row at a time, each
// a change to SH022-good.yaml: a gRPC Deployment with MAX_CONN_AGE behind a
// ClusterIP and a headless Service.
func TestGRPCRules(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "rules", "SH022-good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		env      = "            - {name: MAX_CONN_AGE, value: 1m}\n"
		tpl      = "      labels: {app: api}\n"
		ready    = "            grpc: {port: 8082}\n"
		svcPort  = "    - {name: grpc, port: 8082, targetPort: grpc, appProtocol: kubernetes.io/h2c}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: api-headless\n"
		headless = "  clusterIP: None\n"
	)
	tests := []struct {
		name    string
		edits   []string // old, new pairs, each replaced once
		rule    string   // "" for no finding of SH022-SH024
		message string
	}{
		{"MAX_CONN_AGE absent", []string{env, ""}, IDGRPCThroughClusterIP, "sets no MAX_CONN_AGE"},
		{"MAX_CONN_AGE never", []string{env, "            - {name: MAX_CONN_AGE, value: -1ms}\n"}, IDGRPCThroughClusterIP, "MAX_CONN_AGE=-1ms turns"},
		{"MAX_CONN_AGE not a duration", []string{env, "            - {name: MAX_CONN_AGE, value: soon}\n"}, IDGRPCThroughClusterIP, `"soon" is not a duration`},
		{"MAX_CONN_AGE zero is the kit's default", []string{env, "            - {name: MAX_CONN_AGE, value: \"0\"}\n"}, "", ""},
		{"MAX_CONN_AGE from a ConfigMap", []string{env, "            - {name: MAX_CONN_AGE, valueFrom: {configMapKeyRef: {name: api, key: age}}}\n"}, "", ""},
		{"envFrom may hold it", []string{env, "", "          env:\n", "          envFrom: [{configMapRef: {name: api}}]\n          env:\n"}, "", ""},
		{"annotation on the pod template", []string{env, "", tpl, tpl + "      annotations: {shoal.dev/max-conn-age: 5m}\n"}, "", ""},
		{"annotation on the workload", []string{env, "", "  name: api\nspec:\n  selector", "  name: api\n  annotations: {shoal.dev/max-conn-age: 5m}\nspec:\n  selector"}, "", ""},
		{"annotation not positive", []string{env, "", tpl, tpl + "      annotations: {shoal.dev/max-conn-age: never}\n"}, IDGRPCThroughClusterIP, `"never" is not a positive duration`},
		{"ignored on the workload", []string{env, "", tpl, tpl + "      annotations: {shoal.dev/lint-ignore: SH022}\n", "  name: api\nspec:\n  selector", "  name: api\n  annotations: {shoal.dev/lint-ignore: SH022}\nspec:\n  selector"}, "", ""},
		{"NodePort Service", []string{env, "", "  name: api\nspec:\n  selector: {app: api}\n", "  name: api\nspec:\n  type: NodePort\n  selector: {app: api}\n"}, IDGRPCThroughClusterIP, "per-connection balancer"},
		{"headless only", []string{env, "", "  name: api\nspec:\n  selector: {app: api}\n", "  name: api\nspec:\n  clusterIP: None\n  selector: {app: api}\n"}, "", ""},
		{"gRPC by appProtocol alone", []string{env, "", "{name: grpc, containerPort: 8082}", "{name: rpc, containerPort: 8082}",
			"ports:\n        - {port: grpc}", "ports:\n        - {port: rpc}", ready, "            tcpSocket: {port: rpc}\n",
			"{name: grpc, port: 8082, targetPort: grpc, appProtocol: kubernetes.io/h2c}", "{name: api, port: 8082, targetPort: rpc, appProtocol: grpc}",
			"{name: grpc, port: 8082, targetPort: grpc, appProtocol: kubernetes.io/h2c}", "{name: api, port: 8082, targetPort: rpc}"}, IDGRPCThroughClusterIP, "reaches gRPC port 8082"},
		{"gRPC by the probe alone", []string{env, "", "{name: grpc, containerPort: 8082}", "{name: rpc, containerPort: 8082}",
			"ports:\n        - {port: grpc}", "ports:\n        - {port: rpc}",
			"{name: grpc, port: 8082, targetPort: grpc, appProtocol: kubernetes.io/h2c}", "{name: api, port: 8082, targetPort: 8082}",
			"{name: grpc, port: 8082, targetPort: grpc, appProtocol: kubernetes.io/h2c}", "{name: api, port: 8082, targetPort: 8082}"}, IDGRPCThroughClusterIP, "reaches gRPC port 8082"},
		{"HTTP port behind the ClusterIP Service", []string{env, "", "{name: admin, containerPort: 9090}", "{name: admin, containerPort: 9090}\n            - {name: http, containerPort: 8080}",
			"ports:\n        - {port: grpc}", "ports:\n        - {port: grpc}\n        - {port: http}",
			"{name: grpc, port: 8082, targetPort: grpc, appProtocol: kubernetes.io/h2c}", "{name: http, port: 80, targetPort: http}"}, "", ""},
		{"headless publishing not-ready pods, no ports", []string{svcPort, "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: api-headless\n",
			headless + "  selector: {app: api}\n  ports:\n    - {name: grpc, port: 8082, targetPort: grpc, appProtocol: kubernetes.io/h2c}\n", headless + "  publishNotReadyAddresses: true\n  selector: {app: api}\n"}, IDGRPCHeadlessNotReady, "dial port 8082"},
		{"headless publishing not-ready pods of another port", []string{
			headless + "  selector: {app: api}\n  ports:\n    - {name: grpc, port: 8082, targetPort: grpc, appProtocol: kubernetes.io/h2c}\n",
			headless + "  publishNotReadyAddresses: true\n  selector: {app: api}\n  ports:\n    - {name: metrics, port: 9090, targetPort: admin}\n"}, "", ""},
		{"httpGet on the gRPC port beside an HTTP one", []string{"{name: admin, containerPort: 9090}", "{name: http, containerPort: 9090}",
			"httpGet: {path: /livez, port: admin}", "httpGet: {path: /livez, port: 8082}"}, IDHTTPProbeOnGRPC, "GET /livez to port 8082, which serves gRPC"},
		{"httpGet on the HTTP port beside the gRPC one", []string{"{name: admin, containerPort: 9090}", "{name: http, containerPort: 9090}",
			"httpGet: {path: /livez, port: admin}", "httpGet: {path: /livez, port: http}"}, "", ""},
		{"httpGet to an undeclared port of a gRPC-only container", []string{"            - {name: admin, containerPort: 9090}\n", "",
			"httpGet: {path: /livez, port: admin}", "httpGet: {path: /livez, port: 9090}"}, IDHTTPProbeOnGRPC, "every port the container declares serves gRPC"},
	}
	grpcRules := []string{IDGRPCThroughClusterIP, IDGRPCHeadlessNotReady, IDHTTPProbeOnGRPC}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := string(base)
			for i := 0; i < len(tt.edits); i += 2 {
				if !strings.Contains(in, tt.edits[i]) {
					t.Fatalf("input has no %q", tt.edits[i])
				}
				in = strings.Replace(in, tt.edits[i], tt.edits[i+1], 1)
			}
			rep := (&Linter{}).LintBytes("in.yaml", []byte(in))
			var got []Finding
			for _, f := range rep.Findings {
				if f.Rule == IDInvalidDocument {
					t.Fatalf("input does not decode: %s\n%s", f, in)
				}
				if slices.Contains(grpcRules, f.Rule) {
					got = append(got, f)
				}
			}
			if tt.rule == "" {
				if len(got) > 0 {
					t.Fatalf("want no gRPC finding, got %v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Rule != tt.rule || !strings.Contains(got[0].Message, tt.message) || got[0].Line == 0 {
				t.Fatalf("want one %s finding with %q and a line, got %v", tt.rule, tt.message, got)
			}
		})
	}
}

// TestLintRefusesHugeInput feeds Lint a file over the per-file limit and
// a folder over the total one (YAML comments, so only the size is wrong):
// each is refused with ErrInput naming the file, before decoding, which
// would hold many times the bytes.
func TestLintRefusesHugeInput(t *testing.T) {
	comment := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'x'
		}
		b[0], b[1], b[n-1] = '#', ' ', '\n'
		return b
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, comment(maxFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	many := filepath.Join(dir, "many")
	if err := os.Mkdir(many, 0o700); err != nil {
		t.Fatal(err)
	}
	part := comment(maxFileBytes - 1)
	for i := range maxTotalBytes/len(part) + 1 {
		if err := os.WriteFile(filepath.Join(many, fmt.Sprintf("m%d.yaml", i)), part, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name, path, want string
	}{
		{"one file over 16 MiB", big, "big.yaml: more than 16 MiB in one file"},
		{"a folder over 64 MiB in all", many, "the inputs hold more than 64 MiB in all"},
		{"files over 64 MiB in all", "", "the inputs hold more than 64 MiB in all"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			paths := []string{tt.path}
			if tt.path == "" {
				paths = nil
				for i := range maxTotalBytes/len(part) + 1 {
					paths = append(paths, filepath.Join(many, fmt.Sprintf("m%d.yaml", i)))
				}
			}
			rep, err := (&Linter{}).Lint(paths...)
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Lint() = %v, %v; want ErrInput saying %q", rep, err, tt.want)
			}
		})
	}
	// Under the limits the same bytes are read: a file just under 16 MiB
	// lints.
	if _, err := (&Linter{}).Lint(filepath.Join(many, "m0.yaml")); err != nil {
		t.Errorf("a file under the limit: %v", err)
	}
}

// TestConcurrentKustomizeBuilds lints a kustomization from several
// goroutines at once, each time as the first builds of the process, as two
// `shoal up` in one test process do. Kustomize loads its OpenAPI schema
// into process-wide variables on the first build that patches, while
// another build reads them without a lock to scope a kind it does not know
// by heart (here the HPA of autoscaling/v2 and the Gateway API's kinds):
// without builds taking turns, -race reports it in most runs of this test.
func TestConcurrentKustomizeBuilds(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"base/kustomization.yaml": "resources: [app.yaml]\n",
		"base/app.yaml": webDeployment + `---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 3
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web}
spec:
  gatewayClassName: any
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: web}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
`,
		"overlay/kustomization.yaml": "resources: [../base]\npatches: [{path: patch.yaml}]\n",
		"overlay/patch.yaml":         webImagePatch,
	})
	overlay := filepath.Join(dir, "overlay")
	for range 20 {
		// As in a process that has built nothing yet.
		openapi.ResetOpenAPI()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				rep, err := (&Linter{}).Lint(overlay)
				if err != nil {
					t.Error(err)
					return
				}
				if rep.Objects != 5 {
					t.Errorf("%d objects, want 5: %v", rep.Objects, rep.Findings)
				}
			})
		}
		wg.Wait()
	}
}

// TestKustomizeOpenAPISchemaStaysWithItsBuild lints a kustomization whose
// `openapi:` schema file does not parse, then one with a schema that
// knows no kind, then one with none. Kustomize panics on the first, and
// keeps the second's schema for the next build of the process; the first
// must be a finding, and the last must merge its patch with the built-in
// schema: by container name, keeping the base's port, where a schema
// without merge keys replaces the list.
func TestKustomizeOpenAPISchemaStaysWithItsBuild(t *testing.T) {
	kustomization := func(schema string) map[string]string {
		files := map[string]string{"app.yaml": webDeployment, "patch.yaml": webImagePatch}
		k := "resources: [app.yaml]\npatches: [{path: patch.yaml}]\n"
		if schema != "" {
			k += "openapi: {path: schema.json}\n"
			files["schema.json"] = schema
		}
		files["kustomization.yaml"] = k
		return files
	}
	root := t.TempDir()
	dirs := map[string]map[string]string{
		"bad":   kustomization(`{"definitions": {"x": [1, 2]}}`),
		"bare":  kustomization(`{"definitions": {}}`),
		"plain": kustomization(""),
	}
	for dir, files := range dirs {
		writeFiles(t, filepath.Join(root, dir), files)
	}
	defer openapi.ResetOpenAPI()

	bad := filepath.Join(root, "bad")
	rep, err := (&Linter{}).Lint(bad)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Rule != ruleDecode.ID || !strings.Contains(rep.Findings[0].Message, "openapi schema file") {
		t.Fatalf("a schema file that does not parse: got %v, want one %s naming the openapi schema file", rep.Findings, ruleDecode.ID)
	}

	for _, dir := range []string{"bare", "plain"} {
		rep, err := (&Linter{}).Lint(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		ports := -1
		for _, d := range rep.Documents {
			if dep, ok := d.Object.(*appsv1.Deployment); ok {
				ports = len(dep.Spec.Template.Spec.Containers[0].Ports)
			}
		}
		switch {
		case dir == "bare" && ports != 0:
			// The premise: without merge keys the patch replaces the list.
			t.Fatalf("%s: the container has %d ports after a patch under a schema without merge keys, want 0", dir, ports)
		case dir == "plain" && ports != 1:
			t.Fatalf("%s: the container has %d ports after the patch, want the base's 1: the previous build's schema was used", dir, ports)
		}
	}
}

// webDeployment is a Deployment of one container with a named port, and
// webImagePatch a strategic-merge patch of its image, for the kustomize
// tests.
const (
	webDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: web, ports: [{name: http, containerPort: 8080}]}]
`
	webImagePatch = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers: [{name: web, image: web:2}]
`
)

// writeFiles writes files (paths relative to root, folders made as
// needed).
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInputThatNeverEnds lints a named pipe and a file over the limit, in
// a folder and named by a kustomization: a pipe would block the read until
// a writer came, and a kustomize build read any size whole. Each is
// refused at once: an input error when Lint reads it, an invalid-document
// finding on the kustomization when its build does.
func TestInputThatNeverEnds(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"plain/app.yaml":             webDeployment,
		"kust/kustomization.yaml":    "resources: [app.yaml]\n",
		"patch/kustomization.yaml":   "resources: [app.yaml]\npatches: [{path: big.yaml}]\n",
		"patch/app.yaml":             webDeployment,
		"bigfolder/app.yaml":         webDeployment,
		"bigkust/kustomization.yaml": "resources: [app.yaml]\n",
	})
	for _, dir := range []string{"plain", "kust"} {
		if err := syscall.Mkfifo(filepath.Join(root, dir, "pipe.yaml"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "kust", "app.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("# padding\n", (maxFileBytes/10)+1)
	writeFiles(t, root, map[string]string{"patch/big.yaml": big, "bigkust/app.yaml": webDeployment + big})
	tests := []struct {
		dir     string
		wantErr string // an input error naming this, or else
		finding string // an SH000 naming this
	}{
		{dir: "plain", wantErr: "pipe.yaml: not a regular file"},
		{dir: "kust", finding: "app.yaml: not a regular file"},
		{dir: "patch", finding: "more than 16 MiB in one file"},
		{dir: "bigkust", finding: "more than 16 MiB in one file"},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			done := make(chan struct{})
			var rep *Report
			var err error
			go func() {
				defer close(done)
				rep, err = (&Linter{}).Lint(filepath.Join(root, tt.dir))
			}()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("Lint still reading after a minute")
			}
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Lint = %v, want ErrInput naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range rep.Findings {
				if f.Rule == ruleDecode.ID && strings.Contains(f.Message, tt.finding) {
					return
				}
			}
			t.Errorf("no SH000 naming %q; findings %v", tt.finding, rep.Findings)
		})
	}
}
