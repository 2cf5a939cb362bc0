package up_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/internal/localk8s/cluster"
	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
)

// TestKill9RestartsAndNoTrafficBeforeReady kills one thumbnailer's process
// with SIGKILL under steady load through the Ingress and the gallery. The
// pod must restart in place (same name and IP, restarts 1) and become
// ready again, the gallery must lose no request, and the cluster must not
// route to the pod before it is ready again.
//
// Routing is what Kubernetes guarantees through its endpoints: between the
// kill and the ready transition the test asks the cluster DNS for the
// headless Service the gallery balances over, and sends requests on new
// connections through the thumbnailer's ClusterIP Service, each round
// between two snapshots that both show the restarted pod not ready. Once
// an answer has dropped the pod (the endpoints were published after the
// kill), no answer may offer it and no request through the front door may
// be served by it (X-Served-By) until it is ready. Requests the gallery
// sends on its own, from a DNS answer it resolved before the kill, are
// client-side balancing, which Kubernetes does not govern: the restarted
// process's http_requests_total, which starts at zero, counts them and the
// test reports the number. Once ready, the pod must get traffic again.
func TestKill9RestartsAndNoTrafficBeforeReady(t *testing.T) {
	t.Parallel()
	n := netsOf("127.0.33.0/24", "127.0.34.0/24")
	opts := localOptions(t, n)
	up := startUp(t, opts)
	t.Cleanup(func() { logGalleryWarnings(t, opts.RunDir) })
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if _, err := up.api.waitFor(ctx, "every deployment ready", allReady); err != nil {
		t.Fatal(err)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	cookie, err := login(ctx, client, up.info.Ingress, galleryHost, "ann")
	if err != nil {
		t.Fatal(err)
	}
	load := startLoad(ctx, t, up.info.Ingress, cookie, 20, testPNGs(t, 16))
	if err := load.waitRuns(ctx, 2); err != nil {
		t.Fatal(err)
	}

	// The victim is the thumbnailer that served the most so far: the one
	// whose loss the gallery has to absorb.
	s, err := up.api.snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, upstream := load.b.served()
	var victim api.PodInfo
	for _, p := range podsOf(s, "thumbnailer") {
		if victim.Name == "" || upstream[p.Name] > upstream[victim.Name] {
			victim = p
		}
	}
	if upstream[victim.Name] == 0 || len(victim.PIDs) != 1 || victim.PIDs[0] == 0 || victim.Restarts != 0 {
		t.Fatalf("no thumbnailer to kill: served %s\n%s", sortedKeys(upstream), describe(s))
	}
	metricsURL := "http://" + victim.IP + ":9090/metrics"
	scraper := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	svcURL := "http://" + serviceAddr(t, s, "thumbnailer") + "/v1/thumbnails?width=16&height=16"
	headless := "thumbnailer-headless.default.svc." + cluster.DefaultDomain + "."
	dns := clusterResolver(n)
	direct1 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	img := testPNGs(t, 1)[0]
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()

	// A restarted container is probed at its probe workers' next tick, so
	// the not-ready window after a kill is anywhere from a few
	// milliseconds to the startup probe's period. A window too short to
	// sample proves nothing either way: kill again, at most three times.
	var (
		newPID     int
		viaGallery float64 // requests the restarted process counted before ready
		killedAt   time.Time
		kills      int32
	)
	for observed := false; !observed; {
		if kills == 3 {
			t.Fatalf("three kills of %s, and not one not-ready window long enough to sample", victim.Name)
		}
		s, err := up.api.snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cur, ok := podNamed(s, victim.Name)
		if !ok || len(cur.PIDs) != 1 || cur.PIDs[0] == 0 || cur.Restarts != kills || !cur.Ready {
			t.Fatalf("pod %s before kill %d:\n%s", victim.Name, kills+1, describe(s))
		}
		pid := cur.PIDs[0]
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil || !strings.Contains(string(cmdline), bins.thumbnailer) {
			t.Fatalf("PID %d of pod %s is not the thumbnailer: %q %v", pid, victim.Name, cmdline, err)
		}
		killedAt = time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		kills++
		t.Logf("kill %d: pod %s (PID %d, %s, %d requests served)", kills, victim.Name, pid, victim.IP, upstream[victim.Name])

		// Watch the restarted process until the pod is ready. Each round
		// asks the cluster DNS for the headless Service (what the gallery
		// resolves) and sends one request on a new connection through the
		// ClusterIP Service's front door, between two snapshots.
		var (
			rounds      int  // rounds bracketed by not-ready snapshots
			removed     bool // the DNS answer has dropped the pod since the kill
			dnsEarly    int  // later answers that offered the pod again
			direct      int  // front-door requests after the removal
			directEarly []string
			directFails []string
			readyAfter  time.Duration
			restartSeen time.Duration
		)
		for readyAfter == 0 {
			select {
			case <-ctx.Done():
				s, _ := up.api.snapshot(context.Background())
				t.Fatalf("pod %s not ready again: %v\n%s", victim.Name, ctx.Err(), describe(s))
			case <-tick.C:
			}
			s1, err := up.api.snapshot(ctx)
			if err != nil {
				continue
			}
			p, ok := podNamed(s1, victim.Name)
			if !ok {
				t.Fatalf("pod %s was replaced, not restarted:\n%s", victim.Name, describe(s1))
			}
			if p.Restarts < kills || len(p.PIDs) != 1 || p.PIDs[0] == 0 || p.PIDs[0] == pid {
				continue // the kill is not noticed yet
			}
			if restartSeen == 0 {
				restartSeen = time.Since(killedAt)
				newPID = p.PIDs[0]
			}
			if p.Ready {
				readyAfter = time.Since(killedAt)
				break
			}
			addrs, dnsErr := dns.LookupHost(ctx, headless)
			offered := slices.Contains(addrs, victim.IP)
			servedBy, status, postErr := post(ctx, direct1, svcURL, img)
			sample, scrapeErr := podmetrics.Scrape(ctx, scraper, metricsURL)
			s2, err := up.api.snapshot(ctx)
			if err != nil {
				continue
			}
			if p2, ok := podNamed(s2, victim.Name); !ok || p2.Ready || len(p2.PIDs) != 1 || p2.PIDs[0] != newPID {
				continue // ready (or restarted again) during the round: it proves nothing
			}
			rounds++
			if dnsErr == nil {
				if !removed && !offered {
					removed = true // endpoints published since the kill; from here on the pod is out
				} else if removed && offered {
					dnsEarly++
				}
			}
			if removed {
				direct++
				switch {
				case postErr != nil || status != http.StatusOK:
					directFails = append(directFails, fmt.Sprintf("%d %v", status, postErr))
				case servedBy == victim.Name:
					directEarly = append(directEarly, servedBy)
				}
			}
			if scrapeErr == nil {
				viaGallery = max(viaGallery, requests(sample))
			}
		}
		t.Logf("restart seen %s after the kill (new PID %d), ready again after %s", restartSeen.Round(time.Millisecond), newPID, readyAfter.Round(time.Millisecond))
		t.Logf("before ready: %d rounds; DNS offered the pod in %d answers after dropping it; %d front-door requests, %d answered by the pod, %d failed",
			rounds, dnsEarly, direct, len(directEarly), len(directFails))
		t.Logf("before ready: the restarted process counted %v requests from the gallery (its balancer keeps the address until its next DNS resolution)", viaGallery)
		observed = removed && direct > 0
		if !observed {
			t.Logf("the not-ready window (%s) was too short to sample; killing again", readyAfter.Round(time.Millisecond))
		}
		if dnsEarly > 0 {
			t.Errorf("the cluster DNS offered pod %s again before it was ready (%d answers)", victim.IP, dnsEarly)
		}
		if len(directEarly) > 0 {
			t.Errorf("the ClusterIP Service sent %d requests to pod %s before it was ready", len(directEarly), victim.Name)
		}
		if len(directFails) > 0 {
			t.Errorf("the ClusterIP Service failed %d requests with a ready endpoint left: %v", len(directFails), directFails)
		}
	}

	// Ready again, the pod gets its share back.
	var servedAfter float64
	for servedAfter <= viaGallery {
		select {
		case <-ctx.Done():
			t.Fatalf("restarted pod %s got no traffic after becoming ready: %v", victim.Name, ctx.Err())
		case <-tick.C:
		}
		if sample, err := podmetrics.Scrape(ctx, scraper, metricsURL); err == nil {
			servedAfter = requests(sample)
		}
	}
	t.Logf("traffic back on %s %s after the kill", victim.Name, time.Since(killedAt).Round(time.Millisecond))
	if err := load.waitRuns(ctx, load.runs.Load()+1); err != nil {
		t.Fatal(err)
	}
	res, err := load.finish()
	if err != nil {
		t.Fatal(err)
	}
	_, upstream = load.b.served()
	t.Logf("load: %s", res)
	t.Logf("served by thumbnailer pods: %s", sortedKeys(upstream))
	res.check(t)

	final, err := up.api.snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := podNamed(final, victim.Name)
	if !ok || p.Restarts != kills || !p.Ready || p.IP != victim.IP || p.PIDs[0] != newPID {
		t.Errorf("pod %s after %d kills: want restarts %d, ready, IP %s, PID %d; got\n%s", victim.Name, kills, kills, victim.IP, newPID, describe(final))
	}
	if d, _ := deploymentOf(final, "thumbnailer"); d.Ready != d.Replicas || len(podsOf(final, "thumbnailer")) != int(d.Replicas) {
		t.Errorf("thumbnailer deployment after the kill:\n%s", describe(final))
	}
}

// requests is a scrape's http_requests_total summed over every label.
func requests(s podmetrics.Sample) float64 {
	var n float64
	for _, v := range s.Requests {
		n += v
	}
	return n
}

// serviceAddr returns ClusterIP:port of a Service's first port.
func serviceAddr(t *testing.T, s api.Snapshot, name string) string {
	t.Helper()
	for _, svc := range s.Services {
		if svc.Name == name && svc.Type == "ClusterIP" && len(svc.Ports) > 0 {
			port, _, _ := strings.Cut(svc.Ports[0], "->")
			return net.JoinHostPort(svc.ClusterIP, port)
		}
	}
	t.Fatalf("no ClusterIP Service %s:\n%s", name, describe(s))
	return ""
}

// clusterResolver asks the cluster DNS server of n (the ServiceNet's .10)
// and nothing else.
func clusterResolver(n nets) *net.Resolver {
	a := n.service.Masked().Addr().As4()
	a[3] += 10
	server := net.JoinHostPort(netip.AddrFrom4(a).String(), "53")
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}
}

// post sends img to url and returns who answered.
func post(ctx context.Context, c *http.Client, url string, img []byte) (servedBy string, status int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(img))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "image/png")
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-Served-By"), resp.StatusCode, nil
}

// logGalleryWarnings logs, if t failed, the gallery pods' warnings: what
// they saw of the thumbnailers (failed calls, ejections).
func logGalleryWarnings(t *testing.T, runDir string) {
	if !t.Failed() {
		return
	}
	files, _ := filepath.Glob(filepath.Join(runDir, "logs", "gallery-*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var lines []string
		for line := range strings.Lines(string(b)) {
			if strings.Contains(line, "WARN") || strings.Contains(line, "ERROR") || strings.Contains(line, "balancer") {
				lines = append(lines, line)
			}
		}
		t.Logf("%s: %d warnings, the last 40:\n%s", filepath.Base(f), len(lines), strings.Join(lines[max(0, len(lines)-40):], ""))
	}
}
