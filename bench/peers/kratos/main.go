// Command kratos is the comparison service written with kratos: GET /hello
// returns the body of the downstream at BACKEND, GET /readyz fails while
// that downstream does, GET /trivial answers "ok", and GET /metrics serves
// the metrics middleware's counters through the OpenTelemetry Prometheus
// exporter.
package main

import (
	"context"
	"io"
	"log"
	nethttp "net/http"
	"os"

	"github.com/go-kratos/kratos/v2"
	"github.com/go-kratos/kratos/v2/errors"
	"github.com/go-kratos/kratos/v2/middleware/metrics"
	"github.com/go-kratos/kratos/v2/middleware/recovery"
	"github.com/go-kratos/kratos/v2/transport/http"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

func main() {
	exporter, err := prometheus.New()
	if err != nil {
		log.Fatal(err)
	}
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter)).Meter("hello")
	requests, err := metrics.DefaultRequestsCounter(meter, metrics.DefaultServerRequestsCounterName)
	if err != nil {
		log.Fatal(err)
	}
	seconds, err := metrics.DefaultSecondsHistogram(meter, metrics.DefaultServerSecondsHistogramName)
	if err != nil {
		log.Fatal(err)
	}
	client, err := http.NewClient(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	backend := os.Getenv("BACKEND")

	srv := http.NewServer(
		http.Address(":"+os.Getenv("PORT")),
		http.Middleware(
			recovery.Recovery(),
			metrics.Server(metrics.WithRequests(requests), metrics.WithSeconds(seconds)),
		),
	)
	srv.Handle("/metrics", promhttp.Handler())
	r := srv.Route("/")
	r.GET("/trivial", text(func(context.Context) (string, error) {
		return "ok", nil
	}))
	r.GET("/hello", text(func(ctx context.Context) (string, error) {
		body, err := get(ctx, client, backend)
		if err != nil {
			return "", errors.New(nethttp.StatusBadGateway, "BACKEND", err.Error())
		}
		return body, nil
	}))
	r.GET("/readyz", text(func(ctx context.Context) (string, error) {
		if _, err := get(ctx, client, backend); err != nil {
			return "", errors.ServiceUnavailable("BACKEND", err.Error())
		}
		return "ok", nil
	}))

	app := kratos.New(kratos.Name("hello"), kratos.Server(srv))
	if err := app.Run(); err != nil {
		log.Fatal(err)
	}
}

// text runs f behind the server's middleware and writes its result as the
// body, the way generated handlers do for a protobuf service.
func text(f func(context.Context) (string, error)) http.HandlerFunc {
	return func(ctx http.Context) error {
		h := ctx.Middleware(func(ctx context.Context, _ any) (any, error) {
			return f(ctx)
		})
		out, err := h(ctx, nil)
		if err != nil {
			return err
		}
		return ctx.String(nethttp.StatusOK, out.(string))
	}
}

func get(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}
