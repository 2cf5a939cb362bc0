package httperr

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
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
