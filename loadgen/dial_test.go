package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestIsLocalhost(t *testing.T) {
	tests := []struct {
		name string
		host string
		want bool
	}{
		{"localhost", "localhost", true},
		{"subdomain", "gallery.localhost", true},
		{"deeper subdomain", "a.b.localhost", true},
		{"upper case", "Gallery.LOCALHOST", true},
		{"trailing dot", "gallery.localhost.", true},
		{"suffix without a dot", "notlocalhost", false},
		{"localhost as a label elsewhere", "localhost.example.com", false},
		{"an IP", "127.0.0.1", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isLocalhost(tt.host); got != tt.want {
				t.Errorf("isLocalhost(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}

// TestLocalhostNamesReachLoopback: a *.localhost URL reaches a server on
// 127.0.0.1 with its Host header intact, as curl and browsers do, although
// Go's resolver would not resolve the name.
func TestLocalhostNamesReachLoopback(t *testing.T) {
	var hosts atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	for _, host := range []string{"gallery.localhost", "localhost"} {
		t.Run(host, func(t *testing.T) {
			rep := run(t, Config{URL: "http://" + host + ":" + port + "/", Rate: 200, Count: 5})
			if rep.OK != 5 {
				t.Fatalf("ok %d of 5, errors %v %v", rep.OK, rep.Errors, rep.ErrorSamples)
			}
			if got := hosts.Load(); got != host+":"+port {
				t.Errorf("server saw Host %v, want %s:%s", got, host, port)
			}
		})
	}
}

// TestDialLoopbackFallsBackToIPv6: a name under localhost is tried on ::1
// when 127.0.0.1 refuses; other names are dialled as given.
func TestDialLoopbackFallsBackToIPv6(t *testing.T) {
	var tried []string
	dial := dialLoopback(func(_ context.Context, _, addr string) (net.Conn, error) {
		tried = append(tried, addr)
		return nil, &net.OpError{Op: "dial", Err: net.UnknownNetworkError("refused")}
	})
	if _, err := dial(context.Background(), "tcp", "app.localhost:8080"); err == nil {
		t.Fatal("dial succeeded")
	}
	if _, err := dial(context.Background(), "tcp", "example.com:80"); err == nil {
		t.Fatal("dial succeeded")
	}
	want := []string{"127.0.0.1:8080", "[::1]:8080", "example.com:80"}
	if strings.Join(tried, " ") != strings.Join(want, " ") {
		t.Errorf("dialled %q, want %q", tried, want)
	}
}

// TestErrorSamples: every error kind comes with the message of its first
// error.
func TestErrorSamples(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	unavailable := startReplica(t, "r", false, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error": "session store unavailable,` + "\n" + ` try again shortly"}`))
	})
	tests := []struct {
		name, url, kind, sample string
	}{
		{"refused", "http://" + closed + "/", KindRefused, "connect: connection refused"},
		{"status with its body", unavailable.url(), "http_503", `503 Service Unavailable: {"error": "session store unavailable, try again shortly"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := run(t, Config{URL: tt.url, Rate: 200, Count: 3})
			if rep.Errors[tt.kind] != 3 {
				t.Fatalf("errors %v, want 3 %s", rep.Errors, tt.kind)
			}
			if got := rep.ErrorSamples[tt.kind]; !strings.Contains(got, tt.sample) {
				t.Errorf("sample %q, want it to contain %q", got, tt.sample)
			}
		})
	}
}

func TestSampleIsOneBoundedLine(t *testing.T) {
	long := strings.Repeat("é", 200)
	got := sample("a\n  b\t" + long)
	if strings.ContainsAny(got, "\n\t") || len(got) > maxSampleLen || !strings.HasPrefix(got, "a b é") || !strings.HasSuffix(got, "...") {
		t.Errorf("sample = %q (%d bytes)", got, len(got))
	}
}
