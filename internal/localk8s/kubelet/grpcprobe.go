package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
)

// grpcCheck calls grpc.health.v1.Health/Check on the pod IP's port with
// the probe's service name, and succeeds on SERVING, as the kubelet's gRPC
// probe: plaintext, no retries, ctx bounding the dial and the call. One
// difference: the kubelet blocks on the dial until the timeout while this
// fails at once on a refused connection; both are a failed probe.
func (c *container) grpcCheck(ctx context.Context, g *corev1.GRPCAction) error {
	addr := net.JoinHostPort(c.pod.cfg.IP.String(), strconv.Itoa(int(g.Port)))
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent("kube-probe/1.34"),
		grpc.WithNoProxy(),
		grpc.WithDisableServiceConfig(),
		grpc.WithDisableRetry(),
	)
	if err != nil {
		return fmt.Errorf("failed to connect service at %q: %w", addr, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		switch status.Code(err) {
		case codes.Unimplemented:
			return fmt.Errorf("this server does not implement the grpc health protocol (grpc.health.v1.Health): %w", err)
		case codes.DeadlineExceeded:
			return fmt.Errorf("timeout: health rpc did not complete: %w", err)
		}
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("timeout: health rpc did not complete: %w", err)
		}
		return fmt.Errorf("health rpc probe failed: %w", err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("service unhealthy (responded with %q)", st)
	}
	return nil
}
