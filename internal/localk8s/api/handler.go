package api

import (
	"encoding/json"
	"errors"
	"net/http"
)

// ErrNotFound is wrapped by a [Source]'s error for an object it does not
// have; the handler answers 404 for it.
var ErrNotFound = errors.New("not found")

// Source is what the API serves: a running cluster.
type Source interface {
	// Snapshot returns the cluster's state now.
	Snapshot() Snapshot
	// Restart rolls out a Deployment's pods again; an unknown Deployment
	// gives an error wrapping ErrNotFound.
	Restart(namespace, name string) error
}

// Handler serves s's API under Prefix:
//
//	GET  /api/v1/snapshot
//	POST /api/v1/namespaces/{ns}/deployments/{name}/restart
//
// Errors are JSON objects {"error": "..."}: 404 for an unknown path or
// object, 405 for a known path with another method.
func Handler(s Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+SnapshotPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Snapshot())
	})
	mux.HandleFunc("POST "+RestartPattern, func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("ns"), r.PathValue("name")
		if err := s.Restart(ns, name); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"message": "deployment.apps/" + name + " restarted"})
	})
	// The paths above with another method: 405 with a JSON error, where
	// the mux alone would answer in plain text or fall through to 404.
	for path, allow := range map[string]string{
		SnapshotPath:   "GET, HEAD",
		RestartPattern: "POST",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method " + r.Method + " not allowed on " + r.URL.Path + "; use " + allow})
		})
	}
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
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
