//go:build tools

// Package k8s records the commands the lab builds from this module, so that
// the module graph keeps every package they need.
package k8s

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
