// Package kubelet runs one Kubernetes pod's containers as local processes on
// the pod's own loopback IP, doing the kubelet's part of `shoal up`.
//
// A [Pod] is started from a [Config] holding the pod's metadata and its
// corev1.PodSpec. kubelet resolves each container's environment (literal
// values, the downward API, Secret and ConfigMap references, $(VAR)
// expansion), builds its argv the way Kubernetes combines command and args
// with an image's entrypoint, checks that the containerPorts are free on the
// pod IP, and starts the processes, each in its own process group.
//
// While the pod runs, kubelet probes its containers (startup, readiness and
// liveness probes over httpGet, tcpSocket, exec or grpc, with the kubelet's
// thresholds; a grpc probe calls grpc.health.v1.Health/Check with the
// probe's service name and passes on SERVING), restarts crashed or unhealthy containers according to the
// restartPolicy with the kubelet's exponential back-off, and reports status
// and events. [Pod.Terminate] does what the kubelet does when a pod is
// deleted: readiness drops at once, preStop hooks run, SIGTERM follows and
// SIGKILL comes when the termination grace period runs out.
//
// Containers do not inherit the environment of the process running them;
// they start with PATH and HOME only, plus HOST set to the pod IP so Shoal's
// services bind to it. When running as root and given a resolv.conf, each
// container runs in a private mount namespace in which that file is bind
// mounted over /etc/resolv.conf (this needs unshare(1) and mount(8) from
// util-linux and mount).
package kubelet
