package autoscale

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// weekOfPods is a replay of a week of one-minute points through an HPA of
// up to 480 pods (about the most MaxSimulationWork lets a week of 15 s
// syncs hold), the load moving between 250 and 450 pods' worth: seconds
// of work, which a context must be able to stop.
func weekOfPods() Replay {
	h := queueHPA(nil)
	h.Spec.MaxReplicas = 480
	values := make([]float64, 7*24*60)
	for i := range values {
		values[i] = 350 + 100*math.Sin(float64(i)/90)
	}
	return Replay{HPA: h, Curve: curve(time.Minute, values...), InitialReplicas: 350}
}

// TestLongWorkStops checks that a simulation, a replay and a search stop
// with the context's error, saying how far they got, once the context
// ends: at once when it has ended before, and within a few steps when it
// ends during the work.
func TestLongWorkStops(t *testing.T) {
	r := weekOfPods()
	s := r.scenario()
	for _, tt := range []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"simulate", func(ctx context.Context) error { _, err := Simulate(ctx, s); return err }},
		{"simulate at sync times", func(ctx context.Context) error {
			st := s
			for at := time.Duration(0); at <= st.Duration; at += 15 * time.Second {
				st.SyncTimes = append(st.SyncTimes, at)
			}
			_, err := Simulate(ctx, st)
			return err
		}},
		{"replay", func(ctx context.Context) error { _, err := r.Run(ctx); return err }},
		{"tune", func(ctx context.Context) error {
			_, err := Tune(ctx, r, TuneSpace{Targets: []float64{0.5, 0.7}}, 0, nil)
			return err
		}},
	} {
		t.Run(tt.name+", ended before", func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := tt.run(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("error %v, want context.Canceled", err)
			}
		})
		t.Run(tt.name+", ended during", func(t *testing.T) {
			// The work takes seconds to minutes here; the deadline ends it
			// at 50 ms, and the test's own timeout is the bound on how
			// long it may then take to notice.
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			err := tt.run(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v, want context.DeadlineExceeded", err)
			}
			t.Log(err)
		})
	}
}

// TestTuneProgress checks that Tune reports each replay, the baseline's
// first, with the total it will reach.
func TestTuneProgress(t *testing.T) {
	r := Replay{HPA: queueHPA(nil), Curve: curve(time.Minute, 2, 6, 2, 6), InitialReplicas: 2}
	var done []int
	got, err := Tune(t.Context(), r, TuneSpace{ScaleDownWindows: []time.Duration{0, time.Minute, 5 * time.Minute}}, 0, func(d, total int) {
		if total != 4 {
			t.Errorf("progress total %d, want 4 (3 candidates and the baseline)", total)
		}
		done = append(done, d)
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 2, 3, 4}; len(done) != len(want) || done[0] != 1 || done[3] != 4 || got.Tried != 3 {
		t.Errorf("progress %v, tried %d; want %v and 3", done, got.Tried, want)
	}
}

// BenchmarkReplayManyPods replays an hour at 15 s points through a CPU
// HPA holding 300 to 500 pods: the cost of a sync grows with the pods.
func BenchmarkReplayManyPods(b *testing.B) {
	util := int32(70)
	h := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 1000,
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &util}}}}}}
	values := make([]float64, 240)
	for i := range values {
		values[i] = 300 + 100*math.Sin(float64(i)/40)
	}
	r := Replay{HPA: h, Curve: curve(15*time.Second, values...), MetricDelay: 30 * time.Second, InitialReplicas: 400}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Run(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
