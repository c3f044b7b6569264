//! Run the runtime from a sealed in-memory copy of its own binary.
//!
//! CVE-2019-5736: a process inside the container can open /proc/PID/exe of a
//! runtime process that joined the container and overwrite the host binary.
//! Before forking anything into a container, hull re-executes itself from a
//! memfd with every write seal set, so /proc/PID/exe points at an immutable
//! anonymous copy. A sealed copy is recognised by its seals, not by an
//! environment variable that a caller could forge.

use crate::error::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether /proc/self/exe is a fully sealed memfd.
pub fn running_from_sealed_copy() -> bool {
    let Ok(f) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS only reads the seals of an fd we own.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
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

/// Re-execute the current command line from a sealed copy unless already
/// running from one. Returns only on failure.
pub fn ensure_sealed() -> Result<()> {
    if running_from_sealed_copy() {
        return Ok(());
    }
    let memfd = sealed_copy()?;
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
    let err = nix::unistd::fexecve(memfd.as_raw_fd(), &args, &env).unwrap_err();
    Err(crate::Error::sys(
        "re-executing hull from its sealed copy",
        err,
    ))
}
