package certfile_test

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/shoal-dev/shoal/certfile"
	"github.com/shoal-dev/shoal/certfile/certfiletest"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/server"
)

// tlsPair returns a server and a client tls.Config from certfile, for
// localhost, with mTLS or without.
func tlsPair(t *testing.T, mtls bool) (srv, cli *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	ca := certfiletest.NewCA(t)
	certFile, keyFile := ca.Issue(t, dir, "server", "localhost")
	scfg := certfile.Config{CertFile: certFile, KeyFile: keyFile, Logger: newLogs().logger()}
	ccfg := certfile.Config{CAFile: ca.Write(t, dir), Logger: newLogs().logger()}
	if mtls {
		scfg.ClientCAFile = ccfg.CAFile
		ccfg.CertFile, ccfg.KeyFile = ca.Issue(t, dir, "client")
	}
	srv, err := certfile.Server(scfg)
	if err != nil {
		t.Fatal(err)
	}
	cli, err = certfile.Client(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cli.ServerName = "localhost"
	return srv, cli
}

// TestProtocols: server.New on tls.NewListener serves HTTP/2 and HTTP/1.1
// over TLS, chosen by ALPN, with mTLS and without.
func TestProtocols(t *testing.T) {
	h1 := new(http.Protocols)
	h1.SetHTTP1(true)
	tests := []struct {
		name      string
		transport func(tc *tls.Config) *http.Transport
		wantMajor int
		wantALPN  string
	}{
		{"client.NewTransport", func(tc *tls.Config) *http.Transport {
			return client.NewTransport(client.Config{TLSClientConfig: tc})
		}, 2, "h2"},
		{"ALPN http/1.1", func(tc *tls.Config) *http.Transport {
			tc.NextProtos = []string{"http/1.1"}
			return &http.Transport{TLSClientConfig: tc, Protocols: h1}
		}, 1, "http/1.1"},
		{"no ALPN", func(tc *tls.Config) *http.Transport {
			return &http.Transport{TLSClientConfig: tc, Protocols: h1}
		}, 1, ""},
	}
	for _, mtls := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			if mtls {
				name += " mTLS"
			}
			t.Run(name, func(t *testing.T) {
				srvTLS, cliTLS := tlsPair(t, mtls)
				url := serve(t, server.Config{}, srvTLS, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Write([]byte(r.Proto))
				}))
				tr := tt.transport(cliTLS)
				defer tr.CloseIdleConnections()
				resp, body, err := get(tr, url)
				if err != nil {
					t.Fatal(err)
				}
				if resp.ProtoMajor != tt.wantMajor || resp.TLS.NegotiatedProtocol != tt.wantALPN {
					t.Errorf("response over HTTP/%d, ALPN %q; want HTTP/%d, %q", resp.ProtoMajor, resp.TLS.NegotiatedProtocol, tt.wantMajor, tt.wantALPN)
				}
				if want := resp.Proto; body != want {
					t.Errorf("handler saw %s, want %s", body, want)
				}
			})
		}
	}
}

// TestConnAgeOverTLS: keep-alive rebalancing still tells clients to
// reconnect over TLS: Connection: close on HTTP/1.1, GOAWAY on HTTP/2.
func TestConnAgeOverTLS(t *testing.T) {
	aged := server.Config{MaxConnAge: time.Nanosecond, MaxConnAgeJitter: -1} // every response is past the age
	t.Run("HTTP/1.1", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			cfg  server.Config
			want bool
		}{{"young", server.Config{}, false}, {"aged", aged, true}} {
			t.Run(tt.name, func(t *testing.T) {
				srvTLS, cliTLS := tlsPair(t, true)
				url := serve(t, tt.cfg, srvTLS, ok)
				h1 := new(http.Protocols)
				h1.SetHTTP1(true)
				tr := &http.Transport{TLSClientConfig: cliTLS, Protocols: h1}
				defer tr.CloseIdleConnections()
				resp, _, err := get(tr, url)
				if err != nil {
					t.Fatal(err)
				}
				if resp.ProtoMajor != 1 || resp.Close != tt.want {
					t.Errorf("HTTP/%d response, Close %v; want HTTP/1, Close %v", resp.ProtoMajor, resp.Close, tt.want)
				}
			})
		}
	})
	t.Run("HTTP/2", func(t *testing.T) {
		srvTLS, cliTLS := tlsPair(t, true)
		url := serve(t, aged, srvTLS, ok)
		cliTLS.NextProtos = []string{"h2"}
		conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), cliTLS)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("ALPN %q, want h2", p)
		}
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(conn, conn)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		var hbuf bytes.Buffer
		enc := hpack.NewEncoder(&hbuf)
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", "/"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		dec := hpack.NewDecoder(4096, nil)
		status := ""
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("reading frames (status %q so far): %v", status, err)
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.HeadersFrame:
				fields, err := dec.DecodeFull(f.HeaderBlockFragment())
				if err != nil {
					t.Fatal(err)
				}
				for _, hf := range fields {
					if hf.Name == ":status" {
						status = hf.Value
					}
				}
			case *http2.GoAwayFrame:
				if f.ErrCode != http2.ErrCodeNo || f.LastStreamID != 1 {
					t.Errorf("GOAWAY %v last stream %d, want NO_ERROR and 1", f.ErrCode, f.LastStreamID)
				}
				if status != "" && status != "200" {
					t.Errorf("status %s, want 200", status)
				}
				return
			}
		}
	})
}
