//! Where the container's cgroup goes: the `linux.cgroupsPath` rules.
//!
//! * **Absolute** (`/hull/abc`): relative to the root of each hierarchy as
//!   mounted (so inside a container whose cgroupfs shows a sub-tree, it is
//!   below that sub-tree).
//! * **Relative** (`abc`, `kube/abc`): below the *calling process's own
//!   cgroup* in each hierarchy. `..` can never climb above it: the path is
//!   cleaned lexically first, as runc does (`../x` becomes `x`).
//! * **Empty/absent**: the container id, relative — the same default as
//!   runc's cgroupfs driver (`Name = id`, `Path = ""`, which its v1 manager
//!   places below the caller's own cgroup). Note that runc's *v2* manager
//!   places relative paths below the **parent** of the caller's cgroup
//!   (because a v2 cgroup that has processes cannot enable controllers for
//!   its children); Hull never goes above the caller, so on a pure v2 host a
//!   relative path only gets resource limits when the caller's cgroup has no
//!   other processes (or is the root). The error says so.
//!
//! A path that cleans to the hierarchy root or to the caller's own cgroup is
//! refused: the container would share that cgroup, and `destroy` would try
//! to remove it.
//!
//! The systemd driver (`--systemd-cgroup`, paths `slice:prefix:name`) needs
//! D-Bus to systemd; it is not implemented, and when systemd is not even
//! running the error says that first.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// A cleaned `cgroupsPath`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupsPath {
    /// Below each hierarchy's root; starts with "/".
    Absolute(PathBuf),
    /// Below the caller's own cgroup in each hierarchy; never empty.
    Relative(PathBuf),
}

impl CgroupsPath {
    /// Cleans `cgroups_path`, defaulting to the container id.
    pub fn resolve(cgroups_path: Option<&Path>, container_id: &str) -> Result<CgroupsPath> {
        let raw = match cgroups_path {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => {
                check_id(container_id)?;
                return Ok(CgroupsPath::Relative(PathBuf::from(container_id)));
            }
        };
        let absolute = raw.has_root();
        let mut clean = PathBuf::new();
        for c in raw.components() {
            match c {
                Component::Normal(n) => clean.push(n),
                Component::ParentDir => {
                    clean.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        if clean.as_os_str().is_empty() {
            return Err(Error::invalid(format!(
                "linux.cgroupsPath {:?} names {} itself; give the container a cgroup of its own",
                raw,
                if absolute {
                    "the root cgroup"
                } else {
                    "the runtime's own cgroup"
                }
            )));
        }
        Ok(if absolute {
            CgroupsPath::Absolute(Path::new("/").join(clean))
        } else {
            CgroupsPath::Relative(clean)
        })
    }

    /// The container's cgroup directory in a hierarchy mounted at
    /// `mount_point` where the caller's own cgroup is `own_dir`.
    pub fn dir_in(&self, mount_point: &Path, own_dir: &Path) -> PathBuf {
        match self {
            CgroupsPath::Absolute(p) => mount_point.join(p.strip_prefix("/").unwrap_or(p)),
            CgroupsPath::Relative(p) => own_dir.join(p),
        }
    }
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(Error::invalid(format!(
            "container id {id:?} cannot name a cgroup (the default cgroupsPath is the id)"
        )));
    }
    Ok(())
}

/// The answer to `--systemd-cgroup`: always an error, the most useful one.
pub(crate) fn systemd_driver(
    cgroups_path: Option<&Path>,
    container_id: &str,
    systemd_run_dir: &Path,
) -> Error {
    if let Some(p) = cgroups_path.filter(|p| !p.as_os_str().is_empty()) {
        let s = p.to_string_lossy();
        if s.split(':').count() != 3 {
            return Error::invalid(format!(
                "expected linux.cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {s:?}"
            ));
        }
    }
    if !systemd_run_dir.is_dir() {
        return Error::Systemd(format!(
            "systemd cgroup driver needs a running systemd ({} does not exist): run hull without \
             --systemd-cgroup (linux.cgroupsPath is then a path, e.g. /hull/{container_id})",
            systemd_run_dir.display()
        ));
    }
    Error::Systemd(
        "the systemd cgroup driver is not implemented in hull yet: run hull without --systemd-cgroup"
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str) -> Result<CgroupsPath> {
        CgroupsPath::resolve(Some(Path::new(p)), "ctr")
    }

    #[test]
    fn default_is_the_id_below_the_caller() {
        assert_eq!(
            CgroupsPath::resolve(None, "ctr").unwrap(),
            CgroupsPath::Relative("ctr".into())
        );
        assert_eq!(
            CgroupsPath::resolve(Some(Path::new("")), "ctr").unwrap(),
            CgroupsPath::Relative("ctr".into())
        );
        assert!(CgroupsPath::resolve(None, "a/b").is_err());
        assert!(CgroupsPath::resolve(None, "..").is_err());
    }

    #[test]
    fn cleaning() {
        assert_eq!(
            r("/hull/x").unwrap(),
            CgroupsPath::Absolute("/hull/x".into())
        );
        assert_eq!(
            r("//hull/./x/").unwrap(),
            CgroupsPath::Absolute("/hull/x".into())
        );
        assert_eq!(r("/../../x").unwrap(), CgroupsPath::Absolute("/x".into()));
        assert_eq!(r("../x").unwrap(), CgroupsPath::Relative("x".into()));
        assert_eq!(
            r("a/../../b/c").unwrap(),
            CgroupsPath::Relative("b/c".into())
        );
        assert!(r("/").is_err());
        assert!(r("/a/..").is_err());
        assert!(r("..").is_err());
        assert!(r(".").is_err());
    }

    #[test]
    fn directories() {
        let own = Path::new("/sys/fs/cgroup/memory/user.slice");
        let mp = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            r("/hull/x").unwrap().dir_in(mp, own),
            Path::new("/sys/fs/cgroup/memory/hull/x")
        );
        assert_eq!(
            r("../x").unwrap().dir_in(mp, own),
            Path::new("/sys/fs/cgroup/memory/user.slice/x")
        );
    }

    #[test]
    fn systemd_errors() {
        let none = Path::new("/nonexistent/run/systemd/system");
        let e = systemd_driver(Some(Path::new("system.slice:hull:x")), "x", none);
        assert!(
            e.to_string()
                .starts_with("systemd cgroup driver needs a running systemd"),
            "{e}"
        );
        let e = systemd_driver(Some(Path::new("/hull/x")), "x", none);
        assert!(e.to_string().contains("slice:prefix:name"), "{e}");
        let e = systemd_driver(None, "x", Path::new("/"));
        assert!(e.to_string().contains("not implemented"), "{e}");
    }
}
