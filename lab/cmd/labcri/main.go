// Command labcri stops and removes every pod sandbox and container through
// the CRI of the lab's containerd, so that the CNI plugins tear down their
// network namespaces, veths and address leases before containerd stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "unix:///var/lib/shoal-lab/run/containerd/containerd.sock", "CRI endpoint")
	timeout := flag.Duration("timeout", 90*time.Second, "time limit of the whole reset")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := reset(ctx, *endpoint); err != nil {
		slog.Error("labcri failed", "err", err)
		os.Exit(1)
	}
}

func reset(ctx context.Context, endpoint string) error {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("labcri: dial %s: %w", endpoint, err)
	}
	defer conn.Close()
	rt := runtime.NewRuntimeServiceClient(conn)
	cs, err := rt.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		return fmt.Errorf("labcri: list containers: %w", err)
	}
	for _, c := range cs.Containers {
		if _, err := rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: c.Id, Timeout: 2}); err != nil {
			slog.Warn("labcri: stop container", "id", c.Id, "err", err)
		}
		if _, err := rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
			slog.Warn("labcri: remove container", "id", c.Id, "err", err)
		}
	}
	ps, err := rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("labcri: list pod sandboxes: %w", err)
	}
	var failed int
	for _, p := range ps.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			slog.Warn("labcri: stop sandbox", "id", p.Id, "err", err)
			failed++
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			slog.Warn("labcri: remove sandbox", "id", p.Id, "err", err)
			failed++
		}
	}
	slog.Info("labcri: reset", "containers", len(cs.Containers), "sandboxes", len(ps.Items), "failures", failed)
	if failed > 0 {
		return fmt.Errorf("labcri: %d sandbox operations failed", failed)
	}
	return nil
}
