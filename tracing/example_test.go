package tracing_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/tracing"
)

// A service continues the trace its caller started, passes it on to the
// service it calls, and can put the trace ID in its log lines. Without an
// Endpoint nothing is exported, but the trace still flows; with one, each
// hop's spans go to the collector.
func Example() {
	tr, err := tracing.New(tracing.Config{ServiceName: "checkout"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Shutdown(context.Background())

	inventory := httptest.NewServer(tr.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("inventory: trace", tr.TraceID(r.Context()))
	})))
	defer inventory.Close()

	client := &http.Client{Transport: tr.Transport(nil)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("checkout: trace", tr.TraceID(r.Context()))
		// The request's context carries the span on to the next call.
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, inventory.URL+"/stock", nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
	})
	checkout := httptest.NewServer(tr.Handler(mux))
	defer checkout.Close()

	req, err := http.NewRequest(http.MethodPost, checkout.URL+"/orders", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	// Output:
	// checkout: trace 4bf92f3577b34da6a3ce929d0e0e4736
	// inventory: trace 4bf92f3577b34da6a3ce929d0e0e4736
}

// Bind reads the collector and the sample ratio from the standard
// OpenTelemetry variables or from flags; the program names the service.
func ExampleBind() {
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	cfg := tracing.Config{ServiceName: "checkout"}
	cs := config.New(flag.NewFlagSet("checkout", flag.ContinueOnError), lookup)
	tracing.Bind(cs, &cfg)
	if err := cs.Parse([]string{"-trace-sample-ratio", "0.1"}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Endpoint, cfg.SampleRatio)
	// Output: http://otel-collector:4318 0.1
}
