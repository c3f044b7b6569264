//! Small host-side helpers: scratch directories, /proc inspection, process references.
//!
//! Nothing here touches host mounts or cgroups; it only reads /proc and manages
//! files below the directories the harness created itself.

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
