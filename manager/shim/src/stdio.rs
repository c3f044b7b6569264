//! A process's stdio as containerd's runc shim sets it up:
//!
//! - FIFOs (plain paths or `fifo://`): the container gets pipes; the shim
//!   copies stdin FIFO → pipe and pipe → stdout/stderr FIFO. Output FIFOs
//!   are opened read-write, so a client that goes away does not turn the
//!   container's writes into EPIPE, and the stdin FIFO is also held open
//!   for writing until CloseIO, so a client re-opening it does not end the
//!   container's input.
//! - `file://PATH`: both output pipes are appended to PATH, with rotation
//!   (see [`crate::logfile`]).
//! - a terminal: hull sends the pty master over a console socket; the shim
//!   copies stdin FIFO → master → stdout FIFO.
//! - nothing at all: /dev/null.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::error::{Error, Result};
use crate::iocopy::{CopyJob, ProcKey, Sink};
use crate::logfile::{self, RotatingLog, Stream};
use crate::state::StdioRequest;

/// The three fds `hull create`/`hull exec` gets.
pub struct ChildStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

/// The shim's side, to be wired up once hull succeeded.
pub struct PendingStdio {
    key: ProcKey,
    jobs: Vec<CopyJob>,
    stdin_fifo: Option<Arc<OwnedFd>>,
    stdin_keepalive: Option<OwnedFd>,
    stdout_sink: Option<Sink>,
    console: Option<ConsoleSocket>,
}

/// What a started process keeps of its stdio.
pub struct WiredStdio {
    pub jobs: Vec<CopyJob>,
    pub console: Option<Arc<OwnedFd>>,
    pub stdin_keepalive: Option<OwnedFd>,
}

/// A listening socket hull connects to with `--console-socket` to send
/// the pty master. The socket file is removed on drop.
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn set_nonblocking(fd: RawFd) -> Result<()> {
    let flags =
        fcntl(fd, FcntlArg::F_GETFL).map_err(|e| Error::Internal(format!("F_GETFL: {e}")))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(|e| Error::Internal(format!("F_SETFL: {e}")))?;
    Ok(())
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| {
        Error::Internal(format!(
            "creating a stdio pipe: {e} (out of file descriptors?)"
        ))
    })
}

fn open_fifo(path: &str, what: &str, read: bool, write: bool) -> Result<OwnedFd> {
    OpenOptions::new()
        .read(read)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "opening the {what} FIFO {path}: {e} (the client creates the FIFOs before Create/Exec)"
            ))
        })
}

/// Where a process's output goes.
enum Output {
    None,
    Fifo,
    File(logfile::FileUri),
}

fn output_kind(uri: &str) -> Result<Output> {
    if uri.is_empty() {
        return Ok(Output::None);
    }
    match uri.split_once("://").map(|(s, _)| s) {
        None | Some("fifo") => Ok(Output::Fifo),
        Some("file") => Ok(Output::File(logfile::parse_uri(uri)?)),
        Some("binary") => Err(Error::Unimplemented(format!(
            "stdio URI {uri:?}: binary:// log drivers are not supported by hull-shim; use file:///PATH"
        ))),
        Some(other) => Err(Error::InvalidArgument(format!(
            "stdio URI {uri:?}: unknown scheme {other:?} (fifo paths, file:// and nothing are supported)"
        ))),
    }
}

fn fifo_path(uri: &str) -> &str {
    uri.strip_prefix("fifo://").unwrap_or(uri)
}

/// Opens the client's side and makes the container's.
/// `console_path`: where to bind the console socket of a terminal process.
pub fn prepare(
    key: &ProcKey,
    req: &StdioRequest,
    console_path: &Path,
) -> Result<(ChildStdio, PendingStdio)> {
    let mut pending = PendingStdio {
        key: key.clone(),
        jobs: Vec::new(),
        stdin_fifo: None,
        stdin_keepalive: None,
        stdout_sink: None,
        console: None,
    };
    if !req.stdin.is_empty() {
        let path = fifo_path(&req.stdin);
        pending.stdin_fifo = Some(Arc::new(open_fifo(path, "stdin", true, false)?));
        pending.stdin_keepalive = Some(open_fifo(path, "stdin", false, true)?);
    }
    if req.terminal {
        if !req.stdout.is_empty() {
            pending.stdout_sink = Some(Sink::Fd(Arc::new(open_fifo(
                fifo_path(&req.stdout),
                "stdout",
                true,
                true,
            )?)));
        }
        pending.console = Some(bind_console(console_path)?);
        let null = ChildStdio {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        };
        return Ok((null, pending));
    }
    let stdin = match pending.stdin_fifo.clone() {
        Some(fifo) => {
            let (r, w) = pipe()?;
            set_nonblocking(w.as_raw_fd())?;
            pending
                .jobs
                .push(CopyJob::input(key.clone(), fifo, Sink::Fd(Arc::new(w))));
            Stdio::from(r)
        }
        None => Stdio::null(),
    };
    let stdout_sink = output_sink(&req.stdout, Stream::Stdout)?;
    // stdout and stderr to one destination (file://, or the same FIFO):
    // one sink, shared.
    let stderr_sink = if req.stderr == req.stdout {
        stdout_sink.as_ref().map(as_stderr)
    } else {
        output_sink(&req.stderr, Stream::Stderr)?
    };
    let stdout = pending.output_pipe(stdout_sink)?;
    let stderr = pending.output_pipe(stderr_sink)?;
    Ok((
        ChildStdio {
            stdin,
            stdout,
            stderr,
        },
        pending,
    ))
}

/// The stdout sink, shared by stderr.
fn as_stderr(s: &Sink) -> Sink {
    match s {
        Sink::Fd(fd) => Sink::Fd(fd.clone()),
        Sink::Log(l, _) => Sink::Log(l.clone(), Stream::Stderr),
    }
}

fn output_sink(uri: &str, stream: Stream) -> Result<Option<Sink>> {
    let what = stream.name();
    Ok(match output_kind(uri)? {
        Output::None => None,
        Output::Fifo => Some(Sink::Fd(Arc::new(open_fifo(
            fifo_path(uri),
            what,
            true,
            true,
        )?))),
        Output::File(f) => Some(Sink::Log(
            Arc::new(Mutex::new(RotatingLog::open(&f)?)),
            stream,
        )),
    })
}

impl PendingStdio {
    fn output_pipe(&mut self, sink: Option<Sink>) -> Result<Stdio> {
        let Some(sink) = sink else {
            return Ok(Stdio::null());
        };
        let (r, w) = pipe()?;
        set_nonblocking(r.as_raw_fd())?;
        self.jobs
            .push(CopyJob::output(self.key.clone(), Arc::new(r), sink));
        Ok(Stdio::from(w))
    }

    pub fn console_path(&self) -> Option<&Path> {
        self.console.as_ref().map(|c| c.path.as_path())
    }

    /// After hull succeeded: receive the pty master (terminal processes)
    /// and return the copy jobs to run.
    pub fn wire(mut self) -> Result<WiredStdio> {
        let mut console = None;
        if let Some(sock) = self.console.take() {
            let master = Arc::new(receive_master(&sock)?);
            if let Some(fifo) = self.stdin_fifo.take() {
                self.jobs.push(CopyJob::input(
                    self.key.clone(),
                    fifo,
                    Sink::Fd(master.clone()),
                ));
            }
            if let Some(sink) = self.stdout_sink.take() {
                self.jobs
                    .push(CopyJob::output(self.key.clone(), master.clone(), sink));
            }
            console = Some(master);
        }
        Ok(WiredStdio {
            jobs: self.jobs,
            console,
            stdin_keepalive: self.stdin_keepalive,
        })
    }
}

fn bind_console(path: &Path) -> Result<ConsoleSocket> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|e| {
        Error::Internal(format!(
            "binding the console socket {}: {e}",
            path.display()
        ))
    })?;
    Ok(ConsoleSocket {
        path: path.to_owned(),
        listener,
    })
}

/// Accepts hull's connection on the console socket and takes the pty
/// master from its SCM_RIGHTS message. hull has sent it before exiting,
/// so the connection is already queued.
fn receive_master(sock: &ConsoleSocket) -> Result<OwnedFd> {
    let fail = |why: String| {
        Error::Internal(format!(
            "receiving the terminal from the runtime on {}: {why}",
            sock.path.display()
        ))
    };
    sock.listener
        .set_nonblocking(true)
        .map_err(|e| fail(e.to_string()))?;
    let mut tries = 0;
    let (conn, _) = loop {
        match sock.listener.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(fail(format!("{e} (the runtime sent no pty master)"))),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| fail(e.to_string()))?;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(|e| fail(e.to_string()))? {
        if let ControlMessageOwned::ScmRights(r) = c {
            fds.extend(r);
        }
    }
    // SAFETY: the fds were just received with SCM_RIGHTS and belong to us.
    let mut owned: Vec<OwnedFd> = fds
        .into_iter()
        .map(|fd| unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
        .collect();
    if owned.len() != 1 {
        return Err(fail(format!("expected one fd, got {}", owned.len())));
    }
    let master = owned.remove(0);
    set_nonblocking(master.as_raw_fd())?;
    Ok(master)
}

/// Sets the window size of a pty master (ResizePty).
pub fn resize(master: &OwnedFd, width: u32, height: u32) -> Result<()> {
    let ws = libc::winsize {
        ws_row: height.min(u16::MAX as u32) as u16,
        ws_col: width.min(u16::MAX as u32) as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct we own.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(Error::Internal(format!(
            "resizing the terminal: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
