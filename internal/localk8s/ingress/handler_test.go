package ingress

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
)

func TestRoundRobinPerRequest(t *testing.T) {
	var bs []*backend
	var eps endpointSet
	var addrs []netip.AddrPort
	for i := 1; i <= 3; i++ {
		b := startBackend(t, fmt.Sprintf("127.0.4.%d", i), nil)
		bs = append(bs, b)
		addrs = append(addrs, b.addr)
	}
	eps.set("web", addrs...)
	h := New(Config{Endpoints: eps.get})
	if err := h.Update([]*networkingv1.Ingress{ingress("web", rule("web.example.com", path("/", prefix, "web")))}); err != nil {
		t.Fatal(err)
	}
	url, c := front(t, h)

	// One keep-alive connection from the client; every request still
	// picks the next endpoint.
	var newConns int
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if !i.Reused {
			newConns++
		}
	}}
	var order []string
	for range 30 {
		req, _ := http.NewRequest("GET", url+"/x", nil)
		req.Host = "web.example.com"
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Served-By") != string(body) {
			t.Fatalf("status %d, X-Served-By %q, body %q", resp.StatusCode, resp.Header.Get("X-Served-By"), body)
		}
		order = append(order, string(body))
	}
	if newConns != 1 {
		t.Errorf("client opened %d connections, want 1 kept alive", newConns)
	}
	for i := range order {
		if order[i] != order[i%3] {
			t.Fatalf("not round-robin: %v", order)
		}
	}
	for _, b := range bs {
		if n := b.count(); n != 10 {
			t.Errorf("%s served %d of 30 requests, want 10", b.name, n)
		}
	}

	// A new endpoint set takes effect on the next request.
	eps.set("web", addrs[0])
	for range 5 {
		if code, body := do(t, c, "GET", url, "web.example.com", nil); code != 200 || body != bs[0].name {
			t.Fatalf("after endpoints changed: %d %q, want 200 from %s", code, body, bs[0].name)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	b := startBackend(t, "127.0.4.1", func(w http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Host", "X-Forwarded-Proto"} {
			fmt.Fprintf(w, "%s=%s\n", k, strings.Join(r.Header.Values(k), ","))
		}
		fmt.Fprintf(w, "Host=%s\nURI=%s\n", r.Host, r.RequestURI)
	})
	var eps endpointSet
	eps.set("web", b.addr)
	h := New(Config{Endpoints: eps.get})
	if err := h.Update([]*networkingv1.Ingress{ingress("web", rule("", path("/", prefix, "web")))}); err != nil {
		t.Fatal(err)
	}
	url, c := front(t, h)
	req, _ := http.NewRequest("GET", url+"/a/b?q=1", nil)
	req.Host = "shop.example.com:8080"
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // not trusted
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "X-Forwarded-For=127.0.0.1\nX-Real-Ip=127.0.0.1\nX-Forwarded-Host=shop.example.com:8080\nX-Forwarded-Proto=http\nHost=shop.example.com:8080\nURI=/a/b?q=1\n"
	if string(body) != want {
		t.Errorf("backend saw:\n%s\nwant:\n%s", body, want)
	}
}

func TestStatusWithoutRouteOrEndpoints(t *testing.T) {
	b := startBackend(t, "127.0.4.1", nil)
	var eps endpointSet
	eps.set("up", b.addr)
	h := New(Config{Endpoints: eps.get})
	if err := h.Update([]*networkingv1.Ingress{ingress("web", rule("web.example.com",
		path("/up", prefix, "up"), path("/down", prefix, "down")))}); err != nil {
		t.Fatal(err)
	}
	url, c := front(t, h)
	tests := []struct {
		name, host, path string
		code             int
	}{
		{"routed", "web.example.com", "/up", 200},
		{"no ready endpoints", "web.example.com", "/down/x", 503},
		{"no path matches", "web.example.com", "/other", 404},
		{"no host matches", "other.example.com", "/up", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := do(t, c, "GET", url+tt.path, tt.host, nil); code != tt.code {
				t.Errorf("%s %s: %d %q, want %d", tt.host, tt.path, code, body, tt.code)
			}
		})
	}
	if err := h.Update(nil); err != nil {
		t.Fatal(err)
	}
	if code, _ := do(t, c, "GET", url+"/up", "web.example.com", nil); code != 404 {
		t.Errorf("after the Ingress was removed: %d, want 404", code)
	}
}

// TestNextUpstream sends two requests to endpoints [refusing, live]; the
// first starts on the refusing one, the second on the live one.
func TestNextUpstream(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		annotations []string
		want        [2]int
		liveGot     int
	}{
		{name: "GET retried", method: "GET", want: [2]int{200, 200}, liveGot: 2},
		{name: "HEAD retried", method: "HEAD", want: [2]int{200, 200}, liveGot: 2},
		{name: "PUT retried with its body", method: "PUT", want: [2]int{200, 200}, liveGot: 2},
		{name: "POST not retried", method: "POST", want: [2]int{502, 200}, liveGot: 1},
		{name: "PATCH not retried", method: "PATCH", want: [2]int{502, 200}, liveGot: 1},
		{name: "POST retried with non_idempotent", method: "POST", annotations: []string{AnnotationProxyNextUpstream, "error timeout non_idempotent"}, want: [2]int{200, 200}, liveGot: 2},
		{name: "GET not retried when off", method: "GET", annotations: []string{AnnotationProxyNextUpstream, "off"}, want: [2]int{502, 200}, liveGot: 1},
		{name: "GET not retried without error", method: "GET", annotations: []string{AnnotationProxyNextUpstream, "timeout http_502"}, want: [2]int{502, 200}, liveGot: 1},
		{name: "GET one try", method: "GET", annotations: []string{AnnotationProxyNextUpstreamTries, "1"}, want: [2]int{502, 200}, liveGot: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := startBackend(t, "127.0.4.1", nil)
			var eps endpointSet
			eps.set("web", refusing(t, "127.0.4.2"), live.addr)
			h := New(Config{Endpoints: eps.get})
			ing := withAnnotations(ingress("web", rule("", path("/", prefix, "web"))), tt.annotations...)
			if err := h.Update([]*networkingv1.Ingress{ing}); err != nil {
				t.Fatal(err)
			}
			url, c := front(t, h)
			for i, want := range tt.want {
				var body io.Reader
				if tt.method == "PUT" || tt.method == "POST" || tt.method == "PATCH" {
					body = strings.NewReader(fmt.Sprintf("payload %d", i))
				}
				if code, _ := do(t, c, tt.method, url+"/r", "", body); code != want {
					t.Errorf("request %d: %d, want %d", i, code, want)
				}
			}
			if n := live.count(); n != tt.liveGot {
				t.Errorf("live endpoint got %d requests, want %d", n, tt.liveGot)
			}
			if tt.method == "PUT" {
				live.mu.Lock()
				defer live.mu.Unlock()
				if strings.Join(live.body, ",") != "payload 0,payload 1" {
					t.Errorf("bodies received %q", live.body)
				}
			}
		})
	}
}

func TestNextUpstreamOnStatus(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		annotations []string
		want        int
	}{
		{name: "default passes 503 on", method: "GET", want: 503},
		{name: "http_503 retries GET", method: "GET", annotations: []string{AnnotationProxyNextUpstream, "error timeout http_502 http_503"}, want: 200},
		{name: "http_503 does not retry POST", method: "POST", annotations: []string{AnnotationProxyNextUpstream, "error timeout http_503"}, want: 503},
		{name: "http_502 only", method: "GET", annotations: []string{AnnotationProxyNextUpstream, "http_502"}, want: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			draining := startBackend(t, "127.0.4.1", func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "draining", http.StatusServiceUnavailable)
			})
			live := startBackend(t, "127.0.4.2", nil)
			var eps endpointSet
			eps.set("web", draining.addr, live.addr)
			h := New(Config{Endpoints: eps.get})
			ing := withAnnotations(ingress("web", rule("", path("/", prefix, "web"))), tt.annotations...)
			if err := h.Update([]*networkingv1.Ingress{ing}); err != nil {
				t.Fatal(err)
			}
			url, c := front(t, h)
			if code, _ := do(t, c, tt.method, url, "", nil); code != tt.want {
				t.Errorf("got %d, want %d", code, tt.want)
			}
		})
	}
}

func TestNextUpstreamOnTimeout(t *testing.T) {
	tests := []struct {
		name        string
		annotations []string
		want        int
	}{
		{name: "timeout retried by default", want: 200},
		{name: "timeout not retried with error only", annotations: []string{AnnotationProxyNextUpstream, "error"}, want: 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stuck := startBackend(t, "127.0.4.1", func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done() // until the proxy gives up
			})
			live := startBackend(t, "127.0.4.2", nil)
			var eps endpointSet
			eps.set("web", stuck.addr, live.addr)
			h := New(Config{Endpoints: eps.get, ResponseHeaderTimeout: 2 * time.Second})
			ing := withAnnotations(ingress("web", rule("", path("/", prefix, "web"))), tt.annotations...)
			if err := h.Update([]*networkingv1.Ingress{ing}); err != nil {
				t.Fatal(err)
			}
			url, c := front(t, h)
			if code, _ := do(t, c, "GET", url, "", nil); code != tt.want {
				t.Errorf("got %d, want %d", code, tt.want)
			}
		})
	}
}

// chunked hides a reader's length so the request is sent chunked.
type chunked struct{ io.Reader }

func TestBodySizeLimit(t *testing.T) {
	tests := []struct {
		name string
		size string // annotation; "" = default 1m
		body func() io.Reader
		want int
	}{
		{name: "under the limit", size: "1k", body: func() io.Reader { return bytes.NewReader(make([]byte, 1024)) }, want: 200},
		{name: "over the limit, length known", size: "1k", body: func() io.Reader { return bytes.NewReader(make([]byte, 1025)) }, want: 413},
		{name: "over the limit, chunked", size: "1k", body: func() io.Reader { return chunked{bytes.NewReader(make([]byte, 4096))} }, want: 413},
		{name: "chunked under the limit", size: "1k", body: func() io.Reader { return chunked{bytes.NewReader(make([]byte, 100))} }, want: 200},
		{name: "default limit is 1m", body: func() io.Reader { return bytes.NewReader(make([]byte, 1<<20+1)) }, want: 413},
		{name: "16m", size: "16m", body: func() io.Reader { return bytes.NewReader(make([]byte, 2<<20)) }, want: 200},
		{name: "0 means no limit", size: "0", body: func() io.Reader { return bytes.NewReader(make([]byte, 2<<20)) }, want: 200},
	}
	for _, tt := range tests {
		for _, method := range []string{"POST", "PUT"} {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				b := startBackend(t, "127.0.4.1", nil)
				var eps endpointSet
				eps.set("web", b.addr)
				h := New(Config{Endpoints: eps.get})
				ing := ingress("web", rule("", path("/", prefix, "web")))
				if tt.size != "" {
					withAnnotations(ing, AnnotationProxyBodySize, tt.size)
				}
				if err := h.Update([]*networkingv1.Ingress{ing}); err != nil {
					t.Fatal(err)
				}
				url, c := front(t, h)
				if code, _ := do(t, c, method, url, "", tt.body()); code != tt.want {
					t.Errorf("got %d, want %d", code, tt.want)
				}
				if tt.want == 413 && b.count() != 0 {
					b.mu.Lock()
					defer b.mu.Unlock()
					if len(b.body[0]) > 1024 {
						t.Errorf("backend received a %d-byte body over the limit", len(b.body[0]))
					}
				}
			})
		}
	}
}

func TestNewValidates(t *testing.T) {
	// A negative ConnectTimeout used to make every dial fail at once, and
	// a negative ResponseHeaderTimeout meant no timeout; both are invalid
	// now, and New, which returns no error, panics on them.
	tests := []struct {
		name  string
		cfg   Config
		field string // in the error; empty means valid
	}{
		{name: "zero is valid", cfg: Config{}},
		{name: "negative connect timeout", cfg: Config{ConnectTimeout: -time.Second}, field: "ConnectTimeout"},
		{name: "negative response header timeout", cfg: Config{ResponseHeaderTimeout: -time.Second}, field: "ResponseHeaderTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("Validate: %v, want no error", err)
			case tt.field != "" && (err == nil || !strings.Contains(err.Error(), tt.field)):
				t.Fatalf("Validate: %v, want an error naming %s", err, tt.field)
			}
			defer func() {
				if p := recover(); (p != nil) != (tt.field != "") {
					t.Fatalf("New panicked with %v, want a panic: %v", p, tt.field != "")
				}
			}()
			New(tt.cfg).CloseIdleConnections()
		})
	}
}
