package grpcserver_test

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/grpcserver"
	"github.com/shoal-dev/shoal/lifecycle"
	"github.com/shoal-dev/shoal/metricstest"
)

const unaryCall = "/" + testServiceName + "/UnaryCall"

// stalledCall starts a UnaryCall over its own h2c connection whose
// message declares size bytes and sends only its first bytes, until
// ctx ends; it returns the call's grpc-status ("" if none came).
func stalledCall(ctx context.Context, addr string, size int) <-chan string {
	res := make(chan string, 1)
	go func() {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protos}
		defer tr.CloseIdleConnections()
		pr, pw := io.Pipe()
		go func() {
			prefix := binary.BigEndian.AppendUint32([]byte{0}, uint32(size))
			pw.Write(append(prefix, 0x12)) // the payload's tag, then nothing
			<-ctx.Done()
			pw.CloseWithError(ctx.Err())
		}()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+unaryCall, pr)
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("TE", "trailers")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			res <- ""
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res <- resp.Trailer.Get("grpc-status") + resp.Header.Get("grpc-status")
	}()
	return res
}

// waitValue waits until metric (with labels) reaches want.
func waitValue(t *testing.T, h *harness, want float64, metric string, labels ...string) {
	t.Helper()
	ctx := ctxT(t)
	for metricstest.Value(t, h.reg, metric, labels...) != want {
		select {
		case <-ctx.Done():
			t.Fatalf("%s%q = %v, want %v", metric, labels, metricstest.Value(t, h.reg, metric, labels...), want)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestRecvBudget(t *testing.T) {
	const maxMsg = 1 << 20
	tests := []struct {
		name string
		cfg  grpcserver.Config
		run  func(t *testing.T, h *harness)
	}{
		{
			name: "every share comes back",
			cfg:  grpcserver.Config{MaxRecvMsgSize: maxMsg},
			run: func(t *testing.T, h *harness) {
				cc := dial(t, h.addr)
				ctx := ctxT(t)
				for _, size := range []int{0, 10, 64 << 10, maxMsg - 64} {
					if _, _, err := call(ctx, cc, strings.Repeat("x", size)); err != nil {
						t.Fatalf("call of %d bytes: %v", size, err)
					}
				}
				if _, _, err := call(ctx, cc, strings.Repeat("x", maxMsg+1)); status.Code(err) != codes.ResourceExhausted {
					t.Fatalf("call above MaxRecvMsgSize: %v, want ResourceExhausted", err)
				}
				if _, err := healthOf(ctx, cc, ""); err != nil {
					t.Fatal(err)
				}
				waitValue(t, h, 0, "grpc_server_recv_in_use_bytes")
			},
		},
		{
			name: "a message not received in RecvTimeout is cut off",
			cfg:  grpcserver.Config{MaxRecvMsgSize: maxMsg, RecvTimeout: 200 * time.Millisecond},
			run: func(t *testing.T, h *harness) {
				if got := <-stalledCall(ctxT(t), h.addr, maxMsg/2); got != "1" {
					t.Fatalf("stalled call's grpc-status %q, want 1 (CANCELLED)", got)
				}
				waitValue(t, h, 1, "grpc_server_recv_cut_total", "reason", "timeout")
				waitValue(t, h, 0, "grpc_server_recv_in_use_bytes")
			},
		},
		{
			name: "a waiting call evicts a stalled one",
			// One share: the stalled call holds all of it.
			cfg: grpcserver.Config{MaxRecvMsgSize: maxMsg, RecvBudget: maxMsg + 100<<10, RecvTimeout: time.Minute},
			run: func(t *testing.T, h *harness) {
				stalled := stalledCall(ctxT(t), h.addr, maxMsg/2)
				waitAtLeast(t, h, float64(grpcserver.ShareOf(maxMsg)), "grpc_server_recv_in_use_bytes")
				cc := dial(t, h.addr)
				if _, _, err := call(ctxT(t), cc, "after the stalled one"); err != nil {
					t.Fatalf("waiting call: %v", err)
				}
				if got := <-stalled; got != "1" {
					t.Fatalf("evicted call's grpc-status %q, want 1 (CANCELLED)", got)
				}
				waitValue(t, h, 1, "grpc_server_recv_cut_total", "reason", "evicted")
			},
		},
		{
			name: "a full budget refuses a call at its headers",
			cfg:  grpcserver.Config{MaxRecvMsgSize: maxMsg, RecvBudget: grpcserver.ShareOf(maxMsg) + 1<<10, RecvTimeout: time.Minute},
			run: func(t *testing.T, h *harness) {
				ctx, cancel := context.WithCancel(ctxT(t))
				defer cancel()
				stalledCall(ctx, h.addr, maxMsg/2)
				// The stalled call's share leaves less than any metadata.
				waitAtLeast(t, h, float64(grpcserver.ShareOf(maxMsg)), "grpc_server_recv_in_use_bytes")
				cc := dial(t, h.addr, grpc.WithDisableRetry())
				pad := metadata.AppendToOutgoingContext(ctxT(t), "x-pad", strings.Repeat("p", 4<<10))
				if _, err := testgrpc.NewTestServiceClient(cc).UnaryCall(pad, &testgrpc.SimpleRequest{}); status.Code(err) != codes.Unavailable {
					t.Fatalf("call with a full budget: %v, want Unavailable", err)
				}
				waitValue(t, h, 1, "grpc_server_recv_refused_total")
			},
		},
		{
			name: "metadata beyond MaxHeaderListSize is refused",
			cfg:  grpcserver.Config{},
			run: func(t *testing.T, h *harness) {
				cc := dial(t, h.addr)
				ctx := metadata.AppendToOutgoingContext(ctxT(t), "x-pad", strings.Repeat("p", grpcserver.DefaultMaxHeaderListSize))
				if _, _, err := call(ctx, cc, "big metadata"); err == nil {
					t.Fatal("call with 16 KiB of metadata succeeded")
				}
				if _, _, err := call(ctxT(t), cc, "small"); err != nil {
					t.Fatalf("call after: %v", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, tt.cfg, lifecycle.Config{DrainDelay: -1})
			tt.run(t, h)
		})
	}
}

// waitAtLeast waits until metric reaches at least min.
func waitAtLeast(t *testing.T, h *harness, min float64, metric string) {
	t.Helper()
	ctx := ctxT(t)
	for metricstest.Value(t, h.reg, metric) < min {
		select {
		case <-ctx.Done():
			t.Fatalf("%s = %v, want at least %v", metric, metricstest.Value(t, h.reg, metric), min)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
