package loadgen

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
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
		// The colon inside a basic credential makes the rest the name.
		{"a basic credential typed with =", func() error {
			_, _, err := ParseHeader("Authorization=Basic user:" + password)
			return err
		}, `header "Authorization…": invalid name`},
		{"a basic credential typed with a space", func() error {
			_, _, err := ParseHeader("Authorization Basic user:" + password)
			return err
		}, `header "Authorization…": invalid name`},
		{"a header set in Config with the value in its name", func() error {
			return (&Config{URL: "http://127.0.0.1:1/", Count: 1, Header: map[string][]string{"Authorization=Bearer " + token: {"x"}}}).Validate()
		}, `header "Authorization…": invalid name`},
		{"gRPC metadata with a control character in the value", func() error {
			return grpcConfig("127.0.0.1:1", map[string][]string{"authorization": {"Bearer " + token + "\x01"}}).Validate()
		}, `metadata "authorization": its value holds a byte that is not printable ASCII`},
		{"gRPC metadata with the value in its key", func() error {
			return CheckMetadataKey("authorization bearer " + token)
		}, `metadata key "authorization…": only lower-case letters`},
		{"a gRPC target with a password", func() error {
			return grpcConfig("dns://user:"+password+"@127.0.0.1:53/gallery:8082", nil).Validate()
		}, "GRPC.Target: names a user or password before an @"},
		{"a gRPC target with a password that does not parse", func() error {
			return grpcConfig("dns://user:"+password+"@127.0.0.1:53/%zz", nil).Validate()
		}, "GRPC.Target: names a user or password before an @"},
		{"a gRPC target without a scheme with a password", func() error {
			return grpcConfig("user:"+password+"@127.0.0.1:8082", nil).Validate()
		}, "GRPC.Target: names a user or password before an @"},
		{"a gRPC target with a token as its user", func() error {
			return grpcConfig("dns://"+token+"@127.0.0.1:53/gallery:8082", nil).Validate()
		}, "GRPC.Target: names a user or password before an @"},
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

// grpcConfig is a valid gRPC run of one call to target with md, but for
// what the caller puts in target and md.
func grpcConfig(target string, md map[string][]string) *Config {
	return &Config{Count: 1, GRPC: &GRPC{Target: target, Method: "/grpc.health.v1.Health/Check", Metadata: md}}
}

// TestTargetsWithoutUserinfo are gRPC targets Validate must still take:
// an @ outside an authority is not a credential.
func TestTargetsWithoutUserinfo(t *testing.T) {
	for _, target := range []string{
		"127.0.0.1:8082",
		"[::1]:8082",
		"dns:///gallery:8082",
		"dns://10.0.0.10:53/gallery:8082",
		"passthrough:///127.0.0.1:8082",
		"unix:///run/app@1.sock",
		"unix-abstract:@app",
		"k8s:///gallery.default:8082",
	} {
		t.Run(target, func(t *testing.T) {
			if err := grpcConfig(target, nil).Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

// TestHostileServedByStaysBounded runs a real load against a server that
// names a new replica in every answer, each name a kilobyte long and not
// UTF-8 (HTTP allows any byte above 0x7f): the report names at most MaxReplicas,
// cut to 253 bytes and printable, counts the rest as OtherReplicas, and
// loses no response.
func TestHostileServedByStaysBounded(t *testing.T) {
	var n atomic.Int64
	r := startReplica(t, "", false, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Served-By", fmt.Sprintf("\xff\xfepod-%d-%s", n.Add(1), strings.Repeat("x", 1000)))
	})
	const count = 2000
	rep := run(t, Config{URL: r.url(), Count: count, Rate: 2000, Window: 100 * time.Millisecond})
	if rep.Completed != count {
		t.Fatalf("completed %d of %d: %v %v", rep.Completed, count, rep.Errors, rep.ErrorSamples)
	}
	if len(rep.Replicas) != MaxReplicas+1 || rep.Replicas[OtherReplicas] != count-MaxReplicas {
		t.Errorf("%d replicas named, %d answers as others; want %d and %d", len(rep.Replicas), rep.Replicas[OtherReplicas], MaxReplicas+1, count-MaxReplicas)
	}
	for name := range rep.Replicas {
		if len(name) > 253 || !utf8.ValidString(name) {
			t.Fatalf("replica named %q (%d bytes)", name, len(name))
		}
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(text.Bytes()) {
		t.Error("the text report holds the server's bytes that are not UTF-8")
	}
}
