package hpa

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/autoscale"
)

// TestSpecsTheAPIServerRefuses runs replay, tune, simulate and recommend
// on specs the API server would refuse (a target of 0, a metric with no
// source, an unknown type, a KEDA threshold of NaN) and on a demand past
// the bound: each must fail naming the file and the field, where before
// they printed a spec that "never scales", a recommendation of
// -2147483648 replicas, or no output but a JSON encoder's message.
func TestSpecsTheAPIServerRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	replace := func(text, old, new string) string {
		if strings.Count(text, old) != 1 {
			t.Fatalf("%q is not in the fixture once", old)
		}
		return strings.Replace(text, old, new, 1)
	}
	hpa := read("replay-hpa.yaml")
	csv := write("ok.csv", "time,value\n0,1\n60,3\n120,5\n180,2\n240,1\n")
	target0 := write("target0.yaml", replace(hpa, "averageUtilization: 70", "averageUtilization: 0"))
	bogus := write("bogus.yaml", replace(hpa, "- type: Resource\n    resource:\n      name: cpu\n      target: {type: Utilization, averageUtilization: 70}", "- type: Bogus"))
	noSource := write("nosource.yaml", replace(hpa, "- type: Resource\n    resource:\n      name: cpu\n      target: {type: Utilization, averageUtilization: 70}", "- type: Resource"))
	kedaNaN := write("kedanan.yaml", replace(read("replay-keda.yaml"), `threshold: "70"`, `threshold: "NaN"`))
	rec0 := write("rec0.yaml", replace(read("recommend-scale-up.yaml"), "averageUtilization: 30", "averageUtilization: 0"))
	huge := write("huge.csv", "time,value\n0,1e308\n60,1e308\n")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"replay, target 0", []string{"replay", "-f", target0, "--csv", csv}, []string{"target0.yaml", "hpa.spec.metrics[0].resource.target.averageUtilization: must be greater than 0"}},
		{"replay -o json, target 0", []string{"replay", "-f", target0, "--csv", csv, "-o", "json"}, []string{"target0.yaml", "averageUtilization: must be greater than 0"}},
		{"tune, unknown type", []string{"tune", "-f", bogus, "--csv", csv}, []string{"bogus.yaml", `hpa.spec.metrics[0].type: "Bogus" is not`}},
		{"replay, no source", []string{"replay", "-f", noSource, "--csv", csv}, []string{"nosource.yaml", "hpa.spec.metrics[0].resource: is required for type Resource"}},
		{"replay, KEDA threshold NaN", []string{"replay", "-f", kedaNaN, "--csv", csv}, []string{"kedanan.yaml", `metadata.threshold "NaN" is not a positive number`}},
		{"recommend, target 0", []string{"recommend", "-f", rec0}, []string{"hpa.spec.metrics[0].resource.target.averageUtilization: must be greater than 0"}},
		{"replay -o json, demand past the bound", []string{"replay", "-f", filepath.Join("testdata", "replay-hpa.yaml"), "--csv", huge, "-o", "json"}, []string{"huge.csv", "line 2", "not a number within [0, 1e+12]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := execute(t, tc.args...)
			if err == nil {
				t.Fatalf("no error; output %.300q", out)
			}
			if !errors.Is(err, autoscale.ErrInvalidInput) && !errors.Is(err, ErrInput) {
				t.Errorf("error %v wraps neither autoscale.ErrInvalidInput nor ErrInput", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
