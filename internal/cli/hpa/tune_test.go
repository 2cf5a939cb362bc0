package hpa

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/autoscale"
	"github.com/shoal-dev/shoal/internal/testkit/golden"
)

// kedaTuneArgs is the ScaledObject tuning example of docs/hpa.md.
func kedaTuneArgs() []string {
	return append(trafficArgs("tune", "tune-keda.yaml"), "--budget", "60s", "--targets", "0.5,0.7,0.9",
		"--scale-up-windows", "0s", "--scale-down-windows", "60s,300s", "--tolerances", "0.1/0.1,0.05/0.2")
}

// appliedObject decodes the ScaledObject a tune run prints after its
// frontier.
func appliedObject(t *testing.T, out string) *autoscale.ScaledObject {
	t.Helper()
	_, manifest, ok := strings.Cut(out, "(yours, with only the tuned fields changed):\n\n")
	if !ok {
		t.Fatalf("output lacks the ScaledObject to apply:\n%s", out)
	}
	_, _, so, _, err := DecodeSpec([]byte(manifest))
	if err != nil || so == nil {
		t.Fatalf("the ScaledObject to apply does not decode (%v):\n%s", err, manifest)
	}
	return so
}

func readScaledObject(t *testing.T, path string) *autoscale.ScaledObject {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, _, so, _, err := DecodeSpec(data)
	if err != nil {
		t.Fatal(err)
	}
	return so
}

// TestTuneKEDAGolden tunes a ScaledObject and checks the printed object:
// it decodes, it is the file's own but for the threshold and the
// behavior, and it is what Tune recommends.
func TestTuneKEDAGolden(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "tune.svg")
	out, err := execute(t, append(kedaTuneArgs(), "--chart", svg)...)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "tune-keda.golden"), []byte(out), *update)
	if !strings.Contains(out, "48 candidates replayed") || !strings.Contains(out, "recommended: #") {
		t.Errorf("output lacks the count or the recommendation:\n%s", out)
	}
	got := appliedObject(t, out)
	given := readScaledObject(t, filepath.Join("testdata", "tune-keda.yaml"))
	if got.Spec.Triggers[0].Metadata["threshold"] == given.Spec.Triggers[0].Metadata["threshold"] &&
		reflect.DeepEqual(got.Spec.Advanced, given.Spec.Advanced) {
		t.Error("the object to apply is the one given; the golden recommends a candidate")
	}
	if tol := got.Spec.Advanced.HorizontalPodAutoscalerConfig.Behavior.ScaleUp.Tolerance; tol == nil {
		t.Error("the object to apply lacks the tuned scale-up tolerance")
	}
	// Only the tuned fields differ.
	got.Spec.Triggers[0].Metadata["threshold"] = given.Spec.Triggers[0].Metadata["threshold"]
	got.Spec.Advanced = given.Spec.Advanced
	if !reflect.DeepEqual(got, given) {
		t.Errorf("fields beyond the threshold and the behavior changed:\n%+v\nwant\n%+v", got, given)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("ScaledObject tune")) || !bytes.Contains(b, []byte("gallery (as given): replicas")) {
		t.Error("chart lacks its title or the object as given")
	}
}

// TestTuneKEDAJSON checks that -o json carries the frontier and an
// object to apply that decodes as the ScaledObject Tune recommends.
func TestTuneKEDAJSON(t *testing.T) {
	out, err := execute(t, append(kedaTuneArgs(), "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Tuning autoscale.Tuning
		Apply  string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Tuning.Tried != 48 || len(got.Tuning.Frontier) == 0 {
		t.Errorf("tuning %+v", got.Tuning)
	}
	_, _, so, _, err := DecodeSpec([]byte(got.Apply))
	if err != nil || so == nil {
		t.Fatalf("apply does not decode as a ScaledObject (%v):\n%s", err, got.Apply)
	}
	st := got.Tuning.Recommended.Setting
	if st.Target == nil || so.Spec.Triggers[0].Metadata["threshold"] != strconv.FormatFloat(*st.Target*100, 'f', -1, 64) {
		t.Errorf("threshold %q for the recommended target %v at 100 per pod", so.Spec.Triggers[0].Metadata["threshold"], st.Target)
	}
}

// TestTuneKEDACooldown searches cooldownPeriod on an object that scales
// to zero between bursts: the COOLDOWN column appears, and a cooldown
// shorter than the spec's is cheaper.
func TestTuneKEDACooldown(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "zero.yaml")
	body := "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: bursts}\nspec:\n  scaleTargetRef: {name: worker}\n" +
		"  minReplicaCount: 0\n  maxReplicaCount: 10\n  cooldownPeriod: 600\n" +
		"  triggers:\n  - type: prometheus\n    metadata: {serverAddress: \"http://prometheus:9090\", query: \"sum(queue)\", threshold: \"1\"}\n"
	csv := "time,value\n0,4\n60,0\n900,4\n960,0\n1800,0\n"
	if err := os.WriteFile(spec, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bursts.csv"), []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := execute(t, "tune", "-f", spec, "--csv", filepath.Join(dir, "bursts.csv"), "--budget", "10m",
		"--targets", "1", "--scale-up-windows", "0s", "--scale-down-windows", "0s", "--tolerances", "0.1/0.1", "--cooldown-periods", "0s,300s")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "COOLDOWN") || !strings.Contains(out, "8 candidates replayed") {
		t.Fatalf("output lacks the cooldown column or the count:\n%s", out)
	}
	if got := appliedObject(t, out).Spec.CooldownPeriod; got == nil || *got >= 600 {
		t.Errorf("cooldownPeriod %v, want one below the spec's 600s", got)
	}
}

// TestTuneKEDARefusals checks that what tuning cannot model is refused
// with the file and the field named.
func TestTuneKEDARefusals(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join("testdata", "replay-step.csv")
	head := "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: x}\n  minReplicaCount: 1\n"
	prom := "  - type: prometheus\n    metadata: {serverAddress: \"http://prometheus:9090\", query: \"up\", threshold: \"5\"}\n"
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(head+body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name  string
		file  string
		extra []string
		want  string
	}{
		{"two triggers", write("two.yaml", "  triggers:\n"+prom+"  - type: cpu\n    metricType: Utilization\n    metadata: {value: \"70\"}\n"), nil,
			"two.yaml: autoscale: invalid input: scaledObject spec.triggers has 2 triggers; tuning takes one"},
		{"memory", write("memory.yaml", "  triggers:\n  - type: memory\n    metricType: Utilization\n    metadata: {value: \"70\"}\n"), nil,
			"spec.triggers[0].type is memory: the replay models the demand as the pods' CPU"},
		{"scaling modifiers", write("formula.yaml", "  advanced:\n    scalingModifiers: {formula: \"s0 * 2\", target: \"2\"}\n  triggers:\n"+prom), nil,
			"spec.advanced.scalingModifiers is set"},
		{"unknown scaler", write("kafka.yaml", "  triggers:\n  - type: kafka\n    metadata: {lagThreshold: \"5\"}\n"), nil,
			`triggers[0] (kafka): trigger type "kafka" is not supported`},
		{"cooldown above zero", write("one.yaml", "  triggers:\n"+prom), []string{"--cooldown-periods", "60s"},
			"searched only for a scaledObject with spec.minReplicaCount 0 (it is 1)"},
		{"cooldown for an hpa", filepath.Join("testdata", "replay-hpa.yaml"), []string{"--cooldown-periods", "60s"},
			"cooldown periods are a scaledObject's cooldownPeriod; an hpa has none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := execute(t, append([]string{"tune", "-f", tc.file, "--csv", csv}, tc.extra...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestDocsTuneKEDAExample checks that docs/hpa.md shows what the
// ScaledObject tuning example prints today.
func TestDocsTuneKEDAExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "hpa.md"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := execute(t, kedaTuneArgs()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" && !bytes.Contains(doc, []byte(line+"\n")) {
			t.Errorf("docs/hpa.md lacks the tune line %q", line)
		}
	}
}

// TestTuneKeepOverBudget checks the advice when the spec as given is the
// shortest and still over the budget: keep it, said in words.
func TestTuneKeepOverBudget(t *testing.T) {
	out, err := execute(t, "tune", "-f", filepath.Join("testdata", "simulate-keda.yaml"), "--csv", filepath.Join("testdata", "replay-step.csv"),
		"--targets", "0.5", "--scale-up-windows", "0s", "--scale-down-windows", "0s", "--tolerances", "0.1/0.1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "recommended: keep the spec as given; no candidate stays within 0s under-provisioned (--budget), and none is shorter (180s)") ||
		strings.Contains(out, "#-1") {
		t.Errorf("output does not advise keeping the spec:\n%s", out)
	}
	if got := appliedObject(t, out); got.Spec.Triggers[0].Metadata["threshold"] != "20" || got.Spec.Advanced != nil {
		t.Errorf("the object to apply is not the one given: %+v", got.Spec)
	}
}

// TestProgressLine checks when tune reports: nothing in a search's first
// seconds (a quick one prints nothing at all), then a line at most every
// progressAfter, and the last replay's once a line has been written.
func TestProgressLine(t *testing.T) {
	for _, tt := range []struct {
		name    string
		started time.Duration // before the first call
		calls   [][2]int      // done, total, in turn without pause
		want    []string
	}{
		{"quick", 0, [][2]int{{1, 3}, {2, 3}, {3, 3}}, nil},
		{"long", time.Minute, [][2]int{{1, 3}, {2, 3}, {3, 3}}, []string{"tune: 1 of 3 specs replayed, 1m0s", "tune: 3 of 3 specs replayed, 1m0s"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p := progressLine(&out, time.Now().Add(-tt.started))
			for _, c := range tt.calls {
				p(c[0], c[1])
			}
			got := strings.Split(strings.TrimSpace(out.String()), "\n")
			if out.Len() == 0 {
				got = nil
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("lines %q, want %q", got, tt.want)
			}
		})
	}
}
