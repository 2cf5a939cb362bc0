package hpacontroller_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shoal-dev/shoal/autoscale"
	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/internal/localk8s/hpacontroller"
	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
	"github.com/shoal-dev/shoal/keda"
	"github.com/shoal-dev/shoal/metrics"
)

// server is a loopback server instrumented with package metrics.
type server struct{ *httptest.Server }

func newServer(t *testing.T) *server {
	t.Helper()
	reg := metrics.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {})
	root := http.NewServeMux()
	root.Handle("/metrics", metrics.Handler(reg))
	root.Handle("/", m.Middleware(metrics.Route(mux)))
	s := httptest.NewServer(root)
	t.Cleanup(s.Close)
	return &server{s}
}

func (s *server) hit(t *testing.T, n int) {
	t.Helper()
	for range n {
		resp, err := s.Client().Get(s.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

// scrape records a real scrape of s into d as taken at the given time.
func (s *server) scrape(t *testing.T, d *podmetrics.Direct, ns, pod string, at time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sample, err := podmetrics.Scrape(ctx, s.Client(), s.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	sample.Time = at
	d.Record(ns, pod, sample)
}

// newDirect evaluates the deploy kit's prometheus-adapter rules over
// scrapes taken at clk's time.
func newDirect(t *testing.T, clk *clock) *podmetrics.Direct {
	t.Helper()
	rules, err := podmetrics.LoadRules("../../../deploy/monitoring/prometheus-adapter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	direct, err := podmetrics.NewDirect(podmetrics.DirectConfig{Rules: rules, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return direct
}

// TestPodsMetric scales the gallery's HPA on http_requests_per_second
// read through the deploy kit's adapter rules from real servers' metrics.
func TestPodsMetric(t *testing.T) {
	clk := &clock{t: epoch}
	direct := newDirect(t, clk)
	deps := newDeployments(clk.Now, 0, 0.25)
	deps.add("shoal", "gallery", 2, epoch.Add(-time.Hour))
	servers := map[string]*server{"gallery-0": newServer(t), "gallery-1": newServer(t)}
	perScrape := map[string]int{"gallery-0": 30, "gallery-1": 10} // requests every 5s: 6/s and 2/s

	minR, target := int32(2), resource.MustParse("2")
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "gallery", Namespace: "shoal"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "gallery"},
			MinReplicas:    &minR, MaxReplicas: 10,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.PodsMetricSourceType,
				Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: "http_requests_per_second"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &target},
				},
			}},
		},
	}
	var ev events
	c := hpacontroller.New(hpacontroller.Config{Target: deps, Metrics: direct, Now: clk.Now, OnEvent: ev.add})
	if err := c.Set([]*autoscalingv2.HorizontalPodAutoscaler{hpa}, nil); err != nil {
		t.Fatal(err)
	}
	// A minute of scrapes every 5s, the load between them real requests.
	for i := 0; i <= 12; i++ {
		at := epoch.Add(time.Duration(i) * 5 * time.Second)
		for name, s := range servers {
			if i > 0 {
				s.hit(t, perScrape[name])
			}
			s.scrape(t, direct, "shoal", name, at)
		}
	}
	clk.Set(epoch.Add(time.Minute))
	if err := c.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := c.Status()[0]
	// Average 4/s per pod against a target of 2: twice the pods. The
	// adapter truncates to millis, so float rounding may show 3999m.
	if st.Desired != 4 || (st.Metrics != "http_requests_per_second: 4/2" && st.Metrics != "http_requests_per_second: 3999m/2") || st.MetricError != "" {
		t.Errorf("status = %+v, want 4 replicas at 4/2", st)
	}
	if got := deps.replicas("shoal", "gallery"); got != 4 {
		t.Errorf("deployment has %d replicas, want 4", got)
	}
	want := "SuccessfulRescale hpa/gallery: New size: 4; reason: pods metric http_requests_per_second above target"
	if evs := ev.reasons(); !slices.Equal(evs, []string{want}) {
		t.Errorf("events = %q, want %q", evs, want)
	}

	// Without a metrics source the HPA reports the metric as unavailable
	// and keeps its size.
	bare := hpacontroller.New(hpacontroller.Config{Target: deps, Now: clk.Now})
	if err := bare.Set([]*autoscalingv2.HorizontalPodAutoscaler{hpa}, nil); err != nil {
		t.Fatal(err)
	}
	if err := bare.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := bare.Status()[0]; st.Desired != 4 || !strings.Contains(st.MetricError, "no metrics source") {
		t.Errorf("without metrics: %+v", st)
	}
}

// TestScaledObject follows a KEDA ScaledObject from zero to active, up
// through its HPA, and back to zero after the cooldown, with its trigger
// reading a real front door's request counter.
func TestScaledObject(t *testing.T) {
	clk := &clock{t: epoch}
	direct := newDirect(t, clk)
	deps := newDeployments(clk.Now, 0, 0.25)
	deps.add("shoal", "worker", 0, epoch)
	front := newServer(t)

	minR, maxR, poll, cooldown := int32(0), int32(10), int32(15), int32(60)
	so := &autoscale.ScaledObject{
		ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: "shoal"},
		Spec: autoscale.ScaledObjectSpec{
			ScaleTargetRef:  &keda.ScaleTarget{Name: "worker"},
			PollingInterval: &poll, CooldownPeriod: &cooldown,
			MinReplicaCount: &minR, MaxReplicaCount: &maxR,
			Triggers: []autoscale.ScaleTrigger{{Type: "prometheus", Metadata: map[string]string{
				"query":               `sum(rate(http_requests_total{namespace="shoal",pod="ingress"}[30s]))`,
				"threshold":           "10",
				"activationThreshold": "1",
			}}},
		},
	}
	var ev events
	c := hpacontroller.New(hpacontroller.Config{Target: deps, Metrics: direct, Now: clk.Now, OnEvent: ev.add})
	if err := c.Set(nil, []*autoscale.ScaledObject{so}); err != nil {
		t.Fatal(err)
	}
	// load is the request rate at the front door from each time on.
	load := func(at time.Duration) int {
		switch {
		case at < 30*time.Second:
			return 0
		case at < 2*time.Minute:
			return 35
		}
		return 0
	}
	var replicas []int32
	for at := time.Duration(0); at <= 5*time.Minute; at += 5 * time.Second {
		now := epoch.Add(at)
		clk.Set(now)
		if at > 0 {
			front.hit(t, load(at)*5)
		}
		front.scrape(t, direct, "shoal", "ingress", now)
		if at%(15*time.Second) == 0 {
			if err := c.SyncOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			replicas = append(replicas, deps.replicas("shoal", "worker"))
		}
	}
	t.Logf("replicas every 15s: %v", replicas)
	t.Logf("events: %q", ev.reasons())
	// Activation once the rate passes 1/s, then the HPA's AverageValue
	// target: 35/s over a threshold of 10 is 4 replicas, reached within
	// the default scale-up limit; then to zero once the cooldown passes.
	if !slices.Contains(replicas, 1) || !slices.Contains(replicas, 4) || replicas[len(replicas)-1] != 0 || replicas[0] != 0 {
		t.Errorf("replicas every 15s = %v, want 0, then 1, then 4, then back to 0", replicas)
	}
	evs := ev.reasons()
	if len(evs) < 3 || !strings.HasPrefix(evs[0], "KEDAScaleTargetActivated scaledobject/worker") ||
		!strings.HasPrefix(evs[len(evs)-1], "KEDAScaleTargetDeactivated scaledobject/worker") {
		t.Errorf("events = %q", evs)
	}
	foundHPA := false
	for _, e := range evs {
		if strings.HasPrefix(e, "SuccessfulRescale hpa/keda-hpa-worker: New size: 4;") {
			foundHPA = true
		}
	}
	if !foundHPA {
		t.Errorf("no rescale to 4 by keda-hpa-worker in %q", evs)
	}
	st := c.Status()[0]
	if st.Kind != api.KindScaledObject || st.Name != "worker" || st.Min != 0 || st.Max != 10 || st.Desired != 0 {
		t.Errorf("status = %+v", st)
	}
}
