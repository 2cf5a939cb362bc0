package localk8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// koPrefix marks an image as a Go import path built with `go build`, as ko
// does.
const koPrefix = "ko://"

// ErrUnknownImage reports an image that is neither a ko:// import path nor
// mapped to a local program with --image.
var ErrUnknownImage = errors.New("unknown image")

// images turns container images into local executables: ko:// images are
// built with `go build`, others are looked up in the --image mappings.
type images struct {
	dir      string            // where built binaries go
	mappings map[string]string // --image NAME=PATH
	binaries map[string]string // image -> executable, once resolved
	log      *slog.Logger
}

// parseImageFlag splits NAME=PATH.
func parseImageFlag(v string) (name, program string, err error) {
	name, program, ok := strings.Cut(v, "=")
	if !ok || name == "" || program == "" {
		return "", "", fmt.Errorf("--image %q: want NAME=PATH, for example redis=/usr/bin/redis-server", v)
	}
	return name, program, nil
}

// candidates are the names a mapping may use for ref: the full reference,
// the reference without tag or digest, and the last path element without
// them ("docker.io/library/redis:7.4-alpine" is also "redis").
func candidates(ref string) []string {
	out := []string{ref}
	repo := ref
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	out = append(out, repo, path.Base(repo))
	return slices.Compact(out)
}

// prepare resolves every image before anything starts, so an unknown image
// or a failed build stops `shoal up` with nothing running.
func (im *images) prepare(ctx context.Context, refs []string) error {
	im.binaries = map[string]string{}
	var errs []error
	var builds []string
	for _, ref := range refs {
		if _, done := im.binaries[ref]; done || slices.Contains(builds, ref) {
			continue
		}
		if strings.HasPrefix(ref, koPrefix) && !im.mapped(ref) {
			builds = append(builds, ref)
			continue
		}
		bin, err := im.lookup(ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		im.binaries[ref] = bin
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.MkdirAll(im.dir, 0o755); err != nil {
		return fmt.Errorf("image folder: %w", err)
	}
	for i, ref := range builds {
		pkg := strings.TrimPrefix(ref, koPrefix)
		out := filepath.Join(im.dir, path.Base(pkg))
		im.log.Info("building image", "image", ref, "step", fmt.Sprintf("%d/%d", i+1, len(builds)))
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("image %s: go build %s: %w\n%s", ref, pkg, err, strings.TrimSpace(string(b)))
		}
		im.binaries[ref] = out
	}
	return nil
}

// mapped reports whether an --image mapping names ref; a mapping wins over
// building a ko:// image.
func (im *images) mapped(ref string) bool {
	for _, name := range candidates(ref) {
		if _, ok := im.mappings[name]; ok {
			return true
		}
	}
	return false
}

func (im *images) lookup(ref string) (string, error) {
	for _, name := range candidates(ref) {
		program, ok := im.mappings[name]
		if !ok {
			continue
		}
		bin, err := exec.LookPath(program)
		if err != nil {
			return "", fmt.Errorf("image %s: --image %s=%s: %w", ref, name, program, err)
		}
		return bin, nil
	}
	return "", fmt.Errorf("%w %s: not a ko:// import path and no --image NAME=PATH maps it (names tried: %s)",
		ErrUnknownImage, ref, strings.Join(candidates(ref), ", "))
}

// binary returns the executable prepared for ref.
func (im *images) binary(ref string) (string, error) {
	if b, ok := im.binaries[ref]; ok {
		return b, nil
	}
	return "", fmt.Errorf("%w %s", ErrUnknownImage, ref)
}
