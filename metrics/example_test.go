package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-dev/shoal/metrics"
)

func Example() {
	reg := metrics.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "item "+r.PathValue("id"))
	})
	app := m.Middleware(mux)    // serve this on the public port
	admin := http.NewServeMux() // and this on the admin port
	admin.Handle("GET /metrics", metrics.Handler(reg))

	for _, path := range []string{"/v1/items/1", "/v1/items/2", "/nope"} {
		app.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	n, _ := testutil.GatherAndCount(reg, "http_requests_total")
	fmt.Println("series:", n)
	// Output:
	// series: 2
}
