#!/usr/bin/env bash
# Builds the lab's binaries from source through the Go module proxy, once per
# version: Kubernetes components, CoreDNS, metrics-server, prometheus-adapter,
# KEDA (when its modules download) and the lab's own tools and images.
# Usage: build.sh [kubernetes|addons|keda|tools|all]   (default all)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

# build_k8s builds one binary at a time so that no two large links run at once.
build_k8s() {
  local dir="$LAB_ROOT/k8s" stamp
  stamp="$(stamp_of "$dir/go.mod" "$dir/go.sum")"
  if [[ -f "$K8S_BIN/.stamp" && "$(cat "$K8S_BIN/.stamp")" == "$stamp" ]]; then
    log "kubernetes $K8S_VERSION: cached in $K8S_BIN"
    return
  fi
  mkdir -p "$K8S_BIN"
  local major minor t0
  major="${K8S_VERSION#v}"; major="${major%%.*}"
  minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  local v=k8s.io/component-base/version cv=k8s.io/client-go/pkg/version
  local ldflags="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=$major -X $v.gitMinor=$minor -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
  ldflags+=" -X $cv.gitVersion=$K8S_VERSION -X $cv.gitMajor=$major -X $cv.gitMinor=$minor -X $cv.gitTreeState=clean"
  for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    t0="$(now_s)"
    log "kubernetes $K8S_VERSION: building $c"
    (cd "$dir" && CGO_ENABLED=0 "${NICE[@]}" go build -p 2 -trimpath -tags providerless \
      -ldflags "$ldflags" -o "$K8S_BIN/$c" "k8s.io/kubernetes/cmd/$c")
    log "kubernetes $K8S_VERSION: $c built in $(elapsed "$t0")s"
  done
  echo "$stamp" > "$K8S_BIN/.stamp"
}

# build_module builds the main packages listed in a small module under
# lab/addons/NAME into $BIN_CACHE/NAME-VERSION, VERSION read from its go.mod.
build_addon() {
  local name="$1" mod="$2"; shift 2
  local dir="$LAB_ROOT/addons/$name" version out stamp t0
  version="$(awk -v m="$mod" '$1==m {print $2; exit} $2==m {print $3; exit}' "$dir/go.mod")"
  [[ -n "$version" ]] || die "$name: $mod not required in $dir/go.mod"
  out="$BIN_CACHE/$name-$version"
  stamp="$(stamp_of "$dir/go.mod" "$dir/go.sum")"
  if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp" ]]; then
    log "$name $version: cached in $out"
    return
  fi
  mkdir -p "$out"
  local spec bin pkg
  for spec in "$@"; do
    bin="${spec%%=*}"; pkg="${spec#*=}"
    t0="$(now_s)"
    log "$name $version: building $bin"
    (cd "$dir" && CGO_ENABLED=0 "${NICE[@]}" go build -p 2 -trimpath -ldflags "-s -w" -o "$out/$bin" "$pkg")
    log "$name $version: $bin built in $(elapsed "$t0")s"
  done
  echo "$stamp" > "$out/.stamp"
  ln -sfn "$name-$version" "$BIN_CACHE/$name"
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
  mkdir -p "$out"
  (cd "$LAB_ROOT" && CGO_ENABLED=0 "${NICE[@]}" go build -p 2 -trimpath -o "$out/" ./cmd/...)
  echo "$stamp" > "$out/.stamp"
}

what="${1:-all}"
t_all="$(now_s)"
case "$what" in
  kubernetes) build_k8s ;;
  addons) build_addons ;;
  tools) build_tools ;;
  keda) build_keda ;;
  all) build_tools; build_k8s; build_addons; build_keda ;;
  *) die "build.sh: unknown target $what (want kubernetes, addons, tools, all or keda)" ;;
esac
log "build $what: done in $(elapsed "$t_all")s"
