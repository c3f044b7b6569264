#!/usr/bin/env bash
# Drive hull-shim (containerd-shim-hull-v2) through a real containerd
# (Debian's 1.6): `ctr run --runtime io.containerd.hull.v2`. Runs inside a
# private mount namespace (the caller uses `unshare -m --propagation
# private`) where /run/containerd is a bind of a scratch directory, so
# nothing of containerd touches the host's /run. containerd finds the shim,
# and the shim finds hull, on the PATH: BINDIR holds both.
#
# Prints "key=value" lines the test checks, and "shim-pid=N" for every
# shim it saw, so the caller can check they are gone.
#
# usage: shim-client.sh BINDIR ROOTFS SCRATCH NAMESPACE TAG SCENARIO
#   container ids are <name>-TAG (unique per run: they name cgroups);
#   SCENARIO: foreground | detached | tty | log-uri | dead-shim
set -euo pipefail
trap '[[ $- == *e* ]] && echo "shim-client.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
bindir=$1 rootfs=$2 scratch=$3 ns=$4 tag=$5 scenario=$6
fg=fg-$tag bg=bg-$tag tty=tty-$tag logc=log-$tag dead=dead-$tag
mkdir -p "$scratch"/{root,state,run,logs} /run/containerd
mount --bind "$scratch/run" /run/containerd
cat >"$scratch/config.toml" <<TOML
version = 2
root = "$scratch/root"
state = "$scratch/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$scratch/containerd.sock"
TOML
PATH=$bindir:$PATH containerd --config "$scratch/config.toml" >"$scratch/containerd.log" 2>&1 &
daemon=$!
ctr=(ctr --address "$scratch/containerd.sock" -n "$ns")
events_pid=

cleanup() {
    # Whatever a failure left: tasks killed and deleted through containerd
    # (their shims exit), then the daemon, all by PID.
    local id
    for id in $("${ctr[@]}" task ls -q 2>/dev/null); do
        "${ctr[@]}" task kill -s KILL "$id" >/dev/null 2>&1 || true
        for _ in $(seq 50); do "${ctr[@]}" task ls 2>/dev/null | grep -q "^$id .*STOPPED" && break; sleep 0.1; done
        "${ctr[@]}" task delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $("${ctr[@]}" container ls -q 2>/dev/null); do
        "${ctr[@]}" container delete "$id" >/dev/null 2>&1 || true
    done
    [[ -n $events_pid ]] && { kill "$events_pid" 2>/dev/null || true; wait "$events_pid" 2>/dev/null || true; }
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do [[ -S $scratch/containerd.sock ]] && break; sleep 0.1; done

"${ctr[@]}" events >"$scratch/events.log" 2>&1 &
events_pid=$!
# ctr run [FLAGS] --rootfs ROOTFS ID CMD...
run() { "${ctr[@]}" run --runtime io.containerd.hull.v2 "$@"; }
task_dir() { echo "$scratch/state/io.containerd.runtime.v2.task/$ns/$1"; }
wait_stopped() {
    for _ in $(seq 100); do "${ctr[@]}" task ls | grep -q "^$1 .*STOPPED" && return 0; sleep 0.1; done
    return 1
}

foreground() {
    set +e
    run --rm --rootfs "$rootfs" "$fg" sh -c 'echo hello-from-hull-shim; echo pid=$$; exit 3' </dev/null
    echo "fg-status=$?"
    set -e
}

detached() {
    run -d --rootfs "$rootfs" "$bg" sh -c 'echo started; exec sleep 600'
    echo "shim-pid=$(cat "$(task_dir "$bg")/shim.pid")"
    "${ctr[@]}" task ls
    "${ctr[@]}" task ps "$bg"
    set +e
    "${ctr[@]}" task exec --exec-id e1 "$bg" sh -c 'echo exec-ran; exit 5'
    echo "exec-status=$?"
    set -e
    "${ctr[@]}" task exec -d --exec-id e2 "$bg" sleep 300
    echo "ps-with-exec-lines=$("${ctr[@]}" task ps "$bg" | grep -c e2 || true)"
    "${ctr[@]}" task pause "$bg"
    echo "paused-status=$("${ctr[@]}" task ls | awk -v id="$bg" '$1 == id { print $3 }')"
    "${ctr[@]}" task resume "$bg"
    echo "resumed-status=$("${ctr[@]}" task ls | awk -v id="$bg" '$1 == id { print $3 }')"
    "${ctr[@]}" task metrics "$bg" >"$scratch/metrics.txt"
    cat "$scratch/metrics.txt"
    pid=$(cat "$(task_dir "$bg")/shim.pid")
    echo "shim-rss-kb=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")"
    echo "shim-threads=$(awk '/^Threads/ { print $2 }' "/proc/$pid/status")"
    "${ctr[@]}" task kill -s KILL "$bg"
    wait_stopped "$bg"
    "${ctr[@]}" task ls
    "${ctr[@]}" task delete "$bg" 2>&1 | sed 's/^/delete-output: /'
    "${ctr[@]}" container delete "$bg"
}

tty_run() {
    # ctr -t needs a terminal: script(1) gives it a pseudo-terminal.
    script -qec "${ctr[*]} run --runtime io.containerd.hull.v2 --rm -t --rootfs $rootfs $tty sh -c 'tty; echo tty-ok'" /dev/null </dev/null | tr -d '\r\0'
}

log_uri() {
    run -d --log-uri "file://$scratch/logs/c.log?max-size=100000&max-files=2" --rootfs "$rootfs" "$logc" \
        sh -c 'echo to-stdout; echo to-stderr >&2'
    wait_stopped "$logc"
    "${ctr[@]}" task delete "$logc" >/dev/null
    "${ctr[@]}" container delete "$logc"
    sed 's/^/log-file: /' "$scratch/logs/c.log"
}

# A shim killed under a running container: containerd runs the shim's
# `delete` action, which must remove the container (its processes, cgroups
# and files).
dead_shim() {
    run -d --rootfs "$rootfs" "$dead" sleep 600
    local dir pid
    dir=$(task_dir "$dead")
    pid=$(cat "$dir/shim.pid")
    echo "shim-pid=$pid"
    echo "container-pid=$("${ctr[@]}" task ls | awk -v id="$dead" '$1 == id { print $2 }')"
    kill -KILL "$pid"
    for _ in $(seq 100); do "${ctr[@]}" task ls -q | grep -q "^$dead$" || break; sleep 0.1; done
    echo "tasks-after-kill=$("${ctr[@]}" task ls -q | grep -c "^$dead$" || true)"
    "${ctr[@]}" container delete "$dead"
}

case $scenario in
    foreground) foreground ;;
    detached) detached ;;
    tty) tty_run ;;
    log-uri) log_uri ;;
    dead-shim) dead_shim ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac

echo "== after"
sleep 0.5
kill "$events_pid" 2>/dev/null || true
wait "$events_pid" 2>/dev/null || true
events_pid=
awk '{ print "event:", $5, $6 }' "$scratch/events.log"
echo "remaining-tasks=$("${ctr[@]}" task ls -q | wc -l)"
for _ in $(seq 50); do
    ls "$scratch/run/s" 2>/dev/null | grep -q . || break
    sleep 0.1
done
echo "remaining-sockets=$(ls "$scratch/run/s" 2>/dev/null | wc -l)"
# Mounts below the scratch dir other than the /run/containerd bind itself.
echo "remaining-mounts=$(grep -F "$scratch" /proc/self/mountinfo | grep -vc " /run/containerd " || true)"
