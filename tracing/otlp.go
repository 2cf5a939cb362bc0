package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// exportTimeout bounds one POST to the collector, retries aside.
const exportTimeout = 10 * time.Second

// tracesURL is the URL spans are posted to: the endpoint's path followed
// by /v1/traces, as OTEL_EXPORTER_OTLP_ENDPOINT is read for OTLP/HTTP.
func tracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("tracing: Endpoint %q: %w", endpoint, err)
	}
	switch {
	case !strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https"):
		return "", fmt.Errorf("tracing: Endpoint %q is not an http:// or https:// URL", endpoint)
	case u.Host == "":
		return "", fmt.Errorf("tracing: Endpoint %q has no host", endpoint)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", fmt.Errorf("tracing: Endpoint %q has a query, fragment or user, which OTLP does not use", endpoint)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Path = path.Join("/", u.Path, "v1/traces")
	u.RawPath = ""
	return u.String(), nil
}

// otlp sends spans to a collector over OTLP/HTTP and logs what it could
// not send. It owns the HTTP transport, so Shutdown can close its idle
// connections; the exporter's default transport is shared by every
// exporter in the process and reads proxy settings from the environment.
type otlp struct {
	exporter  sdktrace.SpanExporter
	transport *http.Transport
	log       *slog.Logger

	mu       sync.Mutex
	stopping bool  // Shutdown has begun
	stopErr  error // the last failed export since then
}

func newOTLP(endpoint string, log *slog.Logger) (*otlp, error) {
	target, err := tracesURL(endpoint)
	if err != nil {
		return nil, err
	}
	o := &otlp{
		log: log,
		transport: &http.Transport{
			Proxy:                 nil, // a collector is reached directly
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
	}
	// Every setting the exporter would otherwise take from an
	// OTEL_EXPORTER_OTLP_* variable is given, so the Config alone decides.
	// The URL sets host, path and (from its scheme) TLS.
	o.exporter, err = otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(target),
		otlptracehttp.WithHTTPClient(&http.Client{Transport: o.transport, Timeout: exportTimeout}),
		otlptracehttp.WithHeaders(map[string]string{}),
		otlptracehttp.WithCompression(otlptracehttp.NoCompression),
		otlptracehttp.WithEncoding(otlptracehttp.EncodingProtobuf),
		otlptracehttp.WithTimeout(exportTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", target, err)
	}
	return o, nil
}

// batcher is the span processor for the exporter, with the SDK's default
// batching given explicitly so the OTEL_BSP_* variables have no say.
func (o *otlp) batcher() sdktrace.TracerProviderOption {
	return sdktrace.WithBatcher(o,
		sdktrace.WithBatchTimeout(sdktrace.DefaultScheduleDelay*time.Millisecond),
		sdktrace.WithExportTimeout(sdktrace.DefaultExportTimeout*time.Millisecond),
		sdktrace.WithMaxQueueSize(sdktrace.DefaultMaxQueueSize),
		sdktrace.WithMaxExportBatchSize(sdktrace.DefaultMaxExportBatchSize),
	)
}

// ExportSpans logs a failed export itself and hides it from the batcher,
// which would hand it to OpenTelemetry's global error handler, a
// log.Printf to stderr.
func (o *otlp) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := o.exporter.ExportSpans(ctx, spans)
	if err != nil {
		o.log.Warn("tracing: spans not exported", "spans", len(spans), "err", err)
		o.mu.Lock()
		if o.stopping {
			o.stopErr = err
		}
		o.mu.Unlock()
	}
	return nil
}

// Shutdown shuts the exporter down; the provider calls it after the last
// batch.
func (o *otlp) Shutdown(ctx context.Context) error {
	err := o.exporter.Shutdown(ctx)
	o.transport.CloseIdleConnections()
	return err
}

// beginShutdown marks the start of Shutdown, from which a failed export is an
// error of Shutdown's.
func (o *otlp) beginShutdown() {
	o.mu.Lock()
	o.stopping = true
	o.mu.Unlock()
}

// shutdownErr returns the last export that failed since stopping.
func (o *otlp) shutdownErr() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopErr != nil {
		return fmt.Errorf("spans not exported: %w", o.stopErr)
	}
	return nil
}

var _ sdktrace.SpanExporter = (*otlp)(nil)
