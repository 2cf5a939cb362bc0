package service

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/deadline"
	"github.com/shoal-dev/shoal/healthtest"
	"github.com/shoal-dev/shoal/metricstest"
	"github.com/shoal-dev/shoal/requestlog"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logBuffer collects a service's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the records whose msg is msg.
func (b *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// running is a service started by a test and stopped when it ends.
type running struct {
	svc  *Service
	url  string
	adm  string
	logs *logBuffer
}

func start(t *testing.T, o Options, setup func(*Service) error) *running {
	t.Helper()
	logs := &logBuffer{}
	o.Host = "127.0.0.1"
	if o.PodName == "" {
		o.PodName = "svc-0"
	}
	o.DrainDelay = -1
	o.ShutdownTimeout = 5 * time.Second
	o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	svc, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		if err := setup(svc); err != nil {
			svc.Close()
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s stopped with %v", o.PodName, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop", o.PodName)
		}
	})
	r := &running{svc: svc, url: URL(svc.Addr()), adm: URL(svc.AdminAddr()), logs: logs}
	healthtest.Wait(t, r.adm+"/readyz", http.StatusOK)
	return r
}

type reply struct {
	code int
	hdr  http.Header
	body string
}

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// TestRequestLogAndID: each request gets one log line with its route,
// status, size and ID; an incoming X-Request-ID is kept, a hostile one
// replaced; records the handler logs with the context carry the same ID.
func TestRequestLogAndID(t *testing.T) {
	r := start(t, Options{}, func(svc *Service) error {
		svc.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, req *http.Request) {
			svc.Logger.InfoContext(req.Context(), "looking up", "id", req.PathValue("id"))
			io.WriteString(w, "item "+req.PathValue("id"))
		})
		return nil
	})
	kept := get(t, http.DefaultClient, r.url+"/items/7", map[string]string{"X-Request-ID": "abc-123"})
	if kept.code != 200 || kept.hdr.Get("X-Request-ID") != "abc-123" {
		t.Fatalf("with X-Request-ID abc-123: %d, X-Request-ID %q", kept.code, kept.hdr.Get("X-Request-ID"))
	}
	hostile := get(t, http.DefaultClient, r.url+"/items/8", map[string]string{"X-Request-ID": strings.Repeat("x", 5000)})
	made := hostile.hdr.Get("X-Request-ID")
	if made == "" || len(made) > 128 {
		t.Fatalf("a 5000-byte X-Request-ID came back as %d bytes; want a fresh ID", len(made))
	}
	get(t, http.DefaultClient, r.url+"/nowhere", nil)

	lines := r.logs.lines(t, "request")
	if len(lines) != 3 {
		t.Fatalf("%d request log lines, want 3: %v", len(lines), lines)
	}
	first := lines[0]
	for k, want := range map[string]any{"method": "GET", "route": "GET /items/{id}", "status": float64(200), "bytes": float64(len("item 7")), "request_id": "abc-123"} {
		if first[k] != want {
			t.Errorf("request line %s = %v, want %v (line %v)", k, first[k], want, first)
		}
	}
	if _, ok := first["duration"]; !ok {
		t.Errorf("request line has no duration: %v", first)
	}
	if p, _ := first["peer"].(string); !strings.HasPrefix(p, "127.0.0.1:") {
		t.Errorf("request line peer = %v", first["peer"])
	}
	if lines[1]["request_id"] != made {
		t.Errorf("second line request_id = %v, want the made ID %q", lines[1]["request_id"], made)
	}
	if lines[2]["status"] != float64(404) {
		t.Errorf("unmatched request line = %v", lines[2])
	}
	inner := r.logs.lines(t, "looking up")
	if len(inner) != 2 || inner[0]["request_id"] != "abc-123" || inner[1]["request_id"] != made {
		t.Errorf("handler's own lines = %v, want the requests' IDs", inner)
	}
}

// TestPanicAnswers500AndKeepsServing: a panicking handler answers 500, is
// logged with its stack and counted, and the same connection serves the
// next request.
func TestPanicAnswers500AndKeepsServing(t *testing.T) {
	r := start(t, Options{}, func(svc *Service) error {
		svc.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
		svc.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
		return nil
	})
	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer c.CloseIdleConnections()
	for i := range 3 {
		if got := get(t, c, r.url+"/boom", nil); got.code != http.StatusInternalServerError {
			t.Fatalf("panic %d: status %d, want 500", i, got.code)
		}
		if got := get(t, c, r.url+"/ok", nil); got.code != 200 || got.body != "ok" {
			t.Fatalf("after panic %d: %d %q", i, got.code, got.body)
		}
	}
	if v := metricstest.Value(t, r.svc.Registry, "http_handler_panics_total"); v != 3 {
		t.Errorf("http_handler_panics_total = %v, want 3", v)
	}
	if v := metricstest.Value(t, r.svc.Registry, "http_requests_total", "route", "/boom", "code", "500"); v != 3 {
		t.Errorf(`http_requests_total{route="/boom",code="500"} = %v, want 3`, v)
	}
	var stacked int
	for _, line := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(line, "kaboom") && strings.Contains(line, "goroutine") {
			stacked++
		}
	}
	if stacked != 3 {
		t.Errorf("%d log lines name the panic with a stack, want 3", stacked)
	}
}

// TestShedRequestsCountUnderTheirRoute: a request the load shedder
// answers 503 never reaches the mux, yet is counted under its route.
func TestShedRequestsCountUnderTheirRoute(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	r := start(t, Options{ShedMaxLimit: 1}, func(svc *Service) error {
		svc.HandleFunc("GET /v1/slow", func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			<-release
		})
		return nil
	})
	held := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/v1/slow", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the first request never reached the handler")
	}
	got := get(t, http.DefaultClient, r.url+"/v1/slow", nil)
	close(release)
	if got.code != http.StatusServiceUnavailable {
		t.Fatalf("second request with the limit at 1: status %d, want 503 from the shedder", got.code)
	}
	if code := <-held; code != http.StatusOK {
		t.Fatalf("held request: status %d", code)
	}
	if v := metricstest.Value(t, r.svc.Registry, "http_requests_total", "route", "/v1/slow", "code", "503"); v != 1 {
		t.Errorf(`http_requests_total{route="/v1/slow",code="503"} = %v, want 1`, v)
	}
	if lines := r.logs.lines(t, "request"); len(lines) != 2 {
		t.Errorf("%d request lines for a served and a shed request, want 2", len(lines))
	}
}

// TestRouteDeadlines: a route's context ends after its own timeout, the
// service's default, or the caller's shorter X-Request-Timeout-Ms.
func TestRouteDeadlines(t *testing.T) {
	left := func(w http.ResponseWriter, r *http.Request) {
		d, ok := r.Context().Deadline()
		if !ok {
			io.WriteString(w, "none")
			return
		}
		io.WriteString(w, strconv.FormatInt(time.Until(d).Milliseconds(), 10))
	}
	r := start(t, Options{RequestTimeout: 3 * time.Second}, func(svc *Service) error {
		svc.HandleFunc("GET /default", left)
		svc.Handle("GET /short", WithTimeout(500*time.Millisecond, http.HandlerFunc(left)))
		svc.Handle("GET /unbounded", WithTimeout(-1, http.HandlerFunc(left)))
		return nil
	})
	tests := []struct {
		name     string
		path     string
		header   string
		min, max int64 // milliseconds left, bounds inclusive
	}{
		{"service default", "/default", "", 2000, 3000},
		{"route's own", "/short", "", 1, 500},
		{"caller shorter", "/default", "200", 1, 200},
		{"caller longer than route", "/short", "60000", 1, 500},
		{"caller's garbage ignored", "/default", "soon", 2000, 3000},
		{"no route timeout, caller's", "/unbounded", "1500", 500, 1500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.header != "" {
				hdr[deadline.Header] = tt.header
			}
			got := get(t, http.DefaultClient, r.url+tt.path, hdr)
			ms, err := strconv.ParseInt(got.body, 10, 64)
			if err != nil || ms < tt.min || ms > tt.max {
				t.Errorf("ms left = %q, want within [%d, %d]", got.body, tt.min, tt.max)
			}
		})
	}
	if got := get(t, http.DefaultClient, r.url+"/unbounded", nil); got.body != "none" {
		t.Errorf("a route without a timeout and no caller's header has deadline %q ms away", got.body)
	}
}

// TestUpstreamCarriesIDAndDeadline: a call made for a request carries its
// X-Request-ID and its remaining time, balanced over a host:port list,
// and is counted per upstream and endpoint.
func TestUpstreamCarriesIDAndDeadline(t *testing.T) {
	type seen struct{ id, timeout string }
	got := make(chan seen, 4)
	back := start(t, Options{PodName: "back-0"}, func(svc *Service) error {
		svc.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
			got <- seen{r.Header.Get(requestlog.HeaderID), r.Header.Get(deadline.Header)}
			svc.Logger.InfoContext(r.Context(), "pinged")
			io.WriteString(w, "pong")
		})
		return nil
	})
	front := start(t, Options{PodName: "front-0"}, func(svc *Service) error {
		up, err := svc.Upstream(UpstreamConfig{Name: "back", Target: strings.TrimPrefix(back.url, "http://")})
		if err != nil {
			return err
		}
		svc.Handle("GET /hello", WithTimeout(2*time.Second, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			resp, err := up.Get(r.Context(), "/ping")
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			io.Copy(w, resp.Body)
		})))
		return nil
	})
	res := get(t, http.DefaultClient, front.url+"/hello", map[string]string{"X-Request-ID": "trace-me-1"})
	if res.code != 200 || res.body != "pong" {
		t.Fatalf("GET /hello: %d %q", res.code, res.body)
	}
	s := <-got
	if s.id != "trace-me-1" {
		t.Errorf("upstream saw X-Request-ID %q, want trace-me-1", s.id)
	}
	if ms, err := strconv.Atoi(s.timeout); err != nil || ms <= 0 || ms > 2000 {
		t.Errorf("upstream saw %s %q, want 1..2000", deadline.Header, s.timeout)
	}
	if l := back.logs.lines(t, "pinged"); len(l) != 1 || l[0]["request_id"] != "trace-me-1" {
		t.Errorf("upstream's own log lines = %v, want request_id trace-me-1", l)
	}
	if v := metricstest.Value(t, front.svc.Registry, "shoal_balancer_requests_total", "upstream", "back"); v != 1 {
		t.Errorf(`shoal_balancer_requests_total{upstream="back"} = %v, want 1`, v)
	}
}

func TestUpstreamTargets(t *testing.T) {
	tests := []struct {
		name     string
		cfg      UpstreamConfig
		wantBase string
		wantErr  string
	}{
		{"one URL", UpstreamConfig{Target: "http://10.0.0.1:8080/"}, "http://10.0.0.1:8080", ""},
		{"https URL", UpstreamConfig{Target: "https://api.example:8443"}, "https://api.example:8443", ""},
		{"address list", UpstreamConfig{Target: "127.0.0.1:1, 127.0.0.1:2", Host: "thumbs", Policy: "round_robin"}, "http://thumbs", ""},
		{"address list, host from name", UpstreamConfig{Target: "127.0.0.1:1"}, "http://up", ""},
		{"DNS name", UpstreamConfig{Target: "dns://127.0.0.1:1/thumbnailer.test:8080", Policy: "consistent_hash"}, "http://thumbnailer.test", ""},
		{"DNS name, system server", UpstreamConfig{Target: "dns:///thumbnailer.test:8080", Host: "thumbnailer"}, "http://thumbnailer", ""},
		{"bad policy", UpstreamConfig{Target: "127.0.0.1:1", Policy: "fastest"}, "", "fastest"},
		{"DNS name without port", UpstreamConfig{Target: "dns:///thumbnailer"}, "", "dns://[server]/name:port"},
		{"bad address", UpstreamConfig{Target: "no-port"}, "", `"no-port" is not host:port`},
		{"unknown scheme", UpstreamConfig{Target: "grpc://x:1"}, "", `scheme "grpc"`},
		{"EndpointSlice without resolver", UpstreamConfig{Target: "k8s:///thumbnailer.media:http"}, "", "EndpointSlices"},
		{"empty", UpstreamConfig{}, "", "empty target"},
		{"no name", UpstreamConfig{Name: "-", Target: "127.0.0.1:1"}, "", "no name"},
		{"negative per-try timeout", UpstreamConfig{Target: "127.0.0.1:1", PerTryTimeout: -time.Second}, "", "PerTryTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, err := New(Options{Host: "127.0.0.1", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer svc.Close()
			switch tt.cfg.Name {
			case "":
				tt.cfg.Name = "up"
			case "-":
				tt.cfg.Name = ""
			}
			up, err := svc.Upstream(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Upstream error = %v, want it to say %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if up.BaseURL != tt.wantBase {
				t.Errorf("BaseURL = %q, want %q", up.BaseURL, tt.wantBase)
			}
			for range 2 { // Close may be repeated
				if err := up.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{"zero", Options{}, ""},
		{"negative shutdown", Options{ShutdownTimeout: -1}, "SHUTDOWN_TIMEOUT"},
		{"shedding off", Options{ShedMaxLimit: -1}, ""},
		{"sample above 1", Options{RequestLogSample: 1.5}, "REQUEST_LOG_SAMPLE"},
		{"cert without key", Options{TLSCertFile: "c.pem"}, "TLS_KEY_FILE"},
		{"client CA without cert", Options{TLSClientCAFile: "ca.pem"}, "TLS_CLIENT_CA_FILE"},
		{"upstream key without cert", Options{UpstreamKeyFile: "k.pem"}, "UPSTREAM_CERT_FILE"},
		{"bad level", Options{LogLevel: "loud"}, "LOG_LEVEL"},
		{"bad port", Options{Port: 70000}, "PORT"},
		{"negative requests", Options{MaxConnRequests: -1}, "MaxConnRequests"},
		{"age off", Options{MaxConnAge: -1}, ""},
		{"request log off", Options{RequestLogSample: -1}, ""},
		{"bad gRPC port", Options{GRPCPort: 70000}, "GRPC_PORT"},
		{"negative gRPC message size", Options{GRPCMaxRecvMsgSize: -1}, "GRPC_MAX_RECV_MSG_SIZE"},
		{"negative gRPC streams", Options{GRPCMaxConcurrentStreams: -1}, "GRPC_MAX_CONCURRENT_STREAMS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want it to name %s", err, tt.wantErr)
			}
		})
	}
}

// TestProgramRun: -h exits through flag.ErrHelp, a malformed variable is
// named, and a Setup error releases the ports it had opened.
func TestProgramRun(t *testing.T) {
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	var stderr bytes.Buffer
	var mine string
	p := Program{Name: "p", Bind: func(cs *config.Set) { cs.String(&mine, "mine", "MINE", "x", "a setting of the program's own") }}
	if err := p.Run(context.Background(), []string{"-h"}, env(nil), &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-mine", "env MINE", "-request-timeout", "env TLS_CERT_FILE"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
	if err := p.Run(context.Background(), nil, env(map[string]string{"REQUEST_TIMEOUT": "soon"}), io.Discard); err == nil || !strings.Contains(err.Error(), "REQUEST_TIMEOUT") {
		t.Errorf("REQUEST_TIMEOUT=soon: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	failing := Program{Name: "f", Setup: func(svc *Service) error {
		if _, err := svc.Upstream(UpstreamConfig{Name: "a", Target: "127.0.0.1:1"}); err != nil {
			return err
		}
		return errors.New("wiring failed")
	}}
	err = failing.Run(context.Background(), []string{"-host", "127.0.0.1", "-port", strconv.Itoa(port), "-admin-port", "0", "-log-level", "error"}, env(nil), io.Discard)
	if err == nil || err.Error() != "wiring failed" {
		t.Fatalf("Run = %v, want the Setup error", err)
	}
	ln, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("port %d still held after a failed Setup: %v", port, err)
	}
	ln.Close()
	_ = mine
}
