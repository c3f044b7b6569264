//! Foreground `run` and `exec`: wait for the container's process while
//! forwarding the signals hull receives to it and, with a terminal and no
//! --console-socket, relaying between the user's terminal and the PTY.
//!
//! Signals are blocked and read from a signalfd, so the wait is one poll
//! loop with no signal handlers; orphans reparented to hull (a subreaper in
//! foreground `run`) are reaped on the way.

use crate::error::{Context, Error, Result};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

pub struct SignalForwarder {
    sfd: nix::sys::signalfd::SignalFd,
}

impl SignalForwarder {
    /// Start catching signals (call before the child can exit).
    pub fn new() -> Result<SignalForwarder> {
        use nix::sys::signal::{SigSet, SigmaskHow};
        use nix::sys::signalfd::{SfdFlags, SignalFd};
        let mut set = SigSet::all();
        for s in [
            Signal::SIGKILL,
            Signal::SIGSTOP,
            Signal::SIGSEGV,
            Signal::SIGBUS,
            Signal::SIGILL,
            Signal::SIGFPE,
        ] {
            set.remove(s);
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .ctx(|| "blocking signals")?;
        let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .ctx(|| "creating a signalfd")?;
        Ok(SignalForwarder { sfd })
    }

    /// Wait for `pid` to exit; returns the exit code a shell would report
    /// (128+N when killed by signal N). With `console`, copy stdin to the
    /// PTY master and the master to stdout meanwhile.
    pub fn wait(&self, pid: i32, console: Option<&OwnedFd>) -> Result<i32> {
        let _raw = console.and_then(|_| RawTerminal::enter());
        if let Some(m) = console {
            copy_window_size(m);
        }
        let mut stdin_open = console.is_some();
        loop {
            if let Some(code) = reap(pid) {
                if let Some(m) = console {
                    drain(m);
                }
                return Ok(code);
            }
            let mut fds = vec![libc::pollfd {
                fd: self.sfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            if let Some(m) = console {
                fds.push(libc::pollfd {
                    fd: m.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                if stdin_open {
                    fds.push(libc::pollfd {
                        fd: 0,
                        events: libc::POLLIN,
                        revents: 0,
                    });
                }
            }
            // SAFETY: valid pollfd array of the given length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).ctx(|| "waiting for the container");
            }
            if fds[0].revents != 0 {
                self.forward_pending(pid, console);
            }
            if let Some(m) = console {
                if fds[1].revents != 0 && !copy(m.as_raw_fd(), 1) {
                    // The PTY closed: every holder of the slave is gone.
                    fds[1].events = 0;
                }
                if stdin_open && fds.len() > 2 && fds[2].revents != 0 && !copy(0, m.as_raw_fd()) {
                    stdin_open = false;
                }
            }
        }
    }

    fn forward_pending(&self, pid: i32, console: Option<&OwnedFd>) {
        while let Ok(Some(info)) = self.sfd.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGCHLD {
                continue;
            }
            if sig == libc::SIGWINCH {
                if let Some(m) = console {
                    copy_window_size(m);
                }
            }
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// Reap exited children; the exit code of `pid` once it is gone.
fn reap(pid: i32) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Some(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                return Some(128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Copy what is readable now from one fd to another; false on EOF/error.
fn copy(from: i32, to: i32) -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: reading into our buffer.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return false;
    }
    let mut off = 0usize;
    while off < n as usize {
        // SAFETY: writing from our buffer.
        let w = unsafe { libc::write(to, buf[off..].as_ptr().cast(), n as usize - off) };
        if w <= 0 {
            return false;
        }
        off += w as usize;
    }
    true
}

/// Output the program wrote just before exiting.
fn drain(master: &OwnedFd) {
    // SAFETY: F_SETFL on our fd.
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    while copy(master.as_raw_fd(), 1) {}
}

fn copy_window_size(master: &OwnedFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read and write a winsize.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// The user's terminal in raw mode for as long as this lives.
struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        // SAFETY: fd 0 outlives this guard.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let saved = nix::sys::termios::tcgetattr(stdin).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(stdin, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: fd 0 is still open.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let _ =
            nix::sys::termios::tcsetattr(stdin, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

/// A console socket in a private temporary directory, for a foreground
/// container with a terminal: hull itself receives the PTY master.
pub struct LocalConsole {
    dir: std::path::PathBuf,
    listener: OwnedFd,
}

impl LocalConsole {
    pub fn new() -> Result<LocalConsole> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("hull-console-{}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .ctx(|| format!("creating {}", dir.display()))?;
        let listener = (|| {
            let sock = nix::sys::socket::socket(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                None,
            )
            .ctx(|| "creating the console socket")?;
            let addr = nix::sys::socket::UnixAddr::new(&dir.join("console.sock"))
                .ctx(|| "console socket path")?;
            nix::sys::socket::bind(sock.as_raw_fd(), &addr).ctx(|| "binding the console socket")?;
            nix::sys::socket::listen(
                &sock,
                nix::sys::socket::Backlog::new(1).map_err(|e| Error::sys("backlog", e))?,
            )
            .ctx(|| "listening on the console socket")?;
            Ok::<_, Error>(sock)
        })();
        match listener {
            Ok(listener) => Ok(LocalConsole { dir, listener }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    pub fn path(&self) -> std::path::PathBuf {
        self.dir.join("console.sock")
    }

    /// The PTY master, once the container has sent it.
    pub fn receive(&self) -> Result<OwnedFd> {
        let conn = nix::sys::socket::accept(self.listener.as_raw_fd())
            .ctx(|| "accepting the console connection")?;
        // SAFETY: accept returned a new descriptor.
        let conn = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(conn) };
        crate::fdpass::recv_fd(&conn).ctx(|| "receiving the container's pty")
    }
}

impl Drop for LocalConsole {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
