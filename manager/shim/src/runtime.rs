//! Driving the `hull` binary (or any runc-compatible one) by exec:
//! `hull --root R --log BUNDLE/log.json --log-format json COMMAND ...`.
//!
//! Children are never waited for with waitpid here: the main loop reaps
//! every child of the shim (it is their subreaper) and records exits, and
//! [`Shim::wait_child`] picks this child's exit from that record. On failure
//! the error text is hull's own, from the JSON log lines it wrote during
//! this command.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdout, Command, Stdio};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{Error, Result};
use crate::state::Shim;

pub const DEFAULT_BINARY: &str = "hull";
pub const DEFAULT_ROOT: &str = "/run/containerd/hull";

#[derive(Debug, Clone)]
pub struct Runtime {
    /// The runtime binary (`BinaryName` of the runc options; default hull).
    pub binary: PathBuf,
    /// `--root`: the runtime's state directory for this namespace.
    pub root: PathBuf,
    /// `--log`: JSON log lines, read back for error messages.
    pub log: PathBuf,
    pub systemd_cgroup: bool,
}

/// A failed runtime command: what hull said, and its exit status.
#[derive(Debug)]
pub struct RunFailure {
    pub message: String,
}

impl RunFailure {
    pub fn into_error(self, what: &str) -> Error {
        Error::Internal(format!("{what}: {}", self.message))
    }
}

impl Runtime {
    pub fn new(binary: &str, root: &str, namespace: &str, bundle: &Path, systemd: bool) -> Self {
        let binary = if binary.is_empty() {
            DEFAULT_BINARY
        } else {
            binary
        };
        let root = if root.is_empty() { DEFAULT_ROOT } else { root };
        Runtime {
            binary: PathBuf::from(binary),
            root: Path::new(root).join(namespace),
            log: bundle.join("log.json"),
            systemd_cgroup: systemd,
        }
    }

    /// `BINARY --root ... --log ... --log-format json [--systemd-cgroup] ARGS`.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"]);
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(args);
        cmd
    }

    /// Runs a command to completion and returns its stdout. The command's
    /// stdio is piped (stdin from `input`) unless `capture` is false, in
    /// which case the caller has set it (create and exec: the container's).
    pub fn run(
        &self,
        shim: &Shim,
        mut cmd: Command,
        input: Option<&[u8]>,
        capture: bool,
    ) -> Result<Vec<u8>, RunFailure> {
        if capture {
            cmd.stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        }
        let log_start = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let mark = shim.lock().exits.mark();
        let spawned = cmd.spawn();
        // The Command holds the child's ends of any pipes: close them now,
        // or our reads of the other ends never see EOF.
        drop(cmd);
        let mut child = spawned.map_err(|e| RunFailure {
            message: format!(
                "cannot run {}: {e} (install hull on the PATH, or name the runtime \
                 binary in the runtime options' BinaryName)",
                self.binary.display()
            ),
        })?;
        if let (Some(mut stdin), Some(data)) = (child.stdin.take(), input) {
            let _ = stdin.write_all(data);
        }
        let (out, err) = read_both(child.stdout.take(), child.stderr.take());
        let exit = shim.wait_child(child.id() as i32, mark);
        if exit.status == 0 {
            return Ok(out);
        }
        let message = self
            .log_errors(log_start)
            .or_else(|| {
                let e = String::from_utf8_lossy(&err).trim().to_owned();
                (!e.is_empty()).then_some(e)
            })
            .unwrap_or_else(|| {
                format!(
                    "{} exited with status {}",
                    self.binary.display(),
                    exit.status
                )
            });
        Err(RunFailure { message })
    }

    /// The `error`/`fatal` messages hull logged since offset `start`.
    fn log_errors(&self, start: u64) -> Option<String> {
        let mut f = std::fs::File::open(&self.log).ok()?;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start)).ok()?;
        let mut text = String::new();
        f.take(1 << 20).read_to_string(&mut text).ok()?;
        let msgs: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
            .filter_map(|v| v["msg"].as_str().map(str::to_owned))
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    }
}

/// Reads a child's stdout and stderr to EOF together (either may fill its
/// pipe while we wait on the other).
fn read_both(out: Option<ChildStdout>, err: Option<ChildStderr>) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (out, err);
    let (mut obuf, mut ebuf) = (Vec::new(), Vec::new());
    let mut chunk = [0u8; 4096];
    while out.is_some() || err.is_some() {
        let mut fds = Vec::with_capacity(2);
        if let Some(o) = &out {
            fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
        }
        if let Some(e) = &err {
            fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(true)).collect();
        drop(fds);
        let mut i = 0;
        for (pipe, buf) in [
            (&mut out as &mut dyn PipeSlot, &mut obuf),
            (&mut err, &mut ebuf),
        ] {
            if !pipe.present() {
                continue;
            }
            if ready[i] {
                match pipe.read(&mut chunk) {
                    Some(0) | None => pipe.close(),
                    Some(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            i += 1;
        }
    }
    (obuf, ebuf)
}

/// An optional child pipe, so stdout and stderr share one read loop.
trait PipeSlot {
    fn present(&self) -> bool;
    fn read(&mut self, buf: &mut [u8]) -> Option<usize>;
    fn close(&mut self);
}

impl<T: Read + AsRawFd> PipeSlot for Option<T> {
    fn present(&self) -> bool {
        self.is_some()
    }
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        loop {
            match self.as_mut()?.read(buf) {
                Ok(n) => return Some(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }
    fn close(&mut self) {
        *self = None;
    }
}
