package cluster

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// grpcPort is the port of testpod's gRPC server (GRPC_PORT) on its pod IP.
const grpcPort = 8082

// newGRPCDeployment returns newTestDeployment's pods serving gRPC on the
// container port "grpc" too, ready by a grpc probe; with notReady their
// health service answers NOT_SERVING until /set?ready=1.
func newGRPCDeployment(ns, name string, replicas int32, notReady bool) *appsv1.Deployment {
	d := newTestDeployment(ns, name, replicas)
	c := &d.Spec.Template.Spec.Containers[0]
	c.Ports = append(c.Ports, corev1.ContainerPort{Name: "grpc", ContainerPort: grpcPort})
	c.Env = append(c.Env, corev1.EnvVar{Name: "GRPC_PORT", Value: strconv.Itoa(grpcPort)})
	if notReady {
		c.Env = append(c.Env, corev1.EnvVar{Name: "READY", Value: "0"})
	}
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: grpcPort}},
		PeriodSeconds:    1,
		TimeoutSeconds:   5,
		FailureThreshold: 1,
	}
	return d
}

// checkVia calls grpc.health.v1.Health/Check on conn and returns the
// x-served-by header of the answer.
func checkVia(ctx context.Context, conn *grpc.ClientConn) (string, error) {
	var md metadata.MD
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md))
	if err != nil {
		return "", err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return "", fmt.Errorf("health status %s", resp.GetStatus())
	}
	return strings.Join(md.Get("x-served-by"), ","), nil
}

// dial opens a gRPC connection to addr without resolving or retrying.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy(), grpc.WithDisableRetry())
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestGRPCThroughClusterIP runs pods whose readiness is a native grpc
// probe behind a ClusterIP Service: a pod becomes an endpoint only once
// its health service says SERVING, the front door carries gRPC (HTTP/2)
// to the ready pods, one per connection, and a connection stays on the
// pod it reached however many calls it makes.
func TestGRPCThroughClusterIP(t *testing.T) {
	objs := &Objects{}
	svc := newTestService("shop", "rpc", "rpc", false)
	h2c := "kubernetes.io/h2c"
	svc.Spec.Ports = []corev1.ServicePort{{Name: "grpc", Port: grpcPort, TargetPort: intstr.FromString("grpc"), AppProtocol: &h2c}}
	for _, o := range []any{newGRPCDeployment("shop", "rpc", 2, true), svc} {
		if err := objs.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	tc := startCluster(t, objs)

	// Both pods run and fail their grpc probe with NOT_SERVING: no endpoints.
	s := tc.waitFor("two pods failing their grpc probe", func(s api.Snapshot) bool {
		failing := 0
		for _, p := range podsOf(s, "rpc") {
			if p.Status == "Running" && slices.ContainsFunc(s.Events, func(e api.Event) bool {
				return e.Object == "pod/"+p.Name && e.Reason == "Unhealthy" && strings.Contains(e.Message, "NOT_SERVING")
			}) {
				failing++
			}
		}
		return failing == 2
	})
	if ready := readyPods(s, "rpc"); len(ready) != 0 || len(serviceInfo(t, s, "rpc").Endpoints) != 0 {
		t.Fatalf("pods ready while their health service says NOT_SERVING: %s", describe(s))
	}
	front := net.JoinHostPort(serviceInfo(t, s, "rpc").ClusterIP, strconv.Itoa(grpcPort))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	noEndpoints := dial(t, front)
	if by, err := checkVia(ctx, noEndpoints); err == nil {
		t.Fatalf("a call through a Service without endpoints was answered by %q", by)
	}
	noEndpoints.Close()

	// The first pod says SERVING: it alone is ready and answers.
	pods := names(podsOf(s, "rpc"))
	setReady := func(pod string) {
		t.Helper()
		for _, p := range podsOf(tc.c.Snapshot(), "rpc") {
			if p.Name == pod {
				if _, _, err := tc.get("http://" + net.JoinHostPort(p.IP, strconv.Itoa(podPort)) + "/set?ready=1"); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		t.Fatalf("no pod %s", pod)
	}
	setReady(pods[0])
	tc.waitFor(pods[0]+" the only endpoint", func(s api.Snapshot) bool {
		return slices.Equal(names(readyPods(s, "rpc")), pods[:1]) && len(serviceInfo(t, s, "rpc").Endpoints) == 1
	})
	call := func(want []string) string {
		t.Helper()
		conn := dial(t, front)
		defer conn.Close()
		by, err := checkVia(ctx, conn)
		if err != nil || !slices.Contains(want, by) {
			t.Fatalf("Check through %s: served by %q, %v; want one of %q", front, by, err, want)
		}
		return by
	}
	for range 5 {
		call(pods[:1])
	}

	// Both ready: new connections reach both, each picked at random.
	setReady(pods[1])
	tc.waitReady("rpc", 2)
	seen := map[string]bool{}
	for i := 0; i < 200 && len(seen) < 2; i++ {
		seen[call(pods)] = true
	}
	if len(seen) != 2 {
		t.Fatalf("200 connections reached only %v", seen)
	}

	// One connection, many calls: all on one pod, the connection pinning
	// that lint's SH022 warns of.
	conn := dial(t, front)
	defer conn.Close()
	first := ""
	for i := range 20 {
		by, err := checkVia(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = by
		}
		if by != first {
			t.Fatalf("call %d on one connection served by %s, the first by %s", i, by, first)
		}
	}
}
