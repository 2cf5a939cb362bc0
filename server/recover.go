package server

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
)

// Recover answers 500 for a handler that panics, logs the panic value and
// stack at level Error (with the request's context, so request_id and
// trace_id appear when the logger's handler adds them), and calls onPanic
// (for a counter; nil means none). A nil log means slog.Default().
//
// http.ErrAbortHandler is re-panicked untouched: it is how a handler asks
// net/http to abort the response, and is not an error. If the response
// has already started (a status or body byte sent, or the connection
// hijacked), a 500 can no longer be sent: Recover logs and aborts the
// connection with panic(http.ErrAbortHandler), so the client sees a broken
// response rather than a complete-looking truncated one. Either way the
// process keeps serving.
//
// The 500 is written as http.Error writes it. The headers that describe
// a response's body or how long to keep it (Cache-Control, Expires, ETag,
// Last-Modified, Content-Encoding, Content-Disposition, Location,
// Set-Cookie and the like; see describesBody) are first put back as they
// were when Recover was called: the handler set them for the answer it
// meant to give, and on a 500 they would let shared caches keep the
// error, make its body unreadable or hand out state the handler never
// finished. Other headers, such as CORS ones from the caller's middleware,
// stay as set. The connection is kept alive.
func Recover(log *slog.Logger, onPanic func(), next http.Handler) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return &recoverer{log: log, onPanic: onPanic, next: next}
}

type recoverer struct {
	log     *slog.Logger
	onPanic func()
	next    http.Handler
}

func (rc *recoverer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &startWriter{ResponseWriter: w}
	var outer savedHeader
	outer.save(w.Header())
	defer rc.recoverPanic(w, r, sw, &outer)
	rc.next.ServeHTTP(sw, r)
}

// recoverPanic is ServeHTTP's deferred call: a method rather than a
// closure, so ServeHTTP's frame, below every handler, stays small.
func (rc *recoverer) recoverPanic(w http.ResponseWriter, r *http.Request, sw *startWriter, outer *savedHeader) {
	p := recover()
	if p == nil {
		return
	}
	if p == http.ErrAbortHandler {
		panic(p)
	}
	if rc.onPanic != nil {
		rc.onPanic()
	}
	rc.log.ErrorContext(r.Context(), "panic serving request",
		slog.String("panic", fmt.Sprint(p)),
		slog.String("stack", string(debug.Stack())),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Bool("response_started", sw.started),
	)
	if sw.started {
		panic(http.ErrAbortHandler)
	}
	outer.restoreBodyHeaders(w.Header())
	http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
}

// savedHeader is the fields of a header that describe a body, as they
// were. Only those are put back after a panic, so only those are kept:
// outer middleware seldom sets any, and the few it may are held without
// allocating, in a struct small enough that the handler's goroutine (a new
// one for every HTTP/2 stream) need not grow its stack for it.
type savedHeader struct {
	few  [2]headerField
	n    int
	more []headerField
}

type headerField struct {
	key  string
	vals []string
}

// save notes the fields of h that describe a body. Not inlined: the map
// iterator would take room in the frame of Recover's handler for as long
// as the handlers below it run.
//
//go:noinline
func (s *savedHeader) save(h http.Header) {
	for k, v := range h {
		if !describesBody(k) {
			continue
		}
		if s.n < len(s.few) {
			s.few[s.n] = headerField{k, v}
			s.n++
		} else {
			s.more = append(s.more, headerField{k, v})
		}
	}
}

// restoreBodyHeaders puts the fields of h that describe a body back as
// they were when saved: removed if they were absent. Header.Set and Add
// make new slices or append past the saved length, so the saved values
// are still the old ones.
func (s *savedHeader) restoreBodyHeaders(h http.Header) {
	for k := range h {
		if describesBody(k) {
			delete(h, k)
		}
	}
	for _, f := range s.few[:s.n] {
		h[f.key] = f.vals
	}
	for _, f := range s.more {
		h[f.key] = f.vals
	}
}

// describesBody reports whether the canonical header key k describes the
// body it comes with, its caching, or what the client should do with it.
func describesBody(k string) bool {
	switch k {
	case "Cache-Control", "Expires", "Pragma", "Age", "Etag", "Last-Modified", "Vary",
		"Content-Encoding", "Content-Language", "Content-Location", "Content-Range", "Accept-Ranges",
		"Content-Disposition", "Content-Digest", "Repr-Digest", "Digest", "Content-Md5",
		"Location", "Refresh", "Set-Cookie", "Trailer":
		return true
	}
	return false
}

// startWriter notes whether the response has started, after which its
// status can no longer change.
type startWriter struct {
	http.ResponseWriter
	started bool
}

func (w *startWriter) WriteHeader(code int) {
	// 1xx responses other than 101 are interim; the final status follows.
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.started = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *startWriter) Write(b []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(b)
}

// Flush lets handlers that assert http.Flusher stream through the writer.
func (w *startWriter) Flush() {
	w.started = true
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack is here so that a handler that takes the connection over marks
// the response started: a 500 written after that would go nowhere.
func (w *startWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.started = true
	}
	return c, rw, err
}

// Unwrap serves net/http.ResponseController and middleware that look for
// their own writer further in.
func (w *startWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	_ http.Flusher  = (*startWriter)(nil)
	_ http.Hijacker = (*startWriter)(nil)
)
