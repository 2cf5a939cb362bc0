package lint

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
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
	// A git that records that it ran and fails, so that a clone the guard
	// lets through shows and reaches nothing.
	bin := t.TempDir()
	gitLog := filepath.Join(bin, "git.log")
	if err := os.WriteFile(filepath.Join(bin, "git"), []byte("#!/bin/sh\necho \"$@\" >>'"+gitLog+"'\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	patchTransformer := "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\n"
	// A PatchTransformer by URL inside 60 nested lists, which kustomize
	// takes apart however deep they go.
	nested := patchTransformer + "path: " + url + "\n"
	for range 60 {
		nested = "apiVersion: v1\nkind: FooList\nitems:\n- " + strings.ReplaceAll(nested, "\n", "\n  ") + "\n"
	}
	tests := []struct {
		name  string
		files map[string]string
		links map[string]string // symbolic links to make: name to target, relative to the root
		file  string            // the file the finding names, relative to the root
		ref   string            // the location it names; URL stands for the server's
		msg   string            // or, for what is refused as unchecked, words of the message
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
			name: "a transformer configured inline on one line",
			files: map[string]string{
				"kustomization.yaml": kust("resources: [app.yaml]\ntransformers: ['{apiVersion: builtin, kind: PatchTransformer, metadata: {name: p}, path: URL}']\n"),
				"app.yaml":           webDeployment,
			},
			file: "kustomization.yaml", ref: "URL",
		},
		{
			name: "a transformer that does not parse, named like a repository",
			files: map[string]string{
				"kustomization.yaml": kust("resources: [app.yaml]\ntransformers: [\"git@git.example.com:team/app\\nkind: [\"]\n"),
				"app.yaml":           webDeployment,
			},
			file: "kustomization.yaml", ref: "git@git.example.com:team/app\nkind: [",
		},
		{
			name: "a transformer's configuration deep in nested lists",
			files: map[string]string{
				"kustomization.yaml": kust("resources: [app.yaml]\ntransformers: [patch.yaml]\n"),
				"app.yaml":           webDeployment,
				"patch.yaml":         nested,
			},
			file: "patch.yaml", ref: "URL",
		},
		{
			name: "a base's base above a linked folder",
			files: map[string]string{
				"kustomization.yaml":             kust("resources: [link]\n"),
				"real/base/kustomization.yaml":   kust("resources: [../remote]\n"),
				"real/remote/kustomization.yaml": kust("resources: [URL]\n"),
				"remote/kustomization.yaml":      kust("resources: []\n"),
			},
			links: map[string]string{"link": "real/base"},
			file:  "real/remote/kustomization.yaml", ref: "URL",
		},
		{
			name: "a local file named like a repository that does not parse",
			files: map[string]string{
				"kustomization.yaml":     kust("resources: [github.com/example/app]\n"),
				"github.com/example/app": "kind: [\n",
			},
			file: "kustomization.yaml", ref: "github.com/example/app",
		},
		{
			name: "a local file named like a repository, as a component",
			files: map[string]string{
				"kustomization.yaml":     kust("components: [github.com/example/app]\n"),
				"github.com/example/app": webDeployment,
			},
			file: "kustomization.yaml", ref: "github.com/example/app",
		},
		{
			name: "transformers from a kustomization that patches them",
			files: map[string]string{
				"kustomization.yaml":    kust("resources: [app.yaml]\ntransformers: [tr]\n"),
				"app.yaml":              webDeployment,
				"tr/kustomization.yaml": kust("resources: [patch.yaml]\npatches: [{target: {kind: PatchTransformer}, patch: '[{\"op\": \"replace\", \"path\": \"/path\", \"value\": \"URL\"}]'}]\n"),
				"tr/patch.yaml":         patchTransformer + "path: p.yaml\n",
				"tr/p.yaml":             "[]\n",
			},
			file: "tr/kustomization.yaml", msg: "patches",
		},
		{
			name: "transformers from a kustomization that prefixes a URL together",
			files: map[string]string{
				"kustomization.yaml":    kust("resources: [app.yaml]\ntransformers: [tr]\n"),
				"app.yaml":              webDeployment,
				"tr/kustomization.yaml": kust("resources: [patch.yaml]\nnamePrefix: 'http:'\nconfigurations: [prefix.yaml]\n"),
				"tr/prefix.yaml":        "namePrefix: [{path: path, kind: PatchTransformer}]\n",
				"tr/patch.yaml":         patchTransformer + "path: '" + strings.TrimPrefix(url, "http:") + "'\n",
			},
			file: "tr/kustomization.yaml", msg: "namePrefix",
		},
		{
			name:  "local repository by file URL",
			files: map[string]string{"kustomization.yaml": kust("components: ['file:///srv/repo.git//deploy']\n")},
			file:  "kustomization.yaml", ref: "file:///srv/repo.git//deploy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked.Store(0)
			os.Remove(gitLog)
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			for name, target := range tt.links {
				if err := os.Symlink(filepath.Join(root, target), filepath.Join(root, name)); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := (&Linter{}).Lint(root)
			if err != nil {
				t.Fatal(err)
			}
			want := strconv.Quote(strings.ReplaceAll(tt.ref, "URL", url))
			if tt.msg != "" {
				want = tt.msg
			}
			var found bool
			for _, f := range rep.Findings {
				if f.Rule == ruleDecode.ID && f.Path == filepath.Join(root, tt.file) && strings.Contains(f.Message, want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no finding on %s saying %s; findings:\n%v", tt.file, want, rep.Findings)
			}
			if len(rep.Documents) != 0 {
				t.Errorf("%d documents built", len(rep.Documents))
			}
			if n := asked.Load(); n != 0 {
				t.Fatalf("the server was asked %d times", n)
			}
			if ran, err := os.ReadFile(gitLog); err == nil {
				t.Fatalf("git ran: %s", ran)
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

// TestRemoteGuardReadsWithinLimits names, as a transformer's
// configuration, a file the guard must not read whole: a link to
// /dev/zero, which kustomize does not read either (it is outside the
// kustomization's folder), and a file larger than Lint reads, which is a
// finding. Either way Lint returns.
func TestRemoteGuardReadsWithinLimits(t *testing.T) {
	for _, tt := range []struct {
		name string
		make func(path string) error
		msg  string
	}{
		{"a link to /dev/zero", func(path string) error { return os.Symlink("/dev/zero", path) }, "not in or below"},
		{"a file over 16 MiB", func(path string) error { return os.WriteFile(path, make([]byte, maxFileBytes+1), 0o644) }, "more than 16 MiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, map[string]string{
				"kustomization.yaml": "resources: [app.yaml]\ntransformers: [patch.yaml]\n",
				"app.yaml":           webDeployment,
			})
			if err := tt.make(filepath.Join(root, "patch.yaml")); err != nil {
				t.Fatal(err)
			}
			rep, err := (&Linter{}).Lint(root)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Findings) != 1 || rep.Findings[0].Rule != ruleDecode.ID || !strings.Contains(rep.Findings[0].Message, tt.msg) {
				t.Errorf("findings %v, want one %s saying %q", rep.Findings, ruleDecode.ID, tt.msg)
			}
		})
	}
}

// TestParsesAsRepo checks the copy of kustomize's repository parsing on
// names a local file may have.
func TestParsesAsRepo(t *testing.T) {
	for n, want := range map[string]bool{
		"team@app.yaml":                    false,
		"github.com/example/app":           true,
		"github.com/app.yaml":              false,
		"git@git.example.com:team/app.git": true,
		"vendor/github.com/example/app":    false,
		"https://example.com/org/repo":     true,
		"file:///srv/repo.git//deploy":     true,
		"github.com/example/app//../..":    false, // leaves the repository
	} {
		if got := parsesAsRepo(n); got != want {
			t.Errorf("parsesAsRepo(%q) = %t, want %t", n, got, want)
		}
	}
}

// FuzzKustomization lints a kustomization of arbitrary bytes beside a
// Deployment and a plugin configuration: whatever it says, Lint returns a
// report, never a panic, and the guard lets no URL through to the
// loopback server it may name.
func FuzzKustomization(f *testing.F) {
	for _, seed := range []string{
		"resources: [app.yaml]\n",
		"resources: [app.yaml]\ntransformers: [patch.yaml]\n",
		"resources: [app.yaml]\npatches: [{path: http://127.0.0.1:1/x.yaml}]\n",
		"bases: ['github.com/example/app//deploy?ref=v1']\n",
		"transformers: ['{apiVersion: builtin, kind: PatchTransformer, metadata: {name: p}, path: https://127.0.0.1:1/p}']\n",
		"openapi: {path: app.yaml}\nresources: [app.yaml]\n",
		"configMapGenerator: [{name: c, files: [k=app.yaml], envs: [app.yaml]}]\n",
		"components: [.]\nresources: [app.yaml, app.yaml]\n",
	} {
		f.Add([]byte(seed))
	}
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
	}))
	f.Cleanup(srv.Close)
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		writeFiles(t, root, map[string]string{
			"kustomization.yaml": strings.ReplaceAll(string(data), "http://127.0.0.1:1", srv.URL),
			"app.yaml":           webDeployment,
			"patch.yaml":         "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npatch: '[]'\ntarget: {kind: Deployment}\n",
		})
		t.Setenv("PATH", "") // no git to run, whatever the guard misses
		if _, err := (&Linter{}).Lint(root); err != nil && !errors.Is(err, ErrInput) {
			t.Fatalf("Lint = %v", err)
		}
		if n := asked.Load(); n != 0 {
			t.Fatalf("the server was asked %d times", n)
		}
	})
}
