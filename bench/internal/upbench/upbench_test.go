package upbench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

func TestLoopbackNets(t *testing.T) {
	pods, services, port, err := LoopbackNets()
	if err != nil {
		t.Fatal(err)
	}
	if !pods.Addr().IsLoopback() || !services.Addr().IsLoopback() {
		t.Errorf("networks %v, %v: want loopback", pods, services)
	}
	if pods.Bits() != 24 || services.Bits() != 24 || pods.Overlaps(services) {
		t.Errorf("networks %v, %v: want two disjoint /24s", pods, services)
	}
	if port == 0 {
		t.Error("DNS port 0")
	}
}

func TestThumbnailerGiven(t *testing.T) {
	path, cleanup, err := Thumbnailer(context.Background(), "some/thumbnailer", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if !filepath.IsAbs(path) || filepath.Base(path) != "thumbnailer" {
		t.Errorf("path %q: want the given program made absolute", path)
	}
}

func snapshot() *api.Snapshot {
	return &api.Snapshot{
		Deployments: []api.DeploymentInfo{
			{Namespace: "other", Name: "thumbnailer", Ready: 9},
			{Namespace: "default", Name: "thumbnailer", Ready: 2},
		},
		Services: []api.ServiceInfo{
			{Namespace: "default", Name: "thumbnailer", Type: "NodePort", ClusterIP: "127.0.0.9"},
			{Namespace: "default", Name: "thumbnailer", Type: "ClusterIP", ClusterIP: "127.0.0.1"},
		},
		Autoscalers: []api.AutoscalerInfo{
			{Namespace: "default", Name: "thumbnailer", Desired: 3},
			{Name: "gallery", Desired: 5}, // no namespace: any
		},
	}
}

func TestFind(t *testing.T) {
	s := snapshot()
	tests := []struct {
		namespace, name string
		ready           int32 // -1: no Deployment
		clusterIP       string
		desired         int32 // -1: no autoscaler
	}{
		{"default", "thumbnailer", 2, "127.0.0.1", 3},
		{"other", "thumbnailer", 9, "", -1},
		{"default", "gallery", -1, "", 5},
		{"default", "none", -1, "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.namespace+"/"+tt.name, func(t *testing.T) {
			d := FindDeployment(s, tt.namespace, tt.name)
			if (d == nil) != (tt.ready < 0) || d != nil && d.Ready != tt.ready {
				t.Errorf("FindDeployment = %+v, want ready %d", d, tt.ready)
			}
			v := FindService(s, tt.namespace, tt.name)
			if (v == nil) != (tt.clusterIP == "") || v != nil && v.ClusterIP != tt.clusterIP {
				t.Errorf("FindService = %+v, want ClusterIP %q", v, tt.clusterIP)
			}
			a := FindAutoscaler(s, tt.namespace, tt.name)
			if (a == nil) != (tt.desired < 0) || a != nil && a.Desired != tt.desired {
				t.Errorf("FindAutoscaler = %+v, want desired %d", a, tt.desired)
			}
		})
	}
}

func ExampleFindService() {
	s := &api.Snapshot{Services: []api.ServiceInfo{
		{Namespace: "default", Name: "thumbnailer", Type: "ClusterIP", ClusterIP: "127.77.2.4"},
	}}
	if v := FindService(s, "default", "thumbnailer"); v != nil {
		fmt.Println(v.ClusterIP)
	}
	// Output: 127.77.2.4
}
