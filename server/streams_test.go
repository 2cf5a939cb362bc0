package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/server"
)

// TestMaxStreams holds handlers open over h2c with MaxStreams 1: a second
// stream on a connection already served is turned away with 503 and
// Retry-After, while a connection's first stream is served whatever the
// others hold, so a client that does not multiplex is never turned away
// for another's streams.
func TestMaxStreams(t *testing.T) {
	release := make(chan struct{})
	closed := make(chan string, 8)
	srv := server.New(server.Config{H2C: true, MaxStreams: 1, OnClose: func(reason string) {
		select {
		case closed <- reason:
		default:
		}
	}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-release
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	defer close(release)
	url := "http://" + ln.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Each transport is one connection (MaxConnsPerHost 1).
	conn := func() *http.Transport {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protos, MaxConnsPerHost: 1}
		t.Cleanup(tr.CloseIdleConnections)
		return tr
	}
	get := func(tr *http.Transport) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	a, b := conn(), conn()
	tests := []struct {
		name      string
		tr        *http.Transport
		want      int
		wantRetry bool
	}{
		{"first stream of the first connection", a, http.StatusOK, false},
		{"second stream of the first connection, past the limit", a, http.StatusServiceUnavailable, true},
		{"first stream of another connection", b, http.StatusOK, false},
	}
	for _, tt := range tests {
		resp := get(tt.tr)
		if resp.StatusCode != tt.want || (resp.Header.Get("Retry-After") != "") != tt.wantRetry {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
			t.Errorf("%s: status %d, Retry-After %q (%s); want %d, Retry-After set %v",
				tt.name, resp.StatusCode, resp.Header.Get("Retry-After"), body, tt.want, tt.wantRetry)
		}
	}
	// A connection that keeps opening streams past the limit is closed
	// once most of its streams were turned away.
	for i := 0; i < 40; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := a.RoundTrip(req)
		if err != nil {
			break // closed
		}
		resp.Body.Close()
	}
	// The server reports the close just after making it.
	select {
	case reason := <-closed:
		if reason != server.CloseStreams {
			t.Errorf("closed for %q, want %q", reason, server.CloseStreams)
		}
	case <-ctx.Done():
		t.Errorf("the connection was not closed for its refused streams")
	}
}
