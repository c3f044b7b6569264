#!/usr/bin/env bash
# The main job: install what the project needs, build hull (release), and run
# a demo container with it.
#
# usage: hack/setup.sh [--no-build]
#   --no-build   skip `cargo build --release` (use the existing binary)
#
# environment: HULL overrides the binary used for the demo
# (default <repo>/target/release/hull).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=hack/deps.sh
. hack/deps.sh

build=1
case ${1:-} in
    --no-build) build=0 ;;
    '') ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
esac

[[ $(id -u) == 0 ]] || { echo "$0: run as root (packages, containers)" >&2; exit 1; }

echo "==> Debian packages" >&2
hull_install_deps
if ((build)); then
    hull_ensure_cargo
    echo "==> cargo build --release" >&2
    cargo build --release
fi

hull=${HULL:-$repo/target/release/hull}
[[ -x $hull ]] || { echo "$0: $hull missing: run cargo build --release" >&2; exit 1; }
bundle=/tmp/hull-demo id=demo

echo "==> bundle $bundle" >&2
HULL=$hull hack/mkbundle.sh --force "$bundle" hull -- sh -c 'echo hello from hull; uname -n'

# Delete the demo container however `run` ends (it normally deletes itself).
trap '"$hull" delete -f "$id" >/dev/null 2>&1 || true' EXIT
"$hull" delete -f "$id" >/dev/null 2>&1 || true

echo "==> $hull run -b $bundle $id" >&2
"$hull" run -b "$bundle" "$id" </dev/null
echo "==> ok: hull works; bundle left at $bundle" >&2
