package health

import (
	"encoding/json"
	"net/http"
	"time"
)

// Report statuses.
const (
	StatusOK   = "ok"
	StatusFail = "fail"
)

// Report is the JSON body of a probe response.
type Report struct {
	// Status is StatusOK (HTTP 200) or StatusFail (HTTP 503).
	Status string `json:"status"`
	// Probe is the probe answered: "livez", "readyz" or "startupz".
	Probe string `json:"probe"`
	// Started and Draining are the checker's start-up and drain states.
	Started  bool `json:"started"`
	Draining bool `json:"draining"`
	// Failing names the checks that make this probe fail.
	Failing []string `json:"failing,omitempty"`
	// Degraded names the non-critical readiness checks whose last run
	// failed: the replica stays ready, but something it depends on is
	// down (a dependency every replica shares, say, whose outage the
	// replica answers itself rather than leaving the Service empty).
	Degraded []string `json:"degraded,omitempty"`
	// Reason says why the probe fails, in words.
	Reason string `json:"reason,omitempty"`
	// Checks lists the checks of this probe's kind; only with ?verbose.
	Checks []CheckResult `json:"checks,omitempty"`
}

// CheckResult is the last result of one check.
type CheckResult struct {
	Name     string `json:"name"`
	Critical bool   `json:"critical"`
	Liveness bool   `json:"liveness"`
	// OK is true when the last run returned nil.
	OK bool `json:"ok"`
	// Pending is true until the first run completes.
	Pending bool `json:"pending,omitempty"`
	// Error is the last run's error, or ErrPending's text.
	Error string `json:"error,omitempty"`
	// LastRun is when the last result was recorded; zero while pending.
	LastRun time.Time `json:"last_run,omitzero"`
	// AgeSeconds is the time since LastRun.
	AgeSeconds float64 `json:"age_seconds"`
	// DurationSeconds is how long the last run took.
	DurationSeconds float64 `json:"duration_seconds"`
}

type probe string

const (
	probeLive    probe = "livez"
	probeReady   probe = "readyz"
	probeStartup probe = "startupz"
)

// report evaluates one probe from the cached results.
func (c *Checker) report(p probe, verbose bool) Report {
	r := Report{Status: StatusOK, Probe: string(p), Started: c.Started(), Draining: c.Draining()}
	var reasons []string
	switch p {
	case probeStartup:
		if !r.Started {
			reasons = append(reasons, "start-up not complete")
		}
	case probeReady:
		if !r.Started {
			reasons = append(reasons, "start-up not complete")
		}
		if r.Draining {
			reasons = append(reasons, "draining")
		}
	}
	if p != probeStartup {
		for _, res := range c.Results() {
			if res.Liveness != (p == probeLive) {
				continue
			}
			if verbose {
				r.Checks = append(r.Checks, res)
			}
			failing := false
			if p == probeLive {
				// A liveness check that has not run yet is not evidence of a
				// dead process; failing here would restart a healthy pod.
				failing = !res.OK && !res.Pending
			} else {
				failing = res.Critical && !res.OK
				if !res.Critical && !res.OK && !res.Pending {
					r.Degraded = append(r.Degraded, res.Name)
				}
			}
			if failing {
				r.Failing = append(r.Failing, res.Name)
			}
		}
		if len(r.Failing) > 0 {
			reasons = append(reasons, "failing checks")
		}
	}
	if len(reasons) > 0 {
		r.Status = StatusFail
		r.Reason = reasons[0]
		for _, s := range reasons[1:] {
			r.Reason += ", " + s
		}
	}
	return r
}

// LiveHandler answers the liveness probe.
func (c *Checker) LiveHandler() http.Handler { return c.handler(probeLive) }

// ReadyHandler answers the readiness probe.
func (c *Checker) ReadyHandler() http.Handler { return c.handler(probeReady) }

// StartupHandler answers the start-up probe.
func (c *Checker) StartupHandler() http.Handler { return c.handler(probeStartup) }

// Register serves GET (and HEAD) /livez, /readyz, /startupz and /healthz,
// an alias of /readyz, on mux.
func (c *Checker) Register(mux *http.ServeMux) {
	mux.Handle("GET /livez", c.LiveHandler())
	mux.Handle("GET /readyz", c.ReadyHandler())
	mux.Handle("GET /healthz", c.ReadyHandler())
	mux.Handle("GET /startupz", c.StartupHandler())
}

func (c *Checker) handler(p probe) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := c.report(p, r.URL.Query().Has("verbose"))
		code := http.StatusOK
		if rep.Status != StatusOK {
			code = http.StatusServiceUnavailable
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(rep)
	})
}
