package k8sresolver

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/shoal-dev/shoal/service"
)

// TestServiceUpstreamOverEndpointSlices: a k8s:/// target of package
// service, given Targets, spreads calls over the Service's ready
// endpoints.
func TestServiceUpstreamOverEndpointSlices(t *testing.T) {
	port := startReplicas(t, 2)
	cs := fake.NewClientset(slice("thumbnailer-abc", "thumbnailer", port, ep("127.0.0.2", cond{ready: yes}), ep("127.0.0.3", cond{ready: yes})))
	svc, err := service.New(service.Options{Host: "127.0.0.1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	up, err := svc.Upstream(service.UpstreamConfig{
		Name: "thumbnailer", Target: "k8s:///thumbnailer:http", Policy: "round_robin",
		EndpointSlices: Targets(cs, "default", slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if up.BaseURL != "http://thumbnailer" {
		t.Errorf("BaseURL = %q", up.BaseURL)
	}
	seen := map[string]int{}
	deadline := time.Now().Add(20 * time.Second)
	for len(seen) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("calls reached only %v", seen)
		}
		req, _ := up.NewRequest(t.Context(), http.MethodGet, "/", nil)
		resp, err := up.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seen[resp.Header.Get("X-Served-By")]++
	}
}
