package kubelet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestContainerEndsWithItsGroup: once a container's main process has
// exited and done is closed, no process it left running is alive: each
// was killed with the group, and waited for.
func TestContainerEndsWithItsGroup(t *testing.T) {
	const marker = "31.4159" // the leftover children's sleep, to find them by
	for i := range 20 {
		pr, err := startProcess([]string{"/bin/sh", "-c", "sleep " + marker + " & sleep " + marker + " & exit 0"}, nil, t.TempDir(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-pr.done:
		case <-time.After(30 * time.Second):
			pr.kill()
			t.Fatal("the main process did not end")
		}
		// A zombie's cmdline is empty: only living processes match.
		cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, f := range cmdlines {
			if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), marker) {
				t.Fatalf("run %d: %s (%q) still alive after the container ended", i, f, strings.ReplaceAll(string(b), "\\x00", " "))
			}
		}
	}
}
