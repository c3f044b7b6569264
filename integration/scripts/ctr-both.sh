#!/usr/bin/env bash
# Run the same ctr commands against hulld and against Debian's containerd
# 1.6, writing each command's (normalised) output per daemon, so a test can
# compare them. Runs inside a private mount namespace (the caller uses
# `unshare -m --propagation private`): /run/containerd is a bind of a scratch
# directory there, so nothing of containerd touches the host's /run.
#
# usage: ctr-both.sh HULLD_SOCKET REGISTRY SCRATCH
#   writes SCRATCH/out/{hull,containerd}/NN-what (stdout, normalised) and
#   SCRATCH/out/{hull,containerd}/NN-what.rc (exit status)
set -euo pipefail
trap 'echo "ctr-both.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
hulld_socket=$1 registry=$2 scratch=$3
mkdir -p "$scratch"/{root,state,run,out/hull,out/containerd} /run/containerd
mount --bind "$scratch/run" /run/containerd
cat >"$scratch/config.toml" <<TOML
version = 2
root = "$scratch/root"
state = "$scratch/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$scratch/containerd.sock"
TOML
containerd --config "$scratch/config.toml" >"$scratch/containerd.log" 2>&1 &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [[ -S $scratch/containerd.sock ]] && break; sleep 0.1; done

# step DAEMON N WHAT CMD...: run ctr against DAEMON, keep stdout and status.
step() {
    local who=$1 n=$2 what=$3
    shift 3
    local socket=$hulld_socket
    [[ $who == containerd ]] && socket=$scratch/containerd.sock
    local out=$scratch/out/$who/$n-$what
    set +e
    ctr --address "$socket" "$@" >"$out.raw" 2>"$out.err"
    echo $? >"$out.rc"
    set -e
}

# Keep what both must agree on: digests, keys, kinds; not sizes, ages or
# paths, which differ between two daemons with different roots.
norm_table() { awk 'NR > 1 { print $1, $2, $3 }' | sort; }

for who in hull containerd; do
    step "$who" 01 version version
    step "$who" 02 ns-create namespaces create other
    step "$who" 03 ns-ls namespaces ls -q
    step "$who" 04 pull images pull --plain-http "$registry/app:latest"
    step "$who" 05 images-ls images ls -q
    step "$who" 06 content-ls content ls -q
    step "$who" 07 fetch content fetch --plain-http "$registry/multi:latest"
    step "$who" 08 content-ls-after content ls -q
    step "$who" 09 snapshots-ls snapshots ls
    step "$who" 10 snapshots-tree snapshots tree
    step "$who" 11 snapshots-usage snapshots usage
    top=$(awk 'NR > 1 && $3 == "Committed" { print $1; exit }' "$scratch/out/$who/09-snapshots-ls.raw")
    step "$who" 12 prepare snapshots prepare work "$top"
    step "$who" 13 mounts snapshots mounts /mnt/target work
    step "$who" 14 commit snapshots commit committed-work work
    step "$who" 15 snapshots-ls-committed snapshots ls
    step "$who" 16 rm snapshots rm committed-work
    step "$who" 17 snapshots-ls-final snapshots ls
    # (awk, not head: head's early exit fails the pipeline under pipefail)
    digest=$(sort "$scratch/out/$who/06-content-ls.raw" | awk 'NR == 1')
    step "$who" 18 content-get content get "$digest"
    step "$who" 19 images-rm images rm "$registry/app:latest"
done

for who in hull containerd; do
    dir=$scratch/out/$who
    for f in "$dir"/*.raw; do
        base=${f%.raw}
        case $base in
            *-snapshots-ls* | *-snapshots-usage) norm_table <"$f" >"$base" ;;
            *-snapshots-tree) sed 's/[[:space:]]*$//' "$f" >"$base" ;;
            *-mounts) awk '{ print $1, $2, $3 }' "$f" >"$base" ;;
            *-content-get) sha256sum <"$f" | cut -d' ' -f1 >"$base" ;;
            *-version | *-pull | *-fetch) : >"$base" ;;
            *) sort "$f" >"$base" ;;
        esac
    done
done
