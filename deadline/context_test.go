package deadline_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/deadline"
)

// TestContextBehavesAsWithTimeout: the route's context, made lazily, ends
// as context.WithTimeout's would, whichever way the handler looks at it.
func TestContextBehavesAsWithTimeout(t *testing.T) {
	const short = 20 * time.Millisecond
	type result struct {
		err, cause error
	}
	tests := []struct {
		name    string
		timeout time.Duration
		cancel  bool // the request's own context is canceled first
		use     func(ctx context.Context) result
		want    error
	}{
		{"Done closes at the deadline", short, false, func(ctx context.Context) result {
			<-ctx.Done()
			return result{ctx.Err(), context.Cause(ctx)}
		}, context.DeadlineExceeded},
		{"Err alone sees the deadline pass", short, false, func(ctx context.Context) result {
			for ctx.Err() == nil {
				time.Sleep(time.Millisecond) // polls, as a decoder checks between rows
			}
			return result{ctx.Err(), context.Cause(ctx)}
		}, context.DeadlineExceeded},
		{"a child context ends at the deadline", short, false, func(ctx context.Context) result {
			child, cancel := context.WithCancel(ctx)
			defer cancel()
			<-child.Done()
			return result{child.Err(), context.Cause(child)}
		}, context.DeadlineExceeded},
		{"AfterFunc runs at the deadline", short, false, func(ctx context.Context) result {
			ran := make(chan struct{})
			context.AfterFunc(ctx, func() { close(ran) })
			<-ran
			return result{ctx.Err(), context.Cause(ctx)}
		}, context.DeadlineExceeded},
		{"a nanosecond: over at once", time.Nanosecond, false, func(ctx context.Context) result {
			return result{ctx.Err(), context.Cause(ctx)}
		}, context.DeadlineExceeded},
		{"the request's cancellation reaches Done", time.Hour, true, func(ctx context.Context) result {
			<-ctx.Done()
			return result{ctx.Err(), context.Cause(ctx)}
		}, context.Canceled},
		{"the request's cancellation reaches Err", time.Hour, true, func(ctx context.Context) result {
			return result{ctx.Err(), context.Cause(ctx)}
		}, context.Canceled},
		{"no deadline yet", time.Hour, false, func(ctx context.Context) result {
			return result{ctx.Err(), context.Cause(ctx)}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			var got result
			h := deadline.Middleware(tt.timeout, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = tt.use(r.Context())
			}))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(parent, "GET", "/", nil))
			if !errors.Is(got.err, tt.want) || (tt.want == nil) != (got.err == nil) {
				t.Errorf("Err() = %v, want %v", got.err, tt.want)
			}
			if !errors.Is(got.cause, tt.want) || (tt.want == nil) != (got.cause == nil) {
				t.Errorf("Cause() = %v, want %v", got.cause, tt.want)
			}
		})
	}
}

// TestContextCanceledWhenHandlerReturns: work the handler leaves behind
// with its context sees it canceled, whether or not it had asked for Done
// before the handler returned.
func TestContextCanceledWhenHandlerReturns(t *testing.T) {
	for _, early := range []bool{false, true} {
		var ctx context.Context
		h := deadline.Middleware(time.Hour, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx = r.Context()
			if early {
				_ = ctx.Done()
			}
		}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		select {
		case <-ctx.Done():
		default:
			t.Fatalf("Done asked early=%v: not closed after the handler returned", early)
		}
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("Done asked early=%v: Err() = %v, want Canceled", early, ctx.Err())
		}
	}
}

// TestContextValues: values of the request's context pass through before
// and after the timer is made.
func TestContextValues(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")
	h := deadline.Middleware(time.Hour, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Context().Value(key{}); v != "v" {
			t.Errorf("before Done: Value = %v", v)
		}
		_ = r.Context().Done()
		if v := r.Context().Value(key{}); v != "v" {
			t.Errorf("after Done: Value = %v", v)
		}
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(parent, "GET", "/", nil))
}

// TestMiddlewareAllocs fails if the middleware allocates more per request
// than the context and the request copy (2) when the handler never asks
// for Done, or when no deadline applies (0).
func TestMiddlewareAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; scripts/test.sh runs this without -race")
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	for _, tt := range []struct {
		name    string
		timeout time.Duration
		want    float64
	}{
		{"route timeout", 30 * time.Second, 2},
		{"none", -1, 0},
	} {
		h := deadline.Middleware(tt.timeout, next)
		r := httptest.NewRequest("GET", "/", nil)
		w := httptest.NewRecorder()
		if got := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, r) }); got > tt.want {
			t.Errorf("%s: %v allocations per request, want at most %v", tt.name, got, tt.want)
		}
	}
}

// BenchmarkMiddleware measures a request through the middleware with and
// without a route timeout, the handler not waiting on its context.
func BenchmarkMiddleware(b *testing.B) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	for _, bb := range []struct {
		name    string
		timeout time.Duration
		header  string
	}{
		{"none", -1, ""},
		{"route timeout", 30 * time.Second, ""},
		{"route timeout and caller's", 30 * time.Second, "5000"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			h := deadline.Middleware(bb.timeout, next)
			r := httptest.NewRequest("GET", "/", nil)
			if bb.header != "" {
				r.Header.Set(deadline.Header, bb.header)
			}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}
