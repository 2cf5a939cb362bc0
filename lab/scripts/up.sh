#!/usr/bin/env bash
# Brings up the single-node lab: builds what is missing, then starts etcd,
# the control plane, containerd, the kubelet, kube-proxy, CoreDNS,
# metrics-server, Prometheus and prometheus-adapter, each logging to
# $LOG_DIR and recorded in $PID_DIR. Idempotent: running parts are kept.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ "$(id -u)" -eq 0 ]] || die "lab-up needs root (network, mounts, containerd)"
T0="$(now_s)"
METRICS_SERVER_PORT=4443
ADAPTER_PORT=6445
PROM_ADDR="$NODE_IP:19090"
CTR_SOCK="$RUN_DIR/containerd/containerd.sock"

"$LAB_ROOT/scripts/deps.sh"
# LAB_SKIP_BUILD=1 runs with whatever is already built (parts not built are skipped).
if [[ "${LAB_SKIP_BUILD:-}" != 1 ]]; then
  t="$(now_s)"; "$LAB_ROOT/scripts/build.sh" all; log "build step: $(elapsed "$t")s"
fi
TOOLS="$BIN_CACHE/lab-tools"

mkdir -p "$RUN_DIR" "$LOG_DIR" "$PID_DIR" "$LAB_DIR"/{etcd,kubelet,cni/net.d,cni/networks,prometheus,images} "$RUN_DIR/containerd"

# render TEMPLATE OUT: replaces @NAME@ with the value of the shell variable.
render() {
  local text var
  text="$(cat "$1")"
  for var in LAB_DIR RUN_DIR PKI_DIR NODE_IP POD_CIDR DNS_SVC_IP CNI_BRIDGE APISERVER_PORT \
    METRICS_SERVER_PORT ADAPTER_PORT CA_BUNDLE KEDA_ADAPTER_PORT KEDA_CA_BUNDLE; do
    text="${text//@$var@/${!var:-}}"
  done
  printf '%s\n' "$text" > "$2"
}

# --- network: the lab's own node address, forwarding for pod->service->pod,
# and a guard that keeps pod traffic inside the lab.
if ! ip link show "$NODE_IF" >/dev/null 2>&1; then
  # A dummy interface where the kernel has the module, else an empty bridge:
  # either only holds the address and drops what is routed to it.
  ip link add "$NODE_IF" type dummy 2>/dev/null || ip link add "$NODE_IF" type bridge
  ip addr add "$NODE_IP/32" dev "$NODE_IF"
  ip link set "$NODE_IF" up
  # Service addresses never leave the machine, even before kube-proxy runs.
  ip route add "$SERVICE_CIDR" dev "$NODE_IF" src "$NODE_IP"
fi
[[ -f "$RUN_DIR/ip_forward.orig" ]] || cat /proc/sys/net/ipv4/ip_forward > "$RUN_DIR/ip_forward.orig"
echo 1 > /proc/sys/net/ipv4/ip_forward
[[ -f /proc/sys/net/bridge/bridge-nf-call-iptables ]] && echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
if ! iptables -w -L SHOAL-LAB -n >/dev/null 2>&1; then
  iptables -w -N SHOAL-LAB
  iptables -w -A SHOAL-LAB -i "$CNI_BRIDGE" -o "$CNI_BRIDGE" -j RETURN
  iptables -w -A SHOAL-LAB -i "$CNI_BRIDGE" -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
  iptables -w -A SHOAL-LAB -i "$CNI_BRIDGE" -j DROP
  iptables -w -I FORWARD 1 -j SHOAL-LAB
fi
echo "nameserver $DNS_SVC_IP" > "$LAB_DIR/resolv.conf"

"$LAB_ROOT/scripts/pki.sh"
CA_BUNDLE="$(base64 -w0 < "$PKI_DIR/ca.crt")"

# --- etcd
start etcd etcd --name "$NODE_NAME" --data-dir "$LAB_DIR/etcd" \
  --listen-client-urls "http://$NODE_IP:2379" --advertise-client-urls "http://$NODE_IP:2379" \
  --listen-peer-urls "http://$NODE_IP:2380" --initial-advertise-peer-urls "http://$NODE_IP:2380" \
  --initial-cluster "$NODE_NAME=http://$NODE_IP:2380" --listen-metrics-urls "http://$NODE_IP:2381"
wait_for "etcd health" 60 curl -fsS "http://$NODE_IP:2379/health"

# --- kube-apiserver, with the aggregation layer
start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --advertise-address="$NODE_IP" --bind-address="$NODE_IP" --secure-port="$APISERVER_PORT" \
  --etcd-servers="http://$NODE_IP:2379" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI_DIR/sa.pub" --service-account-signing-key-file="$PKI_DIR/sa.key" \
  --tls-cert-file="$PKI_DIR/apiserver.crt" --tls-private-key-file="$PKI_DIR/apiserver.key" \
  --client-ca-file="$PKI_DIR/ca.crt" --token-auth-file="$PKI_DIR/tokens.csv" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --kubelet-client-certificate="$PKI_DIR/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$PKI_DIR/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$PKI_DIR/ca.crt" \
  --kubelet-preferred-address-types=InternalIP \
  --requestheader-client-ca-file="$PKI_DIR/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-username-headers=X-Remote-User \
  --proxy-client-cert-file="$PKI_DIR/front-proxy-client.crt" \
  --proxy-client-key-file="$PKI_DIR/front-proxy-client.key" \
  --enable-aggregator-routing=true \
  --allow-privileged=true --profiling=false --v=1
wait_for "kube-apiserver readyz" 120 curl -fsS --cacert "$PKI_DIR/ca.crt" "https://$NODE_IP:$APISERVER_PORT/readyz"

start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$LAB_DIR/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig="$LAB_DIR/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig="$LAB_DIR/kube-controller-manager.kubeconfig" \
  --bind-address="$NODE_IP" --leader-elect=false \
  --service-account-private-key-file="$PKI_DIR/sa.key" --root-ca-file="$PKI_DIR/ca.crt" \
  --use-service-account-credentials=true \
  --cluster-signing-cert-file="$PKI_DIR/ca.crt" --cluster-signing-key-file="$PKI_DIR/ca.key" \
  --controllers='*,-nodeipam' --cluster-cidr="$CLUSTER_CIDR" \
  --horizontal-pod-autoscaler-sync-period=5s \
  --horizontal-pod-autoscaler-downscale-stabilization=30s --v=1
start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig="$LAB_DIR/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig="$LAB_DIR/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$LAB_DIR/kube-scheduler.kubeconfig" \
  --bind-address="$NODE_IP" --leader-elect=false --v=1

# --- containerd and the images it needs
render "$LAB_ROOT/config/containerd.toml" "$LAB_DIR/containerd.toml"
render "$LAB_ROOT/config/10-shoal-lab.conflist" "$LAB_DIR/cni/net.d/10-shoal-lab.conflist"
start containerd containerd --config "$LAB_DIR/containerd.toml"
wait_for "containerd socket" 60 ctr -a "$CTR_SOCK" version
"$LAB_ROOT/scripts/images.sh"

# --- kubelet
render "$LAB_ROOT/config/kubelet.yaml" "$LAB_DIR/kubelet.yaml"
start kubelet "$K8S_BIN/kubelet" --config="$LAB_DIR/kubelet.yaml" \
  --kubeconfig="$LAB_DIR/kubelet.kubeconfig" --node-ip="$NODE_IP" \
  --hostname-override="$NODE_NAME" --root-dir="$LAB_DIR/kubelet" --v=1
node_ready() {
  [[ "$(kc get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
t="$(now_s)"
wait_for "node $NODE_NAME Ready" 180 node_ready
log "node $NODE_NAME Ready after $(elapsed "$t")s"

# --- kube-proxy
start_kube_proxy "$LAB_PROXY_MODE"
wait_for "kube-proxy healthy ($LAB_PROXY_MODE mode)" 60 curl -fsS "http://$NODE_IP:10256/healthz"

# --- cluster add-ons
render "$LAB_ROOT/manifests/coredns.yaml" "$LAB_DIR/coredns.yaml"
render "$LAB_ROOT/manifests/host-services.yaml" "$LAB_DIR/host-services.yaml"
wait_for "default service account" 60 kc -n default get serviceaccount default
kc apply -f "$LAB_DIR/coredns.yaml" -f "$LAB_DIR/host-services.yaml" >/dev/null

# KEDA's CRDs, from the KEDA module the lab pins, so that ScaledObjects
# (deploy/overlays/keda) are validated by the API server even when KEDA's
# own processes are not running.
keda_src="$(cd "$LAB_ROOT/addons/keda" && go mod download -json github.com/kedacore/keda/v2 2>/dev/null | awk -F'"' '/"Dir"/{print $4}')" || keda_src=""
if [[ -d "$keda_src/config/crd/bases" ]]; then
  kc apply --server-side -f "$keda_src/config/crd/bases" >/dev/null && log "KEDA CRDs installed from $keda_src"
else
  log "KEDA CRDs: module source not available; ScaledObjects will not validate"
fi

MS="$BIN_CACHE/metrics-server/metrics-server"
if [[ -x "$MS" ]]; then
  start metrics-server "$MS" --secure-port="$METRICS_SERVER_PORT" --bind-address="$NODE_IP" \
    --tls-cert-file="$PKI_DIR/aggregated.crt" --tls-private-key-file="$PKI_DIR/aggregated.key" \
    --kubeconfig="$LAB_DIR/metrics-server.kubeconfig" \
    --authentication-kubeconfig="$LAB_DIR/metrics-server.kubeconfig" \
    --authorization-kubeconfig="$LAB_DIR/metrics-server.kubeconfig" \
    --kubelet-preferred-address-types=InternalIP --kubelet-certificate-authority="$PKI_DIR/ca.crt" \
    --kubelet-use-node-status-port --metric-resolution=15s
else
  log "metrics-server: not built; skipped"
fi

# Prometheus v3 (built with Kubernetes discovery in k8s/) runs the deploy
# kit's own scrape configuration; labpromconfig only gives its discovery
# the lab's kubeconfig and shortens the intervals.
"$TOOLS/labpromconfig" -in "$LAB_ROOT/../deploy/monitoring/prometheus.yml" \
  -kubeconfig "$LAB_DIR/prometheus.kubeconfig" -o "$LAB_DIR/prometheus.yml"
start prometheus "$K8S_BIN/prometheus" --config.file="$LAB_DIR/prometheus.yml" \
  --storage.tsdb.path="$LAB_DIR/prometheus" --storage.tsdb.retention.time=1d \
  --web.listen-address="$PROM_ADDR" --web.enable-lifecycle

PA="$BIN_CACHE/prometheus-adapter/adapter"
if [[ -x "$PA" ]]; then
  start prometheus-adapter "$PA" --secure-port="$ADAPTER_PORT" --bind-address="$NODE_IP" \
    --tls-cert-file="$PKI_DIR/aggregated.crt" --tls-private-key-file="$PKI_DIR/aggregated.key" \
    --lister-kubeconfig="$LAB_DIR/prometheus-adapter.kubeconfig" \
    --authentication-kubeconfig="$LAB_DIR/prometheus-adapter.kubeconfig" \
    --authorization-kubeconfig="$LAB_DIR/prometheus-adapter.kubeconfig" \
    --prometheus-url="http://$PROM_ADDR/" --metrics-relist-interval=15s \
    --config="$LAB_ROOT/config/prometheus-adapter.yaml"
else
  log "prometheus-adapter: not built; skipped"
fi

# --- KEDA (when built). The operator makes
# its certificates into a Secret and exits, as a pod would to be restarted
# with the Secret mounted; on the host the Secret is written to a folder.
KB="$BIN_CACHE/keda"
KEDA_ADAPTER_PORT=6446
KEDA_CERTS="$LAB_DIR/keda/certs"
keda_env=(env KEDA_CLUSTER_OBJECT_NAMESPACE=keda POD_NAMESPACE=keda WATCH_NAMESPACE= OPERATOR_NAME=keda-operator)
keda_operator=("$KB/keda-operator" --kubeconfig="$KUBECONFIG_ADMIN"
  --metrics-bind-address="$NODE_IP:8089" --health-probe-bind-address="$NODE_IP:8091"
  --metrics-service-bind-address="$NODE_IP:9666" --enable-cert-rotation=true
  --cert-dir="$KEDA_CERTS" --enable-webhook-patching=false --ca-dir="$LAB_DIR/keda/ca")
if [[ -x "$KB/keda-operator" && -x "$KB/keda-adapter" ]]; then
  mkdir -p "$KEDA_CERTS" "$LAB_DIR/keda/ca"
  kc get namespace keda >/dev/null 2>&1 || kc create namespace keda >/dev/null
  if ! kc -n keda get secret kedaorg-certs >/dev/null 2>&1; then
    (cd "$LAB_DIR/keda" && timeout 120 "${keda_env[@]}" "${keda_operator[@]}" >>"$LOG_DIR/keda-operator.log" 2>&1) || true
  fi
fi
if [[ -x "$KB/keda-operator" ]] && ! kc -n keda get secret kedaorg-certs >/dev/null 2>&1; then
  log "KEDA: the operator made no certificates; skipped. Last lines of $LOG_DIR/keda-operator.log:"
  tail -3 "$LOG_DIR/keda-operator.log" >&2
elif [[ -x "$KB/keda-operator" && -x "$KB/keda-adapter" ]]; then
  for f in ca.crt tls.crt tls.key; do
    kc -n keda get secret kedaorg-certs -o "jsonpath={.data.${f//./\\.}}" | base64 -d > "$KEDA_CERTS/$f"
  done
  chmod 600 "$KEDA_CERTS"/*
  KEDA_CA_BUNDLE="$(base64 -w0 < "$KEDA_CERTS/ca.crt")"
  render "$LAB_ROOT/manifests/keda-host.yaml" "$LAB_DIR/keda-host.yaml"
  kc apply -f "$LAB_DIR/keda-host.yaml" >/dev/null 2>&1
  (cd "$LAB_DIR/keda" && start keda-operator "${keda_env[@]}" "${keda_operator[@]}")
  (cd "$LAB_DIR/keda" && start keda-adapter "${keda_env[@]}" "$KB/keda-adapter" \
    --kubeconfig="$KUBECONFIG_ADMIN" --lister-kubeconfig="$KUBECONFIG_ADMIN" \
    --authentication-kubeconfig="$KUBECONFIG_ADMIN" --authorization-kubeconfig="$KUBECONFIG_ADMIN" \
    --secure-port="$KEDA_ADAPTER_PORT" --bind-address="$NODE_IP" --cert-dir="$KEDA_CERTS" \
    --tls-cert-file="$KEDA_CERTS/tls.crt" --tls-private-key-file="$KEDA_CERTS/tls.key" \
    --metrics-service-address="$NODE_IP:9666" \
    --metrics-service-grpc-authority=keda-operator.keda.svc.cluster.local --port=8092)
else
  log "KEDA: not built (lab/scripts/build.sh keda); skipped"
fi

# --- checks: CoreDNS answers through its Service address
wait_for "CoreDNS Ready" 180 kc -n kube-system wait --for=condition=Available deployment/coredns --timeout=5s
wait_for "CoreDNS answers" 60 "$TOOLS/labdns" -server "$DNS_SVC_IP:53" -name kubernetes.default.svc.cluster.local
log "CoreDNS: kubernetes.default.svc.cluster.local -> $("$TOOLS/labdns" -server "$DNS_SVC_IP:53")"
if [[ -x "$MS" ]]; then
  wait_for "metrics.k8s.io available" 120 kc wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=5s ||
    log "metrics-server: APIService not Available; see $LOG_DIR/metrics-server.log"
fi
if [[ -x "$PA" ]]; then
  wait_for "custom.metrics.k8s.io available" 120 kc wait --for=condition=Available apiservice/v1beta1.custom.metrics.k8s.io --timeout=5s ||
    log "prometheus-adapter: APIService not Available; see $LOG_DIR/prometheus-adapter.log"
fi
if running keda-adapter; then
  wait_for "external.metrics.k8s.io available" 120 kc wait --for=condition=Available apiservice/v1beta1.external.metrics.k8s.io --timeout=5s ||
    log "KEDA: APIService not Available; see $LOG_DIR/keda-adapter.log"
fi
log "lab up in $(elapsed "$T0")s; kubeconfig: $KUBECONFIG_ADMIN"
