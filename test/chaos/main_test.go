package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// bins are the reference services' binaries, built once per test binary.
var bins struct{ gallery, thumbnailer string }

// nextHost hands each process of the run its own loopback address, so
// that processes of parallel or repeated tests never share a port.
var nextHost atomic.Uint32

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "shoal-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/shoal-dev/shoal/cmd/gallery", "github.com/shoal-dev/shoal/cmd/thumbnailer")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: building the services:", err)
		return 1
	}
	// Each test binary starts at its own place in the address range, so
	// that two runs at once rarely probe the same addresses.
	nextHost.Store(uint32(os.Getpid()))
	bins.gallery = filepath.Join(dir, "gallery")
	bins.thumbnailer = filepath.Join(dir, "thumbnailer")
	return m.Run()
}
