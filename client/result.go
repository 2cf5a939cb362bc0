package client

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// Result is how a call, or one attempt of it, ended, as far as its
// response headers tell: the value of the result label of this package's
// metrics and of package balancer's. The set is fixed, so the label's
// series are bounded.
type Result uint8

// The results, with their label values. A status is labelled by its
// class; a 1xx that reaches a caller (101 Switching Protocols) counts as
// 2xx, and a status above 599 as 5xx.
const (
	Result2xx      Result = iota // "2xx"
	Result3xx                    // "3xx"
	Result4xx                    // "4xx"
	Result5xx                    // "5xx"
	ResultError                  // "error": no response, and not a timeout or cancellation
	ResultTimeout                // "timeout": a deadline ended it (the caller's, the per-try timeout, or a transport timeout)
	ResultCanceled               // "canceled": the caller cancelled its context
)

// NumResults is the number of [Result] values, for arrays indexed by one.
const NumResults = int(ResultCanceled) + 1

// String returns the label value.
func (r Result) String() string {
	switch r {
	case Result2xx:
		return "2xx"
	case Result3xx:
		return "3xx"
	case Result4xx:
		return "4xx"
	case Result5xx:
		return "5xx"
	case ResultTimeout:
		return "timeout"
	case ResultCanceled:
		return "canceled"
	}
	return "error"
}

// ResultOf classifies the values a round trip run under ctx returned. The
// context comes first: a round trip whose context ended is a timeout or
// a cancellation whatever error the transport made of it.
func ResultOf(ctx context.Context, resp *http.Response, err error) Result {
	if err == nil && resp != nil {
		switch c := resp.StatusCode; {
		case c < 300:
			return Result2xx
		case c < 400:
			return Result3xx
		case c < 500:
			return Result4xx
		}
		return Result5xx
	}
	switch ctx.Err() {
	case context.Canceled:
		return ResultCanceled
	case context.DeadlineExceeded:
		return ResultTimeout
	}
	switch {
	case errors.Is(err, context.Canceled):
		return ResultCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrPerTryTimeout):
		return ResultTimeout
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return ResultTimeout
	}
	return ResultError
}
