package lint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"
)

// ErrInput reports input that cannot be read at all: a path that does not
// exist or a file the process may not open. Problems inside readable input
// are findings, not errors.
var ErrInput = errors.New("lint: cannot read input")

// Linter checks manifests. The zero value runs every rule.
type Linter struct {
	// Disable lists rule IDs not to run or report.
	Disable []string
	// Only, when not empty, lists the rule IDs to run and report; every
	// other rule is left out as if disabled.
	Only []string
	// AllowRemote lets kustomize fetch the remote locations a
	// kustomization names: files by URL and bases cloned from git, as
	// `kustomize build` does. By default a kustomization that names one
	// is not built and gets an invalid-document finding instead, so that
	// linting manifests from an untrusted change makes no request to an
	// address they choose and runs no git.
	AllowRemote bool
}

// runs reports whether l runs and reports the rule with ID id.
func (l *Linter) runs(id string) bool {
	return !slices.Contains(l.Disable, id) && (len(l.Only) == 0 || slices.Contains(l.Only, id))
}

// Lint checks each path: a YAML file, a folder of YAML files, or a
// kustomization directory. A folder's plain files form one set and each
// kustomization below it is built into a set of its own. The error is
// non-nil only when input cannot be read; it wraps [ErrInput].
//
// What Lint holds grows with what it reads, so its input is bounded: a
// file over 16 MiB, or inputs over 64 MiB in all, are refused (the API
// server takes at most 3 MiB in one request), and so is a file that is
// not a regular file (a named pipe, a device), whose reading need not
// end. Lint refuses what it reads itself with ErrInput; what a
// kustomization names fails its build, a finding. Documents past the
// 10,000th or the 2,000,000th YAML node in all, a document over 3 MiB, and
// YAML aliases that would multiply a kustomization's input many times
// over, are findings too: a document, even an empty one, costs about a
// kilobyte, and a node about 500 bytes.
func (l *Linter) Lint(paths ...string) (*Report, error) {
	return l.LintContext(context.Background(), paths...)
}

// LintContext is Lint, stopped with an error wrapping ctx's when ctx ends.
// It looks at ctx between files, documents and rules; a kustomize build,
// bounded as its input is, runs to its end.
func (l *Linter) LintContext(ctx context.Context, paths ...string) (*Report, error) {
	rep := &Report{}
	r := newReading()
	for _, p := range paths {
		if err := l.lintPath(ctx, rep, p, r); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lint: stopped: %w", err)
	}
	rep.sort()
	return rep, nil
}

// LintBytes checks one YAML stream as if read from a file named path.
func (l *Linter) LintBytes(path string, data []byte) *Report {
	rep := &Report{}
	docs, fs := parseStream(path, data, false, newReading())
	l.check(context.Background(), rep, docs, fs)
	rep.sort()
	return rep
}

// LintDocuments checks objects built or changed in code as one set: each
// document needs Kind, Name, Namespace and Object (see [Document.Object]);
// Path and Line may be empty. Such documents carry no annotations, so
// [AnnotationIgnore] does not apply to them.
func (l *Linter) LintDocuments(docs ...*Document) *Report {
	rep := &Report{}
	l.check(context.Background(), rep, docs, nil)
	rep.sort()
	return rep
}

// Limits on what Lint reads (see Lint).
const (
	maxFileBytes  = 16 << 20
	maxTotalBytes = 64 << 20
	maxDocuments  = 10000
	// The API server takes at most 3 MiB in one request.
	maxDocumentBytes = 3 << 20
	// Lint holds about 500 bytes for each YAML node of a file it reads
	// itself: 2,000,000 nodes, about a gigabyte (a kustomize build holds
	// more, and has its own limit, maxBuildNodes).
	maxNodes = 2000000
)

// reading is what one Lint call may still read.
type reading struct {
	bytes      int64 // counted down by readManifest
	docs       int   // counted down by parseStream
	nodes      int   // the YAML nodes of files Lint reads, counted down by parseStream
	buildNodes int   // the YAML nodes kustomize builds read, counted down by chargeNodes
	full       bool  // the documents' limit was reached and said so once
}

func newReading() *reading {
	return &reading{bytes: maxTotalBytes, docs: maxDocuments, nodes: maxNodes, buildNodes: maxBuildNodes}
}

// readManifest reads the file at path, counting it against budget, the
// bytes Lint may still read.
func readManifest(path string, budget *int64) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: more than %d MiB in one file", path, maxFileBytes>>20)
	}
	if *budget -= int64(len(data)); *budget < 0 {
		return nil, fmt.Errorf("%s: the inputs hold more than %d MiB in all", path, maxTotalBytes>>20)
	}
	return data, nil
}

// openRegular opens path for reading if it is a regular file. Anything
// else is refused: opening a named pipe waits for a writer, and reading a
// device need not end. It opens without blocking, then checks what it
// opened, so that the check and the read are of one file.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return f, nil
}

// boundedFS is the disk as a kustomize build sees it in Lint: the files
// it reads are read as Lint reads its input (readManifest), regular files
// only, within the limits on one file and on all of them.
type boundedFS struct {
	filesys.FileSystem
	r *reading
}

// ReadFile reads as Lint does, and counts the YAML nodes read (see
// chargeNodes): a build holds far more per node than Lint, and expands
// every alias, so a few hundred bytes of nested aliases would otherwise
// take gigabytes.
func (b boundedFS) ReadFile(path string) ([]byte, error) {
	data, err := readManifest(path, &b.r.bytes)
	if err != nil {
		return nil, err
	}
	if err := chargeNodes(data, &b.r.buildNodes); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

func (b boundedFS) Open(path string) (filesys.File, error) { return openRegular(path) }

func (l *Linter) lintPath(ctx context.Context, rep *Report, p string, r *reading) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lint: stopped: %w", err)
	}
	info, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInput, err)
	}
	if !info.IsDir() {
		data, err := readManifest(p, &r.bytes)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInput, err)
		}
		docs, fs := parseStream(p, data, false, r)
		l.check(ctx, rep, docs, fs)
		return nil
	}
	if isKustomization(p) {
		docs, fs := l.build(p, r)
		l.check(ctx, rep, docs, fs)
		return nil
	}
	var docs []*Document
	var findings []Finding
	var roots []string
	anyYAML := false
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if path != p && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if path != p && isKustomization(path) {
				roots = append(roots, path)
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		anyYAML = true
		data, err := readManifest(path, &r.bytes)
		if err != nil {
			return err
		}
		ds, fs := parseStream(path, data, false, r)
		docs, findings = append(docs, ds...), append(findings, fs...)
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("lint: stopped: %w", err)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInput, err)
	}
	if len(docs) == 0 && len(findings) == 0 && len(roots) == 0 && !anyYAML {
		// A mistyped path would otherwise pass with nothing checked.
		return fmt.Errorf("%w: %s holds no .yaml or .yml file and no kustomization", ErrInput, p)
	}
	if len(docs) > 0 || len(findings) > 0 {
		l.check(ctx, rep, docs, findings)
	}
	for _, root := range roots {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lint: stopped: %w", err)
		}
		docs, fs := l.build(root, r)
		l.check(ctx, rep, docs, fs)
	}
	return nil
}

func isKustomization(dir string) bool {
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// buildMu makes kustomize builds take turns. Kustomize keeps its OpenAPI
// schema in process-wide variables (sigs.k8s.io/kustomize/kyaml/openapi),
// and the first build that needs the schema loads it while another build
// reads it without a lock (kubernetes-sigs/kustomize#5805): two `shoal up`
// in one test process raced there.
var buildMu sync.Mutex

// build runs kustomize on dir in-process. A failed build is a finding on
// the directory: the input is wrong, not unreadable. Unless remote
// locations are allowed, one named anywhere in the build is a finding on
// the file that names it, and nothing is built.
func (l *Linter) build(dir string, r *reading) ([]*Document, []Finding) {
	out, err := kustomize(dir, r, l.AllowRemote)
	var ref *remoteRef
	switch {
	case errors.As(err, &ref):
		return nil, []Finding{newFinding(ruleDecode, ref.file, 0, "", ref.message())}
	case err != nil:
		return nil, []Finding{newFinding(ruleDecode, dir, 0, "", "kustomize build: "+err.Error())}
	case len(out) > maxTotalBytes:
		// Patches and generators can multiply what was read.
		return nil, []Finding{newFinding(ruleDecode, dir, 0, "", fmt.Sprintf("kustomize build: the output is larger than %d MiB", maxTotalBytes>>20))}
	}
	return parseStream(dir, out, true, r)
}

// kustomize builds dir into one YAML stream, one build at a time, each
// from the built-in OpenAPI schema. Unless remote locations are allowed,
// it first looks for one (findRemote, whose parsing shares kustomize's
// state) and returns it as a *remoteRef instead of building.
func kustomize(dir string, r *reading, allowRemote bool) (out []byte, err error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	schema := openapi.GetSchemaVersion()
	defer func() {
		// Kustomize panics on a kustomization's `openapi:` schema file
		// that does not parse, leaving the schema half loaded; and a
		// schema a kustomization names stays for the next build, which
		// names none (SetSchema keeps it). Either way the next build
		// starts over from the built-in one.
		v := recover()
		if v != nil {
			out, err = nil, buildPanic(v)
		}
		if v != nil || openapi.GetSchemaVersion() != schema {
			openapi.ResetOpenAPI()
		}
	}()
	if !allowRemote {
		if err := findRemote(dir); err != nil {
			return nil, err
		}
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(boundedFS{filesys.MakeFsOnDisk(), r}, dir)
	if err != nil {
		return nil, err
	}
	return m.AsYaml()
}

// buildPanic is the error of a kustomize build that panicked: on a
// custom OpenAPI schema it cannot parse, named as such; otherwise the
// panic's first line.
func buildPanic(v any) error {
	msg, _, _ := strings.Cut(fmt.Sprint(v), "\n")
	if strings.HasPrefix(msg, "invalid schema file") {
		return errors.New("the kustomization's openapi schema file is not a valid OpenAPI schema")
	}
	return fmt.Errorf("kustomize failed on this input: %s", msg)
}

// check runs the rules over one set and adds what they find to rep.
// When ctx ends, it stops between rules; the caller reports that.
func (l *Linter) check(ctx context.Context, rep *Report, docs []*Document, decode []Finding) {
	rep.Inputs++
	rep.Documents = append(rep.Documents, docs...)
	s := newSet(docs)
	for _, d := range docs {
		if d.Object != nil {
			rep.Objects++
		}
	}
	findings := decode
	for _, r := range ruleList() {
		if ctx.Err() != nil {
			return
		}
		if r.check != nil && l.runs(r.ID) {
			findings = append(findings, r.check(s)...)
		}
	}
	for _, f := range findings {
		if l.runs(f.Rule) {
			rep.Findings = append(rep.Findings, f)
		}
	}
}
