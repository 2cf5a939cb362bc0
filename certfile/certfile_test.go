package certfile_test

import (
	"crypto/tls"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/certfile"
	"github.com/shoal-dev/shoal/certfile/certfiletest"
	"github.com/shoal-dev/shoal/server"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  certfile.Config
		want string // in the error; "" for none
	}{
		{"zero", certfile.Config{}, ""},
		{"full", certfile.Config{CertFile: "a", KeyFile: "b", ClientCAFile: "c", CAFile: "d", CheckInterval: time.Minute}, ""},
		{"cert without key", certfile.Config{CertFile: "a"}, "KeyFile"},
		{"key without cert", certfile.Config{KeyFile: "b"}, "CertFile"},
		{"negative interval", certfile.Config{CheckInterval: -time.Second}, "CheckInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "certfile: ") {
				t.Fatalf("Validate: %v, want an error naming %s", err, tt.want)
			}
			if _, err := certfile.Server(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Server: %v, want an error naming %s", err, tt.want)
			}
			if _, err := certfile.Client(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Client: %v, want an error naming %s", err, tt.want)
			}
		})
	}
	if _, err := certfile.Server(certfile.Config{}); err == nil || !strings.Contains(err.Error(), "CertFile") {
		t.Errorf("Server without a certificate: %v, want an error naming CertFile", err)
	}
}

// TestLoadErrors: a file that cannot be loaded fails Server or Client at
// once, naming the file and never quoting it.
func TestLoadErrors(t *testing.T) {
	const secret = "SECRET-KEY-MATERIAL"
	dir := t.TempDir()
	ca := certfiletest.NewCA(t)
	certFile, keyFile := ca.Issue(t, dir, "server", "localhost")
	caFile := ca.Write(t, dir)
	otherCert, otherKey := ca.Issue(t, dir, "other", "localhost")
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	write(t, garbage, secret)
	truncatedKey := filepath.Join(dir, "truncated.key")
	write(t, truncatedKey, read(t, keyFile)[:100]+secret)
	truncatedCA := filepath.Join(dir, "truncated-ca.crt")
	write(t, truncatedCA, read(t, caFile)+read(t, caFile)[:80])

	tests := []struct {
		name     string
		client   bool
		cfg      certfile.Config
		want     []string // in the error
		notExist bool
	}{
		{"missing cert", false, certfile.Config{CertFile: missing, KeyFile: keyFile}, []string{"CertFile", missing}, true},
		{"missing key", false, certfile.Config{CertFile: certFile, KeyFile: missing}, []string{"KeyFile", missing}, true},
		{"missing client CA", false, certfile.Config{CertFile: certFile, KeyFile: keyFile, ClientCAFile: missing}, []string{"ClientCAFile", missing}, true},
		{"missing CA", true, certfile.Config{CAFile: missing}, []string{"CAFile", missing}, true},
		{"missing client cert", true, certfile.Config{CertFile: missing, KeyFile: keyFile}, []string{"CertFile", missing}, true},
		{"garbage key", false, certfile.Config{CertFile: certFile, KeyFile: garbage}, []string{"KeyFile", garbage}, false},
		{"garbage cert", true, certfile.Config{CertFile: garbage, KeyFile: keyFile}, []string{"CertFile", garbage}, false},
		{"truncated key", false, certfile.Config{CertFile: certFile, KeyFile: truncatedKey}, []string{"KeyFile", truncatedKey}, false},
		{"key of another cert", false, certfile.Config{CertFile: certFile, KeyFile: otherKey}, []string{certFile, otherKey}, false},
		{"cert of another key", true, certfile.Config{CertFile: otherCert, KeyFile: keyFile}, []string{otherCert, keyFile}, false},
		{"garbage CA", true, certfile.Config{CAFile: garbage}, []string{"CAFile", garbage}, false},
		{"truncated client CA", false, certfile.Config{CertFile: certFile, KeyFile: keyFile, ClientCAFile: truncatedCA}, []string{"ClientCAFile", truncatedCA}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.client {
				_, err = certfile.Client(tt.cfg)
			} else {
				_, err = certfile.Server(tt.cfg)
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "-----") {
				t.Errorf("error %q quotes the file", err)
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.notExist {
				t.Errorf("errors.Is(%q, fs.ErrNotExist) = %v", err, got)
			}
		})
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRotation serves a certificate, replaces its files while serving and
// checks what new and existing connections get, for both ways the files
// are replaced: renamed over (certfiletest.WriteFile) and a Secret
// volume's symlink swap.
func TestRotation(t *testing.T) {
	const interval = 10 * time.Second
	layouts := []struct {
		name string
		// setup writes the first certificate and returns its files and a
		// function that replaces them with a new one from ca.
		setup func(t *testing.T, ca *certfiletest.CA) (certFile, keyFile string, rotate func() (certFile string))
	}{
		{"rename", func(t *testing.T, ca *certfiletest.CA) (string, string, func() string) {
			dir := t.TempDir()
			certFile, keyFile := ca.Issue(t, dir, "tls", "localhost")
			return certFile, keyFile, func() string {
				c, _ := ca.Issue(t, dir, "tls", "localhost")
				return c
			}
		}},
		{"symlink swap", func(t *testing.T, ca *certfiletest.CA) (string, string, func() string) {
			v, certFile, keyFile := newSecretVolume(t, ca, "localhost")
			return certFile, keyFile, func() string { return v.update(t, ca, "localhost") }
		}},
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			ca := certfiletest.NewCA(t)
			certFile, keyFile, rotate := l.setup(t, ca)
			clk, log := newClock(), newLogs()
			tlsCfg, err := certfile.Server(certfile.Config{
				CertFile: certFile, KeyFile: keyFile,
				CheckInterval: interval, Now: clk.Now, Logger: log.logger(),
			})
			if err != nil {
				t.Fatal(err)
			}
			url := serve(t, server.Config{Logger: log.logger()}, tlsCfg, ok)
			client := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}

			a := serialOf(t, certFile)
			held := transport(t, client) // keeps one connection open throughout
			if got := peerSerial(t, held, url); got != a {
				t.Fatalf("served %s, want A %s", got, a)
			}

			b := serialOf(t, rotate())
			clk.Advance(interval - time.Nanosecond)
			if got := peerSerial(t, transport(t, client), url); got != a {
				t.Errorf("new connection within the check interval got %s, want A %s still", got, a)
			}
			clk.Advance(time.Nanosecond)
			if got := peerSerial(t, transport(t, client), url); got != b {
				t.Errorf("new connection one check interval after the change got %s, want B %s", got, b)
			}
			if got := peerSerial(t, held, url); got != a {
				t.Errorf("the connection opened before the change got %s, want it kept, with A %s", got, a)
			}
			if n := len(log.matching("INFO", "reloaded certificate", "not_after")); n != 1 {
				t.Errorf("%d reload lines, want 1:\n%s", n, log.all())
			}

			// A writer caught half way through the certificate.
			resolved, err := filepath.EvalSymlinks(certFile)
			if err != nil {
				t.Fatal(err)
			}
			whole := read(t, resolved)
			write(t, resolved, whole[:len(whole)/2])
			for range 3 {
				clk.Advance(interval)
				if got := peerSerial(t, transport(t, client), url); got != b {
					t.Errorf("with a half-written certificate, got %s, want B %s kept", got, b)
				}
			}
			fails := log.matching("ERROR", "reload failed", certFile)
			if len(fails) != 1 {
				t.Errorf("%d lines for the failed reload, want 1 naming %s:\n%s", len(fails), certFile, log.all())
			}
			if strings.Contains(log.all(), "-----") {
				t.Errorf("the log quotes a file:\n%s", log.all())
			}

			c := serialOf(t, rotate())
			clk.Advance(interval)
			if got := peerSerial(t, transport(t, client), url); got != c {
				t.Errorf("after the broken file was replaced, got %s, want C %s", got, c)
			}
		})
	}
}

// TestMutualTLS: with ClientCAFile, a client is served only with a
// certificate from one of those CAs, and rotating the file changes which.
func TestMutualTLS(t *testing.T) {
	const interval = time.Second
	dir, clientsDir := t.TempDir(), t.TempDir()
	serverCA, ca1, ca2 := certfiletest.NewCA(t), certfiletest.NewCA(t), certfiletest.NewCA(t)
	certFile, keyFile := serverCA.Issue(t, dir, "server", "localhost")
	clientCAFile := ca1.Write(t, dir)
	clk, log := newClock(), newLogs()
	tlsCfg, err := certfile.Server(certfile.Config{
		CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCAFile,
		CheckInterval: interval, Now: clk.Now, Logger: log.logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("ClientAuth %v, want RequireAndVerifyClientCert", tlsCfg.ClientAuth)
	}
	var served atomic.Int64
	srvLog := newLogs()
	url := serve(t, server.Config{Logger: srvLog.logger()}, tlsCfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		ok(w, r)
	}))

	clientOf := func(ca *certfiletest.CA, name string) *tls.Config {
		c := &tls.Config{RootCAs: serverCA.Pool(), ServerName: "localhost"}
		if ca != nil {
			pair, err := tls.LoadX509KeyPair(ca.Issue(t, clientsDir, name))
			if err != nil {
				t.Fatal(err)
			}
			// Presented whatever CAs the server asks for, as
			// Certificates would not be.
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
		}
		return c
	}
	none, from1, from2 := clientOf(nil, ""), clientOf(ca1, "client1"), clientOf(ca2, "client2")

	tests := []struct {
		name   string
		client *tls.Config
		want   bool // served
		log    string
	}{
		{"no certificate", none, false, "didn't provide a certificate"},
		{"unknown CA", from2, false, "certificate signed by unknown authority"},
		{"good certificate", from1, true, ""},
		{"rotated: CA 2 now trusted", from2, true, ""},
		{"rotated: CA 1 no longer", from1, false, "certificate signed by unknown authority"},
	}
	for i, tt := range tests {
		if strings.HasPrefix(tt.name, "rotated") && i > 0 && !strings.HasPrefix(tests[i-1].name, "rotated") {
			ca2.Write(t, dir)
			clk.Advance(interval)
		}
		t.Run(tt.name, func(t *testing.T) {
			before := served.Load()
			resp, body, err := get(transport(t, tt.client), url)
			if !tt.want {
				if err == nil {
					t.Fatalf("served (status %d), want refused at the handshake", resp.StatusCode)
				}
				srvLog.wait(t, "TLS handshake error", tt.log)
				if served.Load() != before {
					t.Error("the handler ran")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := clientSerial(t, tt.client); body != want {
				t.Errorf("handler saw client certificate %s, want %s", body, want)
			}
		})
	}
	if n := len(log.matching("INFO", "reloaded ClientCAFile", clientCAFile)); n != 1 {
		t.Errorf("%d reload lines for ClientCAFile, want 1:\n%s", n, log.all())
	}
}

func clientSerial(t *testing.T, c *tls.Config) string {
	t.Helper()
	pair, err := c.GetClientCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf.SerialNumber.Text(16)
}

// TestClient: Client verifies servers by CAFile, reloaded, and presents
// its certificate, reloaded.
func TestClient(t *testing.T) {
	const interval = time.Second
	srvDir, dir := t.TempDir(), t.TempDir()
	ca, other := certfiletest.NewCA(t), certfiletest.NewCA(t)
	certFile, keyFile := ca.Issue(t, srvDir, "server", "localhost", "127.0.0.1")
	tlsCfg, err := certfile.Server(certfile.Config{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.Write(t, srvDir)})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, server.Config{Logger: newLogs().logger()}, tlsCfg, ok)

	clientCert, clientKey := ca.Issue(t, dir, "client")
	caFile := other.Write(t, dir) // the wrong CA, to begin with
	clk, log := newClock(), newLogs()
	cfg := certfile.Config{
		CertFile: clientCert, KeyFile: clientKey, CAFile: caFile,
		CheckInterval: interval, Now: clk.Now, Logger: log.logger(),
	}
	tc, err := certfile.Client(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc.ServerName = "localhost"
	call := func(tc *tls.Config) (string, error) {
		_, body, err := get(transport(t, tc), url)
		return body, err
	}

	if _, err := call(tc); err == nil || !strings.Contains(err.Error(), "certfile: verifying the server's certificate for localhost") {
		t.Errorf("with the wrong CAFile: %v, want the server refused", err)
	}
	ca.Write(t, dir)
	clk.Advance(interval)
	if body, err := call(tc); err != nil {
		t.Errorf("with the CAFile rotated to the right CA: %v", err)
	} else if want := serialOf(t, clientCert); body != want {
		t.Errorf("server saw client certificate %s, want %s", body, want)
	}

	clientCert, _ = ca.Issue(t, dir, "client")
	clk.Advance(interval)
	if body, err := call(tc); err != nil {
		t.Errorf("after the client certificate rotated: %v", err)
	} else if want := serialOf(t, clientCert); body != want {
		t.Errorf("after the client certificate rotated, server saw %s, want %s", body, want)
	}

	noName := tc.Clone()
	noName.ServerName = ""
	if _, err := call(noName); err == nil || !strings.Contains(err.Error(), "ServerName") {
		t.Errorf("to an IP address without ServerName: %v, want an error naming ServerName", err)
	}
	wrongName := tc.Clone()
	wrongName.ServerName = "elsewhere"
	if _, err := call(wrongName); err == nil || !strings.Contains(err.Error(), "elsewhere") {
		t.Errorf("with ServerName not in the certificate: %v, want refused", err)
	}
	noCert, err := certfile.Client(certfile.Config{CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	noCert.ServerName = "localhost"
	if _, err := call(noCert); err == nil {
		t.Error("without a client certificate: served, want refused")
	}
	systemRoots, err := certfile.Client(certfile.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call(systemRoots); err == nil {
		t.Error("with the system roots: the test CA was trusted")
	}
	if n := len(log.matching("INFO", "reloaded")); n != 2 {
		t.Errorf("%d reload lines, want 2 (CAFile, certificate):\n%s", n, log.all())
	}
}

// TestConcurrentRotation: handshakes from several clients succeed while
// the files rotate and the clock moves, and the last certificate written
// is served once they stop.
func TestConcurrentRotation(t *testing.T) {
	const interval, workers, conns, rotations = time.Second, 4, 10, 5
	ca := certfiletest.NewCA(t)
	v, certFile, keyFile := newSecretVolume(t, ca, "localhost")
	clk := newClock()
	tlsCfg, err := certfile.Server(certfile.Config{
		CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.Write(t, t.TempDir()),
		CheckInterval: interval, Now: clk.Now, Logger: newLogs().logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, server.Config{Logger: newLogs().logger()}, tlsCfg, ok)
	clientCert, clientKey := ca.Issue(t, t.TempDir(), "client")
	pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	client := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{pair}}

	var last string
	errs := make(chan error, workers)
	for range workers {
		go func() {
			var err error
			for range conns {
				tr := &http.Transport{TLSClientConfig: client.Clone()}
				_, _, err = get(tr, url)
				tr.CloseIdleConnections()
				if err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range rotations {
		last = serialOf(t, v.update(t, ca, "localhost"))
		clk.Advance(interval)
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := peerSerial(t, transport(t, client), url); got != last {
		t.Errorf("served %s after the rotations, want the last one written, %s", got, last)
	}
}
