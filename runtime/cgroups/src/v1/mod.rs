//! The cgroup v1 manager: one directory per mounted hierarchy.
//!
//! Every mounted v1 hierarchy gets the container's cgroup and the container
//! process — including ones without limits to set (`name=systemd`,
//! `perf_event`, `net_cls`), as runc does, so tools that look a process up
//! by its cgroup in any hierarchy find the container.
//!
//! A hierarchy that is not mounted cannot be used; whether asking for its
//! limits is an error or a warning is decided per controller (see
//! `resources.rs`): limits that confine the container (memory, cpu, cpuset,
//! pids, hugetlb, devices, blkio throttling, rdma) fail loudly, hints that
//! only tune sharing (blkio weights, net_cls, net_prio) warn.

pub(crate) mod resources;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};
use crate::fs;
use crate::stats::Stats;
use crate::{signal_each, CgroupManager, CgroupPaths, FreezerState, FREEZE_TIMEOUT};

/// The container's cgroup in one v1 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V1Cgroup {
    /// The hierarchy's controllers (`["cpu", "cpuacct"]`, `["name=systemd"]`).
    pub controllers: Vec<String>,
    /// The hierarchy's mount point.
    pub mount_point: PathBuf,
    /// The container's cgroup directory in it.
    pub dir: PathBuf,
}

impl V1Cgroup {
    /// The hierarchy's name, as used in [`CgroupPaths`].
    pub fn name(&self) -> String {
        self.controllers.join(",")
    }
}

/// A container's cgroups in the v1 hierarchies.
#[derive(Clone, Debug)]
pub struct V1Manager {
    cgroups: Vec<V1Cgroup>,
    main: PathBuf,
}

/// Hierarchies whose cgroup.procs lists the container's processes, in order
/// of preference (the freezer first: it is the one `kill_all` freezes).
const PROCS_PREFERENCE: [&str; 5] = ["freezer", "pids", "memory", "cpu", "devices"];

impl V1Manager {
    pub fn new(cgroups: Vec<V1Cgroup>) -> V1Manager {
        let main = PROCS_PREFERENCE
            .iter()
            .find_map(|c| {
                cgroups
                    .iter()
                    .find(|g| g.controllers.iter().any(|x| x == c))
            })
            .or_else(|| cgroups.first())
            .map(|g| g.dir.clone())
            .unwrap_or_default();
        V1Manager { cgroups, main }
    }

    /// The container's directory in the hierarchy holding `controller`.
    pub fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.cgroups
            .iter()
            .find(|g| g.controllers.iter().any(|c| c == controller))
            .map(|g| g.dir.as_path())
    }

    pub fn cgroups(&self) -> &[V1Cgroup] {
        &self.cgroups
    }

    /// Creates the directories; a new cpuset cgroup starts with empty
    /// `cpuset.cpus`/`cpuset.mems` (and no process may join it), so each
    /// level gets its parent's values, from the top down.
    pub(crate) fn create(&self) -> Result<()> {
        for g in &self.cgroups {
            fs::create_dirs(&g.mount_point, &g.dir, |_| Ok(()))?;
            if g.controllers.iter().any(|c| c == "cpuset") {
                init_cpuset(&g.mount_point, &g.dir)?;
            }
        }
        Ok(())
    }

    pub(crate) fn set_resources(
        &self,
        r: &LinuxResources,
        checked: &crate::validate::Checked,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        self.create()?;
        resources::set(self, r, checked, warnings)
    }

    pub(crate) fn fill_stats(&self, s: &mut Stats) -> Result<()> {
        stats::fill(self, s)
    }

    pub(crate) fn has_freezer(&self) -> bool {
        self.dir_of("freezer").is_some()
    }
}

fn init_cpuset(top: &Path, dir: &Path) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(top) else {
        return Ok(());
    };
    let mut parent = top.to_path_buf();
    for comp in rel.components() {
        let cur = parent.join(comp);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = fs::read_opt(&cur, file)?.unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = fs::read(&parent, file)?;
                if !theirs.trim().is_empty() {
                    fs::write(&cur, file, theirs.trim())?;
                }
            }
        }
        parent = cur;
    }
    Ok(())
}

impl CgroupManager for V1Manager {
    fn apply(&self, pid: i32) -> Result<()> {
        self.create()?;
        for g in &self.cgroups {
            fs::write(&g.dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    fn set(&self, r: &LinuxResources) -> Result<Vec<String>> {
        let checked = crate::validate::check(r)?;
        if !checked.unified.is_empty() {
            return Err(Error::unsupported(
                "(unified)",
                "linux.resources.unified needs cgroup v2, and this host has only cgroup v1",
            ));
        }
        let mut warnings = Vec::new();
        self.set_resources(r, &checked, &mut warnings)?;
        Ok(warnings)
    }

    fn freeze(&self) -> Result<()> {
        let Some(dir) = self.dir_of("freezer") else {
            return Err(Error::unsupported(
                "freezer",
                "no freezer hierarchy is mounted, so the container cannot be paused",
            ));
        };
        fs::write(dir, "freezer.state", "FROZEN")?;
        // The kernel may stay in FREEZING while a task cannot be frozen
        // yet; asking again re-triggers it.
        let mut tries = 0u32;
        let done = fs::poll(FREEZE_TIMEOUT, || {
            tries += 1;
            let st = fs::read(dir, "freezer.state")?;
            if st.trim() == "FROZEN" {
                return Ok(Some(()));
            }
            if tries.is_multiple_of(20) {
                fs::write(dir, "freezer.state", "FROZEN")?;
            }
            Ok(None)
        })?;
        if done.is_none() {
            let _ = fs::write(dir, "freezer.state", "THAWED");
            return Err(Error::Timeout(format!(
                "{}/freezer.state did not reach FROZEN within {:?} (a process may be stuck in the kernel); thawed again",
                dir.display(),
                FREEZE_TIMEOUT
            )));
        }
        Ok(())
    }

    fn thaw(&self) -> Result<()> {
        match self.dir_of("freezer") {
            Some(dir) => fs::write(dir, "freezer.state", "THAWED"),
            None => Err(Error::unsupported(
                "freezer",
                "no freezer hierarchy is mounted",
            )),
        }
    }

    fn state(&self) -> Result<FreezerState> {
        let Some(dir) = self.dir_of("freezer") else {
            return Ok(FreezerState::Thawed);
        };
        Ok(
            match fs::read_opt(dir, "freezer.state")?
                .as_deref()
                .map(str::trim)
            {
                Some("FROZEN") => FreezerState::Frozen,
                _ => FreezerState::Thawed,
            },
        )
    }

    fn pids(&self) -> Result<Vec<i32>> {
        fs::procs_recursive(&self.main)
    }

    fn kill_all(&self, signal: Signal) -> Result<()> {
        signal_each(self, signal, self.has_freezer())
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        self.fill_stats(&mut s)?;
        Ok(s)
    }

    fn oom_events(&self) -> Result<u64> {
        match self.dir_of("memory") {
            Some(dir) => Ok(fs::read_keyed(dir, "memory.oom_control", "oom_kill")?.unwrap_or(0)),
            None => Ok(0),
        }
    }

    fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for g in &self.cgroups {
            if let Err(e) = fs::remove_tree(&g.dir, fs::REMOVE_TIMEOUT) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn path(&self) -> &Path {
        &self.main
    }

    fn paths(&self) -> CgroupPaths {
        CgroupPaths {
            v1: self
                .cgroups
                .iter()
                .map(|g| (g.name(), g.dir.clone()))
                .collect::<BTreeMap<_, _>>(),
            unified: None,
        }
    }
}
