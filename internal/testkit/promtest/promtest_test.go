package promtest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/testkit/promtest"
)

// TestStart starts a server with a configuration and an extra flag, and
// checks through its API that both took effect.
func TestStart(t *testing.T) {
	s := promtest.Start(t, promtest.Options{
		Config: "global: {scrape_interval: 7s}\n",
		Args:   []string{"--web.enable-remote-write-receiver"},
	})
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func(path string) map[string]any {
		resp, err := client.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Data map[string]any }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return body.Data
	}
	if got := get("/api/v1/status/flags")["web.enable-remote-write-receiver"]; got != "true" {
		t.Errorf("web.enable-remote-write-receiver = %v, want true", got)
	}
	if got, _ := get("/api/v1/status/config")["yaml"].(string); !strings.Contains(got, "scrape_interval: 7s") {
		t.Errorf("config lacks scrape_interval: 7s:\n%s", got)
	}
	if s.Addr() == "" || s.URL() != "http://"+s.Addr() {
		t.Errorf("Addr %q, URL %q", s.Addr(), s.URL())
	}
}
