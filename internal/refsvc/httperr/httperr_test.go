package httperr

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		msg      string
		wantBody string
	}{
		{"plain", http.StatusBadRequest, "width is required", `{"error":"width is required"}` + "\n"},
		{"trimmed", http.StatusBadGateway, " thumbnailer failed\n", `{"error":"thumbnailer failed"}` + "\n"},
		{"escaped", http.StatusBadRequest, `"user" <b>`, `{"error":"\"user\" \u003cb\u003e"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Write(rec, tt.code, tt.msg)
			if rec.Code != tt.code || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tt.code, tt.wantBody)
			}
			h := rec.Header()
			if h.Get("Content-Type") != "application/json" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("headers = %v", h)
			}
		})
	}
}

func ExampleWrite() {
	rec := httptest.NewRecorder()
	Write(rec, http.StatusRequestEntityTooLarge, "image exceeds 10485760 bytes")
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output: 413 {"error":"image exceeds 10485760 bytes"}
}

func TestWriteBodyError(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantBody string
	}{
		{"too big", &http.MaxBytesError{Limit: 4096}, http.StatusRequestEntityTooLarge, `{"error":"image exceeds 4096 bytes"}` + "\n"},
		{"read deadline", &net.OpError{Op: "read", Net: "tcp",
			Source: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 8080}, Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 9), Port: 41234},
			Err: os.ErrDeadlineExceeded}, http.StatusRequestTimeout, `{"error":"image was not received in time"}` + "\n"},
		{"cut short", fmt.Errorf("wrapped: %w", io.ErrUnexpectedEOF), http.StatusBadRequest, `{"error":"image could not be read in full"}` + "\n"},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 9), Port: 41234}, Err: errors.New("connection reset by peer")},
			http.StatusBadRequest, `{"error":"image could not be read in full"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteBodyError(rec, "image", tt.err)
			if rec.Code != tt.wantCode || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestParse(t *testing.T) {
	long := strings.Repeat("é", MaxMessageBytes) // two bytes a rune
	tests := []struct {
		name        string
		contentType string
		body        string
		want        string
		wantOK      bool
	}{
		{"ours", "application/json", `{"error":"thumbnail: bad options: width 0 is outside 1..4096"}`, "thumbnail: bad options: width 0 is outside 1..4096", true},
		{"with charset", "application/json; charset=utf-8", `{"error":"too large"}`, "too large", true},
		{"html", "text/html", `{"error":"<script>alert(1)</script>"}`, "", false},
		{"no type", "", `{"error":"x"}`, "", false},
		{"bad type", "application/json;;", `{"error":"x"}`, "", false},
		{"not json", "application/json", `<script>alert(1)</script>`, "", false},
		{"empty message", "application/json", `{"error":""}`, "", false},
		{"other shape", "application/json", `{"message":"x"}`, "", false},
		{"not a string", "application/json", `{"error":{"x":1}}`, "", false},
		{"markup kept for Write to escape", "application/json", `{"error":"<script>alert(1)</script>"}`, "<script>alert(1)</script>", true},
		{"control characters", "application/json", `{"error":"a\r\nSet-Cookie: x\u0000\u001b[31m"}`, "a  Set-Cookie: x  [31m", true},
		{"invalid utf-8", "application/json", "{\"error\":\"a\xffb\"}", "a\uFFFDb", true},
		{"cut at a rune", "application/json", `{"error":"` + long + `"}`, long[:MaxMessageBytes], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Parse(tt.contentType, []byte(tt.body))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Parse = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
			if len(got) > MaxMessageBytes || !utf8.ValidString(got) {
				t.Errorf("%q: %d bytes, valid UTF-8 %v", got, len(got), utf8.ValidString(got))
			}
		})
	}
}

func ExampleParse() {
	msg, ok := Parse("application/json", []byte(`{"error":"image exceeds 10485760 bytes"}`))
	fmt.Println(msg, ok)
	_, ok = Parse("text/html", []byte(`<script>alert(1)</script>`))
	fmt.Println(ok)
	// Output:
	// image exceeds 10485760 bytes true
	// false
}
