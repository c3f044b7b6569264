#!/usr/bin/env bash
# End-to-end cgroup v2 suite for the `hull` binary, run in the pure cgroup v2
# VM (../shared/cgroup2-vm, beside the repository; CI has shared/ beside its
# clone). One VM boot runs both:
#   - hull-cgroups' own v2 tests (runtime/cgroups/tests/v2_vm.rs, as
#     runtime/cgroups/run-v2-tests.sh runs them), reported as "lib/<test>";
#   - vm-test.sh: containers driven by a static release `hull` with
#     --root /run/hull-test (limits, OOM, pids, eBPF devices, freeze,
#     update, delete, kill --all, cgroup namespace).
# Output: one "ok <case>" / "FAIL <case>: <details>" line per case, then
# "N passed, M failed"; the exit status is non-zero on any failure (124: VM
# timeout, 125: harness error).
#
# usage: integration/cgroup2-vm/run.sh [--no-lib] [--keep] [CASE...]
#   --no-lib   skip hull-cgroups' own v2 tests (no test build, quicker)
#   --keep     keep the payload directory (printed) for a rerun by hand:
#              ../shared/cgroup2-vm/run-in-cgroup2-vm.sh DIR [CASE...]
#   CASE...    run only the hull cases whose name starts with one of these
#              (e.g. oom pause); the library tests are not filtered
# env: CARGO_TARGET_DIR (default <repo>/target), CARGO_BUILD_JOBS,
#      CG2VM_RUNNER (path of run-in-cgroup2-vm.sh), CG2VM_* (see the VM README)
set -euo pipefail

prog=integration/cgroup2-vm/run.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null) || repo=$(cd "$here/../.." && pwd)
die() { echo "$prog: $*" >&2; exit 125; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

lib=1 keep=0 cases=()
while (($#)); do
    case $1 in
        --no-lib) lib=0 ;;
        --keep) keep=1 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) cases+=("$1") ;;
    esac
    shift
done

runner=${CG2VM_RUNNER:-$repo/../shared/cgroup2-vm/run-in-cgroup2-vm.sh}
[[ -f $runner ]] || die "no cgroup2 VM runner at $runner: it lives in shared/cgroup2-vm beside the repository clone (set CG2VM_RUNNER to use another path)"
command -v jq >/dev/null || die "jq is required (apt-get install jq)"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
target=x86_64-unknown-linux-gnu
# The VM has only busybox: everything that runs there is linked statically.
static_flags="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
cd "$repo"

t0=$(now)
echo "==> building a static hull (release, $target)" >&2
RUSTFLAGS=$static_flags cargo build --release -p hull --target "$target"
hull=$CARGO_TARGET_DIR/$target/release/hull
[[ -x $hull ]] || die "no binary at $hull"
is_static() {
    if command -v readelf >/dev/null; then
        if readelf -lW "$1" | grep -q 'program interpreter' || readelf -dW "$1" | grep -q '(NEEDED)'; then
            return 1
        fi
    elif ldd "$1" 2>/dev/null | grep -q '=>'; then
        return 1
    fi
}
is_static "$hull" || die "$hull is not statically linked"

libexe=
if ((lib)); then
    echo "==> building hull-cgroups' static v2 test binary" >&2
    libexe=$(RUSTFLAGS=$static_flags cargo test -p hull-cgroups --test v2_vm --no-run \
        --target "$target" --message-format=json-render-diagnostics |
        sed -n 's/.*"executable":"\([^"]*v2_vm[^"]*\)".*/\1/p' | tail -n 1)
    [[ -n $libexe && -x $libexe ]] || die "no v2_vm test executable built"
    is_static "$libexe" || die "$libexe is not statically linked"
fi
t1=$(now)

# The payload: hull, a shared busybox rootfs, one bundle per container.
pay=$(mktemp -d /tmp/hull-cg2vm-e2e.XXXXXX)
# Readable by the VM's unprivileged user too (the rootless case).
chmod 755 "$pay"
if ((keep)); then
    trap 'echo "$prog: payload kept in $pay" >&2' EXIT
else
    trap 'rm -rf "$pay"' EXIT
fi
cp "$hull" "$pay/hull"
[[ -z $libexe ]] || cp "$libexe" "$pay/hull-cgroups-v2-tests"
cp "$here/vm-test.sh" "$pay/test"
chmod +x "$pay/test"
HULL=$pay/hull bash "$repo/hack/mkbundle.sh" "$pay/base" -- true >/dev/null
mv "$pay/base/rootfs" "$pay/rootfs"
mv "$pay/base/config.json" "$pay/base.json"
rmdir "$pay/base"
# mkbundle.sh hard-links the applet symlinks to each other. busybox cpio (which
# packs the VM's initramfs) stores a set of hard links' data once, the others
# with size 0, and the kernel unpacks those as empty symlinks: make each its own.
find "$pay/rootfs" -type l -links +1 -print0 |
    perl -0ne 'chomp; my $t = readlink($_) // die "readlink $_: $!\n";
        unlink($_) or die "unlink $_: $!\n"; symlink($t, $_) or die "symlink $_: $!\n";'

# bundle NAME JQ-FILTER: bundles/NAME/config.json, the base config with a
# shared read-only rootfs, no terminal, and its cgroup at /hull-test/NAME
# (absolute: the test itself runs in /runner, which holds processes, and a
# v2 cgroup with processes cannot pass controllers to children).
bundle() {
    mkdir -p "$pay/bundles/$1"
    jq --arg id "$1" '
        .process.terminal = false
        | .root.path = "../../rootfs"
        | .linux.cgroupsPath = ("/hull-test/" + $id)
        | '"$2" "$pay/base.json" >"$pay/bundles/$1/config.json"
}
sleeper='.process.args = ["sleep", "100000"]'
bundle cgns '.process.args = ["sh", "-c", "cat /proc/self/cgroup; cat /sys/fs/cgroup/pids.max"]
    | .linux.namespaces += [{"type": "cgroup"}]
    | .linux.resources.pids = {"limit": 42}'
bundle limits "$sleeper"' | .linux.resources.cpu = {"shares": 1024, "quota": 50000, "period": 100000}
    | .linux.resources.memory = {"limit": 67108864, "reservation": 16777216, "swap": 100663296}'
bundle oom "$sleeper"' | .linux.resources.memory = {"limit": 33554432, "swap": 33554432}'
bundle pids "$sleeper"' | .linux.resources.pids = {"limit": 10}'
dev='.linux.devices = [{"path": "/dev/hulltest", "type": "c", "major": 7, "minor": 250,
        "fileMode": 438, "uid": 0, "gid": 0}]
    | .process.args = ["sh", "-c", "cat /dev/hulltest; echo x >/dev/null && echo null-ok"]'
bundle devices "$dev"
bundle devallow "$dev"' | .linux.resources.devices += [{"allow": true, "type": "c", "major": 7, "minor": 250, "access": "rwm"}]'
bundle freeze '.process.args = ["sh", "-c", "while :; do :; done"]'
bundle killall '.process.args = ["sh", "-c", "sleep 100000 & sleep 100000 & sleep 100000 & wait"]'
bundle dflt '.process.args = ["cat", "/proc/self/cgroup"] | del(.linux.cgroupsPath)'
bundle dflt-limits '.process.args = ["cat", "/proc/self/cgroup"] | del(.linux.cgroupsPath)
    | .linux.resources.memory = {"limit": 67108864}'
# Rootless (`hull spec --rootless`'s changes, uid/gid 1000 mapped to root)
# in a cgroup below a subtree delegated to user 1000, with a pids limit.
bundle rootless "$sleeper"' | .linux.namespaces = ([.linux.namespaces[] | select(.type != "network")] + [{"type": "user"}])
    | .linux.uidMappings = [{"containerID": 0, "hostID": 1000, "size": 1}]
    | .linux.gidMappings = [{"containerID": 0, "hostID": 1000, "size": 1}]
    | del(.linux.resources.devices)
    | .mounts = [.mounts[] | select(.type != "cgroup")
        | if .destination == "/sys" then {"destination": "/sys", "type": "none", "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]} else . end
        | if .destination == "/dev/pts" then .options -= ["gid=5"] else . end]
    | .linux.cgroupsPath = "/rl-deleg/c1"
    | .linux.resources.pids = {"limit": 12}'
# A CPU no machine has: the kernel refuses cpuset.cpus after the cgroup exists.
bundle badcpus "$sleeper"' | .linux.resources.cpu = {"cpus": "1000"}'

echo "==> running the suite in the cgroup2 VM (payload $(du -sh "$pay" | cut -f1))" >&2
set +e
bash "$runner" "$pay" "${cases[@]}"
rc=$?
set -e
t2=$(now)
echo "$prog: build $(secs "$t0" "$t1") s, VM run $(secs "$t1" "$t2") s (exit $rc)" >&2
exit "$rc"
