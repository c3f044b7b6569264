//! Unix-socket plumbing for handing file descriptors to another process
//! with SCM_RIGHTS: the PTY master to a `--console-socket`, a seccomp
//! listener to its agent's `listenerPath`.

use crate::error::{Context, Error, Result};
use nix::sys::socket::{self, ControlMessage, MsgFlags, UnixAddr};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Connect to a unix stream socket. Called by the runtime before the
/// container's namespaces exist, so `path` is the host's. `what` names the
/// socket in errors ("console socket", "seccomp agent socket").
pub fn connect(path: &Path, what: &str) -> Result<OwnedFd> {
    let fd = socket::socket(
        socket::AddressFamily::Unix,
        socket::SockType::Stream,
        socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| format!("creating a socket for the {what}"))?;
    let addr = UnixAddr::new(path).ctx(|| format!("{what} path {}", path.display()))?;
    socket::connect(fd.as_raw_fd(), &addr)
        .ctx(|| format!("connecting to the {what} {}", path.display()))?;
    Ok(fd)
}

/// Send `fd` with `payload` as the message body (runc sends the PTY's name;
/// the runtime spec sends the container process state to seccomp agents).
pub fn send_fd(sock: &OwnedFd, fd: &OwnedFd, payload: &str) -> Result<()> {
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(payload.as_bytes())];
    socket::sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        // A peer that went away is an error, not a SIGPIPE.
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .ctx(|| "sending a file descriptor")?;
    Ok(())
}

/// Receive one fd sent with [`send_fd`] (foreground `run -t` receives its PTY).
pub fn recv_fd(sock: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = socket::recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx(|| "receiving a file descriptor")?;
    for c in msg.cmsgs().ctx(|| "reading control messages")? {
        if let socket::ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::msg("the peer sent no file descriptor"))
}
