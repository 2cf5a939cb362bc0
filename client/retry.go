package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// IdempotencyKeyHeader marks a request as safe to repeat: the server
// deduplicates by its value.
const IdempotencyKeyHeader = "Idempotency-Key"

type idempotentKey struct{}

// Idempotent returns a context that marks requests made with it as safe
// to retry whatever their method.
func Idempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// IsIdempotent reports whether req may be sent more than once: its method
// is idempotent, it carries an Idempotency-Key header, or its context was
// made by [Idempotent].
func IsIdempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	if _, ok := req.Header[IdempotencyKeyHeader]; ok {
		return true
	}
	v, _ := req.Context().Value(idempotentKey{}).(bool)
	return v
}

// RetryTransport is an http.RoundTripper that retries safe failures; see
// the package documentation for which.
type RetryTransport struct {
	next        http.RoundTripper
	maxAttempts int
	perTry      time.Duration
	base, max   time.Duration
	budget      *RetryBudget
	rand        func() float64
	sleep       func(context.Context, time.Duration) error
	now         func() time.Time
	metrics     *metrics
}

var _ http.RoundTripper = (*RetryTransport)(nil)

// Budget returns the retry budget, e.g. to watch its balance.
func (t *RetryTransport) Budget() *RetryBudget { return t.budget }

// retry reasons, also the values of the metrics' reason label.
const (
	reasonDial       = "dial_error"
	reasonShed       = "shed"
	reasonError      = "error"
	reasonStatus     = "status"
	reasonPerTry     = "per_try_timeout"
	maxDrainOnRetry  = 64 << 10
	retryAfterHeader = "Retry-After"
)

// ErrPerTryTimeout is the cause (see [context.Cause]) of an attempt's
// context that ended at Config.PerTryTimeout, which tells a transport
// below, such as a balancer, a slow endpoint from a caller that gave up.
var ErrPerTryTimeout = errors.New("client: per-try timeout")

// RoundTrip sends req, retrying safe failures within the budget.
func (t *RetryTransport) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	ctx := req.Context()
	if t.metrics != nil {
		// The call ends for the metrics when RoundTrip returns, with the
		// last attempt's headers: the body's pace is the caller's.
		start := t.now()
		defer func() { t.metrics.request(ResultOf(ctx, resp, err), t.now().Sub(start)) }()
	}
	t.budget.Deposit()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	idempotent := IsIdempotent(req)
	if t.maxAttempts > 1 && replayable {
		// A balancer below records each attempt's endpoint here and
		// sends the next attempt elsewhere.
		ctx = WithTries(ctx)
		req = req.WithContext(ctx)
	}
	for attempt := 1; ; attempt++ {
		try, err := t.attemptRequest(req, attempt)
		if err != nil {
			return nil, err
		}
		tryCtx, cancel := ctx, context.CancelFunc(func() {})
		if t.perTry > 0 {
			tryCtx, cancel = context.WithTimeoutCause(ctx, t.perTry, ErrPerTryTimeout)
			try = try.WithContext(tryCtx)
		}
		resp, err := t.next.RoundTrip(try)
		if t.metrics != nil {
			t.metrics.attempt(ResultOf(tryCtx, resp, err))
		}
		reason := t.retryReason(ctx, tryCtx, idempotent, resp, err)
		last := reason == "" || attempt >= t.maxAttempts || !replayable
		if !last && !t.budget.TryWithdraw() {
			t.metrics.budgetExhausted()
			last = true
		}
		if last {
			if resp != nil && t.perTry > 0 {
				// The attempt's deadline covers reading the body.
				resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
			} else {
				cancel()
			}
			return resp, err
		}
		t.metrics.retry(reason)
		wait := t.backoff(attempt, resp)
		if resp != nil {
			_, _ = io.CopyN(io.Discard, resp.Body, maxDrainOnRetry)
			resp.Body.Close()
		}
		cancel()
		if err := t.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("client: waiting to retry %s %s: %w", req.Method, req.URL.Redacted(), err)
		}
	}
}

// attemptRequest returns the request for one attempt, with a fresh body
// for every attempt after the first.
func (t *RetryTransport) attemptRequest(req *http.Request, attempt int) (*http.Request, error) {
	if attempt == 1 || req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("client: replaying the body of %s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	r := new(http.Request)
	*r = *req
	r.Body = body
	return r, nil
}

// retryReason returns why the attempt may be retried, or "" if it may not.
func (t *RetryTransport) retryReason(ctx, tryCtx context.Context, idempotent bool, resp *http.Response, err error) string {
	if ctx.Err() != nil {
		return ""
	}
	if err != nil {
		var op *net.OpError
		switch {
		case errors.As(err, &op) && op.Op == "dial":
			return reasonDial // the server never saw the request
		case !idempotent:
			return ""
		case tryCtx.Err() != nil:
			return reasonPerTry
		default:
			return reasonError
		}
	}
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(retryAfterHeader) != "" {
		return reasonShed // a shedding replica refused the request unprocessed
	}
	if idempotent {
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return reasonStatus
		}
	}
	return ""
}

// backoff returns the wait before retry number attempt: full jitter over
// an exponential bound, but at least what Retry-After asks, both capped
// by the maximum.
func (t *RetryTransport) backoff(attempt int, resp *http.Response) time.Duration {
	bound := t.base << min(attempt-1, 30)
	if bound <= 0 || bound > t.max {
		bound = t.max
	}
	wait := time.Duration(t.rand() * float64(bound))
	if resp != nil {
		if s, err := strconv.Atoi(resp.Header.Get(retryAfterHeader)); err == nil && s > 0 {
			wait = max(wait, min(time.Duration(s)*time.Second, t.max))
		}
	}
	return wait
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// cancelBody ends an attempt's context once its body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
