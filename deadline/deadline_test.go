package deadline_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/deadline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMiddleware(t *testing.T) {
	const none = time.Duration(-1)
	tests := []struct {
		name   string
		route  time.Duration
		values []string // the request's Header values
		want   time.Duration
	}{
		{"nothing", 0, nil, none},
		{"negative route timeout is none", -time.Second, nil, none},
		{"route only", 2 * time.Second, nil, 2 * time.Second},
		{"header only", 0, []string{"300"}, 300 * time.Millisecond},
		{"header only, negative route", -1, []string{"300"}, 300 * time.Millisecond},
		{"header sooner", 2 * time.Second, []string{"300"}, 300 * time.Millisecond},
		{"route sooner", 2 * time.Second, []string{"5000"}, 2 * time.Second},
		{"leading zeros", 0, []string{"000300"}, 300 * time.Millisecond},
		{"zero: caller gave up", 2 * time.Second, []string{"0"}, 0},
		{"24h", 0, []string{"86400000"}, 24 * time.Hour},
		{"above 24h", 2 * time.Second, []string{"86400001"}, 2 * time.Second},
		{"overflow", 0, []string{"99999999999999999999"}, none},
		{"10 KB of digits", 0, []string{strings.Repeat("9", 10<<10)}, none},
		{"negative", 2 * time.Second, []string{"-5"}, 2 * time.Second},
		{"plus sign", 0, []string{"+5"}, none},
		{"fraction", 0, []string{"1.5"}, none},
		{"exponent", 0, []string{"1e3"}, none},
		{"hex", 0, []string{"0x10"}, none},
		{"unit", 0, []string{"300ms"}, none},
		{"spaces", 0, []string{" 300"}, none},
		{"empty", 0, []string{""}, none},
		{"letters", 0, []string{"abc"}, none},
		{"control characters", 0, []string{"3\x000"}, none},
		{"non-ASCII digits", 0, []string{"\u0663\u0660\u0660"}, none},
		{"two values", 0, []string{"100", "200"}, none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				dl  time.Time
				has bool
				err error
			)
			h := deadline.Middleware(tt.route, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				dl, has = r.Context().Deadline()
				if has && tt.want == 0 {
					<-r.Context().Done()
				}
				err = r.Context().Err()
				w.Write([]byte("handler's own"))
			}))
			r := httptest.NewRequest("GET", "/", nil)
			for _, v := range tt.values {
				r.Header.Add(deadline.Header, v)
			}
			w := httptest.NewRecorder()
			before := time.Now()
			h.ServeHTTP(w, r)
			after := time.Now()

			if body := w.Body.String(); body != "handler's own" {
				t.Errorf("response body %q: the middleware wrote to the response", body)
			}
			if tt.want == none {
				if has {
					t.Errorf("deadline in %v, want none", dl.Sub(before))
				}
				return
			}
			if !has {
				t.Fatalf("no deadline, want %v", tt.want)
			}
			// The middleware read the clock between before and after.
			if left := dl.Sub(before); left < tt.want || left > tt.want+after.Sub(before) {
				t.Errorf("deadline %v after the request, want %v (+ %v)", left, tt.want, after.Sub(before))
			}
			if tt.want == 0 && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("ctx.Err() = %v, want DeadlineExceeded", err)
			}
		})
	}
}

// TestMiddlewareKeepsEarlierDeadline: a caller's header cannot extend a
// deadline already on the request's context.
func TestMiddlewareKeepsEarlierDeadline(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	want, _ := parent.Deadline()
	var got time.Time
	h := deadline.Middleware(time.Hour, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = r.Context().Deadline()
	}))
	r := httptest.NewRequestWithContext(parent, "GET", "/", nil)
	r.Header.Set(deadline.Header, "5000")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if !got.Equal(want) {
		t.Errorf("deadline %v, want the parent's %v", got, want)
	}
}

func TestInject(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration // 0: no deadline
		header  http.Header
		min     int64 // acceptable values; -1 for no header
		max     int64
	}{
		{"no deadline", 0, http.Header{}, -1, -1},
		{"no deadline removes a forwarded header", 0, http.Header{deadline.Header: {"300"}}, -1, -1},
		{"no deadline, nil header", 0, nil, -1, -1},
		{"deadline", 5 * time.Second, http.Header{}, 1, 5000},
		{"deadline replaces a forwarded header", 5 * time.Second, http.Header{deadline.Header: {"99999", "1"}}, 1, 5000},
		{"deadline, nil header", 5 * time.Second, nil, 1, 5000},
		{"passed", -time.Second, http.Header{}, 0, 0},
		{"beyond 24h", 25 * time.Hour, http.Header{deadline.Header: {"300"}}, -1, -1},
		{"24h", 24*time.Hour - time.Minute, http.Header{}, 86340000 - 60000, 86340000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.timeout != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			req, err := http.NewRequestWithContext(ctx, "GET", "http://example.com/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tt.header
			deadline.Inject(req)
			checkHeader(t, req.Header, tt.min, tt.max)
		})
	}
}

func checkHeader(t *testing.T, h http.Header, min, max int64) {
	t.Helper()
	vals := h[deadline.Header]
	if min < 0 {
		if vals != nil {
			t.Errorf("%s = %q, want none", deadline.Header, vals)
		}
		return
	}
	if len(vals) != 1 {
		t.Fatalf("%s = %q, want one value", deadline.Header, vals)
	}
	var ms int64
	for _, c := range vals[0] {
		if c < '0' || c > '9' {
			t.Fatalf("%s = %q, want whole milliseconds", deadline.Header, vals[0])
		}
		ms = ms*10 + int64(c-'0')
	}
	if ms < min || ms > max {
		t.Errorf("%s = %d, want %d to %d", deadline.Header, ms, min, max)
	}
}

// TestInjectAtLeastOne: less than a millisecond left is sent as 1, not as
// 0 (which would say the caller has given up).
func TestInjectAtLeastOne(t *testing.T) {
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), 900*time.Microsecond)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://example.com/", nil)
		deadline.Inject(req)
		dl, _ := ctx.Deadline()
		stillOpen := time.Now().Before(dl)
		cancel()
		got := req.Header.Get(deadline.Header)
		if got != "1" && (stillOpen || got != "0") {
			t.Fatalf("%s = %q with under 1ms left, want 1 (or 0 once passed)", deadline.Header, got)
		}
	}
}

// roundTripper records the request it is given.
type roundTripper struct{ got *http.Request }

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.got = req
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: req}, nil
}

func TestTransport(t *testing.T) {
	tests := []struct {
		name     string
		timeout  time.Duration
		header   http.Header
		min, max int64
	}{
		{"no deadline, no header", 0, http.Header{}, -1, -1},
		{"no deadline, forwarded header", 0, http.Header{deadline.Header: {"300"}}, -1, -1},
		{"deadline", 5 * time.Second, http.Header{}, 1, 5000},
		{"deadline, nil header", 5 * time.Second, nil, 1, 5000},
		{"deadline, forwarded header", 5 * time.Second, http.Header{deadline.Header: {"86400000"}}, 1, 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.timeout != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			req, err := http.NewRequestWithContext(ctx, "GET", "http://example.com/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tt.header
			orig := tt.header.Clone()
			rt := &roundTripper{}
			resp, err := deadline.Transport(rt).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			checkHeader(t, rt.got.Header, tt.min, tt.max)
			if got := req.Header[deadline.Header]; strings.Join(got, ",") != strings.Join(orig[deadline.Header], ",") {
				t.Errorf("caller's request header changed to %q, want %q", got, orig[deadline.Header])
			}
		})
	}
}

func TestTransportNilIsDefault(t *testing.T) {
	// Only that it does not panic and passes CloseIdleConnections on.
	rt := deadline.Transport(nil)
	rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
}
