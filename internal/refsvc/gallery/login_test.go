package gallery_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/session"
)

// TestLoginAsAnotherUserStartsEmpty signs ann in, makes a thumbnail, then
// signs bob in from the same browser: bob's history must be his own.
func TestLoginAsAnotherUserStartsEmpty(t *testing.T) {
	url, c := newGallery(t, &fakeThumbnailer{}, gallery.Config{})
	if code, body := call(t, c, "POST", url+"/v1/thumbnails?width=8&height=8", "img"); code != http.StatusOK {
		t.Fatalf("thumbnail: %d %s", code, body)
	}
	if code, body := call(t, c, "POST", url+"/v1/login", `{"user":"bob"}`); code != http.StatusOK {
		t.Fatalf("login bob: %d %s", code, body)
	}
	code, body := call(t, c, "GET", url+"/v1/history", "")
	if want := `{"history":[],"user":"bob"}`; code != http.StatusOK || strings.TrimSpace(body) != want {
		t.Fatalf("bob's history: %d %s, want %s", code, body, want)
	}
}

// rawPost sends a POST whose body stops after part of its Content-Length,
// so the server's read deadline ends the read, and returns the answer.
func rawPost(t *testing.T, addr, path, cookie, partial string, length int) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gallery\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", path, length)
	if cookie != "" {
		req += "Cookie: " + cookie + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n" + partial)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestErrorBodiesNameNoInternals makes reading a request body fail on the
// network and checks the answer says what was wrong without the socket
// addresses or the Go error of the read.
func TestErrorBodiesNameNoInternals(t *testing.T) {
	up := httptest.NewServer(&fakeThumbnailer{})
	t.Cleanup(up.Close)
	m, err := session.NewManager(session.Config{Secret: bytes.Repeat([]byte("s"), 32), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	api, err := gallery.New(gallery.Config{Sessions: m, ThumbnailerURL: up.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	resp, err := http.Post(srv.URL+"/v1/login", "application/json", strings.NewReader(`{"user":"ann"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := resp.Header.Get("Set-Cookie")
	cookie, _, _ = strings.Cut(cookie, ";")

	tests := []struct {
		name     string
		path     string
		cookie   string
		partial  string
		wantCode int
		wantMsg  string
	}{
		{"login body too slow", "/v1/login", "", `{"user":`, http.StatusRequestTimeout, "login body was not received in time"},
		{"image too slow", "/v1/thumbnails?width=8&height=8", cookie, "\x89PNG", http.StatusRequestTimeout, "image was not received in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := rawPost(t, srv.Listener.Addr().String(), tt.path, tt.cookie, tt.partial, 1000)
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || code != tt.wantCode || e.Error != tt.wantMsg {
				t.Errorf("got %d %q, want %d with %q", code, body, tt.wantCode, tt.wantMsg)
			}
			for _, leak := range []string{"127.0.0.1", "tcp", "i/o timeout"} {
				if strings.Contains(body, leak) {
					t.Errorf("body %q holds %q", body, leak)
				}
			}
		})
	}
}

// TestLoginErrorsNameTheProblem checks that malformed logins are told what
// is wrong in the project's words, not encoding/json's.
func TestLoginErrorsNameTheProblem(t *testing.T) {
	url, c := newGallery(t, &fakeThumbnailer{}, gallery.Config{})
	tests := []struct {
		name, body, want string
	}{
		{"not JSON", "{{", `login body must be JSON {"user": "NAME"}`},
		{"unknown field", `{"user":"a","admin":true}`, `login body must be JSON {"user": "NAME"}`},
		{"too big", `{"user":"` + strings.Repeat("x", 5000) + `"}`, "login body exceeds 4096 bytes"},
		{"empty user", `{"user":""}`, `"user" is required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call(t, c, "POST", url+"/v1/login", tt.body)
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || code/100 != 4 || e.Error != tt.want {
				t.Errorf("got %d %q, want a 4xx with %q", code, body, tt.want)
			}
		})
	}
}
