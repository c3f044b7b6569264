# shellcheck shell=bash
# Debian packages and toolchain checks shared by .ci/run and hack/setup.sh.
# Source it, then call hull_install_deps and hull_ensure_cargo.

# One list, so CI and developer machines cannot drift apart.
HULL_DEB_PACKAGES=(
    busybox-static  # static /bin/busybox for test/demo/bench rootfs (hack/mkbundle.sh)
    runc            # reference runtime: spec generation, conformance and benchmarks
    crun            # second reference runtime for hack/bench-runtime
    hyperfine       # hack/bench-runtime
    time            # /usr/bin/time -v for peak RSS
    jq              # config.json patching and benchmark JSON
    iproute2        # `ip` for network-namespace tests
    util-linux      # unshare, mount, nsenter
    uidmap          # newuidmap/newgidmap: multi-id maps of rootless containers (and their test)
    procps          # ps(1) for `hull ps`
    containerd      # real-client integration tests (ctr --runc-binary hull; the CRI with crictl)
    criu            # hull checkpoint/restore drive it (3.17 fails `criu check` on newer kernels: then a clear error)
    build-essential # cc/linker for cargo
    libseccomp-dev  # reference libseccomp for hull-seccomp's differential test (dlopened by the test only)
    seccomp         # scmp_sys_resolver for runtime/seccomp/gen-syscall-tables.sh
    protobuf-compiler # protoc for manager/api's generated gRPC code
    docker-registry # the registry the manager's pull tests and hack/bench-pull run on 127.0.0.1
    apache2-utils   # htpasswd for the basic-auth test registry
    openssl         # keys, certificate and JWT signatures for the token-auth test registry
    python3         # hack/registry/token-server.py
    curl            # hack/registry/push.sh and serve.sh
    zstd            # zstd layers in the test images (hack/registry/mkimages.sh)
    containernetworking-plugins # the CNI plugins hulld runs for container networks (bridge, host-local, portmap, firewall, tuning, bandwidth)
    iptables        # used by the portmap, firewall and bridge (ipMasq) plugins
    skopeo          # image archives from another tool (docker-archive, oci-archive) for the import/export tests and hack/bench-push
    podman          # `podman load` of hullctl's image exports (manager_transfer)
)

# Install whatever is missing; apt-get update runs at most once, and not at
# all when everything is already there (fast, works offline).
hull_install_deps() {
    local pkg missing=()
    for pkg in "${HULL_DEB_PACKAGES[@]}"; do
        [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) == installed ]] ||
            missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    if [[ $(id -u) != 0 ]]; then
        echo "missing Debian packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
        return 1
    fi
    echo "==> installing: ${missing[*]}" >&2
    local apt=(apt-get -y -q -o DPkg::Lock::Timeout=300
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" update
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends "${missing[@]}"
}

# cargo comes from rustup in ~/.cargo/bin, which non-login shells (CI) may
# not have on PATH.
hull_ensure_cargo() {
    if ! command -v cargo >/dev/null; then
        local env_file
        for env_file in "${CARGO_HOME:-${HOME:-/root}/.cargo}/env" /root/.cargo/env; do
            # shellcheck disable=SC1090 # rustup's env file, path known only at run time
            [[ -f $env_file ]] && { . "$env_file"; break; }
        done
    fi
    command -v cargo >/dev/null || { echo "cargo not found (install rustup)" >&2; return 1; }
    cargo fmt --version >/dev/null 2>&1 || { echo "rustfmt missing: rustup component add rustfmt" >&2; return 1; }
    cargo clippy --version >/dev/null 2>&1 || { echo "clippy missing: rustup component add clippy" >&2; return 1; }
}
