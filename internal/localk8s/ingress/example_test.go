package ingress_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shoal-dev/shoal/internal/localk8s/ingress"
)

func ExampleHandler() {
	// A pod of Service "web".
	ln, err := net.Listen("tcp", "127.0.4.1:0")
	if err != nil {
		panic(err)
	}
	pod := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "web got %s for %s", r.URL.Path, r.Host)
	})}
	go pod.Serve(ln)
	defer pod.Close()
	podAddr := ln.Addr().(*net.TCPAddr).AddrPort()

	h := ingress.New(ingress.Config{
		Endpoints: func(b ingress.Backend) []netip.AddrPort {
			if b.Service == "web" {
				return []netip.AddrPort{podAddr}
			}
			return nil
		},
	})
	prefix := networkingv1.PathTypePrefix
	err = h.Update([]*networkingv1.Ingress{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "web.localhost",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &prefix,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http"},
					}},
				}},
			}},
		}}},
	}})
	if err != nil {
		panic(err)
	}
	for _, r := range h.Routes() {
		fmt.Println(r.Host, r.Path, r.PathType, "->", r.Backend)
	}

	srv, err := ingress.Listen(netip.MustParseAddrPort("127.0.0.1:0"), h, nil)
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()

	for _, host := range []string{"web.localhost", "other.localhost"} {
		req, _ := http.NewRequest("GET", "http://"+srv.Addr().String()+"/hello", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s: %d %s\n", host, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	http.DefaultClient.CloseIdleConnections()
	srv.Shutdown(context.Background())
	fmt.Println(<-done)
	// Output:
	// web.localhost / Prefix -> default/web:http
	// web.localhost: 200 web got /hello for web.localhost
	// other.localhost: 404 default backend - 404
	// http: Server closed
}

func ExampleHandler_UpdateRoutes() {
	// Two pods: "stable" and "canary" of the Services of those names.
	pods := map[string]netip.AddrPort{}
	for i, name := range []string{"stable", "canary"} {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.4.%d:0", i+2))
		if err != nil {
			panic(err)
		}
		pod := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s got %s", name, r.URL.Path)
		})}
		go pod.Serve(ln)
		defer pod.Close()
		pods[name] = ln.Addr().(*net.TCPAddr).AddrPort()
	}
	h := ingress.New(ingress.Config{Endpoints: func(b ingress.Backend) []netip.AddrPort {
		return []netip.AddrPort{pods[b.Service]}
	}})
	defer h.CloseIdleConnections()

	port := func(n int32) *gatewayv1.PortNumber { return &n }
	weight := func(n int32) *int32 { return &n }
	gw := &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "edge"},
		Spec: gatewayv1.GatewaySpec{GatewayClassName: "any", Listeners: []gatewayv1.Listener{
			{Name: "http", Port: 80, Protocol: gatewayv1.HTTPProtocolType},
		}},
	}
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "edge"}}},
			Hostnames:       []gatewayv1.Hostname{"web.localhost"},
			Rules: []gatewayv1.HTTPRouteRule{{
				// Three requests in four to stable, one to canary.
				BackendRefs: []gatewayv1.HTTPBackendRef{
					{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: "stable", Port: port(80)}, Weight: weight(3)}},
					{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: "canary", Port: port(80)}, Weight: weight(1)}},
				},
			}},
		},
	}
	if err := h.UpdateRoutes([]*gatewayv1.Gateway{gw}, []*gatewayv1.HTTPRoute{route}); err != nil {
		panic(err)
	}
	for _, e := range h.HTTPRoutes() {
		fmt.Println(e.Hostname, e.MatchText, "->", e.Backends)
	}

	srv, err := ingress.Listen(netip.MustParseAddrPort("127.0.0.1:0"), h, nil)
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	for range 4 {
		req, _ := http.NewRequest("GET", "http://"+srv.Addr().String()+"/hello", nil)
		req.Host = "web.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}
	http.DefaultClient.CloseIdleConnections()
	srv.Shutdown(context.Background())
	<-done
	// Output:
	// web.localhost PathPrefix / -> [default/stable:80 weight=3 default/canary:80 weight=1]
	// stable got /hello
	// stable got /hello
	// stable got /hello
	// canary got /hello
}
