//! OCI hooks: run with the container state on stdin, their own args and env,
//! and an optional timeout after which they are killed.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

/// The hook points of the runtime spec, for messages.
#[derive(Clone, Copy, Debug)]
pub enum Point {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Point {
    pub fn name(self) -> &'static str {
        match self {
            Point::Prestart => "prestart",
            Point::CreateRuntime => "createRuntime",
            Point::CreateContainer => "createContainer",
            Point::StartContainer => "startContainer",
            Point::Poststart => "poststart",
            Point::Poststop => "poststop",
        }
    }
}

/// Run every hook of one point in order; the first failure stops the rest.
pub fn run_all(point: Point, hooks: &[Hook], state_json: &str) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, state_json)
            .ctx(|| format!("{} hook #{i} ({})", point.name(), h.path().display()))?;
    }
    Ok(())
}

fn run_one(hook: &Hook, state_json: &str) -> Result<()> {
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args().as_ref().filter(|a| !a.is_empty()) {
        cmd.arg0(&args[0]).args(&args[1..]);
    }
    cmd.env_clear();
    for kv in hook.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().ctx(|| "starting the hook")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that ignores its stdin may exit before reading it: not an error.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let timeout = hook.timeout().filter(|t| *t > 0);
    let status = match timeout {
        None => child.wait().ctx(|| "waiting for the hook")?,
        Some(secs) => match wait_timeout(child.id() as i32, secs)? {
            true => child.wait().ctx(|| "waiting for the hook")?,
            false => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::msg(format!(
                    "timed out after {secs}s and was killed"
                )));
            }
        },
    };
    if status.success() {
        return Ok(());
    }
    match (status.code(), status.signal()) {
        (Some(c), _) => Err(Error::msg(format!("exited with status {c}"))),
        (_, Some(s)) => Err(Error::msg(format!("killed by signal {s}"))),
        _ => Err(Error::msg("failed")),
    }
}

/// Wait until `pid` exits or `secs` pass; true if it exited.
fn wait_timeout(pid: i32, secs: i64) -> Result<bool> {
    let pidfd = pidfd_open(pid)?;
    let mut fds = [libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs as u64);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // SAFETY: one valid pollfd.
        let r = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                1,
                left.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        if r > 0 {
            return Ok(true);
        }
        if r == 0 {
            return Ok(false);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).ctx(|| "polling the hook");
        }
    }
}

/// A pidfd for `pid` (readable once the process exits).
pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| format!("pidfd_open({pid})"));
    }
    // SAFETY: the kernel returned a new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
