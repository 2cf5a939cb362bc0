package loadgen

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	rep, err := Run(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scheduled != rep.Sent+rep.Dropped {
		t.Errorf("scheduled %d != sent %d + dropped %d", rep.Scheduled, rep.Sent, rep.Dropped)
	}
	return rep
}

func TestBoundsDeliverTheAskedCount(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want int64
	}{
		{"rate for a duration", Config{Rate: 200, Duration: 2 * time.Second}, 400},
		{"count at a rate", Config{Rate: 500, Count: 50}, 50},
		{"count before duration", Config{Rate: 200, Duration: 10 * time.Second, Count: 60}, 60},
		{"duration before count", Config{Rate: 200, Duration: 500 * time.Millisecond, Count: 1000}, 100},
		{"steps", Config{Steps: []Step{{100, time.Second}, {0, 500 * time.Millisecond}, {200, 500 * time.Millisecond}}}, 200},
		{"duration cuts steps", Config{Steps: []Step{{100, time.Second}, {200, time.Second}}, Duration: 1500 * time.Millisecond}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startReplica(t, "a", false, nil)
			cfg := tc.cfg
			cfg.URL = r.url()
			rep := run(t, cfg)
			if rep.Scheduled != tc.want || rep.Completed != tc.want || rep.OK != tc.want {
				t.Errorf("scheduled %d, completed %d, ok %d; want %d each (errors %v)",
					rep.Scheduled, rep.Completed, rep.OK, tc.want, rep.Errors)
			}
			if got := r.served.Load(); got != tc.want {
				t.Errorf("server saw %d requests, want %d", got, tc.want)
			}
			if rep.Replicas["a"] != tc.want || rep.Shares()["a"] != 1 || rep.CV() != 0 {
				t.Errorf("replicas %v, shares %v, cv %v", rep.Replicas, rep.Shares(), rep.CV())
			}
			if rep.Interrupted {
				t.Error("report says interrupted")
			}
		})
	}
}

func TestRunLastsTheTimetable(t *testing.T) {
	r := startReplica(t, "a", false, nil)
	rep := run(t, Config{URL: r.url(), Rate: 100, Duration: time.Second})
	// The last request is due at 990ms: an open-loop run cannot end
	// before it, however fast the server.
	if rep.Elapsed < 990*time.Millisecond {
		t.Errorf("elapsed %v, shorter than the timetable", rep.Elapsed)
	}
}

// TestStallShowsInLatency is the coordinated-omission check: the server
// freezes for a second once. Every request scheduled during the freeze
// must carry the wait in its latency, as a user arriving then would
// have; a closed-loop generator would record one slow request and then
// simply send fewer.
func TestStallShowsInLatency(t *testing.T) {
	const stall = time.Second
	var n atomic.Int64
	var stallUntil atomic.Int64 // unix nanos; 0 before the stall
	r := startReplica(t, "a", false, func(w http.ResponseWriter, req *http.Request) {
		if n.Add(1) == 50 {
			stallUntil.Store(time.Now().Add(stall).UnixNano())
		}
		if until := stallUntil.Load(); until != 0 {
			if d := time.Until(time.Unix(0, until)); d > 0 {
				time.Sleep(d) // the server is frozen: every request waits out the stall
			}
		}
	})
	rep := run(t, Config{URL: r.url(), Rate: 100, Duration: 3 * time.Second})
	if rep.Completed != 300 || rep.Dropped != 0 {
		t.Fatalf("completed %d, dropped %d, errors %v; want 300 and none dropped", rep.Completed, rep.Dropped, rep.Errors)
	}
	// About 100 of 300 requests are scheduled during the stall, their
	// latencies spread from ~1s down to ~0: p90 and p99 must show it.
	if rep.Latency.Max < 900*time.Millisecond {
		t.Errorf("max %v, want >= 900ms", rep.Latency.Max)
	}
	if rep.Latency.P99 < 800*time.Millisecond {
		t.Errorf("p99 %v, want >= 800ms", rep.Latency.P99)
	}
	if rep.Latency.P90 < 300*time.Millisecond {
		t.Errorf("p90 %v, want >= 300ms", rep.Latency.P90)
	}
	if p := rep.Percentile(90); p != rep.Latency.P90 {
		t.Errorf("Percentile(90) = %v, Latency.P90 = %v", p, rep.Latency.P90)
	}
}

// TestCapDropsInsteadOfDelaying: with every slot taken by a hung
// request, the due requests are counted as dropped, not queued.
func TestCapDropsInsteadOfDelaying(t *testing.T) {
	r := startReplica(t, "a", false, func(w http.ResponseWriter, req *http.Request) {
		<-req.Context().Done()
	})
	rep := run(t, Config{URL: r.url(), Rate: 500, Count: 100, MaxInFlight: 5, Timeout: 3 * time.Second})
	if rep.Dropped != 95 || rep.Errors[KindDropped] != 95 || rep.Errors[KindTimeout] != 5 || rep.Sent != 5 {
		t.Errorf("sent %d, dropped %d, errors %v; want 5 sent and timed out, 95 dropped", rep.Sent, rep.Dropped, rep.Errors)
	}
	if got := r.served.Load(); got != 5 {
		t.Errorf("server saw %d requests, want 5", got)
	}
}

func TestErrorsByKind(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/"
	ln.Close()

	hijack := func(linger bool) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			if linger {
				_ = c.(*net.TCPConn).SetLinger(0) // close with RST
			}
			c.Close()
		}
	}
	tests := []struct {
		name      string
		handle    http.HandlerFunc // nil: use url
		url       string
		timeout   time.Duration
		kind      string
		completed bool
	}{
		{"connection refused", nil, refused, 0, KindRefused, false},
		{"503", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }, "", 0, "http_503", true},
		{"404", http.NotFound, "", 0, "http_404", true},
		{"timeout", func(w http.ResponseWriter, req *http.Request) { <-req.Context().Done() }, "", 200 * time.Millisecond, KindTimeout, false},
		{"timeout in the body", func(w http.ResponseWriter, req *http.Request) {
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			<-req.Context().Done()
		}, "", 200 * time.Millisecond, KindTimeout, false},
		{"reset", hijack(true), "", 0, KindReset, false},
		{"closed", hijack(false), "", 0, KindClosed, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.url
			if tc.handle != nil {
				u = startReplica(t, "a", false, tc.handle).url()
			}
			rep := run(t, Config{URL: u, Rate: 100, Count: 5, Timeout: tc.timeout})
			if rep.Errors[tc.kind] != 5 || len(rep.Errors) != 1 {
				t.Errorf("errors %v, want %s: 5", rep.Errors, tc.kind)
			}
			want := int64(0)
			if tc.completed {
				want = 5
			}
			if rep.Completed != want || rep.OK != 0 {
				t.Errorf("completed %d, ok %d; want %d, 0", rep.Completed, rep.OK, want)
			}
		})
	}
}

func TestInterruptedRunReturnsItsReport(t *testing.T) {
	r := startReplica(t, "a", false, func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("X-Key") == "key-0" {
			<-req.Context().Done()
		}
	})
	ctx, cancel := context.WithCancel(testCtx(t))
	var progress bytes.Buffer
	done := make(chan struct{})
	var rep *Report
	var err error
	go func() {
		defer close(done)
		rep, err = Run(ctx, Config{URL: r.url(), Rate: 100, Duration: time.Minute, KeyHeader: "X-Key", Keys: 2, Progress: &progress})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for r.served.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // poll
	}
	cancel()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted || rep.Scheduled >= 6000 {
		t.Errorf("interrupted %v after %d scheduled", rep.Interrupted, rep.Scheduled)
	}
	if rep.Errors[KindCanceled] == 0 || rep.Completed == 0 {
		t.Errorf("errors %v, completed %d; want canceled hung requests and completed others", rep.Errors, rep.Completed)
	}
	if !strings.Contains(progress.String(), "sent ") {
		t.Errorf("no progress line: %q", progress.String())
	}
}

func TestConnectionModes(t *testing.T) {
	// carriers are the connections that carried a request. Go's HTTP/2
	// transport may dial a spare connection when requests start together
	// and drop it unused (more often on a loaded machine), so spares are
	// not counted against a mode; what each mode promises is how many
	// connections the requests travelled on.
	tests := []struct {
		name        string
		cfg         Config
		h2c         bool
		minCarriers int64
		maxCarriers int64
		wantH2      bool
	}{
		{"new connection per request", Config{NoKeepAlive: true}, false, 40, 40, false},
		{"keep-alive pool of two", Config{Connections: 2}, false, 1, 2, false},
		{"keep-alive pool of one", Config{Connections: 1}, false, 1, 1, false},
		{"h2c", Config{H2C: true}, true, 1, 2, true},
		{"h2c new connection per request", Config{H2C: true, NoKeepAlive: true}, true, 40, 40, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startReplica(t, "a", tc.h2c, nil)
			cfg := tc.cfg
			cfg.URL, cfg.Rate, cfg.Count = r.url(), 200, 40
			rep := run(t, cfg)
			if rep.OK != 40 {
				t.Fatalf("ok %d of 40, errors %v", rep.OK, rep.Errors)
			}
			if c := r.carriers.Load(); c < tc.minCarriers || c > tc.maxCarriers {
				t.Errorf("requests travelled on %d connections, want %d..%d", c, tc.minCarriers, tc.maxCarriers)
			}
			// net/http's HTTP/1.1 transport, too, may finish a dial that a
			// request no longer needs (another connection came free first)
			// and keep it idle: what a mode bounds is the connections
			// dialled, not that each one carried a request.
			if a := r.accepts.Load(); !tc.h2c && (a < r.carriers.Load() || a > tc.maxCarriers) {
				t.Errorf("server accepted %d HTTP/1.1 connections (%d carried requests), want at most %d", a, r.carriers.Load(), tc.maxCarriers)
			}
			if h2 := r.h2.Load(); (h2 == 40) != tc.wantH2 || (h2 != 0 && h2 != 40) {
				t.Errorf("%d of 40 requests over HTTP/2, want all: %v", h2, tc.wantH2)
			}
		})
	}
}

func TestRequestShape(t *testing.T) {
	type seen struct{ method, host, body, custom, ctype string }
	got := make(chan seen, 10)
	r := startReplica(t, "a", false, func(w http.ResponseWriter, req *http.Request) {
		var b bytes.Buffer
		_, _ = b.ReadFrom(req.Body)
		got <- seen{req.Method, req.Host, b.String(), req.Header.Get("X-Custom"), req.Header.Get("Content-Type")}
	})
	rep := run(t, Config{
		URL: r.url(), Method: http.MethodPost, Count: 3, Body: []byte(`{"user":"ann"}`),
		Header: http.Header{"X-Custom": {"v1"}, "Content-Type": {"application/json"}, "Host": {"gallery.test"}},
	})
	if rep.OK != 3 {
		t.Fatalf("ok %d of 3, errors %v", rep.OK, rep.Errors)
	}
	want := seen{"POST", "gallery.test", `{"user":"ann"}`, "v1", "application/json"}
	for range 3 {
		if s := <-got; s != want {
			t.Errorf("server saw %+v, want %+v", s, want)
		}
	}
}

func cvOf(counts ...int64) float64 {
	var sum float64
	for _, c := range counts {
		sum += float64(c)
	}
	mean := sum / float64(len(counts))
	var sq float64
	for _, c := range counts {
		sq += (float64(c) - mean) * (float64(c) - mean)
	}
	return math.Sqrt(sq/float64(len(counts))) / mean
}

// TestSharesThroughConnectionBalancer sends through a proxy that picks a
// random replica per connection, one connection per request: the
// report's shares must be exactly what the replicas served.
func TestSharesThroughConnectionBalancer(t *testing.T) {
	reps := []*replica{startReplica(t, "r0", false, nil), startReplica(t, "r1", false, nil), startReplica(t, "r2", false, nil)}
	p := startTCPProxy(t, 3, reps[0].srv.Listener.Addr().String(), reps[1].srv.Listener.Addr().String(), reps[2].srv.Listener.Addr().String())
	rep := run(t, Config{URL: p.url(), Rate: 200, Count: 300, NoKeepAlive: true})
	if rep.OK != 300 {
		t.Fatalf("ok %d of 300, errors %v", rep.OK, rep.Errors)
	}
	var counts []int64
	var sum float64
	for _, r := range reps {
		n := r.served.Load()
		counts = append(counts, n)
		if rep.Replicas[r.name] != n {
			t.Errorf("report gives %s %d requests, it served %d", r.name, rep.Replicas[r.name], n)
		}
		if s := rep.Shares()[r.name]; math.Abs(s-float64(n)/300) > 1e-12 {
			t.Errorf("share of %s %v, want %v", r.name, s, float64(n)/300)
		}
		sum += rep.Shares()[r.name]
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Errorf("shares sum to %v", sum)
	}
	if want := cvOf(counts...); math.Abs(rep.CV()-want) > 1e-12 {
		t.Errorf("cv %v, want %v from %v", rep.CV(), want, counts)
	}
	if names := rep.ReplicaNames(); strings.Join(names, ",") != "r0,r1,r2" {
		t.Errorf("replicas %v", names)
	}
}

// keyFront is a tiny front proxy routing each request by its balance
// key: key-i goes to backend i mod len(backends).
func keyFront(t *testing.T, backends []*replica) *replica {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	proxies := make([]*httputil.ReverseProxy, len(backends))
	for i, b := range backends {
		u, _ := url.Parse(b.srv.URL)
		proxies[i] = &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, Transport: tr}
	}
	front := startReplica(t, "front", false, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Del("X-Served-By") // the backend names itself
		i, err := strconv.Atoi(strings.TrimPrefix(req.Header.Get("X-Balance-Key"), "key-"))
		if err != nil {
			http.Error(w, "no key", http.StatusBadRequest)
			return
		}
		proxies[i%len(proxies)].ServeHTTP(w, req)
	})
	// Close the front before its backends' cleanup runs and after the
	// transport's idle connections are closed.
	return front
}

// TestWindowsTable checks the windows × replicas table against the
// timetable and key sequence the run must have followed.
func TestWindowsTable(t *testing.T) {
	backends := []*replica{startReplica(t, "a", false, nil), startReplica(t, "b", false, nil), startReplica(t, "c", false, nil)}
	front := keyFront(t, backends)
	const seed, keys = 42, 10
	steps := []Step{{100, time.Second}, {200, time.Second}, {50, time.Second}}
	rep := run(t, Config{URL: front.url(), Steps: steps, Window: 500 * time.Millisecond,
		KeyHeader: "X-Balance-Key", Keys: keys, Seed: seed})
	if rep.OK != 350 {
		t.Fatalf("ok %d of 350, errors %v", rep.OK, rep.Errors)
	}

	want := make([]map[string]int64, 6)
	for i := range want {
		want[i] = map[string]int64{}
	}
	tt, ks := newTimetable(steps), newKeySource(keys, seed)
	names := []string{"a", "b", "c"}
	for {
		off, ok := tt.next()
		if !ok {
			break
		}
		k, _ := strconv.Atoi(strings.TrimPrefix(ks.next()[0], "key-"))
		want[off/(500*time.Millisecond)][names[k%3]]++
	}
	if len(rep.Windows) != 6 {
		t.Fatalf("%d windows, want 6", len(rep.Windows))
	}
	wantScheduled := []int64{50, 50, 100, 100, 25, 25}
	for i, w := range rep.Windows {
		if w.Start != time.Duration(i)*500*time.Millisecond || w.Scheduled != wantScheduled[i] || w.Completed != wantScheduled[i] {
			t.Errorf("window %d: start %v scheduled %d completed %d, want %v %d", i, w.Start, w.Scheduled, w.Completed,
				time.Duration(i)*500*time.Millisecond, wantScheduled[i])
		}
		for _, n := range names {
			if w.Replicas[n] != want[i][n] {
				t.Errorf("window %d replica %s: %d, want %d", i, n, w.Replicas[n], want[i][n])
			}
		}
		if wcv := cvOf(want[i]["a"], want[i]["b"], want[i]["c"]); math.Abs(w.CV()-wcv) > 1e-12 {
			t.Errorf("window %d cv %v, want %v", i, w.CV(), wcv)
		}
	}
	var served int64
	for _, b := range backends {
		served += b.served.Load()
		if rep.Replicas[b.name] != b.served.Load() {
			t.Errorf("replica %s: report %d, served %d", b.name, rep.Replicas[b.name], b.served.Load())
		}
	}
	if served != 350 {
		t.Errorf("backends served %d, want 350", served)
	}
}

func TestProgressLines(t *testing.T) {
	r := startReplica(t, "a", false, nil)
	var buf bytes.Buffer
	run(t, Config{URL: r.url(), Rate: 100, Count: 30, Progress: &buf, ProgressEvery: 50 * time.Millisecond})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("want several progress lines, got %q", buf.String())
	}
	last := lines[len(lines)-1]
	for _, want := range []string{"sent 30", "rate ", "p99 ", "errors 0"} {
		if !strings.Contains(last, want) {
			t.Errorf("last progress line %q lacks %q", last, want)
		}
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	_, err := Run(context.Background(), Config{})
	var ce *ConfigError
	if err == nil || !strings.Contains(err.Error(), "URL") || !errors.As(err, &ce) {
		t.Fatalf("Run(Config{}) = %v, want a ConfigError on URL", err)
	}
}
