package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain runs the service itself when a test starts this binary with
// SHOAL_TEST_MAIN=1, so that tests see what a pod's log would hold.
func TestMain(m *testing.M) {
	if os.Getenv("SHOAL_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSecretsStayOutOfTheLog starts the gallery as a pod would, with a
// Redis password and a session secret in its environment, and makes it
// print its usage (-h, a mistyped flag) or fail on a Redis URL that does
// not parse: neither secret may appear in what it prints, where before
// the usage showed both as flag defaults and the error repeated the URL.
func TestSecretsStayOutOfTheLog(t *testing.T) {
	const password, secret = "pa55-w0rd-41d7", "topsecret-session-key-9e2b"
	tests := []struct {
		name     string
		args     []string
		redisURL string
		want     string
	}{
		{"help", []string{"-h"}, "redis://:" + password + "@127.0.0.1:1/0", "(env SESSION_SECRET)"},
		{"a mistyped flag", []string{"-bogus"}, "redis://:" + password + "@127.0.0.1:1/0", "flag provided but not defined: -bogus"},
		{"a Redis URL that does not parse", nil, "redis://:" + password + "@127.0.0.1:1/%zz", `REDIS_URL: not a valid URL: invalid URL escape "%zz"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], tc.args...)
			cmd.Env = append(os.Environ(), "SHOAL_TEST_MAIN=1", "REDIS_URL="+tc.redisURL, "SESSION_SECRET="+secret,
				"PORT=0", "ADMIN_PORT=0", "ADDR=127.0.0.1")
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("still running after a minute: %s", out)
			}
			if err == nil && tc.args == nil {
				t.Fatalf("the gallery started with a Redis URL that does not parse: %s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output does not say %q:\n%s", tc.want, out)
			}
			if strings.Contains(string(out), password) || strings.Contains(string(out), secret) {
				t.Errorf("output shows a secret:\n%s", out)
			}
		})
	}
}
