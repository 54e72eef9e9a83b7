#!/bin/sh
# Installs the Debian packages tunery needs to build, test and demo, and only
# those that are missing, so a second run costs one dpkg query.
# Usage: scripts/install-deps.sh [build|test|all]   (default: all)
set -eu
want="${1:-all}"

build_pkgs="gcc make pkg-config libjansson-dev libsqlite3-dev libmicrohttpd-dev
  libcurl4-openssl-dev libpcre2-dev libutf8proc-dev libdnnl-dev libopenblas-dev"
test_pkgs="curl python3 bible-kjv bible-kjv-text fortunes fortunes-min jargon-text fasttext
  clang libclang-rt-14-dev"
ref_pkgs="python3-torch python3-numpy"

case "$want" in
  build) pkgs="$build_pkgs" ;;
  test)  pkgs="$build_pkgs $test_pkgs" ;;
  all)   pkgs="$build_pkgs $test_pkgs $ref_pkgs" ;;
  *) echo "install-deps: unknown set '$want'; use build, test or all" >&2; exit 2 ;;
esac

missing=""
# Node.js may come from elsewhere (nodesource bundles npm and conflicts with
# Debian's npm package): only ask Debian for it when the commands are absent.
if [ "$want" != build ]; then
  command -v node >/dev/null 2>&1 || missing="$missing nodejs"
  command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages:$missing; run this script as root (or: sudo apt-get install$missing)" >&2
  exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
