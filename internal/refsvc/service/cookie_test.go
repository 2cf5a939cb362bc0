package service

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestCookieSecureSetting signs in over plain HTTP under each COOKIE_SECURE
// and looks at the session cookie's Secure attribute.
func TestCookieSecureSetting(t *testing.T) {
	tests := []struct {
		name       string
		setting    string
		proto      string
		wantSecure bool
	}{
		{"default is always", "", "", true},
		{"always", "always", "http", true},
		{"never", "never", "https", false},
		{"forwarded https", "forwarded", "https", true},
		{"forwarded http", "forwarded", "http", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gal := start(t, "gallery", func(s *Service) error {
				return AddGallery(context.Background(), s, GalleryOptions{CookieSecure: tt.setting})
			})
			req, err := http.NewRequest("POST", gal.url+"/v1/login", strings.NewReader(`{"user":"ann"}`))
			if err != nil {
				t.Fatal(err)
			}
			if tt.proto != "" {
				req.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			cs := resp.Cookies()
			if resp.StatusCode != http.StatusOK || len(cs) != 1 {
				t.Fatalf("login: %d with cookies %v", resp.StatusCode, cs)
			}
			if cs[0].Secure != tt.wantSecure {
				t.Errorf("Secure = %v, want %v", cs[0].Secure, tt.wantSecure)
			}
		})
	}
	t.Run("unknown value", func(t *testing.T) {
		err := GalleryOptions{CookieSecure: "auto"}.Validate()
		if err == nil || !strings.Contains(err.Error(), "COOKIE_SECURE") {
			t.Fatalf("Validate = %v, want an error naming COOKIE_SECURE", err)
		}
	})
}
