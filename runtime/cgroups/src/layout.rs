//! Where each cgroup controller lives on this host.
//!
//! Three shapes exist in the wild, and a runtime must handle all of them:
//! * **pure v2** ("unified"): one cgroup2 mount at /sys/fs/cgroup holding
//!   every controller (current distributions, managed Kubernetes);
//! * **hybrid**: one cgroup v1 hierarchy per controller (or group, such as
//!   `cpu,cpuacct`), `name=systemd`, *and* a cgroup2 mount (usually
//!   /sys/fs/cgroup/unified) that owns the controllers no v1 hierarchy took —
//!   on Hull's development hosts that is `hugetlb`;
//! * **pure v1** ("legacy"): v1 hierarchies only.
//!
//! A controller can be bound to only one hierarchy at a time, so each one
//! has exactly one place: [`Layout::controller`] says where. The mount
//! table (/proc/self/mountinfo) gives the hierarchies and their mount
//! points; /proc/self/cgroup gives the calling process's own cgroup in each,
//! which is where relative `cgroupsPath`s are placed. The parsers take
//! strings so tests can feed real samples.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The overall cgroup mode of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupMode {
    /// cgroup v1 only.
    Legacy,
    /// cgroup v1 hierarchies plus a cgroup2 mount.
    Hybrid,
    /// cgroup v2 only.
    Unified,
}

/// A mounted cgroup v1 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// Controllers bound to it, as in /proc/self/cgroup: `["cpu", "cpuacct"]`,
    /// or `["name=systemd"]` for a named hierarchy without controllers.
    pub controllers: Vec<String>,
    /// Where it is mounted (e.g. /sys/fs/cgroup/memory).
    pub mount_point: PathBuf,
    /// The cgroup shown at the mount point ("/" unless a sub-tree is mounted).
    pub mount_root: PathBuf,
    /// The calling process's cgroup in this hierarchy (from /proc/self/cgroup).
    pub own_cgroup: PathBuf,
}

impl Hierarchy {
    /// The hierarchy's name: its controllers joined with ",".
    pub fn name(&self) -> String {
        self.controllers.join(",")
    }

    /// The directory of the calling process's own cgroup.
    pub fn own_dir(&self) -> PathBuf {
        own_dir(&self.mount_point, &self.mount_root, &self.own_cgroup)
    }
}

/// The cgroup2 mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnifiedHierarchy {
    /// Where it is mounted: /sys/fs/cgroup (pure v2) or /sys/fs/cgroup/unified.
    pub mount_point: PathBuf,
    pub mount_root: PathBuf,
    /// The calling process's cgroup (the `0::` line of /proc/self/cgroup).
    pub own_cgroup: PathBuf,
    /// Controllers it owns: the mount point's `cgroup.controllers`.
    pub controllers: Vec<String>,
}

impl UnifiedHierarchy {
    pub fn own_dir(&self) -> PathBuf {
        own_dir(&self.mount_point, &self.mount_root, &self.own_cgroup)
    }

    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// Where one controller lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location<'a> {
    V1(&'a Hierarchy),
    V2(&'a UnifiedHierarchy),
}

/// The host's cgroup hierarchies, as seen by the calling process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub mode: CgroupMode,
    /// Every mounted v1 hierarchy the process is in (incl. `name=systemd`).
    pub v1: Vec<Hierarchy>,
    /// The cgroup2 mount, if any.
    pub unified: Option<UnifiedHierarchy>,
}

/// One mount of a cgroup filesystem, from mountinfo.
struct CgroupMount {
    root: PathBuf,
    mount_point: PathBuf,
    v2: bool,
    /// v1: controllers (and name=) from the super options.
    controllers: Vec<String>,
}

impl Layout {
    /// Reads /proc/self/mountinfo, /proc/self/cgroup and the cgroup2 mount's
    /// `cgroup.controllers`.
    pub fn detect() -> Result<Layout> {
        let mi = std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| Error::Read {
            path: "/proc/self/mountinfo".into(),
            source,
        })?;
        let cg = std::fs::read_to_string("/proc/self/cgroup").map_err(|source| Error::Read {
            path: "/proc/self/cgroup".into(),
            source,
        })?;
        Layout::parse(&mi, &cg, |mp| {
            std::fs::read_to_string(mp.join("cgroup.controllers")).ok()
        })
    }

    /// Builds the layout from the text of /proc/self/mountinfo and
    /// /proc/self/cgroup. `controllers_of` returns the content of
    /// `cgroup.controllers` in a cgroup2 mount point (None if unreadable).
    pub fn parse(
        mountinfo: &str,
        proc_cgroup: &str,
        mut controllers_of: impl FnMut(&Path) -> Option<String>,
    ) -> Result<Layout> {
        let mounts = parse_mountinfo(mountinfo)?;
        let own = parse_proc_cgroup(proc_cgroup)?;

        let mut v1 = Vec::new();
        let mut unified_own = None;
        for (_, ctrls, path) in &own {
            if ctrls.is_empty() {
                unified_own = Some(path.clone());
                continue;
            }
            let mut want: Vec<&str> = ctrls.iter().map(String::as_str).collect();
            want.sort_unstable();
            // Prefer a mount of the whole hierarchy, then one whose root
            // contains our cgroup.
            let candidates: Vec<&CgroupMount> = mounts
                .iter()
                .filter(|m| {
                    let mut have: Vec<&str> = m.controllers.iter().map(String::as_str).collect();
                    have.sort_unstable();
                    !m.v2 && have == want
                })
                .collect();
            let best = candidates
                .iter()
                .find(|m| m.root == Path::new("/"))
                .or_else(|| candidates.iter().find(|m| path.starts_with(&m.root)))
                .or_else(|| candidates.first());
            if let Some(m) = best {
                v1.push(Hierarchy {
                    controllers: ctrls.clone(),
                    mount_point: m.mount_point.clone(),
                    mount_root: m.root.clone(),
                    own_cgroup: path.clone(),
                });
            }
        }

        let v2_mounts: Vec<&CgroupMount> = mounts.iter().filter(|m| m.v2).collect();
        let v2 = v2_mounts
            .iter()
            .find(|m| m.mount_point == Path::new("/sys/fs/cgroup"))
            .or_else(|| {
                v2_mounts
                    .iter()
                    .find(|m| m.mount_point == Path::new("/sys/fs/cgroup/unified"))
            })
            .or_else(|| v2_mounts.first());
        let unified = v2.map(|m| UnifiedHierarchy {
            controllers: controllers_of(&m.mount_point)
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            mount_point: m.mount_point.clone(),
            mount_root: m.root.clone(),
            own_cgroup: unified_own.clone().unwrap_or_else(|| PathBuf::from("/")),
        });

        let mode =
            match (v1.is_empty(), unified.is_some()) {
                (true, true) => CgroupMode::Unified,
                (false, true) => CgroupMode::Hybrid,
                (false, false) => CgroupMode::Legacy,
                (true, false) => return Err(Error::unsupported(
                    "(all)",
                    "no cgroup filesystem is mounted for this process (see /proc/self/mountinfo)",
                )),
            };
        Ok(Layout { mode, v1, unified })
    }

    /// Where `controller` ("memory", "cpu", "blkio", "io", "hugetlb", ...)
    /// lives: a v1 hierarchy if one has it, else the cgroup2 mount if it
    /// owns it, else nowhere.
    pub fn controller(&self, controller: &str) -> Option<Location<'_>> {
        if let Some(h) = self
            .v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
        {
            return Some(Location::V1(h));
        }
        match &self.unified {
            Some(u) if u.has(controller) => Some(Location::V2(u)),
            _ => None,
        }
    }

    /// The v1 hierarchy holding `controller`, if any.
    pub fn v1_hierarchy(&self, controller: &str) -> Option<&Hierarchy> {
        match self.controller(controller) {
            Some(Location::V1(h)) => Some(h),
            _ => None,
        }
    }
}

/// mount point + (own cgroup relative to the mount's root).
fn own_dir(mount_point: &Path, mount_root: &Path, own: &Path) -> PathBuf {
    match own.strip_prefix(mount_root) {
        Ok(rel) => mount_point.join(rel),
        // A cgroup namespace or a bind of a sibling sub-tree: the path is
        // not below the mount's root, so the mount point is the best guess.
        Err(_) => mount_point.to_path_buf(),
    }
}

/// /proc/self/cgroup lines "ID:controllers:path" → (id, controllers, path).
/// The cgroup2 line is "0::/path" (empty controllers).
pub(crate) fn parse_proc_cgroup(s: &str) -> Result<Vec<(u32, Vec<String>, PathBuf)>> {
    let mut out = Vec::new();
    for line in s.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            return Err(Error::parse(
                Path::new("/proc/self/cgroup"),
                line,
                "expected ID:CONTROLLERS:PATH",
            ));
        };
        let id = id
            .parse::<u32>()
            .map_err(|_| Error::parse(Path::new("/proc/self/cgroup"), line, "bad hierarchy id"))?;
        let ctrls: Vec<String> = ctrls
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        // A cgroup removed under us shows " (deleted)"; keep the path.
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        out.push((id, ctrls, PathBuf::from(path)));
    }
    Ok(out)
}

/// Super options of a v1 cgroup mount that are not controllers.
const NOT_CONTROLLERS: &[&str] = &[
    "rw",
    "ro",
    "none",
    "noprefix",
    "xattr",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
    "nofavordynmods",
    "nsdelegate",
];

fn parse_mountinfo(s: &str) -> Result<Vec<CgroupMount>> {
    let mut out = Vec::new();
    for line in s.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post_it = post.split(' ');
        let fstype = post_it.next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let _source = post_it.next();
        let superopts = post_it.next().unwrap_or("");
        let pre: Vec<&str> = pre.split(' ').collect();
        if pre.len() < 5 {
            return Err(Error::parse(
                Path::new("/proc/self/mountinfo"),
                line,
                "too few fields",
            ));
        }
        let root = PathBuf::from(unescape(pre[3]));
        let mount_point = PathBuf::from(unescape(pre[4]));
        let controllers = if fstype == "cgroup" {
            superopts
                .split(',')
                .filter(|o| !NOT_CONTROLLERS.contains(o) && !o.starts_with("release_agent="))
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        out.push(CgroupMount {
            root,
            mount_point,
            v2: fstype == "cgroup2",
            controllers,
        });
    }
    Ok(out)
}

/// mountinfo escapes space, tab, newline and backslash as \NNN (octal).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if v <= 255 {
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/self/mountinfo of a Hull development host (hybrid), trimmed to
    /// the interesting lines plus two unrelated ones.
    pub(crate) const HYBRID_MOUNTINFO: &str = "\
22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    pub(crate) const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/57604b2ccaf0de89f76c2cbe3feaae00
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    /// A pure cgroup v2 host (Debian 12 with systemd).
    const V2_MOUNTINFO: &str = "\
21 26 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 21 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
26 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
";
    const V2_CGROUP: &str = "0::/user.slice/user-1000.slice/session-3.scope\n";

    /// Ubuntu 18.04-style v1 with combined hierarchies and no cgroup2.
    const V1_MOUNTINFO: &str = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,net_cls,net_prio
37 30 0:33 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,memory
38 30 0:34 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,cpuset,clone_children
";
    const V1_CGROUP: &str = "\
6:cpuset:/
5:memory:/user.slice
4:net_cls,net_prio:/
3:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
";

    #[test]
    fn hybrid_host() {
        let l = Layout::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP, |p| {
            assert_eq!(p, Path::new("/sys/fs/cgroup/unified"));
            Some("hugetlb\n".into())
        })
        .unwrap();
        assert_eq!(l.mode, CgroupMode::Hybrid);
        assert_eq!(l.v1.len(), 9);
        let mem = l.v1_hierarchy("memory").unwrap();
        assert_eq!(mem.mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(
            mem.own_dir(),
            Path::new("/sys/fs/cgroup/memory/process_api/57604b2ccaf0de89f76c2cbe3feaae00")
        );
        assert_eq!(
            l.v1_hierarchy("name=systemd").unwrap().mount_point,
            Path::new("/sys/fs/cgroup/systemd")
        );
        match l.controller("hugetlb") {
            Some(Location::V2(u)) => {
                assert_eq!(u.mount_point, Path::new("/sys/fs/cgroup/unified"));
                assert_eq!(u.own_dir(), Path::new("/sys/fs/cgroup/unified"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(l.controller("cpu"), Some(Location::V1(_))));
        assert!(l.controller("net_cls").is_none());
        assert!(l.controller("rdma").is_none());
    }

    #[test]
    fn pure_v2_host() {
        let l = Layout::parse(V2_MOUNTINFO, V2_CGROUP, |_| {
            Some("cpuset cpu io memory hugetlb pids rdma misc\n".into())
        })
        .unwrap();
        assert_eq!(l.mode, CgroupMode::Unified);
        assert!(l.v1.is_empty());
        let u = l.unified.as_ref().unwrap();
        assert_eq!(
            u.own_dir(),
            Path::new("/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope")
        );
        assert!(matches!(l.controller("memory"), Some(Location::V2(_))));
        assert!(l.controller("devices").is_none());
    }

    #[test]
    fn pure_v1_host_with_combined_hierarchies() {
        let l = Layout::parse(V1_MOUNTINFO, V1_CGROUP, |_| None).unwrap();
        assert_eq!(l.mode, CgroupMode::Legacy);
        let cpu = l.v1_hierarchy("cpuacct").unwrap();
        assert_eq!(cpu.name(), "cpu,cpuacct");
        assert_eq!(cpu.mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(
            cpu.own_dir(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/user.slice")
        );
        assert!(l.v1_hierarchy("cpuset").is_some());
        assert_eq!(
            l.v1_hierarchy("name=systemd").unwrap().own_cgroup,
            Path::new("/user.slice/user-1000.slice/session-2.scope")
        );
    }

    #[test]
    fn container_with_subtree_mount_and_escapes() {
        let mi = "\
50 40 0:33 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
51 40 0:38 /docker/abc /my\\040cg rw - cgroup2 cgroup2 rw
";
        let cg = "4:memory:/docker/abc\n0::/docker/abc/sub\n";
        let l = Layout::parse(mi, cg, |_| Some(String::new())).unwrap();
        assert_eq!(l.mode, CgroupMode::Hybrid);
        assert_eq!(
            l.v1_hierarchy("memory").unwrap().own_dir(),
            Path::new("/sys/fs/cgroup/memory")
        );
        let u = l.unified.unwrap();
        assert_eq!(u.mount_point, Path::new("/my cg"));
        assert_eq!(u.own_dir(), Path::new("/my cg/sub"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Layout::parse("", "", |_| None).is_err());
        assert!(Layout::parse(HYBRID_MOUNTINFO, "x", |_| None).is_err());
        assert!(Layout::parse("1 2 - cgroup cgroup rw,cpu\n", "1:cpu:/\n", |_| None).is_err());
        assert_eq!(unescape("a\\040b\\"), "a b\\");
        assert_eq!(unescape("\\777x"), "\\777x");
    }
}
