package cluster

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Handler serves the cluster's API:
//
//	GET  /api/v1/snapshot
//	POST /api/v1/namespaces/{ns}/deployments/{name}/restart
//
// Errors are JSON objects {"error": "..."}.
func (c *Cluster) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Snapshot())
	})
	mux.HandleFunc("POST /api/v1/namespaces/{ns}/deployments/{name}/restart", func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("ns"), r.PathValue("name")
		if err := c.Restart(ns, name); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"message": "deployment.apps/" + name + " restarted"})
	})
	// The paths above with another method: 405 with a JSON error, where
	// the mux alone would answer in plain text or fall through to 404.
	for path, allow := range map[string]string{
		"/api/v1/snapshot": "GET, HEAD",
		"/api/v1/namespaces/{ns}/deployments/{name}/restart": "POST",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method " + r.Method + " not allowed on " + r.URL.Path + "; use " + allow})
		})
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such API path: " + r.Method + " " + r.URL.Path})
	})
	return mux
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, ErrNotFound) {
		code = http.StatusNotFound
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
