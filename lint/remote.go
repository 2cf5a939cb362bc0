package lint

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/provider"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// remoteRef is a remote location a kustomization names: a URL kustomize
// would fetch, or a git repository it would clone. With why set, it is
// instead something the guard cannot check, refused for that reason.
type remoteRef struct {
	file  string // the file that names it
	field string // where in that file
	ref   string
	why   string
}

func (r *remoteRef) Error() string { return r.file + ": " + r.message() }

// message says what is wrong, without the file.
func (r *remoteRef) message() string {
	if r.why != "" {
		return fmt.Sprintf("%s %s; not built unless remote locations are allowed (shoal lint --allow-remote)", r.field, r.why)
	}
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
// anything it names. The files it reads count against the limits Lint
// reads input under (see readManifest).
func findRemote(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil // kustomize cannot build it either
	}
	w := &remoteWalk{
		seen:     map[string]bool{},
		root:     dir,
		realRoot: real,
		budget:   maxTotalBytes,
		rf:       resmap.NewFactory(provider.NewDefaultDepProvider().GetResourceFactory()),
	}
	return w.kustomization(real, false)
}

type remoteWalk struct {
	seen     map[string]bool
	read     int
	root     string // the folder findRemote was given, as given
	realRoot string // and with its links followed
	budget   int64  // the bytes it may still read
	rf       *resmap.Factory
}

func (w *remoteWalk) count() error {
	if w.read++; w.read > maxIncludes {
		return fmt.Errorf("more than %d kustomizations and plugin configurations included", maxIncludes)
	}
	return nil
}

// show is how a finding names the file at real, a path with links
// followed: below the root, by the root as given.
func (w *remoteWalk) show(real string) string {
	if rel, err := filepath.Rel(w.realRoot, real); err == nil && filepath.IsLocal(rel) {
		return filepath.Join(w.root, rel)
	}
	return real
}

// readLocal reads the file that p names in the folder dir (links
// followed) as kustomize's loader does, which reads no file outside the
// kustomization's folder: ok is false when kustomize would not read it,
// being missing, a folder or outside dir. A file it would read that is not
// a regular file (reading a pipe would never end) or is larger than Lint
// reads is an error.
func (w *remoteWalk) readLocal(dir, p string) (data []byte, ok bool, err error) {
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, false, nil
	}
	if rel, err := filepath.Rel(dir, real); err != nil || !filepath.IsLocal(rel) {
		return nil, false, nil
	}
	info, err := os.Stat(real)
	if err != nil || info.IsDir() {
		return nil, false, nil
	}
	if !info.Mode().IsRegular() {
		return nil, false, fmt.Errorf("%s: not a regular file", w.show(real))
	}
	data, err = readManifest(real, &w.budget)
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// kustomization walks the kustomization at dir, a path with links
// followed as kustomize follows them before it joins a relative path
// (../base) to it. plugins says that its resources are plugin
// configurations (it was named by a generators, transformers or
// validators field), whose fields kustomize reads files from too.
func (w *remoteWalk) kustomization(dir string, plugins bool) error {
	// A folder is read once as a base and once as plugin configurations:
	// one named as both may hold configurations a base's reading skips.
	key := fmt.Sprintf("%t %s", plugins, dir)
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
		d, ok, err := w.readLocal(dir, name)
		if err != nil {
			return err
		}
		if ok {
			file, data = w.show(filepath.Join(dir, name)), d
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
	if plugins {
		if field := transforming(k); field != "" {
			return &remoteRef{file: file, field: field,
				why: "changes the plugin configurations this kustomization holds for generators, transformers or validators, and what it makes of them is not checked for remote locations"}
		}
	}

	loaded := func(field string, paths ...string) error {
		for _, p := range paths {
			if isURL(p) {
				return &remoteRef{file: file, field: field, ref: p}
			}
		}
		return nil
	}
	// bases walks the entries of a field that names bases. Kustomize
	// reads an entry of generators, transformers or validators (inline)
	// as plugin configurations when it parses as such, and otherwise as
	// the others: as a file when it can read it (by URL too) and parse it,
	// and failing that as a folder or git repository; components are
	// folders or repositories only.
	bases := func(field string, plugins bool, paths ...string) error {
		inline := field == "generators" || field == "transformers" || field == "validators"
		for _, p := range paths {
			if inline {
				if err := w.pluginConfig(file, field, []byte(p)); err != nil {
					return err
				}
			}
			if isURL(p) {
				return &remoteRef{file: file, field: field, ref: p}
			}
			local := filepath.Join(dir, p)
			info, statErr := os.Stat(local)
			if isRepo(p) && (statErr != nil || info.IsDir() || field == "components" || parsesAsRepo(p)) {
				// Kustomize clones anything that parses as a
				// repository and is not a file it reads whole as
				// resources; that can fail on a file in many ways
				// (a clash with another resource's name), so a file
				// whose name parses as one counts too.
				return &remoteRef{file: file, field: field, ref: p}
			}
			switch {
			case statErr != nil:
			case info.IsDir():
				real, err := filepath.EvalSymlinks(local)
				if err != nil {
					return nil
				}
				if err := w.kustomization(real, plugins); err != nil {
					return err
				}
			case plugins:
				if err := w.count(); err != nil {
					return err
				}
				data, ok, err := w.readLocal(dir, p)
				if err != nil {
					return err
				}
				if !ok {
					continue // kustomize does not read it either
				}
				if err := w.pluginConfig(w.show(local), "the plugin configuration", data); err != nil {
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
// configurations in data (a YAML stream), read as kustomize reads them
// (documents, lists of items) and as a builtin plugin decodes its
// configuration: builtin plugins read files named in several fields (a
// PatchTransformer's path, a generator's files and envs), and any of them
// may be a URL. Data that kustomize does not take for configurations
// holds none.
func (w *remoteWalk) pluginConfig(file, field string, data []byte) error {
	m, err := w.rf.NewResMapFromBytes(data)
	if err != nil {
		return nil
	}
	for _, r := range m.Resources() {
		text, err := r.AsYAML()
		if err != nil {
			continue
		}
		var v any
		if yaml.Unmarshal(text, &v) != nil {
			continue
		}
		if ref := findURL(v); ref != "" {
			return &remoteRef{file: file, field: field, ref: ref}
		}
	}
	return nil
}

// transforming returns the first field of k, a kustomization of plugin
// configurations, that may change them: a patch, a replacement or a
// transformer can put a URL together out of parts no file holds whole
// (a namePrefix "http:" on a path "//host/x"). Each field not known to
// leave them as its resources and generators made them counts.
func transforming(k types.Kustomization) string {
	rest := k
	rest.TypeMeta, rest.MetaData, rest.BuildMetadata, rest.SortOptions = types.TypeMeta{}, nil, nil, nil
	rest.Resources, rest.Generators, rest.Validators = nil, nil, nil
	rest.ConfigMapGenerator, rest.SecretGenerator, rest.GeneratorOptions = nil, nil, nil
	rest.HelmCharts, rest.HelmGlobals, rest.HelmChartInflationGenerator = nil, nil, nil
	rest.OpenAPI, rest.Crds, rest.Configurations = nil, nil, nil // read only by transformers
	v := reflect.ValueOf(rest)
	for i := range v.NumField() {
		if !v.Field(i).IsZero() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return ""
}

// findURL returns the first string in v, a decoded YAML document, that
// kustomize would fetch as a URL. The YAML and JSON decoders bound how
// deep v goes (10000 levels).
func findURL(v any) string {
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
			if ref := findURL(e); ref != "" {
				return ref
			}
		}
	case map[string]any:
		for _, e := range v {
			if ref := findURL(e); ref != "" {
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

// parsesAsRepo reports whether kustomize's git.NewRepoSpecFromURL
// (internal to kustomize) accepts n, that is whether kustomize clones it
// when it cannot read it as a file: a scheme git speaks, or an scp-style
// or github.com address, then a host and a repository path that has a
// marker (_git/, //, .git) or two segments.
func parsesAsRepo(n string) bool {
	if filepath.IsAbs(n) {
		return false
	}
	n, _, _ = strings.Cut(n, "?")
	if hasPrefixFold(n, "git::") {
		n = n[len("git::"):]
	}
	scheme := ""
	for _, prefix := range []string{"ssh://", "https://", "http://", "file://"} {
		if hasPrefixFold(n, prefix) {
			scheme, n = prefix, n[len(prefix):]
			break
		}
	}
	user := scpUser.FindString(n)
	n = n[len(user):]
	github := hasPrefixFold(n, "github.com/") || hasPrefixFold(n, "github.com:")
	scp := scheme == "" && (user != "" || github)
	if scheme == "" && !scp {
		return false
	}
	segments := 2
	if scheme == "file://" {
		segments = 0 // all of it is the repository
	} else {
		host, rest := n, ""
		sep := strings.Index(n, "/")
		if colon := strings.Index(n, ":"); scp && (sep == -1 || (colon > 0 && colon < sep)) {
			sep = colon
		}
		if sep >= 0 {
			host, rest = n[:sep+1], n[sep+1:]
		}
		if host == "" && !github {
			return false
		}
		n = rest
	}
	var repo, sub string
	if i := strings.Index(n, "_git/"); i >= 0 {
		next, after, _ := strings.Cut(n[i+len("_git/"):], "/")
		repo, sub = n[:i+len("_git/")]+next, after
	} else if i := strings.Index(n, "//"); i >= 0 {
		repo, sub = n[:i], n[i+2:]
	} else if i := strings.Index(n, ".git"); i >= 0 {
		repo, sub = n[:i+len(".git")], n[i+len(".git"):]
	} else if parts := strings.Split(n, "/"); segments == 0 {
		repo = n
	} else if len(parts) >= segments {
		repo, sub = strings.Join(parts[:segments], "/"), strings.Join(parts[segments:], "/")
	}
	if repo == "" {
		return false
	}
	first, _, _ := strings.Cut(filepath.Clean(strings.TrimPrefix(sub, "/")), "/")
	return first != ".."
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
