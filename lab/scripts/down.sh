#!/usr/bin/env bash
# Stops the lab and removes everything it made: processes (by recorded PID,
# plus container processes found in the lab's kubepods cgroups), pod
# sandboxes (through the CRI, so CNI tears down its netns, veths and leases),
# mounts under $LAB_DIR, iptables chains KUBE-*/CNI-*/SHOAL-LAB, the
# interfaces lab0 and cni0, cgroups and state. Ends with check-clean.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ "$(id -u)" -eq 0 ]] || die "lab-down needs root"
T0="$(now_s)"
CTR_SOCK="$RUN_DIR/containerd/containerd.sock"
STATE="$LAB_CACHE/last-down"
mkdir -p "$STATE"
: > "$STATE/pids"

# stop NAME: SIGTERM to the recorded PID, SIGKILL after 20 s.
stop() {
  local f="$PID_DIR/$1.pid" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  echo "$pid $1" >> "$STATE/pids"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$1: still running after SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "$1: stopped (pid $pid)"
  fi
  rm -f "$f"
}

# Remember the pod veths so that the check can tell they are gone.
ip -o link show master "$CNI_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 > "$STATE/veths" || true

stop kubelet
if [[ -S "$CTR_SOCK" ]] && [[ -x "$BIN_CACHE/lab-tools/labcri" ]]; then
  "$BIN_CACHE/lab-tools/labcri" -endpoint "unix://$CTR_SOCK" -timeout 120s || log "labcri: some sandboxes did not stop cleanly"
fi
for c in keda-adapter keda-operator prometheus-adapter metrics-server prometheus kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do
  stop "$c"
done

# Container processes and shims left behind (a shim whose task could not be
# stopped): found by the lab's cgroups and by the lab's containerd socket.
kubepods_pids() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d "$d" ]] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}
shim_pids() {
  local p
  for p in /proc/[0-9]*; do
    if { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null | grep -qF -- "-address $CTR_SOCK"; then
      echo "${p#/proc/}"
    fi
  done
}
for pid in $(kubepods_pids) $(shim_pids); do
  echo "$pid leftover" >> "$STATE/pids"
  kill -KILL "$pid" 2>/dev/null && log "killed leftover pid $pid" || true
done

# kube-proxy's own cleanup (its iptables, ipvs and nftables rules alike),
# then its nftables tables if any is left, then every chain the lab's parts
# made.
if [[ -x "$K8S_BIN/kube-proxy" ]]; then
  "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
fi
if command -v nft >/dev/null; then
  for family in ip ip6; do
    nft delete table "$family" kube-proxy 2>/dev/null || true
  done
fi
sweep_chains() { # sweep_chains IPTABLES-BINARY
  local ipt="$1" table rule chain
  command -v "$ipt" >/dev/null || return 0
  for table in filter nat mangle raw; do
    "$ipt-save" -t "$table" >/dev/null 2>&1 || continue
    # Jumps from any chain into a lab chain, then the lab chains themselves.
    "$ipt-save" -t "$table" 2>/dev/null | grep -E '^-A .* -j (KUBE-|CNI-|SHOAL-LAB)' |
      grep -vE '^-A (KUBE-|CNI-|SHOAL-LAB)' | while read -r rule; do
        # shellcheck disable=SC2086
        "$ipt" -w -t "$table" -D ${rule#-A } 2>/dev/null || true
      done || true
    for chain in $("$ipt-save" -t "$table" 2>/dev/null | awk '/^:(KUBE-|CNI-|SHOAL-LAB)/{print substr($1,2)}'); do
      "$ipt" -w -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$ipt-save" -t "$table" 2>/dev/null | awk '/^:(KUBE-|CNI-|SHOAL-LAB)/{print substr($1,2)}'); do
      "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do sweep_chains "$ipt"; done

# Mounts under the lab's folders and the pod network namespaces.
umount_under() {
  local m
  for m in $(awk -v p="$1" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done
}
umount_under "$LAB_DIR/"
for ns in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do
  ip netns delete "$ns" 2>/dev/null || true
done
umount_under /run/netns/cni-
umount_under /var/run/netns/cni-

# Interfaces: pod veths, the bridge, the node address.
while read -r v; do
  [[ -n "$v" ]] && ip link delete "$v" 2>/dev/null || true
done < "$STATE/veths"
ip link delete "$CNI_BRIDGE" 2>/dev/null || true
ip link delete "$NODE_IF" 2>/dev/null || true

# Cgroups the kubelet made, deepest first.
for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
  [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
done

if [[ -f "$RUN_DIR/ip_forward.orig" ]]; then
  cat "$RUN_DIR/ip_forward.orig" > /proc/sys/net/ipv4/ip_forward
fi
rm -rf "$LAB_DIR"
log "lab down in $(elapsed "$T0")s"
exec "$LAB_ROOT/scripts/check-clean.sh"
