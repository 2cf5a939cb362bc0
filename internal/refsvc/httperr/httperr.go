package httperr

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
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

// WriteBodyError answers a request whose body could not be read: 413
// naming the limit when it ran past an http.MaxBytesReader, 408 when the
// client sent it too slowly for the server's read deadline, 400 when it
// was cut short or malformed. what names the body in the message ("image",
// "login body"). The message never holds err's text: the errors of a
// network read name the socket's addresses ("read tcp 10.0.0.7:8080->...").
func WriteBodyError(w http.ResponseWriter, what string, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		Write(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s exceeds %d bytes", what, tooBig.Limit))
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection cannot carry another request after this.
		w.Header().Set("Connection", "close")
		Write(w, http.StatusRequestTimeout, what+" was not received in time")
	default:
		Write(w, http.StatusBadRequest, what+" could not be read in full")
	}
}

// MaxMessageBytes bounds a message [Parse] returns.
const MaxMessageBytes = 256

// Parse returns the message of a body in Write's shape, {"error": msg},
// as another service answered it: ok only when contentType is
// application/json and the body holds a non-empty message. The message is
// made safe to pass on: invalid UTF-8 and control characters replaced,
// trimmed, and cut to MaxMessageBytes. Write escapes what HTML would
// read.
func Parse(contentType string, data []byte) (msg string, ok bool) {
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != "application/json" {
		return "", false
	}
	var b body
	if err := json.Unmarshal(data, &b); err != nil {
		return "", false
	}
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(b.Error, "\uFFFD"))
	msg = strings.TrimSpace(msg)
	if len(msg) > MaxMessageBytes {
		cut := MaxMessageBytes
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	return msg, msg != ""
}
