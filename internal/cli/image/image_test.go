package image

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestBuildCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "hello.tar")
	cmd := NewCommand()
	var stdout bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetArgs([]string{"build", "../../../image/testdata/hello", "--tag", "docker.io/local/hello:test", "-o", out})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "docker.io/local/hello:test") {
		t.Errorf("output %q does not name the tag", stdout.String())
	}
	ref, _ := name.NewTag("docker.io/local/hello:test")
	img, err := tarball.ImageFromPath(out, &ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || cf.Config.Entrypoint[0] != "/ko-app/hello" {
		t.Fatalf("config user %q entrypoint %v", cf.Config.User, cf.Config.Entrypoint)
	}
}

func TestBuildCommandUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no package", []string{"build"}},
		{"two packages", []string{"build", "./a", "./b"}},
		{"bad tag", []string{"build", "../../../image/testdata/hello", "--tag", "UPPER CASE", "-o", filepath.Join(t.TempDir(), "x.tar")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := NewCommand()
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			cmd.SetArgs(tt.args)
			if err := cmd.ExecuteContext(context.Background()); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}
