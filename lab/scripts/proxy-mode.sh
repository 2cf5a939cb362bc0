#!/usr/bin/env bash
# Switches the running lab's kube-proxy to another mode: stops it, removes
# every rule it made (kube-proxy --cleanup clears iptables, ipvs and
# nftables alike), starts it in MODE and waits until it is healthy and has
# synced its rules.
# Usage: proxy-mode.sh iptables|nftables
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mode="${1:-}"
case "$mode" in iptables|nftables) ;; *) die "usage: proxy-mode.sh iptables|nftables" ;; esac
[[ -f "$KUBECONFIG_ADMIN" ]] || die "proxy-mode: the lab is not running"
if [[ "$(cat "$PROXY_MODE_FILE" 2>/dev/null)" == "$mode" ]] && running kube-proxy; then
  log "kube-proxy: already in $mode mode"
  exit 0
fi
t="$(now_s)"
if running kube-proxy; then
  pid="$(cat "$PID_DIR/kube-proxy.pid")"
  kill -TERM "$pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
fi
"$K8S_BIN/kube-proxy" --cleanup >>"$LOG_DIR/kube-proxy.log" 2>&1 || true
start_kube_proxy "$mode"
# /healthz answers 200 once the proxier has synced its rules at least once.
wait_for "kube-proxy healthy in $mode mode" 60 curl -fsS "http://$NODE_IP:10256/healthz"
log "kube-proxy: $mode mode in $(elapsed "$t")s"
