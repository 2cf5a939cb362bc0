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
