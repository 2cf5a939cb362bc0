package loadgen

import (
	"context"
	"net"
	"strings"
)

// loopbackIPs are where "localhost" and its subdomains lead, IPv4 first as
// curl tries them.
var loopbackIPs = []string{"127.0.0.1", "::1"}

// isLocalhost reports whether host is "localhost" or a name under it,
// which RFC 6761 (section 6.3) reserves for the loopback interface. Browsers
// and curl send such names there without asking DNS; Go's resolver asks,
// and most resolvers know only "localhost" itself.
func isLocalhost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// dialLoopback wraps dial so that "localhost" and "*.localhost" reach the
// loopback interface, as browsers and curl do: 127.0.0.1, then ::1. The
// request is not changed, so its Host header (and TLS server name) keep the
// name; that is how an Ingress on 127.0.0.1 tells gallery.localhost from
// other hosts. Other addresses go to dial unchanged.
func dialLoopback(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || !isLocalhost(host) {
			return dial(ctx, network, addr)
		}
		var first error
		for _, ip := range loopbackIPs {
			c, err := dial(ctx, network, net.JoinHostPort(ip, port))
			if err == nil {
				return c, nil
			}
			if first == nil {
				first = err
			}
			if ctx.Err() != nil {
				break
			}
		}
		// The IPv4 error: where the target is expected, and the one that
		// names the refusal or timeout the report counts.
		return nil, first
	}
}
