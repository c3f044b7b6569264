//! Hull's cgroup manager: puts a container's processes into cgroups and
//! applies the OCI `linux.resources` limits, on pure cgroup v2, hybrid and
//! pure cgroup v1 hosts, without C libraries or threads.
//!
//! # Use from a runtime
//!
//! ```no_run
//! # fn demo(spec: &oci_spec::runtime::Spec, id: &str, child_pid: i32) -> hull_cgroups::Result<()> {
//! use hull_cgroups::{create, CgroupManager, Layout};
//! let layout = Layout::detect()?;
//! let linux = spec.linux().as_ref().unwrap();
//! let cg = create(&layout, linux.cgroups_path().as_deref(), id, false)?;
//! // In the runtime parent, while the child waits (before it execs):
//! if let Some(r) = linux.resources() {
//!     for w in cg.set(r)? { eprintln!("warning: {w}"); }
//! }
//! cg.apply(child_pid)?;
//! // Save cg.paths() in the container state; later commands reopen with
//! // hull_cgroups::open(&Layout::detect()?, &paths).
//! # Ok(()) }
//! ```
//!
//! `set` and `apply` both create the cgroup, so either order works; `set`
//! first means the limits are in force before the process joins. Device
//! rules: append [`default_allowed_devices`] to the config's list, as runc
//! does, before calling `set`.
//!
//! With a new cgroup namespace, the container process must unshare it
//! *after* `apply` (as runc's init does): a namespace created at clone time
//! is rooted at the runtime's cgroup, not the container's.
//!
//! # Where Hull differs from runc (on purpose)
//! * relative `cgroupsPath` on cgroup v2: below the caller's own cgroup, never
//!   its parent (see [`path`]);
//! * `cpu.shares` → `cpu.weight` uses runc's original linear formula (newer
//!   runc releases use a log-quadratic one);
//! * v2 stats report `memory.events` "max" as `failcnt` (runc reports 0);
//! * v2 per-device block I/O weights without BFQ go to `io.weight` (runc
//!   drops them); a throttle rate of 0 is written as "max" (no limit);
//! * `unified` refuses `cgroup.procs`/`cgroup.threads`;
//! * device rules mean "last matching rule wins" in the eBPF program even
//!   where the v1 kernel list is more lenient (an allowed wildcard with a
//!   denied hole: v1 keeps the hole open, the eBPF filter closes it);
//! * the systemd driver is not implemented (a clear error).
//!
//! # Modules
//! * [`layout`]: which hierarchies exist, where each controller lives;
//! * [`path`]: where the container's cgroup goes (`linux.cgroupsPath`);
//! * [`v1`], [`v2`], [`hybrid`]: the three managers;
//! * [`devices`], [`ebpf`]: device rules, and the v2 eBPF device filter;
//! * [`convert`]: v1 → v2 value conversions (runc's);
//! * [`stats`]: `runc events --stats` shaped statistics;
//! * [`error`]: one error type that names file, value and meaning.

pub mod convert;
pub mod devices;
pub mod ebpf;
pub mod error;
mod fs;
pub mod hybrid;
pub mod layout;
pub mod path;
pub mod stats;
#[cfg(test)]
mod testutil;
pub mod v1;
pub mod v2;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use devices::default_allowed_devices;
pub use error::{Error, Result};
pub use hybrid::HybridManager;
pub use layout::{CgroupMode, Layout};
pub use path::CgroupsPath;
pub use stats::Stats;
pub use v1::{V1Cgroup, V1Manager};
pub use v2::V2Manager;

/// How long `freeze` waits for the kernel to report the cgroup frozen.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the container's processes are frozen (paused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FreezerState {
    /// Running (also while a freeze is still in progress).
    Thawed,
    /// Every process is frozen.
    Frozen,
}

/// Where a container's cgroups are, to keep in its state and reopen with
/// [`open`] (runc keeps `cgroup_paths` likewise): relative cgroup paths
/// depend on the caller's own cgroup, which a later `hull delete` may not
/// share.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPaths {
    /// v1 hierarchy name ("memory", "cpu,cpuacct", "name=systemd") → directory.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub v1: BTreeMap<String, PathBuf>,
    /// The directory in the cgroup v2 (unified) hierarchy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified: Option<PathBuf>,
}

/// A container's cgroups, in whatever hierarchies the host has.
///
/// All methods take `&self`: the manager holds paths only, so it can be
/// rebuilt by any later command from [`CgroupManager::paths`].
pub trait CgroupManager {
    /// Creates the cgroups (if needed) and moves process `pid` into them,
    /// in every hierarchy.
    fn apply(&self, pid: i32) -> Result<()>;

    /// Applies the limits in `resources` (at create and for `update`);
    /// creates the cgroups if needed. Returns warnings for settings this
    /// host cannot honour but that are safe to skip (e.g. kernel memory).
    /// Fields that are absent are left unchanged; a `devices` list replaces
    /// the whole device policy.
    fn set(&self, resources: &LinuxResources) -> Result<Vec<String>>;

    /// Freezes every process (pause); returns once the kernel reports the
    /// cgroup frozen, or fails (and thaws) after [`FREEZE_TIMEOUT`].
    fn freeze(&self) -> Result<()>;

    /// Thaws (resume).
    fn thaw(&self) -> Result<()>;

    fn state(&self) -> Result<FreezerState>;

    /// Every process of the container: `cgroup.procs` of its cgroup and all
    /// cgroups below it, sorted.
    fn pids(&self) -> Result<Vec<i32>>;

    /// Sends `signal` to every process. SIGKILL uses v2's `cgroup.kill`
    /// when available (no process can escape by forking); otherwise the
    /// cgroup is frozen around the signalling so no new process appears
    /// unsignalled, then thawed (left frozen for other signals if it was
    /// paused before). Processes that exit meanwhile are fine.
    fn kill_all(&self, signal: Signal) -> Result<()>;

    /// Current statistics (see [`stats`]).
    fn stats(&self) -> Result<Stats>;

    /// How many processes the OOM killer has killed in the container
    /// (v2 `memory.events` oom_kill, v1 `memory.oom_control` oom_kill;
    /// 0 without a memory controller).
    fn oom_events(&self) -> Result<u64>;

    /// Removes the container's cgroups and any below them, in every
    /// hierarchy, deepest first, retrying for a few seconds while killed
    /// processes finish exiting. Call [`CgroupManager::kill_all`] first.
    /// Parents created for an absolute path (e.g. `/hull` of `/hull/x`) stay,
    /// as with runc.
    fn destroy(&self) -> Result<()>;

    /// The main directory: the v2 cgroup, or on v1 the freezer (else pids,
    /// memory, ...) hierarchy's.
    fn path(&self) -> &Path;

    /// Every directory, to save and [`open`] again later.
    fn paths(&self) -> CgroupPaths;
}

/// The manager for container `container_id` with `linux.cgroupsPath`
/// `cgroups_path` (see [`path`] for the rules; default: the id, below the
/// caller's own cgroup). Nothing is created until `set` or `apply`.
///
/// `systemd` (`--systemd-cgroup`) always fails: with a clear message when
/// systemd is not running, otherwise because the driver is not implemented.
pub fn create(
    layout: &Layout,
    cgroups_path: Option<&Path>,
    container_id: &str,
    systemd: bool,
) -> Result<Box<dyn CgroupManager>> {
    if systemd {
        return Err(path::systemd_driver(
            cgroups_path,
            container_id,
            Path::new("/run/systemd/system"),
        ));
    }
    let placement = CgroupsPath::resolve(cgroups_path, container_id)?;
    open(layout, &paths_for(layout, &placement))
}

/// The directories `placement` gives in each hierarchy of `layout`.
pub fn paths_for(layout: &Layout, placement: &CgroupsPath) -> CgroupPaths {
    CgroupPaths {
        v1: layout
            .v1
            .iter()
            .map(|h| (h.name(), placement.dir_in(&h.mount_point, &h.own_dir())))
            .collect(),
        unified: layout
            .unified
            .as_ref()
            .map(|u| placement.dir_in(&u.mount_point, &u.own_dir())),
    }
}

/// The manager for cgroups saved earlier with [`CgroupManager::paths`].
/// Hierarchies no longer mounted are skipped; a directory outside its
/// hierarchy is refused.
pub fn open(layout: &Layout, paths: &CgroupPaths) -> Result<Box<dyn CgroupManager>> {
    let mut v1 = Vec::new();
    for (name, dir) in &paths.v1 {
        let Some(h) = layout.v1.iter().find(|h| &h.name() == name) else {
            continue;
        };
        check_below(dir, &h.mount_point)?;
        v1.push(V1Cgroup {
            controllers: h.controllers.clone(),
            mount_point: h.mount_point.clone(),
            dir: dir.clone(),
        });
    }
    let v2 = match (&layout.unified, &paths.unified) {
        (Some(u), Some(dir)) => {
            check_below(dir, &u.mount_point)?;
            Some((u, dir))
        }
        _ => None,
    };
    Ok(match (layout.mode, v2) {
        (CgroupMode::Unified, Some((u, dir))) => Box::new(V2Manager::new(&u.mount_point, dir)),
        (CgroupMode::Hybrid, Some((u, dir))) => Box::new(HybridManager::new(
            V1Manager::new(v1),
            V2Manager::on_demand(&u.mount_point, dir),
            u.controllers.clone(),
        )),
        (CgroupMode::Unified, None) => return Err(Error::invalid(
            "the saved cgroup paths have no cgroup v2 directory, but this host is cgroup v2 only",
        )),
        _ => Box::new(V1Manager::new(v1)),
    })
}

/// Every process in the cgroups of `paths` or below them, in any hierarchy
/// (sorted, each once); a cgroup that does not exist is empty. runc 1.2's
/// rule, which hull follows: a new container never joins cgroups that
/// already hold processes, since deleting it would kill them.
pub fn processes_in(paths: &CgroupPaths) -> Result<Vec<i32>> {
    let mut all = Vec::new();
    for dir in paths.v1.values().chain(paths.unified.iter()) {
        all.extend(fs::procs_recursive(dir)?);
    }
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

fn check_below(dir: &Path, top: &Path) -> Result<()> {
    let ok = dir.starts_with(top)
        && dir != top
        && !dir
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "cgroup directory {} is not below its hierarchy {}",
            dir.display(),
            top.display()
        )))
    }
}

/// Signals every process of `m`, with the freezer around it when
/// `can_freeze` (see [`CgroupManager::kill_all`]).
pub(crate) fn signal_each(m: &dyn CgroupManager, sig: Signal, can_freeze: bool) -> Result<()> {
    let was_frozen = can_freeze && m.state()? == FreezerState::Frozen;
    // If freezing fails (e.g. times out) the signals are still sent.
    let froze = can_freeze && !was_frozen && m.freeze().is_ok();
    let res = (|| {
        for pid in m.pids()? {
            match kill(Pid::from_raw(pid), sig) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => {
                    return Err(Error::Signal {
                        pid,
                        source: std::io::Error::from_raw_os_error(e as i32),
                    })
                }
            }
        }
        Ok(())
    })();
    // Frozen processes only act on SIGKILL once thawed.
    if froze || (was_frozen && sig == Signal::SIGKILL) {
        let thawed = m.thaw();
        res?;
        thawed
    } else {
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn processes_in_every_hierarchy_and_below() {
        let t = TempDir::new();
        t.file("memory/ctr/cgroup.procs", "12\n");
        t.file("memory/ctr/sub/cgroup.procs", "13\n");
        t.file("pids/ctr/cgroup.procs", "12\n14\n");
        t.file("unified/ctr/cgroup.procs", "");
        let paths = CgroupPaths {
            v1: [
                ("memory".to_string(), t.path().join("memory/ctr")),
                ("pids".to_string(), t.path().join("pids/ctr")),
                ("cpu".to_string(), t.path().join("cpu/ctr")),
            ]
            .into(),
            unified: Some(t.path().join("unified/ctr")),
        };
        assert_eq!(processes_in(&paths).unwrap(), [12, 13, 14]);
        let missing = CgroupPaths {
            v1: Default::default(),
            unified: Some(t.path().join("unified/none")),
        };
        assert!(processes_in(&missing).unwrap().is_empty());
    }
}
