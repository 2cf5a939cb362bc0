package thumbnailer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSlowBodyAnswerNamesNoSocket sends half an image and lets the server's
// read deadline end the read: the answer says so without the socket
// addresses of the network error.
func TestSlowBodyAnswerNamesNoSocket(t *testing.T) {
	api, err := New(Config{Logger: slog.New(slog.DiscardHandler)}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /v1/thumbnails?width=8&height=8 HTTP/1.1\r\nHost: thumbnailer\r\nContent-Length: 1000\r\n\r\n\x89PNG")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestTimeout || e.Error != "image was not received in time" {
		t.Errorf("got %d %q, want 408 %q", resp.StatusCode, e.Error, "image was not received in time")
	}
	for _, leak := range []string{"127.0.0.1", "tcp", "i/o timeout"} {
		if strings.Contains(e.Error, leak) {
			t.Errorf("error %q holds %q", e.Error, leak)
		}
	}
}
