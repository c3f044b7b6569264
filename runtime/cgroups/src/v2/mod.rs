//! The cgroup v2 manager: one directory in the unified hierarchy.
//!
//! Used alone on a pure v2 host, and as the unified half of
//! [`crate::HybridManager`] on a hybrid host (where it only handles the
//! controllers the v1 hierarchies did not take, plus freezing/killing when
//! no v1 freezer exists).
//!
//! Controllers must be enabled in every ancestor's `cgroup.subtree_control`
//! before a cgroup gets their files. On a pure v2 host every available
//! controller is enabled when the cgroup is created (what runc does, so
//! `stats` and later `update`s find their files); the hybrid half enables
//! only what a `set` needs, so a host whose unified hierarchy nobody uses
//! is not changed unless a config asks for it. Enabling only ever adds.

mod controllers;
mod resources;
mod stats;
#[cfg(test)]
mod tests;

pub(crate) use resources::{pids_max, rdma_line};

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};
use crate::fs;
use crate::stats::Stats;
use crate::{signal_each, CgroupManager, CgroupPaths, FreezerState, FREEZE_TIMEOUT};

/// A container's cgroup in a cgroup v2 hierarchy.
#[derive(Clone, Debug)]
pub struct V2Manager {
    mount_point: PathBuf,
    dir: PathBuf,
    enable_all: bool,
}

impl V2Manager {
    /// The cgroup `dir`, below the cgroup2 mount at `mount_point`. Every
    /// available controller is enabled for it when it is created.
    pub fn new(mount_point: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> V2Manager {
        V2Manager {
            mount_point: mount_point.into(),
            dir: dir.into(),
            enable_all: true,
        }
    }

    /// Like [`V2Manager::new`], but enabling controllers only as `set`
    /// needs them (the unified half of a hybrid host).
    pub fn on_demand(mount_point: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> V2Manager {
        V2Manager {
            enable_all: false,
            ..V2Manager::new(mount_point, dir)
        }
    }

    /// The container's cgroup directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn create(&self) -> Result<()> {
        fs::create_dirs(&self.mount_point, &self.dir, |_| Ok(()))?;
        if self.enable_all {
            let all = fs::read_opt(&self.mount_point, "cgroup.controllers")?.unwrap_or_default();
            let all: Vec<&str> = all.split_whitespace().collect();
            self.enable(&all, false)?;
        }
        Ok(())
    }

    /// Sets the resources this half is responsible for; `devices` are
    /// handled by the caller (eBPF) and `unified` keys are written last.
    pub(crate) fn set_resources(
        &self,
        r: &LinuxResources,
        checked: &crate::validate::Checked,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        fs::create_dirs(&self.mount_point, &self.dir, |_| Ok(()))?;
        let mut wanted = resources::needed_controllers(r);
        for (k, _) in &checked.unified {
            if let Some(c) = crate::validate::unified_controller(k) {
                if !wanted.contains(&c) {
                    wanted.push(c);
                }
            }
        }
        self.enable(&wanted, true)?;
        resources::set(&self.dir, r, warnings)?;
        if let Some(rules) = &checked.devices {
            crate::ebpf::apply(&self.dir, rules)?;
        }
        resources::set_unified(&self.dir, &checked.unified)?;
        Ok(())
    }

    pub(crate) fn enable(&self, wanted: &[&str], strict: bool) -> Result<()> {
        controllers::enable(&self.mount_point, &self.dir, wanted, strict)
    }

    pub(crate) fn fill_stats(&self, s: &mut Stats, only: Option<&[String]>) -> Result<()> {
        stats::fill(&self.dir, s, only)
    }

    pub(crate) fn has_kill(&self) -> bool {
        fs::exists(&self.dir, "cgroup.kill")
    }

    /// Whether `cgroup.freeze` is 1 (frozen, or freezing still).
    pub(crate) fn freeze_requested(&self) -> Result<bool> {
        Ok(fs::read_opt(&self.dir, "cgroup.freeze")?
            .as_deref()
            .map(str::trim)
            == Some("1"))
    }

    pub(crate) fn has_freezer(&self) -> bool {
        fs::exists(&self.dir, "cgroup.freeze")
    }
}

impl CgroupManager for V2Manager {
    fn apply(&self, pid: i32) -> Result<()> {
        self.create()?;
        fs::write(&self.dir, "cgroup.procs", &pid.to_string())
    }

    fn set(&self, r: &LinuxResources) -> Result<Vec<String>> {
        let checked = crate::validate::check(r)?;
        let mut warnings = Vec::new();
        resources::refuse_network(r)?;
        self.set_resources(r, &checked, &mut warnings)?;
        Ok(warnings)
    }

    fn freeze(&self) -> Result<()> {
        fs::write(&self.dir, "cgroup.freeze", "1")?;
        let done = fs::poll(FREEZE_TIMEOUT, || {
            Ok(fs::read_keyed(&self.dir, "cgroup.events", "frozen")?
                .filter(|&v| v == 1)
                .map(|_| ()))
        })?;
        if done.is_none() {
            let _ = fs::write(&self.dir, "cgroup.freeze", "0");
            return Err(Error::Timeout(format!(
                "{} did not report \"frozen 1\" in cgroup.events within {:?} (a process may be stuck in the kernel); thawed again",
                self.dir.display(),
                FREEZE_TIMEOUT
            )));
        }
        Ok(())
    }

    fn thaw(&self) -> Result<()> {
        fs::write(&self.dir, "cgroup.freeze", "0")
    }

    fn state(&self) -> Result<FreezerState> {
        let want = fs::read_opt(&self.dir, "cgroup.freeze")?;
        let frozen = fs::read_keyed(&self.dir, "cgroup.events", "frozen")?;
        Ok(match (want.as_deref().map(str::trim), frozen) {
            (Some("1"), Some(1)) => FreezerState::Frozen,
            _ => FreezerState::Thawed,
        })
    }

    fn pids(&self) -> Result<Vec<i32>> {
        fs::procs_recursive(&self.dir)
    }

    fn kill_all(&self, signal: Signal) -> Result<()> {
        if signal == Signal::SIGKILL && self.has_kill() {
            fs::write(&self.dir, "cgroup.kill", "1")?;
            // Killed processes of a paused container die either way on v2;
            // thaw anyway, or processes joining later would start frozen.
            if self.freeze_requested()? {
                self.thaw()?;
            }
            return Ok(());
        }
        signal_each(self, signal, self.has_freezer())
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        self.fill_stats(&mut s, None)?;
        Ok(s)
    }

    fn oom_events(&self) -> Result<u64> {
        Ok(fs::read_keyed(&self.dir, "memory.events", "oom_kill")?.unwrap_or(0))
    }

    fn destroy(&self) -> Result<()> {
        fs::remove_tree(&self.dir, fs::REMOVE_TIMEOUT)
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    fn paths(&self) -> CgroupPaths {
        CgroupPaths {
            v1: Default::default(),
            unified: Some(self.dir.clone()),
        }
    }
}
