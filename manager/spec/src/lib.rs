//! hull-spec: an OCI image config plus `docker run`/`nerdctl run` options
//! → an OCI runtime spec (config.json), as nerdctl generates it (and, where
//! nerdctl follows docker or says nothing, as docker does).
//!
//! ```no_run
//! # fn main() -> Result<(), hull_spec::SpecError> {
//! use hull_spec::{generate, ImageConfig, RunOptions};
//! let image = ImageConfig::parse(br#"{"config":{"Cmd":["sh"]}}"#)?;
//! let opts = RunOptions {
//!     id: "web1".into(),
//!     namespace: "default".into(),
//!     cgroup_parent: "hull".into(),
//!     memory: Some(hull_spec::parse_memory("256m")?),
//!     volumes: vec!["/srv/data:/data:ro".parse()?],
//!     ..Default::default()
//! };
//! let passwd_and_group = std::collections::HashMap::<String, Vec<u8>>::new();
//! let spec = generate(&image, &opts, &passwd_and_group)?;
//! # let _ = spec; Ok(()) }
//! ```
//!
//! What a container gets, and where the choices come from:
//!
//! - **process**: args = entrypoint + (args, else the image's Cmd);
//!   `--entrypoint` drops the image's Cmd. env = image ENV, PATH if missing,
//!   HOSTNAME, TERM=xterm with a tty, then the user's `-e` (later wins, no
//!   duplicates; `K` without `=` removes K). User names resolve against the
//!   image's /etc/passwd and /etc/group; additionalGids = primary gid (as
//!   containerd), the user's /etc/group memberships, `--group-add`.
//!   Capabilities: docker's 14 in bounding/effective/permitted (not
//!   inheritable/ambient), `--cap-add`/`--cap-drop` applied as nerdctl does.
//!   noNewPrivileges false (docker and nerdctl) unless
//!   `--security-opt no-new-privileges`. No rlimits unless `--ulimit`: the
//!   container inherits the runtime's, as nerdctl (it removes containerd's
//!   RLIMIT_NOFILE 1024 default) and docker do.
//! - **mounts**: proc, /dev tmpfs, devpts, /dev/shm (64 MiB or `--shm-size`),
//!   mqueue, sysfs (ro), cgroup (ro) — containerd's defaults without /run, as
//!   nerdctl — then /etc/hosts, /etc/hostname, /etc/resolv.conf (bind, rw,
//!   as nerdctl even with `--read-only`), `-v` (rbind, ro/rw, rprivate),
//!   `--tmpfs` (noexec,nosuid,nodev unless overridden). A user mount replaces
//!   a default on the same path; mounts are ordered parents first.
//! - **linux**: new pid, ipc, uts, mount namespaces; network new, joined by
//!   path, or the host's; cgroup namespace with `cgroupns_private`.
//!   cgroupsPath `/<cgroup_parent>/<namespace>/<id>`. Devices: deny all but
//!   containerd's default set. Memory limit with swap twice the memory unless
//!   `--memory-swap`; `--cpus` → CFS quota per 100 ms; pids limit. Docker's
//!   masked and read-only paths. Seccomp: seccomp-profiles/default.json plus
//!   the rules of seccomp-profiles/default-capabilities.json for every
//!   capability in the bounding set. No AppArmor or SELinux label (the project
//!   ships no profile).
//! - **`--privileged`** (docker's definition): all capabilities (those the
//!   manager holds, [`RunOptions::host_capabilities`], as nerdctl), no seccomp,
//!   no masked or read-only paths, /sys and the cgroup tree read-write, every
//!   device allowed in the device cgroup, and the device nodes the caller
//!   passes in [`RunOptions::host_devices`] (docker's are all of the host's:
//!   [`host_devices`]`("/dev")`). [`generate`] itself reads nothing from the
//!   host except /proc/sys/kernel/hostname, for `--network host` without
//!   `--hostname`; the host's devices and capabilities come from the caller
//!   ([`host_devices`], [`current_capabilities`]).
//!
//! Not in config.json, and so not here: labels (container metadata),
//! `-i` (the shim's stdio), the image's VOLUMEs (anonymous volumes need a
//! volume store), port publishing (CNI).

mod capabilities;
mod devices;
mod env;
mod error;
mod generate;
mod image;
mod linux;
mod mounts;
mod options;
mod process;
mod seccomp;
mod units;
mod user;

pub use capabilities::{current_capabilities, ALL_CAPABILITIES, DEFAULT_CAPABILITIES};
pub use devices::host_devices;
pub use env::DEFAULT_PATH;
pub use error::SpecError;
pub use generate::{generate, OCI_VERSION};
pub use image::ImageConfig;
pub use linux::{MASKED_PATHS, READONLY_PATHS};
pub use options::{EtcFiles, Network, RunOptions, Tmpfs, Ulimit, Volume};
pub use units::{parse_cpus, parse_memory};
pub use user::{RootfsFiles, MAX_ID};
