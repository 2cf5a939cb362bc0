package hpa

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"github.com/shoal-dev/shoal/autoscale"
)

func addSeeds(f *testing.F, pattern string) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzDecodeRecommendInput checks that no input makes decoding or the
// decision panic.
func FuzzDecodeRecommendInput(f *testing.F) {
	addSeeds(f, "testdata/recommend-*.yaml")
	f.Add([]byte(`{"now":"2025-01-01T00:00:00Z","currentReplicas":2,"hpa":{"spec":{"maxReplicas":3,"behavior":{"scaleUp":{"policies":[{"type":"Pods","value":1,"periodSeconds":15}]}}}},"pods":[{"name":"a","ready":true,"requests":{"cpu":"1"},"usage":{"cpu":"2"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, in, err := DecodeRecommendInput(data)
		if err != nil {
			return
		}
		if _, err := autoscale.Recommend(cfg, in); err != nil {
			t.Fatalf("decoded input rejected by Recommend: %v", err)
		}
	})
}

// FuzzDecodeScenario checks that no scenario makes decoding or a short
// simulation panic.
func FuzzDecodeScenario(f *testing.F) {
	addSeeds(f, "testdata/simulate-*.yaml")
	addSeeds(f, "../../../docs/examples/hpa-*.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeScenario(data)
		if err != nil {
			return
		}
		// Bound the work: long scenarios are valid but slow.
		if s.Duration > 10*time.Minute {
			return
		}
		if _, err := autoscale.Simulate(t.Context(), s.Scenario); err != nil {
			return
		}
	})
}

// FuzzParseCurve checks that no CSV makes the parser panic, and that a
// curve it accepts is one a replay accepts.
func FuzzParseCurve(f *testing.F) {
	addSeeds(f, "testdata/replay-*.csv")
	f.Add([]byte("time,value\n0,1\n15,2\n"))
	f.Add([]byte("time,value\n2026-01-01T00:00:00Z,1\n2026-01-01T00:00:00.5Z,2\n"))
	f.Add([]byte("time,value\n\"0\",\"1e308\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCurve(bytes.NewReader(data))
		if err != nil {
			return
		}
		r := autoscale.Replay{Curve: c, Duration: c[len(c)-1].At + time.Second}
		r.HPA = replayFuzzHPA
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted curve rejected by Replay: %v", err)
		}
	})
}

var replayFuzzHPA = &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 2}}

// FuzzDecodeSpec checks that no spec file makes decoding panic, and that
// a decoded spec replays or is refused with an error.
func FuzzDecodeSpec(f *testing.F) {
	addSeeds(f, "testdata/replay-*.yaml")
	addSeeds(f, "testdata/simulate-*.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, h, so, cfg, err := DecodeSpec(data)
		if err != nil {
			return
		}
		r := autoscale.Replay{HPA: h, ScaledObject: so, Config: cfg, Curve: []autoscale.LoadPoint{{At: 0, Value: 1}, {At: time.Minute, Value: 3}}}
		_, _ = r.Run(t.Context())
	})
}
