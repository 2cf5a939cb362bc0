#!/usr/bin/env bash
# Packages the lab's binaries as one-layer image tarballs and imports them
# into the lab's containerd (namespace k8s.io), without Docker or a registry.
# Usage: images.sh            pause, CoreDNS and the lab's echo server
#        images.sh services   also the project's services via `shoal image build`
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CTR_SOCK="$RUN_DIR/containerd/containerd.sock"
IMG_DIR="$LAB_CACHE/images"
TOOLS="$BIN_CACHE/lab-tools"
mkdir -p "$IMG_DIR"

ctr_() { ctr -a "$CTR_SOCK" -n k8s.io "$@"; }

# import TARBALL TAG: imports unless containerd already has that exact tarball.
import() {
  local tar="$1" tag="$2" sum
  sum="$(sha256sum "$tar" | cut -c1-16)"
  if [[ -f "$tar.imported" && "$(cat "$tar.imported")" == "$sum" ]] && ctr_ images ls -q | grep -qxF "$tag"; then
    return
  fi
  ctr_ images import "$tar" >/dev/null
  echo "$sum" > "$tar.imported"
  log "image $tag imported"
}

# pack BINARY TAG USER [LABIMAGE-FLAGS...]: writes and imports a one-layer image.
pack() {
  local bin="$1" tag="$2" user="$3" name tar
  shift 3
  name="${tag##*/}"; name="${name//:/-}"
  tar="$IMG_DIR/$name.tar"
  if [[ ! -f "$tar" || "$bin" -nt "$tar" || "$TOOLS/labimage" -nt "$tar" ]]; then
    "$TOOLS/labimage" -binary "$bin" -tag "$tag" -o "$tar" -user "$user" "$@"
  fi
  import "$tar" "$tag"
}

pack "$TOOLS/labpause" docker.io/local/pause:lab 65535:65535
pack "$BIN_CACHE/coredns/coredns" docker.io/local/coredns:lab 65532:65532
pack "$TOOLS/labecho" docker.io/local/labecho:dev 65532:65532
# deploy/overlays/lab names the public Redis image, which cannot be pulled
# here: the same tag is given to Debian's redis-server (with redis-cli for
# the readiness probe and the shared libraries both need). Like the official
# image, it runs without protected mode, so that other pods may connect.
command -v redis-server >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends redis-server >/dev/null
pack "$(readlink -f "$(command -v redis-server)")" docker.io/library/redis:7.4-alpine 999:999 \
  -path /usr/bin/redis-server -extra /usr/bin/redis-cli -ldd -entry-args '--protected-mode no'

if [[ "${1:-}" == services ]]; then
  repo="$(cd "$LAB_ROOT/.." && pwd)"
  for svc in thumbnailer gallery; do
    [[ -d "$repo/cmd/$svc" ]] || die "services: $repo/cmd/$svc does not exist yet"
    tar="$IMG_DIR/$svc-dev.tar"
    # SHOAL_BIN: a shoal already built from this repository (e2e.sh builds
    # one for the images and the tests), else go run.
    if [[ -n "${SHOAL_BIN:-}" ]]; then
      (cd "$repo" && "${NICE[@]}" "$SHOAL_BIN" image build "./cmd/$svc" --tag "docker.io/local/$svc:dev" -o "$tar")
    else
      (cd "$repo" && "${NICE[@]}" go run ./cmd/shoal image build "./cmd/$svc" \
        --tag "docker.io/local/$svc:dev" -o "$tar")
    fi
    import "$tar" "docker.io/local/$svc:dev"
  done
fi
