package hpa

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/autoscale"
)

// TestWorkBound gives replay, simulate and tune input whose work is past
// the bound in ways the count of syncs times replicas alone missed: a
// one-hour stabilization window under 1s syncs (each sync scans an hour
// of recommendations: 70 s for a week over 8 pods), a KEDA polling
// interval and sync period whose clock steps by 1ms (6e8 steps over a
// week, each integrating the pods) and a tuning whose candidates carry
// windows. Each must be refused at once, saying what to change.
func TestWorkBound(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	week := write("week.csv", "time,value\n0,3\n60,3\n302400,6\n604680,2\n604740,2\n")
	hpa := `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 8
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
`
	plain := write("hpa.yaml", hpa)
	window := write("window.yaml", hpa+"  behavior:\n    scaleDown: {stabilizationWindowSeconds: 3600}\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"replay, a week of 1s syncs under a one-hour window", []string{"replay", "-f", window, "--csv", week, "--sync-period", "1s"},
			"shorter stabilization windows and policy periods"},
		{"replay, a week of 1ms clock steps over 20 pods", []string{"replay", "-f", filepath.Join("testdata", "replay-keda.yaml"), "--csv", week, "--sync-period", "15001ms"},
			"the clock steps by the greatest common divisor of the sync period, the polling interval and the sync phase"},
		{"tune, a week of 1s syncs", []string{"tune", "-f", plain, "--csv", week, "--sync-period", "1s"},
			"tuning replays 241 specs of up to"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			out, err := execute(t, tc.args...)
			if err == nil {
				t.Fatalf("no error after %s; output %.300q", time.Since(start), out)
			}
			if !errors.Is(err, autoscale.ErrInvalidInput) && !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want autoscale.ErrInvalidInput or ErrInput saying %q", err, tc.want)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("refused after %s, want at once", took)
			}
		})
	}
}
