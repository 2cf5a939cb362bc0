package kubelet

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
)

// stuckHealth answers no Check until the call ends.
type stuckHealth struct {
	healthpb.UnimplementedHealthServer
}

func (stuckHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// serveGRPC serves s on a free port of 127.0.0.1 until the test ends.
func serveGRPC(t *testing.T, s *grpc.Server) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func TestGRPCCheck(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus("shoal.test.Up", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("shoal.test.Down", healthpb.HealthCheckResponse_NOT_SERVING)
	withHealth := grpc.NewServer()
	healthpb.RegisterHealthServer(withHealth, hs)
	stuck := grpc.NewServer()
	healthpb.RegisterHealthServer(stuck, stuckHealth{})

	healthy := serveGRPC(t, withHealth)
	noHealth := serveGRPC(t, grpc.NewServer())
	slow := serveGRPC(t, stuck)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := int32(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	str := func(s string) *string { return &s }
	tests := []struct {
		name    string
		action  corev1.GRPCAction
		timeout time.Duration // the probe's; 0 means 10s
		wantErr string        // "" for success
	}{
		{"server as a whole", corev1.GRPCAction{Port: healthy}, 0, ""},
		{"service serving", corev1.GRPCAction{Port: healthy, Service: str("shoal.test.Up")}, 0, ""},
		{"service not serving", corev1.GRPCAction{Port: healthy, Service: str("shoal.test.Down")}, 0, `service unhealthy (responded with "NOT_SERVING")`},
		{"unknown service", corev1.GRPCAction{Port: healthy, Service: str("shoal.test.Nope")}, 0, "health rpc probe failed"},
		{"no health service", corev1.GRPCAction{Port: noHealth}, 0, "does not implement the grpc health protocol"},
		{"no answer within the timeout", corev1.GRPCAction{Port: slow}, 300 * time.Millisecond, "timeout: health rpc did not complete"},
		{"connection refused", corev1.GRPCAction{Port: refused}, 0, "health rpc probe failed"},
	}
	c := &container{pod: &Pod{cfg: Config{IP: netip.MustParseAddr("127.0.0.1")}}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			err := c.grpcCheck(ctx, &tt.action)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("grpcCheck: %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("grpcCheck: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// TestGRPCReadinessProbe runs a testpod whose readiness is a grpc probe:
// the pod is ready exactly while its health service answers SERVING for
// the probe's service name.
func TestGRPCReadinessProbe(t *testing.T) {
	grpcProbe := func(port int, service string) *corev1.Probe {
		p := &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(port)}},
			PeriodSeconds:    1,
			FailureThreshold: 1,
			TimeoutSeconds:   5,
		}
		if service != "" {
			p.GRPC.Service = &service
		}
		return p
	}
	t.Run("follows SERVING", func(t *testing.T) {
		h := newHarness(t, "127.42.13.2")
		gport := freePort(t, h.ip)
		c := h.container(corev1.EnvVar{Name: "GRPC_PORT", Value: strconv.Itoa(gport)}, corev1.EnvVar{Name: "READY", Value: "0"})
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: "grpc", ContainerPort: int32(gport)})
		c.ReadinessProbe = grpcProbe(gport, "testpod")
		h.start(h.config(corev1.PodSpec{Containers: []corev1.Container{c}}))

		h.waitFor("a NOT_SERVING probe", func(Status) bool { return h.unhealthy("NOT_SERVING") > 0 })
		if st := h.pod.Status(); st.Ready {
			t.Fatalf("ready while the health service says NOT_SERVING: %+v", st)
		}
		h.mustGet("/set?ready=1")
		h.waitFor("ready", func(s Status) bool { return s.Ready })
		failed := h.unhealthy("")
		h.mustGet("/set?ready=0")
		h.waitFor("not ready", func(s Status) bool { return !s.Ready })
		if h.unhealthy("") <= failed || h.unhealthy("NOT_SERVING") < 2 {
			t.Errorf("want another NOT_SERVING failure; events %v", h.eventList())
		}
	})
	t.Run("unknown service never ready", func(t *testing.T) {
		h := newHarness(t, "127.42.13.3")
		gport := freePort(t, h.ip)
		c := h.container(corev1.EnvVar{Name: "GRPC_PORT", Value: strconv.Itoa(gport)})
		c.ReadinessProbe = grpcProbe(gport, "shoal.test.Other")
		h.start(h.config(corev1.PodSpec{Containers: []corev1.Container{c}}))
		h.waitFor("failing probes", func(Status) bool { return h.unhealthy("NotFound") >= 2 })
		if st := h.pod.Status(); st.Ready || !st.Containers[0].Running {
			t.Fatalf("want running and not ready: %+v", st)
		}
	})
}

// unhealthy counts the Unhealthy events whose message holds text.
func (h *harness) unhealthy(text string) int {
	n := 0
	for _, e := range h.eventsWith("Unhealthy") {
		if strings.Contains(e.Message, text) {
			n++
		}
	}
	return n
}

// freePort returns a port free on ip at the time of the call.
func freePort(t *testing.T, ip netip.Addr) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
