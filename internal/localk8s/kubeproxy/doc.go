// Package kubeproxy is the front door of a ClusterIP Service: a TCP proxy on
// the Service's address that sends each new connection to one ready
// endpoint chosen uniformly at random, as kube-proxy does in iptables mode.
//
// kube-proxy's iptables rules pick an endpoint with the statistic module in
// random mode when a connection's first packet arrives; conntrack then pins
// the connection to that endpoint for its lifetime. The proxy keeps those
// semantics:
//
//   - Balancing is per connection, not per request: a keep-alive or HTTP/2
//     client stays on the endpoint it first reached.
//   - Changing the endpoint set ([Proxy.SetEndpoints]) affects new
//     connections only; established ones keep flowing, even to an endpoint
//     that has left the set.
//   - With no ready endpoints a connection is reset at once, the closest a
//     user-space proxy comes to kube-proxy's REJECT rule.
//   - There is no retry: if the chosen endpoint refuses, the client's
//     connection is reset, as the DNATed SYN would have been.
//
// Bytes are copied both ways (with splice(2) where the kernel offers it)
// and half-closes are passed on, so protocols that shut down their write
// side and keep reading work through the proxy.
package kubeproxy
