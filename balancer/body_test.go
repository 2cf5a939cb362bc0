package balancer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-dev/shoal/client"
)

// stallBody sends the response headers and the start of a longer body,
// then stalls until the request is given up: the replica a proxy would
// otherwise wait on for its whole timeout.
func stallBody(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "1000")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "partial")
	w.(http.Flusher).Flush()
	<-r.Context().Done()
}

// read sends one GET and reads its body to the end.
func read(ctx context.Context, c *http.Client) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/work", nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-Served-By"), err
}

// A replica that answers with headers and then stalls its body fails each
// request on it at the per-try timeout; those count as its timeouts, so
// it is ejected after Ejection.Timeouts of them, and then every call
// succeeds on the other two.
func TestStalledBodyEjected(t *testing.T) {
	stalled := serve(t, "127.0.0.2", http.HandlerFunc(stallBody))
	addrs := []string{stalled, serve(t, "127.0.0.3", served("b")), serve(t, "127.0.0.4", served("c"))}
	r, err := NewStatic(addrs...)
	if err != nil {
		t.Fatal(err)
	}
	const perTry = 100 * time.Millisecond
	reg := prometheus.NewPedanticRegistry()
	b, c := retrying(t, Config{Resolver: r, Policy: RoundRobin{}, Rand: seqRand(3), Registerer: reg},
		client.Config{MaxAttempts: 3, PerTryTimeout: perTry})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	failures := 0
	for i := 0; !slices.Contains(b.Ejected(), stalled); i++ {
		if i == 30 {
			t.Fatalf("not ejected after %d calls, %d of them failed on the stalled body", i, failures)
		}
		if _, err := read(ctx, c); err != nil {
			if !errors.Is(err, client.ErrPerTryTimeout) && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("call %d: %v, want the per-try timeout", i, err)
			}
			failures++
		}
	}
	requests := func() float64 { return testutil.ToFloat64(b.metrics.requests.WithLabelValues(stalled)) }
	hits := requests()
	if failures != DefaultEjectionTimeouts || hits != DefaultEjectionTimeouts {
		t.Fatalf("ejected after %d failed calls and %v requests to the stalled replica, want %d of each",
			failures, hits, DefaultEjectionTimeouts)
	}
	if got := testutil.ToFloat64(b.metrics.errors.WithLabelValues(stalled)); got != hits {
		t.Fatalf("errors metric %v for %v stalled bodies", got, hits)
	}
	if got := testutil.ToFloat64(b.metrics.ejections.WithLabelValues(stalled)); got != 1 {
		t.Fatalf("ejections metric %v, want 1", got)
	}
	for i := range 30 {
		start := time.Now()
		by, err := read(ctx, c)
		if err != nil {
			t.Fatalf("call %d after the ejection: %v", i, err)
		}
		if by != "b" && by != "c" {
			t.Fatalf("call %d served by %q", i, by)
		}
		if d := time.Since(start); d >= perTry {
			t.Fatalf("call %d after the ejection took %v: it waited on the stalled replica", i, d)
		}
	}
	if got := requests(); got != hits {
		t.Fatalf("the ejected replica got %v more requests", got-hits)
	}
}

// errBody is a response body that ends with err after its bytes, or
// blocks until ctx ends when block is set.
type errBody struct {
	strings.Reader
	err   error
	ctx   context.Context
	block bool
}

func (b *errBody) Read(p []byte) (int, error) {
	if n, _ := b.Reader.Read(p); n > 0 {
		return n, nil
	}
	if b.block {
		<-b.ctx.Done()
		return 0, context.Cause(b.ctx)
	}
	return 0, b.err
}

func (*errBody) Close() error { return nil }

// How a response body ends decides its request's outcome: EOF or an early
// close by the caller is a success; a broken or timed out body is a
// failure of the endpoint, whose headers said success; a caller that gave
// up is no evidence. With one failure ejecting, the endpoint is ejected
// exactly when the body ended in a failure.
func TestBodyEndDecidesOutcome(t *testing.T) {
	resetErr := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		name       string
		err        error // what Read returns after the bytes
		perTry     bool  // the attempt has a per-try timeout that ends mid-body
		caller     bool  // the caller's own deadline ends mid-body
		closeEarly bool  // the caller closes the body before reading it
		wantOut    bool
	}{
		{name: "EOF", err: io.EOF},
		{name: "closed before the end", err: io.EOF, closeEarly: true},
		{name: "cut off", err: io.ErrUnexpectedEOF, wantOut: true},
		{name: "reset", err: resetErr, wantOut: true},
		{name: "transport timeout", err: &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, wantOut: true},
		{name: "per-try timeout", perTry: true, wantOut: true},
		{name: "caller's deadline", caller: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if tt.perTry {
				ctx, cancel = context.WithTimeoutCause(ctx, 20*time.Millisecond, client.ErrPerTryTimeout)
				defer cancel()
			}
			if tt.caller {
				ctx, cancel = context.WithTimeout(ctx, 20*time.Millisecond)
				defer cancel()
			}
			tr := roundTripperFunc(func(req *http.Request) (*http.Response, error) {
				body := &errBody{err: tt.err, ctx: req.Context(), block: tt.perTry || tt.caller}
				body.Reset("some bytes")
				return &http.Response{StatusCode: http.StatusOK, Body: body}, nil
			})
			r, err := NewStatic("10.0.0.1:80", "10.0.0.2:80")
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewPedanticRegistry()
			lb, err := New(Config{Resolver: r, Transport: tr, Registerer: reg, Logger: slog.New(slog.DiscardHandler),
				Ejection: Ejection{ConsecutiveFailures: 1, Timeouts: 1}})
			if err != nil {
				t.Fatal(err)
			}
			defer lb.Close()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/x", nil)
			resp, err := lb.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.closeEarly {
				_, _ = io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
			out := lb.Ejected()
			if got := len(out) == 1; got != tt.wantOut {
				t.Fatalf("ejected %v, want an ejection: %v", out, tt.wantOut)
			}
			errs := 0.0
			for _, a := range lb.Endpoints() {
				errs += testutil.ToFloat64(lb.metrics.errors.WithLabelValues(a))
				if in := lb.byAddrLocked(a).InFlight(); in != 0 {
					t.Fatalf("%s has %d requests in flight after the body ended", a, in)
				}
			}
			if want := map[bool]float64{false: 0, true: 1}[tt.wantOut]; errs != want {
				t.Fatalf("errors metric %v, want %v", errs, want)
			}
		})
	}
}
