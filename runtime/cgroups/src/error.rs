//! One error type for the whole crate.
//!
//! A cgroup failure is only actionable when the message names the file, the
//! value and what the kernel's errno means *for that file*: a bare
//! "device or resource busy" on `memory.limit_in_bytes` means "the container
//! already uses more memory", on `cgroup.subtree_control` it means "the
//! parent has processes of its own". `hint` holds that table, so every
//! write error carries its explanation.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong managing a container's cgroups.
#[derive(Debug)]
pub enum Error {
    /// Writing a cgroup file failed.
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    /// Reading a cgroup (or /proc) file failed.
    Read { path: PathBuf, source: io::Error },
    /// A file had content this crate could not parse.
    Parse {
        path: PathBuf,
        content: String,
        what: String,
    },
    /// Some other filesystem operation (mkdir, rmdir, open) failed.
    Io {
        op: String,
        path: PathBuf,
        source: io::Error,
    },
    /// The OCI configuration asks for something invalid (names the field).
    Invalid(String),
    /// A limit was requested for a controller this host does not provide.
    Unsupported { controller: String, detail: String },
    /// Waiting for the kernel (freezer, process exit) took too long.
    Timeout(String),
    /// A bpf(2) call failed; `log` holds the verifier output for loads.
    Bpf {
        op: &'static str,
        source: io::Error,
        log: String,
    },
    /// The systemd cgroup driver was asked for.
    Systemd(String),
    /// Signalling a container process failed.
    Signal { pid: i32, source: io::Error },
}

impl Error {
    /// The errno behind this error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Write { source, .. }
            | Error::Read { source, .. }
            | Error::Io { source, .. }
            | Error::Bpf { source, .. }
            | Error::Signal { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    pub(crate) fn unsupported(controller: &str, detail: impl Into<String>) -> Self {
        Error::Unsupported {
            controller: controller.to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn io(op: impl Into<String>, path: &Path, source: io::Error) -> Self {
        Error::Io {
            op: op.into(),
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn parse(path: &Path, content: &str, what: impl Into<String>) -> Self {
        let mut content = content.trim_end().to_string();
        if content.len() > 200 {
            let mut cut = 200;
            while !content.is_char_boundary(cut) {
                cut -= 1;
            }
            content.truncate(cut);
            content.push('…');
        }
        Error::Parse {
            path: path.to_path_buf(),
            content,
            what: what.into(),
        }
    }
}

/// "Device or resource busy (os error 16)" → "device or resource busy".
pub(crate) fn errno_text(err: &io::Error) -> String {
    let s = err.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => s,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Write {
                path,
                value,
                source,
            } => {
                let shown = value.trim_end().replace('\n', "\\n");
                write!(
                    f,
                    "writing {shown} to {}: {}",
                    path.display(),
                    errno_text(source)
                )?;
                if let Some(h) = hint(path, value, source) {
                    write!(f, ": {h}")?;
                }
                Ok(())
            }
            Error::Read { path, source } => {
                write!(f, "reading {}: {}", path.display(), errno_text(source))?;
                if source.raw_os_error() == Some(libc::ENOENT) {
                    if let Some(c) = controller_of(path) {
                        write!(f, ": the {c} controller is not available for this cgroup")?;
                    }
                }
                Ok(())
            }
            Error::Parse {
                path,
                content,
                what,
            } => write!(
                f,
                "parsing {}: {what} (content: {content:?})",
                path.display()
            ),
            Error::Io { op, path, source } => {
                write!(f, "{op} {}: {}", path.display(), errno_text(source))?;
                match source.raw_os_error() {
                    Some(libc::EACCES) | Some(libc::EPERM) => write!(
                        f,
                        ": cgroups need root (CAP_SYS_ADMIN) or a delegated cgroup"
                    ),
                    Some(libc::EROFS) => write!(f, ": the cgroup filesystem is read-only here"),
                    Some(libc::EBUSY) if op.starts_with("removing") => write!(
                        f,
                        ": the cgroup still has processes (kill them first: kill_all)"
                    ),
                    _ => Ok(()),
                }
            }
            Error::Invalid(msg) => write!(f, "invalid cgroup configuration: {msg}"),
            Error::Unsupported { controller, detail } => {
                write!(f, "cgroup controller {controller}: {detail}")
            }
            Error::Timeout(msg) => write!(f, "timed out: {msg}"),
            Error::Bpf { op, source, log } => {
                write!(f, "bpf({op}): {}", errno_text(source))?;
                match source.raw_os_error() {
                    Some(libc::EPERM) => write!(
                        f,
                        ": loading eBPF needs CAP_SYS_ADMIN (or CAP_BPF) and enough RLIMIT_MEMLOCK"
                    )?,
                    Some(libc::EINVAL) if log.is_empty() => write!(
                        f,
                        ": the kernel lacks cgroup device eBPF support (CONFIG_CGROUP_BPF, Linux 4.15+)"
                    )?,
                    _ => {}
                }
                if !log.is_empty() {
                    write!(f, "; verifier log:\n{}", log.trim_end())?;
                }
                Ok(())
            }
            Error::Systemd(msg) => write!(f, "{msg}"),
            Error::Signal { pid, source } => {
                write!(f, "signalling process {pid}: {}", errno_text(source))
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Write { source, .. }
            | Error::Read { source, .. }
            | Error::Io { source, .. }
            | Error::Bpf { source, .. }
            | Error::Signal { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// "memory.limit_in_bytes" → "memory"; "cgroup.procs" → None.
fn controller_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let (c, _) = name.split_once('.')?;
    (c != "cgroup" && !c.is_empty()).then(|| c.to_string())
}

/// What an errno means when writing `value` to the cgroup file at `path`.
pub(crate) fn hint(path: &Path, value: &str, err: &io::Error) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let errno = err.raw_os_error()?;
    let h = match (file, errno) {
        ("memory.limit_in_bytes" | "memory.max", libc::EBUSY) => {
            "the container already uses more memory than the new limit and the kernel could not reclaim enough".into()
        }
        ("memory.memsw.limit_in_bytes", libc::EINVAL) => {
            "memory+swap (linux.resources.memory.swap) must be at least the memory limit".into()
        }
        ("memory.limit_in_bytes", libc::EINVAL) => {
            "the memory limit must not exceed memory+swap (linux.resources.memory.swap)".into()
        }
        ("memory.memsw.limit_in_bytes" | "memory.swap.max", libc::ENOENT) => {
            "swap accounting is off in this kernel (boot with swapaccount=1 / CONFIG_MEMCG_SWAP)".into()
        }
        ("cgroup.subtree_control", libc::EBUSY) => {
            "this cgroup has processes of its own and cgroup v2 forbids enabling controllers for its children (\"no internal processes\"): run the runtime from a cgroup without other processes, or use an absolute linux.cgroupsPath".into()
        }
        ("cgroup.subtree_control", libc::ENOENT | libc::EINVAL) => format!(
            "the controller in {value:?} is not available here (see cgroup.controllers of this cgroup)"
        ),
        ("cgroup.procs", libc::EBUSY) => {
            "the cgroup has controllers enabled for child cgroups, so it cannot hold processes (cgroup v2 \"no internal processes\")".into()
        }
        ("cgroup.procs" | "tasks", libc::ENOSPC) => {
            "cpuset.cpus or cpuset.mems of this cgroup is empty".into()
        }
        ("cgroup.procs" | "tasks", libc::ESRCH) => "the process has already exited".into(),
        ("cpuset.cpus", libc::EINVAL) | ("cpuset.mems", libc::EINVAL) => {
            "the CPUs/memory nodes must exist and be a subset of the parent cgroup's".into()
        }
        ("cpuset.cpus" | "cpuset.mems", libc::ERANGE) => {
            "no such CPU or memory node on this machine".into()
        }
        ("cpuset.cpus" | "cpuset.mems", libc::EBUSY) => {
            "a child cgroup still uses CPUs/nodes that would be removed".into()
        }
        ("cpu.cfs_quota_us" | "cpu.cfs_period_us" | "cpu.max", libc::EINVAL) => {
            "the period must be 1000..1000000 µs, the quota at least 1000 µs, and together they must fit the parent cgroup's limit".into()
        }
        ("cpu.cfs_burst_us" | "cpu.max.burst", libc::EINVAL) => {
            "the burst must not exceed the quota".into()
        }
        ("cpu.rt_runtime_us" | "cpu.rt_period_us", libc::EINVAL | libc::EBUSY) => {
            "the parent cgroup needs enough real-time budget (cpu.rt_runtime_us) and the runtime must not exceed the period".into()
        }
        ("cpu.shares" | "cpu.weight", libc::EINVAL) => "value out of range".into(),
        ("cpu.idle", libc::EINVAL) => "cpu.idle takes 0 or 1".into(),
        ("pids.max", libc::EINVAL) => "the limit must be a positive number or max".into(),
        ("devices.allow", libc::EPERM) => {
            "the parent cgroup does not allow this device, so neither can the container".into()
        }
        ("freezer.state" | "cgroup.freeze", libc::EINVAL) => {
            "the freezer cannot be used on this cgroup".into()
        }
        ("io.max" | "io.weight" | "io.bfq.weight", libc::ENODEV | libc::EINVAL)
        | ("blkio.throttle.read_bps_device", libc::ENODEV | libc::EINVAL)
        | ("blkio.throttle.write_bps_device", libc::ENODEV | libc::EINVAL)
        | ("blkio.throttle.read_iops_device", libc::ENODEV | libc::EINVAL)
        | ("blkio.throttle.write_iops_device", libc::ENODEV | libc::EINVAL) => {
            "the block device MAJ:MIN must exist and be a whole disk that supports this".into()
        }
        (_, libc::ENOENT) => match controller_of(path) {
            Some(c) => format!(
                "this kernel or cgroup has no such file: the {c} controller is missing or does not support this setting"
            ),
            None => "no such file".into(),
        },
        (_, libc::EACCES | libc::EPERM) => {
            "cgroups need root (CAP_SYS_ADMIN) or a delegated cgroup".into()
        }
        (_, libc::EROFS) => "the cgroup filesystem is mounted read-only here".into(),
        (_, libc::EINVAL) => "the kernel rejected the value".into(),
        _ => return None,
    };
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_error_names_file_value_and_meaning() {
        let e = Error::Write {
            path: "/sys/fs/cgroup/memory/x/memory.limit_in_bytes".into(),
            value: "100".into(),
            source: io::Error::from_raw_os_error(libc::EBUSY),
        };
        assert_eq!(
            e.to_string(),
            "writing 100 to /sys/fs/cgroup/memory/x/memory.limit_in_bytes: device or resource busy: \
             the container already uses more memory than the new limit and the kernel could not reclaim enough"
        );
        assert_eq!(e.errno(), Some(libc::EBUSY));
    }

    #[test]
    fn subtree_control_ebusy_explains_no_internal_processes() {
        let e = Error::Write {
            path: "/sys/fs/cgroup/user.slice/cgroup.subtree_control".into(),
            value: "+memory".into(),
            source: io::Error::from_raw_os_error(libc::EBUSY),
        };
        assert!(e.to_string().contains("no internal processes"), "{e}");
    }

    #[test]
    fn missing_controller_file() {
        let e = Error::Write {
            path: "/x/hugetlb.2MB.max".into(),
            value: "1".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert!(
            e.to_string().contains("the hugetlb controller is missing"),
            "{e}"
        );
    }

    #[test]
    fn parse_error_truncates_content() {
        let long = "é".repeat(300);
        let e = Error::parse(Path::new("/x"), &long, "bad");
        assert!(e.to_string().len() < 500);
    }
}
