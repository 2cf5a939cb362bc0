package service

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/certfile/certfiletest"
)

// TestTLSCertificateRotatedWhileServing replaces the public port's
// certificate files under a running service: new connections get the new
// certificate within the reload interval, over HTTP/2, and a connection
// opened before the rotation keeps working.
func TestTLSCertificateRotatedWhileServing(t *testing.T) {
	dir := t.TempDir()
	ca := certfiletest.NewCA(t)
	certFile, keyFile := ca.Issue(t, dir, "tls", "127.0.0.1")
	r := start(t, Options{TLSCertFile: certFile, TLSKeyFile: keyFile}, func(svc *Service) error {
		svc.HandleFunc("GET /hi", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hi") })
		return nil
	})
	base := strings.Replace(r.url, "http://", "https://", 1)
	newClient := func() *http.Client {
		return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.Pool()},
			ForceAttemptHTTP2: true,
		}}
	}
	serial := func(c *http.Client) string {
		t.Helper()
		resp, err := c.Get(base + "/hi")
		if err != nil {
			t.Fatalf("GET /hi over TLS: %v", err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /hi over TLS: %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	kept := newClient()
	defer kept.CloseIdleConnections()
	before := serial(kept)

	ca.Issue(t, dir, "tls", "127.0.0.1") // rotates both files
	until := time.Now().Add(60 * time.Second)
	for {
		c := newClient()
		after := serial(c)
		c.CloseIdleConnections()
		if after != before {
			break
		}
		if time.Now().After(until) {
			t.Fatal("new connections still get the old certificate a minute after the rotation")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := serial(kept); got != before {
		t.Errorf("the connection opened before the rotation now shows certificate %s; it should have kept its handshake's", got)
	}
	plain, err := http.Get(r.url + "/hi")
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on a TLS port")
		}
	}
}

// TestMutualTLSBetweenServices: a service that demands client
// certificates serves a caller whose upstream presents one, balanced to
// its address with the Service name checked, and refuses one that does
// not.
func TestMutualTLSBetweenServices(t *testing.T) {
	dir := t.TempDir()
	ca := certfiletest.NewCA(t)
	caFile := ca.Write(t, dir)
	backCert, backKey := ca.Issue(t, dir, "back", "back")
	frontCert, frontKey := ca.Issue(t, dir, "front", "front")
	back := start(t, Options{PodName: "back-0", TLSCertFile: backCert, TLSKeyFile: backKey, TLSClientCAFile: caFile}, func(svc *Service) error {
		svc.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "pong to "+r.TLS.PeerCertificates[0].Subject.CommonName)
		})
		return nil
	})
	addr := strings.TrimPrefix(back.url, "http://")
	front := start(t, Options{PodName: "front-0", UpstreamCAFile: caFile, UpstreamCertFile: frontCert, UpstreamKeyFile: frontKey}, func(svc *Service) error {
		up, err := svc.Upstream(UpstreamConfig{Name: "back", Target: addr})
		if err != nil {
			return err
		}
		if up.BaseURL != "https://back" {
			t.Errorf("BaseURL = %q, want https://back", up.BaseURL)
		}
		svc.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
			resp, err := up.Get(r.Context(), "/ping")
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			io.Copy(w, resp.Body)
		})
		return nil
	})
	if got := get(t, http.DefaultClient, front.url+"/hello", nil); got.code != 200 || got.body != "pong to front" {
		t.Fatalf("front → back over mTLS: %d %q", got.code, got.body)
	}
	anonymous := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "back"}}}
	if resp, err := anonymous.Get("https://" + addr + "/ping"); err == nil {
		resp.Body.Close()
		t.Fatalf("a caller without a client certificate got %d", resp.StatusCode)
	}
}
