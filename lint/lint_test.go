package lint

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
	for _, p := range files {
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
