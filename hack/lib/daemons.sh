# Shared by the side-by-side benchmarks (hack/bench-pull, hack/bench-run):
# start hulld and Debian's containerd on fresh roots under a work dir, wait
# for them, sample their memory, and stop everything again. Source it inside
# a private mount namespace (containerd gets /run/containerd bind-mounted
# from the work dir, so nothing reaches the host's /run).
#
# Callers set: work (the work dir), prog (for messages). The functions set
# hulld_pid, containerd_pid, made_run_dir, bound; daemons_stop undoes it all.

hulld_pid='' containerd_pid='' made_run_dir=0 bound=0

die() { echo "$prog: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

# stop_pid PID: TERM, up to 10 s to exit, then KILL (our own children only).
stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# wait_for WHAT LOG CMD...: retry CMD for up to 20 s; show LOG if it never
# succeeds (the work dir, logs included, is gone once we exit).
wait_for() {
    local what=$1 logfile=$2 i
    shift 2
    for ((i = 0; i < 200; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    tail -n 20 "$logfile" >&2
    die "$what did not come up in 20 s"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

hullctl_() { "$BENCH_HULLCTL" -a "$work/hull/hulld.sock" "$@"; }
ctr_() { ctr --address "$work/containerd/containerd.sock" "$@"; }

# start_hulld: hulld on $work/hull/{root,state}, socket $work/hull/hulld.sock,
# with its default config written out (a host /etc/hull/hulld.toml cannot
# change the run).
start_hulld() {
    log "hulld ($("$BENCH_HULLD" --version))"
    mkdir -p "$work/hull/root" "$work/hull/state"
    # The CNI config dir in the work dir too: hulld writes its default
    # network there (never into the host's /etc).
    "$BENCH_HULLD" config default |
        sed "s|^config_dir = \"/etc/hull/cni/net.d\"|config_dir = \"$work/hull/net.d\"|" >"$work/hull/hulld.toml"
    grep -q "^config_dir = \"$work/hull/net.d\"" "$work/hull/hulld.toml" || die "hulld's default config has no network.config_dir to move"
    "$BENCH_HULLD" --config "$work/hull/hulld.toml" --root "$work/hull/root" --state "$work/hull/state" \
        --address "$work/hull/hulld.sock" </dev/null >"$work/hull/hulld.log" 2>&1 &
    hulld_pid=$!
    wait_for hulld "$work/hull/hulld.log" hullctl_ version
    [[ $(<"$work/hull/state/hulld.pid") == "$hulld_pid" ]] || die "hulld.pid does not name the hulld we started"
}

# start_containerd: containerd (CRI plugin disabled: hulld has no CRI side)
# on $work/containerd/{root,state}, /run/containerd bound to a work dir.
# PATH is passed on: a containerd-shim-hull-v2 on it is runtime
# io.containerd.hull.v2.
start_containerd() {
    [[ $(readlink /proc/self/ns/mnt) != "$BENCH_HOST_MNTNS" ]] ||
        die "not in a private mount namespace; refusing to mount over /run/containerd"
    log "containerd ($(containerd --version))"
    mkdir -p "$work/containerd/root" "$work/containerd/state" "$work/containerd/run"
    if [[ ! -d /run/containerd ]]; then
        mkdir /run/containerd
        made_run_dir=1
    fi
    mount --bind "$work/containerd/run" /run/containerd
    bound=1
    cat >"$work/containerd/config.toml" <<EOF
version = 2
root = "$work/containerd/root"
state = "$work/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd/containerd.sock"
EOF
    containerd --config "$work/containerd/config.toml" </dev/null >"$work/containerd/containerd.log" 2>&1 &
    containerd_pid=$!
    wait_for containerd "$work/containerd/containerd.log" ctr_ version
}

# daemons_stop: both daemons, the registry, the /run/containerd bind.
daemons_stop() {
    stop_pid "$hulld_pid"
    stop_pid "$containerd_pid"
    if [[ -f $work/registry/registry.pid ]]; then "$repo/hack/registry/serve.sh" "$work/registry" --stop; fi
    if ((bound)); then umount /run/containerd || true; fi
    # The mount point itself is on the host's /run: remove it if we made it.
    if ((made_run_dir)); then rmdir /run/containerd 2>/dev/null || true; fi
}
