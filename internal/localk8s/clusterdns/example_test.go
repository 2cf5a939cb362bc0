package clusterdns_test

import (
	"fmt"
	"log"
	"net/netip"
	"os"

	"github.com/miekg/dns"
	"github.com/shoal-dev/shoal/internal/localk8s/clusterdns"
)

func Example() {
	srv, err := clusterdns.Start(clusterdns.Config{
		Addr:      "127.0.0.1:0", // shoal up serves 127.0.2.10:53
		Upstreams: []string{},    // no forwarding in this example
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.Update(clusterdns.Table{
		{Namespace: "default", Service: "thumbnailer"}: {
			Addrs: []netip.Addr{netip.MustParseAddr("127.0.2.11")},
			Ports: []clusterdns.Port{{Name: "http", Protocol: "TCP", Port: 80}},
		},
	})

	req := new(dns.Msg)
	req.SetQuestion("_http._tcp.thumbnailer.default.svc.cluster.local.", dns.TypeSRV)
	resp, err := dns.Exchange(req, srv.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Answer[0])
	fmt.Println(resp.Extra[0])
	// Output:
	// _http._tcp.thumbnailer.default.svc.cluster.local.	5	IN	SRV	0 100 80 thumbnailer.default.svc.cluster.local.
	// thumbnailer.default.svc.cluster.local.	5	IN	A	127.0.2.11
}

func ExampleResolvConf() {
	os.Stdout.Write(clusterdns.ResolvConf("shop", netip.MustParseAddr("127.0.2.10"), ""))
	// Output:
	// nameserver 127.0.2.10
	// search shop.svc.cluster.local svc.cluster.local cluster.local
	// options ndots:5
}
