// Command labimage writes a one-layer image tarball holding a binary (and,
// for dynamically linked programs such as Debian's redis-server, the extra
// files and shared libraries it needs), for import into containerd without
// a registry.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	var (
		binary = flag.String("binary", "", "static binary to package (required)")
		tag    = flag.String("tag", "", "image reference, e.g. docker.io/local/NAME:dev (required)")
		out    = flag.String("o", "", "output tarball path (required)")
		user   = flag.String("user", "65532:65532", "user the entrypoint runs as; empty for root")
		dest   = flag.String("path", "", "path of the binary in the image (default /<binary base name>)")
		args   = flag.String("args", "", "space-separated default arguments (image Cmd)")
		extra  = flag.String("extra", "", "comma-separated absolute paths of more files, stored at the same path")
		libs   = flag.Bool("ldd", false, "also store the shared libraries ldd lists for the binary and extra files")
		fixed  = flag.String("entry-args", "", "space-separated arguments fixed in the Entrypoint after the binary")
	)
	flag.Parse()
	files, err := collect(*binary, *dest, *extra, *libs)
	if err == nil {
		err = run(files, *tag, *out, *user, *args, *fixed)
	}
	if err != nil {
		slog.Error("labimage failed", "err", err)
		os.Exit(1)
	}
}

// file is one regular file of the layer: its path in the image and the
// host file whose content (symlinks followed) it holds.
type file struct{ dest, src string }

// collect lists the layer's files; the first is the entrypoint.
func collect(binary, dest, extra string, libs bool) ([]file, error) {
	if binary == "" {
		return nil, fmt.Errorf("labimage: -binary is required")
	}
	if dest == "" {
		dest = "/" + path.Base(binary)
	}
	files := []file{{dest: dest, src: binary}}
	seen := map[string]bool{dest: true}
	srcs := []string{binary}
	for _, e := range strings.Split(extra, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if !path.IsAbs(e) {
			return nil, fmt.Errorf("labimage: -extra path %q is not absolute", e)
		}
		files, seen[e] = append(files, file{dest: e, src: e}), true
		srcs = append(srcs, e)
	}
	if libs {
		for _, s := range srcs {
			out, err := exec.Command("ldd", s).Output()
			if err != nil {
				return nil, fmt.Errorf("labimage: ldd %s: %w", s, err)
			}
			for _, line := range strings.Split(string(out), "\n") {
				for _, f := range strings.Fields(line) {
					if path.IsAbs(f) && !seen[f] {
						files, seen[f] = append(files, file{dest: f, src: f}), true
					}
				}
			}
		}
	}
	return files, nil
}

func run(files []file, tag, out, user, args, fixed string) error {
	if tag == "" || out == "" {
		return fmt.Errorf("labimage: -tag and -o are required")
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("labimage: parse tag %q: %w", tag, err)
	}
	dest := files[0].dest
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, dir := range []string{"tmp/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o1777}); err != nil {
			return fmt.Errorf("labimage: write layer: %w", err)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return fmt.Errorf("labimage: read %s: %w", f.src, err)
		}
		hdr := &tar.Header{Name: strings.TrimPrefix(f.dest, "/"), Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("labimage: write layer: %w", err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("labimage: write layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("labimage: write layer: %w", err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return fmt.Errorf("labimage: make layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("labimage: append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("labimage: read config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Config = v1.Config{Entrypoint: append([]string{dest}, strings.Fields(fixed)...), User: user, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin:/"}}
	if args != "" {
		cfg.Config.Cmd = strings.Fields(args)
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return fmt.Errorf("labimage: set config: %w", err)
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return fmt.Errorf("labimage: write %s: %w", out, err)
	}
	return nil
}
