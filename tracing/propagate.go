package tracing

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// A Tracer without an exporter records nothing, so it does without the
// SDK and otelhttp: its spans carry IDs and the sampling decision and
// nothing else. A request costs it a few allocations where a recorded one
// costs some forty (see BenchmarkHandler).

// idProvider is a TracerProvider whose spans only have a context: a new
// span ID in the trace of the parent (or a new trace), sampled as the
// sampler decides, so that what this service sends on is what the SDK
// would have sent.
type idProvider struct {
	embedded.TracerProvider
	tracer idTracer
}

func newIDProvider(sampler sdktrace.Sampler) *idProvider {
	return &idProvider{tracer: idTracer{sampler: sampler}}
}

func (p *idProvider) Tracer(string, ...trace.TracerOption) trace.Tracer { return &p.tracer }

type idTracer struct {
	embedded.Tracer
	sampler sdktrace.Sampler
}

func (t *idTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg := trace.NewSpanStartConfig(opts...)
	var parent trace.SpanContext
	if cfg.NewRoot() {
		ctx = trace.ContextWithSpanContext(ctx, parent)
	} else {
		parent = trace.SpanContextFromContext(ctx)
	}
	tid := parent.TraceID()
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	res := t.sampler.ShouldSample(sdktrace.SamplingParameters{
		ParentContext: ctx,
		TraceID:       tid,
		Name:          name,
		Kind:          cfg.SpanKind(),
		Attributes:    cfg.Attributes(),
		Links:         cfg.Links(),
	})
	flags := parent.TraceFlags() &^ trace.FlagsSampled
	if res.Decision == sdktrace.RecordAndSample {
		flags |= trace.FlagsSampled
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    tid,
		SpanID:     sid,
		TraceFlags: flags,
		TraceState: res.Tracestate,
	}))
	return ctx, trace.SpanFromContext(ctx)
}

var serverKind = trace.WithSpanKind(trace.SpanKindServer)

var clientKind = trace.WithSpanKind(trace.SpanKindClient)

// propagateHandler is Handler without recording: the request's context
// gets a child of the span its traceparent names, or a new trace.
func propagateHandler(tracer trace.Tracer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, _ = tracer.Start(ctx, "", serverKind)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// propagateTransport is Transport without recording: a child of the
// request's span goes on in traceparent.
type propagateTransport struct {
	tracer trace.Tracer
	next   http.RoundTripper
}

func (p propagateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, _ := p.tracer.Start(r.Context(), "", clientKind)
	r = r.Clone(ctx) // a RoundTripper must not change the request it is given
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(r.Header))
	return p.next.RoundTrip(r)
}
