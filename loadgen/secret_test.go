package loadgen

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestCredentialsStayOutOfOutput runs a real load against a replica on
// loopback with a password in the URL, and feeds Validate and ParseHeader
// the mistakes a user makes with one: the password and the token must not
// appear in the text report, the JSON report or any error.
func TestCredentialsStayOutOfOutput(t *testing.T) {
	const password, token = "pa55-w0rd-9c1e", "s3cr3t-token-77ab"
	r := startReplica(t, "a", false, nil)
	withPassword := strings.Replace(r.url(), "http://", "http://user:"+password+"@", 1)
	rep := run(t, Config{URL: withPassword, Steps: []Step{{Rate: 50, Duration: 200 * time.Millisecond}}, Window: time.Second})
	if rep.Completed == 0 {
		t.Fatalf("no request completed: %v", rep.Errors)
	}
	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": text.String(), "json": js.String(), "target": rep.Target} {
		if strings.Contains(out, password) {
			t.Errorf("the %s report shows the password: %.300q", name, out)
		}
	}
	if !strings.Contains(rep.Target, "user:xxxxx@") {
		t.Errorf("target %q, want the user with the password redacted", rep.Target)
	}

	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{"a URL that does not parse", func() error {
			return (&Config{URL: "http://user:" + password + "@127.0.0.1:1/%zz", Count: 1}).Validate()
		}, `URL: not a valid URL: invalid URL escape "%zz"`},
		{"a URL with another scheme", func() error {
			return (&Config{URL: "ftp://user:" + password + "@127.0.0.1/", Count: 1}).Validate()
		}, "scheme must be http or https"},
		{"a header typed with =", func() error {
			_, _, err := ParseHeader("Authorization=Bearer " + token)
			return err
		}, `header "Authorization…": want "Name: value"`},
		{"a header of the token alone", func() error {
			_, _, err := ParseHeader(token)
			return err
		}, `a header of 17 characters has no colon`},
		{"a control character in the value", func() error {
			_, _, err := ParseHeader("Authorization: Bearer " + token + "\x00")
			return err
		}, `header "Authorization": its value holds a control character`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), token) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}
