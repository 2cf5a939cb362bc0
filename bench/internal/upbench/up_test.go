package upbench

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/localk8s"
	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// sleeper is one pod of a real program, sleep, behind a ClusterIP Service.
const sleeper = `apiVersion: apps/v1
kind: Deployment
metadata: {name: sleeper}
spec:
  replicas: 1
  selector: {matchLabels: {app: sleeper}}
  template:
    metadata: {labels: {app: sleeper}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: sleeper
        image: sleeper
        args: ["600"]
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: sleeper}
spec:
  selector: {app: sleeper}
  ports: [{name: http, port: 80, targetPort: http}]
`

func upConfig(t *testing.T, manifest string) localk8s.Config {
	dir := t.TempDir()
	path := filepath.Join(dir, "sleeper.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return localk8s.Config{
		Paths:       []string{path},
		Images:      []string{"sleeper=/bin/sleep"},
		Addr:        "127.0.0.1:0",
		IngressAddr: "-",
		RunDir:      filepath.Join(dir, "up"),
	}
}

// TestStartServeStop brings a real `shoal up` up on its own loopback
// networks, waits for the Service to list its pod, reads snapshots, and
// stops it.
func TestStartServeStop(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := t.Context()
	up, err := Start(ctx, upConfig(t, sleeper))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			up.Stop(nil)
		}
	}()
	if !up.Config.PodNet.Addr().IsLoopback() || up.Config.DNSPort == 0 {
		t.Errorf("pod network %v, DNS port %d: want its own loopback network and a port", up.Config.PodNet, up.Config.DNSPort)
	}
	addr, err := up.WaitServing(ctx, "default", "sleeper", 1)
	if err != nil {
		t.Fatal(err)
	}
	if ap, err := netip.ParseAddrPort(addr); err != nil || ap.Port() != 80 || !up.Config.ServiceNet.Contains(ap.Addr()) {
		t.Errorf("WaitServing = %q, want a ClusterIP in %v on port 80", addr, up.Config.ServiceNet)
	}
	pollCtx, stopPolls := context.WithCancel(ctx)
	var polls int
	up.PollSnapshots(pollCtx, func(s *api.Snapshot) {
		if FindDeployment(s, "default", "sleeper") != nil {
			polls++
		}
		if polls == 2 {
			stopPolls()
		}
	})
	stopPolls()
	if polls != 2 {
		t.Errorf("PollSnapshots saw the Deployment %d times, want 2", polls)
	}
	stopped = true
	if err := up.Stop(nil); err != nil {
		t.Errorf("Stop = %v", err)
	}
}

// TestStartFails checks that a `shoal up` that cannot start is reported
// and leaves nothing running.
func TestStartFails(t *testing.T) {
	defer goleak.VerifyNone(t)
	cfg := upConfig(t, strings.Replace(sleeper, "image: sleeper", "image: unmapped", 1))
	_, err := Start(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "shoal up:") || !strings.Contains(err.Error(), "unmapped") {
		t.Errorf("Start = %v, want shoal up's error naming the unknown image", err)
	}
}
