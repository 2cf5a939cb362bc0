package kubeproxy

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"
)

func BenchmarkPick(b *testing.B) {
	p, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), Config{Rand: rand.New(rand.NewPCG(1, 1))})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	eps := make([]netip.AddrPort, 10)
	for i := range eps {
		eps[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 2)}), 8080)
	}
	p.SetEndpoints(eps)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := p.pick(); !ok {
			b.Fatal("no pick")
		}
	}
}

// echoFixed answers every 64-byte message with itself.
func echoFixed(_ *backend, c net.Conn) {
	buf := make([]byte, 64)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// BenchmarkRoundTrip sends 64-byte messages over one established
// connection, directly to the backend and through the proxy.
func BenchmarkRoundTrip(b *testing.B) {
	be := startBackend(b, "127.0.3.1", echoFixed)
	p := startProxy(b, Config{})
	p.SetEndpoints([]netip.AddrPort{be.addr})
	for _, tt := range []struct {
		name string
		addr netip.AddrPort
	}{{"direct", be.addr}, {"proxied", p.Addr()}} {
		b.Run(tt.name, func(b *testing.B) {
			c, err := net.DialTimeout("tcp", tt.addr.String(), 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := make([]byte, 64)
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkConnect opens a new connection per operation and reads the
// backend's greeting to its end: the proxy's per-connection cost (accept,
// pick, dial, two copies).
func BenchmarkConnect(b *testing.B) {
	be := startBackend(b, "127.0.3.1", greet)
	p := startProxy(b, Config{})
	p.SetEndpoints([]netip.AddrPort{be.addr})
	for _, tt := range []struct {
		name string
		addr netip.AddrPort
	}{{"direct", be.addr}, {"proxied", p.Addr()}} {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				c, err := net.DialTimeout("tcp", tt.addr.String(), 10*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, c); err != nil || n == 0 {
					b.Fatal(fmt.Sprint("read greeting: ", n, err))
				}
				c.Close()
			}
		})
	}
}
