package grpcclient_test

import (
	"context"
	"testing"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/shoal-dev/shoal/grpcclient"
)

func TestNewDNSSpreadsCalls(t *testing.T) {
	port := freePort(t)
	opts := backendOpts{delay: time.Millisecond}
	b1 := startBackend(t, "127.0.0.1", port, opts)
	b2 := startBackend(t, "127.0.0.2", port, opts)
	d := startDNS(t, "svc.test", "127.0.0.1", "127.0.0.2")
	for _, tc := range []struct {
		name   string
		policy string
		keyed  bool
	}{
		{name: "default", policy: ""},
		{name: "peak_ewma", policy: grpcclient.PeakEWMA},
		{name: "consistent_hash", policy: grpcclient.ConsistentHash, keyed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := grpcclient.New("dns://"+d.addr+"/svc.test:"+itoa(port), grpcclient.Config{Policy: tc.policy})
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			c := testpb.NewTestServiceClient(cc)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			lctx, stop := context.WithCancel(ctx)
			var keyOf func(int) context.Context
			if tc.keyed {
				keyOf = func(i int) context.Context { return grpcclient.WithBalanceKey(lctx, itoa(i)) }
			}
			l := startLoad(lctx, c, 8, keyOf)
			seen := map[string]int{}
			err = waitFor(ctx, func() bool {
				counts, failed := l.snapshot()
				for a, n := range counts {
					seen[a] += n
				}
				if len(failed) > 0 {
					t.Errorf("failed calls: %v", failed)
				}
				return seen[b1.addr] >= 50 && seen[b2.addr] >= 50
			})
			stop()
			l.wg.Wait()
			if err != nil {
				t.Fatalf("calls per backend %v, want both at least 50: %v", seen, err)
			}
		})
	}
}
