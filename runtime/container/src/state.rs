//! A container's state on disk under `<root>/<id>/`, and its live status.
//!
//! `state.json` is written with write-then-rename, so readers always see a
//! complete file. The container's status is derived, not stored: the init
//! process's liveness (pid plus start time, so a recycled pid is not mistaken
//! for it) and whether it still waits for `start` (its start socket exists).

use crate::error::{Context, Error, Result};
use oci_spec::runtime::{Hooks, Spec};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
/// A copy of the bundle's config.json as it was at create.
pub const CONFIG_FILE: &str = "config.json";
/// The init process listens here until `start` connects.
pub const START_SOCKET: &str = "start.sock";
/// The longest path the kernel accepts, without the terminating NUL.
const PATH_MAX: usize = libc::PATH_MAX as usize - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What hull records about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub pid: i32,
    /// Start time of the init process in clock ticks since boot
    /// (/proc/PID/stat field 22): tells a live init from a recycled pid.
    pub init_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Hooks that run after create (poststart at start, poststop at delete);
    /// the full config is kept beside this file for exec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    /// Where the container's cgroups are, in every hierarchy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<hull_cgroups::CgroupPaths>,
    /// Set while `create` runs: the hull process creating the container.
    /// `create` writes the record (with the init's pid and the cgroup paths)
    /// before the cgroups exist, so a create that is killed half-way leaves
    /// a record that `delete` cleans up from; the final record has no creator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<ProcessId>,
    /// Without a mount namespace of its own: where its mounts are in the
    /// host's mount namespace, for delete to remove them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rootfs: Option<crate::hostmounts::HostRootfs>,
}

/// A process known by pid and start time, so that a recycled pid is never
/// taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessId {
    /// The process running as `pid` now, if any.
    pub fn of(pid: i32) -> Option<ProcessId> {
        Some(ProcessId {
            pid,
            start_time: process_start_time(pid)?,
        })
    }

    /// This process.
    pub fn current() -> Option<ProcessId> {
        ProcessId::of(std::process::id() as i32)
    }

    /// Whether the same process is still alive.
    pub fn alive(&self) -> bool {
        self.pid > 0 && process_start_time(self.pid) == Some(self.start_time)
    }
}

/// runc's `state` JSON (field order and names as runc prints them).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(skip_serializing_if = "HashMap::is_empty", default)]
    pub annotations: HashMap<String, String>,
    pub owner: String,
}

/// The state passed to hooks on stdin (runtime-spec "state").
pub fn hook_state(
    id: &str,
    status: Status,
    pid: i32,
    bundle: &Path,
    annotations: &HashMap<String, String>,
) -> String {
    let mut v = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "id": id,
        "status": status.as_str(),
        "bundle": bundle,
        "annotations": annotations,
    });
    if pid > 0 {
        v["pid"] = pid.into();
    }
    v.to_string()
}

/// The state directory of one container.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub dir: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path, id: &str) -> Result<StateDir> {
        crate::id::validate(id)?;
        let dir = root.join(id);
        // The longest path hull makes in the directory: a temporary file of
        // write_atomic. (The start socket is reached through /proc/self/fd,
        // so sun_path's 108 bytes do not limit the directory.)
        let longest = dir.as_os_str().len() + "/.config.json.tmp4294967295".len();
        if longest > PATH_MAX {
            return Err(Error::msg(format!(
                "state directory {} of container {id:?} is too long: paths in it would have {longest} bytes, \
                 at most {PATH_MAX} are allowed; use a shorter --root or id",
                dir.display()
            )));
        }
        Ok(StateDir { dir })
    }

    /// runc's "container does not exist", naming the id and where hull looked.
    pub fn not_exist(&self, id: &str) -> Error {
        let root = self.dir.parent().unwrap_or(&self.dir);
        Error::msg(format!(
            "{}: no container {id:?} in {} (check the id and --root)",
            crate::runc_errors::NOT_EXIST,
            root.display()
        ))
    }

    pub fn exists(&self) -> bool {
        self.dir.join(STATE_FILE).exists()
    }

    pub fn start_socket(&self) -> PathBuf {
        self.dir.join(START_SOCKET)
    }

    /// Create the directory; fails if a container with this id exists.
    pub fn create(&self, root: &Path, id: &str) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .ctx(|| format!("creating state root {}", root.display()))?;
        match std::fs::DirBuilder::new().mode(0o711).create(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(already_exists(id)),
            Err(e) => Err(Error::io(
                format!("creating state directory {}", self.dir.display()),
                e,
            )),
        }
    }

    pub fn load(&self, id: &str) -> Result<Record> {
        let path = self.dir.join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(self.not_exist(id)),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        serde_json::from_slice(&data)
            .map_err(|e| Error::msg(format!("state of container {id:?} ({}) is corrupt: {e}; remove it with `hull delete --force {id}`", path.display())))
    }

    /// Write state.json atomically.
    pub fn save(&self, rec: &Record) -> Result<()> {
        let data =
            serde_json::to_vec(rec).map_err(|e| Error::msg(format!("encoding state: {e}")))?;
        write_atomic(&self.dir.join(STATE_FILE), &data)
    }

    /// Keep the config the container was created from (the bundle may change).
    pub fn save_config(&self, raw: &[u8]) -> Result<()> {
        write_atomic(&self.dir.join(CONFIG_FILE), raw)
    }

    pub fn load_config(&self) -> Result<Spec> {
        let path = self.dir.join(CONFIG_FILE);
        let raw = std::fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
        crate::spec::parse_spec(&raw).map_err(|e| e.context(path.display()))
    }

    /// An exclusive lock on the state directory, held until the returned
    /// descriptor is dropped. Taken by `start`, so concurrent starts of one
    /// container run one after the other.
    pub fn lock(&self) -> Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsRawFd;
        let dir = match std::fs::File::open(&self.dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = self.dir.file_name().unwrap_or_default().to_string_lossy();
                return Err(self.not_exist(&id));
            }
            Err(e) => return Err(Error::io(format!("opening {}", self.dir.display()), e)),
        };
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(dir.into());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io(format!("locking {}", self.dir.display()), e));
            }
        }
    }

    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(
                format!("removing state directory {}", self.dir.display()),
                e,
            )),
        }
    }
}

/// runc's "container with given ID already exists", naming the id.
pub fn already_exists(id: &str) -> Error {
    Error::msg(format!(
        "{}: {id:?}: pick another id or `hull delete {id}` first",
        crate::runc_errors::EXIST
    ))
}

/// Write `data` to a temporary file beside `path`, then rename it over.
///
/// Readers never see a partial file. There is no fsync: runtime state lives
/// on a tmpfs (/run) and describes processes that do not survive a reboot,
/// so durability buys nothing and an fsync would cost every `create`.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(format!("writing {}", path.display()), e));
    }
    Ok(())
}

/// Fields of /proc/PID/stat from field 3 (state) on.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    stat_file_fields(&format!("/proc/{pid}/stat"))
}

fn stat_file_fields(path: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split(' ').map(str::to_owned).collect())
}

/// Start time of a live process (/proc/PID/stat field 22), or None once it
/// is gone, a zombie, or exiting. An exiting process's program has ended,
/// but the kernel may take a while to finish (unmounting its mount
/// namespace; a pid namespace's init waits until every other process of the
/// namespace is reaped): the container is stopped from the start of that.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let f = stat_fields(pid)?;
    let start = f.get(19)?.parse().ok()?;
    if has_ended(&f) && !other_thread_runs(pid) {
        return None;
    }
    Some(start)
}

/// Whether a task (fields of its stat from field 3) is a zombie or exiting.
fn has_ended(f: &[String]) -> bool {
    /// PF_EXITING in the flags (field 9): set when the task starts to exit.
    const PF_EXITING: u64 = 0x4;
    let flags: u64 = f.get(6).and_then(|v| v.parse().ok()).unwrap_or(0);
    matches!(f.first().map(String::as_str), Some("Z" | "X")) || flags & PF_EXITING != 0
}

/// Whether a thread of `pid` other than the main one still runs: a main
/// thread that exited alone (pthread_exit) leaves the process alive.
fn other_thread_runs(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
        .filter(|tid| *tid != pid)
        .any(|tid| {
            stat_file_fields(&format!("/proc/{pid}/task/{tid}/stat"))
                .is_some_and(|f| !has_ended(&f))
        })
}

/// Start time of the process with this pid, whatever its state (a zombie's too).
pub fn stat_start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

impl Record {
    /// Whether the recorded init process is still alive.
    pub fn init_alive(&self) -> bool {
        self.pid > 0 && process_start_time(self.pid) == Some(self.init_start_time)
    }

    pub fn status(&self, dir: &StateDir) -> Status {
        if let Some(creator) = &self.creator {
            // A create that died half-way left a container that never runs.
            return if creator.alive() {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !self.init_alive() {
            Status::Stopped
        } else if dir.start_socket().exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    pub fn oci_state(&self, status: Status, owner: String) -> OciState {
        OciState {
            oci_version: crate::spec::OCI_VERSION.into(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            annotations: self.annotations.clone(),
            owner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable() {
        assert!(process_start_time(std::process::id() as i32).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }

    #[test]
    fn zombies_and_exiting_tasks_have_ended() {
        let fields = |state: &str, flags: u64| -> Vec<String> {
            let mut f = vec!["0".to_string(); 20];
            f[0] = state.into();
            f[6] = flags.to_string();
            f
        };
        assert!(!has_ended(&fields("S", 0x400100)));
        assert!(has_ended(&fields("D", 0x40010c)));
        assert!(has_ended(&fields("Z", 0x40810c)));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        assert!(
            wait_for(|| process_start_time(pid).is_none()),
            "exited child counts as alive"
        );
        assert!(
            stat_start_time(pid).is_some(),
            "a zombie still has its stat"
        );
        child.wait().unwrap();
    }

    fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
        (0..200).any(|_| {
            let ok = cond();
            if !ok {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            ok
        })
    }

    #[test]
    fn state_dir_rejects_bad_ids() {
        assert!(StateDir::new(Path::new("/run/hull"), "../etc").is_err());
        assert!(StateDir::new(Path::new("/run/hull"), "ok-id").is_ok());
    }

    #[test]
    fn state_dir_paths_fit_in_path_max() {
        let id = "i".repeat(255);
        let root = format!("/{}", vec!["r".repeat(250); 15].join("/"));
        assert!(StateDir::new(Path::new(&root), &id).is_ok());
        let root = format!("{root}/{}", "r".repeat(200));
        let e = StateDir::new(Path::new(&root), &id)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("at most 4095 are allowed; use a shorter --root or id"),
            "{e}"
        );
    }

    #[test]
    fn atomic_write_replaces() {
        let d = std::env::temp_dir().join(format!("hull-state-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
