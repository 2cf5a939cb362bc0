// Package podtest runs the tests of the packages that start pods as
// processes (kubelet, cluster): it builds their container program, testpod,
// once per test binary and checks for leaked goroutines after the tests.
package podtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// testpodPackage is the container program's import path; building by path
// works from any package's directory.
const testpodPackage = "github.com/shoal-dev/shoal/internal/testkit/podtest/testpod"

// Main is a TestMain body: it builds testpod, stores its path in *bin, runs
// the tests, fails the run on leaked goroutines, removes the binary and
// exits with the tests' status.
func Main(m *testing.M, bin *string) {
	os.Exit(run(m, bin))
}

func run(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "podtest")
	if err != nil {
		fmt.Fprintln(os.Stderr, "podtest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "testpod")
	build := exec.Command("go", "build", "-o", *bin, testpodPackage)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "podtest: build testpod:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "podtest: goleak:", err)
			code = 1
		}
	}
	return code
}
