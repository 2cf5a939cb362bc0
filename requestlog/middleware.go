package requestlog

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/metrics"
)

// DefaultSampleRate is the share of successful requests logged when
// [Config.SampleRate] is zero: all of them.
const DefaultSampleRate = 1.0

// Config configures [Middleware]. The zero value is valid: every request
// logged on slog.Default(), under its ServeMux pattern, without trace IDs.
type Config struct {
	// Logger receives the request lines at level Info. Nil means
	// slog.Default().
	Logger *slog.Logger
	// SampleRate is the share of successful requests (status below 500)
	// logged, between 0 and 1. Zero means DefaultSampleRate (1: every
	// request); negative turns request logging off entirely. Requests
	// answered 5xx and requests whose handler panicked are always logged
	// unless logging is off.
	SampleRate float64
	// Route names the route a request matched. It is called after the
	// handler returns, with the ResponseWriter and request Middleware was
	// given. Nil means the request's Pattern, which a ServeMux sets when
	// called with this very request, or "unmatched" when it is empty.
	Route func(w http.ResponseWriter, r *http.Request) string
	// TraceID returns the trace ID of a context, "" when none. Nil means
	// requests have no trace ID.
	TraceID func(ctx context.Context) string
	// Rand returns a number in [0, 1) to decide whether a request is
	// sampled. Nil means math/rand/v2's Float64.
	Rand func() float64
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if math.IsNaN(c.SampleRate) || c.SampleRate > 1 {
		return fmt.Errorf("requestlog: SampleRate %v: must be at most 1", c.SampleRate)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.SampleRate == 0 {
		c.SampleRate = DefaultSampleRate
	}
	if c.Route == nil {
		c.Route = patternRoute
	}
	if c.TraceID == nil {
		c.TraceID = noTraceID
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return c
}

func patternRoute(_ http.ResponseWriter, r *http.Request) string {
	if r.Pattern == "" {
		return metrics.Unmatched // the same name the metrics give it
	}
	return r.Pattern
}

func noTraceID(context.Context) string { return "" }

// Middleware logs one line per request served by next, at level Info with
// message "request", once next returns (or panics; the panic continues).
// Its attributes:
//
//	method      the request method
//	route       see Config.Route
//	status      the status code sent; 200 when the handler wrote nothing,
//	            500 when it panicked before writing
//	bytes       response body bytes written by the handler
//	duration    seconds from the start of Middleware (of
//	            metrics.HTTP.Middleware, when Middleware is directly
//	            inside it) to the handler's return, as a float64 (base
//	            units, as the metrics)
//	request_id  the ID from the context (see ID); "" when there is none
//	trace_id    from Config.TraceID; omitted when empty
//	peer        the request's RemoteAddr
//	aborted     true, only when the handler panicked
//
// The line is logged with the request's context; a logger whose handler is
// [Handler] sees that it already carries request_id and trace_id and does
// not add them a second time.
//
// next gets a ResponseWriter that implements http.Flusher and Unwrap
// (for net/http.ResponseController and for middleware that finds its own
// writer through Unwrap chains). When logging is off (SampleRate
// negative), Middleware returns next itself. Middleware panics if cfg is
// invalid; callers validate first.
func Middleware(cfg Config, next http.Handler) http.Handler {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	if cfg.SampleRate < 0 {
		return next
	}
	return &middleware{cfg: cfg, next: next}
}

type middleware struct {
	cfg  Config
	next http.Handler
}

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := metrics.ResponseOf(w); ok {
		m.serveInsideMetrics(w, r)
		return
	}
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	completed := false
	// A deferred log line, not a recover: the panic goes on unchanged to
	// whoever handles it (server.Recover, or net/http), with its stack.
	defer func() {
		status := 0
		if rec.wrote {
			status = rec.status
		}
		m.log(w, r, status, rec.bytes, start, completed)
	}()
	m.next.ServeHTTP(rec, r)
	completed = true
}

// serveInsideMetrics serves a request whose writer is the metrics
// middleware's own: it already notes the status, size and start a
// recorder here would, so the line is made from those, without another
// wrapper or clock reading.
func (m *middleware) serveInsideMetrics(w http.ResponseWriter, r *http.Request) {
	completed := false
	defer func() {
		resp, _ := metrics.ResponseOf(w)
		m.log(w, r, resp.Status, resp.Bytes, resp.Start, completed)
	}()
	m.next.ServeHTTP(w, r)
	completed = true
}

// log writes the request's line, unless it is sampled out. written is the
// status the handler wrote, 0 for none.
func (m *middleware) log(w http.ResponseWriter, r *http.Request, written int, bytes int64, start time.Time, completed bool) {
	status := written
	if status == 0 {
		status = http.StatusOK
		if !completed {
			status = http.StatusInternalServerError
		}
	}
	if completed && status < 500 && m.cfg.SampleRate < 1 && m.cfg.Rand() >= m.cfg.SampleRate {
		return
	}
	if !m.cfg.Logger.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	m.write(w, r, status, bytes, start, completed)
}

// write logs the line. It is apart from log, and not inlined, so that its
// attributes take stack only for a line that is written: a request sampled
// out, on a goroutine that may be new (HTTP/2 starts one per stream), does
// not grow its stack for them.
//
//go:noinline
func (m *middleware) write(w http.ResponseWriter, r *http.Request, status int, bytes int64, start time.Time, completed bool) {
	ctx := r.Context()
	var buf [9]slog.Attr
	attrs := append(buf[:0],
		slog.String("method", r.Method),
		slog.String("route", m.cfg.Route(w, r)),
		slog.Int("status", status),
		slog.Int64("bytes", bytes),
		slog.Float64("duration", time.Since(start).Seconds()),
		slog.String(keyID, IDFromContext(ctx)),
	)
	if tid := m.cfg.TraceID(ctx); tid != "" {
		attrs = append(attrs, slog.String(keyTraceID, tid))
	}
	attrs = append(attrs, slog.String("peer", r.RemoteAddr))
	if !completed {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	m.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

// recorder notes the status code and body size a handler sends.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	bytes  int64
}

func (rec *recorder) WriteHeader(code int) {
	// 1xx responses other than 101 are interim; the final status follows.
	if !rec.wrote && (code >= 200 || code == http.StatusSwitchingProtocols) {
		rec.status, rec.wrote = code, true
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if !rec.wrote {
		rec.status, rec.wrote = http.StatusOK, true
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

// Flush lets handlers that assert http.Flusher stream through the recorder.
func (rec *recorder) Flush() {
	if !rec.wrote {
		rec.status, rec.wrote = http.StatusOK, true
	}
	_ = http.NewResponseController(rec.ResponseWriter).Flush()
}

// Unwrap serves net/http.ResponseController and middleware that look for
// their own writer further in.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

var _ http.Flusher = (*recorder)(nil)
