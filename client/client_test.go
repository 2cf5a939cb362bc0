package client

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// counting counts the attempts that reach the underlying transport.
type counting struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// sleeps records backoff waits instead of waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

// server answers with status for the first fails requests (and records
// every body), then 200.
type server struct {
	status     int
	retryAfter string
	fails      int64
	n          atomic.Int64
	mu         sync.Mutex
	bodies     []string
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	if s.n.Add(1) <= s.fails {
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		w.WriteHeader(s.status)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRetryDecisions(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		body       string
		opaque     bool // body without GetBody
		header     string
		markCtx    bool
		status     int
		retryAfter string
		fails      int64
		refused    bool
		wantTries  int64
		wantStatus int
	}{
		{name: "GET 503 retried until success", method: "GET", status: 503, fails: 2, wantTries: 3, wantStatus: 200},
		{name: "GET 502 retried then gives up", method: "GET", status: 502, fails: 9, wantTries: 3, wantStatus: 502},
		{name: "GET 500 not retried", method: "GET", status: 500, fails: 9, wantTries: 1, wantStatus: 500},
		{name: "PUT 504 retried", method: "PUT", body: "x", status: 504, fails: 1, wantTries: 2, wantStatus: 200},
		{name: "POST 503 not retried", method: "POST", body: "payload", status: 503, fails: 9, wantTries: 1, wantStatus: 503},
		{name: "POST shed 503 with Retry-After retried", method: "POST", body: "payload", status: 503, retryAfter: "1", fails: 2, wantTries: 3, wantStatus: 200},
		{name: "POST with Idempotency-Key retried", method: "POST", body: "payload", header: "k-1", status: 502, fails: 1, wantTries: 2, wantStatus: 200},
		{name: "POST marked idempotent retried", method: "POST", body: "payload", markCtx: true, status: 504, fails: 1, wantTries: 2, wantStatus: 200},
		{name: "POST 500 not retried", method: "POST", body: "payload", header: "k-2", status: 500, fails: 9, wantTries: 1, wantStatus: 500},
		{name: "POST body that cannot be replayed", method: "POST", body: "payload", opaque: true, status: 503, retryAfter: "1", fails: 9, wantTries: 1, wantStatus: 503},
		{name: "POST connection refused retried", method: "POST", body: "payload", refused: true, wantTries: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &server{status: tt.status, retryAfter: tt.retryAfter, fails: tt.fails}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			url := ts.URL
			if tt.refused {
				url = "http://" + closedAddr(t)
			}
			tr := NewTransport(Config{})
			defer tr.CloseIdleConnections()
			cnt := &counting{next: tr}
			sl := &sleeps{}
			c, err := New(Config{Transport: cnt, Sleep: sl.Sleep, Rand: func() float64 { return 0.5 }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tt.markCtx {
				ctx = Idempotent(ctx)
			}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.opaque {
					body = io.MultiReader(body)
				}
			}
			req, err := http.NewRequestWithContext(ctx, tt.method, url, body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set(IdempotencyKeyHeader, tt.header)
			}
			resp, err := c.Do(req)
			if tt.refused {
				if err == nil {
					t.Fatal("refused connection: no error")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.wantStatus {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
				}
			}
			if got := cnt.n.Load(); got != tt.wantTries {
				t.Errorf("%d attempts, want %d", got, tt.wantTries)
			}
			if got := int64(len(sl.d)); got != tt.wantTries-1 {
				t.Errorf("%d backoff waits, want %d", got, tt.wantTries-1)
			}
			for i, d := range sl.d {
				lo, hi := time.Duration(0), time.Second
				if tt.retryAfter != "" {
					lo = time.Second // Retry-After: 1, within the 1s cap
				} else {
					hi = 25 * time.Millisecond << i
				}
				if d < lo || d > hi {
					t.Errorf("wait %d = %v, want in [%v, %v]", i, d, lo, hi)
				}
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			for i, b := range srv.bodies {
				if b != tt.body {
					t.Errorf("attempt %d carried body %q, want %q", i+1, b, tt.body)
				}
			}
		})
	}
}

func TestPerTryTimeout(t *testing.T) {
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-r.Context().Done() // hangs until the client gives up on this try
			return
		}
		_, _ = io.WriteString(w, strings.Repeat("body", 1000))
	}))
	defer ts.Close()
	tr := NewTransport(Config{})
	defer tr.CloseIdleConnections()
	sl := &sleeps{}
	c, err := New(Config{Transport: tr, PerTryTimeout: 300 * time.Millisecond, Sleep: sl.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != 4000 {
		t.Fatalf("body after a retried try: %d bytes, %v", len(b), err)
	}
	if got := n.Load(); got != 2 {
		t.Fatalf("%d attempts, want 2", got)
	}
}

func TestRetryBudget(t *testing.T) {
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	b := NewRetryBudget(BudgetConfig{Ratio: 0.2, MinPerSecond: 1, Window: 10 * time.Second}, clock)
	steps := []struct {
		name      string
		advance   time.Duration
		deposits  int
		withdraws int
		want      int // successful withdrawals
	}{
		{name: "reserve only", withdraws: 15, want: 10},
		{name: "a hundred requests earn twenty", deposits: 100, withdraws: 30, want: 20},
		{name: "nothing left", withdraws: 5, want: 0},
		{name: "window passes, reserve again", advance: 11 * time.Second, withdraws: 12, want: 10},
		{name: "fractions add up", deposits: 9, withdraws: 2, want: 1},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			now.Add(int64(s.advance))
			for range s.deposits {
				b.Deposit()
			}
			got := 0
			for range s.withdraws {
				if b.TryWithdraw() {
					got++
				}
			}
			if got != s.want {
				t.Fatalf("%d withdrawals allowed, want %d (balance %.2f)", got, s.want, b.Balance())
			}
		})
	}
}

func TestH2C(t *testing.T) {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	ts.Config.Protocols = &protos
	ts.Start()
	defer ts.Close()
	tr := NewTransport(Config{H2C: true})
	defer tr.CloseIdleConnections()
	c, err := New(Config{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || !bytes.Equal(b, []byte("HTTP/2.0")) {
		t.Fatalf("spoke %s, server saw %q; want HTTP/2 without TLS", resp.Proto, b)
	}
}

func TestNewTransport(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		perHost int
		idle    time.Duration
		header  time.Duration
	}{
		{name: "defaults", perHost: 64, idle: 60 * time.Second, header: 30 * time.Second},
		{name: "set", cfg: Config{MaxIdleConnsPerHost: 8, IdleConnTimeout: 20 * time.Second, ResponseHeaderTimeout: time.Second},
			perHost: 8, idle: 20 * time.Second, header: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTransport(tt.cfg)
			if tr.MaxIdleConnsPerHost != tt.perHost || tr.IdleConnTimeout != tt.idle || tr.ResponseHeaderTimeout != tt.header {
				t.Fatalf("got perHost=%d idle=%v header=%v", tr.MaxIdleConnsPerHost, tr.IdleConnTimeout, tr.ResponseHeaderTimeout)
			}
			if tr.Proxy != nil {
				t.Fatal("service-to-service transport uses a proxy")
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	// Each negative value used to mean the field's default (PerTryTimeout's:
	// no bound); now New rejects it, naming the field, and NewTransport and
	// NewRetryBudget, which return no error, panic on theirs.
	tests := []struct {
		name      string
		cfg       Config
		field     string // in the error; empty means valid
		transport bool   // NewTransport panics too
	}{
		{name: "zero is valid", cfg: Config{}},
		{name: "negative idle pool", cfg: Config{MaxIdleConnsPerHost: -1}, field: "MaxIdleConnsPerHost", transport: true},
		{name: "negative idle timeout", cfg: Config{IdleConnTimeout: -time.Second}, field: "IdleConnTimeout", transport: true},
		{name: "negative dial timeout", cfg: Config{DialTimeout: -time.Second}, field: "DialTimeout", transport: true},
		{name: "negative TLS timeout", cfg: Config{TLSHandshakeTimeout: -time.Second}, field: "TLSHandshakeTimeout", transport: true},
		{name: "negative header timeout", cfg: Config{ResponseHeaderTimeout: -time.Second}, field: "ResponseHeaderTimeout", transport: true},
		{name: "negative attempts", cfg: Config{MaxAttempts: -1}, field: "MaxAttempts"},
		{name: "negative per-try timeout", cfg: Config{PerTryTimeout: -time.Second}, field: "PerTryTimeout"},
		{name: "negative backoff base", cfg: Config{BackoffBase: -time.Second}, field: "BackoffBase"},
		{name: "negative backoff max", cfg: Config{BackoffMax: -time.Second}, field: "BackoffMax"},
		{name: "negative budget ratio", cfg: Config{Budget: BudgetConfig{Ratio: -0.1}}, field: "Budget.Ratio"},
		{name: "negative budget reserve", cfg: Config{Budget: BudgetConfig{MinPerSecond: -1}}, field: "Budget.MinPerSecond"},
		{name: "negative budget window", cfg: Config{Budget: BudgetConfig{Window: -time.Second}}, field: "Budget.Window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("New: %v, want no error", err)
			case tt.field != "" && (err == nil || !strings.Contains(err.Error(), tt.field)):
				t.Fatalf("New: %v, want an error naming %s", err, tt.field)
			}
			if got := panics(func() { NewTransport(tt.cfg) }); got != tt.transport {
				t.Errorf("NewTransport panicked: %v, want %v", got, tt.transport)
			}
			wantBudget := strings.HasPrefix(tt.field, "Budget.")
			if got := panics(func() { NewRetryBudget(tt.cfg.Budget, nil) }); got != wantBudget {
				t.Errorf("NewRetryBudget panicked: %v, want %v", got, wantBudget)
			}
		})
	}
}

func panics(f func()) (panicked bool) {
	defer func() { panicked = recover() != nil }()
	f()
	return false
}

func TestMetrics(t *testing.T) {
	srv := &server{status: 503, retryAfter: "1", fails: 1}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	tr := NewTransport(Config{})
	defer tr.CloseIdleConnections()
	reg := prometheus.NewPedanticRegistry()
	sl := &sleeps{}
	c, err := New(Config{Transport: tr, Registerer: reg, Sleep: sl.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Post(ts.URL, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := `
# HELP shoal_client_retries_total Retries sent, by the reason the previous attempt could be retried.
# TYPE shoal_client_retries_total counter
shoal_client_retries_total{reason="dial_error"} 0
shoal_client_retries_total{reason="error"} 0
shoal_client_retries_total{reason="per_try_timeout"} 0
shoal_client_retries_total{reason="shed"} 1
shoal_client_retries_total{reason="status"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shoal_client_retries_total"); err != nil {
		t.Fatal(err)
	}
}
