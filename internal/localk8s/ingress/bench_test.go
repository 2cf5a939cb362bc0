package ingress

import (
	"io"
	"net/http"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
)

func BenchmarkMatch(b *testing.B) {
	h := New(Config{})
	if err := h.Update(fixture()); err != nil {
		b.Fatal(err)
	}
	t := h.table.Load()
	reqs := [][2]string{
		{"foo.example.com:8080", "/api/v2/items/42"},
		{"a.example.com", "/x"},
		{"other.org", "/any/thing"},
		{"foo.example.com", "/api"},
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := reqs[i%len(reqs)]
		if t.match(r[0], r[1]) == nil {
			b.Fatal("no route")
		}
		i++
	}
}

// BenchmarkProxy compares a small GET over a keep-alive connection sent
// directly to a backend with the same GET through the ingress (which adds
// a second hop, routing, and a pooled connection to two endpoints).
func BenchmarkProxy(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	be1, be2 := serveOn(b, "127.0.4.1", ok), serveOn(b, "127.0.4.2", ok)
	var eps endpointSet
	eps.set("web", be1, be2)
	h := New(Config{Endpoints: eps.get})
	if err := h.Update([]*networkingv1.Ingress{ingress("web", rule("web.example.com", path("/", prefix, "web")))}); err != nil {
		b.Fatal(err)
	}
	url, _ := front(b, h)
	for _, tt := range []struct {
		name, url string
	}{{"direct", "http://" + be1.String() + "/x"}, {"ingress", url + "/x"}} {
		run := func(b *testing.B, c *http.Client) {
			req, _ := http.NewRequest("GET", tt.url, nil)
			req.Host = "web.example.com"
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		b.Run(tt.name, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			b.ReportAllocs()
			for b.Loop() {
				run(b, c)
			}
		})
		b.Run(tt.name+"-parallel", func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			b.SetParallelism(4)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					run(b, c)
				}
			})
		})
	}
	h.CloseIdleConnections()
}
