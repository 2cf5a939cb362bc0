package ingress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Builders of Ingress objects for tables of tests.

func ingress(name string, rules ...networkingv1.IngressRule) *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       networkingv1.IngressSpec{Rules: rules},
	}
}

func withDefault(ing *networkingv1.Ingress, svc string) *networkingv1.Ingress {
	ing.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
		Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80},
	}}
	return ing
}

func withAnnotations(ing *networkingv1.Ingress, kv ...string) *networkingv1.Ingress {
	if ing.Annotations == nil {
		ing.Annotations = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		ing.Annotations[kv[i]] = kv[i+1]
	}
	return ing
}

func rule(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
	return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{
		HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths},
	}}
}

func path(p string, pt networkingv1.PathType, svc string) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: p, PathType: &pt, Backend: networkingv1.IngressBackend{
		Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}},
	}}
}

const (
	exact  = networkingv1.PathTypeExact
	prefix = networkingv1.PathTypePrefix
	implsp = networkingv1.PathTypeImplementationSpecific
)

// endpointSet is a concurrency-safe Config.Endpoints for tests.
type endpointSet struct {
	mu sync.Mutex
	m  map[string][]netip.AddrPort // by service name
}

func (e *endpointSet) set(svc string, eps ...netip.AddrPort) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string][]netip.AddrPort{}
	}
	e.m[svc] = eps
}

func (e *endpointSet) get(b Backend) []netip.AddrPort {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m[b.Service]
}

// backend is an HTTP server on a loopback address standing for a pod.
type backend struct {
	name string
	addr netip.AddrPort
	mu   sync.Mutex
	reqs []*http.Request // with bodies read into bodies
	body []string
}

// startBackend serves h (nil: answer 200 with the backend's name) on ip,
// recording every request, until the test ends.
func startBackend(t testing.TB, ip string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{}
	b.addr = serveOn(t, ip, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.reqs = append(b.reqs, r)
		b.body = append(b.body, string(body))
		b.mu.Unlock()
		w.Header().Set("X-Served-By", b.name)
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, b.name)
	}))
	b.name = b.addr.String()
	return b
}

// serveOn serves h on a port of ip chosen by the system until the test
// ends.
func serveOn(t testing.TB, ip string, h http.Handler) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func (b *backend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reqs)
}

// refusing returns an address on ip where nothing listens.
func refusing(t testing.TB, ip string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return a
}

// front serves h on 127.0.0.1 with the package's Server until the test
// ends, and returns its base URL and a keep-alive client of it.
func front(t testing.TB, h *Handler) (string, *http.Client) {
	t.Helper()
	s, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return "http://" + s.Addr().String(), &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// do sends one request and returns the status and body.
func do(t testing.TB, c *http.Client, method, url, host string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

var corev1TypedLocalObjectReference = corev1.TypedLocalObjectReference{Kind: "StorageBucket", Name: "b"}
