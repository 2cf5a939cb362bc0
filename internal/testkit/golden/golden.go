// Package golden compares a test's output with a file kept in testdata,
// and rewrites the file instead when the test runs with -update.
//
// Each test package declares its own -update flag, so that `go test
// -update` names a flag the package's test binary has, and passes its value
// in.
package golden

import (
	"bytes"
	"os"
	"testing"
)

// Check reports a test error when got differs from the file at path, or,
// with update, writes got to path. A missing file is a fatal error that
// says how to create it.
func Check(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("golden: write %s: %v", path, err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden: %v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update to accept it):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}
