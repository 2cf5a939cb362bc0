package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/config"
)

// DefaultServiceName is the service.name of a Config without a
// ServiceName, the OpenTelemetry name for a service that did not say.
const DefaultServiceName = "unknown_service"

// DefaultSampleRatio is the share of new traces sampled when
// Config.SampleRatio is zero: all of them.
const DefaultSampleRatio = 1.0

// Config says where spans go and how many traces are kept. The zero value
// is valid: every trace is sampled, nothing is exported.
type Config struct {
	// ServiceName is the service.name resource attribute of every span.
	// "" means DefaultServiceName.
	ServiceName string
	// Endpoint is the base URL of an OTLP/HTTP collector, such as
	// http://otel-collector:4318; spans are posted in protobuf to its path
	// followed by /v1/traces, over TLS when the scheme is https, in batches
	// by a goroutine that Shutdown stops. "" exports nothing, and runs no
	// goroutine, but still reads and sends traceparent and gives new
	// traces IDs for logs.
	Endpoint string
	// SampleRatio is the share of new traces (requests without a
	// traceparent) that are sampled, from 0 to 1; a request with one
	// follows its sampled flag. Zero means DefaultSampleRatio (1); negative
	// or above 1 is invalid.
	SampleRatio float64
	// Exporter, when not nil, receives each span as it ends, synchronously
	// and instead of an OTLP collector: for tests
	// (go.opentelemetry.io/otel/sdk/trace/tracetest.NewInMemoryExporter)
	// and for exporters that batch on their own. Shutdown shuts it down.
	Exporter sdktrace.SpanExporter
	// Logger receives failures to send spans to Endpoint, at level Warn.
	// Nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if c.SampleRatio == 0 {
		c.SampleRatio = DefaultSampleRatio
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first invalid field by name.
func (c Config) Validate() error {
	switch {
	case math.IsNaN(c.SampleRatio):
		return errors.New("tracing: SampleRatio is NaN")
	case c.SampleRatio < 0:
		return fmt.Errorf("tracing: SampleRatio %g is negative", c.SampleRatio)
	case c.SampleRatio > 1:
		return fmt.Errorf("tracing: SampleRatio %g is above 1", c.SampleRatio)
	}
	if c.Endpoint != "" {
		if _, err := tracesURL(c.Endpoint); err != nil {
			return err
		}
	}
	return nil
}

// Bind registers Endpoint and SampleRatio on cs under the standard
// OpenTelemetry variable names: -otlp-endpoint (OTEL_EXPORTER_OTLP_ENDPOINT,
// a base URL to which /v1/traces is added, as the specification has it)
// and -trace-sample-ratio (OTEL_TRACES_SAMPLER_ARG, the argument of the
// parentbased_traceidratio sampler, which is the one a Tracer uses
// whatever OTEL_TRACES_SAMPLER says). The service name is the caller's to
// set.
func Bind(cs *config.Set, c *Config) {
	cs.String(&c.Endpoint, "otlp-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "",
		"OTLP/HTTP collector to send spans to, such as http://otel-collector:4318; empty sends none but still propagates traceparent")
	cs.Float64(&c.SampleRatio, "trace-sample-ratio", "OTEL_TRACES_SAMPLER_ARG", DefaultSampleRatio,
		"share of new traces sampled, above 0 and at most 1; requests with a traceparent follow its sampled flag")
}

// Tracer makes server and client spans for HTTP and exports them. Create
// it with [New]; its methods are safe for concurrent use.
type Tracer struct {
	provider trace.TracerProvider
	// Without an exporter, ids is the provider and Handler and Transport
	// only propagate; with one, sdk is, and otelhttp records.
	ids        *idProvider
	sdk        *sdktrace.TracerProvider
	server     func(http.Handler) http.Handler
	clientOpts []otelhttp.Option
	otlp       *otlp // nil unless spans go to an OTLP endpoint

	shutdownOnce sync.Once
	shutdownErr  error
}

// spanLimits are the SDK's defaults, given explicitly so that the
// OTEL_SPAN_*_LIMIT variables the SDK would read instead have no say.
var spanLimits = sdktrace.SpanLimits{
	AttributeValueLengthLimit:   sdktrace.DefaultAttributeValueLengthLimit,
	AttributeValueDepthLimit:    sdktrace.DefaultAttributeValueDepthLimit,
	AttributeCountLimit:         sdktrace.DefaultAttributeCountLimit,
	EventCountLimit:             sdktrace.DefaultEventCountLimit,
	LinkCountLimit:              sdktrace.DefaultLinkCountLimit,
	AttributePerEventCountLimit: sdktrace.DefaultAttributePerEventCountLimit,
	AttributePerLinkCountLimit:  sdktrace.DefaultAttributePerLinkCountLimit,
}

// New checks cfg and returns a Tracer. With an Endpoint it starts the
// goroutine that sends batches of spans; [Tracer.Shutdown] stops it.
func New(cfg Config) (*Tracer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	sampler := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))
	t := &Tracer{}
	if cfg.Exporter == nil && cfg.Endpoint == "" {
		t.ids = newIDProvider(sampler)
		t.provider = t.ids
		return t, nil
	}
	// Only the detectors named here run: resource.Default would also read
	// OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME.
	res, err := resource.New(context.Background(),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
		sdktrace.WithRawSpanLimits(spanLimits),
	}
	if cfg.Exporter != nil {
		opts = append(opts, sdktrace.WithSyncer(cfg.Exporter))
	} else {
		if t.otlp, err = newOTLP(cfg.Endpoint, cfg.Logger); err != nil {
			return nil, err
		}
		opts = append(opts, t.otlp.batcher())
	}
	t.sdk = sdktrace.NewTracerProvider(opts...)
	t.provider = t.sdk

	common := []otelhttp.Option{
		otelhttp.WithTracerProvider(t.sdk),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		// otelhttp records metrics too; package metrics has those, so
		// they go nowhere rather than to the global meter provider.
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
	}
	t.server = otelhttp.NewMiddleware("", common...)
	t.clientOpts = append(common, otelhttp.WithSpanNameFormatter(clientSpanName))
	return t, nil
}

// Handler wraps next in a server span per request, the child of the span
// named by the request's traceparent header if it has a valid one, else
// the root of a new trace. The span is in the context of the request next
// gets, so [Tracer.TraceID] and the clients of [Tracer.Transport] find it.
// It is named "METHOD pattern" after the ServeMux pattern next matched
// (see [Tracer.Route]), and records the status code; a 5xx answer or a
// panic (which continues) marks it as an error.
func (t *Tracer) Handler(next http.Handler) http.Handler {
	if t.ids != nil {
		return propagateHandler(t.ids.Tracer(""), next)
	}
	return t.server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// r is the request otelhttp made, the one a ServeMux right below
		// sets the pattern on. otelhttp renames the span from it, but adds
		// no http.route and, on a panic, neither renames nor marks it.
		span := trace.SpanFromContext(r.Context())
		completed := false
		defer func() {
			nameAfterRoute(span, r)
			if !completed {
				span.SetStatus(codes.Error, "handler panicked")
			}
		}()
		next.ServeHTTP(w, r)
		completed = true
	}))
}

// Route wraps a [net/http.ServeMux] (or any handler that sets the
// request's Pattern) so that the server span of [Tracer.Handler] is named
// after the pattern that matched even when middleware between Handler and
// the mux replaced the request, which hides the pattern from Handler. It
// names the span in the request's context, the server span unless a
// handler in between started one of its own. The last to name the span
// wins: with nested muxes, wrap only the one whose patterns name the
// routes. Without a span in the context it only calls next.
func (t *Tracer) Route(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer nameAfterRoute(trace.SpanFromContext(r.Context()), r)
		next.ServeHTTP(w, r)
	})
}

// Transport wraps next (nil means http.DefaultTransport) in a client span
// per request, a child of the span in the request's context, and sends
// that span on in the request's traceparent header. The span is named
// "METHOD", records the status code and ends when the response body is
// read to its end or closed.
func (t *Tracer) Transport(next http.RoundTripper) http.RoundTripper {
	if t.ids != nil {
		if next == nil {
			next = http.DefaultTransport
		}
		return propagateTransport{tracer: t.ids.Tracer(""), next: next}
	}
	return otelhttp.NewTransport(next, t.clientOpts...)
}

// TraceID returns the hex trace ID of the span in ctx, sampled or not, or
// "" when ctx has no valid span.
func (t *Tracer) TraceID(ctx context.Context) string {
	id := trace.SpanContextFromContext(ctx).TraceID()
	if !id.IsValid() {
		return ""
	}
	return id.String()
}

// TracerProvider returns the provider behind the Tracer's spans, for a
// program's own spans in the same traces. Without an exporter its spans
// record nothing and only carry the trace on.
func (t *Tracer) TracerProvider() trace.TracerProvider { return t.provider }

// Shutdown sends the spans still buffered, stops the export goroutine and
// shuts the exporter down, within ctx. It reports spans that could not be
// sent. Calls after the first do nothing and return its result; spans
// ended after it are dropped, but traceparent still propagates.
func (t *Tracer) Shutdown(ctx context.Context) error {
	t.shutdownOnce.Do(func() {
		if t.sdk == nil {
			return
		}
		if t.otlp != nil {
			t.otlp.beginShutdown()
		}
		err := t.sdk.Shutdown(ctx)
		if t.otlp != nil {
			err = errors.Join(err, t.otlp.shutdownErr())
		}
		if err != nil {
			t.shutdownErr = fmt.Errorf("tracing: shutdown: %w", err)
		}
	})
	return t.shutdownErr
}

// nameAfterRoute names a server span "METHOD route" and sets its
// http.route after the pattern r matched, if any.
func nameAfterRoute(span trace.Span, r *http.Request) {
	route := routeOf(r.Pattern)
	if route == "" || !span.IsRecording() {
		return
	}
	span.SetName(spanMethod(r.Method) + " " + route)
	span.SetAttributes(attribute.String("http.route", route))
}

// routeOf is a ServeMux pattern "[METHOD ][HOST]/[PATH]" without its
// method and host, as http.route wants it.
func routeOf(pattern string) string {
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		return pattern[i:]
	}
	return ""
}

// spanMethod is the method as span names give it: one of the nine the
// HTTP RFCs define, else "HTTP", so that names stay bounded.
func spanMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "HTTP"
}

// clientSpanName names a client span after its method alone: the URL's
// path is unbounded, and its template is not known here.
func clientSpanName(_ string, r *http.Request) string { return spanMethod(r.Method) }
