package server

import (
	"net/http"
	"net/http/pprof"

	"github.com/shoal-dev/shoal/health"
)

// AdminOption adds an optional part to the mux [AdminMux] returns.
type AdminOption func(*adminOptions)

type adminOptions struct {
	pprof bool
}

// WithPprof serves the runtime profiles under /debug/pprof/: the index,
// the named profiles (heap, goroutine, ...), profile, symbol and trace.
// They are off unless asked for because a CPU profile or trace slows the
// process while it runs and the profiles show its code and data layout to
// whoever can reach the port. /debug/pprof/cmdline is never served, with
// or without this option: it prints the process's flags, and flags carry
// secrets such as -session-secret and passwords inside URLs.
func WithPprof() AdminOption {
	return func(o *adminOptions) { o.pprof = true }
}

// AdminMux returns a new mux for the admin port: the probes of checker
// (/livez, /readyz, /startupz, /healthz) and metrics at GET /metrics, plus
// what the options add. A nil checker or metrics handler leaves its routes
// out.
func AdminMux(checker *health.Checker, metrics http.Handler, opts ...AdminOption) *http.ServeMux {
	var o adminOptions
	for _, opt := range opts {
		opt(&o)
	}
	mux := http.NewServeMux()
	if checker != nil {
		checker.Register(mux)
	}
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	if o.pprof {
		// pprof.Index serves the named profiles under it and answers 404
		// for cmdline, which is no profile.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}
