package hpacontroller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"sort"
	"sync"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/shoal-dev/shoal/autoscale"
	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
)

// ErrTarget is wrapped when the scale target cannot be read or scaled.
var ErrTarget = errors.New("hpacontroller: scale target")

// PodView is one pod of a scale target as the controller needs it.
type PodView struct {
	Name string
	IP   netip.Addr
	// Ready is the pod's Ready condition; Deleted marks a terminating pod.
	Ready, Deleted bool
	// StartTime is zero for a pod whose containers have not started;
	// ReadyTime is when Ready last changed.
	StartTime, ReadyTime time.Time
	// CPURequest is the sum of the containers' CPU requests, in cores.
	CPURequest float64
	// CPUTime is the cumulative CPU time of the pod's processes.
	CPUTime time.Duration
	// MetricsURL is the pod's /metrics, for callers that scrape it.
	MetricsURL string
}

// Target is the workload side: a namespace's Deployments.
type Target interface {
	// Pods returns a Deployment's spec.replicas and its pods.
	Pods(namespace, deployment string) (replicas int32, pods []PodView, err error)
	// Scale sets a Deployment's spec.replicas.
	Scale(namespace, deployment string, replicas int32, reason string) error
}

// Metrics serves pods' custom metrics (through the adapter rules) and
// KEDA prometheus trigger queries.
type Metrics interface {
	PodsMetric(ctx context.Context, namespace string, pods []string, metric string) (map[string]float64, error)
	Query(ctx context.Context, query string) (float64, error)
}

var (
	_ Metrics = (*podmetrics.Direct)(nil)
	_ Metrics = (*podmetrics.Prometheus)(nil)
)

// Event is a Kubernetes-style event about an autoscaler.
type Event struct {
	// Namespace is the namespace of the autoscaler the event is about.
	Namespace string
	// Type is Normal or Warning.
	Type string
	// Object is "hpa/NAME" or "scaledobject/NAME".
	Object  string
	Reason  string
	Message string
}

// Config configures a [Controller]. Target is required.
type Config struct {
	// Target reads and scales the Deployments.
	Target Target
	// Metrics serves Pods metrics and trigger queries. If nil, those
	// metrics are reported as unavailable.
	Metrics Metrics
	// Autoscale holds the HPA controller's settings (tolerance,
	// stabilization, CPU initialization period).
	Autoscale autoscale.Config
	// SyncPeriod is the time between reconciliations in Run
	// (--horizontal-pod-autoscaler-sync-period). If zero, 15s.
	SyncPeriod time.Duration
	// CPUWindow is the span over which CPU usage is averaged, as
	// metrics-server's resolution. If zero, 15s.
	CPUWindow time.Duration
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
	// Logger receives the controller's logs. If nil, nothing is logged.
	Logger *slog.Logger
	// OnEvent receives events (SuccessfulRescale, FailedRescale,
	// FailedGetScale, KEDAScaleTargetActivated, ...). If nil, dropped.
	OnEvent func(Event)
}

// Controller reconciles HorizontalPodAutoscalers and KEDA ScaledObjects
// against a [Target]. Its methods are safe for concurrent use.
type Controller struct {
	cfg Config
	log *slog.Logger

	// syncMu serializes reconciliations and changes of the set, which
	// own the entries' histories; mu guards the map and the statuses.
	syncMu  sync.Mutex
	mu      sync.Mutex
	entries map[string]*entry
	// pending holds the keys of the autoscalers Set added or whose spec it
	// changed, which Run reconciles at once instead of at the next sync
	// period; kick wakes Run for them. pending is guarded by mu.
	pending map[string]bool
	kick    chan struct{}
}

type entry struct {
	key  string
	kind string
	hpa  *autoscalingv2.HorizontalPodAutoscaler // a ScaledObject's own HPA for KEDA
	so   *autoscale.ScaledObject

	recommendations []autoscale.Recommendation
	scaleEvents     []autoscale.ScaleEvent
	conditions      []autoscalingv2.HorizontalPodAutoscalerCondition
	cpu             map[string][]podmetrics.CPUSample
	lastActive      *time.Time
	lastPoll        time.Time

	status api.AutoscalerInfo // guarded by Controller.mu
}

// New returns a controller with no autoscalers.
func New(cfg Config) *Controller {
	if cfg.SyncPeriod <= 0 {
		cfg.SyncPeriod = 15 * time.Second
	}
	if cfg.CPUWindow <= 0 {
		cfg.CPUWindow = 15 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Controller{cfg: cfg, log: log, entries: map[string]*entry{}, pending: map[string]bool{}, kick: make(chan struct{}, 1)}
}

func namespaceOf(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// Set replaces the autoscalers. One that keeps its kind, namespace and
// name keeps its history (recommendations, scale events, CPU samples,
// KEDA's last active time). Invalid objects are left out and reported in
// the returned error; the valid ones are set regardless.
func (c *Controller) Set(hpas []*autoscalingv2.HorizontalPodAutoscaler, sos []*autoscale.ScaledObject) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	now := c.cfg.Now()
	next := map[string]*entry{}
	var errs []error
	add := func(e *entry) {
		if _, dup := next[e.key]; dup {
			errs = append(errs, fmt.Errorf("hpacontroller: %s is listed twice", e.key))
			return
		}
		next[e.key] = e
	}
	for _, h := range hpas {
		if h == nil {
			continue
		}
		h = h.DeepCopy()
		h.Namespace = namespaceOf(h.Namespace)
		key := api.KindHPA + "/" + h.Namespace + "/" + h.Name
		if err := validateHPA(h, now); err != nil {
			errs = append(errs, fmt.Errorf("hpacontroller: %s: %w", key, err))
			continue
		}
		add(&entry{key: key, kind: api.KindHPA, hpa: h})
	}
	for _, so := range sos {
		if so == nil {
			continue
		}
		key := api.KindScaledObject + "/" + namespaceOf(so.Namespace) + "/" + so.Name
		so, err := copyScaledObject(so)
		if err != nil {
			errs = append(errs, fmt.Errorf("hpacontroller: %s: %w", key, err))
			continue
		}
		so.Namespace = namespaceOf(so.Namespace)
		h, err := so.HPA()
		if err == nil {
			err = validateHPA(h, now)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("hpacontroller: %s: %w", key, err))
			continue
		}
		add(&entry{key: key, kind: api.KindScaledObject, hpa: h, so: so})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, e := range next {
		old, ok := c.entries[key]
		if ok {
			e.recommendations, e.scaleEvents, e.conditions = old.recommendations, old.scaleEvents, old.conditions
			e.cpu, e.lastActive, e.lastPoll, e.status = old.cpu, old.lastActive, old.lastPoll, old.status
		}
		e.status = e.baseStatus(e.status)
		// As Kubernetes v1.37's controller: a new autoscaler is reconciled
		// at once, and so is a changed spec (a new metadata.generation)
		// while HPAGeneration is on; otherwise the next sync period does.
		if !ok || (c.cfg.Autoscale.Enabled(autoscale.GateGeneration) && specChanged(old, e)) {
			c.pending[key] = true
		}
	}
	for key := range c.pending {
		if next[key] == nil {
			delete(c.pending, key)
		}
	}
	c.entries = next
	if len(c.pending) > 0 {
		select {
		case c.kick <- struct{}{}:
		default: // Run is already due to look
		}
	}
	return errors.Join(errs...)
}

// specChanged reports whether Set changed what the autoscaler asks for,
// as the API server's generation bump on a spec update does.
func specChanged(old, cur *entry) bool {
	if !apiequality.Semantic.DeepEqual(old.hpa.Spec, cur.hpa.Spec) {
		return true
	}
	if old.so == nil || cur.so == nil {
		return old.so != cur.so
	}
	return !reflect.DeepEqual(old.so.Spec, cur.so.Spec)
}

// copyScaledObject makes a deep copy, so the caller may keep changing
// its object; the KEDA types have no generated DeepCopy.
func copyScaledObject(so *autoscale.ScaledObject) (*autoscale.ScaledObject, error) {
	data, err := json.Marshal(so)
	if err != nil {
		return nil, err
	}
	var out autoscale.ScaledObject
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func validateHPA(h *autoscalingv2.HorizontalPodAutoscaler, now time.Time) error {
	if h.Name == "" {
		return errors.New("metadata.name is required")
	}
	ref := h.Spec.ScaleTargetRef
	if ref.Name == "" {
		return errors.New("spec.scaleTargetRef.name is required")
	}
	if ref.Kind != "" && ref.Kind != "Deployment" {
		return fmt.Errorf("spec.scaleTargetRef.kind %q is not supported (Deployment only)", ref.Kind)
	}
	in := autoscale.Input{HPA: h, Now: now, CurrentReplicas: 1}
	return in.Validate()
}

// baseStatus fills the fields that come from the spec.
func (e *entry) baseStatus(s api.AutoscalerInfo) api.AutoscalerInfo {
	s.Kind, s.Namespace = e.kind, e.hpa.Namespace
	s.Name = e.hpa.Name
	if e.so != nil {
		s.Name = e.so.Name
	}
	s.Target = "deployment/" + e.hpa.Spec.ScaleTargetRef.Name
	s.Min = 1
	if e.hpa.Spec.MinReplicas != nil {
		s.Min = *e.hpa.Spec.MinReplicas
	}
	if e.so != nil {
		s.Min = 0
		if e.so.Spec.MinReplicaCount != nil {
			s.Min = *e.so.Spec.MinReplicaCount
		}
	}
	s.Max = e.hpa.Spec.MaxReplicas
	return s
}

// Status returns every autoscaler's latest state, sorted by kind,
// namespace and name.
func (c *Controller) Status() []api.AutoscalerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]api.AutoscalerInfo, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, e.status)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out
}

// Run reconciles every SyncPeriod, starting at once, until ctx ends, and
// between periods reconciles at once the autoscalers Set adds or changes.
// Failed reconciliations are logged, not fatal.
func (c *Controller) Run(ctx context.Context) {
	tick := time.NewTicker(c.cfg.SyncPeriod)
	defer tick.Stop()
	sync := c.SyncOnce
	for {
		if err := sync(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("autoscaler reconciliation failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			sync = c.SyncOnce
		case <-c.kick:
			sync = c.syncPending
		}
	}
}

// syncPending reconciles the autoscalers Set added or changed since they
// were last reconciled.
func (c *Controller) syncPending(ctx context.Context) error {
	return c.syncWhere(ctx, func(key string) bool { return c.pending[key] })
}

// SyncOnce reconciles every autoscaler once, at the clock's current time:
// it samples the pods' CPU time, reads the metrics, polls KEDA triggers
// whose polling interval has passed, decides with package autoscale and
// scales the targets. Given the same target, metrics and clock it makes
// the same decisions. The error joins the autoscalers' failures to read
// or scale their targets; metric failures are only in their Status.
func (c *Controller) SyncOnce(ctx context.Context) error {
	return c.syncWhere(ctx, func(string) bool { return true })
}

// syncWhere reconciles, in key order, the autoscalers whose key pick
// accepts (called with mu held), and takes them off the pending set.
func (c *Controller) syncWhere(ctx context.Context, pick func(key string) bool) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	c.mu.Lock()
	list := make([]*entry, 0, len(c.entries))
	for key, e := range c.entries {
		if pick(key) {
			list = append(list, e)
			delete(c.pending, key)
		}
	}
	c.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].key < list[j].key })
	var errs []error
	for _, e := range list {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.sync(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) event(namespace, typ, object, reason, message string) {
	c.log.Info("autoscaler event", "namespace", namespace, "type", typ, "object", object, "reason", reason, "message", message)
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(Event{Namespace: namespace, Type: typ, Object: object, Reason: reason, Message: message})
	}
}

func (c *Controller) setStatus(e *entry, s api.AutoscalerInfo) {
	c.mu.Lock()
	e.status = s
	c.mu.Unlock()
}

func (c *Controller) sync(ctx context.Context, e *entry) error {
	now := c.cfg.Now()
	c.mu.Lock()
	st := e.baseStatus(e.status)
	c.mu.Unlock()
	st.LastSync = now
	st.MetricError = ""
	ns, deploy := e.hpa.Namespace, e.hpa.Spec.ScaleTargetRef.Name
	hpaObject := "hpa/" + e.hpa.Name

	replicas, pods, err := c.cfg.Target.Pods(ns, deploy)
	if err != nil {
		err = fmt.Errorf("%w: %s/%s: %w", ErrTarget, ns, deploy, err)
		st.Reason, st.MetricError = "FailedGetScale", err.Error()
		c.setStatus(e, st)
		c.event(ns, corev1.EventTypeWarning, hpaObject, "FailedGetScale", err.Error())
		return err
	}
	st.Current, st.Desired = replicas, replicas
	c.sampleCPU(e, now, pods)

	var external map[string]resource.Quantity
	var metricErrs []error
	if e.so != nil {
		values, qerr := c.triggerValues(ctx, e.so)
		if qerr != nil {
			metricErrs = append(metricErrs, qerr)
		}
		external = map[string]resource.Quantity{}
		for i, v := range values {
			if v != nil {
				external[e.so.MetricName(i)] = autoscale.MetricValue(*v)
			}
		}
		if qerr == nil && (e.lastPoll.IsZero() || !now.Before(e.lastPoll.Add(e.so.PollingInterval()))) {
			// cpu and memory triggers have no value: Activate ignores them.
			flat := make([]float64, len(values))
			for i, v := range values {
				if v != nil {
					flat[i] = *v
				}
			}
			done, err := c.activate(e, now, replicas, flat, &st)
			if err != nil || done {
				c.setStatus(e, st)
				return err
			}
		}
		if replicas == 0 {
			// Below one replica KEDA, not the HPA, decides.
			st.Metrics = metricsText(e.hpa, nil)
			if st.Reason == "" {
				st.Reason = "ScaledToZero"
			}
			st.MetricError = joinErrs(metricErrs)
			c.setStatus(e, st)
			return nil
		}
	}

	in := autoscale.Input{
		HPA:             e.hpa,
		Now:             now,
		CurrentReplicas: replicas,
		Pods:            c.podInputs(e, pods),
		ExternalMetrics: external,
		Recommendations: e.recommendations,
		ScaleEvents:     e.scaleEvents,
	}
	if len(e.conditions) > 0 {
		h := *e.hpa
		h.Status.Conditions = e.conditions
		in.HPA = &h
	}
	metricErrs = append(metricErrs, c.podsMetrics(ctx, e, ns, in.Pods)...)
	d, err := autoscale.Recommend(c.cfg.Autoscale, in)
	if err != nil {
		st.Reason, st.MetricError = "FailedComputeMetricsReplicas", err.Error()
		c.setStatus(e, st)
		return fmt.Errorf("hpacontroller: %s: %w", e.key, err)
	}
	e.recommendations, e.conditions = d.Recommendations, d.Conditions
	st.Metrics = metricsText(e.hpa, d.CurrentMetrics)
	st.Reason, st.Desired = d.Reason, d.DesiredReplicas
	if d.MetricError != "" {
		metricErrs = append(metricErrs, errors.New(d.MetricError))
	}
	st.MetricError = joinErrs(metricErrs)
	var scaleErr error
	if d.Rescale {
		if err := c.cfg.Target.Scale(ns, deploy, d.DesiredReplicas, d.Reason); err != nil {
			scaleErr = fmt.Errorf("%w: scale %s/%s to %d: %w", ErrTarget, ns, deploy, d.DesiredReplicas, err)
			c.event(ns, corev1.EventTypeWarning, hpaObject, "FailedRescale",
				fmt.Sprintf("New size: %d; reason: %s; error: %v", d.DesiredReplicas, d.Reason, err))
			st.Desired = replicas
		} else {
			e.scaleEvents = d.ScaleEvents
			st.LastScale = now
			c.event(ns, corev1.EventTypeNormal, hpaObject, "SuccessfulRescale",
				fmt.Sprintf("New size: %d; reason: %s", d.DesiredReplicas, d.Reason))
		}
	} else {
		e.scaleEvents = d.ScaleEvents
	}
	c.setStatus(e, st)
	return scaleErr
}

func joinErrs(errs []error) string {
	if len(errs) == 0 {
		return ""
	}
	return errors.Join(errs...).Error()
}

// activate is one KEDA poll. done reports that it scaled the target, which
// ends this reconciliation: the HPA sees the new count at the next.
func (c *Controller) activate(e *entry, now time.Time, replicas int32, values []float64, st *api.AutoscalerInfo) (done bool, err error) {
	a, err := e.so.Activate(now, replicas, values, e.lastActive)
	if err != nil {
		st.Reason, st.MetricError = "FailedActivate", err.Error()
		return true, fmt.Errorf("hpacontroller: %s: %w", e.key, err)
	}
	e.lastPoll, e.lastActive = now, a.LastActiveTime
	st.Reason = a.Reason
	if a.Replicas < 0 || a.Replicas == replicas {
		return false, nil
	}
	ns, deploy := e.hpa.Namespace, e.hpa.Spec.ScaleTargetRef.Name
	object := "scaledobject/" + e.so.Name
	reason, message := "KEDAScaleTargetActivated", fmt.Sprintf("Scaled apps/v1.Deployment %s/%s from %d to %d", ns, deploy, replicas, a.Replicas)
	if a.Replicas == 0 {
		reason, message = "KEDAScaleTargetDeactivated", fmt.Sprintf("Deactivated apps/v1.Deployment %s/%s from %d to %d", ns, deploy, replicas, a.Replicas)
	}
	if err := c.cfg.Target.Scale(ns, deploy, a.Replicas, a.Reason); err != nil {
		err = fmt.Errorf("%w: scale %s/%s to %d: %w", ErrTarget, ns, deploy, a.Replicas, err)
		c.event(ns, corev1.EventTypeWarning, object, "KEDAScaleTargetActivationFailed", err.Error())
		return true, err
	}
	st.Desired, st.LastScale = a.Replicas, now
	c.event(ns, corev1.EventTypeNormal, object, reason, message)
	return true, nil
}

// triggerValues runs each prometheus trigger's query; a failed one is
// nil. cpu and memory triggers are nil too: they are Resource metrics of
// the HPA, read from the pods' CPU usage like any HPA's.
func (c *Controller) triggerValues(ctx context.Context, so *autoscale.ScaledObject) ([]*float64, error) {
	values := make([]*float64, len(so.Spec.Triggers))
	var errs []error
	for i, t := range so.Spec.Triggers {
		if so.ResourceTrigger(i) {
			continue
		}
		if c.cfg.Metrics == nil {
			errs = append(errs, fmt.Errorf("hpacontroller: trigger %d: no metrics source", i))
			continue
		}
		v, err := c.cfg.Metrics.Query(ctx, t.Metadata["query"])
		if err != nil {
			errs = append(errs, fmt.Errorf("hpacontroller: trigger %d: %w", i, err))
			continue
		}
		values[i] = &v
	}
	return values, errors.Join(errs...)
}

// sampleCPU records each pod's cumulative CPU time and forgets pods that
// are gone and samples older than two windows.
func (c *Controller) sampleCPU(e *entry, now time.Time, pods []PodView) {
	if e.cpu == nil {
		e.cpu = map[string][]podmetrics.CPUSample{}
	}
	seen := map[string]bool{}
	for _, p := range pods {
		seen[p.Name] = true
		if p.StartTime.IsZero() {
			continue
		}
		h := e.cpu[p.Name]
		if n := len(h); n > 0 && !now.After(h[n-1].Time) {
			continue
		}
		h = append(h, podmetrics.CPUSample{Time: now, CPU: p.CPUTime})
		// Keep the newest sample at least a window old, and what follows.
		cut := 0
		for cut+1 < len(h)-1 && !h[cut+1].Time.After(now.Add(-c.cfg.CPUWindow)) {
			cut++
		}
		e.cpu[p.Name] = append(h[:0:0], h[cut:]...)
	}
	for name := range e.cpu {
		if !seen[name] {
			delete(e.cpu, name)
		}
	}
}

// cpuUsage is a pod's usage in cores over the window ending at its latest
// sample: from the newest sample at least a window older, else from the
// oldest one. It needs two samples, as metrics-server needs two scrapes.
func (c *Controller) cpuUsage(e *entry, pod string) (float64, time.Time, bool) {
	h := e.cpu[pod]
	if len(h) < 2 {
		return 0, time.Time{}, false
	}
	last := h[len(h)-1]
	from := h[0]
	for _, s := range h[:len(h)-1] {
		if !s.Time.After(last.Time.Add(-c.cfg.CPUWindow)) {
			from = s
		}
	}
	return podmetrics.CPURate(from, last), last.Time, true
}

func (c *Controller) podInputs(e *entry, pods []PodView) []autoscale.Pod {
	out := make([]autoscale.Pod, 0, len(pods))
	for _, p := range pods {
		ap := autoscale.Pod{
			Name:                p.Name,
			Phase:               corev1.PodPending,
			Ready:               p.Ready,
			Deleted:             p.Deleted,
			ReadyTransitionTime: p.ReadyTime,
		}
		if !p.StartTime.IsZero() {
			start := p.StartTime
			ap.StartTime = &start
			ap.Phase = corev1.PodRunning
			if ap.ReadyTransitionTime.IsZero() {
				ap.ReadyTransitionTime = start
			}
		}
		if p.CPURequest > 0 {
			ap.Requests = corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(int64(p.CPURequest*1000+0.5), resource.DecimalSI)}
		}
		if usage, at, ok := c.cpuUsage(e, p.Name); ok {
			// metrics-server reports nanocores and the controller reads
			// them in millicores rounded up (Quantity.MilliValue), as the
			// simulator does.
			ap.Usage = corev1.ResourceList{corev1.ResourceCPU: *resource.NewScaledQuantity(int64(usage*1e9), resource.Nano)}
			ap.MetricTime = &at
		}
		out = append(out, ap)
	}
	return out
}

// podsMetrics fills each pod's Pods-type metrics from the metrics source.
func (c *Controller) podsMetrics(ctx context.Context, e *entry, ns string, pods []autoscale.Pod) []error {
	var errs []error
	names := make([]string, 0, len(pods))
	for _, p := range pods {
		names = append(names, p.Name)
	}
	for _, m := range e.hpa.Spec.Metrics {
		if m.Type != autoscalingv2.PodsMetricSourceType || m.Pods == nil {
			continue
		}
		if c.cfg.Metrics == nil {
			errs = append(errs, fmt.Errorf("hpacontroller: pods metric %s: no metrics source", m.Pods.Metric.Name))
			continue
		}
		values, err := c.cfg.Metrics.PodsMetric(ctx, ns, names, m.Pods.Metric.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("hpacontroller: pods metric %s: %w", m.Pods.Metric.Name, err))
			continue
		}
		for i := range pods {
			v, ok := values[pods[i].Name]
			if !ok {
				continue
			}
			if pods[i].Metrics == nil {
				pods[i].Metrics = map[string]resource.Quantity{}
			}
			pods[i].Metrics[m.Pods.Metric.Name] = autoscale.MetricValue(v)
		}
	}
	return errs
}
