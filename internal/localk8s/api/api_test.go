package api_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// source is a cluster of one Deployment, default/web.
type source struct {
	mu       sync.Mutex
	restarts []string
}

var _ api.Source = (*source)(nil)

var t0 = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

func (s *source) Snapshot() api.Snapshot {
	return api.Snapshot{
		Time:        t0,
		Deployments: []api.DeploymentInfo{{Namespace: "default", Name: "web", Replicas: 2, Ready: 2}},
		Autoscalers: []api.AutoscalerInfo{{Kind: api.KindHPA, Namespace: "default", Name: "web", Target: "deployment/web", Desired: 3}},
	}
}

func (s *source) Restart(ns, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restarts = append(s.restarts, ns+"/"+name)
	if ns != "default" || name != "web" {
		return fmt.Errorf("fake: deployment %s/%s: %w", ns, name, api.ErrNotFound)
	}
	return nil
}

func serve(t *testing.T, s api.Source) api.Client {
	t.Helper()
	srv := httptest.NewServer(api.Handler(s))
	t.Cleanup(srv.Close)
	return api.Client{Server: srv.URL, HTTP: srv.Client()}
}

func TestClientAndHandler(t *testing.T) {
	src := &source{}
	c := serve(t, src)
	ctx := context.Background()

	snap, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Time.Equal(t0) || len(snap.Deployments) != 1 || snap.Deployments[0].Name != "web" ||
		len(snap.Autoscalers) != 1 || snap.Autoscalers[0].Kind != api.KindHPA || snap.Autoscalers[0].Desired != 3 {
		t.Errorf("snapshot %+v, want the source's", snap)
	}

	if err := c.Restart(ctx, "default", "web"); err != nil {
		t.Errorf("Restart: %v", err)
	}
	err = c.Restart(ctx, "shop", "a/b")
	var ae *api.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound || ae.Message != "fake: deployment shop/a/b: not found" {
		t.Errorf("Restart of an unknown deployment: %v, want a 404 with the source's message", err)
	}
	if want := []string{"default/web", "shop/a/b"}; strings.Join(src.restarts, " ") != strings.Join(want, " ") {
		t.Errorf("restarts %q, want %q (the name's slash escaped in the path)", src.restarts, want)
	}

	tests := []struct {
		name, method, path string
		code               int
		message            string
	}{
		{"unknown path", "GET", "/api/v1/pods", 404, "no such API path: GET /api/v1/pods"},
		{"snapshot by POST", "POST", api.SnapshotPath, 405, "method POST not allowed on /api/v1/snapshot; use GET, HEAD"},
		{"restart by GET", "GET", api.RestartPath("default", "web"), 405, "method GET not allowed on /api/v1/namespaces/default/deployments/web/restart; use POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Do(ctx, tt.method, tt.path)
			var ae *api.APIError
			if !errors.As(err, &ae) || ae.StatusCode != tt.code || ae.Message != tt.message {
				t.Errorf("%s %s: %v, want %d %q", tt.method, tt.path, err, tt.code, tt.message)
			}
		})
	}
}

func TestClientNotRunning(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = api.Client{Server: addr}.Snapshot(context.Background())
	if !errors.Is(err, api.ErrNotRunning) || !strings.HasPrefix(err.Error(), "no shoal up answering at "+addr+": ") {
		t.Errorf("err = %v, want ErrNotRunning naming %s", err, addr)
	}
}

func TestClientServer(t *testing.T) {
	tests := []struct {
		name, server, want string
	}{
		{"scheme", "ftp://127.0.0.1:1", "scheme must be http or https"},
		{"no host", "http:///x", "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := api.Client{Server: tt.server}.Snapshot(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if got := (api.Client{}).Addr(); got != api.DefaultAddr {
		t.Errorf("zero Client's Addr %q, want DefaultAddr", got)
	}
}
