package httperr

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Write answers with code and the JSON body {"error": msg}. The message
// reaches clients: it names what was wrong with their request, never an
// internal detail. nosniff keeps a browser from reading the message as
// HTML.
func Write(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body{strings.TrimSpace(msg)})
}

type body struct {
	Error string `json:"error"`
}
