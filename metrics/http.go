package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Unmatched is the route label of requests that matched no ServeMux pattern.
const Unmatched = "unmatched"

// OtherMethod is the method label of requests whose method is not one of the
// nine defined in RFC 9110 and RFC 5789.
const OtherMethod = "OTHER"

// DefaultBuckets are the upper bounds, in seconds, of the request duration
// histogram: from 1ms, below which a web handler's time is noise, to 10s,
// beyond which clients and proxies have usually given up.
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// HTTP holds the request metrics of one HTTP server. Create it with [NewHTTP];
// its methods are safe for concurrent use.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	// series holds the children of requests and duration by seriesKey, so
	// a request is recorded without hashing its labels or taking the vecs'
	// read locks, whose shared counters every core would write. It is
	// bounded as the vecs are: by methods, routes and status codes.
	series sync.Map
}

// seriesKey names one request series: method and route labels, status code.
type seriesKey struct {
	method, route string
	code          int
}

// series are the children of one seriesKey.
type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// seriesFor returns the children for method, route and code, made once.
func (m *HTTP) seriesFor(method, route string, code int) *series {
	k := seriesKey{method, route, code}
	if s, ok := m.series.Load(k); ok {
		return s.(*series)
	}
	s := &series{
		requests: m.requests.WithLabelValues(method, route, codeLabel(code)),
		duration: m.duration.WithLabelValues(method, route),
	}
	actual, _ := m.series.LoadOrStore(k, s)
	return actual.(*series)
}

// Option adjusts [NewHTTP].
type Option func(*options)

type options struct {
	buckets []float64
}

// WithBuckets replaces [DefaultBuckets] as the upper bounds of
// http_request_duration_seconds. They must be strictly increasing.
func WithBuckets(buckets ...float64) Option {
	return func(o *options) { o.buckets = append([]float64(nil), buckets...) }
}

// NewHTTP creates the request metrics and registers them on reg. It fails if
// reg is nil, if the buckets are not strictly increasing, or if the metrics
// are already registered there (for example by a second call with the same
// registry), in which case nothing stays registered.
func NewHTTP(reg prometheus.Registerer, opts ...Option) (*HTTP, error) {
	if reg == nil {
		return nil, errors.New("metrics: nil prometheus.Registerer")
	}
	o := options{buckets: DefaultBuckets}
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.buckets) == 0 {
		return nil, errors.New("metrics: no histogram buckets")
	}
	for i := 1; i < len(o.buckets); i++ {
		if !(o.buckets[i] > o.buckets[i-1]) {
			return nil, fmt.Errorf("metrics: histogram buckets must be strictly increasing: bucket %d (%g) follows %g", i, o.buckets[i], o.buckets[i-1])
		}
	}
	m := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, by method, ServeMux route and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time from the start of a request to the return of its handler, by method and ServeMux route.",
			Buckets: o.buckets,
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_requests_in_flight",
			Help: "HTTP requests currently being served.",
		}),
	}
	var done []prometheus.Collector
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, fmt.Errorf("metrics: register http metrics: %w", err)
		}
		done = append(done, c)
	}
	return m, nil
}

// Middleware records the metrics of every request served by next. It passes
// next the request unchanged and a ResponseWriter that supports
// [net/http.ResponseController] through Unwrap, which is also how [Route]
// finds it to report the pattern.
// If next panics, the request is recorded with code 500 (unless a status was
// already written) and the panic continues.
func (m *HTTP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.inFlight.Inc()
		rec := &recorder{ResponseWriter: w, start: time.Now()}
		completed := false
		defer func() {
			m.inFlight.Dec()
			code := rec.code
			if !rec.wrote {
				code = http.StatusOK
				if !completed {
					code = http.StatusInternalServerError
				}
			}
			route := rec.route
			if route == "" {
				// A ServeMux called directly with this request sets
				// r.Pattern on it.
				route = r.Pattern
			}
			method := methodLabel(r.Method)
			route = routeLabel(route)
			ser := m.seriesFor(method, route, code)
			ser.requests.Inc()
			ser.duration.Observe(time.Since(rec.start).Seconds())
		}()
		next.ServeHTTP(rec, r)
		completed = true
	})
}

// Route wraps a [net/http.ServeMux] (or a handler registered on one) so the
// pattern that matched is reported to an enclosing [HTTP.Middleware] even
// when middleware in between replaced the request. It finds the Middleware
// through the ResponseWriter's Unwrap chain, so middleware in between that
// wraps the ResponseWriter must implement Unwrap, as
// [net/http.ResponseController] asks. Without an enclosing Middleware it only
// calls next.
func Route(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			// Deferred calls run innermost first, so with nested muxes the
			// most specific pattern is kept.
			if rec := findRecorder(w); rec != nil && rec.route == "" && r.Pattern != "" {
				rec.route = r.Pattern
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// RouteOf wraps next, middleware that may answer a request without passing
// it on to mux (a load shedder's 503, an authenticator's 401), so that such
// a request is counted under the route mux would have served it on, not
// under [Unmatched]. Put it inside [HTTP.Middleware] and outside that
// middleware, with [Route] around mux as usual. mux is asked only for
// requests that reached no pattern, so a served request costs nothing
// more; a request mux has no pattern for stays Unmatched.
func RouteOf(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			rec := findRecorder(w)
			if rec == nil || rec.route != "" || r.Pattern != "" {
				return
			}
			if _, pattern := mux.Handler(r); pattern != "" {
				rec.route = pattern
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// findRecorder walks w's Unwrap chain to the Middleware's recorder.
func findRecorder(w http.ResponseWriter) *recorder {
	for range 16 { // bounds a cyclic chain
		switch x := w.(type) {
		case *recorder:
			return x
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// recorder notes the status code and body size a handler sends.
type recorder struct {
	http.ResponseWriter
	start time.Time
	code  int
	wrote bool
	bytes int64
	route string
}

// Response is what [HTTP.Middleware] has seen of a response so far.
type Response struct {
	Start  time.Time // when the Middleware took the request
	Status int       // the final status written; 0 while none
	Bytes  int64     // response body bytes written
}

// ResponseOf returns what [HTTP.Middleware] has seen of the response
// when w is the very ResponseWriter it gave its handler, not one that
// wraps it; ok is false otherwise. Middleware placed directly inside
// HTTP.Middleware (a request log) reads its status, size and start here
// instead of wrapping w once more to learn the same.
func ResponseOf(w http.ResponseWriter) (r Response, ok bool) {
	rec, ok := w.(*recorder)
	if !ok {
		return Response{}, false
	}
	return Response{Start: rec.start, Status: rec.code, Bytes: rec.bytes}, true
}

func (rec *recorder) WriteHeader(code int) {
	// 1xx responses other than 101 are interim; the final status follows.
	if !rec.wrote && (code >= 200 || code == http.StatusSwitchingProtocols) {
		rec.code, rec.wrote = code, true
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if !rec.wrote {
		rec.code, rec.wrote = http.StatusOK, true
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

// Flush lets handlers that assert http.Flusher stream through the recorder.
func (rec *recorder) Flush() {
	if !rec.wrote {
		rec.code, rec.wrote = http.StatusOK, true
	}
	_ = http.NewResponseController(rec.ResponseWriter).Flush()
}

// Unwrap serves http.ResponseController.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

var _ http.Flusher = (*recorder)(nil)

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return OtherMethod
}

// routeLabel turns a ServeMux pattern "[METHOD ][HOST]/[PATH]" into the
// route label: the pattern without its method.
func routeLabel(pattern string) string {
	if pattern == "" {
		return Unmatched
	}
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		pattern = strings.TrimLeft(pattern[i+1:], " \t")
	}
	return pattern
}

// codeLabels holds the decimal text of every valid status code so recording
// a request does not format an integer.
var codeLabels = func() (t [1000]string) {
	for i := 100; i < len(t); i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func codeLabel(code int) string {
	if code >= 100 && code < len(codeLabels) {
		return codeLabels[code]
	}
	return strconv.Itoa(code)
}

// RouteFromWriter returns the route pattern [Route] or [RouteOf] reported
// for the request whose ResponseWriter is w (or wraps, through Unwrap, the
// one an enclosing [HTTP.Middleware] made), or "" when none has been
// reported yet. Middleware inside [HTTP.Middleware] calls it after the
// handler returns, to label its own records (a request log line) the way
// the metrics are labelled.
func RouteFromWriter(w http.ResponseWriter) string {
	if rec := findRecorder(w); rec != nil {
		return rec.route
	}
	return ""
}
