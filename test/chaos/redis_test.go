package chaos

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/internal/localk8s/ingress"
	"github.com/shoal-dev/shoal/internal/testkit/redistest"
)

const (
	// fast503 is how soon a session request must get its 503 while Redis
	// is down or hung: the store's deadline (REDIS_TIMEOUT, 300ms) and
	// room for a loaded machine.
	fast503 = 500 * time.Millisecond
	// recoveryBound is how soon after Redis answers again a session
	// request must succeed: the breaker's cooldown (1s) or the sessions
	// check's interval (2s), whichever closes it first, and room.
	recoveryBound = 5 * time.Second
)

// TestRedisKilledHungBack kills the Redis a gallery keeps its sessions in,
// starts it again, hangs it (SIGSTOP: it accepts connections and answers
// nothing) and resumes it, while clients ask for a signed-in user's
// history. While Redis is gone or hung every session request must get a
// 503 with Retry-After within fast503 — never a hang — and the replica must
// stay ready (Redis is a dependency every replica shares, see
// docs/dependencies.md) and live; once Redis is back, requests must
// succeed again within recoveryBound, with the same gallery process.
func TestRedisKilledHungBack(t *testing.T) {
	const (
		workers = 8
		count   = 400 // per phase
	)
	// The append-only file keeps the session across the restart, as a
	// Redis with persistence or a replica would.
	rs := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	th := startThumbnailer(t, "DRAIN_DELAY=0s")
	g := startGallery(t, "THUMBNAILER_ADDRS="+addrsOf(th), "DRAIN_DELAY=0s", "REDIS_URL=redis://"+rs.Addr()+"/0")
	pid := g.PID()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cookie := login(ctx, t, client, g.URL("/v1/login"))
	history := func(ctx context.Context) (int, http.Header, time.Duration, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.URL("/v1/history"), nil)
		req.Header.Set("Cookie", cookie)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, time.Since(start), err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header, time.Since(start), nil
	}
	if code, _, _, err := history(ctx); err != nil || code != http.StatusOK {
		t.Fatalf("history with Redis up: %d, %v", code, err)
	}

	// outage checks that every session request of a phase gets a fast 503,
	// and that the replica stays ready, degraded, and live.
	outage := func(phase string) {
		t.Helper()
		var maxTook atomic.Int64
		res := hammer(ctx, workers, count, func(ctx context.Context, i int) error {
			code, h, took, err := history(ctx)
			for old := maxTook.Load(); int64(took) > old && !maxTook.CompareAndSwap(old, int64(took)); old = maxTook.Load() {
			}
			switch {
			case err != nil:
				return err
			case code != http.StatusServiceUnavailable:
				return &statusError{code}
			case h.Get("Retry-After") == "":
				return fmt.Errorf("503 without Retry-After")
			case took > fast503:
				return fmt.Errorf("503 after more than %v", fast503)
			}
			return nil
		})
		t.Logf("%s: %d session requests, 503 within %v: %d; slowest %v", phase, count, fast503, res.OK, time.Duration(maxTook.Load()).Round(time.Millisecond))
		if res.OK != count {
			t.Errorf("%s: %v", phase, res)
		}
		rep := waitReport(ctx, t, client, g.AdminURL("/readyz"), func(r health.Report) bool { return slices.Contains(r.Degraded, "sessions") })
		if rep.Status != health.StatusOK {
			t.Errorf("%s: readiness %+v, want ok with sessions degraded", phase, rep)
		}
		checkSameLiveProcess(ctx, t, client, g, pid, phase)
	}
	// recovery waits for a session request to succeed and reports how long
	// it took from when Redis answered again.
	recovery := func(phase string, since time.Time) {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, recoveryBound)
		defer rcancel()
		for {
			code, _, _, err := history(rctx)
			if err == nil && code == http.StatusOK {
				break
			}
			select {
			case <-rctx.Done():
				t.Fatalf("%s: history still %d, %v after %v", phase, code, err, recoveryBound)
			case <-time.After(20 * time.Millisecond):
			}
		}
		t.Logf("%s: session requests succeed %v after Redis answers", phase, time.Since(since).Round(time.Millisecond))
		res := hammer(ctx, workers, count/4, func(ctx context.Context, i int) error {
			code, _, _, err := history(ctx)
			if err == nil && code != http.StatusOK {
				err = &statusError{code}
			}
			return err
		})
		if res.OK != count/4 {
			t.Errorf("%s: after recovery: %v", phase, res)
		}
		waitReport(ctx, t, client, g.AdminURL("/readyz"), func(r health.Report) bool { return len(r.Degraded) == 0 })
		checkSameLiveProcess(ctx, t, client, g, pid, phase)
	}

	rs.Stop()
	outage("redis killed")
	rs.Restart()
	recovery("redis restarted", time.Now())

	rs.Pause()
	outage("redis hung")
	rs.Resume()
	recovery("redis resumed", time.Now())
}

// login signs a user in at url and returns the Cookie header to send
// with later requests; the cookie may be Secure, so no jar would send it
// over plain HTTP.
func login(ctx context.Context, t *testing.T, client *http.Client, url string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"user":"chaos"}`))
	req.Header.Set("Content-Type", "application/json")
	return loginWith(t, client, req)
}

func loginWith(t *testing.T, client *http.Client, req *http.Request) string {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) == 0 {
		t.Fatalf("login: status %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	c := resp.Cookies()[0]
	return c.Name + "=" + c.Value
}

// waitReport polls a probe until its report satisfies ok, failing the
// test after recoveryBound.
func waitReport(ctx context.Context, t *testing.T, client *http.Client, url string, ok func(health.Report) bool) health.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, recoveryBound)
	defer cancel()
	var rep health.Report
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			rep = health.Report{}
			_ = json.NewDecoder(resp.Body).Decode(&rep)
			resp.Body.Close()
			if ok(rep) {
				return rep
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: last report %+v", url, rep)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkSameLiveProcess fails the test if g is no longer the process it
// was, or its liveness fails: an outage of a dependency must never
// restart a replica.
func checkSameLiveProcess(ctx context.Context, t *testing.T, client *http.Client, g *proc, pid int, phase string) {
	t.Helper()
	if g.Exited() || g.PID() != pid || syscall.Kill(pid, 0) != nil {
		t.Fatalf("%s: gallery %d exited or was replaced", phase, pid)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.AdminURL("/livez"), nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: livez: %v", phase, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: livez %d", phase, resp.StatusCode)
	}
}

// measure turns on TestRedisReadinessPolicies, which takes minutes.
var measure = flag.Bool("measure", false, "run the measurements of docs/dependencies.md")

// Probe settings of the gallery's readinessProbe in deploy/base.
const (
	probePeriod    = 5 * time.Second
	probeTimeout   = 3 * time.Second
	probeThreshold = 2 // failureThreshold
)

// TestRedisReadinessPolicies measures, for both readiness policies
// (REDIS_CRITICAL off and on), what a client behind an Ingress sees while
// the Redis shared by two gallery replicas is killed or hung and then comes
// back: who answers (the service's own 503 or the proxy's, once no
// endpoint is ready), how fast, and how long until requests succeed again.
// Readiness is probed as the kubelet would with the deployment's probe
// settings. The figures are in docs/dependencies.md; run with
//
//	make measure-dependencies
func TestRedisReadinessPolicies(t *testing.T) {
	if !*measure {
		t.Skip("a measurement of minutes; run with -measure")
	}
	const (
		baseline = 3 * time.Second
		fault    = 20 * time.Second
		after    = 15 * time.Second
		every    = 50 * time.Millisecond
	)
	for _, critical := range []bool{false, true} {
		for _, kind := range []string{"killed", "hung"} {
			name := fmt.Sprintf("REDIS_CRITICAL=%v/redis %s", critical, kind)
			t.Run(name, func(t *testing.T) {
				rs := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
				th := startThumbnailer(t, "DRAIN_DELAY=0s")
				env := []string{"THUMBNAILER_ADDRS=" + addrsOf(th), "DRAIN_DELAY=0s",
					"REDIS_URL=redis://" + rs.Addr() + "/0", fmt.Sprintf("REDIS_CRITICAL=%v", critical)}
				replicas := []*proc{startGallery(t, env...), startGallery(t, env...)}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				front := startFront(ctx, t, replicas)

				client := &http.Client{Timeout: 30 * time.Second}
				defer client.CloseIdleConnections()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, front+"/v1/login", strings.NewReader(`{"user":"chaos"}`))
				req.Host = "gallery.localhost"
				cookie := loginWith(t, client, req)

				var (
					mu      sync.Mutex
					samples []sample
					wg      sync.WaitGroup
				)
				start := time.Now()
				tick := time.NewTicker(every)
				defer tick.Stop()
				end := start.Add(baseline + fault + after)
				var faultAt, backAt time.Time
				for now := range tick.C {
					if now.After(end) {
						break
					}
					switch {
					case faultAt.IsZero() && now.Sub(start) >= baseline:
						faultAt = time.Now()
						if kind == "killed" {
							rs.Stop()
						} else {
							rs.Pause()
						}
					case backAt.IsZero() && now.Sub(start) >= baseline+fault:
						if kind == "killed" {
							rs.Restart()
						} else {
							rs.Resume()
						}
						backAt = time.Now()
					}
					wg.Go(func() {
						s := get(ctx, client, front+"/v1/history", cookie)
						mu.Lock()
						samples = append(samples, s)
						mu.Unlock()
					})
				}
				wg.Wait()
				s := summarize(samples, faultAt, backAt)
				t.Logf("%s: %s", name, s)
			})
		}
	}
}

// sample is one request of the measurement.
type sample struct {
	at          time.Time
	code        int // 0 for a transport error
	took        time.Duration
	fromService bool // X-Served-By present: a replica answered, not the proxy
}

func get(ctx context.Context, client *http.Client, url, cookie string) sample {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Host = "gallery.localhost"
	req.Header.Set("Cookie", cookie)
	s := sample{at: time.Now()}
	resp, err := client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		s.code, s.fromService = resp.StatusCode, resp.Header.Get("X-Served-By") != ""
	}
	s.took = time.Since(s.at)
	return s
}

// summarize reports the requests sent while Redis was away and how soon
// after it was back every request succeeded.
func summarize(samples []sample, faultAt, backAt time.Time) string {
	slices.SortFunc(samples, func(a, b sample) int { return a.at.Compare(b.at) })
	var during, svc503, proxy503, other int
	var tooks []time.Duration
	lastBad := time.Time{}
	for _, s := range samples {
		if s.code != http.StatusOK && !s.at.Before(faultAt) {
			lastBad = s.at.Add(s.took)
		}
		if s.at.Before(faultAt) || !s.at.Before(backAt) {
			continue
		}
		during++
		tooks = append(tooks, s.took)
		switch {
		case s.code == http.StatusServiceUnavailable && s.fromService:
			svc503++
		case s.code == http.StatusServiceUnavailable:
			proxy503++
		default:
			other++
		}
	}
	slices.Sort(tooks)
	pct := func(q float64) time.Duration {
		if len(tooks) == 0 {
			return 0
		}
		return tooks[min(len(tooks)-1, int(q*float64(len(tooks))))].Round(time.Millisecond)
	}
	recovered := "at once"
	if lastBad.After(backAt) {
		recovered = lastBad.Sub(backAt).Round(10 * time.Millisecond).String()
	}
	return fmt.Sprintf("during the fault %d requests: %d service 503 (Retry-After), %d proxy 503 (no endpoint), %d other; latency p50 %v p99 %v max %v; all requests succeed %s after Redis is back",
		during, svc503, proxy503, other, pct(0.5), pct(0.99), pct(1), recovered)
}

// startFront runs an Ingress for host gallery.localhost in front of
// replicas, whose endpoints are ready as a kubelet would judge them with
// the deployment's readiness probe. It returns the Ingress's URL.
func startFront(ctx context.Context, t *testing.T, replicas []*proc) string {
	t.Helper()
	ready := make([]atomic.Bool, len(replicas))
	var wg sync.WaitGroup
	probe := &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	for i, p := range replicas {
		ready[i].Store(true)
		wg.Go(func() {
			fails := 0
			tick := time.NewTicker(probePeriod)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				ok := false
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.AdminURL("/readyz"), nil)
				if resp, err := probe.Do(req); err == nil {
					resp.Body.Close()
					ok = resp.StatusCode == http.StatusOK
				}
				if ok {
					fails = 0
					ready[i].Store(true)
				} else if fails++; fails >= probeThreshold {
					ready[i].Store(false)
				}
			}
		})
	}
	t.Cleanup(wg.Wait)
	h := ingress.New(ingress.Config{Endpoints: func(b ingress.Backend) []netip.AddrPort {
		var out []netip.AddrPort
		for i, p := range replicas {
			if b.Service == "gallery" && ready[i].Load() {
				out = append(out, netip.MustParseAddrPort(p.Addr))
			}
		}
		return out
	}})
	prefix := networkingv1.PathTypePrefix
	err := h.Update([]*networkingv1.Ingress{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "gallery"},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "gallery.localhost",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &prefix,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "gallery", Port: networkingv1.ServiceBackendPort{Name: "http"},
					}},
				}},
			}},
		}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.CloseIdleConnections()
	})
	return srv.URL
}
