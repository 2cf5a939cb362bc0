package demo

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDemoServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, pw, slog.New(slog.DiscardHandler), Options{Host: "127.0.0.1", DrainDelay: -1})
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	urls := map[string]string{}
	for sc.Scan() && len(urls) < 2 {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && (f[0] == "gallery" || f[0] == "thumbnailer") {
			urls[f[0]] = f[1]
		}
	}
	go io.Copy(io.Discard, pr)
	if len(urls) != 2 {
		t.Fatalf("printed URLs: %v", urls)
	}
	resp, err := http.Post(urls["gallery"]+"/v1/login", "application/json", strings.NewReader(`{"user":"ann"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Served-By") != "gallery-0" {
		t.Fatalf("login: %d served by %q", resp.StatusCode, resp.Header.Get("X-Served-By"))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop")
	}
}

func TestDemoPortClash(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, pw, slog.New(slog.DiscardHandler), Options{Host: "127.0.0.1", DrainDelay: -1})
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var gallery string
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "gallery" {
			gallery = f[1]
			break
		}
	}
	go io.Copy(io.Discard, pr)
	p, err := strconv.Atoi(gallery[strings.LastIndex(gallery, ":")+1:])
	if err != nil {
		t.Fatalf("gallery URL %q: %v", gallery, err)
	}
	err = Run(context.Background(), io.Discard, slog.New(slog.DiscardHandler), Options{Host: "127.0.0.1", GalleryPort: p, DrainDelay: -1})
	if err == nil || !strings.Contains(err.Error(), "demo: gallery") {
		t.Fatalf("second demo on a taken port: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
