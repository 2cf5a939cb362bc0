package dashboard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/internal/localk8s/dashboard"
)

// The dashboard shares an address with the API it polls: mount the API
// under /api/ and the dashboard at the root.
func ExampleHandler() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.SnapshotPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"time": "2026-07-01T12:00:00Z"}`)
	})
	mux.Handle("/", dashboard.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	// Output: 200 text/html; charset=utf-8
}
