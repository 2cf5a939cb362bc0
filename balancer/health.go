package balancer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults applied by [New] to zero fields of [HealthCheck].
const (
	DefaultHealthInterval           = 5 * time.Second
	DefaultHealthTimeout            = time.Second
	DefaultHealthUnhealthyThreshold = 2
	DefaultHealthHealthyThreshold   = 1
)

// HealthCheck configures active health checks: an HTTP GET of Path on
// every endpoint each Interval. They judge what requests cannot: an
// endpoint that gets no traffic (ejected, or cold under consistent
// hashing), or one whose admin port says it is draining before its
// requests fail. An endpoint failing UnhealthyThreshold checks in a row
// takes no requests until it passes HealthyThreshold in a row; the max
// ejection percent does not apply, but the balancer still sends requests
// somewhere when every endpoint is out. Endpoints start healthy.
//
// The zero value (no Path) turns active checks off, the default: passive
// outlier detection alone judges endpoints.
type HealthCheck struct {
	// Path is the path to GET, e.g. "/readyz". Empty means no checks.
	Path string
	// Port to check on the endpoint's host, e.g. an admin port. Zero
	// means the endpoint's own port.
	Port int
	// Interval between rounds of checks. Zero means
	// DefaultHealthInterval (5s).
	Interval time.Duration
	// Timeout of one check. Zero means DefaultHealthTimeout (1s).
	Timeout time.Duration
	// UnhealthyThreshold is the failed checks in a row that take an
	// endpoint out. Zero means DefaultHealthUnhealthyThreshold (2).
	UnhealthyThreshold int
	// HealthyThreshold is the passed checks in a row that bring it back.
	// Zero means DefaultHealthHealthyThreshold (1).
	HealthyThreshold int
	// Transport sends the checks. Nil means a transport of the
	// balancer's own, closed by [Balancer.Close]; a check passes on a
	// 2xx or 3xx status within Timeout.
	Transport http.RoundTripper
}

// validate is called by [Config.Validate].
func (h HealthCheck) validate() error {
	switch {
	case h.Path != "" && !strings.HasPrefix(h.Path, "/"):
		return fmt.Errorf("balancer: HealthCheck.Path %q does not start with /", h.Path)
	case h.Port < 0 || h.Port > 65535:
		return fmt.Errorf("balancer: HealthCheck.Port %d out of range 0-65535", h.Port)
	case h.Interval < 0:
		return fmt.Errorf("balancer: HealthCheck.Interval %v is negative", h.Interval)
	case h.Timeout < 0:
		return fmt.Errorf("balancer: HealthCheck.Timeout %v is negative", h.Timeout)
	case h.UnhealthyThreshold < 0:
		return fmt.Errorf("balancer: HealthCheck.UnhealthyThreshold %d is negative", h.UnhealthyThreshold)
	case h.HealthyThreshold < 0:
		return fmt.Errorf("balancer: HealthCheck.HealthyThreshold %d is negative", h.HealthyThreshold)
	}
	return nil
}

// withDefaults returns h with its zero fields replaced by their defaults,
// except Transport, which New fills.
func (h HealthCheck) withDefaults() HealthCheck {
	if h.Interval == 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout == 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.UnhealthyThreshold == 0 {
		h.UnhealthyThreshold = DefaultHealthUnhealthyThreshold
	}
	if h.HealthyThreshold == 0 {
		h.HealthyThreshold = DefaultHealthHealthyThreshold
	}
	return h
}

// healthCheck holds the thresholds after defaults.
type healthCheck struct {
	healthy, unhealthy int
}

// checkLoop runs a round of checks every interval until ctx ends.
func (b *Balancer) checkLoop(ctx context.Context) {
	defer close(b.checksDone)
	tick := time.NewTicker(b.cfg.HealthCheck.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.ready:
		}
		b.checkRound(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// checkRound checks every endpoint of the current set at once and returns
// when all checks are done, so one that hangs delays no other.
func (b *Balancer) checkRound(ctx context.Context) {
	s := b.snap.Load()
	if s == nil {
		return
	}
	var wg sync.WaitGroup
	for _, e := range s.eps {
		wg.Go(func() {
			ok := b.check(ctx, e)
			if ctx.Err() != nil {
				return // closing: the result says nothing about e
			}
			if e.observeCheck(ok, b.health) {
				e.m.health(ok)
				if ok {
					b.log.Info("balancer: endpoint passes health checks again", "addr", e.addr)
				} else {
					b.log.Warn("balancer: endpoint fails health checks", "addr", e.addr,
						"path", b.cfg.HealthCheck.Path)
				}
			}
		})
	}
	wg.Wait()
}

// check sends one health check to e.
func (b *Balancer) check(ctx context.Context, e *Endpoint) bool {
	hc := b.cfg.HealthCheck
	host, port, err := net.SplitHostPort(e.addr)
	if err != nil {
		return false
	}
	if hc.Port != 0 {
		port = strconv.Itoa(hc.Port)
	}
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+hc.Path, nil)
	if err != nil {
		return false
	}
	resp, err := hc.Transport.RoundTrip(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}
