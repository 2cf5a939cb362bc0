//go:build e2e

package e2e

import (
	"context"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// The twin's load driver. The experiment tests the controller, not the
// load generator, so the driver holds the curve exactly and spreads it
// evenly over the pods that are ready, as the twin assumes (each ready pod
// serves an equal share): it sends to the pods' own addresses, the share
// moving to a pod as soon as the pod watch sees it Ready and leaving a pod
// as soon as it is deleted, instead of leaving the split to kube-proxy's
// random choice per connection.
//
//   - In flight (the Pods HPA and KEDA): the level is a number of held
//     /wait requests, each kept until the level drops or its pod goes, so
//     the gauge never dips between requests; early=1 makes labecho answer
//     the headers at once, which is when the driver logs the request as
//     counted.
//   - CPU: open-loop /burn requests of a fixed CPU cost, round robin over
//     the ready pods.

// twinPort is labecho's port in the twin's pods.
const twinPort = "8080"

// podView is what the driver knows of one pod.
type podView struct {
	addr     string // host:port of labecho
	ready    bool
	deleting bool
}

// watchPodViews sends the namespace's pods as the driver sees them on
// every change until ctx ends; out holds only the latest view. It lists
// the pods, then watches from the list's version: a watch opened without
// one was seen to deliver nothing for minutes on a lab just started, so
// the watch also ends every 30 s and the pods are listed again.
func watchPodViews(ctx context.Context, l *lab, ns string, out chan map[string]podView) {
	send := func(views map[string]podView) {
		select {
		case <-out: // drop the stale view
		default:
		}
		out <- views
	}
	pause := func() {
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	for ctx.Err() == nil {
		list, err := l.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
		if err != nil {
			pause()
			continue
		}
		views := map[string]podView{}
		for i := range list.Items {
			views[list.Items[i].Name] = viewOf(&list.Items[i])
		}
		send(maps.Clone(views))
		timeout := int64(30)
		w, err := l.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=echo",
			ResourceVersion: list.ResourceVersion, TimeoutSeconds: &timeout})
		if err != nil {
			pause()
			continue
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				delete(views, p.Name)
			} else {
				views[p.Name] = viewOf(p)
			}
			send(maps.Clone(views))
		}
		w.Stop()
	}
}

// viewOf is the driver's view of p.
func viewOf(p *corev1.Pod) podView {
	v := podView{deleting: p.DeletionTimestamp != nil}
	if p.Status.PodIP != "" {
		v.addr = net.JoinHostPort(p.Status.PodIP, twinPort)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			v.ready = true
		}
	}
	return v
}

// servingPods returns the names of the pods that take load, sorted.
func servingPods(views map[string]podView) []string {
	var out []string
	for name, v := range views {
		if v.ready && !v.deleting && v.addr != "" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// evenSplit spreads n over the serving pods: each gets n/len(pods), and the
// remainder goes to the pods that hold the most now, so that a change
// moves as few requests as possible.
func evenSplit(n int, pods []string, now map[string]int) map[string]int {
	want := map[string]int{}
	if len(pods) == 0 {
		return want
	}
	base, rem := n/len(pods), n%len(pods)
	order := append([]string(nil), pods...)
	sort.SliceStable(order, func(i, j int) bool { return now[order[i]] > now[order[j]] })
	for i, p := range order {
		want[p] = base
		if i < rem {
			want[p]++
		}
	}
	return want
}

// twinDriver holds one curve's load on the pods watch reports.
type twinDriver struct {
	// watch sends the pods as they change until ctx ends, the latest
	// view replacing an unread one (watchPodViews).
	watch    func(ctx context.Context, views chan map[string]podView)
	steps    []loadStep
	inFlight bool // hold /wait requests; else burn CPU
	// serving, if not nil, is closed when the driver first has a pod to
	// send to.
	serving chan struct{}

	mu      sync.Mutex
	t0, end time.Time // the curve's start and end (setClock)
	started time.Time // when serving closed
	held    []heldAt
}

// heldAt is a heldChange at a wall-clock time, before the curve's start
// is known.
type heldAt struct {
	at    time.Time
	pod   string
	delta int
}

// setClock sets (or moves) the curve's start and end: before t0 the
// driver holds the first step's load.
func (d *twinDriver) setClock(t0, end time.Time) {
	d.mu.Lock()
	d.t0, d.end = t0, end
	d.mu.Unlock()
}

func (d *twinDriver) clock() (t0, end time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.t0, d.end
}

// markServing records the first time the driver has a pod to send to.
func (d *twinDriver) markServing(pods []string) {
	if len(pods) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started.IsZero() {
		d.started = time.Now()
		if d.serving != nil {
			close(d.serving)
		}
	}
}

// Started is when the driver first had a pod to send to, relative to the
// curve's start.
func (d *twinDriver) Started() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.started.Sub(d.t0)
}

// level is the curve's value at now: its first step's before t0.
func (d *twinDriver) level(now time.Time) float64 {
	t0, _ := d.clock()
	if now.Before(t0) {
		return d.steps[0].Value
	}
	return valueAt(d.steps, now.Sub(t0))
}

// running reports whether the curve has not ended at now.
func (d *twinDriver) running(now time.Time) bool {
	_, end := d.clock()
	return now.Before(end)
}

func (d *twinDriver) logHeld(pod string, delta int) {
	d.mu.Lock()
	d.held = append(d.held, heldAt{at: time.Now(), pod: pod, delta: delta})
	d.mu.Unlock()
}

// Held returns the held requests' log relative to the curve's start, in
// time order.
func (d *twinDriver) Held() []heldChange {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]heldChange, 0, len(d.held))
	for _, h := range d.held {
		out = append(out, heldChange{At: h.at.Sub(d.t0), Pod: h.pod, Delta: h.delta})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// run drives the load until end or ctx ends, and returns when every
// request it made has ended.
func (d *twinDriver) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	views := make(chan map[string]podView, 1)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); d.watch(ctx, views) }()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}
	defer client.CloseIdleConnections()
	if d.inFlight {
		d.hold(ctx, client, views)
		return
	}
	d.burn(ctx, client, views, &wg)
}

// burn sends level/twinBurn requests a second, each burning twinBurn ms
// of CPU, to the serving pods in turn.
func (d *twinDriver) burn(ctx context.Context, client *http.Client, views <-chan map[string]podView, wg *sync.WaitGroup) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var pods []string
	var ips map[string]podView
	credit, next := 0.0, 0
	last := time.Now()
	for d.running(time.Now()) {
		select {
		case <-ctx.Done():
			return
		case v := <-views:
			ips, pods = v, servingPods(v)
			d.markServing(pods)
			continue
		case <-tick.C:
		}
		// Credit what the curve asked for since the last tick, not a
		// tick's worth: a ticker drops ticks while this loop is not
		// scheduled, which on a busy node lost burns as the node got
		// busier.
		now := time.Now()
		t0, _ := d.clock()
		credit += burnsDue(d.steps, last.Sub(t0), now.Sub(t0))
		last = now
		for ; credit >= 1; credit-- {
			if len(pods) == 0 {
				continue
			}
			addr := ips[pods[next%len(pods)]].addr
			next++
			wg.Add(1)
			go func() {
				defer wg.Done()
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				req, err := http.NewRequestWithContext(rctx, "GET", "http://"+addr+"/burn?cpu=1&ms="+strconv.Itoa(twinBurn), nil)
				if err != nil {
					return
				}
				if resp, err := client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
	}
}

// burnsDue is the number of /burn requests steps ask for over [from, to)
// (times relative to the curve's start; its first step holds before it):
// the integral of the level, in millicores, over twinBurn.
func burnsDue(steps []loadStep, from, to time.Duration) float64 {
	return levelSeconds(steps, from, to) / twinBurn
}

// twinBurn is the CPU of one /burn request, in ms: a level of L millicores
// is L/twinBurn requests a second.
const twinBurn = 20

// heldReq is one held /wait request.
type heldReq struct {
	pod     string
	id      int
	counted bool // its headers arrived: labecho counts it
	cancel  context.CancelFunc
}

// hold keeps round(level) /wait requests in flight, spread evenly over the
// serving pods, until end. A request moves from one pod to another by
// opening the new one first and ending the old one once the new one is
// counted, so the total never dips below the level.
func (d *twinDriver) hold(ctx context.Context, client *http.Client, views <-chan map[string]podView) {
	var (
		pods    []string
		ips     map[string]podView
		live    = map[string][]*heldReq{}
		ended   = make(chan *heldReq)
		up      = make(chan *heldReq)
		nextID  int
		alive   int
		counted int
	)
	open := func(pod string) {
		rctx, cancel := context.WithCancel(ctx)
		r := &heldReq{pod: pod, id: nextID, cancel: cancel}
		nextID++
		live[pod] = append(live[pod], r)
		alive++
		addr := ips[pod].addr
		go func() {
			defer cancel()
			ok := false
			req, err := http.NewRequestWithContext(rctx, "GET", "http://"+addr+"/wait?early=1&ms=600000", nil)
			if err == nil {
				var resp *http.Response
				if resp, err = client.Do(req); err == nil {
					if resp.StatusCode == http.StatusOK {
						ok = true
						d.logHeld(pod, +1)
						select {
						case up <- r:
						case <-rctx.Done():
						}
						_, _ = io.Copy(io.Discard, resp.Body)
					}
					resp.Body.Close()
				}
			}
			if ok {
				d.logHeld(pod, -1)
			} else {
				// Refused (the pod is going) or unreachable: do not try it
				// again at once.
				select {
				case <-rctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
			ended <- r
		}()
	}
	// forget takes r out of the live set.
	forget := func(r *heldReq) {
		rs := live[r.pod]
		for i := range rs {
			if rs[i] == r {
				live[r.pod] = append(rs[:i:i], rs[i+1:]...)
				if r.counted {
					counted--
				}
				return
			}
		}
	}
	// stop ends one of pod's requests: one not yet counted first, else
	// the newest, if the others still hold n.
	stop := func(pod string, n int) bool {
		rs := live[pod]
		pick := rs[len(rs)-1]
		for _, r := range rs {
			if !r.counted {
				pick = r
				break
			}
		}
		if pick.counted && counted-1 < n {
			return false
		}
		forget(pick)
		pick.cancel()
		return true
	}
	reconcile := func() {
		n := 0
		if now := time.Now(); d.running(now) {
			n = int(math.Round(d.level(now)))
		}
		now := map[string]int{}
		for p, rs := range live {
			now[p] = len(rs)
		}
		want := evenSplit(n, pods, now)
		for _, p := range pods {
			for i := now[p]; i < want[p]; i++ {
				open(p)
			}
		}
		for p := range live {
			for len(live[p]) > want[p] {
				if !stop(p, n) {
					break
				}
			}
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for d.running(time.Now()) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case v := <-views:
			ips, pods = v, servingPods(v)
			d.markServing(pods)
		case r := <-up:
			if !r.counted {
				r.counted = true
				for _, l := range live[r.pod] {
					if l == r {
						counted++
					}
				}
			}
		case r := <-ended:
			alive--
			forget(r)
		case <-tick.C:
		}
		reconcile()
	}
	for p := range live {
		for _, r := range live[p] {
			r.cancel()
		}
	}
	for alive > 0 {
		select {
		case <-ended:
			alive--
		case <-up:
		}
	}
}
