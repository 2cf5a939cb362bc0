package grpcclient

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// triedKey carries a unary call's tries under Config.PerTryTimeout, so
// that a try after a timed-out one avoids the replicas the call already
// met, as package client's Tries does for HTTP.
type triedKey struct{}

// tried lists the addresses a call's tries were sent to. The picker adds
// to it; a try runs after the previous one ended, but grpc-go may pick
// again inside a try (a transparent retry), on its own goroutine.
type tried struct {
	mu    sync.Mutex
	addrs []string
}

func (t *tried) add(addr string) {
	t.mu.Lock()
	t.addrs = append(t.addrs, addr)
	t.mu.Unlock()
}

// list returns the addresses tried so far; nil on a first pick.
func (t *tried) list() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addrs[:len(t.addrs):len(t.addrs)]
}

// perTry returns the unary interceptor of Config.PerTryTimeout: each try
// of a call gets at most timeout, and a try that runs out of it while
// the call's own context is alive is tried again, on a replica the call
// has not met, up to attempts tries in all. grpc-go retries only
// UNAVAILABLE and has no per-attempt timeout: without this a replica that
// accepts a call and never answers (a hung or SIGSTOPped process) costs
// the call its whole deadline, and the caller's request with it.
func perTry(timeout time.Duration, attempts int) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx = context.WithValue(ctx, triedKey{}, &tried{})
		for n := 1; ; n++ {
			tctx, cancel := context.WithTimeout(ctx, timeout)
			err := invoker(tctx, method, req, reply, cc, opts...)
			expired := tctx.Err() != nil
			cancel()
			if n >= attempts || ctx.Err() != nil || !expired || status.Code(err) != codes.DeadlineExceeded {
				return err
			}
		}
	}
}
