package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestBuildWritesRunnableNonRootImage builds a real command, writes the
// tarball, reads it back and runs the binary it holds.
func TestBuildWritesRunnableNonRootImage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	img, err := (&Builder{}).Build(ctx, "./testdata/hello")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "hello.tar")
	const tag = "docker.io/local/hello:dev"
	if err := WriteTarball(file, tag, img); err != nil {
		t.Fatal(err)
	}

	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(file, &ref)
	if err != nil {
		t.Fatalf("read tarball back: %v", err)
	}
	cf, err := back.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("User = %q, want 65532:65532", cf.Config.User)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/ko-app/hello" {
		t.Errorf("Entrypoint = %q, want /ko-app/hello", got)
	}
	if cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("platform = %s/%s, want linux/<arch>", cf.OS, cf.Architecture)
	}

	layers, err := back.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	bin, mode := findFile(t, tar.NewReader(rc), "ko-app/hello")
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		t.Fatalf("binary does not start with the ELF magic: % x", bin[:min(4, len(bin))])
	}
	if mode&0o111 != 0o111 || mode&0o022 != 0 {
		t.Fatalf("mode = %o, want executable by all and writable by owner only", mode)
	}

	if cf.Architecture != runtime.GOARCH {
		return // cannot run a foreign binary; the checks above stand
	}
	exe := filepath.Join(t.TempDir(), "hello")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, exe).Output()
	if err != nil || !strings.HasPrefix(string(out), "hello uid=") {
		t.Fatalf("running the image's binary: %q, %v", out, err)
	}
}

func findFile(t *testing.T, tr *tar.Reader, want string) ([]byte, int64) {
	t.Helper()
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("layer has no %s", want)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "/") == want {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b, h.Mode
		}
	}
}

func TestBuildErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tests := []struct {
		name    string
		pkg     string
		wantErr error
	}{
		{"missing package", "./testdata/nope", ErrBuild},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := (&Builder{}).Build(ctx, tt.pkg)
			if err == nil {
				t.Fatal("want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestFromBinaryIsReproducible(t *testing.T) {
	b := &Builder{GOARCH: "arm64"}
	d := func() string {
		img, err := b.FromBinary("app", []byte("\x7fELF fake"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return h.String()
	}
	if a, c := d(), d(); a != c {
		t.Fatalf("digests differ: %s %s", a, c)
	}
	for _, bad := range []string{"", "a/b", ".."} {
		if _, err := b.FromBinary(bad, nil); err == nil {
			t.Errorf("FromBinary(%q) succeeded", bad)
		}
	}
	if err := WriteTarball(filepath.Join(t.TempDir(), "x.tar"), "Not A Tag!", nil); err == nil {
		t.Error("WriteTarball accepted a bad tag")
	}
}
