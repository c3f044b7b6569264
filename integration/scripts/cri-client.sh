#!/usr/bin/env bash
# Drive hull through containerd's CRI (Debian's containerd 1.6, runc runtime
# with BinaryName = HULL) with the real CRI client, crictl: a pod on the
# host network (no CNI), a container in it that exits, then stopp and rmp,
# which containerd can only do when the runtime's `kill` of an exited
# container answers as runc does ("container not running").
#
# Runs inside private mount and pid namespaces (the caller uses `unshare
# --mount --propagation private --pid --fork --mount-proc`): /run/containerd
# is a bind of a scratch directory, so containerd, its shims and hull's
# state live in SCRATCH, and whatever is still running when the script
# ends (a failed run's pods and shims) dies with the pid namespace.
#
# usage: cri-client.sh HULL CRICTL SCRATCH IMAGE_LAYOUT CGROUP_PARENT
#   IMAGE_LAYOUT   an OCI layout of a busybox image (hack/registry/mkimages.sh
#                  "small"); a "pause" image (busybox sleeping) is made from it.
#   CGROUP_PARENT  the pod's cgroup_parent: relative, so below the caller's
#                  own cgroup, where the caller can check and remove it.
set -euo pipefail
hull=$1 crictl_bin=$2 scratch=$3 layout=$4 cgroup_parent=$5
mkdir -p "$scratch"/{root,state,run,cni-conf,cni-bin,logs} /run/containerd
mount --bind "$scratch/run" /run/containerd

# --- images: the busybox layout as is, and a sandbox image that sleeps ------
pause=$scratch/pause-layout
cp -a "$layout" "$pause"
blob() { echo "$pause/blobs/sha256/${1#sha256:}"; }
put() { # FILE -> "sha256:HEX SIZE", stored as a blob
    local hex
    hex=$(sha256sum "$1" | cut -d' ' -f1)
    cp "$1" "$pause/blobs/sha256/$hex"
    echo "sha256:$hex $(stat -c %s "$1")"
}
manifest=$(jq -r '.manifests[0].digest' "$pause/index.json")
config=$(jq -r '.config.digest' "$(blob "$manifest")")
jq -c '.config.Entrypoint = ["/bin/busybox", "sleep", "2147483647"] | .config.Cmd = null' \
    "$(blob "$config")" >"$scratch/pause-config.json"
read -r cdigest csize < <(put "$scratch/pause-config.json")
jq -c --arg d "$cdigest" --argjson s "$csize" '.config.digest = $d | .config.size = $s' \
    "$(blob "$manifest")" >"$scratch/pause-manifest.json"
read -r mdigest msize < <(put "$scratch/pause-manifest.json")
jq -c --arg d "$mdigest" --argjson s "$msize" \
    '.manifests[0].digest = $d | .manifests[0].size = $s' "$pause/index.json" >"$scratch/pause-index.json"
cp "$scratch/pause-index.json" "$pause/index.json"
tar -C "$layout" -cf "$scratch/busybox.tar" .
tar -C "$pause" -cf "$scratch/pause.tar" .

cat >"$scratch/config.toml" <<TOML
version = 2
root = "$scratch/root"
state = "$scratch/state"
[grpc]
  address = "$scratch/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/hull-test/pause:latest"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Pods ask for oomScoreAdj -998, which needs CAP_SYS_RESOURCE (sandboxes
  # may lack it): no lower than containerd's own (0).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$scratch/cni-bin"
    conf_dir = "$scratch/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$hull"
        SystemdCgroup = false
TOML
containerd --config "$scratch/config.toml" >"$scratch/containerd.log" 2>&1 &
daemon=$!
sock=unix://$scratch/containerd.sock
: >"$scratch/crictl.yaml" # no config of the host's
crictl=("$crictl_bin" --config "$scratch/crictl.yaml" -r "$sock" -i "$sock" -t 30s)
ctr=(ctr --address "$scratch/containerd.sock" -n k8s.io)
tasks=$scratch/state/io.containerd.runtime.v2.task/k8s.io
stop() {
    # Whatever is left (a failed run) goes with its pods, or is deleted by
    # force with the runtime (its cgroups too); processes still running die
    # with the pid namespace when the script ends.
    for p in $("${crictl[@]}" pods -q 2>/dev/null); do
        "${crictl[@]}" stopp "$p" >/dev/null 2>&1 || true
        "${crictl[@]}" rmp -f "$p" >/dev/null 2>&1 || true
    done
    for dir in "$tasks"/*/; do
        [[ -d $dir ]] || continue
        "$hull" --root /run/containerd/runc/k8s.io delete --force "$(basename "$dir")" 2>/dev/null || true
    done
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 100); do [[ -S $scratch/containerd.sock ]] && break; sleep 0.1; done
"${ctr[@]}" images import --base-name localhost/hull-test/busybox "$scratch/busybox.tar" >/dev/null
"${ctr[@]}" images import --base-name localhost/hull-test/pause "$scratch/pause.tar" >/dev/null

cat >"$scratch/pod.json" <<JSON
{"metadata": {"name": "hull-pod", "namespace": "default", "uid": "hull-pod-uid", "attempt": 0},
 "log_directory": "$scratch/logs",
 "linux": {"cgroup_parent": "$cgroup_parent",
           "security_context": {"namespace_options": {"network": 2}}}}
JSON
cat >"$scratch/container.json" <<JSON
{"metadata": {"name": "exits"},
 "image": {"image": "localhost/hull-test/busybox:latest"},
 "command": ["/bin/sh", "-c", "echo hello-from-cri"],
 "log_path": "exits.log",
 "linux": {}}
JSON

pod=$("${crictl[@]}" runp "$scratch/pod.json")
echo "pod=$pod"
ctr_id=$("${crictl[@]}" create "$pod" "$scratch/container.json" "$scratch/pod.json")
echo "container=$ctr_id"
"${crictl[@]}" start "$ctr_id" >/dev/null
state=
for _ in $(seq 300); do
    state=$("${crictl[@]}" inspect -o go-template --template '{{.status.state}}' "$ctr_id")
    [[ $state == CONTAINER_EXITED ]] && break
    sleep 0.1
done
echo "state=$state"
echo "log=$(cat "$scratch/logs/exits.log" 2>/dev/null | tr '\n' ' ')"
# Before hull spoke runc's "container not running", containerd saw an
# "unknown error after kill" here and the pod could not be stopped.
if "${crictl[@]}" stopp "$pod"; then echo "stopp=ok"; else echo "stopp=failed"; fi
if "${crictl[@]}" rmp "$pod"; then echo "rmp=ok"; else echo "rmp=failed"; fi
echo "pods-left=$("${crictl[@]}" pods -q | wc -l)"
echo "hull-containers-left=$("$hull" --root /run/containerd/runc/k8s.io list -q | wc -l)"
