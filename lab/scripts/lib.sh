# Shared settings of the lab scripts; sourced, never run.
# shellcheck shell=bash

LAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
# Prometheus v3 is built in the same module as Kubernetes (k8s/go.mod):
# module version v0.3MM.P is Prometheus v3.MM.P.
PROMETHEUS_MODULE=v0.316.0
PROMETHEUS_VERSION=v3.16.0
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
# kube-proxy's mode at lab-up: iptables (the default) or nftables. A running
# lab records its mode in $PROXY_MODE_FILE; scripts/proxy-mode.sh switches it.
LAB_PROXY_MODE="${LAB_PROXY_MODE:-iptables}"
PROXY_MODE_FILE="$LAB_DIR/proxy-mode"

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

# Heavy builds share the machine: low priority (LAB_NICE, default 10; CI
# sets 0, since on a CI machine the job's own build is the work that must
# finish, and at 10 it got a tenth of the CPU of each other job running),
# two jobs at most.
export GOMAXPROCS="${GOMAXPROCS:-2}"
export GONOSUMDB="${GONOSUMDB:-k8s.io,sigs.k8s.io}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
NICE=(nice -n "${LAB_NICE:-10}")

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

# start NAME CMD...: starts CMD in its own session unless NAME already runs,
# logging to $LOG_DIR/NAME.log and recording its PID.
running() { [[ -f "$PID_DIR/$1.pid" ]] && kill -0 "$(cat "$PID_DIR/$1.pid")" 2>/dev/null; }
start() {
  local name="$1"; shift
  if running "$name"; then
    log "$name: already running (pid $(cat "$PID_DIR/$name.pid"))"
    return
  fi
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! > "$PID_DIR/$name.pid"
  log "$name: started (pid $!, log $LOG_DIR/$name.log)"
}

# start_kube_proxy MODE: kube-proxy in iptables or nftables mode, bound to the
# node address, its mode recorded for the tests.
start_kube_proxy() {
  local mode="$1"
  case "$mode" in iptables|nftables) ;; *) die "kube-proxy mode $mode: want iptables or nftables" ;; esac
  if running kube-proxy; then
    log "kube-proxy: already running in $(cat "$PROXY_MODE_FILE" 2>/dev/null || echo iptables) mode"
    return
  fi
  start kube-proxy "$K8S_BIN/kube-proxy" --kubeconfig="$LAB_DIR/kube-proxy.kubeconfig" \
    --proxy-mode="$mode" --cluster-cidr="$CLUSTER_CIDR" --hostname-override="$NODE_NAME" \
    --bind-address="$NODE_IP" --healthz-bind-address="$NODE_IP:10256" \
    --metrics-bind-address="$NODE_IP:10249" --nodeport-addresses="$NODE_IP/32" \
    --conntrack-max-per-core=0 --v=1
  echo "$mode" > "$PROXY_MODE_FILE"
}

kc() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
