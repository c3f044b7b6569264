//! The unix socket in a container's state directory on which its waiting
//! init accepts `start` (paths go through /proc/self/fd/N/ because socket
//! addresses are limited to 108 bytes and state roots can be long).

use crate::error::{Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

fn unix_socket() -> Result<OwnedFd> {
    nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "creating a unix socket")
}

/// A short path to `name` in `dir` (socket paths are limited to 108 bytes).
fn short_path(dir_fd: &OwnedFd, name: &str) -> String {
    format!("/proc/self/fd/{}/{name}", dir_fd.as_raw_fd())
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("opening {}", dir.display()))?;
    // SAFETY: open returned a new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn listen_in_dir(dir: &Path, name: &str) -> Result<OwnedFd> {
    let d = open_dir(dir)?;
    let sock = unix_socket()?;
    let addr =
        nix::sys::socket::UnixAddr::new(short_path(&d, name).as_str()).ctx(|| "socket address")?;
    nix::sys::socket::bind(sock.as_raw_fd(), &addr)
        .ctx(|| format!("binding {}/{name}", dir.display()))?;
    nix::sys::socket::listen(
        &sock,
        nix::sys::socket::Backlog::new(4).unwrap_or(nix::sys::socket::Backlog::MAXCONN),
    )
    .ctx(|| "listening on the start socket")?;
    Ok(sock)
}

pub(crate) fn connect_in_dir(dir: &Path, name: &str) -> Result<OwnedFd> {
    let d = open_dir(dir)?;
    let sock = unix_socket()?;
    let addr =
        nix::sys::socket::UnixAddr::new(short_path(&d, name).as_str()).ctx(|| "socket address")?;
    nix::sys::socket::connect(sock.as_raw_fd(), &addr).ctx(|| {
        format!(
            "connecting to the container's init ({}/{name})",
            dir.display()
        )
    })?;
    Ok(sock)
}
