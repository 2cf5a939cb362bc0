package lint

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// laughs is a ControllerRevision whose data nests levels of nine aliases
// each: 9^levels strings once kustomize expands them, from a few hundred
// bytes.
func laughs(levels int) string {
	var b strings.Builder
	b.WriteString("apiVersion: apps/v1\nkind: ControllerRevision\nmetadata:\n  name: laughs\nrevision: 1\ndata:\n")
	b.WriteString(`  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for i := 1; i < levels; i++ {
		p := fmt.Sprintf("*l%d", i-1)
		fmt.Fprintf(&b, "  l%d: &l%d [%s]\n", i, i, strings.Repeat(p+",", 8)+p)
	}
	return b.String()
}

// TestKustomizeInputsAreCounted builds kustomizations whose few bytes
// would take gigabytes inside kustomize, which expands every alias and
// holds about two kilobytes per node: each must be an SH000 on the
// kustomization naming why, in a run that keeps its memory (the build
// is refused before kustomize holds the nodes). Modest aliases still
// build.
func TestKustomizeInputsAreCounted(t *testing.T) {
	list := "apiVersion: apps/v1\nkind: ControllerRevision\nmetadata:\n  name: list\nrevision: 1\ndata:\n  a:\n" +
		strings.Repeat("  - lol\n", maxBuildNodes)
	tests := []struct {
		name    string
		files   map[string]string
		finding string // "" when it must build, with the ControllerRevision in it
	}{
		{"seven levels of aliases", map[string]string{"cr.yaml": laughs(7)}, "aliases expand to more than 100000 nodes"},
		{"six levels of aliases", map[string]string{"cr.yaml": laughs(6)}, "aliases expand to more than 100000 nodes"},
		{"an alias that holds itself", map[string]string{"cr.yaml": "apiVersion: apps/v1\nkind: ControllerRevision\nmetadata: {name: x}\nrevision: 1\ndata: &a {x: *a}\n"}, "kustomize build"},
		{"four levels of aliases", map[string]string{"cr.yaml": laughs(4)}, ""},
		{"a block reused", map[string]string{"cr.yaml": "apiVersion: apps/v1\nkind: ControllerRevision\nmetadata: {name: x}\nrevision: 1\ndata:\n  a: &env [{name: A, value: b}, {name: C, value: d}]\n  b: *env\n  c: *env\n"}, ""},
		{"half a million nodes, no alias", map[string]string{"cr.yaml": list}, "more than 500000 YAML nodes in all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.files["kustomization.yaml"] = "resources: [cr.yaml]\n"
			writeFiles(t, dir, tt.files)
			rep, err := (&Linter{}).Lint(dir)
			if err != nil {
				t.Fatal(err)
			}
			var sh000 []string
			for _, f := range rep.Findings {
				if f.Rule == ruleDecode.ID {
					sh000 = append(sh000, f.Message)
				}
			}
			if tt.finding == "" {
				if len(sh000) > 0 || rep.Objects != 1 {
					t.Fatalf("%d object(s), SH000 %q; want the object built", rep.Objects, sh000)
				}
				return
			}
			if len(sh000) != 1 || !strings.Contains(sh000[0], tt.finding) || !strings.Contains(sh000[0], "cr.yaml") {
				t.Fatalf("SH000 %q; want one naming cr.yaml and %q", sh000, tt.finding)
			}
		})
	}
}

// TestDocumentsAreCounted lints streams of more documents than Lint
// holds: past the limit, one SH000 at the first document left out says so,
// once however many files follow, and the documents before it are checked.
func TestDocumentsAreCounted(t *testing.T) {
	tiny := strings.Repeat("x\n---\n", maxDocuments+500)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": tiny, "b.yaml": tiny, "c.yaml": webDeployment})
	tests := []struct {
		name  string
		paths []string
		line  int
	}{
		{"one file", []string{filepath.Join(dir, "a.yaml")}, 2*maxDocuments + 1},
		{"three files", []string{filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"), filepath.Join(dir, "c.yaml")}, 2*maxDocuments + 1},
		{"a folder", []string{dir}, 2*maxDocuments + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := (&Linter{}).Lint(tt.paths...)
			if err != nil {
				t.Fatal(err)
			}
			var limit []Finding
			other := 0
			for _, f := range rep.Findings {
				if strings.Contains(f.Message, fmt.Sprintf("more than %d documents in all", maxDocuments)) {
					limit = append(limit, f)
				} else {
					other++
				}
			}
			if len(limit) != 1 || limit[0].Line != tt.line || !strings.HasSuffix(limit[0].Path, "a.yaml") {
				t.Fatalf("limit findings %+v; want one on a.yaml line %d", limit, tt.line)
			}
			if other != maxDocuments {
				t.Errorf("%d other findings; want one per document checked, %d", other, maxDocuments)
			}
		})
	}
}

// TestLintStopsWithItsContext cancels the context of a lint of a folder
// and of a file: Lint returns an error wrapping the context's, not a
// report that passes.
func TestLintStopsWithItsContext(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": webDeployment, "k/kustomization.yaml": "resources: [app.yaml]\n", "k/app.yaml": webDeployment})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, p := range []string{dir, filepath.Join(dir, "a.yaml"), filepath.Join(dir, "k")} {
		rep, err := (&Linter{}).LintContext(ctx, p)
		if !errors.Is(err, context.Canceled) || rep != nil {
			t.Errorf("LintContext(%s) = %v, %v; want context.Canceled", p, rep, err)
		}
	}
}

// TestSelectingMatchesAScan compares the set's indexed selection with
// testing every workload, for the selectors Services and
// PodDisruptionBudgets give.
func TestSelectingMatchesAScan(t *testing.T) {
	var docs strings.Builder
	for i, l := range []string{"{app: a}", "{app: a, tier: web}", "{app: b, tier: web}", "{tier: db}", "{}", "{app: a}"} {
		ns := "default"
		if i == 5 {
			ns = "other"
		}
		fmt.Fprintf(&docs, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d%d, namespace: %s}\nspec:\n  selector: {matchLabels: %s}\n  template:\n    metadata: {labels: %s}\n    spec: {containers: [{name: c, image: x}]}\n---\n", i, ns, l, l)
	}
	parsed, _ := parseStream("x.yaml", []byte(docs.String()), false, newReading())
	s := newSet(parsed)
	req := func(key string, op selection.Operator, vals ...string) labels.Selector {
		r, err := labels.NewRequirement(key, op, vals)
		if err != nil {
			t.Fatal(err)
		}
		return labels.NewSelector().Add(*r)
	}
	tests := []struct {
		name string
		sel  labels.Selector
	}{
		{"one pair", labels.SelectorFromSet(labels.Set{"app": "a"})},
		{"two pairs", labels.SelectorFromSet(labels.Set{"app": "a", "tier": "web"})},
		{"no such pair", labels.SelectorFromSet(labels.Set{"app": "z"})},
		{"empty", labels.SelectorFromSet(nil)},
		{"in two values", req("app", selection.In, "a", "b")},
		{"not in", req("app", selection.NotIn, "a")},
		{"exists", req("tier", selection.Exists)},
		{"does not exist", req("tier", selection.DoesNotExist)},
	}
	for _, tt := range tests {
		for _, ns := range []string{"default", "other", "none"} {
			t.Run(tt.name+"/"+ns, func(t *testing.T) {
				var want []string
				for _, w := range s.workloads {
					if w.doc.Namespace == ns && tt.sel.Matches(labels.Set(w.template.Labels)) {
						want = append(want, w.doc.Name)
					}
				}
				for range 2 { // asked again, from what was kept
					var got []string
					for _, w := range s.selecting(ns, tt.sel) {
						got = append(got, w.doc.Name)
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("selecting = %v, want %v", got, want)
					}
				}
			})
		}
	}
}

// FuzzChargeNodes feeds arbitrary bytes to the count that guards
// kustomize builds: it must not panic or recurse without end (an alias to
// the node that holds it), and it charges what it lets through.
func FuzzChargeNodes(f *testing.F) {
	for _, seed := range []string{laughs(3), laughs(7), "a: &a {x: *a}\n", "- &a [*a]\n", "*a\n", "a: &a 1\nb: *a\n---\nc: *a\n", "\t{"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		left := maxBuildNodes
		if err := chargeNodes(data, &left); err == nil && left > maxBuildNodes {
			t.Fatalf("charged %d nodes", maxBuildNodes-left)
		}
	})
}

// TestFolderWithoutManifests lints folders in which nothing is a manifest:
// a mistyped path must be an input error, not a pass with nothing checked.
// A folder of empty YAML files was read, and passes.
func TestFolderWithoutManifests(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"docs/README.md": "# not a manifest\n", "hidden/.git/app.yaml": webDeployment, "empty/a.yaml": ""})
	for _, tt := range []struct{ dir, wantErr string }{
		{"docs", "holds no .yaml or .yml file and no kustomization"},
		{"hidden", "holds no .yaml or .yml file and no kustomization"},
		{"empty", ""},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			_, err := (&Linter{}).Lint(filepath.Join(root, tt.dir))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (!errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Lint = %v, want ErrInput saying %q", err, tt.wantErr)
			}
		})
	}
}

// TestNodesAndDocumentSizeAreCounted parses streams past the nodes Lint
// holds (here a smaller limit, as parseStream takes it) and a document
// larger than the API server takes: each is one SH000 at its line, the
// documents before it are kept, and nothing after the node limit is.
func TestNodesAndDocumentSizeAreCounted(t *testing.T) {
	configMap := func(name string, keys int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n", name)
		for i := range keys {
			fmt.Fprintf(&b, "  k%d: v\n", i)
		}
		return b.String()
	}
	t.Run("nodes", func(t *testing.T) {
		stream := configMap("a", 200) + "---\n" + configMap("b", 200) + "---\n" + configMap("c", 200) + "---\n" + configMap("d", 10)
		r := newReading()
		r.nodes = 1000 // each ConfigMap of 200 keys holds 409 nodes
		docs, findings := parseStream("x.yaml", []byte(stream), false, r)
		if len(docs) != 2 || docs[0].Name != "a" || docs[1].Name != "b" {
			t.Errorf("kept %d document(s); want a and b", len(docs))
		}
		if len(findings) != 1 || findings[0].Line != 413 || !strings.Contains(findings[0].Message, "more than 2000000 YAML nodes in all") {
			t.Errorf("findings %+v; want one at line 413 (c) on the node limit", findings)
		}
	})
	t.Run("a document over 3 MiB", func(t *testing.T) {
		big := configMap("big", 3<<20/10)
		rep := (&Linter{}).LintBytes("x.yaml", []byte(configMap("small", 1)+"---\n"+big))
		if rep.Objects != 1 || len(rep.Findings) != 1 || rep.Findings[0].Line != 8 || !strings.Contains(rep.Findings[0].Message, "the API server takes at most 3 MiB in one request") {
			t.Errorf("%d object(s), findings %+v; want small kept and one SH000 at line 8", rep.Objects, rep.Findings)
		}
	})
}
