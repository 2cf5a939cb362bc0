package dashboard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func get(t *testing.T, srv *httptest.Server, method, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestHandlerRoutes(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	tests := []struct {
		name, method, path string
		code               int
		contentType        string
		body               string
	}{
		{"page", "GET", "/", 200, "text/html; charset=utf-8", `<script src="static/dashboard.js" defer>`},
		{"script", "GET", "/static/dashboard.js", 200, "text/javascript; charset=utf-8", `const API = "` + api.SnapshotPath + `";`},
		{"style", "GET", "/static/dashboard.css", 200, "text/css; charset=utf-8", "svg.chart"},
		{"head of the page", "HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"unknown path", "GET", "/nope", 404, "", ""},
		{"no directory listing", "GET", "/static/", 404, "", ""},
		{"page by file name", "GET", "/index.html", 404, "", ""},
		{"post", "POST", "/", 405, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, srv, tc.method, tc.path)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if tc.contentType != "" && resp.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.contentType)
			}
			if !strings.Contains(body, tc.body) {
				t.Errorf("body lacks %q", tc.body)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q does not keep the page to its origin", csp)
			}
		})
	}
}

// TestAssetsAreSelfContained guards "works offline": no asset refers to
// another origin (the SVG namespace is a name, not a fetch).
func TestAssetsAreSelfContained(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for _, path := range []string{"/", "/static/dashboard.js", "/static/dashboard.css"} {
		_, body := get(t, srv, "GET", path)
		for _, m := range external.FindAllString(body, -1) {
			if m != "http://www.w3.org" {
				t.Errorf("%s refers to %s", path, m)
			}
		}
	}
}
