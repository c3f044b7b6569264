//! OOM kills of a container's memory cgroup, watched from the main loop so
//! the shim can publish TaskOOM: on cgroup v1 an eventfd registered on
//! `memory.oom_control` through `cgroup.event_control`, on cgroup v2 inotify
//! on `memory.events`. Either only wakes the loop; the `oom_kill` counter is
//! what decides that a kill happened (the v1 eventfd also fires when the
//! cgroup is removed).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

enum Source {
    V1 { efd: EventFd, _control: File },
    V2 { inotify: Inotify },
}

pub struct OomWatch {
    pub container: String,
    source: Source,
    /// `memory.oom_control` (v1) or `memory.events` (v2).
    pub counter_file: PathBuf,
    kills: u64,
    /// v1 signals when the cgroup goes under OOM, before the kill is
    /// counted: after a wake-up without a kill the counter is re-read
    /// until then.
    pub recheck_until: Option<Instant>,
}

/// How long after a wake-up the kill counter is re-read.
const RECHECK_FOR: Duration = Duration::from_secs(2);

/// What a wake-up of the watch meant.
pub enum OomEvent {
    Killed,
    Nothing,
    /// The cgroup is gone: stop watching.
    Gone,
}

impl OomWatch {
    /// Watches the memory cgroup of process `pid` (the container's init).
    /// None when the host has no memory controller or it cannot be watched.
    pub fn new(container: &str, pid: u32) -> Result<OomWatch, String> {
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map_err(|e| format!("reading /proc/{pid}/cgroup: {e}"))?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
        if let Some(dir) = v1_memory_dir(&cgroups, &mountinfo) {
            return watch_v1(container, &dir);
        }
        if let Some(dir) = v2_dir(&cgroups, &mountinfo) {
            if dir.join("memory.events").exists() {
                return watch_v2(container, &dir);
            }
        }
        Err("no memory cgroup to watch".into())
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.source {
            Source::V1 { efd, .. } => efd.as_fd(),
            Source::V2 { inotify } => inotify.as_fd(),
        }
    }

    pub fn on_readable(&mut self) -> OomEvent {
        match &self.source {
            Source::V1 { efd, .. } => {
                let _ = efd.read();
            }
            Source::V2 { inotify } => {
                let _ = inotify.read_events();
            }
        }
        self.recheck_until = Some(Instant::now() + RECHECK_FOR);
        self.recheck()
    }

    /// Reads the kill counter: a kill since the last read, nothing, or
    /// the cgroup is gone.
    pub fn recheck(&mut self) -> OomEvent {
        if self.recheck_until.is_some_and(|t| Instant::now() > t) {
            self.recheck_until = None;
        }
        match read_kills(&self.counter_file) {
            None => OomEvent::Gone,
            Some(n) if n > self.kills => {
                self.kills = n;
                self.recheck_until = None;
                OomEvent::Killed
            }
            Some(_) => OomEvent::Nothing,
        }
    }
}

fn watch_v1(container: &str, dir: &Path) -> Result<OomWatch, String> {
    let counter_file = dir.join("memory.oom_control");
    let control = File::open(&counter_file)
        .map_err(|e| format!("opening {}: {e}", counter_file.display()))?;
    let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(|e| format!("eventfd: {e}"))?;
    let line = format!("{} {}", efd.as_fd().as_raw_fd(), control.as_raw_fd());
    let ctl = dir.join("cgroup.event_control");
    std::fs::write(&ctl, line).map_err(|e| format!("writing {}: {e}", ctl.display()))?;
    Ok(OomWatch {
        container: container.to_owned(),
        kills: read_kills(&counter_file).unwrap_or(0),
        recheck_until: None,
        source: Source::V1 {
            efd,
            _control: control,
        },
        counter_file,
    })
}

fn watch_v2(container: &str, dir: &Path) -> Result<OomWatch, String> {
    let counter_file = dir.join("memory.events");
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| format!("inotify_init: {e}"))?;
    inotify
        .add_watch(&counter_file, AddWatchFlags::IN_MODIFY)
        .map_err(|e| format!("watching {}: {e}", counter_file.display()))?;
    Ok(OomWatch {
        container: container.to_owned(),
        kills: read_kills(&counter_file).unwrap_or(0),
        recheck_until: None,
        source: Source::V2 { inotify },
        counter_file,
    })
}

/// The `oom_kill` line of memory.oom_control (v1) or memory.events (v2).
fn read_kills(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    Some(
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
    )
}

/// Mount points of cgroup filesystems: (fstype, super options, mount point, root).
fn cgroup_mounts(mountinfo: &str) -> Vec<(&str, &str, &str, &str)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let _source = post.next()?;
            let opts = post.next().unwrap_or("");
            (fstype == "cgroup" || fstype == "cgroup2").then_some(())?;
            Some((fstype, opts, *pre.get(4)?, *pre.get(3)?))
        })
        .collect()
}

fn join_cgroup(mount: &str, root: &str, path: &str) -> PathBuf {
    let rel = path
        .strip_prefix(root)
        .unwrap_or(path)
        .trim_start_matches('/');
    Path::new(mount).join(rel)
}

fn v1_memory_dir(cgroups: &str, mountinfo: &str) -> Option<PathBuf> {
    let path = cgroups.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls.split(',').any(|c| c == "memory").then_some(path)
    })?;
    let (_, _, mount, root) = cgroup_mounts(mountinfo)
        .into_iter()
        .find(|(t, opts, _, _)| *t == "cgroup" && opts.split(',').any(|o| o == "memory"))?;
    Some(join_cgroup(mount, root, path))
}

fn v2_dir(cgroups: &str, mountinfo: &str) -> Option<PathBuf> {
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let (_, _, mount, root) = cgroup_mounts(mountinfo)
        .into_iter()
        .find(|(t, _, _, _)| *t == "cgroup2")?;
    Some(join_cgroup(mount, root, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
35 25 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
36 25 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn finds_v1_memory_and_v2_dirs() {
        let cg = "12:memory:/default/c1\n0::/default/c1\n";
        assert_eq!(
            v1_memory_dir(cg, MOUNTINFO),
            Some(PathBuf::from("/sys/fs/cgroup/memory/default/c1"))
        );
        assert_eq!(
            v2_dir(cg, MOUNTINFO),
            Some(PathBuf::from("/sys/fs/cgroup/unified/default/c1"))
        );
        assert_eq!(v1_memory_dir("0::/x\n", MOUNTINFO), None);
    }
}
