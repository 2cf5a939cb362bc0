package service

import (
	"context"
	"errors"
	"io"
	"runtime/debug"
	"strings"
	"testing"
)

func TestSoftMemoryLimit(t *testing.T) {
	const mi = 1 << 20
	tests := []struct {
		name                string
		limit, fileResident int64
		want                int64
	}{
		{"small container: the code's pages and a twentieth left out", 128 * mi, 15 * mi, 128*mi - 128*mi/20 - 15*mi},
		{"large container: nine tenths", 1 << 30, 15 * mi, 1<<30 - (1<<30)/10},
		{"no file pages read: nine tenths", 128 * mi, 0, 128*mi - 128*mi/10},
		{"code as large as the limit: half", 64 * mi, 60 * mi, 32 * mi},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := softMemoryLimit(tt.limit, tt.fileResident); got != tt.want {
				t.Errorf("softMemoryLimit(%d, %d) = %d, want %d", tt.limit, tt.fileResident, got, tt.want)
			}
		})
	}
	if n := residentFileBytes(); n <= 0 {
		t.Errorf("resident file bytes of this process = %d, want its code's", n)
	}
}

// TestProgramSetsTheSoftMemoryLimit: Run sets the Go runtime's soft limit
// to nine tenths of MEMORY_LIMIT while the program runs, leaves a
// GOMEMLIMIT the operator set alone, and restores the limit it found
// when it returns.
func TestProgramSetsTheSoftMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	tests := []struct {
		name      string
		env       map[string]string
		wantSoft  int64 // the runtime's limit during Setup; 0 means before
		wantLimit int64 // Options.MemoryLimit during Setup
		wantErr   string
	}{
		{"nine tenths of MEMORY_LIMIT", map[string]string{"MEMORY_LIMIT": "1000000000"}, 900000000, 1000000000, ""},
		{"GOMEMLIMIT set by the operator", map[string]string{"MEMORY_LIMIT": "1000000000", "GOMEMLIMIT": "500MiB"}, 0, 1000000000, ""},
		{"a negative MEMORY_LIMIT", map[string]string{"MEMORY_LIMIT": "-1"}, 0, 0, "MEMORY_LIMIT -1 is negative"},
		{"a MEMORY_LIMIT that is no number", map[string]string{"MEMORY_LIMIT": "256Mi"}, 0, 0, "MEMORY_LIMIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var soft, limit int64
			stop := errors.New("stop after setup")
			p := Program{Name: "p", Setup: func(svc *Service) error {
				soft, limit = debug.SetMemoryLimit(-1), svc.Options.MemoryLimit
				return stop
			}}
			env := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			err := p.Run(context.Background(), []string{"-host", "127.0.0.1", "-port", "0", "-admin-port", "0", "-log-level", "error"}, env, io.Discard)
			if after := debug.SetMemoryLimit(-1); after != before {
				t.Errorf("after Run the runtime's limit is %d, want %d as before", after, before)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Run = %v, want an error naming %q", err, tt.wantErr)
				}
				return
			}
			if !errors.Is(err, stop) {
				t.Fatalf("Run = %v, want the Setup error", err)
			}
			want := tt.wantSoft
			if want == 0 {
				want = before
			}
			if soft != want {
				t.Errorf("soft limit during the run = %d, want %d", soft, want)
			}
			if limit != tt.wantLimit {
				t.Errorf("Options.MemoryLimit = %d, want %d", limit, tt.wantLimit)
			}
		})
	}
}
