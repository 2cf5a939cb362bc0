package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRoot is the user and group the image runs as: distroless's "nonroot".
const NonRoot = "65532:65532"

// AppDir is where the binary lives in the image, as ko places it.
const AppDir = "/ko-app"

// ErrBuild reports that `go build` failed; the error carries its output.
var ErrBuild = errors.New("image: go build failed")

// Builder compiles Go commands into images. The zero value builds for
// linux on the host's architecture in the current directory.
type Builder struct {
	// Dir is the directory `go build` runs in: the module holding the
	// package. Empty means the current directory.
	Dir string
	// GOARCH is the target architecture. Empty means runtime.GOARCH.
	GOARCH string
	// GoFlags are extra `go build` flags, such as "-tags=netgo".
	GoFlags []string
	// Created is the image's creation time. Zero keeps the epoch, so the
	// same binary always gives the same image digest.
	Created time.Time
}

// Build compiles the package importPath (a path such as
// "./cmd/thumbnailer" or a full import path) into a static binary and
// returns an image that runs it as [NonRoot] from [AppDir]/NAME, NAME
// being the last element of importPath.
func (b *Builder) Build(ctx context.Context, importPath string) (v1.Image, error) {
	bin, err := b.compile(ctx, importPath)
	if err != nil {
		return nil, err
	}
	return b.FromBinary(binaryName(importPath), bin)
}

func binaryName(importPath string) string {
	return path.Base(strings.TrimSuffix(filepath.ToSlash(importPath), "/"))
}

func (b *Builder) arch() string {
	if b.GOARCH != "" {
		return b.GOARCH
	}
	return runtime.GOARCH
}

func (b *Builder) compile(ctx context.Context, importPath string) ([]byte, error) {
	if importPath == "" {
		return nil, errors.New("image: no package to build")
	}
	tmp, err := os.MkdirTemp("", "shoal-image-")
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "app")
	args := append([]string{"build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out}, b.GoFlags...)
	args = append(args, importPath)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = b.Dir
	// Environ is the inherited environment; the overrides make the binary
	// static and for linux whatever the host is.
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+b.arch())
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w\n%s", ErrBuild, importPath, err, strings.TrimSpace(stderr.String()))
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("image: read built binary: %w", err)
	}
	return bin, nil
}

// FromBinary returns an image holding bin as [AppDir]/name, run as
// [NonRoot].
func (b *Builder) FromBinary(name string, bin []byte) (v1.Image, error) {
	if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." {
		return nil, fmt.Errorf("image: binary name %q is not a file name", name)
	}
	layerTar, err := appLayer(name, bin, b.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{CreatedBy: "shoal image build", Created: v1.Time{Time: b.Created}},
	})
	if err != nil {
		return nil, fmt.Errorf("image: append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", b.arch()
	cf.Created = v1.Time{Time: b.Created}
	cf.Config.Entrypoint = []string{path.Join(AppDir, name)}
	cf.Config.Cmd = nil
	cf.Config.User = NonRoot
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=" + AppDir, "KO_DATA_PATH=/var/run/ko"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image: set config: %w", err)
	}
	return img, nil
}

// appLayer is a tar of AppDir owned by root and the binary in it, readable
// and executable by everyone, so any UID can run it and none can alter it.
func appLayer(name string, bin []byte, mod time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := strings.TrimPrefix(AppDir, "/")
	hdrs := []*tar.Header{
		{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod, Format: tar.FormatPAX},
		{Name: dir + "/" + name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin)), ModTime: mod, Format: tar.FormatPAX},
	}
	for i, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("image: layer tar: %w", err)
		}
		if i == 1 {
			if _, err := tw.Write(bin); err != nil {
				return nil, fmt.Errorf("image: layer tar: %w", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("image: layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteTarball writes img to file as a tarball tagged tag (such as
// "docker.io/local/thumbnailer:dev"), the format `docker load` and
// `ctr images import` read.
func WriteTarball(file, tag string, img v1.Image) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("image: tag %q: %w", tag, err)
	}
	if err := tarball.WriteToFile(file, ref, img); err != nil {
		return fmt.Errorf("image: write %s: %w", file, err)
	}
	return nil
}
