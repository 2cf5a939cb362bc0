package api_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// TestGuardRefusesOtherSites sends the API on loopback what a web page
// the user visits could make the browser send: a DNS-rebound Host and
// cross-site restarts are refused, and nothing is restarted by them; the
// CLI's requests and the dashboard's own (same-origin) pass.
func TestGuardRefusesOtherSites(t *testing.T) {
	src := &source{}
	srv := httptest.NewServer(api.Guard(api.Handler(src)))
	t.Cleanup(srv.Close)
	restart := srv.URL + "/api/v1/namespaces/default/deployments/web/restart"
	snapshot := srv.URL + api.SnapshotPath
	tests := []struct {
		name, method, url string
		header            map[string]string
		host              string
		want              int
	}{
		{"the CLI reads", "GET", snapshot, nil, "", http.StatusOK},
		{"by localhost", "GET", snapshot, nil, "localhost:8090", http.StatusOK},
		{"by IPv6 loopback", "GET", snapshot, nil, "[::1]:8090", http.StatusOK},
		{"a rebound name reads", "GET", snapshot, nil, "attacker.example:8090", http.StatusForbidden},
		{"a rebound name restarts", "POST", restart, nil, "attacker.example", http.StatusForbidden},
		{"the CLI restarts", "POST", restart, nil, "", http.StatusAccepted},
		{"the dashboard restarts", "POST", restart, map[string]string{"Sec-Fetch-Site": "same-origin"}, "", http.StatusAccepted},
		{"a cross-site fetch restarts", "POST", restart, map[string]string{"Sec-Fetch-Site": "cross-site"}, "", http.StatusForbidden},
		{"a cross-site form restarts", "POST", restart, map[string]string{"Origin": "https://attacker.example", "Content-Type": "application/x-www-form-urlencoded"}, "", http.StatusForbidden},
		{"a cross-site page reads by IP", "GET", snapshot, map[string]string{"Sec-Fetch-Site": "cross-site"}, "", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src.mu.Lock()
			before := len(src.restarts)
			src.mu.Unlock()
			req, err := http.NewRequest(tc.method, tc.url, strings.NewReader(""))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			src.mu.Lock()
			restarts := slices.Clone(src.restarts)
			src.mu.Unlock()
			if restarted, want := len(restarts) > before, tc.want == http.StatusAccepted; restarted != want {
				t.Errorf("restarted %v (%v), want %v", restarted, restarts, want)
			}
		})
	}
}
