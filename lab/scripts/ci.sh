#!/usr/bin/env bash
# The lab's CI run: builds what is missing, brings the lab up, runs the
# end-to-end tests (make -C lab e2e), then always takes the lab down and checks
# that nothing of it is left, even when a step failed or ran out of time.
# Prints the time of each step and exits non-zero if any step failed.
#
# LAB_CI_TIMEOUT (seconds, default 3900 = 65 min) bounds build + lab-up + e2e
# together, LAB_CI_DOWN_TIMEOUT (default 600) bounds lab-down, so that a hang
# cannot outlast a 90-minute CI job that also runs the unit tests.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

[[ "$(id -u)" -eq 0 ]] || die "ci: the lab needs root"
budget="${LAB_CI_TIMEOUT:-3900}"
down_budget="${LAB_CI_DOWN_TIMEOUT:-600}"
deadline=$((SECONDS + budget))
T0="$(now_s)"
names=() times=() codes=()
failed=0

# step NAME BOUND CMD...: runs CMD under timeout BOUND (seconds) and records
# its time and exit code; 124 means it ran out of time.
step() {
  local name="$1" bound="$2" t rc
  shift 2
  if ((bound <= 0)); then
    log "ci: $name: no time left"
    names+=("$name"); times+=(0); codes+=(124); failed=1
    return 124
  fi
  log "ci: $name (at most ${bound}s)"
  t="$(now_s)"
  timeout --kill-after=30 "$bound" "$@"
  rc=$?
  names+=("$name"); times+=("$(elapsed "$t")"); codes+=("$rc")
  ((rc == 124 || rc == 137)) && log "ci: $name ran out of time (${bound}s)"
  ((rc != 0)) && failed=1
  return "$rc"
}

summary() {
  local i
  printf '\n%-12s %9s  %s\n' step seconds result >&2
  for i in "${!names[@]}"; do
    printf '%-12s %9s  %s\n' "${names[$i]}" "${times[$i]}" \
      "$( ((codes[i] == 0)) && echo ok || echo "exit ${codes[$i]}")" >&2
  done
  printf '%-12s %9s  %s\n' total "$(elapsed "$T0")" "$( ((failed == 0)) && echo ok || echo FAILED)" >&2
  log "ci: load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
}

# teardown always runs: the lab comes down and the leftover check runs on
# its own, so that it reports even when lab-down itself failed or hung.
teardown() {
  trap - EXIT INT TERM
  step lab-down "$down_budget" make -C "$LAB_ROOT" lab-down
  step check-clean 120 "$LAB_ROOT/scripts/check-clean.sh"
  summary
  exit "$failed"
}
trap teardown EXIT
trap 'log "ci: interrupted"; failed=1; exit 130' INT TERM

step build $((deadline - SECONDS)) make -C "$LAB_ROOT" build &&
  step lab-up $((deadline - SECONDS)) make -C "$LAB_ROOT" lab-up &&
  step e2e $((deadline - SECONDS)) make -C "$LAB_ROOT" e2e
step prom-v3 $((deadline - SECONDS)) make -C "$LAB_ROOT" prometheus-v3
# kube-proxy's other mode, for the tests that depend on it, even when a test
# above failed.
if [[ -f "$PROXY_MODE_FILE" ]]; then
  step e2e-nft $((deadline - SECONDS)) make -C "$LAB_ROOT" e2e-nftables
fi
