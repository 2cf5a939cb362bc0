package ingress

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// gatewayObjects decodes a YAML stream of Gateways and HTTPRoutes. Each
// route's creation time is its position in the stream, in seconds, so the
// first declared is the oldest.
func gatewayObjects(t testing.TB, docs string) ([]*gatewayv1.Gateway, []*gatewayv1.HTTPRoute) {
	t.Helper()
	var gws []*gatewayv1.Gateway
	var rs []*gatewayv1.HTTPRoute
	for i, d := range strings.Split(docs, "\n---\n") {
		var head struct{ Kind string }
		if err := yaml.Unmarshal([]byte(d), &head); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		switch head.Kind {
		case "Gateway":
			g := new(gatewayv1.Gateway)
			if err := yaml.UnmarshalStrict([]byte(d), g); err != nil {
				t.Fatalf("document %d: %v", i, err)
			}
			gws = append(gws, g)
		case "HTTPRoute":
			r := new(gatewayv1.HTTPRoute)
			if err := yaml.UnmarshalStrict([]byte(d), r); err != nil {
				t.Fatalf("document %d: %v", i, err)
			}
			r.CreationTimestamp = metav1.NewTime(time.Unix(int64(i), 0))
			if r.Namespace == "" {
				r.Namespace = "default"
			}
			rs = append(rs, r)
		default:
			t.Fatalf("document %d: kind %q", i, head.Kind)
		}
	}
	return gws, rs
}

const edgeGateway = `kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: any
  listeners:
    - {name: web, port: 80, protocol: HTTP, hostname: "*.example.com"}
    - {name: plain, port: 8080, protocol: HTTP}`

// namedBackends starts one backend per service name answering its name,
// and returns the endpoints function of them.
func namedBackends(t *testing.T, names ...string) (*endpointSet, map[string]*backend) {
	t.Helper()
	eps := &endpointSet{}
	bs := map[string]*backend{}
	for i, n := range names {
		b := startBackend(t, fmt.Sprintf("127.0.5.%d", i+1), func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, n) })
		eps.set(n, b.addr)
		bs[n] = b
	}
	return eps, bs
}

func TestHTTPRouteMatchPrecedence(t *testing.T) {
	eps, _ := namedBackends(t, "exact", "long", "short", "method", "headers", "query", "regex", "old", "young", "wild", "exacthost", "any")
	gws, rs := gatewayObjects(t, edgeGateway+`
---
kind: HTTPRoute
metadata: {name: old}
spec:
  parentRefs: [{name: edge, sectionName: web}]
  hostnames: [shop.example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /tie}}]
      backendRefs: [{name: old, port: 80}]
    - matches: [{path: {type: Exact, value: /v1/items}}]
      backendRefs: [{name: exact, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /v1/}}]
      backendRefs: [{name: short, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /v1/items}}]
      backendRefs: [{name: long, port: 80}]
    - matches: [{path: {value: /m}, method: DELETE}]
      backendRefs: [{name: method, port: 80}]
    - matches:
        - path: {value: /m}
          headers: [{name: x-a, value: "1"}, {name: X-B, value: "2"}]
      backendRefs: [{name: headers, port: 80}]
    - matches:
        - path: {value: /m}
          queryParams: [{name: q, value: "yes"}]
      backendRefs: [{name: query, port: 80}]
    - matches: [{path: {type: RegularExpression, value: "/img/[0-9]+\\.png"}}]
      backendRefs: [{name: regex, port: 80}]
---
kind: HTTPRoute
metadata: {name: young}
spec:
  parentRefs: [{name: edge}]
  hostnames: [shop.example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /tie}}]
      backendRefs: [{name: young, port: 80}]
---
kind: HTTPRoute
metadata: {name: wild}
spec:
  parentRefs: [{name: edge, sectionName: web}]
  rules:
    - backendRefs: [{name: wild, port: 80}]
---
kind: HTTPRoute
metadata: {name: exacthost}
spec:
  parentRefs: [{name: edge, sectionName: web}]
  hostnames: ["*.shop.example.com", "api.example.com"]
  rules:
    - backendRefs: [{name: exacthost, port: 80}]
---
kind: HTTPRoute
metadata: {name: any}
spec:
  parentRefs: [{name: edge, port: 8080}]
  rules:
    - matches: [{path: {type: Exact, value: /only}}]
      backendRefs: [{name: any, port: 80}]`)
	h := New(Config{Endpoints: eps.get})
	t.Cleanup(h.CloseIdleConnections)
	if err := h.UpdateRoutes(gws, rs); err != nil {
		t.Fatal(err)
	}
	url, c := front(t, h)
	tests := []struct {
		name, method, host, target string
		headers                    map[string]string
		want                       string // backend name, or a status
	}{
		{name: "exact beats prefix", host: "shop.example.com", target: "/v1/items", want: "exact"},
		{name: "longest prefix", host: "shop.example.com", target: "/v1/items/7", want: "long"},
		{name: "prefix is per path element", host: "shop.example.com", target: "/v1/itemsx", want: "short"},
		{name: "trailing slash of a prefix is ignored", host: "shop.example.com", target: "/v1", want: "short"},
		{name: "method beats headers", method: "DELETE", host: "shop.example.com", target: "/m", headers: map[string]string{"X-A": "1", "X-B": "2"}, want: "method"},
		{name: "more headers beat query", host: "shop.example.com", target: "/m?q=yes", headers: map[string]string{"x-a": "1", "x-b": "2"}, want: "headers"},
		{name: "header value is exact", host: "shop.example.com", target: "/m?q=yes", headers: map[string]string{"x-a": "1", "x-b": "3"}, want: "query"},
		{name: "nothing else matches: wildcard route", host: "shop.example.com", target: "/m?q=no", want: "wild"},
		{name: "regular expression", host: "shop.example.com", target: "/img/42.png", want: "regex"},
		{name: "regular expression is anchored", host: "shop.example.com", target: "/img/42.png.bak", want: "wild"},
		{name: "oldest route wins a tie", host: "shop.example.com", target: "/tie/x", want: "old"},
		{name: "exact route hostname", host: "api.example.com:8080", target: "/anything", want: "exacthost"},
		{name: "route wildcard hostname", host: "eu.shop.example.com", target: "/", want: "exacthost"},
		{name: "listener wildcard, two labels", host: "a.b.example.com", target: "/", want: "wild"},
		{name: "listener without hostname", host: "other.test", target: "/only", want: "any"},
		{name: "no match", host: "other.test", target: "/other", want: "404"},
		{name: "listener wildcard does not cover the parent", host: "example.com", target: "/", want: "404"},
		{name: "dot elements are resolved first", host: "shop.example.com", target: "/v1/x/../items", want: "exact"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(cmpOr(tt.method, "GET"), url+tt.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tt.host
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := string(body)
			if resp.StatusCode != 200 {
				got = fmt.Sprint(resp.StatusCode)
			}
			if got != tt.want {
				t.Fatalf("%s %s%s went to %q, want %q", req.Method, tt.host, tt.target, got, tt.want)
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestHTTPRouteWeights(t *testing.T) {
	eps, _ := namedBackends(t, "a", "b", "c")
	gws, rs := gatewayObjects(t, edgeGateway+`
---
kind: HTTPRoute
metadata: {name: split}
spec:
  parentRefs: [{name: edge}]
  hostnames: [split.example.com]
  rules:
    - backendRefs:
        - {name: a, port: 80, weight: 3}
        - {name: b, port: 80}
        - {name: c, port: 80, weight: 0}
    - matches: [{path: {value: /zero}}]
      backendRefs:
        - {name: a, port: 80, weight: 0}
        - {name: b, port: 80, weight: 0}
    - matches: [{path: {value: /none}}]
    - matches: [{path: {value: /empty}}]
      backendRefs: [{name: nobody, port: 80}]`)
	h := New(Config{Endpoints: eps.get})
	t.Cleanup(h.CloseIdleConnections)
	if err := h.UpdateRoutes(gws, rs); err != nil {
		t.Fatal(err)
	}
	url, c := front(t, h)
	counts := map[string]int{}
	for range 40 {
		code, body := do(t, c, "GET", url+"/", "split.example.com", nil)
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		counts[body]++
	}
	if counts["a"] != 30 || counts["b"] != 10 || counts["c"] != 0 {
		t.Errorf("40 requests over weights 3:1:0 went %v, want a:30 b:10", counts)
	}
	for _, tt := range []struct {
		path string
		want int
	}{{"/zero", 500}, {"/none", 500}, {"/empty", 503}} {
		if code, _ := do(t, c, "GET", url+tt.path, "split.example.com", nil); code != tt.want {
			t.Errorf("%s: status %d, want %d", tt.path, code, tt.want)
		}
	}
}

func TestHTTPRouteFilters(t *testing.T) {
	eps := &endpointSet{}
	b := startBackend(t, "127.0.5.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "backend")
		w.Header().Set("X-Internal", "secret")
		fmt.Fprintf(w, "%s %s a=%q b=%v gone=%q", r.Host, r.URL.RequestURI(), r.Header.Get("X-A"), r.Header.Values("X-B"), r.Header.Get("X-Gone"))
	})
	eps.set("web", b.addr)
	gws, rs := gatewayObjects(t, edgeGateway+`
---
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: edge}]
  hostnames: [web.example.com]
  rules:
    - matches: [{path: {value: /api}}]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: X-A, value: set}]
            add: [{name: X-B, value: added}]
            remove: [X-Gone]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            set: [{name: Server, value: edge}]
            remove: [X-Internal]
        - type: URLRewrite
          urlRewrite:
            hostname: internal.web
            path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}
      backendRefs:
        - name: web
          port: 80
          filters:
            - type: ResponseHeaderModifier
              responseHeaderModifier:
                add: [{name: X-Backend, value: web}]
    - matches: [{path: {type: Exact, value: /old}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}, statusCode: 301}
    - matches: [{path: {value: /docs}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {scheme: https, hostname: docs.example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}`)
	h := New(Config{Endpoints: eps.get})
	t.Cleanup(h.CloseIdleConnections)
	if err := h.UpdateRoutes(gws, rs); err != nil {
		t.Fatal(err)
	}
	url, c := front(t, h)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	_, port, _ := strings.Cut(strings.TrimPrefix(url, "http://"), ":")

	req, _ := http.NewRequest("GET", url+"/api/items?x=1", nil)
	req.Host = "web.example.com"
	req.Header.Set("X-A", "client")
	req.Header.Set("X-B", "client")
	req.Header.Set("X-Gone", "client")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `internal.web /v2/items?x=1 a="set" b=[client added] gone=""`; string(body) != want {
		t.Errorf("backend saw %q, want %q", body, want)
	}
	if resp.Header.Get("Server") != "edge" || resp.Header.Get("X-Internal") != "" || resp.Header.Get("X-Backend") != "web" {
		t.Errorf("response headers %v: want Server edge, no X-Internal, X-Backend web", resp.Header)
	}

	for _, tt := range []struct {
		target, wantLoc string
		wantCode        int
	}{
		{"/old?a=b", "http://web.example.com:" + port + "/new?a=b", 301},
		{"/docs/guide", "https://docs.example.com/guide", 302},
		{"/docs", "https://docs.example.com/", 302},
	} {
		req, _ := http.NewRequest("GET", url+tt.target, nil)
		req.Host = "web.example.com:" + port
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.wantCode || resp.Header.Get("Location") != tt.wantLoc {
			t.Errorf("%s: %d Location %q, want %d %q", tt.target, resp.StatusCode, resp.Header.Get("Location"), tt.wantCode, tt.wantLoc)
		}
	}
	if n := b.count(); n != 1 {
		t.Errorf("backend got %d requests, want 1 (redirects never reach it)", n)
	}
}

func TestHTTPRouteTimeouts(t *testing.T) {
	eps := &endpointSet{}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	// The backend answers /slow only when the proxy gives up on it (its
	// request context ends) or the test ends.
	b := startBackend(t, "127.0.5.1", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/slow") {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		io.WriteString(w, "fast")
	})
	eps.set("web", b.addr)
	gws, rs := gatewayObjects(t, edgeGateway+`
---
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: edge}]
  hostnames: [web.example.com]
  rules:
    - matches: [{path: {value: /slow/request}}, {path: {value: /fast/request}}]
      timeouts: {request: 200ms}
      backendRefs: [{name: web, port: 80}]
    - matches: [{path: {value: /slow/backend}}]
      timeouts: {request: 1h, backendRequest: 200ms}
      backendRefs: [{name: web, port: 80}]`)
	h := New(Config{Endpoints: eps.get})
	t.Cleanup(h.CloseIdleConnections)
	if err := h.UpdateRoutes(gws, rs); err != nil {
		t.Fatal(err)
	}
	url, c := front(t, h)
	for _, tt := range []struct {
		path string
		want int
	}{{"/slow/request", 504}, {"/slow/backend", 504}, {"/fast/request", 200}} {
		t.Run(tt.path, func(t *testing.T) {
			if code, body := do(t, c, "GET", url+tt.path, "web.example.com", nil); code != tt.want {
				t.Fatalf("status %d (%q), want %d", code, body, tt.want)
			}
		})
	}
}

func TestUpdateRoutesRejects(t *testing.T) {
	tests := []struct {
		name, rule string
		wantField  string
	}{
		{"regex that does not compile", `matches: [{path: {type: RegularExpression, value: "(["}}]`, "spec.rules[0].matches[0].path.value"},
		{"relative path", `matches: [{path: {type: Exact, value: "x"}}]`, "spec.rules[0].matches[0].path.value"},
		{"unsupported filter", `filters: [{type: RequestMirror, requestMirror: {backendRef: {name: web, port: 80}}}]`, "spec.rules[0].filters[0].type"},
		{"backend without port", `backendRefs: [{name: web}]`, "spec.rules[0].backendRefs[0].port"},
		{"backend of another kind", `backendRefs: [{group: example.com, kind: Bucket, name: b}]`, "spec.rules[0].backendRefs[0]"},
		{"bad duration", `timeouts: {request: 1.5s}`, "spec.rules[0].timeouts.request"},
		{"backend timeout above request", `timeouts: {request: 1s, backendRequest: 2s}`, "spec.rules[0].timeouts.backendRequest"},
		{"experimental retry", `retry: {attempts: 2}`, "spec.rules[0].retry"},
		{"prefix rewrite of an exact match", `matches: [{path: {type: Exact, value: /a}}]
      filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]`, "spec.rules[0].filters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gws, rs := gatewayObjects(t, edgeGateway+`
---
kind: HTTPRoute
metadata: {name: bad}
spec:
  parentRefs: [{name: edge}]
  rules:
    - `+tt.rule)
			h := New(Config{})
			err := h.UpdateRoutes(gws, rs)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField || fe.Kind != "HTTPRoute" || fe.Name != "bad" {
				t.Fatalf("got %v, want a FieldError on HTTPRoute bad field %s", err, tt.wantField)
			}
			if !strings.HasPrefix(err.Error(), "ingress: HTTPRoute default/bad: "+tt.wantField+": ") {
				t.Errorf("message %q does not name kind, object and field", err)
			}
			if len(h.HTTPRoutes()) != 0 {
				t.Errorf("an invalid update changed the table")
			}
		})
	}
}

func TestHTTPRoutesListing(t *testing.T) {
	gws, rs := gatewayObjects(t, edgeGateway+`
---
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: edge}]
  hostnames: [web.example.com]
  rules:
    - matches: [{path: {type: Exact, value: /a}, method: GET}]
      backendRefs: [{name: web, port: 80, weight: 2}]
---
kind: HTTPRoute
metadata: {name: stray}
spec:
  parentRefs: [{name: nowhere}]
  rules:
    - backendRefs: [{name: web, port: 80}]`)
	h := New(Config{})
	if err := h.UpdateRoutes(gws, rs); err != nil {
		t.Fatal(err)
	}
	got := h.HTTPRoutes()
	want := HTTPRouteEntry{Namespace: "default", Name: "web", Hostname: "web.example.com", MatchText: "Exact /a GET",
		Backends: []WeightedBackend{{Backend: Backend{Namespace: "default", Service: "web", Port: backendPort(80)}, Weight: 2}}}
	// The listener without a hostname gives the route its own hostname
	// once more; the stray route attaches nowhere.
	if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Fatalf("HTTPRoutes() = %+v, want [%+v]", got, want)
	}
}

func backendPort(n int32) networkingv1.ServiceBackendPort {
	return networkingv1.ServiceBackendPort{Number: n}
}

// FuzzUpdateRoutes feeds arbitrary HTTPRoutes to UpdateRoutes and matches
// requests against what it accepts: neither may panic, and a rejection
// is always a FieldError.
func FuzzUpdateRoutes(f *testing.F) {
	f.Add([]byte(`spec: {parentRefs: [{name: edge}], rules: [{matches: [{path: {type: RegularExpression, value: "/a.*"}}], backendRefs: [{name: web, port: 80}]}]}`))
	f.Add([]byte(`spec: {parentRefs: [{name: edge}], hostnames: ["*.example.com"], rules: [{filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}], backendRefs: [{name: web, port: 80, weight: 0}]}]}`))
	f.Add([]byte(`spec: {parentRefs: [{name: edge}], rules: [{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 301}}], timeouts: {request: 1s}}]}`))
	gws, _ := gatewayObjects(f, edgeGateway)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := new(gatewayv1.HTTPRoute)
		if yaml.Unmarshal(data, r) != nil {
			return
		}
		r.Namespace, r.Name = "default", "fuzz"
		h := New(Config{})
		if err := h.UpdateRoutes(gws, []*gatewayv1.HTTPRoute{r}); err != nil {
			if _, ok := errors.AsType[*FieldError](err); !ok {
				t.Fatalf("rejection %v is not a FieldError", err)
			}
			return
		}
		for _, target := range []string{"/", "/a/b?x=1", "/%2e%2e/x"} {
			req, _ := http.NewRequest("GET", "http://x"+target, nil)
			for _, host := range []string{"web.example.com", "a.b.example.com", "other"} {
				req.Host = host
				// Without endpoints nothing is proxied: redirects, 500s
				// and 503s are written here.
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		}
	})
}
