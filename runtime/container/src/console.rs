//! The container's terminal: a PTY created inside the container (from its own
//! devpts), whose master is handed to the caller over `--console-socket`
//! with SCM_RIGHTS, as runc's console-socket protocol defines.

use crate::error::{Context, Result};
use crate::fdpass;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// e.g. /dev/pts/0, for binding onto /dev/console.
    pub slave_path: String,
}

/// Open a new PTY pair from /dev/ptmx.
pub fn open_pty(width: u16, height: u16) -> Result<Pty> {
    let master = nix::fcntl::open(
        "/dev/ptmx",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "opening /dev/ptmx (is devpts mounted at /dev/pts with ptmxmode=0666?)")?;
    // SAFETY: open returned a new descriptor.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "unlocking the pty");
    }
    // TIOCGPTPEER opens the slave through the master: no path lookup to race.
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "opening the pty slave");
    }
    // SAFETY: the ioctl returned a new descriptor.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd()))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if width > 0 || height > 0 {
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    Ok(Pty {
        master,
        slave,
        slave_path,
    })
}

/// Make the slave the process's stdio and controlling terminal.
pub fn become_controlling(slave: &OwnedFd) -> Result<()> {
    nix::unistd::setsid().ctx(|| "setsid")?;
    // SAFETY: TIOCSCTTY with arg 0 on a tty we hold.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| "making the pty the controlling terminal");
    }
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target).ctx(|| "dup2 of the pty onto stdio")?;
    }
    Ok(())
}

/// Give the process a new terminal: the master goes to the caller over
/// `sock`, the slave becomes stdio and controlling terminal (and, for a
/// container's init, /dev/console).
pub fn attach_terminal(
    p: &oci_spec::runtime::Process,
    sock: &OwnedFd,
    as_console: bool,
) -> Result<()> {
    let size = p.console_size();
    let pty = open_pty(
        size.map(|s| s.width() as u16).unwrap_or(0),
        size.map(|s| s.height() as u16).unwrap_or(0),
    )?;
    if as_console && !pty.slave_path.is_empty() {
        crate::rootfs::bind_console(&pty.slave_path)?;
    }
    fdpass::send_fd(sock, &pty.master, "/dev/ptmx")
        .ctx(|| "sending the pty master over the console socket")?;
    become_controlling(&pty.slave)
}
