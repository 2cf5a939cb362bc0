// Command labpromsd writes Prometheus file_sd targets for the lab's pods.
// Debian's Prometheus is built without Kubernetes service discovery, so this
// lists pods every few seconds and writes the scrape targets Prometheus's
// kubernetes_sd_configs would give: pods annotated prometheus.io/scrape
// "true" (port prometheus.io/port, path prometheus.io/path) and container
// ports named "admin", labelled with namespace, pod and app.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// targetGroup is one entry of a Prometheus file_sd file.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the lab")
	out := flag.String("o", "", "file_sd JSON file to write (required)")
	every := flag.Duration("interval", 5*time.Second, "time between pod listings")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *kubeconfig, *out, *every); err != nil {
		slog.Error("labpromsd failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig, out string, every time.Duration) error {
	if out == "" {
		return fmt.Errorf("labpromsd: -o is required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("labpromsd: kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("labpromsd: client: %w", err)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last []byte
	for {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		pods, err := client.CoreV1().Pods("").List(lctx, metav1.ListOptions{})
		cancel()
		if err != nil {
			slog.Warn("labpromsd: list pods", "err", err)
		} else if data, err := json.MarshalIndent(targets(pods.Items), "", "  "); err != nil {
			return fmt.Errorf("labpromsd: encode targets: %w", err)
		} else if string(data) != string(last) {
			if err := writeAtomic(out, data); err != nil {
				return err
			}
			last = data
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func targets(pods []corev1.Pod) []targetGroup {
	groups := []targetGroup{}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		labels := map[string]string{"namespace": p.Namespace, "pod": p.Name}
		if app := p.Labels["app.kubernetes.io/name"]; app != "" {
			labels["app"] = app
		}
		if path := p.Annotations["prometheus.io/path"]; path != "" {
			labels["__metrics_path__"] = path
		}
		var ports []int
		if p.Annotations["prometheus.io/scrape"] == "true" {
			if port, err := strconv.Atoi(p.Annotations["prometheus.io/port"]); err == nil {
				ports = append(ports, port)
			}
		}
		if len(ports) == 0 {
			for _, c := range p.Spec.Containers {
				for _, cp := range c.Ports {
					if cp.Name == "admin" {
						ports = append(ports, int(cp.ContainerPort))
					}
				}
			}
		}
		for _, port := range ports {
			groups = append(groups, targetGroup{
				Targets: []string{net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port))},
				Labels:  labels,
			})
		}
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Targets[0] < groups[j].Targets[0] })
	return groups
}

// writeAtomic replaces path with data so Prometheus never reads half a file.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".targets-*")
	if err != nil {
		return fmt.Errorf("labpromsd: write targets: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("labpromsd: write targets: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("labpromsd: write targets: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("labpromsd: write targets: %w", err)
	}
	return nil
}
