package config

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		wantPort  int
		wantDrain time.Duration
		wantName  string
		wantH2C   bool
		wantErr   string
	}{
		{"defaults", nil, nil, 8080, 5 * time.Second, "", false, ""},
		{"env", map[string]string{"PORT": "9000", "DRAIN_DELAY": "1s", "POD_NAME": "p-1", "H2C": "true"}, nil, 9000, time.Second, "p-1", true, ""},
		{"flag beats env", map[string]string{"PORT": "9000"}, []string{"-port", "7000"}, 7000, 5 * time.Second, "", false, ""},
		{"empty env ignored", map[string]string{"PORT": ""}, nil, 8080, 5 * time.Second, "", false, ""},
		{"bad int env", map[string]string{"PORT": "eighty"}, nil, 0, 0, "", false, `PORT="eighty" is not an integer`},
		{"bad duration env", map[string]string{"DRAIN_DELAY": "5"}, nil, 0, 0, "", false, `DRAIN_DELAY="5" is not a duration`},
		{"bad bool env", map[string]string{"H2C": "maybe"}, nil, 0, 0, "", false, `H2C="maybe" is not a boolean`},
		{"bad flag", nil, []string{"-port", "x"}, 0, 0, "", false, `invalid value "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("svc", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			s := New(fs, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			var port int
			var drain time.Duration
			var name string
			var h2c bool
			s.Int(&port, "port", "PORT", 8080, "port")
			s.Duration(&drain, "drain-delay", "DRAIN_DELAY", 5*time.Second, "drain")
			s.String(&name, "pod-name", "POD_NAME", "", "name")
			s.Bool(&h2c, "h2c", "H2C", false, "h2c")
			err := s.Parse(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if port != tt.wantPort || drain != tt.wantDrain || name != tt.wantName || h2c != tt.wantH2C {
				t.Errorf("got port=%d drain=%v name=%q h2c=%v", port, drain, name, h2c)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	var out strings.Builder
	fs.SetOutput(&out)
	s := New(fs, nil)
	var port int
	s.Int(&port, "port", "PORT", 8080, "public port")
	if err := s.Parse([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(-h) = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "public port (env PORT)") {
		t.Errorf("usage = %q, want the flag with its variable", out.String())
	}
}

// TestSecret binds a secret: the variable applies unless the flag is
// given, and usage never prints its value.
func TestSecret(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"unset", nil, nil, ""},
		{"from the variable", map[string]string{"TOKEN": "from-env-1f3a"}, nil, "from-env-1f3a"},
		{"the flag beats the variable", map[string]string{"TOKEN": "from-env-1f3a"}, []string{"-token", "from-flag"}, "from-flag"},
		{"an empty variable", map[string]string{"TOKEN": ""}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("svc", flag.ContinueOnError)
			var out strings.Builder
			fs.SetOutput(&out)
			s := New(fs, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			var tok string
			s.Secret(&tok, "token", "TOKEN", "the token")
			if err := s.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if tok != tt.want {
				t.Errorf("token = %q, want %q", tok, tt.want)
			}
			fs.PrintDefaults()
			if v := tt.env["TOKEN"]; v != "" && strings.Contains(out.String(), v) {
				t.Errorf("usage shows the variable's value: %q", out.String())
			}
			if !strings.Contains(out.String(), "the token (env TOKEN)") {
				t.Errorf("usage = %q, want the flag with its variable", out.String())
			}
		})
	}
}
