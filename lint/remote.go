package lint

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// remoteRef is a remote location a kustomization names: a URL kustomize
// would fetch, or a git repository it would clone.
type remoteRef struct {
	file  string // the file that names it
	field string // where in that file
	ref   string
}

func (r *remoteRef) Error() string { return r.file + ": " + r.message() }

// message says what is wrong, without the file.
func (r *remoteRef) message() string {
	return fmt.Sprintf("%s names the remote location %q; remote bases and files are not fetched unless allowed (shoal lint --allow-remote)", r.field, r.ref)
}

// maxIncludes bounds the kustomizations and plugin configurations
// findRemote reads below one root, so that a tree of includes cannot make
// it read without end; kustomize itself refuses cycles.
const maxIncludes = 1000

// findRemote looks for a remote location in the kustomization at dir and
// in the local kustomizations, components and plugin configurations it
// includes, the way kustomize reads them: the fields that name files read
// by URL (patches, generators' files, replacements, schemas, CRDs) and the
// fields that name bases, which may also be git repositories. It returns
// the first one found as a *remoteRef, or nil. A kustomization that does
// not parse is left to kustomize, which refuses it before loading
// anything it names.
func findRemote(dir string) error {
	w := &remoteWalk{seen: map[string]bool{}}
	return w.kustomization(dir, false)
}

type remoteWalk struct {
	seen map[string]bool
	read int
}

func (w *remoteWalk) count() error {
	if w.read++; w.read > maxIncludes {
		return fmt.Errorf("more than %d kustomizations and plugin configurations included", maxIncludes)
	}
	return nil
}

// kustomization walks the kustomization at dir. plugins says that its
// resources are plugin configurations (it was named by a generators,
// transformers or validators field), whose fields kustomize reads files
// from too.
func (w *remoteWalk) kustomization(dir string, plugins bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real // a link back up the tree is a folder seen
	}
	// A folder is read once as a base and once as plugin configurations:
	// one named as both may hold configurations a base's reading skips.
	key := fmt.Sprintf("%t %s", plugins, abs)
	if w.seen[key] {
		return nil
	}
	w.seen[key] = true
	if err := w.count(); err != nil {
		return err
	}
	var file string
	var data []byte
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		if data, err = os.ReadFile(filepath.Join(dir, name)); err == nil {
			file = filepath.Join(dir, name)
			break
		}
	}
	if file == "" {
		return nil
	}
	var k types.Kustomization
	if k.Unmarshal(data) != nil {
		return nil
	}
	k.FixKustomization() // as kustomize does: bases join resources

	loaded := func(field string, paths ...string) error {
		for _, p := range paths {
			if isURL(p) {
				return &remoteRef{file, field, p}
			}
		}
		return nil
	}
	bases := func(field string, plugins bool, paths ...string) error {
		for _, p := range paths {
			if strings.Contains(p, "\n") {
				// An inline plugin configuration.
				if err := w.pluginConfig(file, field, []byte(p)); err != nil {
					return err
				}
				continue
			}
			local := filepath.Join(dir, p)
			info, statErr := os.Stat(local)
			if isURL(p) || (isRepo(p) && (statErr != nil || info.IsDir())) {
				// Kustomize reads a local file first, and takes
				// anything else that parses as a repository for one.
				return &remoteRef{file, field, p}
			}
			switch {
			case statErr != nil:
			case info.IsDir():
				if err := w.kustomization(local, plugins); err != nil {
					return err
				}
			case plugins:
				if err := w.count(); err != nil {
					return err
				}
				data, err := os.ReadFile(local)
				if err != nil {
					return nil
				}
				if err := w.pluginConfig(local, "the plugin configuration", data); err != nil {
					return err
				}
			}
		}
		return nil
	}
	checks := []func() error{
		func() error { return bases("resources", plugins, k.Resources...) },
		func() error { return bases("components", plugins, k.Components...) },
		func() error { return bases("generators", true, k.Generators...) },
		func() error { return bases("transformers", true, k.Transformers...) },
		func() error { return bases("validators", true, k.Validators...) },
		func() error { return loaded("crds", k.Crds...) },
		func() error { return loaded("configurations", k.Configurations...) },
		func() error { return loaded("openapi", k.OpenAPI["path"]) },
		func() error {
			for _, p := range k.Patches {
				if err := loaded("patches", p.Path); err != nil {
					return err
				}
			}
			//lint:ignore SA1019 kustomize still reads the deprecated fields.
			for _, p := range k.PatchesJson6902 {
				if err := loaded("patchesJson6902", p.Path); err != nil {
					return err
				}
			}
			//lint:ignore SA1019 kustomize still reads the deprecated fields.
			for _, p := range k.PatchesStrategicMerge {
				if err := loaded("patchesStrategicMerge", string(p)); err != nil {
					return err
				}
			}
			for _, r := range k.Replacements {
				if err := loaded("replacements", r.Path); err != nil {
					return err
				}
			}
			return nil
		},
		func() error {
			for _, g := range k.ConfigMapGenerator {
				if err := loaded("configMapGenerator", sources(g.KvPairSources)...); err != nil {
					return err
				}
			}
			for _, g := range k.SecretGenerator {
				if err := loaded("secretGenerator", sources(g.KvPairSources)...); err != nil {
					return err
				}
			}
			return nil
		},
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// sources are the files a generator reads: its files (each "key=path" or
// "path") and env files.
func sources(s types.KvPairSources) []string {
	out := append([]string{s.EnvSource}, s.EnvSources...) // EnvSource: before FixKustomization
	for _, f := range s.FileSources {
		_, path, ok := strings.Cut(f, "=")
		if !ok {
			path = f
		}
		out = append(out, path)
	}
	return out
}

// pluginConfig looks for URLs among the string values of the plugin
// configurations in data (a YAML stream): builtin plugins read files
// named in several fields (a PatchTransformer's path, a generator's files
// and envs), and any of them may be a URL.
func (w *remoteWalk) pluginConfig(file, field string, data []byte) error {
	for _, c := range splitDocuments(data) {
		var v any
		if yaml.Unmarshal(c.text, &v) != nil {
			continue
		}
		if ref := findURL(v, 0); ref != "" {
			return &remoteRef{file, field, ref}
		}
	}
	return nil
}

// findURL returns the first string in v, a decoded YAML document, that
// kustomize would fetch as a URL, searching at most 100 levels deep.
func findURL(v any, depth int) string {
	if depth > 100 {
		return ""
	}
	switch v := v.(type) {
	case string:
		if _, path, ok := strings.Cut(v, "="); ok && isURL(path) {
			return path
		}
		if isURL(v) {
			return v
		}
	case []any:
		for _, e := range v {
			if ref := findURL(e, depth+1); ref != "" {
				return ref
			}
		}
	case map[string]any:
		for _, e := range v {
			if ref := findURL(e, depth+1); ref != "" {
				return ref
			}
		}
	}
	return ""
}

// isURL reports whether kustomize fetches p over HTTP when it loads a
// file by that name.
func isURL(p string) bool {
	p = strings.TrimSpace(p)
	return hasPrefixFold(p, "http://") || hasPrefixFold(p, "https://")
}

// scpUser is the user part of an scp-style git address (git@host:repo).
var scpUser = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]*@`)

// isRepo reports whether p may name a git repository to kustomize, which
// clones one given a URL of a scheme git speaks, a github.com path, or an
// scp-style address. It errs towards yes: kustomize also wants a path of
// two segments or a marker (.git, //, _git/) that this does not check.
func isRepo(p string) bool {
	p = strings.TrimSpace(p)
	if hasPrefixFold(p, "git::") {
		return true
	}
	for _, prefix := range []string{"ssh://", "https://", "http://", "file://", "github.com/", "github.com:"} {
		if hasPrefixFold(p, prefix) {
			return true
		}
	}
	return scpUser.MatchString(p)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
