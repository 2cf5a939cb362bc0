package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// served is what the test handler saw of one request.
type served struct {
	conn     int64
	accepted time.Time
	at       time.Time
	closing  bool // the response asks the client to reconnect
	proto    int
}

type connInfoKey struct{}

type connInfo struct {
	id       int64
	accepted time.Time
}

// recorder serves srv on loopback and records, per request, which
// connection carried it.
type recorder struct {
	mu     sync.Mutex
	log    []served
	nextID atomic.Int64
	url    string
}

func serve(t *testing.T, cfg server.Config) *recorder {
	t.Helper()
	rec := &recorder{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ci := r.Context().Value(connInfoKey{}).(connInfo)
		rec.mu.Lock()
		rec.log = append(rec.log, served{
			conn: ci.id, accepted: ci.accepted, at: time.Now(),
			closing: w.Header().Get("Connection") == "close", proto: r.ProtoMajor,
		})
		rec.mu.Unlock()
		io.WriteString(w, "ok")
	})
	srv := server.New(cfg, h)
	base := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		// Recorded before the server's own ConnContext, so an age measured
		// from here is never shorter than the one the server measures.
		ci := connInfo{id: rec.nextID.Add(1), accepted: time.Now()}
		if base != nil {
			ctx = base(ctx, c)
		}
		return context.WithValue(ctx, connInfoKey{}, ci)
	}
	rec.url = "http://" + serveOn(t, srv)
	return rec
}

// serveOn serves srv on a loopback port until the test ends, then shuts
// it down, and returns its address.
func serveOn(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
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
	return ln.Addr().String()
}

func (r *recorder) snapshot() []served {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]served(nil), r.log...)
}

func newClient(t *testing.T, h2c bool) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	if h2c {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = &p
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %s", url, resp.Status)
	}
}

// pool runs workers that each send requests back to back on one shared
// keep-alive client until stop returns true or each has sent max.
func pool(t *testing.T, c *http.Client, url string, workers, max int, stop func() bool) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := 0; i < max && !stop() && !t.Failed(); i++ {
				get(t, c, url)
			}
		})
	}
	wg.Wait()
}

func perConn(log []served) map[int64]int {
	n := map[int64]int{}
	for _, s := range log {
		n[s.conn]++
	}
	return n
}

func TestMaxConnRequests(t *testing.T) {
	const workers, perWorker = 4, 30
	tests := []struct {
		name        string
		h2c         bool
		maxRequests int
		// wantMaxPerConn bounds the requests one connection carries. On
		// HTTP/2 the streams already open when GOAWAY goes out still
		// complete, so a connection shared by all workers may carry up to
		// workers-1 more.
		wantMaxPerConn int
		wantMinConns   int
	}{
		{"http1 unlimited", false, 0, workers * perWorker, 1},
		{"http1 limit 5", false, 5, 5, workers * perWorker / 5},
		{"h2c unlimited", true, 0, workers * perWorker, 1},
		{"h2c limit 5", true, 5, 5 + workers - 1, workers * perWorker / (5 + workers - 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, server.Config{H2C: tt.h2c, MaxConnRequests: tt.maxRequests})
			pool(t, newClient(t, tt.h2c), rec.url, workers, perWorker, func() bool { return false })
			log := rec.snapshot()
			if len(log) != workers*perWorker {
				t.Fatalf("served %d requests, want %d", len(log), workers*perWorker)
			}
			conns := perConn(log)
			for id, n := range conns {
				if n > tt.wantMaxPerConn {
					t.Errorf("connection %d carried %d requests, want at most %d", id, n, tt.wantMaxPerConn)
				}
			}
			if len(conns) < tt.wantMinConns {
				t.Errorf("%d connections, want at least %d", len(conns), tt.wantMinConns)
			}
			// Without a limit connections are reused: about one per worker.
			// Go's transport can dial a new one while a worker's finished
			// connection is on its way back to the idle pool, so a loaded
			// machine sees a few more, never one per request.
			if tt.maxRequests == 0 && len(conns) > 2*workers {
				t.Errorf("%d connections without a limit, want at most %d (about one per worker)", len(conns), 2*workers)
			}
			for _, s := range log {
				if want := map[bool]int{true: 2, false: 1}[tt.h2c]; s.proto != want {
					t.Fatalf("request served over HTTP/%d, want HTTP/%d", s.proto, want)
				}
			}
			if !tt.h2c && tt.maxRequests > 0 {
				// HTTP/1.1 is exact: every connection's last request, and only
				// that one, asks to close.
				seen := map[int64]int{}
				for _, s := range log {
					seen[s.conn]++
					if s.closing != (seen[s.conn] == tt.maxRequests) {
						t.Fatalf("connection %d request %d: closing=%v", s.conn, seen[s.conn], s.closing)
					}
				}
			}
		})
	}
}

func TestMaxConnAge(t *testing.T) {
	const age, jitter, workers = 300 * time.Millisecond, 0.1, 4
	for _, h2c := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2c=%v", h2c), func(t *testing.T) {
			rec := serve(t, server.Config{H2C: h2c, MaxConnAge: age, MaxConnAgeJitter: jitter})
			deadline := time.Now().Add(20 * time.Second)
			// Run until the pool has moved past its first connections twice
			// over; bounded by count and deadline.
			pool(t, newClient(t, h2c), rec.url, workers, 20000, func() bool {
				return len(perConn(rec.snapshot())) >= 2*workers+2 || time.Now().After(deadline)
			})
			log := rec.snapshot()
			conns := perConn(log)
			if len(conns) < 2*workers+2 {
				t.Fatalf("%d connections over %d requests, want the pool to reconnect after %s", len(conns), len(log), age)
			}
			minAge := time.Duration(float64(age) * (1 - jitter))
			closings := 0
			for _, s := range log {
				if !s.closing {
					continue
				}
				closings++
				if got := s.at.Sub(s.accepted); got < minAge {
					t.Errorf("connection %d told to close at age %s, before %s", s.conn, got, minAge)
				}
			}
			if closings == 0 {
				t.Error("no response asked the client to reconnect")
			}
		})
	}
}

func TestH2C(t *testing.T) {
	tests := []struct {
		name     string
		h2c      bool
		client   string
		wantErr  bool
		wantProt int
	}{
		{"h2c server, HTTP/1.1 client", true, "h1", false, 1},
		{"h2c server, prior-knowledge HTTP/2 client", true, "h2c", false, 2},
		{"HTTP/1.1 server, HTTP/1.1 client", false, "h1", false, 1},
		{"HTTP/1.1 server, prior-knowledge HTTP/2 client", false, "h2c", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, server.Config{H2C: tt.h2c})
			c := newClient(t, tt.client == "h2c")
			resp, err := c.Get(rec.url)
			if tt.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("GET succeeded over HTTP/%d, want an error", resp.ProtoMajor)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != tt.wantProt {
				t.Errorf("response over HTTP/%d, want HTTP/%d", resp.ProtoMajor, tt.wantProt)
			}
		})
	}
}

func TestMaxBodyBytes(t *testing.T) {
	tests := []struct {
		name     string
		limit    int64
		body     int
		wantCode int
	}{
		{"under limit", 1024, 1000, http.StatusOK},
		{"at limit", 1024, 1024, http.StatusOK},
		{"over limit", 1024, 1025, http.StatusRequestEntityTooLarge},
		{"default limit", 0, 1 << 20, http.StatusOK},
		{"no limit", -1, server.DefaultMaxBodyBytes + 1, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server.New(server.Config{MaxBodyBytes: tt.limit}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, err := io.Copy(io.Discard, r.Body)
				if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
					http.Error(w, fmt.Sprintf("body over %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge)
					return
				}
				fmt.Fprint(w, n)
			}))
			w := httptest.NewRecorder()
			srv.Handler.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(make([]byte, tt.body))))
			if w.Code != tt.wantCode {
				t.Fatalf("code %d (%s), want %d", w.Code, w.Body, tt.wantCode)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	tests := []struct {
		name string
		cfg  server.Config
		want *http.Server
	}{
		{"zero value", server.Config{}, &http.Server{
			ReadHeaderTimeout: server.DefaultReadHeaderTimeout, ReadTimeout: server.DefaultReadTimeout,
			WriteTimeout: server.DefaultWriteTimeout, IdleTimeout: server.DefaultIdleTimeout,
			MaxHeaderBytes: server.DefaultMaxHeaderBytes,
		}},
		{"explicit", server.Config{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second,
			WriteTimeout: 3 * time.Second, IdleTimeout: 4 * time.Second, MaxHeaderBytes: 5}, &http.Server{
			ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second,
			WriteTimeout: 3 * time.Second, IdleTimeout: 4 * time.Second, MaxHeaderBytes: 5,
		}},
		{"negative disables", server.Config{ReadHeaderTimeout: -1, ReadTimeout: -1, WriteTimeout: -1, IdleTimeout: -1},
			&http.Server{MaxHeaderBytes: server.DefaultMaxHeaderBytes}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server.New(tt.cfg, nil)
			got := [5]any{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes}
			want := [5]any{tt.want.ReadHeaderTimeout, tt.want.ReadTimeout, tt.want.WriteTimeout, tt.want.IdleTimeout, tt.want.MaxHeaderBytes}
			if got != want {
				t.Errorf("got %v, want %v", got, want)
			}
			if srv.ErrorLog == nil || srv.Protocols == nil || !srv.Protocols.HTTP1() {
				t.Errorf("ErrorLog %v, Protocols %v: want both set, HTTP/1 on", srv.ErrorLog, srv.Protocols)
			}
			// The connection count limit (on by default) reads each
			// connection's state from its context.
			if srv.ConnContext == nil || srv.ConnState == nil {
				t.Error("ConnContext or ConnState not set under the default connection count limit")
			}
		})
	}
	if srv := server.New(server.Config{MaxConns: -1}, nil); srv.ConnContext != nil || srv.ConnState != nil {
		t.Error("ConnContext or ConnState set without any connection limit")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     server.Config
		wantErr string
	}{
		{"zero", server.Config{}, ""},
		{"full", server.Config{MaxConnAge: time.Minute, MaxConnAgeJitter: 0.5, MaxConnRequests: 100}, ""},
		{"jitter over 1", server.Config{MaxConnAgeJitter: 1.5}, "MaxConnAgeJitter"},
		{"negative age", server.Config{MaxConnAge: -time.Second}, "MaxConnAge"},
		{"negative requests", server.Config{MaxConnRequests: -1}, "MaxConnRequests"},
		{"negative header bytes", server.Config{MaxHeaderBytes: -1}, "MaxHeaderBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "server: ") {
				t.Fatalf("Validate: %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestServedBy(t *testing.T) {
	tests := []struct {
		name string
		h    http.HandlerFunc
		code int
	}{
		{"ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") }, 200},
		{"http.Error", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusTeapot) }, http.StatusTeapot},
		{"no body", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }, http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			server.ServedBy("pod-7", tt.h).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			if w.Code != tt.code || w.Header().Get("X-Served-By") != "pod-7" {
				t.Fatalf("code %d X-Served-By %q, want %d pod-7", w.Code, w.Header().Get("X-Served-By"), tt.code)
			}
		})
	}
}
