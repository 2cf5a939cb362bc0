package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/lint"
	"github.com/shoal-dev/shoal/loadgen"
)

func TestShapeRise(t *testing.T) {
	tests := []struct {
		name  string
		curve string
		rise  time.Duration
		total time.Duration
	}{
		{name: "step", curve: "60:20s,240:70s,60:20s", rise: 20 * time.Second, total: 110 * time.Second},
		{name: "spike after a small rise", curve: "60:10s,80:10s,360:15s,60:5s", rise: 20 * time.Second, total: 40 * time.Second},
		{name: "falling only", curve: "100:10s,50:10s", rise: 0, total: 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, err := loadgen.ParseSteps(tt.curve)
			if err != nil {
				t.Fatal(err)
			}
			s := shape{Name: tt.name, Steps: steps}
			if s.rise() != tt.rise || s.length() != tt.total {
				t.Errorf("rise %v length %v, want %v %v", s.rise(), s.length(), tt.rise, tt.total)
			}
		})
	}
}

func ms(v ...int) []time.Duration {
	var out []time.Duration
	for _, x := range v {
		out = append(out, time.Duration(x)*time.Millisecond)
	}
	return out
}

func TestMeets(t *testing.T) {
	obj := objective{P99: 250 * time.Millisecond, MaxFailed: 0.01}
	many := func(n int, d int) []time.Duration { return ms(slices.Repeat([]int{d}, n)...) }
	tests := []struct {
		name string
		w    windowSamples
		want bool
	}{
		{name: "empty", w: windowSamples{}, want: true},
		{name: "fast", w: windowSamples{latencies: many(100, 10), total: 100}, want: true},
		{name: "p99 at the objective", w: windowSamples{latencies: append(many(99, 10), ms(250)...), total: 100}, want: true},
		{name: "two slow of 100", w: windowSamples{latencies: append(many(98, 10), ms(300, 300)...), total: 100}, want: false},
		{name: "one failed of 100", w: windowSamples{latencies: many(100, 10), total: 100, failed: 1}, want: true},
		{name: "fast 503s", w: windowSamples{latencies: many(100, 1), total: 100, failed: 2}, want: false},
		{name: "transport errors only", w: windowSamples{total: 3, failed: 3}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := meets(tt.w, obj); got != tt.want {
				t.Errorf("meets = %v, want %v (p99 %v)", got, tt.want, percentile(tt.w.latencies, 99))
			}
		})
	}
}

func TestAnalyze(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sh := shape{Name: "step", Steps: []loadgen.Step{{Rate: 10, Duration: 4 * time.Second}, {Rate: 100, Duration: 6 * time.Second}}}
	good := windowSamples{latencies: ms(5, 5), total: 2}
	bad := windowSamples{latencies: ms(5), total: 2, failed: 1}
	d := &runData{
		Start: start,
		// Bad in second 1 (before the rise at 4s) and 5, 6 after it.
		Windows: []windowSamples{good, bad, good, good, good, bad, bad, good, good, good, bad /* after the load */},
	}
	// One pod until 6s, when the autoscaler asks for 3; a second pod
	// ready at 8s, a third at 9s; polls after the load do not count.
	for i := 0; i <= 12; i++ {
		p := poll{At: start.Add(time.Duration(i) * time.Second), Pods: 1, Ready: 1, Desired: 1}
		if i >= 6 {
			p.Pods, p.Desired = 3, 3
		}
		if i >= 8 {
			p.Ready = 2
		}
		if i >= 9 {
			p.Ready = 3
		}
		d.Polls = append(d.Polls, p)
	}
	r := analyze(variant{Name: "cpu"}, "cpu 70%", sh, time.Second, objective{P99: 250 * time.Millisecond, MaxFailed: 0.01}, d)
	if r.OverSeconds != 3 || r.OverAfterRise != 2 {
		t.Errorf("over %v, after the rise %v; want 3 and 2", r.OverSeconds, r.OverAfterRise)
	}
	if r.ScaleUp != 2*time.Second || r.ReadyUp != 4*time.Second {
		t.Errorf("scale-up +%v, ready +%v; want +2s and +4s", r.ScaleUp, r.ReadyUp)
	}
	// 6 s of one pod, 4 s of three.
	if r.PodSeconds != 18 || r.PeakPods != 3 {
		t.Errorf("pod-seconds %v peak %d; want 18 and 3", r.PodSeconds, r.PeakPods)
	}
	if r.Requests != 20 || r.Failed != 3 {
		t.Errorf("requests %d failed %d; want 20 and 3", r.Requests, r.Failed)
	}
}

// TestManifests builds each variant from the deploy kit: what shoal up
// runs must decode, keep the kit's thumbnailer, and lint without errors.
func TestManifests(t *testing.T) {
	for name, want := range map[string]string{
		"cpu":      "cpu 70%",
		"rps":      "http_requests_per_second 120",
		"headroom": "shed_utilization_ratio 400m",
	} {
		t.Run(name, func(t *testing.T) {
			m, hpa, err := manifests(variants(120)[name], 1, 4)
			if err != nil {
				t.Fatal(err)
			}
			if got := metricOf(hpa); got != want || *hpa.Spec.MinReplicas != 1 || hpa.Spec.MaxReplicas != 4 {
				t.Errorf("HPA %s %d-%d, want %s 1-4", got, *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, want)
			}
			rep := (&lint.Linter{}).LintBytes("thumbnailer.yaml", m)
			for _, f := range rep.Findings {
				if f.Severity == lint.Error {
					t.Errorf("lint: %s", f)
				}
			}
			var d appsv1.Deployment
			for doc := range strings.SplitSeq(string(m), "---\n") {
				if strings.Contains(doc, "kind: Deployment") {
					if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
						t.Fatal(err)
					}
				}
			}
			c := d.Spec.Template.Spec.Containers[0]
			if c.Image != thumbnailerImage || c.Resources.Limits.Cpu().String() != "1" ||
				!slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "CACHE_BYTES" && e.Value == "-1" }) {
				t.Errorf("Deployment: image %s cpu limit %s env %v", c.Image, c.Resources.Limits.Cpu(), c.Env)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	base := options{
		variants: "cpu,rps,headroom", shapes: "step,spike", step: "60:20s,240:70s,60:20s", spike: "60:20s,360:15s,60:45s",
		objective: 250 * time.Millisecond, maxFailed: 0.01, window: time.Second, minRep: 1, maxRep: 4,
		sync: 15 * time.Second, rpsTarget: 120, imageSide: 256,
	}
	if _, err := base.validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name string
		edit func(*options)
		want string
	}{
		{name: "unknown variant", edit: func(o *options) { o.variants = "cpu,memory" }, want: "-variants"},
		{name: "unknown shape", edit: func(o *options) { o.shapes = "ramp" }, want: "-shapes"},
		{name: "no rise", edit: func(o *options) { o.step = "100:10s,50:10s" }, want: "never rises"},
		{name: "one step", edit: func(o *options) { o.spike = "100:10s" }, want: "at least two steps"},
		{name: "too long", edit: func(o *options) { o.step = "60:20s,240:300s" }, want: "bounded"},
		{name: "too fast", edit: func(o *options) { o.step = "60:20s,5000:10s" }, want: "above"},
		{name: "bad replicas", edit: func(o *options) { o.minRep, o.maxRep = 3, 2 }, want: "-min"},
		{name: "bad share", edit: func(o *options) { o.maxFailed = 1 }, want: "-max-failed"},
		{name: "bad image", edit: func(o *options) { o.imageSide = 4 }, want: "-image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.edit(&o)
			_, err := o.validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("validate: %v, want an error naming %q", err, tt.want)
			}
		})
	}
}
