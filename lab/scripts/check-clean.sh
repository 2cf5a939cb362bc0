#!/usr/bin/env bash
# Checks that no trace of the lab is left on the machine: no process of it,
# no container process, no mount under $LAB_DIR, no pod netns, no iptables
# chain KUBE-*/CNI-*/SHOAL-LAB, no interface lab0/cni0 or pod veth, no
# kubepods cgroup. Prints each leftover and exits 1 if there is any.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

STATE="$LAB_CACHE/last-down"
left=0
bad() { echo "leftover: $*" >&2; left=$((left + 1)); }

# Processes: those recorded at lab-down, any whose command line names the
# lab's state folder, and any running a binary the lab built.
if [[ -f "$STATE/pids" ]]; then
  while read -r pid what; do
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && bad "process $pid ($what)"
  done < "$STATE/pids"
fi
for p in /proc/[0-9]*; do
  pid="${p#/proc/}"
  [[ "$pid" == "$$" ]] && continue
  cmd="$({ tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null)" || continue
  exe="$(readlink "$p/exe" 2>/dev/null)" || exe=""
  case "$exe" in
    "$BIN_CACHE"/*) bad "process $pid: $cmd"; continue ;;
  esac
  case "$cmd" in
    *check-clean.sh*) ;;
    *"$LAB_DIR"/*) bad "process $pid: $cmd" ;;
  esac
done
for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
  [[ -e "$d" ]] && bad "cgroup $d"
done

# Mounts and network namespaces.
awk -v p="$LAB_DIR/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | while read -r m; do
  echo "leftover: mount $m" >&2; echo x
done | grep -q x && left=$((left + 1))
awk 'index($5, "/run/netns/cni-") > 0 {print $5}' /proc/self/mountinfo | grep -q . && bad "netns mounts: $(awk 'index($5, "/run/netns/cni-") > 0 {print $5}' /proc/self/mountinfo | tr '\n' ' ')"
ip netns list 2>/dev/null | grep -q '^cni-' && bad "netns $(ip netns list | grep '^cni-' | tr '\n' ' ')"

# iptables chains, in every table, IPv4 and IPv6, nft and legacy back ends.
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
  command -v "$ipt-save" >/dev/null || continue
  for table in filter nat mangle raw; do
    chains="$("$ipt-save" -t "$table" 2>/dev/null | awk '/^:(KUBE-|CNI-|SHOAL-LAB)/{print substr($1,2)}' | tr '\n' ' ')"
    [[ -n "$chains" ]] && bad "$ipt $table chains: $chains"
  done
done

# kube-proxy's nftables tables (nftables mode).
if command -v nft >/dev/null; then
  for family in ip ip6; do
    nft list table "$family" kube-proxy >/dev/null 2>&1 && bad "nftables table $family kube-proxy"
  done
fi

# Interfaces.
for ifc in "$NODE_IF" "$CNI_BRIDGE"; do
  ip link show "$ifc" >/dev/null 2>&1 && bad "interface $ifc"
done
if [[ -f "$STATE/veths" ]]; then
  while read -r v; do
    [[ -n "$v" ]] && ip link show "$v" >/dev/null 2>&1 && bad "interface $v"
  done < "$STATE/veths"
fi
[[ -e "$LAB_DIR" ]] && bad "folder $LAB_DIR"

if ((left > 0)); then
  log "check-clean: $left leftover(s)"
  exit 1
fi
log "check-clean: nothing of the lab is left (processes, mounts, netns, iptables and nftables rules, interfaces, cgroups)"
