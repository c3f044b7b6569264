#!/usr/bin/env bash
# The main job: install what the project needs, build everything (release),
# run a demo container with hull, then the whole stack: hulld pulls an image
# from a registry on 127.0.0.1 (images built from busybox-static) and
# `hullctl run --rm` runs it through hull-shim and hull.
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

# The manager: a loopback registry with a test image, hulld on a scratch
# root, and a pull through hullctl. Everything is stopped on exit.
bin=$repo/target/release
demo=$(mktemp -d /tmp/hull-manager-demo.XXXXXX)
hulld_pid=
cgroup_parent=hull-demo-$$
stop_manager() {
    [[ -z $hulld_pid ]] || { kill "$hulld_pid" 2>/dev/null; wait "$hulld_pid" 2>/dev/null; }
    # The demo's cgroup parent, in every hierarchy (empty after run --rm).
    find /sys/fs/cgroup -depth -type d -path "*/$cgroup_parent*" -exec rmdir {} + 2>/dev/null || true
    hack/registry/serve.sh "$demo/registry" --stop >/dev/null 2>&1 || true
    rm -rf "$demo"
}
trap '"$hull" delete -f "$id" >/dev/null 2>&1 || true; stop_manager' EXIT
echo "==> test images and a registry on 127.0.0.1" >&2
hack/registry/mkimages.sh "$repo/target/hull-test-images" >/dev/null
registry=$(hack/registry/serve.sh "$demo/registry" --auth none)
hack/registry/push.sh "$repo/target/hull-test-images/multiarch" "$registry/demo/busybox:latest" >/dev/null
"$bin/hulld" --root "$demo/root" --state "$demo/state" --address "$demo/hulld.sock" 2>"$demo/hulld.log" &
hulld_pid=$!
for _ in $(seq 100); do [[ -S $demo/hulld.sock ]] && break; sleep 0.1; done
ctl=("$bin/hullctl" --address "$demo/hulld.sock" --data-root "$demo/hullctl")
echo "==> hullctl pull $registry/demo/busybox:latest" >&2
"${ctl[@]}" pull "$registry/demo/busybox:latest"
"${ctl[@]}" images ls
"${ctl[@]}" content ls
echo "==> ok: hulld pulled an image" >&2
image=$registry/demo/busybox:latest
echo "==> hullctl run --rm $image (hulld -> hull-shim -> hull)" >&2
HULLCTL_CGROUP_PARENT=$cgroup_parent "${ctl[@]}" run --rm --hostname hull-demo "$image" \
    sh -c 'echo hello from a container hulld ran; echo "hostname $(hostname), pid $$"'
echo "==> ok: the whole stack works (registry -> content -> snapshot -> shim -> hull)" >&2
