package service

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/healthtest"
	"github.com/shoal-dev/shoal/metricstest"
)

// TestShedRequestsCountUnderTheirRoute: a request the load shedder
// answers 503 never reaches the mux, yet is counted under its route.
func TestShedRequestsCountUnderTheirRoute(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	r := start(t, "shed", func(svc *Service) error {
		svc.Options.ShedMaxLimit = 1
		svc.Mux.HandleFunc("GET /v1/slow", func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			<-release
		})
		return nil
	})
	healthtest.Wait(t, r.adm+"/readyz", http.StatusOK)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	held := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/v1/slow", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the first request never reached the handler")
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/v1/slow", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	close(release)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second request with the limit at 1: status %d, want 503 from the shedder", resp.StatusCode)
	}
	if code := <-held; code != http.StatusOK {
		t.Fatalf("held request: status %d", code)
	}
	if v := metricstest.Value(t, r.svc.Registry, "http_requests_total", "route", "/v1/slow", "code", "503"); v != 1 {
		t.Errorf(`http_requests_total{route="/v1/slow",code="503"} = %v, want 1`, v)
	}

}
