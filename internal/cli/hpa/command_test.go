package hpa

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/testkit/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// execute runs the hpa command with args and returns stdout and the error.
// Stderr, where tune reports progress once a search has run a few
// seconds, is kept out of the output the golden files hold.
func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestRecommendGolden(t *testing.T) {
	for _, name := range []string{"recommend-scale-up", "recommend-stabilized", "recommend-tolerance", "recommend-from-zero", "recommend-scale-to-zero-off"} {
		t.Run(name, func(t *testing.T) {
			out, err := execute(t, "recommend", "-f", filepath.Join("testdata", name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", name+".golden"), []byte(out), *update)
		})
	}
}

func TestRecommendDecisions(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"scale up to five", "recommend-scale-up", `"desiredReplicas": 5`},
		{"stabilized keeps five", "recommend-stabilized", `"reason": "ScaleDownStabilized"`},
		{"per-direction tolerance scales up", "recommend-tolerance", `"desiredReplicas": 4`},
		{"up from zero", "recommend-from-zero", `"desiredReplicas": 2`},
		{"up from zero says it left zero", "recommend-from-zero", `"reason": "NotScaledToZero"`},
		{"gate off keeps zero", "recommend-scale-to-zero-off", `"reason": "ScalingDisabled"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := execute(t, "recommend", "-f", filepath.Join("testdata", tc.file+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output lacks %s:\n%s", tc.want, out)
			}
		})
	}
}

func TestRecommendErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"bad quantity", "recommend-bad-quantity", "pods[2].usage.cpu"},
		{"unknown field", "recommend-unknown-field", `unknown field "cpuUsage"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := execute(t, "recommend", "-f", filepath.Join("testdata", tc.file+".yaml"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one naming %s", err, tc.want)
			}
			if !errors.Is(err, ErrInput) {
				t.Errorf("error %v does not wrap ErrInput", err)
			}
		})
	}
}

func TestDecodeRecommendInputErrors(t *testing.T) {
	base := "now: \"2025-06-01T12:00:00Z\"\ncurrentReplicas: 1\nhpa: {spec: {maxReplicas: 3}}\n"
	tests := []struct {
		name, doc, want string
	}{
		{"missing hpa", "now: \"2025-06-01T12:00:00Z\"\n", "hpa is required"},
		{"bad now", "now: yesterday\nhpa: {spec: {maxReplicas: 3}}\n", "now:"},
		{"bad external metric", base + "externalMetrics: {queue: ten}\n", "externalMetrics.queue"},
		{"bad container request", base + "pods: [{name: a, containers: [{name: c, requests: {cpu: x}}]}]\n", "pods[0].containers[0].requests.cpu"},
		{"bad history time", base + "recommendations: [{time: soon, replicas: 2}]\n", "recommendations[0].time"},
		{"duplicate pod", base + "pods: [{name: a}, {name: a}]\n", `pods[1].name "a" is duplicated`},
		{"max replicas", "now: \"2025-06-01T12:00:00Z\"\nhpa: {spec: {maxReplicas: 0}}\n", "maxReplicas"},
		{"bad config duration", base + "config: {metricWindow: soon}\n", "config.metricWindow"},
		{"unknown feature gate", base + "config: {featureGates: {HPAScaleToZer0: true}}\n", `config: autoscale: invalid input: featureGates: "HPAScaleToZer0" is not an HPA controller feature gate`},
		{"locked feature gate", base + "config: {featureGates: {HPAConfigurableTolerance: false}}\n", "HPAConfigurableTolerance is GA and locked to true"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeRecommendInput([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestSimulateGolden(t *testing.T) {
	dir := t.TempDir()
	svg := filepath.Join(dir, "chart.svg")
	out, err := execute(t, "simulate",
		"-f", filepath.Join("..", "..", "..", "docs", "examples", "hpa-cpu-default.yaml"),
		"--compare", filepath.Join("..", "..", "..", "docs", "examples", "hpa-cpu-fast-scaledown.yaml"),
		"--plot", svg)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "simulate-compare.golden"), []byte(out), *update)
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "default behavior: desired", "fast scale-down: ready", "</svg>"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("chart lacks %q", want)
		}
	}
}

func TestSimulateKEDAGolden(t *testing.T) {
	out, err := execute(t, "simulate", "-f", filepath.Join("testdata", "simulate-keda.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "simulate-keda.golden"), []byte(out), *update)
}

// TestSimulateScaleToZeroGolden runs a plain HPA with minReplicas 0 down
// to zero and back up, as v1.37's HPAScaleToZero does.
func TestSimulateScaleToZeroGolden(t *testing.T) {
	out, err := execute(t, "simulate", "-f", filepath.Join("testdata", "simulate-scale-to-zero.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "simulate-scale-to-zero.golden"), []byte(out), *update)
	// The queue empties at 2m: after the 60s window the worker is at zero
	// with no pods; work at 6m brings it back up from zero to 3.
	for _, want := range []string{"  3:00   0.00 |        0       0      0", "  8:00   6.00 |        2       3      3"} {
		if !strings.Contains(out, want) {
			t.Errorf("timeline lacks %q:\n%s", want, out)
		}
	}
}

func TestSimulateErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"no autoscaler", "duration: 1m\nload: [{at: 0s, value: 1}]\n", "exactly one of hpa and scaledObject"},
		{"bad duration", "duration: forever\n", "duration:"},
		{"load order", "duration: 1m\nhpa: {spec: {maxReplicas: 2}}\nload: [{at: 30s, value: 1}, {at: 10s, value: 2}]\n", "load[1].at"},
		{"bad cpu request", "duration: 1m\ncpuRequest: much\n", "cpuRequest"},
		{"bad sync phase", "duration: 1m\nsyncPeriod: 5s\nsyncPhase: 5s\nhpa: {spec: {maxReplicas: 2}}\nload: [{at: 0s, value: 1}]\n", "syncPhase"},
		{"bad clock phase", "duration: 1m\nclockPhase: 1s\nhpa: {spec: {maxReplicas: 2}}\nload: [{at: 0s, value: 1}]\n", "clockPhase"},
		{"clock phase not a duration", "duration: 1m\nclockPhase: soon\nhpa: {spec: {maxReplicas: 2}}\nload: [{at: 0s, value: 1}]\n", "clockPhase"},
		{"bad metric delay", "duration: 1m\nmetrics: {delay: soon}\n", "metrics.delay"},
		{"metric phase without resolution", "duration: 1m\nmetrics: {phase: 2s}\nhpa: {spec: {maxReplicas: 2}}\nload: [{at: 0s, value: 1}]\n", "metrics.phase"},
		{"unknown metric field", "duration: 1m\nmetrics: {lag: 2s}\n", "lag"},
		{"bad pod clock", "duration: 1m\nmetrics: {resolution: 5s, pods: [{phase: 1s}, {phase: soon}]}\n", "metrics.pods[1].phase"},
		{"pod phase past the resolution", "duration: 1m\nmetrics: {resolution: 5s, pods: [{phase: 6s}]}\nhpa: {spec: {maxReplicas: 2}}\nload: [{at: 0s, value: 1}]\n", "metrics.pods[0].phase"},
		{"failed sample with a value", "duration: 1m\nmetrics: {pods: [{samples: [{at: 1s, seen: 1s, value: 3, failed: true}]}]}\nhpa: {spec: {maxReplicas: 2}}\nload: [{at: 0s, value: 1}]\n", "metrics.pods[0].samples[0] is failed"},
		{"negative measured value", "duration: 1m\nmetrics: {pods: [{samples: [{at: 1s, seen: 1s, value: -3}]}]}\nhpa: {spec: {maxReplicas: 2}}\nload: [{at: 0s, value: 1}]\n", "metrics.pods[0].samples[0].value"},
		{"measured value not a number", "duration: 1m\nmetrics: {pods: [{samples: [{at: 1s, seen: 1s, value: lots}]}]}\n", "metrics.pods.samples.value: a string where a number belongs"},
		{"replicas not a number", "duration: 1m\nhpa: {spec: {maxReplicas: two}}\n", "hpa.spec.maxReplicas: a string where a number belongs"},
		{"unsupported trigger", "duration: 1m\nload: [{at: 0s, value: 1}]\nscaledObject: {spec: {triggers: [{type: cron, metadata: {}}]}}\n", "not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeScenario([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestSimulateJSON runs a scenario with a sync phase and a metric model
// and reads the timeline back as JSON: syncs fall on the phase, and the
// step at 20s is first read at 27s (the 5s-resolution measurement at 21s,
// 3s late).
func TestSimulateJSON(t *testing.T) {
	doc := `
duration: 40s
syncPeriod: 5s
syncPhase: 2s
podStartup: 3s
metrics: {delay: 3s, resolution: 5s, phase: 1s}
hpa:
  spec:
    minReplicas: 1
    maxReplicas: 4
    metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
load: [{at: 0s, value: 0.5}, {at: 20s, value: 2.5}]
`
	path := filepath.Join(t.TempDir(), "twin.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := execute(t, "simulate", "-f", path, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var runs []simulateJSON
	if err := json.Unmarshal([]byte(out), &runs); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(runs) != 1 || runs[0].Name != "twin" || len(runs[0].Samples) != 8 {
		t.Fatalf("got %+v, want one run named twin with 8 samples", runs)
	}
	tests := []struct {
		i       int
		time    float64
		desired int32
	}{{0, 2, 1}, {4, 22, 1}, {5, 27, 4}}
	for _, tt := range tests {
		if s := runs[0].Samples[tt.i]; s.Time != tt.time || s.Desired != tt.desired {
			t.Errorf("sample %d = %+v, want time %v desired %d", tt.i, s, tt.time, tt.desired)
		}
	}
	if _, err := execute(t, "simulate", "-f", path, "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "-o") {
		t.Errorf("-o yaml: error %v, want one naming -o", err)
	}
}

// TestInputTooLarge feeds each command a spec larger than maxInputBytes
// (a YAML comment, so only its size is wrong): each must refuse it by
// name before decoding, which would hold many times its size.
func TestInputTooLarge(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.yaml")
	data := append([]byte("# "), bytes.Repeat([]byte("x"), maxInputBytes)...)
	if err := os.WriteFile(big, data, 0o600); err != nil {
		t.Fatal(err)
	}
	curve := filepath.Join("testdata", "replay-step.csv")
	for _, tt := range []struct {
		name  string
		args  []string
		stdin bool
	}{
		{"recommend", []string{"recommend", "-f", big}, false},
		{"recommend from stdin", []string{"recommend", "-f", "-"}, true},
		{"simulate", []string{"simulate", "-f", big}, false},
		{"simulate --compare", []string{"simulate", "-f", filepath.Join("testdata", "simulate-keda.yaml"), "--compare", big}, false},
		{"replay", []string{"replay", "-f", big, "--csv", curve}, false},
		{"tune", []string{"tune", "-f", big, "--csv", curve}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := NewCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			if tt.stdin {
				cmd.SetIn(bytes.NewReader(data))
			}
			cmd.SetArgs(tt.args)
			err := cmd.Execute()
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "larger than 4 MiB") {
				t.Fatalf("error %v, want ErrInput naming the limit", err)
			}
			if name := map[bool]string{true: "stdin", false: big}[tt.stdin]; !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name %s", err, name)
			}
		})
	}
}
