#!/usr/bin/env bash
# Installs what the tests need when it is missing: Debian packages for the
# real peers (redis-server, prometheus/promtool, hey, wrk), the headless browser
# of the dashboard test (chromium), util-linux and mount for `shoal up`'s pod
# mount namespaces, and pinned Go tools.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
{ command -v promtool && command -v prometheus; } >/dev/null || need+=(prometheus)
command -v hey >/dev/null || need+=(hey)
command -v wrk >/dev/null || need+=(wrk)
command -v chromium >/dev/null || need+=(chromium)
# shoal up gives each pod its own resolv.conf in a private mount namespace.
{ command -v unshare && command -v nsenter; } >/dev/null || need+=(util-linux)
command -v mount >/dev/null || need+=(mount)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]} from Debian" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

export GOBIN="$PWD/.bin"
if [ ! -x "$GOBIN/staticcheck" ] || ! "$GOBIN/staticcheck" -version 2>/dev/null | grep -qF "(0.8.2)"; then
  echo "deps: installing staticcheck v0.8.2" >&2
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
