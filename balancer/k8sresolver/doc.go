// Package k8sresolver resolves a Kubernetes Service to the addresses of
// its ready pods by watching its discovery.k8s.io/v1 EndpointSlices, for
// use as a balancer.Resolver.
//
// It applies kube-proxy's rules: ready endpoints receive traffic;
// endpoints that are terminating but still serving receive it only when
// no ready endpoint is left. It lives apart from package balancer so that
// users of the balancer with static or DNS resolvers do not import
// client-go.
//
// The client needs RBAC permission to list and watch endpointslices in
// the Service's namespace.
package k8sresolver
