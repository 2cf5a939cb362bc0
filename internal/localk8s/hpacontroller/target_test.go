package hpacontroller_test

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/hpacontroller"
)

// deployments is the test's in-memory stand-in for the cluster's
// Deployments: pods are created at once when scaled up, turn ready after
// startup, and a scale-down removes unready pods first, then the newest,
// as a ReplicaSet does (and as autoscale.Simulate models).
type deployments struct {
	mu      sync.Mutex
	now     func() time.Time
	startup time.Duration
	request float64 // cores per pod
	deps    map[string]*deployment
	scales  []string
	failPod error
}

type deployment struct {
	pods   []*fakePod
	nextID int
}

type fakePod struct {
	name    string
	created time.Time
	cpu     time.Duration
}

var _ hpacontroller.Target = (*deployments)(nil)

func newDeployments(now func() time.Time, startup time.Duration, request float64) *deployments {
	return &deployments{now: now, startup: startup, request: request, deps: map[string]*deployment{}}
}

// add creates a deployment whose pods were created long ago.
func (d *deployments) add(ns, name string, replicas int, created time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dep := &deployment{}
	d.deps[ns+"/"+name] = dep
	for range replicas {
		dep.pods = append(dep.pods, &fakePod{name: fmt.Sprintf("%s-%d", name, dep.nextID), created: created})
		dep.nextID++
	}
}

func (d *deployments) ready(p *fakePod, now time.Time) bool {
	return !p.created.Add(d.startup).After(now)
}

func (d *deployments) Pods(ns, name string) (int32, []hpacontroller.PodView, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failPod != nil {
		return 0, nil, d.failPod
	}
	dep, ok := d.deps[ns+"/"+name]
	if !ok {
		return 0, nil, fmt.Errorf("deployment %s/%s not found", ns, name)
	}
	now := d.now()
	var out []hpacontroller.PodView
	for _, p := range dep.pods {
		v := hpacontroller.PodView{Name: p.name, StartTime: p.created, CPURequest: d.request, CPUTime: p.cpu}
		if d.ready(p, now) {
			v.Ready, v.ReadyTime = true, p.created.Add(d.startup)
		}
		out = append(out, v)
	}
	return int32(len(dep.pods)), out, nil
}

func (d *deployments) Scale(ns, name string, replicas int32, reason string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dep, ok := d.deps[ns+"/"+name]
	if !ok {
		return fmt.Errorf("deployment %s/%s not found", ns, name)
	}
	now := d.now()
	d.scales = append(d.scales, fmt.Sprintf("%s/%s %d->%d: %s", ns, name, len(dep.pods), replicas, reason))
	for int32(len(dep.pods)) < replicas {
		dep.pods = append(dep.pods, &fakePod{name: fmt.Sprintf("%s-%d", name, dep.nextID), created: now})
		dep.nextID++
	}
	if int32(len(dep.pods)) > replicas {
		sort.SliceStable(dep.pods, func(i, j int) bool {
			ri, rj := d.ready(dep.pods[i], now), d.ready(dep.pods[j], now)
			if ri != rj {
				return ri
			}
			return dep.pods[i].created.Before(dep.pods[j].created)
		})
		dep.pods = dep.pods[:replicas]
	}
	return nil
}

// burn spreads load (in pods' worth of CPU) over the ready pods for dt:
// each gets the same whole number of millicores, truncated as
// autoscale.Simulate truncates.
func (d *deployments) burn(ns, name string, load float64, dt time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dep := d.deps[ns+"/"+name]
	now := d.now()
	ready := 0
	for _, p := range dep.pods {
		if d.ready(p, now) {
			ready++
		}
	}
	if ready == 0 {
		return
	}
	// Each ready pod burns its share to the nanosecond, as a real pod's
	// CPU counter does.
	share := load / float64(ready) * d.request
	for _, p := range dep.pods {
		if d.ready(p, now) {
			p.cpu += time.Duration(share * float64(dt))
		}
	}
}

func (d *deployments) replicas(ns, name string) int32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return int32(len(d.deps[ns+"/"+name].pods))
}
