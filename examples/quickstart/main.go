// Command quickstart is a service on Shoal's kit that calls another (its
// BACKEND, which may be another quickstart: both answer GET /ping).
package main

import (
	"io"
	"net/http"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/service"
)

func main() {
	var backend string
	service.Main("quickstart", func(cs *config.Set) {
		cs.String(&backend, "backend", "BACKEND", "dns:///backend-headless:8080", "the service /hello calls: URL, host:port list or dns:///name:port")
	}, func(svc *service.Service) error {
		up, err := svc.Upstream(service.UpstreamConfig{Name: "backend", Target: backend})
		if err != nil {
			return err
		}
		svc.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong") })
		svc.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
			resp, err := up.Get(r.Context(), "/ping")
			if err != nil {
				service.UpstreamFailed(w, r, err) // 504 if this request's time ran out, else 502
				return
			}
			defer resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			if _, err := io.Copy(w, resp.Body); err != nil {
				panic(http.ErrAbortHandler) // a body cut short must not look complete
			}
		})
		return svc.Health.Add(health.Check{Name: "backend", Func: up.Check("/ping")})
	})
}
