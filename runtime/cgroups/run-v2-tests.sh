#!/usr/bin/env bash
# Runs hull-cgroups' pure cgroup v2 suite (tests/v2_vm.rs) in the cgroup2 VM:
# builds the test binary statically (the VM has only busybox), wraps it in a
# script that sets HULL_CG2VM=1, and hands both to
# ../shared/cgroup2-vm/run-in-cgroup2-vm.sh (relative to the repository root;
# CI has shared/ beside its clone). Extra arguments go to the test binary,
# e.g. a test name filter.
#
# usage: runtime/cgroups/run-v2-tests.sh [TEST-FILTER...]
# env:   CARGO_TARGET_DIR (default: <repo>/target), CARGO_BUILD_JOBS,
#        CG2VM_* (see the VM's README), CG2VM_RUNNER (path of the VM script)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
runner=${CG2VM_RUNNER:-$repo/../shared/cgroup2-vm/run-in-cgroup2-vm.sh}
[[ -f $runner ]] || { echo "run-v2-tests.sh: no VM runner at $runner" >&2; exit 125; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
target=x86_64-unknown-linux-gnu

t0=$(date +%s.%N)
echo "==> building the static v2 test binary ($target, crt-static)" >&2
exe=$(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo test -p hull-cgroups --test v2_vm --no-run --target "$target" \
    --message-format=json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*v2_vm[^"]*\)".*/\1/p' | tail -n 1)
[[ -n $exe && -x $exe ]] || { echo "run-v2-tests.sh: no test executable built" >&2; exit 125; }
t1=$(date +%s.%N)

dir=$(mktemp -d /tmp/hull-cg2vm.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cp "$exe" "$dir/hull-cgroups-v2-tests"
cat >"$dir/test" <<'SH'
#!/bin/sh
# In the VM: one test at a time (software emulation is slow).
HULL_CG2VM=1 RUST_BACKTRACE=1 exec ./hull-cgroups-v2-tests --test-threads=1 --nocapture "$@"
SH
chmod +x "$dir/test"

echo "==> running it in the cgroup2 VM" >&2
set +e
bash "$runner" "$dir" "$@"
rc=$?
set -e
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" \
    'BEGIN { printf "run-v2-tests.sh: build %.1f s, VM run %.1f s\n", b - a, c - b }' >&2
exit "$rc"
