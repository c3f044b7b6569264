//! The new mount API (fsopen, fsconfig, fsmount) as a small typed wrapper:
//! a filesystem context is configured key by key and becomes a detached
//! mount, visible nowhere until it is moved into place (or never: the
//! runtime's read-only view of its own binary stays detached). nix 0.29 has
//! no bindings for these calls.

use crate::error::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;

/// A filesystem context being configured (`fsopen`).
pub struct FsContext {
    fd: OwnedFd,
    fstype: &'static str,
}

fn sys_result(r: libc::c_long) -> std::io::Result<RawFd> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r as RawFd)
    }
}

impl FsContext {
    /// `fsopen(fstype)`.
    pub fn open(fstype: &'static str) -> Result<FsContext> {
        let name = CString::new(fstype).map_err(std::io::Error::other);
        // SAFETY: fsopen with a NUL-terminated name; returns an fd or -1.
        let fd = name
            .and_then(|n| {
                sys_result(unsafe { libc::syscall(libc::SYS_fsopen, n.as_ptr(), FSOPEN_CLOEXEC) })
            })
            .ctx(|| format!("fsopen({fstype})"))?;
        Ok(FsContext {
            // SAFETY: a new fd we own.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            fstype,
        })
    }

    /// One option: `key=value`, or the flag `key` when `value` is None.
    pub fn set(&self, key: &str, value: Option<&str>) -> std::io::Result<()> {
        let key = CString::new(key).map_err(std::io::Error::other)?;
        let value = value
            .map(CString::new)
            .transpose()
            .map_err(std::io::Error::other)?;
        let (cmd, value_ptr) = match &value {
            Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
            None => (FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: fsconfig on our context with NUL-terminated strings.
        sys_result(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.fd.as_raw_fd(),
                cmd,
                key.as_ptr(),
                value_ptr,
                0,
            )
        })
        .map(drop)
    }

    /// Create the superblock and mount it detached with `attrs`
    /// (MOUNT_ATTR_*).
    pub fn mount(self, attrs: u64) -> Result<OwnedFd> {
        let fstype = self.fstype;
        // SAFETY: fsconfig with no strings on our context.
        sys_result(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.fd.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        })
        .ctx(|| format!("creating the {fstype} filesystem"))?;
        // SAFETY: fsmount of our configured context; returns an fd or -1.
        let mnt = sys_result(unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                self.fd.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                attrs,
            )
        })
        .ctx(|| format!("fsmount({fstype})"))?;
        // SAFETY: a new fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(mnt) })
    }
}
