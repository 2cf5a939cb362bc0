package main

import (
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// clients stands for n independent keep-alive clients of a Service, each
// holding one connection, with the requests dealt to them in turn. One
// shared http.Transport would not do: it reuses its most recently used idle
// connection first, so at a modest rate a few of its connections carry
// nearly every request, and the spread would measure the pool, not the
// connections' placement.
type clients struct {
	transports []*http.Transport
	next       atomic.Uint64
}

var _ http.RoundTripper = (*clients)(nil)

func newClients(n int) *clients {
	c := &clients{transports: make([]*http.Transport, n)}
	for i := range c.transports {
		c.transports[i] = &http.Transport{
			// No proxy from the environment: traffic stays on loopback.
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1,
			MaxIdleConnsPerHost: 1,
			MaxConnsPerHost:     1,
			IdleConnTimeout:     5 * time.Minute,
			DisableCompression:  true,
		}
	}
	return c
}

// RoundTrip sends r on the next client's connection.
func (c *clients) RoundTrip(r *http.Request) (*http.Response, error) {
	i := (c.next.Add(1) - 1) % uint64(len(c.transports))
	return c.transports[i].RoundTrip(r)
}

// Close closes every client's idle connection.
func (c *clients) Close() {
	for _, t := range c.transports {
		t.CloseIdleConnections()
	}
}
