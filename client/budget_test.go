package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/client"
)

// With every replica shedding, retries add no more load than the budget:
// 20% of requests plus the reserve, not the 200% three attempts would.
func TestRetryBudgetHoldsWhenEveryReplicaFails(t *testing.T) {
	var hits atomic.Int64
	var addrs []string
	for i := range 3 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", i+2))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		})}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close(); <-done })
		addrs = append(addrs, ln.Addr().String())
	}
	res, err := balancer.NewStatic(addrs...)
	if err != nil {
		t.Fatal(err)
	}
	tr := client.NewTransport(client.Config{})
	defer tr.CloseIdleConnections()
	lb, err := balancer.New(balancer.Config{Resolver: res, Transport: tr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()

	frozen := time.Unix(1_700_000_000, 0)
	var waits atomic.Int64 // backoffs are counted, not waited
	sleep := func(ctx context.Context, _ time.Duration) error { waits.Add(1); return ctx.Err() }
	budget := client.BudgetConfig{Ratio: 0.2, MinPerSecond: 1, Window: 10 * time.Second}
	c, err := client.New(client.Config{Transport: lb, MaxAttempts: 3, Budget: budget,
		Now: func() time.Time { return frozen }, Sleep: sleep})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 500
	for i := range n {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://thumbnailer/v1/thumbnails",
			strings.NewReader(fmt.Sprint(i)))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", resp.StatusCode)
		}
	}
	extra := hits.Load() - n
	allowed := int64(budget.Ratio*n + budget.MinPerSecond*budget.Window.Seconds())
	if extra > allowed {
		t.Fatalf("retries added %d requests to %d, budget allows %d", extra, n, allowed)
	}
	if extra < allowed-2 {
		t.Fatalf("retries added only %d requests; the budget allowed %d", extra, allowed)
	}
	t.Logf("%d requests, %d retries (%.0f%% extra load; without a budget: 200%%)", n, extra, 100*float64(extra)/n)
}
