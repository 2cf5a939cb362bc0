package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what Check reports instead of
// failing the test that uses it.
type recorder struct {
	testing.TB
	errors, fatals []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// Fatalf records and stops the calling goroutine's Check call, as
// testing.T's FailNow would.
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
	panic(r)
}

func (r *recorder) check(path string, got []byte, update bool) {
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
	}()
	Check(r, path, got, update)
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.golden")
	if err := os.WriteFile(existing, []byte("a\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		path       string
		got        string
		update     bool
		wantErrors int
		wantFatal  string
		wantFile   string
	}{
		{name: "same", path: existing, got: "a\nb\n", wantFile: "a\nb\n"},
		{name: "differs", path: existing, got: "a\nc\n", wantErrors: 1, wantFile: "a\nb\n"},
		{name: "missing", path: filepath.Join(dir, "missing.golden"), got: "x", wantFatal: "-update to create it"},
		{name: "update rewrites", path: filepath.Join(dir, "new.golden"), got: "new\n", update: true, wantFile: "new\n"},
		{name: "update to a missing folder", path: filepath.Join(dir, "no", "such.golden"), got: "x", update: true, wantFatal: "golden: write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			r.check(tt.path, []byte(tt.got), tt.update)
			if len(r.errors) != tt.wantErrors {
				t.Errorf("errors %q, want %d", r.errors, tt.wantErrors)
			}
			if tt.wantFatal == "" && len(r.fatals) > 0 || tt.wantFatal != "" && (len(r.fatals) != 1 || !strings.Contains(r.fatals[0], tt.wantFatal)) {
				t.Errorf("fatals %q, want one containing %q", r.fatals, tt.wantFatal)
			}
			if tt.wantFile != "" {
				b, err := os.ReadFile(tt.path)
				if err != nil || string(b) != tt.wantFile {
					t.Errorf("file %q (%v), want %q", b, err, tt.wantFile)
				}
			}
		})
	}
}
