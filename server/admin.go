package server

import (
	"net/http"
	"net/http/pprof"

	"github.com/shoal-dev/shoal/health"
)

// AdminMux returns a new mux for the admin port: the probes of checker
// (/livez, /readyz, /startupz, /healthz), metrics at GET /metrics and the
// runtime profiles under /debug/pprof/. A nil checker or metrics handler
// leaves its routes out.
func AdminMux(checker *health.Checker, metrics http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	if checker != nil {
		checker.Register(mux)
	}
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // and the named profiles under it
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}
