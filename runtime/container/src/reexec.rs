//! Run the runtime from a copy of its binary that the container cannot
//! write to.
//!
//! CVE-2019-5736: a process inside the container can open /proc/PID/exe of a
//! runtime process that joined the container and overwrite the host binary.
//! Before forking anything into a container, hull re-executes itself from a
//! protected view of its binary, so /proc/PID/exe never leads to a writable
//! file. Two views, the first that works:
//!
//! - a read-only overlayfs over the binary's own directory, mounted detached
//!   (fsopen/fsmount, attached nowhere, gone with its last user): nothing is
//!   copied, the pages are the host file's page cache, and a write through
//!   it fails with EROFS. It needs the privilege to mount overlayfs and
//!   Linux 6.8 (`lowerdir+`); runc 1.2 protects itself the same way.
//! - a memfd copy with every write seal set (a rootless hull, older
//!   kernels): ~4 ms and 3.5 MiB more per create, run and exec.
//!
//! A protected process is recognised by its executable itself (on a
//! read-only mount, or a fully sealed memfd), not by an environment
//! variable that a caller could forge. A hull installed on a read-only
//! mount is protected as it is and does not re-execute at all.

use crate::error::{Context, Result};
use crate::fscontext::FsContext;
use crate::mountopts::attr;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether /proc/self/exe cannot be written through: it is on a read-only
/// mount (hull's detached overlay, or an installation on one) or a fully
/// sealed memfd.
pub fn running_protected() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: fstatvfs fills a struct we own from an fd we own.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(f.as_raw_fd(), &mut vfs) } == 0 && vfs.f_flag & libc::ST_RDONLY != 0
    {
        return true;
    }
    // SAFETY: F_GET_SEALS only reads the seals of an fd we own.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// The binary seen through a read-only overlayfs of its own directory,
/// mounted detached. overlayfs without an upper layer wants two lower ones:
/// the second is an empty detached tmpfs.
pub fn overlay_view() -> Result<OwnedFd> {
    let exe = std::fs::read_link("/proc/self/exe").ctx(|| "reading /proc/self/exe")?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(crate::Error::msg(format!(
            "runtime binary {}: no directory",
            exe.display()
        )));
    };
    let dir = dir
        .to_str()
        .ok_or_else(|| crate::Error::msg(format!("runtime binary {}: not UTF-8", exe.display())))?;
    let empty = FsContext::open("tmpfs")?.mount(attr::RDONLY)?;
    let overlay = FsContext::open("overlay")?;
    for layer in [dir, &format!("/proc/self/fd/{}", empty.as_raw_fd())] {
        overlay
            .set("lowerdir+", Some(layer))
            .ctx(|| format!("overlayfs layer {layer}"))?;
    }
    let mnt = overlay.mount(attr::RDONLY | attr::NOSUID | attr::NODEV)?;
    let fd = nix::fcntl::openat(
        Some(mnt.as_raw_fd()),
        name,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NOFOLLOW,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("opening {} through its overlay", exe.display()))?;
    // SAFETY: a new fd we own; it keeps the detached mount alive.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Copy /proc/self/exe into a sealed memfd.
pub fn sealed_copy() -> Result<OwnedFd> {
    let name = CString::new("hull").unwrap_or_default();
    // SAFETY: plain syscall with a valid C string.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| "memfd_create for the runtime's sealed copy");
    }
    // SAFETY: memfd_create returned a new descriptor.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let exe = std::fs::File::open("/proc/self/exe").ctx(|| "opening /proc/self/exe")?;
    let len = exe.metadata().ctx(|| "stat /proc/self/exe")?.len() as usize;
    let mut copied = 0usize;
    while copied < len {
        // SAFETY: sendfile between two fds we own, null offset = use file position.
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                len - copied,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).ctx(|| "copying the runtime binary into a memfd");
        }
        if n == 0 {
            break;
        }
        copied += n as usize;
    }
    // SAFETY: F_ADD_SEALS on our memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "sealing the runtime's memfd copy");
    }
    Ok(memfd)
}

/// Re-execute the current command line from a protected view of the binary
/// unless already running from one. Returns only on failure.
pub fn ensure_protected() -> Result<()> {
    if running_protected() {
        return Ok(());
    }
    let exe = match overlay_view() {
        Ok(fd) => fd,
        Err(e) => {
            crate::debug!("no read-only overlay of the runtime binary ({e}): a sealed copy");
            sealed_copy()?
        }
    };
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(std::os::unix::ffi::OsStringExt::into_vec(a)).unwrap_or_default())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = std::os::unix::ffi::OsStringExt::into_vec(k);
            kv.push(b'=');
            kv.extend(std::os::unix::ffi::OsStringExt::into_vec(v));
            CString::new(kv).unwrap_or_default()
        })
        .collect();
    let err = nix::unistd::fexecve(exe.as_raw_fd(), &args, &env).unwrap_err();
    Err(crate::Error::sys(
        "re-executing hull from its protected view",
        err,
    ))
}
