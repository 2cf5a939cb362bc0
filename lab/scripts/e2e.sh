#!/usr/bin/env bash
# Runs the lab's end-to-end tests (build tag e2e), bringing the lab up first
# when it is not running. Extra arguments go to `go test` (e.g. -run Spread).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

lab_ready() {
  [[ -f "$KUBECONFIG_ADMIN" ]] &&
    [[ "$(kc get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
if ! lab_ready; then
  log "lab not running: bringing it up"
  "$LAB_ROOT/scripts/up.sh"
fi
repo="$(cd "$LAB_ROOT/.." && pwd)"
# One shoal built from the repository for the images and every test that
# runs it (LAB_SHOAL), instead of one build each.
SHOAL_BIN="$RUN_DIR/bin/shoal"
mkdir -p "$RUN_DIR/bin"
(cd "$repo" && "${NICE[@]}" go build -o "$SHOAL_BIN" ./cmd/shoal) || die "e2e: build cmd/shoal failed"
export SHOAL_BIN
# The project's service images, when their commands exist.
if [[ -d "$repo/cmd/thumbnailer" && -d "$repo/cmd/gallery" ]]; then
  "$LAB_ROOT/scripts/images.sh" services || log "service images could not be built; their tests will fail"
fi
cd "$LAB_ROOT"
export LAB_KUBECONFIG="$KUBECONFIG_ADMIN" LAB_KUBECTL="$K8S_BIN/kubectl" LAB_REPO="$repo" LAB_K8S_VERSION="$K8S_VERSION" LAB_SHOAL="$SHOAL_BIN"
log "e2e: kube-proxy in $(cat "$PROXY_MODE_FILE" 2>/dev/null || echo iptables) mode"
"${NICE[@]}" go test -tags e2e -count=1 -p 1 -timeout 40m -v ./e2e/... "$@"
