//! Small host-side helpers: scratch directories, /proc inspection, process references.
//!
//! Nothing here touches host mounts, and nothing changes a cgroup other than
//! ones named after a test's own container ids (see [`remove_cgroup_dir`]); it
//! reads /proc and /sys/fs/cgroup and manages files below the directories the
//! harness created itself.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A scratch directory under the system temp dir. It is *not* removed on drop:
/// the owner decides (see [`remove_scratch_dir`]), because a directory that still
/// has something mounted below it must never be deleted recursively.
pub fn scratch_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "hull-it-{label}-{}-{n}-{nanos:x}",
        std::process::id()
    ));
    fs::create_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot create scratch dir {}: {e}", dir.display()));
    // Traversable by everyone: user-namespaced containers run as unmapped host uids.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod scratch dir");
    dir
}

/// Removes a scratch directory unless something is still mounted below it.
/// Returns a description of the problem if the directory was left in place.
pub fn remove_scratch_dir(dir: &Path) -> Result<(), String> {
    let mounts = mounts_mentioning(dir);
    if !mounts.is_empty() {
        return Err(format!(
            "not removing {}: still mounted on the host:\n  {}",
            dir.display(),
            mounts.join("\n  ")
        ));
    }
    // std's remove_dir_all does not follow symlinks, so links out of a rootfs are safe.
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}

/// Removes `dir` (as [`remove_scratch_dir`]) when the test process exits:
/// for fixtures built once per process and shared by its tests.
pub fn remove_at_exit(dir: &Path) {
    static DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    extern "C" fn cleanup() {
        let dirs = std::mem::take(&mut *DIRS.lock().unwrap_or_else(|e| e.into_inner()));
        for dir in dirs {
            if let Err(e) = remove_scratch_dir(&dir) {
                eprintln!("warning: {e}");
            }
        }
    }
    let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
    if dirs.is_empty() {
        // SAFETY: registers a plain extern "C" function without captured state.
        unsafe { libc::atexit(cleanup) };
    }
    dirs.push(dir.to_owned());
}

/// A scratch directory removed (as [`remove_scratch_dir`]) when dropped,
/// also when the test using it fails.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(label: &str) -> ScratchDir {
        ScratchDir(scratch_dir(label))
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = remove_scratch_dir(&self.0) {
            eprintln!("{e}");
        }
    }
}

/// Lines of the test process's /proc/self/mountinfo that mention `path`
/// (as mount point, root or source).
pub fn mounts_mentioning(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read /proc/self/mountinfo")
        .lines()
        .filter(|line| unescape_mountinfo(line).contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.clone().take(3).collect();
            if digits.len() == 3 && digits.chars().all(|d| ('0'..='7').contains(&d)) {
                if let Ok(v) = u8::from_str_radix(&digits, 8) {
                    out.push(v as char);
                    chars.nth(2);
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

/// Namespace identity of a process, as the text of the /proc/PID/ns/KIND link
/// (e.g. `net:[4026531840]`).
pub fn ns_link(pid: &str, kind: &str) -> String {
    let link = format!("/proc/{pid}/ns/{kind}");
    fs::read_link(&link)
        .unwrap_or_else(|e| panic!("readlink {link}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// All pids currently in /proc.
fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn dev_ino(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Processes (other than this one) whose root or working directory is one of `dirs`.
///
/// This finds a container's processes after pivot_root (root == the rootfs) and a
/// runtime's helper processes that run in the bundle directory before it; readlink
/// of /proc/PID/root would only show "/" for processes in another mount namespace,
/// so the comparison is done on (device, inode).
pub fn pids_rooted_in(dirs: &[PathBuf]) -> Vec<i32> {
    let wanted: Vec<(u64, u64)> = dirs.iter().filter_map(|d| dev_ino(d)).collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter(|pid| {
            ["root", "cwd"].iter().any(|l| {
                dev_ino(Path::new(&format!("/proc/{pid}/{l}")))
                    .is_some_and(|id| wanted.contains(&id))
            })
        })
        .collect()
}

/// A process identified by pid *and* start time, so that a recycled pid is never
/// mistaken for (and killed as) the process the test recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRef {
    pub pid: i32,
    start_time: u64,
}

impl ProcessRef {
    /// Captures the process currently running as `pid`, if any.
    pub fn capture(pid: i32) -> Option<Self> {
        start_time(pid).map(|start_time| ProcessRef { pid, start_time })
    }

    /// True while the same process exists and is not a zombie.
    pub fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time) && process_state(self.pid) != Some('Z')
    }

    /// Sends SIGKILL if the recorded process still exists.
    pub fn kill(&self) {
        if self.is_alive() {
            // SAFETY: plain syscall; pid verified against its start time just above.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// Fields of /proc/PID/stat after the command name, which may contain spaces.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn process_state(pid: i32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

fn start_time(pid: i32) -> Option<u64> {
    // Field 22 of stat; index 19 after the comm field.
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// True while a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    matches!(process_state(pid), Some(s) if s != 'Z')
}

/// Where the host's cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Every directory below [`CGROUP_ROOT`] (in any hierarchy, at any depth)
/// whose name is `name`: what a container named `name` left behind.
/// Symlinks (e.g. `cpu -> cpu,cpuacct`) are not followed, so each cgroup is
/// listed once.
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if !kind.is_dir() {
                continue;
            }
            let path = entry.path();
            if entry.file_name() == name {
                found.push(path.clone());
            }
            walk(&path, name, found);
        }
    }
    let mut found = Vec::new();
    walk(Path::new(CGROUP_ROOT), name, &mut found);
    found.sort();
    found
}

/// Removes a leftover cgroup directory of a test's container (and any below
/// it): thaws it, SIGKILLs the processes listed in its `cgroup.procs`, and
/// removes the directories deepest first. Returns what could not be removed.
/// Only ever called for directories named after a container id the test
/// handed out.
pub fn remove_cgroup_dir(dir: &Path) -> Result<(), String> {
    let mut dirs = vec![dir.to_owned()];
    let mut i = 0;
    while i < dirs.len() {
        if let Ok(entries) = fs::read_dir(&dirs[i]) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
        }
        i += 1;
    }
    for d in &dirs {
        let _ = fs::write(d.join("freezer.state"), "THAWED");
        let _ = fs::write(d.join("cgroup.freeze"), "0");
        for pid in cgroup_procs(d) {
            if let Some(p) = ProcessRef::capture(pid) {
                p.kill();
            }
        }
    }
    let mut last_error = None;
    let removed = wait_until(std::time::Duration::from_secs(5), || {
        dirs.iter().rev().all(|d| match fs::remove_dir(d) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                last_error = Some(format!("rmdir {}: {e}", d.display()));
                false
            }
        })
    });
    if removed {
        Ok(())
    } else {
        Err(last_error.unwrap_or_default())
    }
}

/// The pids listed in `DIR/cgroup.procs` (empty if unreadable).
pub fn cgroup_procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The host directory of the cgroup that process `pid` is in, in the
/// hierarchy holding `controller` ("memory", "cpu", "pids", ...; "" for the
/// cgroup v2 unified hierarchy), from /proc/PID/cgroup and this process's
/// mountinfo. `None` if the host has no such hierarchy mounted or the
/// process is gone.
pub fn cgroup_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let membership = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in membership.lines() {
        // hierarchy-id:controller-list:path
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() {
            list.is_empty()
        } else {
            list.split(',').any(|c| c == controller)
        };
        if !matches {
            continue;
        }
        for m in mountinfo.lines() {
            // id parent major:minor root mount-point options [optional...] - fstype source super-options
            let fields: Vec<&str> = m.split_whitespace().collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            if fields.len() < dash + 4 || fields.len() < 5 {
                continue;
            }
            let (root, mount_point) = (fields[3], fields[4]);
            let fstype = fields[dash + 1];
            let supers = fields[dash + 3];
            let same = if controller.is_empty() {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup" && supers.split(',').any(|o| o == controller)
            };
            if !same || !mount_point.starts_with(CGROUP_ROOT) {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap_or(path);
            let rel = rel.trim_start_matches('/');
            let dir = Path::new(&unescape_mountinfo(mount_point)).join(rel);
            return Some(dir);
        }
    }
    None
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns the final value.
pub fn wait_until(timeout: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape_mountinfo(r"/a\040b /c\134d"), r"/a b /c\d");
        assert_eq!(unescape_mountinfo(r"/plain\x"), r"/plain\x");
    }

    #[test]
    fn own_process_is_captured() {
        let me = ProcessRef::capture(std::process::id() as i32).expect("own stat");
        assert!(me.is_alive());
    }
}
