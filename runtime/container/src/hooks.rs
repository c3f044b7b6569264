//! OCI hooks: run with the container state on stdin, their own args and env,
//! and an optional timeout after which they are killed, each under a keeper
//! process that kills the hook and its children if the runtime dies.

use crate::error::{Context, Error, Result};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::Hook;
use std::io::{Read, Write};
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
///
/// A hook without `env` gets what runc gives it: `default_env` for the
/// hooks run inside the container (the container process's environment),
/// `None` for those the runtime runs (the runtime's own environment, i.e.
/// its caller's).
pub fn run_all(
    point: Point,
    hooks: &[Hook],
    state_json: &str,
    default_env: Option<&[String]>,
) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        crate::debug!(
            "running {} hook #{i}: {} {:?}",
            point.name(),
            h.path().display(),
            h.args().as_deref().unwrap_or_default()
        );
        run_one(h, state_json, default_env)
            .ctx(|| format!("{} hook #{i} ({})", point.name(), h.path().display()))?;
        crate::debug!("{} hook #{i} succeeded", point.name());
    }
    Ok(())
}

fn run_one(hook: &Hook, state_json: &str, default_env: Option<&[String]>) -> Result<()> {
    let keeper = Keeper::start(hook, state_json, default_env)?;
    keeper.wait(hook.timeout().filter(|t| *t > 0))
}

/// A hook runs under a keeper: a fork of the runtime that leads a process
/// group of its own, starts the hook in it and reports how the hook ended.
/// The keeper dies with the runtime (parent-death signal) and then kills its
/// whole group, so neither the hook nor anything the hook started outlives
/// a killed `create`; a timeout kills the whole group as well.
struct Keeper {
    pid: Pid,
    /// Read end of the pipe the keeper writes its report to.
    report: OwnedFd,
}

/// The keeper's parent-death signal. Blocked and waited for, not fatal by
/// itself: the keeper kills its group when it arrives.
const KEEPER_DEATH_SIGNAL: Signal = Signal::SIGTERM;

impl Keeper {
    fn start(hook: &Hook, state_json: &str, default_env: Option<&[String]>) -> Result<Keeper> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .ctx(|| "creating a pipe for a hook")?;
        let runtime = nix::unistd::getpid();
        // SAFETY: the runtime is single-threaded; the child only runs
        // `keeper_main`, which exits.
        match unsafe { nix::unistd::fork() }.ctx(|| "forking the hook's keeper")? {
            ForkResult::Child => {
                drop(read);
                keeper_main(hook, state_json, default_env, runtime, write)
            }
            ForkResult::Parent { child } => Ok(Keeper {
                pid: child,
                report: read,
            }),
        }
    }

    /// Wait for the hook (at most `timeout` seconds) and return its outcome.
    fn wait(self, timeout: Option<i64>) -> Result<()> {
        if let Some(secs) = timeout {
            if !wait_timeout(self.pid.as_raw(), secs)? {
                // The keeper leads the group: the hook and its children die with it.
                if kill(Pid::from_raw(-self.pid.as_raw()), Signal::SIGKILL).is_err() {
                    let _ = kill(self.pid, Signal::SIGKILL);
                }
                let _ = reap(self.pid);
                return Err(Error::msg(format!(
                    "timed out after {secs}s and was killed"
                )));
            }
        }
        let status = reap(self.pid)?;
        let mut report = String::new();
        let _ = std::fs::File::from(self.report).read_to_string(&mut report);
        match (report.as_str(), status) {
            ("", WaitStatus::Exited(_, 0)) => Err(Error::msg("its keeper process failed")),
            ("", _) => Err(Error::msg("its keeper process was killed")),
            ("ok", _) => Ok(()),
            (why, _) => Err(Error::msg(why)),
        }
    }
}

fn reap(pid: Pid) -> Result<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.ctx(|| "waiting for the hook"),
        }
    }
}

/// The keeper process: never returns.
fn keeper_main(
    hook: &Hook,
    state_json: &str,
    default_env: Option<&[String]>,
    runtime: Pid,
    report: OwnedFd,
) -> ! {
    let outcome = keep(hook, state_json, default_env, runtime);
    let _ = nix::unistd::write(&report, outcome.as_bytes());
    // SAFETY: leave the forked keeper without running the runtime's destructors.
    unsafe { libc::_exit(0) }
}

/// Run the hook in this process's group; "ok" or what went wrong.
fn keep(hook: &Hook, state_json: &str, default_env: Option<&[String]>, runtime: Pid) -> String {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGCHLD);
    signals.add(KEEPER_DEATH_SIGNAL);
    let setup = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))
        .and_then(|()| signals.thread_block());
    // An ignored SIGCHLD (inherited from our caller) would reap the hook
    // before the keeper could read its status.
    // SAFETY: restoring the default disposition installs no handler.
    let _ =
        unsafe { nix::sys::signal::signal(Signal::SIGCHLD, nix::sys::signal::SigHandler::SigDfl) };
    if let Err(e) = setup {
        return format!("setting up the hook's keeper: {}", e.desc().to_lowercase());
    }
    // Best effort: inside a container (createContainer and startContainer
    // hooks) a seccomp filter may deny prctl; the hook then only loses the
    // tie to the runtime's life.
    // SAFETY: prctl on ourselves.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            KEEPER_DEATH_SIGNAL as libc::c_int,
            0,
            0,
            0,
        )
    };
    if nix::unistd::getppid() != runtime {
        kill_own_group();
    }
    let mut child = match command(hook, default_env).spawn() {
        Ok(c) => c,
        Err(e) => return format!("starting the hook: {e}"),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that ignores its stdin may exit before reading it: not an error.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    loop {
        match signals.wait() {
            Ok(sig) if sig == KEEPER_DEATH_SIGNAL => kill_own_group(),
            Ok(_) => {}
            // No sigwait (a seccomp filter): just wait for the hook.
            Err(_) => {
                return child
                    .wait()
                    .map_or_else(|e| format!("waiting for the hook: {e}"), describe)
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => return describe(status),
            Ok(None) => {}
            Err(e) => return format!("waiting for the hook: {e}"),
        }
    }
}

/// The runtime died (or someone asked the keeper to stop): the hook and
/// whatever it started go too, the keeper included.
fn kill_own_group() -> ! {
    let _ = kill(Pid::from_raw(0), Signal::SIGKILL);
    // SAFETY: not reached in practice; leave without the runtime's destructors.
    unsafe { libc::_exit(1) }
}

fn command(hook: &Hook, default_env: Option<&[String]>) -> Command {
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args().as_ref().filter(|a| !a.is_empty()) {
        cmd.arg0(&args[0]).args(&args[1..]);
    }
    // Neither: the runtime's own environment, inherited.
    if let Some(env) = hook.env().as_deref().or(default_env) {
        cmd.env_clear();
        for kv in env {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    cmd
}

fn describe(status: std::process::ExitStatus) -> String {
    if status.success() {
        return "ok".into();
    }
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        let mut h = Hook::default();
        h.set_path("/bin/sh".into());
        h.set_args(Some(vec!["sh".into(), "-c".into(), script.into()]));
        h.set_timeout(timeout);
        h
    }

    #[test]
    fn outcomes() {
        assert!(run_one(
            &hook("read -r s; [ \"$s\" = state ]", None),
            "state\n",
            None
        )
        .is_ok());
        let e = run_one(&hook("exit 3", None), "", None)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "exited with status 3");
        let e = run_one(&hook("kill -9 $$", None), "", None)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "killed by signal 9");
        let mut missing = hook("", None);
        missing.set_path("/nonexistent/hook".into());
        let e = run_one(&missing, "", None).unwrap_err().to_string();
        assert!(e.starts_with("starting the hook: "), "{e}");
    }

    #[test]
    fn timeout_kills_what_the_hook_started() {
        let dir = std::env::temp_dir().join(format!("hull-hook-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("child.pid");
        let script = format!("sleep 600 & echo $! > {}; wait", pid_file.display());
        let e = run_one(&hook(&script, Some(1)), "", None)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "timed out after 1s and was killed");
        let child: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // Killed with the group; a zombie until init reaps it.
        let gone = (0..100).any(|_| {
            let alive = crate::state::process_start_time(child).is_some();
            if alive {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            !alive
        });
        assert!(gone, "the hook's child {child} outlived the timeout");
    }
}
