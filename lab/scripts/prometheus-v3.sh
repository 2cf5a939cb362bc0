#!/usr/bin/env bash
# Runs the project's comparisons of shoal up's query engine with a real
# Prometheus again, against the Prometheus v3 the lab builds and runs
# (the unit suite runs them against Debian's 2.42): the same samples, the
# same queries (the deploy kit's adapter rules and KEDA triggers among
# them), the same numbers. Needs no running lab, only its build.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bin="$K8S_BIN/prometheus"
[[ -x "$bin" ]] || die "prometheus-v3: $bin not built (make -C lab build)"
log "prometheus-v3: $("$bin" --version 2>&1 | head -1)"
cd "$LAB_ROOT/.."
SHOAL_PROMETHEUS="$bin" "${NICE[@]}" go test -count=1 -timeout 10m \
  -run '^(TestSameAsPrometheus|TestPrometheusMatchesDirect)$' ./internal/localk8s/podmetrics/
