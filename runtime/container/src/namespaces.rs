//! Linux namespaces of a container: which are new, which are joined by path,
//! and the order in which a process enters them.

use crate::error::{Context, Error, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A namespace kind with its clone flag and its name under /proc/PID/ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Mount,
    Pid,
    Net,
    Ipc,
    Uts,
    Cgroup,
    Time,
}

impl Kind {
    /// Joining order: the user namespace first (it grants the privileges to
    /// join the rest), the mount namespace last (later paths stay resolvable).
    pub const JOIN_ORDER: [Kind; 8] = [
        Kind::User,
        Kind::Ipc,
        Kind::Uts,
        Kind::Net,
        Kind::Pid,
        Kind::Cgroup,
        Kind::Time,
        Kind::Mount,
    ];

    pub fn flag(self) -> CloneFlags {
        match self {
            Kind::User => CloneFlags::CLONE_NEWUSER,
            Kind::Mount => CloneFlags::CLONE_NEWNS,
            Kind::Pid => CloneFlags::CLONE_NEWPID,
            Kind::Net => CloneFlags::CLONE_NEWNET,
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
            Kind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            Kind::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        }
    }

    /// The file name under /proc/PID/ns.
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Mount => "mnt",
            Kind::Pid => "pid",
            Kind::Net => "net",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
            Kind::Cgroup => "cgroup",
            Kind::Time => "time",
        }
    }

    /// The name the OCI spec uses in `linux.namespaces[].type`.
    pub fn oci_name(self) -> &'static str {
        match self {
            Kind::Mount => "mount",
            Kind::Net => "network",
            k => k.proc_name(),
        }
    }

    pub fn from_oci(t: LinuxNamespaceType) -> Kind {
        match t {
            LinuxNamespaceType::User => Kind::User,
            LinuxNamespaceType::Mount => Kind::Mount,
            LinuxNamespaceType::Pid => Kind::Pid,
            LinuxNamespaceType::Network => Kind::Net,
            LinuxNamespaceType::Ipc => Kind::Ipc,
            LinuxNamespaceType::Uts => Kind::Uts,
            LinuxNamespaceType::Cgroup => Kind::Cgroup,
            LinuxNamespaceType::Time => Kind::Time,
        }
    }

    /// "pid_for_children"-style namespaces: entering them only affects
    /// children, so the caller itself can enter them before forking.
    pub fn affects_children_only(self) -> bool {
        matches!(self, Kind::Pid | Kind::Time)
    }
}

/// One entry of `linux.namespaces`: a new namespace, or one joined by path.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    pub path: Option<PathBuf>,
}

/// The validated namespace list of a container.
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    pub entries: Vec<Entry>,
}

impl Namespaces {
    /// Validate `linux.namespaces`: no duplicates, every path an existing
    /// namespace file of the right kind.
    pub fn from_spec(list: &[LinuxNamespace]) -> Result<Self> {
        let mut entries: Vec<Entry> = Vec::new();
        for ns in list {
            let kind = Kind::from_oci(ns.typ());
            if entries.iter().any(|e| e.kind == kind) {
                return Err(Error::msg(format!(
                    "config.json: namespace {:?} is listed twice in linux.namespaces: keep one entry",
                    kind.oci_name()
                )));
            }
            let path = ns.path().clone().filter(|p| !p.as_os_str().is_empty());
            if let Some(p) = &path {
                check_ns_file(p, kind)?;
            }
            entries.push(Entry { kind, path });
        }
        Ok(Namespaces { entries })
    }

    pub fn get(&self, kind: Kind) -> Option<&Entry> {
        self.entries.iter().find(|e| e.kind == kind)
    }

    pub fn has(&self, kind: Kind) -> bool {
        self.get(kind).is_some()
    }

    /// Whether the container gets a namespace of this kind of its own.
    pub fn is_new(&self, kind: Kind) -> bool {
        self.get(kind).is_some_and(|e| e.path.is_none())
    }

    /// Flags of every namespace that is created rather than joined.
    pub fn new_flags(&self) -> CloneFlags {
        self.entries
            .iter()
            .filter(|e| e.path.is_none())
            .fold(CloneFlags::empty(), |acc, e| acc | e.kind.flag())
    }

    /// "new: pid, ipc; joined: network /run/netns/x" (for `--debug`).
    pub fn describe(&self) -> String {
        let new: Vec<&str> = self
            .entries
            .iter()
            .filter(|e| e.path.is_none())
            .map(|e| e.kind.oci_name())
            .collect();
        let joined: Vec<String> = self
            .joins()
            .iter()
            .map(|e| {
                let path = e.path.as_deref().unwrap_or(Path::new(""));
                format!("{} {}", e.kind.oci_name(), path.display())
            })
            .collect();
        format!(
            "new: {}; joined: {}",
            if new.is_empty() {
                "none".into()
            } else {
                new.join(", ")
            },
            if joined.is_empty() {
                "none".into()
            } else {
                joined.join(", ")
            }
        )
    }

    /// Namespaces joined by path, in joining order.
    pub fn joins(&self) -> Vec<&Entry> {
        Kind::JOIN_ORDER
            .iter()
            .filter_map(|k| self.get(*k).filter(|e| e.path.is_some()))
            .collect()
    }
}

/// Open a namespace file and check it is a namespace of `kind`.
pub fn open_ns(path: &Path, kind: Kind) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("opening {} namespace {}", kind.oci_name(), path.display()))?;
    // SAFETY: open returned a fresh descriptor we now own.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
    let t = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if t < 0 || t as libc::c_int != kind.flag().bits() {
        return Err(Error::msg(format!(
            "{} is not a {} namespace: give a path like /proc/PID/ns/{}",
            path.display(),
            kind.oci_name(),
            kind.proc_name()
        )));
    }
    Ok(fd)
}

fn check_ns_file(path: &Path, kind: Kind) -> Result<()> {
    if !path.exists() {
        return Err(Error::msg(format!(
            "config.json: {} namespace path {} does not exist: give the path of a live namespace (e.g. /proc/PID/ns/{}) or drop \"path\" to create a new one",
            kind.oci_name(),
            path.display(),
            kind.proc_name()
        )));
    }
    open_ns(path, kind).map(drop)
}

/// Whether the namespace at `path` is this process's own of that kind (for
/// the runtime: the host's, where a container must not change settings).
/// Unknown (unreadable) counts as not its own: the path was checked to be a
/// namespace of the right kind when the config was loaded.
pub fn is_runtime_own(path: &Path, kind: Kind) -> bool {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let own = PathBuf::from(format!("/proc/self/ns/{}", kind.proc_name()));
    matches!((id(path), id(&own)), (Some(a), Some(b)) if a == b)
}

/// Enter the namespace behind `fd`.
pub fn enter(fd: &OwnedFd, kind: Kind) -> Result<()> {
    nix::sched::setns(fd, kind.flag()).ctx(|| format!("joining {} namespace", kind.oci_name()))
}

/// The inode identifying a process's namespace, e.g. for "same pid namespace?".
pub fn ns_inode(pid: i32, kind: Kind) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{}", kind.proc_name()))
        .ok()
        .map(|m| m.ino())
}
