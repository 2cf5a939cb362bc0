// Command labdns resolves a name through one DNS server and prints the
// addresses, to check that the lab's cluster DNS answers.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"
)

func main() {
	server := flag.String("server", "10.96.0.10:53", "DNS server address")
	host := flag.String("name", "kubernetes.default.svc.cluster.local", "name to resolve")
	timeout := flag.Duration("timeout", 3*time.Second, "time limit of the query")
	flag.Parse()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, *server)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	addrs, err := r.LookupHost(ctx, *host)
	if err != nil {
		slog.Error("labdns: lookup failed", "name", *host, "server", *server, "err", err)
		os.Exit(1)
	}
	for _, a := range addrs {
		fmt.Println(a)
	}
}
