package httperr

import (
	"fmt"
	"net/http"
	"net/http/httptest"
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
