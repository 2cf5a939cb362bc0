package hpa

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestHugeDemandReplay replays demands far past what 20 pods serve, up to
// the 10^12 bound, with -o json: the spec of testdata/replay-hpa.yaml
// (CPU, 2..20 replicas) scales to its maximum, and the report encodes.
// The CPU utilization of a demand of 10^9 wrapped past int32, and the
// replay peaked at 15 replicas, fewer than for a demand of 10^7.
func TestHugeDemandReplay(t *testing.T) {
	tests := []struct {
		name, demand, podCapacity string
	}{
		{"1e7", "1e7", "1"},
		{"1e9", "1e9", "1"},
		{"the bound", "1e12", "1"},
		{"the bound over a capacity of 1e-12", "1e12", "1e-12"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			csv := filepath.Join(t.TempDir(), "demand.csv")
			text := "time,value\n0,10\n60," + tc.demand + "\n120," + tc.demand + "\n180," + tc.demand + "\n240," + tc.demand + "\n"
			if err := os.WriteFile(csv, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := execute(t, "replay", "-f", filepath.Join("testdata", "replay-hpa.yaml"), "--csv", csv, "--pod-capacity", tc.podCapacity, "-o", "json")
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Specs []struct {
					Report struct {
						PeakReplicas int32 `json:"peakReplicas"`
					} `json:"report"`
				} `json:"specs"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v in %.300q", err, out)
			}
			if len(got.Specs) != 1 || got.Specs[0].Report.PeakReplicas != 20 {
				t.Errorf("specs %+v, want one peaking at 20 replicas", got.Specs)
			}
		})
	}
}
