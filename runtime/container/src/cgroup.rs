//! The container's cgroups, from the runtime's side: created and limited
//! before the init process runs anything of the container's, joined by the
//! init (and by every exec'd process) before it can fork, reopened by later
//! commands from the paths kept in the state, and removed at delete.

use crate::error::{Error, Result};
use crate::rootfs::CgroupBind;
use hull_cgroups::{CgroupManager, CgroupMode, CgroupPaths, Layout};
use oci_spec::runtime::{LinuxResources, Spec};
use std::path::Path;

fn cgroup_error(e: hull_cgroups::Error) -> Error {
    Error::msg(format!("cgroups: {e}"))
}

/// A container's cgroups on this host.
pub struct ContainerCgroup {
    layout: Layout,
    manager: Box<dyn CgroupManager>,
}

impl ContainerCgroup {
    /// Where `linux.cgroupsPath` puts the container (nothing is created yet).
    pub fn plan(spec: &Spec, id: &str, systemd: bool) -> Result<ContainerCgroup> {
        let layout = Layout::detect().map_err(cgroup_error)?;
        let cgroups_path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_deref())
            .filter(|p| !p.as_os_str().is_empty());
        let manager =
            hull_cgroups::create(&layout, cgroups_path, id, systemd).map_err(cgroup_error)?;
        Ok(ContainerCgroup { layout, manager })
    }

    /// The cgroups of an existing container, from its saved paths.
    pub fn open(paths: &CgroupPaths) -> Result<ContainerCgroup> {
        let layout = Layout::detect().map_err(cgroup_error)?;
        let manager = hull_cgroups::open(&layout, paths).map_err(cgroup_error)?;
        Ok(ContainerCgroup { layout, manager })
    }

    pub fn manager(&self) -> &dyn CgroupManager {
        self.manager.as_ref()
    }

    pub fn paths(&self) -> CgroupPaths {
        self.manager.paths()
    }

    /// Create the cgroups with the config's limits. The devices the runtime
    /// itself sets up (null, zero, tty, ptmx, ...) are always allowed, as
    /// with runc, after the config's own rules.
    pub fn create_with_limits(&self, spec: &Spec) -> Result<()> {
        let mut resources = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        let mut devices = resources.devices().clone().unwrap_or_default();
        devices.extend(hull_cgroups::default_allowed_devices());
        resources.set_devices(Some(devices));
        self.set(&resources)
    }

    /// Apply limits (create and `update`); warnings go to the log.
    pub fn set(&self, resources: &LinuxResources) -> Result<()> {
        for w in self.manager.set(resources).map_err(cgroup_error)? {
            crate::log::warn(w);
        }
        Ok(())
    }

    /// Refuse cgroups that already hold processes (of another container,
    /// sharing linux.cgroupsPath): they would become this container's, and
    /// deleting it would kill them. runc 1.2 refuses them with the same words.
    pub fn check_unused(&self) -> Result<()> {
        let pids = hull_cgroups::processes_in(&self.paths()).map_err(cgroup_error)?;
        if !pids.is_empty() {
            return Err(Error::msg(format!(
                "container's cgroup is not empty: {} process(es) found in {}: another container \
                 uses this linux.cgroupsPath; give each container a cgroup of its own",
                pids.len(),
                self.manager.path().display()
            )));
        }
        Ok(())
    }

    /// Live processes in the cgroups (in any hierarchy), sorted.
    pub fn processes(&self) -> Result<Vec<i32>> {
        hull_cgroups::processes_in(&self.paths()).map_err(cgroup_error)
    }

    pub fn apply(&self, pid: i32) -> Result<()> {
        self.manager.apply(pid).map_err(cgroup_error)
    }

    pub fn destroy(&self) -> Result<()> {
        self.manager.destroy().map_err(cgroup_error)
    }

    /// What `/sys/fs/cgroup` shows inside the container: its own cgroup in
    /// every hierarchy, under the host's mount names.
    pub fn binds(&self) -> Vec<CgroupBind> {
        let paths = self.paths();
        let base = |mount_point: &Path| {
            mount_point
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let mut out: Vec<CgroupBind> = self
            .layout
            .v1
            .iter()
            .filter_map(|h| {
                paths.v1.get(&h.name()).map(|dir| CgroupBind {
                    name: base(&h.mount_point),
                    host_path: dir.clone(),
                })
            })
            .collect();
        if let (Some(u), Some(dir)) = (&self.layout.unified, &paths.unified) {
            out.push(CgroupBind {
                name: if self.layout.mode == CgroupMode::Unified {
                    String::new()
                } else {
                    base(&u.mount_point)
                },
                host_path: dir.clone(),
            });
        }
        out
    }
}
