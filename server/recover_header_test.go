package server_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/shoal-dev/shoal/server"
)

// TestRecoverRestoresOuterBodyHeaders: after a panic, the headers that
// describe a body are as outer middleware left them (however many it set),
// and the others stay as set.
func TestRecoverRestoresOuterBodyHeaders(t *testing.T) {
	tests := []struct {
		name  string
		outer map[string][]string // set before Recover
		want  map[string][]string // on the 500; nil values: absent
	}{
		{
			name:  "none set outside",
			outer: map[string][]string{"X-Outer": {"a"}},
			want:  map[string][]string{"X-Outer": {"a"}, "X-Handler": {"h"}, "Cache-Control": nil, "Etag": nil, "Set-Cookie": nil, "Vary": nil},
		},
		{
			name:  "one set outside",
			outer: map[string][]string{"Cache-Control": {"no-store"}, "X-Outer": {"a"}},
			want:  map[string][]string{"Cache-Control": {"no-store"}, "X-Outer": {"a"}, "X-Handler": {"h"}, "Etag": nil, "Vary": nil},
		},
		{
			name: "more than are held without allocating",
			outer: map[string][]string{"Cache-Control": {"no-store"}, "Vary": {"Origin"}, "Content-Language": {"en"},
				"Expires": {"0"}, "Access-Control-Allow-Origin": {"*"}},
			want: map[string][]string{"Cache-Control": {"no-store"}, "Vary": {"Origin"}, "Content-Language": {"en"},
				"Expires": {"0"}, "Access-Control-Allow-Origin": {"*"}, "X-Handler": {"h"}, "Etag": nil, "Set-Cookie": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := server.Recover(nil, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=3600")
				w.Header().Add("Vary", "Accept-Encoding")
				w.Header().Set("Etag", `"v1"`)
				w.Header().Set("Set-Cookie", "s=1")
				w.Header().Set("Content-Language", "de")
				w.Header().Del("Expires")
				w.Header().Set("X-Handler", "h")
				panic("boom")
			}))
			rec := httptest.NewRecorder()
			for k, v := range tt.outer {
				rec.Header()[k] = slices.Clone(v)
			}
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			if rec.Code != http.StatusInternalServerError {
				t.Fatalf("status %d, want 500", rec.Code)
			}
			for k, want := range tt.want {
				if got := rec.Header()[k]; !slices.Equal(got, want) {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
		})
	}
}
