package certfile_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/certfile/certfiletest"
	"github.com/shoal-dev/shoal/server"
)

// clock is a Config.Now that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logs records what a slog.Logger is given and lets a test wait for a
// line.
type logs struct {
	mu     sync.Mutex
	lines  []string
	notify chan struct{}
}

func newLogs() *logs { return &logs{notify: make(chan struct{}, 1)} }

func (l *logs) logger() *slog.Logger { return slog.New(l) }

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logs) WithGroup(string) slog.Handler            { return l }

func (l *logs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
	return nil
}

// matching returns the lines that contain every one of subs.
func (l *logs) matching(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, line := range l.lines {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

func (l *logs) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// wait returns once a line contains every one of subs, or fails the test
// after 20s.
func (l *logs) wait(t *testing.T, subs ...string) {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for len(l.matching(subs...)) == 0 {
		select {
		case <-l.notify:
		case <-timer.C:
			t.Fatalf("no log line with %q; have:\n%s", subs, l.all())
		}
	}
}

// serve serves h with server.New(cfg) over TLS with tlsCfg on a loopback
// port until the test ends, and returns the port's https URL.
func serve(t *testing.T, cfg server.Config, tlsCfg *tls.Config, h http.Handler) string {
	t.Helper()
	srv := server.New(cfg, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(tls.NewListener(ln, tlsCfg)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return "https://" + ln.Addr().String()
}

// transport returns a transport of its own over a clone of tc, closed when
// the test ends; each one makes new connections.
func transport(t *testing.T, tc *tls.Config) *http.Transport {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: tc.Clone(), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// get GETs url over tr and returns the response with its body read.
func get(tr http.RoundTripper, url string) (*http.Response, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// peerSerial GETs url over tr and returns the serial number, in hex, of
// the certificate the server presented on the connection used.
func peerSerial(t *testing.T, tr http.RoundTripper, url string) string {
	t.Helper()
	resp, _, err := get(tr, url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.Text(16)
}

// serialOf returns the serial number, in hex, of the certificate in file.
func serialOf(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.Text(16)
}

// ok answers 200 with the serial number, in hex, of the client's
// certificate, or "-" without one.
var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		io.WriteString(w, "-")
		return
	}
	io.WriteString(w, r.TLS.PeerCertificates[0].SerialNumber.Text(16))
})

// secretVolume lays files out as the kubelet does for a Secret volume:
// dir/tls.crt -> ..data/tls.crt, dir/..data -> ..<version>/, and an
// update writes a new version directory and swaps ..data by a rename.
type secretVolume struct {
	dir     string
	version int
}

func newSecretVolume(t *testing.T, ca *certfiletest.CA, dnsNames ...string) (v *secretVolume, certFile, keyFile string) {
	t.Helper()
	v = &secretVolume{dir: t.TempDir()}
	v.update(t, ca, dnsNames...)
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(v.dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return v, filepath.Join(v.dir, "tls.crt"), filepath.Join(v.dir, "tls.key")
}

// update issues a certificate into a new version directory and points
// ..data at it, returning the new certificate's file.
func (v *secretVolume) update(t *testing.T, ca *certfiletest.CA, dnsNames ...string) (certFile string) {
	t.Helper()
	v.version++
	name := fmt.Sprintf("..v%d", v.version)
	if err := os.Mkdir(filepath.Join(v.dir, name), 0o755); err != nil {
		t.Fatal(err)
	}
	certFile, _ = ca.Issue(t, filepath.Join(v.dir, name), "tls", dnsNames...)
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(name, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	return certFile
}
