package localk8s

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestCandidates(t *testing.T) {
	tests := []struct {
		name, ref string
		want      []string
	}{
		{"tagged docker hub", "docker.io/library/redis:7.4-alpine", []string{"docker.io/library/redis:7.4-alpine", "docker.io/library/redis", "redis"}},
		{"digest", "ghcr.io/me/app@sha256:abc", []string{"ghcr.io/me/app@sha256:abc", "ghcr.io/me/app", "app"}},
		{"registry port, no tag", "localhost:5000/app", []string{"localhost:5000/app", "app"}},
		{"bare", "redis", []string{"redis"}},
		{"ko", "ko://github.com/shoal-dev/shoal/cmd/gallery", []string{"ko://github.com/shoal-dev/shoal/cmd/gallery", "gallery"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := candidates(tt.ref); !slices.Equal(got, tt.want) {
				t.Errorf("candidates(%q) = %q, want %q", tt.ref, got, tt.want)
			}
		})
	}
}

func TestParseImageFlag(t *testing.T) {
	tests := []struct {
		name, in      string
		image, binary string
		wantErr       bool
	}{
		{"ok", "redis=/usr/bin/redis-server", "redis", "/usr/bin/redis-server", false},
		{"value with equals", "app=./bin/a=b", "app", "./bin/a=b", false},
		{"no equals", "redis", "", "", true},
		{"empty name", "=/bin/true", "", "", true},
		{"empty path", "redis=", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			image, binary, err := parseImageFlag(tt.in)
			if (err != nil) != tt.wantErr || image != tt.image || binary != tt.binary {
				t.Fatalf("parseImageFlag(%q) = %q, %q, %v", tt.in, image, binary, err)
			}
			if err != nil && !strings.Contains(err.Error(), "NAME=PATH") {
				t.Errorf("error %q does not say the form", err)
			}
		})
	}
}

func TestImagesPrepare(t *testing.T) {
	im := &images{dir: t.TempDir(), mappings: map[string]string{"redis": "sh", "missing": "no-such-program-here"}, log: slog.New(slog.DiscardHandler)}
	err := im.prepare(context.Background(), []string{"docker.io/library/redis:7", "quay.io/x/unknown:1", "missing:2"})
	if !errors.Is(err, ErrUnknownImage) {
		t.Fatalf("prepare: %v, want ErrUnknownImage", err)
	}
	for _, want := range []string{"quay.io/x/unknown:1", "--image", "no-such-program-here"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	im.mappings = map[string]string{"redis": "sh", "ko://example.com/app": "sh"}
	if err := im.prepare(context.Background(), []string{"redis:7", "ko://example.com/app"}); err != nil {
		t.Fatalf("prepare with mappings: %v", err)
	}
	for _, ref := range []string{"redis:7", "ko://example.com/app"} {
		if bin, err := im.binary(ref); err != nil || !strings.HasSuffix(bin, "/sh") {
			t.Errorf("binary(%q) = %q, %v; want the mapped sh (a mapping wins over go build)", ref, bin, err)
		}
	}
	if _, err := im.binary("other"); !errors.Is(err, ErrUnknownImage) {
		t.Errorf("binary of an unprepared image: %v", err)
	}

	err = im.prepare(context.Background(), []string{"ko://example.invalid/does/not/exist"})
	if err == nil || !strings.Contains(err.Error(), "go build example.invalid/does/not/exist") {
		t.Errorf("a failed ko build: %v, want an error naming the build", err)
	}
}
