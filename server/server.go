package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Defaults applied by [New] to zero fields of [Config].
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 90 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxBodyBytes      = 32 << 20
	DefaultMaxStreams        = 256
	DefaultMaxConnStreams    = 8
	DefaultMaxConnAgeJitter  = 0.1
	DefaultMaxConns          = 1024
)

// Config configures [New]. The zero value is valid: safe timeouts and
// limits, HTTP/1.1 only, no connection age or request limit.
type Config struct {
	// ReadHeaderTimeout bounds reading a request's headers. Zero means
	// DefaultReadHeaderTimeout (5s); negative means no limit.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included. Zero
	// means DefaultReadTimeout (30s); negative means no limit.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the request headers to
	// the end of the response (per stream on HTTP/2). Zero means
	// DefaultWriteTimeout (60s); negative means no limit.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that has no request for
	// this long. Zero means DefaultIdleTimeout (90s); negative means no
	// limit.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header size. Zero means
	// DefaultMaxHeaderBytes (64 KiB).
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body: reading past it fails with an
	// *http.MaxBytesError and the connection is closed after the response.
	// Zero means DefaultMaxBodyBytes (32 MiB); negative means no limit.
	MaxBodyBytes int64
	// H2C serves unencrypted HTTP/2 with prior knowledge on the same
	// listener as HTTP/1.1. Default false: HTTP/1.1 only.
	H2C bool
	// MaxConnAge asks a client to reconnect on the first response after
	// its connection has been open this long (see the package doc). Zero
	// means no limit.
	MaxConnAge time.Duration
	// MaxConnAgeJitter spreads each connection's age limit uniformly over
	// MaxConnAge × (1 ± MaxConnAgeJitter), so connections opened together
	// (after a rollout) do not all reconnect together. Zero means
	// DefaultMaxConnAgeJitter (0.1); negative means none. At most 1.
	MaxConnAgeJitter float64
	// MinBodyRate cuts off a request body that arrives slower than this
	// many bytes a second, after BodyRateGrace; reading it then fails with
	// ErrBodyTooSlow. Only the time the handler spends reading the body
	// counts: a client is not cut off while the handler does not read
	// (waits for memory, or works). Zero means DefaultMinBodyRate
	// (1 KiB/s); negative means no minimum.
	MinBodyRate int64
	// BodyRateGrace is how long a body may take before MinBodyRate
	// applies. Zero means DefaultBodyRateGrace (5s).
	BodyRateGrace time.Duration
	// MaxConnRequests asks a client to reconnect on a connection's
	// MaxConnRequests-th response. Zero means no limit.
	MaxConnRequests int
	// MaxConns bounds the connections open at once, so that idle or
	// silent connections cannot take the process past its memory limit
	// (each holds buffers and a goroutine, about 20 KiB on HTTP/1.1). A
	// connection beyond it closes the one that has waited longest without
	// a request in progress; when every other is serving one, the HTTP/1.1
	// connection whose handler is blocked reading the slowest body (one
	// read for a second at under 128 KiB/s, tracked with MinBodyRate), or
	// else itself. Zero means DefaultMaxConns (1024); negative means no
	// limit.
	MaxConns int
	// MaxStreams bounds the HTTP/2 streams served at once over all
	// connections. net/http bounds only each connection's (250 by
	// default, 8 here), and a stream costs a goroutine, its grown stack
	// and its request whatever it sends: 1,000 connections holding 250
	// streams without bodies took a thumbnailer with 256 MiB to 4 GiB,
	// its streams waiting for its upload budget; at 8 each they are still
	// 8,000. Past MaxStreams a stream
	// is answered 503 with Retry-After at once, unless its connection has
	// no other stream being served: every connection keeps one, so the
	// streams served are at most MaxStreams plus MaxConns, and a client
	// that does not multiplex is never turned away for another's
	// streams. Without srv.ConnContext from New (no H2C, age or request
	// limit), every stream past MaxStreams is turned away. Zero means
	// DefaultMaxStreams (256); negative means no limit.
	MaxStreams int
	// MaxConnStreams bounds the HTTP/2 streams one connection may have
	// open at once (its SETTINGS_MAX_CONCURRENT_STREAMS). net/http runs a
	// handler for each at once and queues the rest, dropping a queued
	// stream that the client resets before its turn. Zero means
	// DefaultMaxConnStreams (8).
	MaxConnStreams int
	// Logger receives the server's error log at level Warn. Nil means
	// slog.Default().
	Logger *slog.Logger
	// OnClose, if set, is called once for each connection the server
	// closes to keep a limit, with the reason: CloseEvicted,
	// CloseRefused, CloseSlowBody, CloseStreams or CloseResets. It must
	// not block.
	OnClose func(reason string)
}

// Why the server closed a connection, as OnClose reports it.
const (
	// CloseEvicted: idle longest when a connection beyond MaxConns came.
	CloseEvicted = "evicted"
	// CloseRefused: beyond MaxConns while every other served a request.
	CloseRefused = "refused"
	// CloseSlowBody: an HTTP/1.1 connection whose handler waited longest
	// on the slowest request body, when a connection beyond MaxConns came
	// while every other served a request.
	CloseSlowBody = "slow_body"
	// CloseStreams: its HTTP/2 client opened more than refusedLimit
	// streams past MaxStreams, most of those it opened.
	CloseStreams = "streams"
	// CloseResets: its HTTP/2 client cancelled more than resetLimit
	// streams, most of those it opened.
	CloseResets = "resets"
)

// Validate reports a setting New would have to ignore or clamp.
func (c Config) Validate() error {
	switch {
	case math.IsNaN(c.MaxConnAgeJitter) || c.MaxConnAgeJitter > 1:
		return fmt.Errorf("server: MaxConnAgeJitter %v: must be a fraction at most 1", c.MaxConnAgeJitter)
	case c.MaxConnAge < 0:
		return fmt.Errorf("server: MaxConnAge %s: must not be negative", c.MaxConnAge)
	case c.MaxConnRequests < 0:
		return fmt.Errorf("server: MaxConnRequests %d: must not be negative", c.MaxConnRequests)
	case c.MaxHeaderBytes < 0:
		return fmt.Errorf("server: MaxHeaderBytes %d: must not be negative", c.MaxHeaderBytes)
	}
	return nil
}

func timeout(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0 // net/http: no timeout
	}
	return d
}

func (c Config) withDefaults() Config {
	c.ReadHeaderTimeout = timeout(c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	c.ReadTimeout = timeout(c.ReadTimeout, DefaultReadTimeout)
	c.WriteTimeout = timeout(c.WriteTimeout, DefaultWriteTimeout)
	c.IdleTimeout = timeout(c.IdleTimeout, DefaultIdleTimeout)
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	switch {
	case c.MaxConnAgeJitter == 0:
		c.MaxConnAgeJitter = DefaultMaxConnAgeJitter
	case c.MaxConnAgeJitter < 0 || math.IsNaN(c.MaxConnAgeJitter):
		c.MaxConnAgeJitter = 0
	case c.MaxConnAgeJitter > 1:
		c.MaxConnAgeJitter = 1
	}
	c.MaxConnAge = max(c.MaxConnAge, 0)
	c.MaxConnRequests = max(c.MaxConnRequests, 0)
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.MaxConnStreams <= 0 {
		c.MaxConnStreams = DefaultMaxConnStreams
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// New returns an http.Server serving h under cfg. Serve it with
// srv.Serve(ln), or hand it to lifecycle.
//
// With a connection age, request or count limit (the last the default),
// or H2C, New sets srv.ConnContext (which also closes a connection that
// resets most of its HTTP/2 streams), and with a connection count limit
// srv.ConnState; a caller that needs its own must call the one New set
// from it. A nil h answers 404 (never http.DefaultServeMux).
func New(cfg Config, h http.Handler) *http.Server {
	cfg = cfg.withDefaults()
	if h == nil {
		h = http.NotFoundHandler()
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true) // only negotiated over TLS
	protos.SetUnencryptedHTTP2(cfg.H2C)

	lim := &limits{
		next:        minBodyRate(cfg, h),
		maxBody:     cfg.MaxBodyBytes,
		maxRequests: int64(cfg.MaxConnRequests),
		maxStreams:  int64(cfg.MaxStreams),
	}
	srv := &http.Server{
		Handler:           lim,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		Protocols:         &protos,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          cfg.MaxConnStreams,
			MaxReadFrameSize:              http2MaxFrame,
			MaxReceiveBufferPerConnection: http2ConnWindow,
			MaxReceiveBufferPerStream:     http2StreamWindow,
		},
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	var connLim *connLimit
	if cfg.MaxConns > 0 {
		connLim = newConnLimit(cfg.MaxConns, cfg.OnClose)
		srv.ConnState = connLim.state
	}
	if cfg.MaxConnAge > 0 || cfg.MaxConnRequests > 0 || cfg.H2C || connLim != nil {
		age, jitter, onClose := cfg.MaxConnAge, cfg.MaxConnAgeJitter, cfg.OnClose
		srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			st := &connState{conn: c, onClose: onClose}
			if age > 0 {
				f := 1 + jitter*(2*rand.Float64()-1)
				st.opened, st.maxAge = time.Now(), max(time.Duration(float64(age)*f), 1)
			}
			if connLim != nil {
				connLim.opened(c, st)
			}
			return context.WithValue(ctx, connKey{}, st)
		}
	}
	return srv
}

// HTTP/2 settings. What a client sends the server holds until a handler
// reads it, and net/http's defaults let each connection hold 1 MiB of
// body unread and a 1 MiB frame buffer for as long as it stays open, and
// run 250 handlers, each a goroutine and a request: 1,024 connections
// could hold gigabytes that no budget counts (a gallery with 128 MiB
// reached 1.2 GiB under 400 connections sending 1 MiB frames, 518 MiB
// under 200 opening streams without bodies). The frame buffer is the
// protocol's least; a connection's unread bodies are the least window
// the protocol lets a server announce (a smaller stream window than a
// client assumes before it reads the settings fails its first request
// with FLOW_CONTROL_ERROR); MaxConnStreams a connection and MaxStreams
// over all of them bound the handlers.
const (
	http2MaxFrame     = 16 << 10
	http2ConnWindow   = 64 << 10
	http2StreamWindow = 64 << 10
)

// tooManyStreams is the body of a stream turned away past MaxStreams.
const tooManyStreams = `{"error":"too many HTTP/2 streams at once; retry later"}` + "\n"

type connKey struct{}

// connState is what one connection has used of its limits.
type connState struct {
	// opened holds a monotonic clock reading, so time.Since(opened) reads
	// only that clock, where time.Now would read the wall clock as well
	// on every request.
	opened   time.Time
	maxAge   time.Duration // zero when there is no age limit
	requests atomic.Int64
	// resets counts the HTTP/2 streams the client cancelled before their
	// answer; conn is closed once they pass resetLimit (see limits).
	resets  atomic.Int64
	closed  atomic.Bool  // for its resets or refused streams
	body    bodyRead     // the HTTP/1.1 request body being read, for MaxConns
	streams atomic.Int64 // HTTP/2 streams being served
	refused atomic.Int64 // HTTP/2 streams turned away past MaxStreams
	conn    net.Conn
	onClose func(reason string)
}

// resetLimit is how many of its streams an HTTP/2 client may cancel
// before their answers, once they are at least half of its streams,
// before its connection is closed. Browsers and RPC clients cancel a few
// (a navigation, a hedged call); a rapid-reset flood (CVE-2023-44487)
// cancels every stream it opens, thousands a second, each of which would
// otherwise start a handler.
const resetLimit = 32

// reset counts one stream the client cancelled and closes the connection
// when its resets have passed resetLimit and are most of its streams.
func (st *connState) reset() {
	if n := st.resets.Add(1); n > resetLimit && 2*n >= st.requests.Load() && st.closed.CompareAndSwap(false, true) {
		_ = st.conn.Close()
		if st.onClose != nil {
			st.onClose(CloseResets)
		}
	}
}

// refusedLimit is how many of its streams an HTTP/2 client may have
// turned away past MaxStreams, once they are at least half of its
// streams, before its connection is closed. Each refused stream still
// costs the server a goroutine and a request, garbage by the tens of
// thousands a second from a client that opens them as fast as they are
// refused; closing its connection makes it pay for a new one.
const refusedLimit = 32

// refuse counts one stream turned away past MaxStreams and closes the
// connection when they have passed refusedLimit and are most of its
// streams.
func (st *connState) refuse() {
	n := st.refused.Add(1)
	if n > refusedLimit && 2*n >= st.requests.Add(1) && st.closed.CompareAndSwap(false, true) {
		_ = st.conn.Close()
		if st.onClose != nil {
			st.onClose(CloseStreams)
		}
	}
}

// limits is the handler New puts in front of the caller's handler.
type limits struct {
	next        http.Handler
	maxBody     int64
	maxRequests int64
	maxStreams  int64        // Config.MaxStreams; negative for none
	streams     atomic.Int64 // HTTP/2 streams being served
}

func (l *limits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st, _ := r.Context().Value(connKey{}).(*connState)
	if r.ProtoMajor == 2 {
		if r.Context().Err() != nil {
			// The client reset the stream before its handler ran, as a
			// rapid-reset flood (CVE-2023-44487) does thousands of times a
			// second: nothing served would reach it, so nothing is, and
			// the stream costs no shedding slot, metric or log line.
			if st != nil {
				st.requests.Add(1)
				st.reset()
			}
			return
		}
		if l.maxStreams > 0 {
			n := l.streams.Add(1)
			defer l.streams.Add(-1)
			mine := int64(0) // the connection's other streams
			if st != nil {
				mine = st.streams.Add(1) - 1
				defer st.streams.Add(-1)
			}
			if n > l.maxStreams && (st == nil || mine > 0) {
				// Before the stack is grown and anything below runs: a
				// refused stream costs its goroutine for a moment only.
				if st != nil {
					st.refuse()
				}
				w.Header().Set("Retry-After", "1")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, tooManyStreams)
				return
			}
		}
		growStack()
		if st != nil {
			defer func() {
				if errors.Is(r.Context().Err(), context.Canceled) {
					st.reset()
				}
			}()
		}
	}
	if st != nil {
		n := st.requests.Add(1)
		if (l.maxRequests > 0 && n >= l.maxRequests) || (st.maxAge > 0 && time.Since(st.opened) >= st.maxAge) {
			// HTTP/1.1 closes after this response; HTTP/2 sends GOAWAY.
			w.Header().Set("Connection", "close")
		}
	}
	if l.maxBody > 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, l.maxBody)
	}
	l.next.ServeHTTP(w, r)
}

// ServedBy sets X-Served-By: name on every response of next, so clients
// and load tests can see which replica answered.
func ServedBy(name string, next http.Handler) http.Handler {
	// One value slice for every response: net/http only reads header
	// values, and its capacity of one makes a handler's Header().Add copy
	// it rather than append in place.
	return &servedBy{value: []string{name}[:1:1], next: next}
}

// servedByKey is X-Served-By in canonical form, for direct map access.
const servedByKey = "X-Served-By"

type servedBy struct {
	value []string
	next  http.Handler
}

func (s *servedBy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()[servedByKey] = s.value
	s.next.ServeHTTP(w, r)
}
