package clusterdns

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// ResolvConf renders the resolv.conf of a pod in namespace, as the kubelet
// writes it for dnsPolicy ClusterFirst: server is the only nameserver, and
// the search list with ndots:5 makes SERVICE and SERVICE.NAMESPACE resolve
// to SERVICE.NAMESPACE.svc.DOMAIN. An empty domain is DefaultDomain.
func ResolvConf(namespace string, server netip.Addr, domain string) []byte {
	if domain == "" {
		domain = DefaultDomain
	}
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	return fmt.Appendf(nil, "nameserver %s\nsearch %s.svc.%s svc.%s %s\noptions ndots:5\n",
		server.Unmap(), strings.ToLower(namespace), domain, domain, domain)
}

// readNameservers returns the nameservers of a resolv.conf file as
// host:port.
func readNameservers(path string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("clusterdns: read nameservers: %w", err)
	}
	if len(cc.Servers) == 0 {
		return nil, fmt.Errorf("clusterdns: read nameservers: %s lists none", path)
	}
	port := cc.Port
	if port == "" {
		port = "53"
	}
	out := make([]string, 0, len(cc.Servers))
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, port))
	}
	return out, nil
}
