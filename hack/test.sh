#!/usr/bin/env bash
# Run every check and test, failing fast: fmt, clippy, build, test.
# Integration tests run as root and use target/debug/hull.
#
# usage: hack/test.sh [-- extra cargo test args]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=hack/deps.sh
. hack/deps.sh
hull_ensure_cargo

[[ ${1:-} == -- ]] && shift

step() { echo "==> $*" >&2; }

step "cargo fmt --all --check"
cargo fmt --all --check
step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
step "cargo build --workspace"
cargo build --workspace

# hack/mkbundle.sh (used by tests) should call the binary just built, not a
# stale target/release/hull.
export HULL=${HULL:-$repo/target/debug/hull}

step "cargo test --workspace $*"
log=$(mktemp /tmp/hull-test.XXXXXX)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

# One closing line over all test binaries, in the usual "N passed, N failed" form.
awk '/^test result: / {
        for (i = 1; i <= NF; i++) {
            if ($(i) ~ /^passed;?$/) p += $(i - 1)
            if ($(i) ~ /^failed;?$/) f += $(i - 1)
            if ($(i) ~ /^ignored;?$/) s += $(i - 1)
        }
    }
    END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
if ((rc)); then
    echo "hack/test.sh: FAILED (cargo test exited $rc)" >&2
    exit "$rc"
fi
