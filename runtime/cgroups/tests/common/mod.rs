//! Helpers for the privileged tests: processes released on cue, and a guard
//! that removes every process and cgroup a test made, also when it fails.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hull_cgroups::CgroupManager;
use nix::sys::signal::Signal;

/// True when the test may run; without root it panics under CI and skips
/// (with a message) otherwise.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("skipping {test}: needs root");
    false
}

/// A cgroup name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// `sh -c 'read _; SCRIPT'`: runs SCRIPT only after [`Gated::release`],
/// so the process can be moved into a cgroup first.
pub struct Gated {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
}

impl Gated {
    pub fn spawn(script: &str) -> Gated {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("read _ || exit 99; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning sh");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        Gated {
            child,
            stdin,
            stdout,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Lets the script run (or past its next `read _`).
    pub fn release(&mut self) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(b"\n");
            let _ = s.flush();
        }
    }

    /// Reads stdout up to `lines` lines (or EOF).
    pub fn read_lines(&mut self, lines: usize) -> String {
        let mut out = Vec::new();
        let Some(so) = self.stdout.as_mut() else {
            return String::new();
        };
        let mut b = [0u8; 1];
        while out.iter().filter(|&&c| c == b'\n').count() < lines {
            match so.read(&mut b) {
                Ok(1) => out.push(b[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Waits for exit, at most `timeout` (then kills it).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        // By pid (our own child), never by name.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes the cgroups when dropped: thaw, kill what is left in them (only
/// processes this test put there), then destroy.
pub struct CgGuard {
    pub mgr: Box<dyn CgroupManager>,
    pub dirs: Vec<PathBuf>,
}

impl CgGuard {
    pub fn new(mgr: Box<dyn CgroupManager>) -> CgGuard {
        let p = mgr.paths();
        let mut dirs: Vec<PathBuf> = p.v1.values().cloned().collect();
        dirs.extend(p.unified);
        CgGuard { mgr, dirs }
    }
}

impl Drop for CgGuard {
    fn drop(&mut self) {
        let _ = self.mgr.thaw();
        let _ = self.mgr.kill_all(Signal::SIGKILL);
        let res = self.mgr.destroy();
        let left: Vec<_> = self.dirs.iter().filter(|d| d.exists()).collect();
        if !std::thread::panicking() {
            assert!(res.is_ok(), "destroy: {res:?}");
            assert!(left.is_empty(), "cgroups left behind: {left:?}");
        } else if !left.is_empty() {
            eprintln!("cgroups left behind after a failure: {left:?} ({res:?})");
        }
    }
}

/// Polls `f` every 10 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn read(p: impl AsRef<std::path::Path>) -> String {
    std::fs::read_to_string(p.as_ref())
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.as_ref().display()))
        .trim()
        .to_string()
}

/// The "State:" letter of /proc/PID/status.
pub fn proc_state(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The program each devices test runs (POSIX sh: dash and busybox): after
/// each release it tries to open /dev/null and /dev/full read-write and
/// prints `null-ok` or `null-denied: <the shell's error>`, same for full.
pub const DEVICE_PROBE: &str = "\
probe() { for d in null full; do if e=$( (exec 3<>/dev/$d) 2>&1 ); then echo $d-ok; else echo \"$d-denied: $e\"; fi; done; }
probe; read _; probe; read _";

/// Checks one round of [`DEVICE_PROBE`] output: /dev/null opens, and
/// /dev/full opens iff `full_allowed`, else fails with EPERM.
pub fn check_probe(out: &str, full_allowed: bool) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first().copied(), Some("null-ok"), "{out:?}");
    let full = lines.get(1).copied().unwrap_or("");
    if full_allowed {
        assert_eq!(full, "full-ok", "{out:?}");
    } else {
        assert!(
            full.starts_with("full-denied") && full.contains("not permitted"),
            "want EPERM (Operation not permitted): {out:?}"
        );
    }
}
