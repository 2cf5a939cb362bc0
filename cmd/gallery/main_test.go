package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain runs main itself when asked to, so a test can see its exit
// status and output as a user's shell would.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("SHOAL_TEST_MAIN_ARGS"); ok {
		os.Args = append([]string{"gallery"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestHelpExitsZero(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "SHOAL_TEST_MAIN_ARGS="+arg)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("gallery %s: %v\n%s", arg, err, out.String())
			}
			if !strings.Contains(out.String(), "Usage of gallery") || !strings.Contains(out.String(), "-admin-port") {
				t.Errorf("gallery %s printed no usage:\n%s", arg, out.String())
			}
		})
	}
	t.Run("unknown flag", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SHOAL_TEST_MAIN_ARGS=-no-such-flag")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
			t.Fatalf("gallery -no-such-flag: %v, want a non-zero exit\n%s", err, out)
		}
	})
}
