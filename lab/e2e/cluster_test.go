//go:build e2e

package e2e

import (
	"cmp"
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNodeReady(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := l.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	if len(nodes.Items) != 1 {
		t.Fatalf("nodes: got %d, want 1", len(nodes.Items))
	}
	n := nodes.Items[0]
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		t.Fatalf("node %s not Ready: %+v", n.Name, n.Status.Conditions)
	}
	want := cmp.Or(os.Getenv("LAB_K8S_VERSION"), "v1.37.2")
	if got := n.Status.NodeInfo.KubeletVersion; got != want {
		t.Errorf("kubelet version: got %q, want %s", got, want)
	}
	var internal string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internal = a.Address
		}
	}
	if internal != "10.199.0.1" {
		t.Errorf("node InternalIP: got %q, want the lab's own 10.199.0.1", internal)
	}
}

func TestClusterDNS(t *testing.T) {
	tests := []struct {
		name, host, want string
	}{
		{name: "kubernetes service", host: "kubernetes.default.svc.cluster.local", want: "10.96.0.1"},
		{name: "dns service", host: "kube-dns.kube-system.svc.cluster.local", want: "10.96.0.10"},
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, "10.96.0.10:53")
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			addrs, err := r.LookupHost(ctx, tt.host)
			if err != nil {
				t.Fatalf("lookup %s: %v", tt.host, err)
			}
			if strings.Join(addrs, ",") != tt.want {
				t.Fatalf("lookup %s: got %v, want %s", tt.host, addrs, tt.want)
			}
		})
	}
	t.Run("unknown name", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if addrs, err := r.LookupHost(ctx, "no-such-service.default.svc.cluster.local"); err == nil {
			t.Fatalf("lookup of a missing service answered %v", addrs)
		}
	})
}

// TestMetricsAPIs checks the aggregation layer: metrics-server serves node
// metrics and prometheus-adapter serves the custom metrics API.
func TestMetricsAPIs(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Run("metrics.k8s.io", func(t *testing.T) {
		err := poll(ctx, 3*time.Second, func(ctx context.Context) (bool, error) {
			out, err := l.kubectl(ctx, nil, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes")
			return err == nil && strings.Contains(out, `"name":"shoal-lab"`) && strings.Contains(out, `"cpu"`), err
		})
		if err != nil {
			t.Fatalf("node metrics: %v", err)
		}
	})
	t.Run("custom.metrics.k8s.io", func(t *testing.T) {
		err := poll(ctx, 3*time.Second, func(ctx context.Context) (bool, error) {
			out, err := l.kubectl(ctx, nil, "get", "--raw", "/apis/custom.metrics.k8s.io/v1beta1")
			return err == nil && strings.Contains(out, `"groupVersion":"custom.metrics.k8s.io/v1beta1"`), err
		})
		if err != nil {
			t.Fatalf("custom metrics discovery: %v", err)
		}
	})
}
