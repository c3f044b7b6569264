#!/usr/bin/env bash
# Drive hull through a real containerd (Debian's 1.6) and its runc shim:
# `ctr --runc-binary HULL`. Runs inside a private mount namespace (the caller
# uses `unshare -m --propagation private`) where /run/containerd is a bind of
# a scratch directory, so nothing of containerd touches the host's /run.
#
# usage: containerd-client.sh HULL ROOTFS SCRATCH
set -euo pipefail
hull=$1 rootfs=$2 scratch=$3
mkdir -p "$scratch"/{root,state,run} /run/containerd
mount --bind "$scratch/run" /run/containerd
cat >"$scratch/config.toml" <<TOML
version = 2
root = "$scratch/root"
state = "$scratch/state"
[grpc]
  address = "$scratch/containerd.sock"
TOML
containerd --config "$scratch/config.toml" >"$scratch/containerd.log" 2>&1 &
daemon=$!
stop() {
    # Shims exit once their tasks are deleted; the daemon goes by its PID.
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 100); do [[ -S $scratch/containerd.sock ]] && break; sleep 0.1; done
ctr=(ctr --address "$scratch/containerd.sock")

echo "== foreground"
"${ctr[@]}" run --rm --runc-binary "$hull" --rootfs "$rootfs" fg sh -c 'echo hello-from-containerd; echo pid=$$'
echo "== detached"
"${ctr[@]}" run -d --runc-binary "$hull" --rootfs "$rootfs" bg sleep 600
"${ctr[@]}" task ls
set +e
"${ctr[@]}" task exec --exec-id e1 bg sh -c 'echo exec-ran; exit 3'
echo "exec-status=$?"
set -e
"${ctr[@]}" task kill -s KILL bg
for _ in $(seq 100); do "${ctr[@]}" task ls | grep -q 'bg .*STOPPED' && break; sleep 0.1; done
"${ctr[@]}" task ls
# Killing the exited task again: containerd must see "already finished"
# (runc's "container not running"), not "unknown error after kill".
echo "kill-exited: $("${ctr[@]}" task kill -s KILL bg 2>&1 || true)"
"${ctr[@]}" task delete bg
"${ctr[@]}" container delete bg
echo "== remaining tasks: $("${ctr[@]}" task ls -q | wc -l)"
