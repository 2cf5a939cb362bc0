#!/usr/bin/env bash
# Builds the lab's binaries from source through the Go module proxy, once per
# version: Kubernetes components, CoreDNS, metrics-server, prometheus-adapter,
# KEDA (when its modules download) and the lab's own tools and images.
# Usage: build.sh [kubernetes|addons|keda|tools|all]   (default all)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

# go_build DIR OUT GO-BUILD-FLAGS... -- NAME=PACKAGE...: builds every package
# in ONE go build run inside module DIR, so that packages the binaries share
# are compiled once and one binary's link overlaps the next one's compile;
# then names the binaries. LAB_BUILD_TRACE=FOLDER keeps go's action graph
# (per-package compile and per-binary link times) as FOLDER/<out>.json.
go_build() {
  local dir="$1" out="$2"; shift 2
  local flags=() pkgs=() names=() spec tmp="$out.partial"
  while [[ "$1" != -- ]]; do flags+=("$1"); shift; done
  shift
  for spec in "$@"; do names+=("${spec%%=*}"); pkgs+=("${spec#*=}"); done
  if [[ -n "${LAB_BUILD_TRACE:-}" ]]; then
    mkdir -p "$LAB_BUILD_TRACE"
    flags+=("-debug-actiongraph=$LAB_BUILD_TRACE/$(basename "$out").json")
  fi
  rm -rf "$tmp" && mkdir -p "$tmp" "$out"
  (cd "$dir" && CGO_ENABLED=0 "${NICE[@]}" go build -p 2 -trimpath "${flags[@]}" -o "$tmp/" "${pkgs[@]}")
  local i
  for i in "${!pkgs[@]}"; do
    mv -f "$tmp/$(basename "${pkgs[$i]}")" "$out/${names[$i]}"
  done
  rm -rf "$tmp"
}

build_k8s() {
  local dir="$LAB_ROOT/k8s" stamp
  stamp="$(stamp_of "$dir/go.mod" "$dir/go.sum")"
  if [[ -f "$K8S_BIN/.stamp" && "$(cat "$K8S_BIN/.stamp")" == "$stamp" ]]; then
    log "kubernetes $K8S_VERSION: cached in $K8S_BIN"
    return
  fi
  local major minor t0 c specs=()
  major="${K8S_VERSION#v}"; major="${major%%.*}"
  minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  local v=k8s.io/component-base/version cv=k8s.io/client-go/pkg/version
  local ldflags="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=$major -X $v.gitMinor=$minor -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
  ldflags+=" -X $cv.gitVersion=$K8S_VERSION -X $cv.gitMajor=$major -X $cv.gitMinor=$minor -X $cv.gitTreeState=clean"
  # Every component the lab runs or the tests call; kubectl is the tests' client.
  for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    specs+=("$c=k8s.io/kubernetes/cmd/$c")
  done
  # Prometheus v3 shares the Kubernetes client libraries: in this one graph
  # they compile once. remove_all_sd + enable_kubernetes_sd keep the file,
  # HTTP and Kubernetes service discovery and drop every cloud's.
  specs+=("prometheus=github.com/prometheus/prometheus/cmd/prometheus")
  local pv=github.com/prometheus/common/version
  ldflags+=" -X $pv.Version=$PROMETHEUS_VERSION -X $pv.Branch=lab -X $pv.Revision=$PROMETHEUS_MODULE"
  t0="$(now_s)"
  log "kubernetes $K8S_VERSION + prometheus $PROMETHEUS_VERSION: building ${specs[*]%%=*}"
  go_build "$dir" "$K8S_BIN" -tags providerless,remove_all_sd,enable_kubernetes_sd -ldflags "$ldflags" -- "${specs[@]}"
  echo "$stamp" > "$K8S_BIN/.stamp"
  log "kubernetes $K8S_VERSION: built in $(elapsed "$t0")s"
}

# build_addon NAME MODULE BIN=PACKAGE...: builds the main packages of a small
# module under lab/addons/NAME into $BIN_CACHE/NAME-VERSION, VERSION read from
# its go.mod.
build_addon() {
  local name="$1" mod="$2"; shift 2
  local dir="$LAB_ROOT/addons/$name" version out stamp t0
  version="$(awk -v m="$mod" '$1==m {print $2; exit} $2==m {print $3; exit}' "$dir/go.mod")"
  [[ -n "$version" ]] || die "$name: $mod not required in $dir/go.mod"
  out="$BIN_CACHE/$name-$version"
  stamp="$(stamp_of "$dir/go.mod" "$dir/go.sum")"
  if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp" ]]; then
    log "$name $version: cached in $out"
    ln -sfn "$name-$version" "$BIN_CACHE/$name"
    return
  fi
  t0="$(now_s)"
  log "$name $version: building $*"
  go_build "$dir" "$out" -ldflags "-s -w" -- "$@"
  echo "$stamp" > "$out/.stamp"
  ln -sfn "$name-$version" "$BIN_CACHE/$name"
  log "$name $version: built in $(elapsed "$t0")s"
}

build_addons() {
  build_addon coredns github.com/coredns/coredns coredns=github.com/coredns/coredns
  build_addon metrics-server sigs.k8s.io/metrics-server metrics-server=sigs.k8s.io/metrics-server/cmd/metrics-server
  build_addon prometheus-adapter sigs.k8s.io/prometheus-adapter adapter=sigs.k8s.io/prometheus-adapter/cmd/adapter
}

# KEDA links every scaler's cloud SDK: the largest build of the lab.
build_keda() {
  build_addon keda github.com/kedacore/keda/v2 \
    keda-operator=github.com/kedacore/keda/v2/cmd/operator keda-adapter=github.com/kedacore/keda/v2/cmd/adapter
}

# build_tools builds the lab's own programs (image writer, pause, test server).
build_tools() {
  local out="$BIN_CACHE/lab-tools" stamp
  stamp="$(cd "$LAB_ROOT" && stamp_of go.mod go.sum cmd/*/*.go)"
  if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp" ]]; then
    log "lab tools: cached in $out"
    return
  fi
  local t0
  t0="$(now_s)"
  mkdir -p "$out"
  (cd "$LAB_ROOT" && CGO_ENABLED=0 "${NICE[@]}" go build -p 2 -trimpath -ldflags "-s -w" -o "$out/" ./cmd/...)
  echo "$stamp" > "$out/.stamp"
  log "lab tools: built in $(elapsed "$t0")s"
}

# prefetch downloads the add-on modules in the background while Kubernetes
# compiles: the downloads wait on the network, the compiler on the CPU. Its
# failures do not matter: each go build downloads what it still misses.
prefetch() {
  local d
  for d in "$LAB_ROOT"/addons/*/; do
    (cd "$d" && go mod download) >/dev/null 2>&1 || true
  done
}

what="${1:-all}"
t_all="$(now_s)"
case "$what" in
  kubernetes) build_k8s ;;
  addons) build_addons ;;
  tools) build_tools ;;
  keda) build_keda ;;
  all)
    prefetch & pf=$!
    build_tools; build_k8s; build_addons; build_keda
    wait "$pf" || true ;;
  *) die "build.sh: unknown target $what (want kubernetes, addons, tools, all or keda)" ;;
esac
log "build $what: done in $(elapsed "$t_all")s"
