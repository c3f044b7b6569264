#!/usr/bin/env bash
# Run every check and test, failing fast: fmt, clippy, build, test, then the
# pure cgroup v2 suite in a VM. Integration tests run as root and use
# target/debug/hull.
#
# The cgroup v2 suite (integration/cgroup2-vm/run.sh: a static hull driving
# containers, plus hull-cgroups' own v2 tests, in one VM boot) needs
# shared/cgroup2-vm beside the clone. With CI set it always runs, and a
# missing VM runner is a failure; elsewhere it is skipped (with a line saying
# so) when the runner is missing or HULL_SKIP_CG2VM=1.
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

# What the host's own network looks like before the tests: they must leave
# it as it was (the network tests make namespaces of their own).
net_state() {
    { ip -o link show | awk -F': ' '{print $2}'; iptables-save 2>/dev/null | grep -c CNI || true; } | sort
}
net_before=$(net_state)

step "cargo test --workspace $*"
log=$(mktemp /tmp/hull-test.XXXXXX)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

net_after=$(net_state)
if [[ $net_after != "$net_before" ]]; then
    echo "hack/test.sh: the tests changed the host's network (links or CNI firewall rules):" >&2
    diff <(echo "$net_before") <(echo "$net_after") >&2 || true
    rc=1
fi

# The cgroup v2 VM suite, after a passing cargo test.
vmlog=$(mktemp /tmp/hull-test-vm.XXXXXX)
trap 'rm -f "$log" "$vmlog"' EXIT
vm_rc=0
if ((rc == 0)); then
    runner=${CG2VM_RUNNER:-$repo/../shared/cgroup2-vm/run-in-cgroup2-vm.sh}
    skip=
    if [[ -n ${CI:-} ]]; then
        # In CI it must run: a missing runner fails in run.sh (exit 125).
        [[ ${HULL_SKIP_CG2VM:-} != 1 ]] || echo "hack/test.sh: HULL_SKIP_CG2VM=1 is ignored in CI" >&2
    elif [[ ${HULL_SKIP_CG2VM:-} == 1 ]]; then
        skip="HULL_SKIP_CG2VM=1"
    elif [[ ! -f $runner ]]; then
        skip="no VM runner at $runner (shared/cgroup2-vm beside the clone)"
    fi
    if [[ -n $skip ]]; then
        echo "==> skipping the cgroup v2 VM suite: $skip" >&2
    else
        step "integration/cgroup2-vm/run.sh (pure cgroup v2 suite in a VM)"
        set +e
        CG2VM_RUNNER=$runner bash integration/cgroup2-vm/run.sh 2>&1 | tee "$vmlog"
        vm_rc=${PIPESTATUS[0]}
        set -e
    fi
fi

# One closing line over all test binaries and the VM suite, in the usual
# "N passed, N failed" form.
awk 'FILENAME == ARGV[1] && /^test result: / {
        for (i = 1; i <= NF; i++) {
            if ($(i) ~ /^passed;?$/) p += $(i - 1)
            if ($(i) ~ /^failed;?$/) f += $(i - 1)
            if ($(i) ~ /^ignored;?$/) s += $(i - 1)
        }
    }
    FILENAME != ARGV[1] && /^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 }
    END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log" "$vmlog"
if ((rc)); then
    echo "hack/test.sh: FAILED (cargo test exited $rc)" >&2
    exit "$rc"
fi
if ((vm_rc)); then
    echo "hack/test.sh: FAILED (the cgroup v2 VM suite exited $vm_rc)" >&2
    exit "$vm_rc"
fi
