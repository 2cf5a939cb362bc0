package service

// The adversary's tests: hostile callers, hostile upstreams and hostile
// files against a running Service, over real sockets on loopback. Each
// load is bounded in count and time, and each wait is on a condition.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/certfile/certfiletest"
	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/deadline"
	"github.com/shoal-dev/shoal/healthtest"
	"github.com/shoal-dev/shoal/metricstest"
	"github.com/shoal-dev/shoal/requestlog"
)

// raw sends the bytes of one hand-written request on a fresh connection
// and reads one response; err is the connection's or the parse's.
func raw(addr, request string) (*http.Response, string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func hostOf(url string) string {
	return strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
}

// waitUntil polls cond every few milliseconds until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	until := time.Now().Add(d)
	for !cond() {
		if time.Now().After(until) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAttackRequestIDHeader sends hostile X-Request-ID headers, byte for
// byte, to a service whose route calls an upstream. Whatever the header,
// the answer, the log line and the upstream all see one ID, valid by
// requestlog's rules, and the caller's only when it was valid; nothing
// the caller sent becomes a second header or a second log field.
func TestAttackRequestIDHeader(t *testing.T) {
	type seen struct{ ids []string }
	var mu sync.Mutex
	var upstream []seen
	back := start(t, Options{PodName: "back-0"}, func(svc *Service) error {
		svc.HandleFunc("GET /echo", func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			upstream = append(upstream, seen{ids: r.Header.Values(requestlog.HeaderID)})
			mu.Unlock()
			io.WriteString(w, "ok")
		})
		return nil
	})
	front := start(t, Options{PodName: "front-0"}, func(svc *Service) error {
		up, err := svc.Upstream(UpstreamConfig{Name: "back", Target: hostOf(back.url)})
		if err != nil {
			return err
		}
		svc.HandleFunc("GET /fwd", func(w http.ResponseWriter, r *http.Request) {
			req, err := up.NewRequest(r.Context(), http.MethodGet, "/echo", nil)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			// A handler that forwards the caller's headers wholesale, as
			// proxies do: the ID middleware must already have cleaned them.
			for k, v := range r.Header {
				req.Header[k] = v
			}
			resp, err := up.Do(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
		})
		return nil
	})
	valid := func(id string) bool {
		if id == "" || len(id) > 128 {
			return false
		}
		for i := 0; i < len(id); i++ {
			if id[i] <= ' ' || id[i] > '~' {
				return false
			}
		}
		return true
	}
	tests := []struct {
		name    string
		headers string // raw header lines, CRLF-terminated
		code    int    // 0: 200 and the ID rules checked
		keep    string // the ID that must be kept; "" means a fresh one
	}{
		{"valid", "X-Request-ID: abc-123\r\n", 0, "abc-123"},
		{"JSON breaker", "X-Request-ID: \"},\"admin\":true,\"x\":{\"\r\n", 0, "\"},\"admin\":true,\"x\":{\""},
		{"128 bytes", "X-Request-ID: " + strings.Repeat("a", 128) + "\r\n", 0, strings.Repeat("a", 128)},
		{"129 bytes", "X-Request-ID: " + strings.Repeat("a", 129) + "\r\n", 0, ""},
		{"inner space", "X-Request-ID: a b\r\n", 0, ""},
		{"tab", "X-Request-ID: a\tb\r\n", 0, ""},
		{"UTF-8", "X-Request-ID: caf\xc3\xa9\r\n", 0, ""},
		{"high bytes", "X-Request-ID: \xff\xfe\x80\r\n", 0, ""},
		{"DEL", "X-Request-ID: a\x7fb\r\n", http.StatusBadRequest, ""},
		{"escape sequence", "X-Request-ID: \x1b[31mred\r\n", http.StatusBadRequest, ""},
		{"two headers", "X-Request-ID: one\r\nX-Request-ID: two\r\n", 0, ""},
		{"lower-case twice", "x-request-id: one\r\nX-REQUEST-ID: two\r\n", 0, ""},
		{"empty", "X-Request-ID: \r\n", 0, ""},
		{"CRLF splits into a second header", "X-Request-ID: x\r\nX-Injected: yes\r\n", 0, "x"},
		{"bare LF", "X-Request-ID: x\nX-Injected-LF: yes\r\n", 0, "x"},
		{"NUL", "X-Request-ID: a\x00b\r\n", http.StatusBadRequest, ""},
		{"bare CR", "X-Request-ID: a\rX-Injected-CR: yes\r\n", http.StatusBadRequest, ""},
		{"obs-fold", "X-Request-ID: a\r\n X-Injected-Fold: yes\r\n", 0, ""},
		{"1 MB", "X-Request-ID: " + strings.Repeat("a", 1<<20) + "\r\n", http.StatusRequestHeaderFieldsTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			upstream = nil
			mu.Unlock()
			before := len(front.logs.lines(t, "request"))
			resp, body, err := raw(hostOf(front.url), "GET /fwd HTTP/1.1\r\nHost: front\r\n"+tt.headers+"Connection: close\r\n\r\n")
			if tt.code != 0 {
				// net/http refuses the request before any handler: no
				// ID, no line, but an answer and a process still serving.
				if err != nil || resp.StatusCode != tt.code {
					t.Fatalf("got %v %v, want %d", resp, err, tt.code)
				}
				if n := len(front.logs.lines(t, "request")); n != before {
					t.Errorf("%d request lines for a request net/http refused", n-before)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d %q", resp.StatusCode, body)
			}
			got := resp.Header.Values(requestlog.HeaderID)
			if len(got) != 1 || !valid(got[0]) {
				t.Fatalf("answer's X-Request-ID = %q, want one valid ID", got)
			}
			id := got[0]
			if tt.keep != "" && id != tt.keep {
				t.Errorf("ID %q, want the caller's %q kept", id, tt.keep)
			}
			if tt.keep == "" && (strings.Contains(tt.headers, id) || len(id) != 32) {
				t.Errorf("ID %q, want a fresh 32-hex ID", id)
			}
			mu.Lock()
			ups := upstream
			mu.Unlock()
			if len(ups) != 1 || len(ups[0].ids) != 1 || ups[0].ids[0] != id {
				t.Errorf("upstream saw X-Request-ID %v, want exactly [%s]", ups, id)
			}
			var lines []map[string]any
			waitUntil(t, 10*time.Second, "no request line", func() bool {
				lines = front.logs.lines(t, "request")
				return len(lines) > before
			})
			line := lines[len(lines)-1]
			if line["request_id"] != id {
				t.Errorf("log line request_id = %v, want %q", line["request_id"], id)
			}
			if _, ok := line["admin"]; ok {
				t.Errorf("the caller's ID added a field to the log line: %v", line)
			}
		})
	}
	// No line in either service's log was broken by a hostile byte.
	for _, r := range []*running{front, back} {
		for _, l := range strings.Split(strings.TrimSpace(r.logs.String()), "\n") {
			if strings.ContainsAny(l, "\r\x1b\x00") {
				t.Errorf("a log line holds a raw control byte: %q", l)
			}
		}
		r.logs.lines(t, "") // every line is JSON
	}
}

// TestAttackDeadlineHeader abuses X-Request-Timeout-Ms. A value that is
// not one whole number of milliseconds up to 24h is ignored and the
// route's deadline holds; a valid one shortens it, down to 0, which ends
// the context before the handler starts: a handler that respects its
// context answers at once, and an upstream call made for it never leaves.
// The upstream never sees more time than the route had, nor the caller's
// raw values.
func TestAttackDeadlineHeader(t *testing.T) {
	const route = 500 * time.Millisecond
	var mu sync.Mutex
	upstream := map[string][][]string{} // by request ID
	back := start(t, Options{PodName: "back-0"}, func(svc *Service) error {
		svc.HandleFunc("GET /echo", func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			id := r.Header.Get(requestlog.HeaderID)
			upstream[id] = append(upstream[id], r.Header.Values(deadline.Header))
			mu.Unlock()
			io.WriteString(w, "ok")
		})
		return nil
	})
	front := start(t, Options{PodName: "front-0"}, func(svc *Service) error {
		up, err := svc.Upstream(UpstreamConfig{Name: "back", Target: hostOf(back.url)})
		if err != nil {
			return err
		}
		// A handler that respects its context: it calls the upstream,
		// then waits for its deadline and says so.
		svc.Handle("GET /work", WithTimeout(route, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, _ := up.NewRequest(r.Context(), http.MethodGet, "/echo", nil)
			for k, v := range r.Header { // forwarded wholesale, the caller's deadline header too
				req.Header[k] = v
			}
			resp, err := up.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			<-r.Context().Done()
			http.Error(w, "deadline", http.StatusGatewayTimeout)
		})))
		return nil
	})
	many := strings.Repeat(deadline.Header+": 1\r\n", 1000)
	tests := []struct {
		name     string
		headers  string
		min, max time.Duration // the answer's time; max is the deadline, before slack
		calls    int           // upstream calls that leave
	}{
		{"none", "", route, route, 1},
		{"zero", deadline.Header + ": 0\r\n", 0, 0, 0},
		{"zeros", deadline.Header + ": 0000000000\r\n", 0, 0, 0},
		{"short", deadline.Header + ": 100\r\n", 100 * time.Millisecond, 100 * time.Millisecond, 1},
		{"negative", deadline.Header + ": -5\r\n", route, route, 1},
		{"plus", deadline.Header + ": +5\r\n", route, route, 1},
		{"hex", deadline.Header + ": 0x10\r\n", route, route, 1},
		{"float", deadline.Header + ": 1e2\r\n", route, route, 1},
		{"words", deadline.Header + ": soon\r\n", route, route, 1},
		{"spaces", deadline.Header + ":    50   \r\n", 50 * time.Millisecond, 50 * time.Millisecond, 1},
		{"inner space", deadline.Header + ": 5 0\r\n", route, route, 1},
		{"over 24h", deadline.Header + ": 86400001\r\n", route, route, 1},
		{"int64 overflow", deadline.Header + ": 99999999999999999999999\r\n", route, route, 1},
		{"longer than route", deadline.Header + ": 60000\r\n", route, route, 1},
		{"two values", deadline.Header + ": 50\r\n" + deadline.Header + ": 60\r\n", route, route, 1},
		{"comma list", deadline.Header + ": 50,60\r\n", route, route, 1},
		{"1000 copies", many, route, route, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := "deadline-" + strconv.Itoa(i)
			began := time.Now()
			resp, body, err := raw(hostOf(front.url), "GET /work HTTP/1.1\r\nHost: front\r\nX-Request-ID: "+id+"\r\n"+tt.headers+"Connection: close\r\n\r\n")
			took := time.Since(began)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusGatewayTimeout {
				t.Fatalf("status %d %q, want 504 from the handler", resp.StatusCode, body)
			}
			if took < tt.min || took > tt.max+2*time.Second {
				t.Errorf("answered after %v, want within [%v, %v + 2s slack]", took, tt.min, tt.max)
			}
			mu.Lock()
			ups := upstream[id]
			mu.Unlock()
			if len(ups) != tt.calls {
				t.Fatalf("%d upstream calls, want %d", len(ups), tt.calls)
			}
			for _, vals := range ups {
				if len(vals) != 1 {
					t.Fatalf("upstream saw %s %q, want one value", deadline.Header, vals)
				}
				ms, err := strconv.Atoi(vals[0])
				if err != nil || ms < 1 || time.Duration(ms)*time.Millisecond > tt.max {
					t.Errorf("upstream saw %s %q, want 1..%d", deadline.Header, vals[0], tt.max.Milliseconds())
				}
			}
		})
	}
}

// TestAttackPanicFlood: 200 requests panic at once, with the load shedder
// on as Options{} has it. Each is answered: 500 if its handler ran and
// panicked, else 503 from the shedder (with Retry-After), which the
// panics must not have wedged; every 5xx is logged, every panic counted;
// the service answers the next request; the goroutines the flood made
// are gone afterwards.
func TestAttackPanicFlood(t *testing.T) {
	const n = 200
	r := start(t, Options{PodName: "panic-0"}, func(svc *Service) error {
		svc.HandleFunc("GET /boom", func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("X-Half", "set")
			panic(fmt.Sprintf("kaboom %s", req.URL.Query().Get("i")))
		})
		svc.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
		return nil
	})
	tr := &http.Transport{MaxIdleConnsPerHost: n}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	get(t, c, r.url+"/ok", nil)
	tr.CloseIdleConnections()
	base := runtime.NumGoroutine()

	flood := func() (panicked, shed int) {
		var wg sync.WaitGroup
		codes := make(chan int, n)
		for i := range n {
			wg.Go(func() {
				resp, err := c.Get(r.url + "/boom?i=" + strconv.Itoa(i))
				if err != nil {
					codes <- 0
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
					codes <- -1
					return
				}
				codes <- resp.StatusCode
			})
		}
		wg.Wait()
		close(codes)
		for code := range codes {
			switch code {
			case http.StatusInternalServerError:
				panicked++
			case http.StatusServiceUnavailable:
				shed++
			default:
				t.Fatalf("a request to a panicking handler got %d, want 500 or a shed 503", code)
			}
		}
		return panicked, shed
	}
	// Twice: slots a panic failed to give back would shed the second.
	p1, s1 := flood()
	p2, s2 := flood()
	t.Logf("%d panicked and %d shed, then %d and %d", p1, s1, p2, s2)
	if p2 == 0 {
		t.Fatal("after one flood of panics, every request of the next is shed")
	}
	panicked := p1 + p2
	if got := get(t, c, r.url+"/ok", nil); got.code != 200 {
		t.Fatalf("after the flood: %d", got.code)
	}
	if v := metricstest.Value(t, r.svc.Registry, "http_handler_panics_total"); v != float64(panicked) {
		t.Errorf("http_handler_panics_total = %v, want %d", v, panicked)
	}
	waitUntil(t, 10*time.Second, "not every 5xx has a request line", func() bool {
		k := 0
		for _, l := range r.logs.lines(t, "request") {
			if l["status"] == float64(500) || l["status"] == float64(503) {
				k++
			}
		}
		return k == 2*n
	})
	tr.CloseIdleConnections()
	// The server's connection goroutines end once the client's
	// connections close.
	var now int
	waitUntil(t, 20*time.Second, "goroutines did not return to the baseline", func() bool {
		now = runtime.NumGoroutine()
		return now <= base+2
	})
	t.Logf("goroutines: %d before the flood, %d after", base, now)
}

// TestAttackPanicAnswerDescribesItself: a handler that set the headers
// of the answer it meant to give (caching, encoding, a cookie, a
// redirect) and then panicked. The 500 must not carry them: a 500 with
// "Cache-Control: public, max-age=86400" is stored by shared caches and
// served for a day; one with "Content-Encoding: gzip" and a plain-text
// body cannot be read. The kit's own headers and the caller's
// middleware's CORS header stay.
func TestAttackPanicAnswerDescribesItself(t *testing.T) {
	r := start(t, Options{PodName: "panic-0"}, func(svc *Service) error {
		svc.Use(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Access-Control-Allow-Origin", "*")
				next.ServeHTTP(w, r)
			})
		})
		svc.HandleFunc("GET /boom", func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h.Set("Cache-Control", "public, max-age=86400")
			h.Set("Expires", time.Now().Add(24*time.Hour).UTC().Format(http.TimeFormat))
			h.Set("ETag", `"v1"`)
			h.Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
			h.Set("Content-Encoding", "gzip")
			h.Set("Content-Length", "1234")
			h.Set("Content-Disposition", `attachment; filename="report.pdf"`)
			h.Set("Set-Cookie", "session=half-made")
			h.Set("Location", "/elsewhere")
			panic("after the headers")
		})
		return nil
	})
	c := &http.Client{Timeout: 20 * time.Second} // asks for gzip, and decodes it
	resp, err := c.Get(r.url + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusInternalServerError || strings.TrimSpace(string(b)) != "Internal Server Error" {
		t.Fatalf("got %d %q %v, want a readable 500", resp.StatusCode, b, err)
	}
	for _, k := range []string{"Cache-Control", "Expires", "ETag", "Last-Modified", "Content-Disposition", "Set-Cookie", "Location"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("the 500 carries the failed handler's %s: %s", k, v)
		}
	}
	if resp.Header.Get("X-Served-By") != "panic-0" || resp.Header.Get(requestlog.HeaderID) == "" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("the 500 lost headers set outside the handler: %v", resp.Header)
	}
}

// TestAttackPanicAfterPartialWrite: a handler panics after its response
// started. The client must see a broken response, never a complete-looking
// one; on HTTP/1.1 the connection goes, on h2c only the stream does, and
// the other streams of that connection finish.
func TestAttackPanicAfterPartialWrite(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "h2c"}[h2c], func(t *testing.T) {
			release := make(chan struct{})
			entered := make(chan struct{}, 1)
			var mu sync.Mutex
			peers := map[string]string{} // path -> RemoteAddr
			r := start(t, Options{PodName: "partial-0", H2C: h2c}, func(svc *Service) error {
				note := func(r *http.Request) {
					mu.Lock()
					peers[r.URL.Path] = r.RemoteAddr
					mu.Unlock()
				}
				svc.HandleFunc("GET /half", func(w http.ResponseWriter, r *http.Request) {
					note(r)
					io.WriteString(w, "the first half, ")
					http.NewResponseController(w).Flush()
					panic("after the first half")
				})
				svc.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
					note(r)
					entered <- struct{}{}
					<-release
					io.WriteString(w, "slow and whole")
				})
				svc.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) {
					note(r)
					io.WriteString(w, "ok")
				})
				return nil
			})
			tr := &http.Transport{}
			if h2c {
				p := new(http.Protocols)
				p.SetUnencryptedHTTP2(true)
				tr.Protocols = p
			}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 30 * time.Second}

			slow := make(chan reply, 1)
			go func() {
				resp, err := c.Get(r.url + "/slow")
				if err != nil {
					slow <- reply{body: err.Error()}
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					b = []byte(err.Error())
				}
				slow <- reply{code: resp.StatusCode, body: string(b)}
			}()
			select {
			case <-entered:
			case <-time.After(20 * time.Second):
				t.Fatal("/slow never started")
			}

			resp, err := c.Get(r.url + "/half")
			if err != nil {
				t.Fatalf("GET /half: %v (the headers were flushed, they should arrive)", err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Fatalf("GET /half read %q to a clean end; want a broken body", b)
			}
			t.Logf("GET /half: %d %q then %v", resp.StatusCode, b, err)

			close(release)
			got := <-slow
			if got.code != 200 || got.body != "slow and whole" {
				t.Fatalf("the stream beside the panic: %d %q", got.code, got.body)
			}
			if ok := get(t, c, r.url+"/ok", nil); ok.code != 200 {
				t.Fatalf("after the panic: %d", ok.code)
			}
			mu.Lock()
			defer mu.Unlock()
			if h2c && (peers["/half"] != peers["/slow"] || peers["/ok"] != peers["/slow"]) {
				t.Errorf("h2c requests came over different connections %v; the test wants one", peers)
			}
			if !h2c && peers["/half"] == peers["/ok"] {
				t.Errorf("HTTP/1.1: the connection of the broken response served the next request (%v)", peers)
			}
			lines := r.logs.lines(t, "request")
			var aborted int
			for _, l := range lines {
				if l["route"] == "GET /half" && l["aborted"] == true {
					aborted++
				}
			}
			if aborted != 1 {
				t.Errorf("%d aborted request lines for /half, want 1: %v", aborted, lines)
			}
		})
	}
}

// tlsService starts a service on TLS with a certificate from a fresh CA
// and returns it with a client factory that trusts the CA and
// alsoTrusted. With mtls, the service demands client certificates signed
// by the CA (its file is dir/ca.crt) and the clients present one.
func tlsService(t *testing.T, o Options, mtls bool, alsoTrusted ...*x509.Certificate) (*running, *certfiletest.CA, string, func() *http.Client) {
	t.Helper()
	dir := t.TempDir()
	ca := certfiletest.NewCA(t)
	o.TLSCertFile, o.TLSKeyFile = ca.Issue(t, dir, "tls", "127.0.0.1")
	var clientCerts []tls.Certificate
	if mtls {
		o.TLSClientCAFile = ca.Write(t, dir)
		pair, err := tls.LoadX509KeyPair(ca.Issue(t, dir, "client", "client"))
		if err != nil {
			t.Fatal(err)
		}
		clientCerts = []tls.Certificate{pair}
	}
	r := start(t, o, func(svc *Service) error {
		svc.HandleFunc("GET /hi", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hi") })
		return nil
	})
	roots := ca.Pool()
	for _, c := range alsoTrusted {
		roots.AddCert(c)
	}
	newClient := func() *http.Client {
		return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots, Certificates: clientCerts},
			ForceAttemptHTTP2: true,
			DisableKeepAlives: true,
		}}
	}
	return r, ca, dir, newClient
}

// TestAttackTLSHandshakeAbuse: clients that open TCP connections to the
// TLS port and never finish a handshake (silent, a partial ClientHello,
// garbage, plain HTTP) must not stop the service serving others, and each
// such connection must be closed within a bound: the server's
// ReadHeaderTimeout (5s) bounds the handshake.
func TestAttackTLSHandshakeAbuse(t *testing.T) {
	const silent = 300
	r, _, _, newClient := tlsService(t, Options{PodName: "tls-0"}, false)
	addr := hostOf(r.url)
	hello := func() {
		t.Helper()
		c := newClient()
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + addr + "/hi")
		if err != nil {
			t.Fatalf("a well-behaved client: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	hello()

	// Half a ClientHello: a record header that promises 512 bytes, and 5
	// of them.
	partial := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03}
	kinds := []struct {
		name  string
		send  []byte
		count int
	}{
		{"silent", nil, silent},
		{"partial ClientHello", partial, 20},
		{"garbage", []byte(strings.Repeat("\x00\xffgarbage", 64)), 20},
		{"plain HTTP", []byte("GET /hi HTTP/1.1\r\nHost: x\r\n\r\n"), 20},
	}
	type closed struct {
		kind  string
		after time.Duration
		reply string
		err   error
	}
	began := time.Now()
	results := make(chan closed, silent+60)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	total := 0
	for _, k := range kinds {
		for range k.count {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatalf("dial %d: %v", total, err)
			}
			conns = append(conns, c)
			total++
			if k.send != nil {
				if _, err := c.Write(k.send); err != nil {
					t.Fatal(err)
				}
			}
			go func() {
				c.SetReadDeadline(time.Now().Add(60 * time.Second))
				b, err := io.ReadAll(io.LimitReader(c, 4096))
				results <- closed{k.name, time.Since(began), string(b), err}
			}()
		}
	}
	// While they hang, the service serves.
	for range 20 {
		hello()
	}
	servedBy := time.Since(began)

	worst := map[string]time.Duration{}
	for range total {
		c := <-results
		if c.err != nil {
			t.Errorf("%s: the server never closed the connection: %v", c.kind, c.err)
			continue
		}
		worst[c.kind] = max(worst[c.kind], c.after)
		if c.kind == "plain HTTP" && !strings.Contains(c.reply, "400") {
			t.Errorf("plain HTTP to the TLS port got %q, want a 400", c.reply)
		}
	}
	t.Logf("20 requests served in %v with %d hostile connections open; closed after (worst): %v", servedBy, total, worst)
	for kind, d := range worst {
		if d > 5*time.Second+10*time.Second {
			t.Errorf("%s: a connection lived %v, want about the 5s handshake bound", kind, d)
		}
	}
	hello()
	var handshakeErrors int
	for _, l := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(l, "TLS handshake error") {
			handshakeErrors++
		}
	}
	t.Logf("%d log lines about failed handshakes", handshakeErrors)
}

// otherCA is a second CA, whose key this package holds, for certificates
// certfiletest does not make.
type otherCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newOtherCA(t *testing.T) *otherCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "attack CA"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &otherCA{cert, key}
}

// issueExpired writes to certFile and keyFile (atomically, key first) a
// certificate for 127.0.0.1 that expired an hour ago.
func (ca *otherCA) issueExpired(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "expired"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certfiletest.WriteFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	certfiletest.WriteFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestAttackCertRotationToBrokenFiles rotates the public port's
// certificate files, or its client CA file (the services demand client
// certificates), to something broken while clients keep handshaking with
// new connections. The service must keep its last good certificate and
// CAs: no handshake fails for a client that trusts the one and is trusted
// by the others, before or after the reload that refuses the files
// (logged once).
func TestAttackCertRotationToBrokenFiles(t *testing.T) {
	other := newOtherCA(t)
	tests := []struct {
		name    string
		corrupt func(t *testing.T, ca *certfiletest.CA, dir, certFile, keyFile string)
	}{
		{"key of another certificate", func(t *testing.T, ca *certfiletest.CA, dir, certFile, keyFile string) {
			_, otherKey := ca.Issue(t, dir, "other", "127.0.0.1")
			b, _ := os.ReadFile(otherKey)
			certfiletest.WriteFile(t, keyFile, b)
		}},
		{"half-written certificate", func(t *testing.T, ca *certfiletest.CA, dir, certFile, keyFile string) {
			b, _ := os.ReadFile(certFile)
			if err := os.WriteFile(certFile, b[:len(b)/2], 0o600); err != nil { // in place, not atomic
				t.Fatal(err)
			}
		}},
		{"empty files", func(t *testing.T, ca *certfiletest.CA, dir, certFile, keyFile string) {
			certfiletest.WriteFile(t, certFile, nil)
			certfiletest.WriteFile(t, keyFile, nil)
		}},
		{"garbage", func(t *testing.T, ca *certfiletest.CA, dir, certFile, keyFile string) {
			certfiletest.WriteFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"))
		}},
		{"files removed", func(t *testing.T, ca *certfiletest.CA, dir, certFile, keyFile string) {
			os.Remove(certFile)
			os.Remove(keyFile)
		}},
		{"expired certificate", func(t *testing.T, ca *certfiletest.CA, dir, certFile, keyFile string) {
			other.issueExpired(t, certFile, keyFile) // from a CA the clients trust too
		}},
		{"client CAs garbage", func(t *testing.T, ca *certfiletest.CA, dir, certFile, keyFile string) {
			certfiletest.WriteFile(t, filepath.Join(dir, "ca.crt"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
		}},
		{"client CAs removed", func(t *testing.T, ca *certfiletest.CA, dir, certFile, keyFile string) {
			os.Remove(filepath.Join(dir, "ca.crt"))
		}},
	}
	// One service per case, all rotated at once: a reload is tried by the
	// first handshake after the 10s check interval, so the cases share
	// that wait.
	type victim struct {
		r            *running
		ca           *certfiletest.CA
		dir          string
		ok, failed   atomic.Int64
		firstErr     atomic.Value
		after        int64 // handshakes served when the reload was tried
		newClient    func() *http.Client
		reloaded     bool
		reloadFailed bool
	}
	vs := make([]*victim, len(tests))
	for i := range tests {
		v := &victim{}
		v.r, v.ca, v.dir, v.newClient = tlsService(t, Options{PodName: "rotate-" + strconv.Itoa(i)}, true, other.cert)
		vs[i] = v
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	for _, v := range vs {
		wg.Go(func() {
			c := v.newClient()
			url := strings.Replace(v.r.url, "http://", "https://", 1) + "/hi"
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err != nil {
					v.failed.Add(1)
					v.firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				v.ok.Add(1)
			}
		})
	}
	waitUntil(t, 30*time.Second, "too few handshakes before the rotation", func() bool {
		for _, v := range vs {
			if v.ok.Load() < 10 {
				return false
			}
		}
		return true
	})
	for i, tt := range tests {
		v := vs[i]
		tt.corrupt(t, v.ca, v.dir, v.r.svc.Options.TLSCertFile, v.r.svc.Options.TLSKeyFile)
	}
	waitUntil(t, 60*time.Second, "the broken files were neither refused nor loaded", func() bool {
		for _, v := range vs {
			if v.reloaded || v.reloadFailed {
				continue
			}
			logs := v.r.logs.String()
			v.reloaded = strings.Contains(logs, "certfile: reloaded")
			v.reloadFailed = strings.Contains(logs, "certfile: reload failed")
			if !v.reloaded && !v.reloadFailed {
				return false
			}
			v.after = v.ok.Load()
		}
		return true
	})
	waitUntil(t, 30*time.Second, "too few handshakes after the reload", func() bool {
		for _, v := range vs {
			if v.ok.Load() < v.after+30 && v.failed.Load() < 30 {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	for i, tt := range tests {
		v := vs[i]
		t.Logf("%s: %d handshakes served, %d failed (reload refused: %v, done: %v)", tt.name, v.ok.Load(), v.failed.Load(), v.reloadFailed, v.reloaded)
		if n := v.failed.Load(); n > 0 {
			t.Errorf("%s: %d handshakes failed for clients that trust the old certificate, the first: %v", tt.name, n, v.firstErr.Load())
		}
		if lines := strings.Count(v.r.logs.String(), "certfile: reload failed"); lines != 1 {
			t.Errorf("%s: %d log lines for the refused files, want 1", tt.name, lines)
		}
	}
}

// hostileBackend accepts connections on loopback and hands each to serve,
// counting them; Close stops it and waits for its goroutines.
type hostileBackend struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
	stop  chan struct{}
}

func newHostileBackend(t *testing.T, serve func(c net.Conn, stop <-chan struct{})) *hostileBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &hostileBackend{ln: ln, stop: make(chan struct{})}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			b.wg.Go(func() {
				defer c.Close()
				serve(c, b.stop)
			})
		}
	})
	t.Cleanup(func() {
		close(b.stop)
		ln.Close()
		b.wg.Wait()
	})
	return b
}

func (b *hostileBackend) addr() string { return b.ln.Addr().String() }

// readRequestHead reads up to the end of a request's headers.
func readRequestHead(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := http.ReadRequest(bufio.NewReader(c))
	return err
}

// proxyService starts a service whose GET /fwd calls target's /x and
// copies the answer, within a route deadline of routeTimeout.
func proxyService(t *testing.T, target string, routeTimeout time.Duration, cfg UpstreamConfig) *running {
	t.Helper()
	return start(t, Options{PodName: "front-0"}, func(svc *Service) error {
		cfg.Name, cfg.Target = "back", target
		up, err := svc.Upstream(cfg)
		if err != nil {
			return err
		}
		svc.Handle("GET /fwd", WithTimeout(routeTimeout, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			resp, err := up.Get(r.Context(), "/x")
			if err != nil {
				code := http.StatusBadGateway
				if r.Context().Err() != nil {
					code = http.StatusGatewayTimeout
				}
				http.Error(w, err.Error(), code)
				return
			}
			defer resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			if _, err := io.Copy(w, resp.Body); err != nil {
				panic(http.ErrAbortHandler) // never pass a cut body on as whole
			}
		})))
		return nil
	})
}

// TestAttackUpstreamStalls: an upstream that takes the request and never
// answers, or answers headers and then stalls its body. The route's
// deadline, or the caller's shorter one, ends the call, and the handler
// answers within it plus a little.
func TestAttackUpstreamStalls(t *testing.T) {
	stallHeaders := newHostileBackend(t, func(c net.Conn, stop <-chan struct{}) {
		readRequestHead(c)
		<-stop
	})
	stallBody := newHostileBackend(t, func(c net.Conn, stop <-chan struct{}) {
		readRequestHead(c)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nthe start")
		<-stop
	})
	const route = 500 * time.Millisecond
	tests := []struct {
		name   string
		back   *hostileBackend
		header string
		limit  time.Duration
		code   int  // 0: the answer's body must break
		perTry bool // with a per-try timeout shorter than the route's
	}{
		{"headers stall, route deadline", stallHeaders, "", route, http.StatusGatewayTimeout, false},
		{"headers stall, caller's deadline", stallHeaders, "150", 150 * time.Millisecond, http.StatusGatewayTimeout, false},
		// Three tries of 100ms and their backoff give up before the route.
		{"headers stall, per-try timeouts", stallHeaders, "", route, http.StatusBadGateway, true},
		{"body stalls, route deadline", stallBody, "", route, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var cfg UpstreamConfig
			if tt.perTry {
				cfg.PerTryTimeout = 100 * time.Millisecond
			}
			front := proxyService(t, tt.back.addr(), route, cfg)
			for i := range 3 {
				hdr := map[string]string{}
				if tt.header != "" {
					hdr[deadline.Header] = tt.header
				}
				req, _ := http.NewRequest(http.MethodGet, front.url+"/fwd", nil)
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				began := time.Now()
				resp, err := http.DefaultClient.Do(req)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				took := time.Since(began)
				switch {
				case tt.code == 0 && err == nil:
					t.Fatalf("call %d: a body cut by the deadline arrived whole-looking: %q", i, body)
				case tt.code != 0 && (err != nil || resp.StatusCode != tt.code):
					t.Fatalf("call %d: %v %v, want %d", i, resp, err, tt.code)
				}
				if took > tt.limit+time.Second {
					t.Errorf("call %d answered after %v, want within %v + 1s", i, took, tt.limit)
				}
			}
		})
	}
}

// TestAttackUpstreamRedirectLoop: an upstream that redirects to itself is
// not followed: one attempt per call, the 3xx handed back.
func TestAttackUpstreamRedirectLoop(t *testing.T) {
	var hits atomic.Int64
	loop := newHostileBackend(t, func(c net.Conn, stop <-chan struct{}) {
		br := bufio.NewReader(c)
		for {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			hits.Add(1)
			fmt.Fprintf(c, "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n", req.URL.Path)
		}
	})
	front := proxyService(t, loop.addr(), 2*time.Second, UpstreamConfig{})
	for i := range 20 {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		if got := get(t, c, front.url+"/fwd", nil); got.code != http.StatusFound {
			t.Fatalf("call %d: %d, want the upstream's 302", i, got.code)
		}
	}
	if n := hits.Load(); n != 20 {
		t.Errorf("%d requests reached the looping upstream for 20 calls", n)
	}
}

// TestAttackUpstreamResets: an upstream that resets every connection once
// it has read the request. Retries are safe (GET) but bounded by the
// budget: 200 calls make at most 200 × (1 + 0.2) + 100 attempts (client's
// defaults: ratio 0.2, 10 a second over 10s), never the 600 that three
// attempts each would make.
func TestAttackUpstreamResets(t *testing.T) {
	const calls = 200
	var requests atomic.Int64
	reset := newHostileBackend(t, func(c net.Conn, stop <-chan struct{}) {
		if readRequestHead(c) == nil {
			requests.Add(1)
		}
		c.(*net.TCPConn).SetLinger(0)
	})
	front := proxyService(t, reset.addr(), 5*time.Second, UpstreamConfig{})
	// A client of its own, whose idle connections (some dialled ahead and
	// never used) are closed before the service stops.
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	work := make(chan int)
	codes := make(chan int, calls)
	for range 8 {
		wg.Go(func() {
			for range work {
				resp, err := c.Get(front.url + "/fwd")
				if err != nil {
					codes <- 0
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes <- resp.StatusCode
			}
		})
	}
	for i := range calls {
		work <- i
	}
	close(work)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusBadGateway {
			t.Fatalf("a call to a resetting upstream got %d, want 502", code)
		}
	}
	n := requests.Load()
	t.Logf("%d calls made %d attempts (%d connections); budget exhausted %v times",
		calls, n, reset.conns.Load(), metricstest.Value(t, front.svc.Registry, "shoal_client_retry_budget_exhausted_total"))
	if limit := int64(calls*1.2 + 100); n > limit {
		t.Errorf("%d attempts for %d calls, want at most %d", n, calls, limit)
	}
}

// TestAttackUpstreamConnectionsOutliveTheService: once a service has
// stopped, its upstreams hold no connection open: Close "closes its idle
// connections", whatever the upstream's target. An upstream that never
// closes a kept-alive connection itself must see each one closed.
func TestAttackUpstreamConnectionsOutliveTheService(t *testing.T) {
	for _, target := range []string{"list", "url"} {
		t.Run(target, func(t *testing.T) {
			open := make(chan struct{}, 64)
			closed := make(chan struct{}, 64)
			// A keep-alive upstream that waits a minute for the next request.
			back := newHostileBackend(t, func(c net.Conn, stop <-chan struct{}) {
				open <- struct{}{}
				defer func() { closed <- struct{}{} }()
				br := bufio.NewReader(c)
				for {
					c.SetReadDeadline(time.Now().Add(time.Minute))
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			})
			addr := back.addr()
			if target == "url" {
				addr = "http://" + addr
			}
			svc, err := New(Options{Host: "127.0.0.1", DrainDelay: -1, ShutdownTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			up, err := svc.Upstream(UpstreamConfig{Name: "back", Target: addr})
			if err != nil {
				svc.Close()
				t.Fatal(err)
			}
			svc.HandleFunc("GET /fwd", func(w http.ResponseWriter, r *http.Request) {
				resp, err := up.Get(r.Context(), "/x")
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				io.Copy(w, resp.Body)
				resp.Body.Close()
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- svc.Run(ctx) }()
			healthtest.Wait(t, URL(svc.AdminAddr())+"/readyz", http.StatusOK)
			if got := get(t, http.DefaultClient, URL(svc.Addr())+"/fwd", nil); got.code != 200 {
				t.Fatalf("GET /fwd: %d %q", got.code, got.body)
			}
			<-open
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("10s after the service stopped, its upstream connection is still open")
			}
		})
	}
}

// TestAttackHostileRequests sends malformed and unusual requests, byte
// for byte. Each gets an answer or a closed connection, nothing panics
// (neither a handler, which Recover would log, nor the kit's middleware,
// which net/http would), and the metrics keep a bounded set of series
// however many methods and paths the caller invents.
func TestAttackHostileRequests(t *testing.T) {
	r := start(t, Options{PodName: "hostile-0", ShedMaxLimit: 50, H2C: true}, func(svc *Service) error {
		svc.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "item "+r.PathValue("id"))
		})
		svc.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
				return
			}
			fmt.Fprint(w, n)
		})
		svc.HandleFunc("/{rest...}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "any") })
		return nil
	})
	addr := hostOf(r.url)
	requests := []string{
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		"GET http://evil.example/items/1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /items/%00 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET //items//1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET items/1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"FOO /items/1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"G\x00T /items/1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /items/1 HTTP/1.0\r\n\r\n",
		"GET /items/1 HTTP/9.9\r\nHost: x\r\n\r\n",
		"GET /items/1\r\n\r\n",
		"GET /" + strings.Repeat("a", 70<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /items/1 HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 20000) + "\r\n",
		"GET /items/1 HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET /items/1 HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
		"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
		"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
		"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
		"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100000000\r\n\r\n",
		"GET /items/1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
		"GET /items/1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00garbage frames",
		"\x16\x03\x01\x00\x05hello",
		"\r\n\r\n\r\n",
	}
	// At once: some wait out the 5s ReadHeaderTimeout for more bytes.
	outcomes := make([]string, len(requests))
	var wg sync.WaitGroup
	for i, req := range requests {
		wg.Go(func() {
			resp, _, err := raw(addr, req)
			if err != nil {
				outcomes[i] = fmt.Sprintf("no answer (%.80v)", err)
				return
			}
			outcomes[i] = strconv.Itoa(resp.StatusCode)
		})
	}
	wg.Wait()
	for i, req := range requests {
		t.Logf("%.40q: %s", req, outcomes[i])
	}
	// Invented methods and paths: the series stay bounded.
	methods := []string{"GET", "POST", "BREW", "PROPFIND", "X" + strings.Repeat("Y", 100)}
	for i := range 200 {
		req := fmt.Sprintf("%s /r%d/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", methods[i%len(methods)], i, i*7)
		if resp, _, err := raw(addr, req); err != nil || resp.StatusCode >= 500 {
			t.Fatalf("invented request %d: %v %v", i, resp, err)
		}
	}
	if got := get(t, http.DefaultClient, r.url+"/items/7", nil); got.code != 200 || got.body != "item 7" {
		t.Fatalf("after the hostile requests: %d %q", got.code, got.body)
	}
	for _, l := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(l, "panic") {
			t.Errorf("a log line about a panic: %.300s", l)
		}
	}
	exposition := string(metricstest.Scrape(t, r.adm+"/metrics"))
	var series int
	for _, l := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(l, "http_requests_total{") {
			series++
		}
	}
	if series > 20 {
		t.Errorf("%d http_requests_total series after 200 invented methods and paths", series)
	}
	t.Logf("%d http_requests_total series", series)
}

// TestAttackOptionsNaN: REQUEST_LOG_SAMPLE=NaN parses as a float. It must
// be refused by name, not taken: NaN compares false with everything, so
// it silently turned the request log off.
func TestAttackOptionsNaN(t *testing.T) {
	var o Options
	cs := config.New(flag.NewFlagSet("nan", flag.ContinueOnError), func(k string) (string, bool) {
		if k == "REQUEST_LOG_SAMPLE" {
			return "NaN", true
		}
		return "", false
	})
	Bind(cs, &o)
	if err := cs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "REQUEST_LOG_SAMPLE") {
		t.Fatalf("Validate with REQUEST_LOG_SAMPLE=NaN: %v, want an error naming it", err)
	}
}
