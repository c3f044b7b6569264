//! The container's cgroups, from the runtime's side: created and limited
//! before the init process runs anything of the container's, joined by the
//! init (and by every exec'd process) before it can fork, reopened by later
//! commands from the paths kept in the state, and removed at delete.

use crate::error::{Error, Result};
use crate::rootfs::CgroupBind;
use hull_cgroups::{CgroupManager, CgroupMode, CgroupPaths, Layout};
use oci_spec::runtime::{LinuxResources, Spec};
use std::path::{Path, PathBuf};

fn cgroup_error(e: hull_cgroups::Error) -> Error {
    Error::msg(format!("cgroups: {e}"))
}

/// One `exec --cgroup [controller[,controller]:]path` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubCgroup {
    /// Empty: every hierarchy.
    pub controllers: Vec<String>,
    pub path: String,
}

impl SubCgroup {
    /// Parse the `--cgroup` arguments as runc does: `[ctrl[,ctrl]:]path`, the
    /// form without controllers only as the single argument.
    pub fn parse_args(args: &[String]) -> Result<Vec<SubCgroup>> {
        args.iter()
            .map(|arg| {
                let parts: Vec<&str> = arg.splitn(3, ':').collect();
                match parts.as_slice() {
                    [path] if args.len() == 1 => Ok(SubCgroup {
                        controllers: Vec::new(),
                        path: path.to_string(),
                    }),
                    [_] => Err(Error::msg(format!(
                        "invalid --cgroup argument: {arg} (missing <controller>: prefix)"
                    ))),
                    [ctrls, path] => Ok(SubCgroup {
                        controllers: ctrls.split(',').map(str::to_string).collect(),
                        path: path.to_string(),
                    }),
                    _ => Err(Error::msg(format!("invalid --cgroup argument: {arg}"))),
                }
            })
            .collect()
    }
}

/// `base` joined with `sub`, lexically cleaned; it must stay at or below
/// `base` (runc's "is not a sub cgroup path").
fn below(base: &Path, sub: &str) -> Result<PathBuf> {
    let mut parts: Vec<&str> = Vec::new();
    for c in sub.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Error::msg(format!(
                        "{sub} is not a sub cgroup path: --cgroup names a cgroup below the container's"
                    )));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.iter().fold(base.to_path_buf(), |p, c| p.join(c)))
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
        if !nix::unistd::geteuid().is_root() {
            // Rootless: programming the device controller needs privileges
            // the user lacks, and a user namespace cannot make device nodes
            // anyway; runc leaves the rules out too.
            resources.set_devices(None);
            return self.set(&resources);
        }
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

    /// The cgroups `exec --cgroup` puts a process into: `subs` below the
    /// container's own, per hierarchy (runc's semantics: `[ctrl[,ctrl]:]path`,
    /// no controller meaning every hierarchy; the sub-cgroups must exist).
    pub fn sub_cgroups(&self, subs: &[SubCgroup]) -> Result<ContainerCgroup> {
        let mut paths = self.paths();
        for sub in subs {
            if sub.controllers.is_empty() {
                for dir in paths.v1.values_mut().chain(paths.unified.as_mut()) {
                    *dir = below(dir, &sub.path)?;
                }
                continue;
            }
            for ctrl in &sub.controllers {
                let v1 = paths
                    .v1
                    .iter_mut()
                    .find(|(name, _)| name.split(',').any(|c| c == ctrl));
                let dir = match v1 {
                    Some((_, dir)) => dir,
                    None => match (&mut paths.unified, &self.layout.unified) {
                        (Some(dir), Some(u)) if u.controllers.iter().any(|c| c == ctrl) => dir,
                        _ => {
                            return Err(Error::msg(format!(
                                "unknown controller {ctrl} in --cgroup: this container's cgroups are in: {}",
                                self.hierarchy_names().join(" ")
                            )))
                        }
                    },
                };
                *dir = below(dir, &sub.path)?;
            }
        }
        for dir in paths.v1.values().chain(paths.unified.as_ref()) {
            if !dir.is_dir() {
                return Err(Error::msg(format!(
                    "cgroup {} does not exist: exec --cgroup joins an existing sub-cgroup of the container; create it first",
                    dir.display()
                )));
            }
        }
        ContainerCgroup::open(&paths)
    }

    /// The container's hierarchies by name ("memory", "cpu,cpuacct", "unified"), for messages.
    fn hierarchy_names(&self) -> Vec<String> {
        let paths = self.paths();
        let mut names: Vec<String> = paths.v1.keys().cloned().collect();
        if paths.unified.is_some() {
            names.push("unified".into());
        }
        names
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_cgroup_arguments_as_runc_parses_them() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            SubCgroup::parse_args(&args(&["sub"])).unwrap(),
            [SubCgroup {
                controllers: vec![],
                path: "sub".into()
            }]
        );
        assert_eq!(
            SubCgroup::parse_args(&args(&["memory,pids:a/b", "cpu:/c"])).unwrap(),
            [
                SubCgroup {
                    controllers: vec!["memory".into(), "pids".into()],
                    path: "a/b".into()
                },
                SubCgroup {
                    controllers: vec!["cpu".into()],
                    path: "/c".into()
                },
            ]
        );
        let e = SubCgroup::parse_args(&args(&["a", "b"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid --cgroup argument: a (missing <controller>: prefix)"
        );
        let e = SubCgroup::parse_args(&args(&["a:b:c"]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid --cgroup argument: a:b:c");
    }

    #[test]
    fn sub_cgroups_stay_below_the_container_s() {
        let base = Path::new("/sys/fs/cgroup/memory/ctr");
        assert_eq!(below(base, "a/./b/").unwrap(), base.join("a/b"));
        assert_eq!(below(base, "/a/../b").unwrap(), base.join("b"));
        assert_eq!(below(base, "/").unwrap(), base);
        for bad in ["..", "a/../..", "../ctr2"] {
            let e = below(base, bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("{bad} is not a sub cgroup path")),
                "{e}"
            );
        }
    }
}
