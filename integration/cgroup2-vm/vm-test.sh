#!/bin/sh
# Runs inside the cgroup2 VM (busybox sh, root, cgroup2 at /sys/fs/cgroup with
# every controller enabled in the root's subtree_control), as the payload's
# `test` program that integration/cgroup2-vm/run.sh builds: the payload
# holds a static `hull`, a busybox rootfs, bundles/<case>/config.json and,
# optionally, hull-cgroups-v2-tests (the library's own v2 suite).
#
# Prints "ok <case>" or "FAIL <case>: <details>" per case, then
# "N passed, M failed"; exits 1 on any failure.
#
# usage: ./test [CASE-PREFIX...]   (filters the hull cases only)

# shellcheck disable=SC2016 # the single-quoted scripts run in the container
P=$(cd "$(dirname "$0")" && pwd)
B=$P/bundles
ROOT=/run/hull-test
CG=/sys/fs/cgroup
LOG=/tmp/hull-logs
mkdir -p "$LOG"
pass=0 fail=0

ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
# expect NAME WANT GOT [CONTEXT]
expect() {
    if [ "$3" = "$2" ]; then ok "$1"; else bad "$1" "want '$2', got '$3'${4:+ ($4)}"; fi
}
hull() { "$P/hull" --root "$ROOT" "$@"; }
cgdir() { echo "$CG/hull-test/$1"; }
# The contents of a file on one line (or the error).
rd() { { tr '\n' ' ' <"$1"; } 2>&1 | sed 's/ *$//'; }
# A string on one line, cut short, for FAIL details.
oneline() { echo "$1" | tr '\n' ' ' | sed 's/ *$//' | cut -c1-400; }
# key VALUE from a flat keyed file (cgroup.events, memory.events, cpu.stat).
key() { sed -n "s/^$2 //p" "$1" 2>/dev/null; }
# until SECONDS CMD...: poll CMD every 0.1 s.
until_ok() {
    n=$(($1 * 10))
    shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}
status_of() { hull state "$1" 2>/dev/null | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p'; }
is_status() { [ "$(status_of "$1")" = "$2" ]; }
nprocs() { wc -l <"$1/cgroup.procs" 2>/dev/null || echo 0; }
nprocs_ge() { [ "$(nprocs "$1")" -ge "$2" ]; }
usage() { key "$1/cpu.stat" usage_usec; }
# A log file's contents on one line, for FAIL details.
flat() { tr '\n' ' ' <"$1" 2>/dev/null | sed 's/ *$//' | cut -c1-400; }
want() {
    [ $# -gt 1 ] || return 0
    c=$1
    shift
    for f in "$@"; do
        case $c in "$f"*) return 0 ;; esac
    done
    return 1
}
gone() { [ ! -e "$1" ]; }
procs_empty() { [ -z "$(cat "$1/cgroup.procs" 2>/dev/null)" ]; }
# Detached container: create+start with stdio to a log; 0 on success.
start_detached() {
    hull run -d -b "$B/$1" --pid-file "$LOG/$1.pid" "$1" </dev/null >"$LOG/$1.out" 2>&1
}
cleanup() { hull delete --force "$1" >/dev/null 2>&1; }

# --- hull-cgroups' own v2 tests (in the root cgroup, where they create
# their cgroups below their own) --------------------------------------------
if [ -x "$P/hull-cgroups-v2-tests" ]; then
    echo "==> hull-cgroups v2 tests" >&2
    HULL_CG2VM=1 RUST_BACKTRACE=1 "$P/hull-cgroups-v2-tests" --test-threads=1 >"$LOG/lib.out" 2>"$LOG/lib.err"
    lrc=$?
    cat "$LOG/lib.out" "$LOG/lib.err" >&2
    n=0
    while read -r w name dots result; do
        if [ "$w" != test ] || [ "$dots" != "..." ]; then continue; fi
        n=$((n + 1))
        case $result in
            ok) ok "lib/$name" ;;
            ignored*) ;;
            *) bad "lib/$name" "$result (see the test output on stderr)" ;;
        esac
    done <"$LOG/lib.out"
    if [ "$lrc" != 0 ] && [ "$fail" = 0 ]; then
        bad lib "the test binary exited $lrc after $n results"
    fi
fi

# --- hull cases: the test script moves to a leaf cgroup first -------------
mkdir -p "$CG/runner"
echo $$ >"$CG/runner/cgroup.procs"
echo "==> hull cases (caller in $(cat /proc/self/cgroup))" >&2
"$P/hull" --version >&2 || bad hull-version "the static hull does not run"

# cgroup namespace, and the cgroup mount inside showing the container's own
# cgroup; `run` removes the cgroup at exit.
if want cgroupns "$@"; then
    out=$(hull run -b "$B/cgns" cgns </dev/null 2>"$LOG/cgns.err")
    rc=$?
    expect cgroupns "0 0::/" "$rc $(echo "$out" | sed -n 1p)" "stderr: $(flat "$LOG/cgns.err")"
    expect cgroup-mount 42 "$(echo "$out" | sed -n 2p)" "pids.max inside the container"
    if gone "$(cgdir cgns)"; then ok run-removes-cgroup; else bad run-removes-cgroup "$(cgdir cgns) left"; fi
fi

# Limits written at create, before the process runs; update.
if want limits "$@" || want update "$@"; then
    d=$(cgdir limits)
    if hull create -b "$B/limits" --pid-file "$LOG/limits.pid" limits </dev/null >"$LOG/limits.out" 2>&1; then
        pid=$(cat "$LOG/limits.pid")
        expect limits/placement "0::/hull-test/limits" "$(rd "/proc/$pid/cgroup")" "init of a created container"
        expect limits/cpu.weight 39 "$(rd "$d/cpu.weight")" "shares 1024"
        expect limits/cpu.max "50000 100000" "$(rd "$d/cpu.max")"
        expect limits/memory.max 67108864 "$(rd "$d/memory.max")"
        expect limits/memory.low 16777216 "$(rd "$d/memory.low")" "reservation"
        expect limits/memory.swap.max 33554432 "$(rd "$d/memory.swap.max")" "swap 96M - limit 64M"
        hull start limits >"$LOG/limits.start" 2>&1 || bad limits/start "$(flat "$LOG/limits.start")"
        if hull update --memory 128m limits >"$LOG/upd.out" 2>&1; then
            expect update/memory.max 134217728 "$(rd "$d/memory.max")"
        else
            bad update/memory.max "hull update --memory 128m: $(flat "$LOG/upd.out")"
        fi
        if hull update --cpu-quota 25000 --pids-limit 20 limits >"$LOG/upd2.out" 2>&1; then
            expect update/cpu.max+pids.max "25000 100000|20" "$(rd "$d/cpu.max")|$(rd "$d/pids.max")"
        else
            bad update/cpu.max+pids.max "$(flat "$LOG/upd2.out")"
        fi
    else
        bad limits/create "$(flat "$LOG/limits.out")"
    fi
    cleanup limits
fi

# memory.max OOM kill: a process exec'd into a 32 MiB container (swap equal
# to the limit: no swap) grows a string until the OOM killer takes it.
if want oom "$@" || want events "$@"; then
    d=$(cgdir oom)
    if start_detached oom; then
        expect oom/memory.swap.max 0 "$(rd "$d/memory.swap.max")"
        hull exec oom sh -c 'x=1234567890; while :; do x=$x$x$x$x; done' </dev/null >"$LOG/oom.exec" 2>&1
        rc=$?
        kills=$(key "$d/memory.events" oom_kill)
        expect oom/kill "137 yes" "$rc $([ "${kills:-0}" -gt 0 ] && echo yes || echo "no (oom_kill ${kills:-?})")" \
            "exec status, memory.events: $(rd "$d/memory.events")"
        ev=$(hull events --stats oom 2>&1)
        mem=$(echo "$ev" | grep -o '"memory":{"usage":{[^}]*}')
        failcnt=$(echo "$mem" | sed -n 's/.*"failcnt":\([0-9]*\).*/\1/p')
        limit=$(echo "$mem" | sed -n 's/.*"limit":\([0-9]*\).*/\1/p')
        if [ "$limit" = 33554432 ] && [ "${failcnt:-0}" -gt 0 ]; then
            ok events/stats-failcnt
        else
            bad events/stats-failcnt "want memory.usage limit 33554432 and failcnt > 0: $(oneline "$ev")"
        fi
        expect oom/container-survives running "$(status_of oom)" "the init (sleep) is not the biggest process"
    else
        bad oom/start "$(flat "$LOG/oom.out")"
    fi
    cleanup oom
fi

# pids.max stops forks; then kill --all (cgroup.kill) takes every process.
if want pids "$@" || want kill "$@"; then
    d=$(cgdir pids)
    if start_detached pids; then
        expect pids/pids.max 10 "$(rd "$d/pids.max")"
        hull exec pids sh -c 'i=0; while [ $i -lt 20 ]; do sleep 100000 & i=$((i+1)); done; echo all-forked' \
            </dev/null >"$LOG/pids.exec" 2>&1
        rc=$?
        cur=$(rd "$d/pids.current")
        max=$(key "$d/pids.events" max)
        if [ "$rc" != 0 ] && ! grep -q all-forked "$LOG/pids.exec" && [ "${max:-0}" -gt 0 ] &&
            [ "$cur" -le 10 ] 2>/dev/null; then
            ok pids/forks-stopped
        else
            bad pids/forks-stopped "exec status $rc, pids.current $cur, pids.events max ${max:-?}, output: $(flat "$LOG/pids.exec")"
        fi
        before=$(nprocs "$d")
        if hull kill --all pids KILL >"$LOG/kill.out" 2>&1 && until_ok 20 procs_empty "$d"; then
            if until_ok 10 is_status pids stopped; then
                ok kill-all
            else
                bad kill-all "processes gone, state says $(status_of pids)"
            fi
        else
            bad kill-all "$before processes before; after: $(rd "$d/cgroup.procs"); $(flat "$LOG/kill.out")"
        fi
        hull delete pids >"$LOG/pids.del" 2>&1
        rc=$?
        left=
        gone "$d" || left="$left cgroup $d;"
        gone "$ROOT/pids" || left="$left state $ROOT/pids;"
        if [ "$rc" = 0 ] && [ -z "$left" ]; then ok kill-all/delete; else
            bad kill-all/delete "exit $rc, left:${left:- nothing} $(flat "$LOG/pids.del")"
        fi
    else
        bad pids/start "$(flat "$LOG/pids.out")"
    fi
    cleanup pids
fi

# Devices: deny-all + runc's defaults in an eBPF program. The linux.devices
# node c 7:250 is created but not allowed: EPERM. With a rule allowing it,
# the open reaches the driver, which refuses it with an error of its own
# (EOPNOTSUPP from vcs in the VM's kernel), not EPERM.
if want devices "$@"; then
    out=$(hull run -b "$B/devices" devices </dev/null 2>&1)
    rc=$?
    case $out in
        *"Operation not permitted"*) ok devices/denied-node-eperm ;;
        *) bad devices/denied-node-eperm "want EPERM opening /dev/hulltest (c 7:250): rc $rc, $(oneline "$out")" ;;
    esac
    case $out in
        *null-ok*) ok devices/dev-null ;;
        *) bad devices/dev-null "writing /dev/null failed: rc $rc, $(oneline "$out")" ;;
    esac
    out=$(hull run -b "$B/devallow" devallow </dev/null 2>&1)
    case $out in
        *"Operation not permitted"*) bad devices/allowed-node "allowed c 7:250 still EPERM: $(oneline "$out")" ;;
        *"can't open '/dev/hulltest'"* | *null-ok*) ok devices/allowed-node ;;
        *) bad devices/allowed-node "unexpected: $(oneline "$out")" ;;
    esac
    cleanup devices
    cleanup devallow
fi

# pause/resume via cgroup.freeze; delete --force of a paused container.
if want pause "$@" || want resume "$@" || want delete "$@"; then
    d=$(cgdir freeze)
    if start_detached freeze; then
        pid=$(cat "$LOG/freeze.pid")
        sleep 1
        if hull pause freeze >"$LOG/pause.out" 2>&1; then
            u1=$(usage "$d")
            sleep 2
            u2=$(usage "$d")
            expect pause "1 paused $u1" "$(key "$d/cgroup.events" frozen) $(status_of freeze) $u2" \
                "frozen, state, cpu usage_usec after 2 s (was $u1)"
        else
            bad pause "$(flat "$LOG/pause.out")"
        fi
        if hull resume freeze >"$LOG/resume.out" 2>&1; then
            u1=$(usage "$d")
            sleep 2
            u2=$(usage "$d")
            adv=no
            [ "${u2:-0}" -gt "${u1:-0}" ] && adv=yes
            expect resume "0 running yes" "$(key "$d/cgroup.events" frozen) $(status_of freeze) $adv" \
                "frozen, state, cpu usage advancing ($u1 -> $u2)"
        else
            bad resume "$(flat "$LOG/resume.out")"
        fi
        hull pause freeze >"$LOG/pause2.out" 2>&1 || bad delete-force-paused "second pause: $(flat "$LOG/pause2.out")"
        if hull delete --force freeze >"$LOG/delf.out" 2>&1; then
            left=
            gone "$d" || left="$left cgroup $d;"
            gone "$ROOT/freeze" || left="$left state $ROOT/freeze;"
            kill -0 "$pid" 2>/dev/null && left="$left process $pid;"
            if [ -z "$left" ]; then ok delete-force-paused; else bad delete-force-paused "left:$left"; fi
        else
            bad delete-force-paused "$(flat "$LOG/delf.out")"
        fi
    else
        bad pause "start: $(flat "$LOG/freeze.out")"
    fi
    cleanup freeze
fi

# kill --all on a container with several processes, the init included.
if want kill "$@"; then
    d=$(cgdir killall)
    if start_detached killall; then
        until_ok 20 nprocs_ge "$d" 4
        n=$(nprocs "$d")
        if hull kill --all killall KILL >"$LOG/killall.out" 2>&1 && until_ok 20 procs_empty "$d"; then
            ok kill-all/several
        else
            bad kill-all/several "$n processes before; left: $(rd "$d/cgroup.procs"); $(flat "$LOG/killall.out")"
        fi
    else
        bad kill-all/several "start: $(flat "$LOG/killall.out")"
    fi
    cleanup killall
fi

# Default placement (no cgroupsPath): <caller's cgroup>/<id>. The caller is
# moved back to the root cgroup, the only v2 cgroup that may hold processes
# and still pass controllers down.
if want default "$@"; then
    out=$(sh -c 'echo $$ >/sys/fs/cgroup/cgroup.procs && exec "$0" --root "$1" run -b "$2" dflt' \
        "$P/hull" "$ROOT" "$B/dflt" </dev/null 2>&1)
    rc=$?
    expect default-cgroup "0 0::/dflt gone" "$rc $out $(gone "$CG/dflt" && echo gone || echo left)"
fi

# Default placement from a cgroup other than the root that holds a process
# (the caller): cgroup v2 lets no controller reach its children. hull must
# either run the container there or refuse with its "no internal processes"
# hint, and in both cases leave the caller's cgroup as it was and nothing
# behind. Without limits in /busy-a, with a memory limit in /busy-b.
if want nonleaf "$@"; then
    # from CGROUP BUNDLE ID: `hull run` from a fresh CGROUP of its own.
    from() {
        mkdir -p "$1"
        sh -c 'echo $$ >"$0/cgroup.procs" && exec "$1" --root "$2" run -b "$3" "$4"' \
            "$1" "$P/hull" "$ROOT" "$B/$2" "$3" </dev/null 2>&1
    }
    subdirs() { (cd "$1" && for f in *; do [ -d "$f" ] && echo "$f"; done); }
    for v in a b; do
        busy=$CG/busy-$v
        if [ $v = a ]; then bundle=dflt name=nonleaf; else bundle=dflt-limits name=nonleaf/limits; fi
        out=$(from "$busy" "$bundle" "nonleaf-$v")
        rc=$?
        case "$rc $out" in
            "0 0::/busy-$v/nonleaf-$v") ok "$name/runs-or-refused-clearly" ;;
            [1-9]*"no internal processes"*) ok "$name/runs-or-refused-clearly" ;;
            *) bad "$name/runs-or-refused-clearly" "exit $rc: $(oneline "$out")" ;;
        esac
        expect "$name/caller-cgroup-untouched" "[]" "[$(rd "$busy/cgroup.subtree_control")]" \
            "cgroup.subtree_control of the caller's cgroup $busy"
        left=$(subdirs "$busy")
        if [ -z "$left" ] && gone "$ROOT/nonleaf-$v"; then
            ok "$name/nothing-left"
        else
            bad "$name/nothing-left" "cgroups left in $busy: $(oneline "$left")"
        fi
        for f in $left; do rmdir "$busy/$f"; done
        rmdir "$busy" 2>/dev/null
    done
fi

# A create that fails after the cgroup exists (the kernel refuses a limit)
# removes the cgroup again, like the state directory.
if want create-failure "$@"; then
    out=$(hull create -b "$B/badcpus" badcpus </dev/null 2>&1)
    rc=$?
    left=
    gone "$(cgdir badcpus)" || left="$left cgroup $(cgdir badcpus);"
    gone "$ROOT/badcpus" || left="$left state $ROOT/badcpus;"
    if [ "$rc" != 0 ] && [ -z "$left" ]; then
        ok create-failure-cleanup
    else
        bad create-failure-cleanup "exit $rc, left:${left:- nothing} $(oneline "$out")"
    fi
    cleanup badcpus
    rmdir "$(cgdir badcpus)" 2>/dev/null
fi

# Rootless with a delegated subtree (as systemd delegates a user's): user
# 1000 owns /rl-deleg and runs hull from /rl-deleg/caller; hull makes the
# container's cgroup below, with its limit, and removes it at delete.
if want rootless "$@"; then
    grep -q '^rl:' /etc/passwd || echo 'rl:x:1000:1000::/tmp:/bin/sh' >>/etc/passwd
    grep -qs '^rl:' /etc/group || echo 'rl:x:1000:' >>/etc/group
    d=$CG/rl-deleg
    mkdir -p "$d/caller" /tmp/rl-xdg
    for f in "$d" "$d/caller" /tmp/rl-xdg; do chown 1000:1000 "$f"; done
    for f in cgroup.procs cgroup.threads cgroup.subtree_control; do
        chown 1000:1000 "$d/$f" "$d/caller/$f"
    done
    as_rl() {
        sh -c 'echo $$ >'"$d/caller/cgroup.procs"'; exec su -s /bin/sh rl -c "$0"' \
            "XDG_RUNTIME_DIR=/tmp/rl-xdg $P/hull $*" </dev/null
    }
    if as_rl "create -b $B/rootless rl1" >"$LOG/rl.out" 2>&1 && as_rl start rl1 >>"$LOG/rl.out" 2>&1; then
        c=$d/c1
        expect rootless/pids.max 12 "$(rd "$c/pids.max")" "$(flat "$LOG/rl.out")"
        expect rootless/placement 1 "$(nprocs "$c")" "the container's init in $c"
        expect rootless/state-dir yes "$([ -d /tmp/rl-xdg/hull/rl1 ] && echo yes)" "state under XDG_RUNTIME_DIR"
        as_rl kill rl1 KILL >>"$LOG/rl.out" 2>&1
        until_ok 5 procs_empty "$c"
        as_rl delete rl1 >>"$LOG/rl.out" 2>&1
        if gone "$c" && gone /tmp/rl-xdg/hull/rl1; then ok rootless/deleted; else bad rootless/deleted "$(flat "$LOG/rl.out")"; fi
    else
        bad rootless "create/start as user 1000: $(flat "$LOG/rl.out")"
    fi
    as_rl delete --force rl1 >/dev/null 2>&1
    rmdir "$d/c1" "$d/caller" "$d" 2>/dev/null
fi

# Nothing may be left behind.
for id in $(hull list -q 2>/dev/null); do
    bad leftover "container $id still listed"
    cleanup "$id"
done
rmdir "$CG/hull-test" 2>/dev/null

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
