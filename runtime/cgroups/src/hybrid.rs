//! The hybrid composition: cgroup v1 for the controllers mounted as v1
//! hierarchies, the unified (v2) hierarchy for the ones it owns.
//!
//! On Hull's development hosts the unified hierarchy owns only `hugetlb`,
//! so hugepage limits and statistics go to `/sys/fs/cgroup/unified/...`
//! while everything else uses `/sys/fs/cgroup/<controller>/...`. The
//! container process joins both (as runc does), which also makes v2's
//! `cgroup.kill` usable for `kill_all(SIGKILL)`.
//!
//! Routing, per resource: a controller mounted as v1 wins; otherwise the
//! unified hierarchy if it owns it; otherwise v1, which then reports the
//! missing controller. Devices use the v1 `devices` hierarchy when mounted,
//! else an eBPF program on the v2 cgroup (which works on any cgroup2
//! directory, whatever controllers it has). `unified` keys are accepted
//! only for controllers the unified hierarchy owns (and core `cgroup.*`
//! files).

use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxCpu, LinuxResources};
use std::path::Path;

use crate::error::{Error, Result};
use crate::stats::Stats;
use crate::v1::V1Manager;
use crate::v2::V2Manager;
use crate::validate::{self, Checked};
use crate::{signal_each, CgroupManager, CgroupPaths, FreezerState};

/// v1 hierarchies plus the unified hierarchy.
#[derive(Clone, Debug)]
pub struct HybridManager {
    v1: V1Manager,
    v2: V2Manager,
    /// Controllers the unified hierarchy owns.
    v2_controllers: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    V1,
    V2,
}

impl HybridManager {
    /// `v2` must enable controllers on demand ([`V2Manager::on_demand`]).
    pub fn new(v1: V1Manager, v2: V2Manager, v2_controllers: Vec<String>) -> HybridManager {
        HybridManager {
            v1,
            v2,
            v2_controllers,
        }
    }

    pub fn v1(&self) -> &V1Manager {
        &self.v1
    }

    pub fn v2(&self) -> &V2Manager {
        &self.v2
    }

    fn route(&self, v1_name: &str, v2_name: &str) -> Side {
        if self.v1.dir_of(v1_name).is_some() {
            Side::V1
        } else if self.v2_controllers.iter().any(|c| c == v2_name) {
            Side::V2
        } else {
            Side::V1
        }
    }

    /// Controllers whose statistics come from the unified hierarchy.
    fn v2_stat_controllers(&self) -> Vec<String> {
        self.v2_controllers
            .iter()
            .filter(|c| {
                let v1_name = if c.as_str() == "io" {
                    "blkio"
                } else {
                    c.as_str()
                };
                self.v1.dir_of(v1_name).is_none()
            })
            .cloned()
            .collect()
    }

    /// Splits `r` into the v1 part and the v2 part.
    fn split(
        &self,
        r: &LinuxResources,
        checked: Checked,
    ) -> Result<[(LinuxResources, Checked); 2]> {
        let mut r1 = LinuxResources::default();
        let mut r2 = LinuxResources::default();
        let mut c1 = Checked {
            devices: None,
            unified: Vec::new(),
        };
        let mut c2 = Checked {
            devices: None,
            unified: Vec::new(),
        };
        fn target<'a>(
            side: Side,
            r1: &'a mut LinuxResources,
            r2: &'a mut LinuxResources,
        ) -> &'a mut LinuxResources {
            match side {
                Side::V1 => r1,
                Side::V2 => r2,
            }
        }

        if let Some(cpu) = r.cpu() {
            let cpu_side = self.route("cpu", "cpu");
            let set_side = self.route("cpuset", "cpuset");
            let (cpu_part, set_part) = split_cpu(cpu);
            if cpu_side == set_side {
                target(cpu_side, &mut r1, &mut r2).set_cpu(Some(cpu.clone()));
            } else {
                target(cpu_side, &mut r1, &mut r2).set_cpu(Some(cpu_part));
                target(set_side, &mut r1, &mut r2).set_cpu(Some(set_part));
            }
        }
        if let Some(m) = r.memory() {
            target(self.route("memory", "memory"), &mut r1, &mut r2).set_memory(Some(*m));
        }
        if let Some(p) = r.pids() {
            target(self.route("pids", "pids"), &mut r1, &mut r2).set_pids(Some(*p));
        }
        if let Some(b) = r.block_io() {
            target(self.route("blkio", "io"), &mut r1, &mut r2).set_block_io(Some(b.clone()));
        }
        if let Some(h) = r.hugepage_limits() {
            target(self.route("hugetlb", "hugetlb"), &mut r1, &mut r2)
                .set_hugepage_limits(Some(h.clone()));
        }
        if let Some(rd) = r.rdma() {
            target(self.route("rdma", "rdma"), &mut r1, &mut r2).set_rdma(Some(rd.clone()));
        }
        if let Some(n) = r.network() {
            r1.set_network(Some(n.clone()));
        }
        if checked.devices.is_some() {
            if self.v1.dir_of("devices").is_some() {
                c1.devices = checked.devices;
            } else {
                c2.devices = checked.devices;
            }
        }
        for (k, v) in checked.unified {
            match validate::unified_controller(&k) {
                Some(c) if !self.v2_controllers.iter().any(|x| x == c) => {
                    return Err(Error::unsupported(
                        c,
                        format!(
                            "linux.resources.unified key {k:?}: on this hybrid host the {c} controller is not in the cgroup v2 hierarchy (it owns only: {}); use the typed linux.resources fields",
                            self.v2_controllers.join(" ")
                        ),
                    ))
                }
                _ => c2.unified.push((k, v)),
            }
        }
        Ok([(r1, c1), (r2, c2)])
    }
}

/// (cpu-controller fields, cpuset fields) of one LinuxCpu.
fn split_cpu(c: &LinuxCpu) -> (LinuxCpu, LinuxCpu) {
    let mut cpu = c.clone();
    cpu.set_cpus(None);
    cpu.set_mems(None);
    let mut set = LinuxCpu::default();
    set.set_cpus(c.cpus().clone());
    set.set_mems(c.mems().clone());
    (cpu, set)
}

impl CgroupManager for HybridManager {
    fn apply(&self, pid: i32) -> Result<()> {
        self.v1.apply(pid)?;
        self.v2.apply(pid)
    }

    fn set(&self, r: &LinuxResources) -> Result<Vec<String>> {
        let checked = validate::check(r)?;
        let [(r1, c1), (r2, c2)] = self.split(r, checked)?;
        let mut warnings = Vec::new();
        self.v1.set_resources(&r1, &c1, &mut warnings)?;
        self.v2.set_resources(&r2, &c2, &mut warnings)?;
        Ok(warnings)
    }

    fn freeze(&self) -> Result<()> {
        if self.v1.has_freezer() {
            self.v1.freeze()
        } else {
            self.v2.freeze()
        }
    }

    fn thaw(&self) -> Result<()> {
        if self.v1.has_freezer() {
            self.v1.thaw()
        } else {
            self.v2.thaw()
        }
    }

    fn state(&self) -> Result<FreezerState> {
        if self.v1.has_freezer() {
            self.v1.state()
        } else {
            self.v2.state()
        }
    }

    fn pids(&self) -> Result<Vec<i32>> {
        if self.v1.cgroups().is_empty() {
            self.v2.pids()
        } else {
            self.v1.pids()
        }
    }

    fn kill_all(&self, signal: Signal) -> Result<()> {
        if signal == Signal::SIGKILL && self.v2.has_kill() {
            self.v2.kill_all(signal)?;
            // A task frozen by the v1 freezer acts on SIGKILL only once
            // thawed.
            if self.v1.state()? == FreezerState::Frozen {
                self.v1.thaw()?;
            }
            return Ok(());
        }
        signal_each(self, signal, self.v1.has_freezer() || self.v2.has_freezer())
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        self.v1.fill_stats(&mut s)?;
        let only = self.v2_stat_controllers();
        if !only.is_empty() {
            self.v2.fill_stats(&mut s, Some(&only))?;
        }
        Ok(s)
    }

    fn oom_events(&self) -> Result<u64> {
        match self.route("memory", "memory") {
            Side::V1 => self.v1.oom_events(),
            Side::V2 => self.v2.oom_events(),
        }
    }

    fn destroy(&self) -> Result<()> {
        let a = self.v1.destroy();
        let b = self.v2.destroy();
        a.and(b)
    }

    fn path(&self) -> &Path {
        if self.v1.cgroups().is_empty() {
            self.v2.path()
        } else {
            self.v1.path()
        }
    }

    fn paths(&self) -> CgroupPaths {
        let mut p = self.v1.paths();
        p.unified = Some(self.v2.dir().to_path_buf());
        p
    }
}
