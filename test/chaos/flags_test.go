package chaos

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestHelpAndUnknownFlags runs both services as a user's shell would: -h
// prints the usage and exits 0; an unknown flag exits non-zero.
func TestHelpAndUnknownFlags(t *testing.T) {
	services := []struct{ name, bin string }{
		{"gallery", bins.gallery},
		{"thumbnailer", bins.thumbnailer},
	}
	tests := []struct {
		arg    string
		wantOK bool
	}{
		{"-h", true},
		{"-help", true},
		{"--help", true},
		{"-no-such-flag", false},
	}
	for _, svc := range services {
		for _, tc := range tests {
			t.Run(svc.name+" "+tc.arg, func(t *testing.T) {
				out, err := exec.Command(svc.bin, tc.arg).CombinedOutput()
				if !tc.wantOK {
					var ee *exec.ExitError
					if !errors.As(err, &ee) || ee.ExitCode() == 0 {
						t.Fatalf("%s %s: %v, want a non-zero exit\n%s", svc.name, tc.arg, err, out)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", svc.name, tc.arg, err, out)
				}
				if !strings.Contains(string(out), "Usage of "+svc.name) || !strings.Contains(string(out), "-admin-port") {
					t.Errorf("%s %s printed no usage:\n%s", svc.name, tc.arg, out)
				}
			})
		}
	}
}
