package lint

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestRemoteLocationsAreNotFetched lints kustomizations that name a
// loopback server in every place kustomize fetches from, directly or
// through what they include: each is one invalid-document finding naming
// the file and the location, and the server is never asked. Git
// addresses are refused the same way, before any git runs.
func TestRemoteLocationsAreNotFetched(t *testing.T) {
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Write([]byte(webDeployment))
	}))
	defer srv.Close()
	url := srv.URL + "/app.yaml"
	kust := func(body string) string {
		return "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" + strings.ReplaceAll(body, "URL", url)
	}
	tests := []struct {
		name  string
		files map[string]string
		file  string // the file the finding names, relative to the root
		ref   string // the location it names; URL stands for the server's
	}{
		{
			name:  "resource by URL",
			files: map[string]string{"kustomization.yaml": kust("resources: [URL]\n")},
			file:  "kustomization.yaml", ref: "URL",
		},
		{
			name:  "base by URL, in the deprecated field",
			files: map[string]string{"kustomization.yaml": kust("bases: [URL]\n")},
			file:  "kustomization.yaml", ref: "URL",
		},
		{
			name: "patch by URL",
			files: map[string]string{
				"kustomization.yaml": kust("resources: [app.yaml]\npatches: [{path: URL}]\n"),
				"app.yaml":           webDeployment,
			},
			file: "kustomization.yaml", ref: "URL",
		},
		{
			name: "strategic-merge patch by URL, keys in another case",
			files: map[string]string{
				"kustomization.yaml": kust("Resources: [app.yaml]\nPatchesStrategicMerge: [URL]\n"),
				"app.yaml":           webDeployment,
			},
			file: "kustomization.yaml", ref: "URL",
		},
		{
			name:  "generator file by URL",
			files: map[string]string{"kustomization.yaml": kust("configMapGenerator: [{name: c, files: [conf=URL]}]\n")},
			file:  "kustomization.yaml", ref: "URL",
		},
		{
			name: "a base's resource by URL",
			files: map[string]string{
				"kustomization.yaml":      kust("resources: [base]\n"),
				"base/kustomization.yaml": kust("resources: [URL]\n"),
			},
			file: "base/kustomization.yaml", ref: "URL",
		},
		{
			name: "a component's patch by URL",
			files: map[string]string{
				"kustomization.yaml": kust("resources: [app.yaml]\ncomponents: [comp]\n"),
				"app.yaml":           webDeployment,
				"comp/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n" +
					strings.ReplaceAll("patches: [{path: URL}]\n", "URL", url),
			},
			file: "comp/kustomization.yaml", ref: "URL",
		},
		{
			name: "a transformer's configuration file",
			files: map[string]string{
				"kustomization.yaml": kust("resources: [app.yaml]\ntransformers: [patch.yaml]\n"),
				"app.yaml":           webDeployment,
				"patch.yaml": "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\n" +
					"target: {kind: Deployment}\npath: " + url + "\n",
			},
			file: "patch.yaml", ref: "URL",
		},
		{
			name: "a transformer configured inline",
			files: map[string]string{
				"kustomization.yaml": kust("resources: [app.yaml]\ntransformers:\n- |\n  apiVersion: builtin\n  kind: PatchTransformer\n  metadata: {name: p}\n  path: URL\n"),
				"app.yaml":           webDeployment,
			},
			file: "kustomization.yaml", ref: "URL",
		},
		{
			name: "transformers from a kustomization of configurations",
			files: map[string]string{
				"kustomization.yaml":    kust("resources: [app.yaml]\ntransformers: [tr]\n"),
				"app.yaml":              webDeployment,
				"tr/kustomization.yaml": kust("resources: [patch.yaml]\n"),
				"tr/patch.yaml":         "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: " + url + "\n",
			},
			file: "tr/patch.yaml", ref: "URL",
		},
		{
			name: "the same folder as a base first, then as transformers",
			files: map[string]string{
				"kustomization.yaml":    kust("resources: [tr]\ntransformers: [tr]\n"),
				"tr/kustomization.yaml": kust("resources: [patch.yaml]\n"),
				"tr/patch.yaml":         "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: " + url + "\n",
			},
			file: "tr/patch.yaml", ref: "URL",
		},
		{
			name:  "github repository",
			files: map[string]string{"kustomization.yaml": kust("resources: ['github.com/example/app//deploy?ref=v1']\n")},
			file:  "kustomization.yaml", ref: "github.com/example/app//deploy?ref=v1",
		},
		{
			name:  "scp-style repository",
			files: map[string]string{"kustomization.yaml": kust("resources: ['git@git.example.com:team/app.git']\n")},
			file:  "kustomization.yaml", ref: "git@git.example.com:team/app.git",
		},
		{
			name:  "local repository by file URL",
			files: map[string]string{"kustomization.yaml": kust("components: ['file:///srv/repo.git//deploy']\n")},
			file:  "kustomization.yaml", ref: "file:///srv/repo.git//deploy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			rep, err := (&Linter{}).Lint(root)
			if err != nil {
				t.Fatal(err)
			}
			ref := strings.ReplaceAll(tt.ref, "URL", url)
			var found bool
			for _, f := range rep.Findings {
				if f.Rule == ruleDecode.ID && f.Path == filepath.Join(root, tt.file) && strings.Contains(f.Message, `"`+ref+`"`) {
					found = true
				}
			}
			if !found {
				t.Errorf("no finding on %s naming %q; findings:\n%v", tt.file, ref, rep.Findings)
			}
			if len(rep.Documents) != 0 {
				t.Errorf("%d documents built", len(rep.Documents))
			}
			if n := asked.Load(); n != 0 {
				t.Fatalf("the server was asked %d times", n)
			}
		})
	}
}

// TestRemoteLocationsWhenAllowed fetches a resource by URL when the
// Linter allows it, and takes a local file whose name looks like a git
// address for the file it is.
func TestRemoteLocationsWhenAllowed(t *testing.T) {
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Write([]byte(webDeployment))
	}))
	defer srv.Close()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"remote/kustomization.yaml": "resources: [" + srv.URL + "/app.yaml]\n",
		"local/kustomization.yaml":  "resources: [team@app.yaml]\n",
		"local/team@app.yaml":       webDeployment,
	})
	for _, tt := range []struct {
		name  string
		l     *Linter
		dir   string
		asked int64
	}{
		{"remote allowed", &Linter{AllowRemote: true}, "remote", 1},
		{"local file named like a git address", &Linter{}, "local", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			asked.Store(0)
			rep, err := tt.l.Lint(filepath.Join(root, tt.dir))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range rep.Findings {
				if f.Rule == ruleDecode.ID {
					t.Errorf("finding: %v", f)
				}
			}
			if len(rep.Documents) != 1 || rep.Documents[0].Name != "web" {
				t.Errorf("documents %v, want the Deployment web", rep.Documents)
			}
			if got := asked.Load(); got != tt.asked {
				t.Errorf("the server was asked %d times, want %d", got, tt.asked)
			}
		})
	}
}
