# Shared settings of the lab scripts; sourced, never run.
# shellcheck shell=bash

LAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
# Where built binaries and image tarballs are kept, one folder per component
# version. Outside the clone, so that every clone on a machine shares one build.
LAB_CACHE="${LAB_CACHE:-/var/cache/shoal-lab}"
BIN_CACHE="$LAB_CACHE/bin"
K8S_BIN="$BIN_CACHE/kubernetes-$K8S_VERSION"
# Everything the running lab writes: configs, certs, logs, PIDs, state.
LAB_DIR="${LAB_DIR:-/var/lib/shoal-lab}"
RUN_DIR="$LAB_DIR/run"
PKI_DIR="$LAB_DIR/pki"
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"
KUBECONFIG_ADMIN="$LAB_DIR/admin.kubeconfig"

# Addresses the lab owns. Nothing outside these and loopback is ever a target.
NODE_NAME="${NODE_NAME:-shoal-lab}"
NODE_IF=lab0  # dummy (or bridge) interface holding the node address
NODE_IP=10.199.0.1
POD_CIDR=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
DNS_SVC_IP=10.96.0.10
CNI_BRIDGE=cni0
APISERVER_PORT=6443

# Heavy builds share the machine: low priority, two jobs at most.
export GOMAXPROCS="${GOMAXPROCS:-2}"
export GONOSUMDB="${GONOSUMDB:-k8s.io,sigs.k8s.io}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
NICE=(nice -n 10)

log() { printf '%s lab: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# now_s prints seconds since the epoch with millisecond precision.
now_s() { date +%s.%N | cut -c1-14; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN{printf "%.1f", b-a}'; }

# wait_for runs a command until it succeeds or the deadline (seconds) passes.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 1
  done
}

kc() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
