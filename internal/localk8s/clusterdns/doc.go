// Package clusterdns is the DNS server of shoal up: it answers Kubernetes
// Service names from an in-memory table the way CoreDNS's kubernetes plugin
// does, and forwards every other name to the host's resolvers.
//
// Names follow the Kubernetes DNS specification:
//
//   - SERVICE.NS.svc.DOMAIN: A/AAAA with the ClusterIP, or with each ready
//     pod IP of a headless Service;
//   - _PORT._PROTO.SERVICE.NS.svc.DOMAIN: SRV for the named port;
//   - HOST.SERVICE.NS.svc.DOMAIN: one pod of a headless Service, HOST being
//     its IP with dashes (the SRV targets of a headless Service);
//   - A-B-C-D.NS.pod.DOMAIN: the address written in the name, as with
//     "pods insecure" in the default CoreDNS configuration;
//   - PTR for ClusterIPs and headless pod IPs.
//
// Unknown names under DOMAIN get NXDOMAIN with the zone's SOA in the
// authority section; existing names without records of the asked type get an
// empty NOERROR answer. Until the first Server.Update every name under DOMAIN
// gets SERVFAIL, which resolvers retry instead of caching.
//
// The short forms SERVICE and SERVICE.NS never reach the server as such: a
// pod's resolver expands them through the search list of the resolv.conf
// that ResolvConf renders.
package clusterdns
