package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// load is one open-loop run's shape.
type load struct {
	rate           float64       // calls per second
	warmup         time.Duration // sent, not measured
	duration       time.Duration // measured
	timeout        time.Duration // per call
	maxOutstanding int           // beyond this the generator counts a call as failed
}

func (l load) calls() int    { return int(l.rate * (l.warmup + l.duration).Seconds()) }
func (l load) measured() int { return int(l.rate * l.duration.Seconds()) }
func (l load) interval() time.Duration {
	return time.Duration(float64(time.Second) / l.rate)
}

// outcome is one measured period's figures.
type outcome struct {
	sent, failed int
	errors       map[string]int // status code name → count
	hist         *hdrhistogram.Histogram
	served       map[string]int // server name → answered calls
	// lag is how late the generator sent the measured calls: the
	// machine's share of every latency, whatever the policy.
	lag *hdrhistogram.Histogram
}

func (o *outcome) quantile(q float64) time.Duration {
	if o.hist.TotalCount() == 0 {
		return 0
	}
	return time.Duration(o.hist.ValueAtQuantile(q * 100))
}

// share is the fraction of answered calls that name served.
func (o *outcome) share(name string) float64 {
	total := 0
	for _, n := range o.served {
		total += n
	}
	if total == 0 {
		return 0
	}
	return float64(o.served[name]) / float64(total)
}

// drive sends calls through conn at a fixed rate whatever the answers do
// (open loop), timing each from its scheduled start, so time spent queued
// anywhere, the generator included, counts against the policy. Calls of
// the warm-up are sent alike but not counted.
func drive(ctx context.Context, l load, conn *grpc.ClientConn) *outcome {
	n := l.calls()
	first := n - l.measured()
	interval := l.interval()
	lat := make([]time.Duration, n)
	lag := make([]time.Duration, n)
	by := make([]string, n)
	errs := make([]error, n)
	sem := make(chan struct{}, l.maxOutstanding)
	payload := &wrapperspb.BytesValue{Value: make([]byte, 32)}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			errs[i] = errSaturated
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			lag[i] = time.Since(at)
			cctx, cancel := context.WithDeadline(ctx, at.Add(l.timeout))
			defer cancel()
			var hdr metadata.MD
			out := new(wrapperspb.BytesValue)
			err := conn.Invoke(cctx, workMethod, payload, out, grpc.Header(&hdr))
			lat[i] = time.Since(at)
			errs[i] = err
			if v := hdr.Get(servedByKey); len(v) > 0 {
				by[i] = v[0]
			}
		})
	}
	wg.Wait()
	o := &outcome{
		errors: map[string]int{},
		served: map[string]int{},
		hist:   hdrhistogram.New(1, int64(time.Minute), 3),
		lag:    hdrhistogram.New(1, int64(time.Minute), 3),
	}
	for i := first; i < n; i++ {
		o.sent++
		_ = o.lag.RecordValue(max(1, int64(lag[i])))
		if errs[i] != nil {
			o.failed++
			o.errors[errorName(errs[i])]++
			continue
		}
		_ = o.hist.RecordValue(max(1, int64(lat[i])))
		o.served[by[i]]++
	}
	return o
}

// errSaturated marks a call the generator could not send: it already had
// maxOutstanding calls waiting.
var errSaturated = errors.New("grpcbalance: generator saturated")

func errorName(err error) string {
	if errors.Is(err, errSaturated) {
		return "Saturated"
	}
	return status.Code(err).String()
}
