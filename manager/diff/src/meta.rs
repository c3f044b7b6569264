//! An entry's metadata (mode, owner, mtime, xattrs) and the order it is put
//! on a node: owner first, then mode (chown clears setuid/setgid), then
//! xattrs (chown also clears `security.capability`), then times.
//!
//! xattr policy, for layers and for tree copies alike:
//! - `trusted.overlay.*` from a layer is dropped: overlayfs reads these from
//!   an upper dir as instructions (opaque, redirect, metacopy), so a layer
//!   must not be able to set them; the applier's own whiteout translation is
//!   the only writer of `trusted.overlay.opaque`.
//! - `trusted.*` and `security.selinux` are ignored when the filesystem
//!   refuses them (EPERM without CAP_SYS_ADMIN, ENOTSUP where the fs or the
//!   LSM has no such namespace): they describe the build host's privileged
//!   state or labels, which the snapshot's host assigns itself.
//! - Every other xattr, `security.capability` included, must be set: a
//!   refusal fails the apply, since the image's programs depend on it.

use crate::sys::{self, Node, Time};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::BorrowedFd;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Permission bits with setuid, setgid and sticky (mode & 0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Time,
    pub xattrs: Vec<(CString, Vec<u8>)>,
}

impl Meta {
    /// A directory the layer needs but does not describe: root-owned 0755.
    pub(crate) fn default_dir() -> Meta {
        Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: Time { sec: 0, nsec: 0 },
            xattrs: Vec::new(),
        }
    }

    /// A node's metadata as it is on disk (for an implicit parent copied
    /// from a lower layer), without overlayfs' own xattrs.
    pub(crate) fn of(st: &libc::stat, node: Node) -> io::Result<Meta> {
        let mut xattrs = Vec::new();
        for key in sys::listxattr(node)? {
            if key.to_bytes().starts_with(b"trusted.overlay.") {
                continue;
            }
            match sys::getxattr(node, &key) {
                Ok(v) => xattrs.push((key, v)),
                // Removed between list and get, or not readable for us.
                Err(e) if matches!(sys::errno(&e), libc::ENODATA | libc::EPERM) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Meta {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: Time {
                sec: st.st_mtime,
                nsec: st.st_mtime_nsec,
            },
            xattrs,
        })
    }
}

/// Whether a layer xattr is one we drop before trying (see module doc).
pub(crate) fn dropped_from_layer(key: &[u8]) -> bool {
    key.starts_with(b"trusted.overlay.")
}

/// Set one xattr under the policy of the module doc. Err is a refusal the
/// apply must report.
pub(crate) fn set_xattr(node: Node, key: &CStr, value: &[u8]) -> io::Result<()> {
    match sys::setxattr(node, key, value) {
        Ok(()) => Ok(()),
        Err(e) => {
            let k = key.to_bytes();
            let optional = k.starts_with(b"trusted.") || k == b"security.selinux";
            let refused = matches!(sys::errno(&e), libc::EPERM | libc::ENOTSUP);
            if optional && refused {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

/// What failed while setting metadata, for the error message.
pub(crate) struct MetaError {
    pub what: String,
    pub source: io::Error,
}

fn failed(what: &str) -> impl FnOnce(io::Error) -> MetaError + '_ {
    move |source| MetaError {
        what: what.to_string(),
        source,
    }
}

fn set_xattrs(node: Node, meta: &Meta) -> Result<(), MetaError> {
    for (key, value) in &meta.xattrs {
        set_xattr(node, key, value).map_err(|source| MetaError {
            what: format!("setting xattr {:?}", key.to_string_lossy()),
            source,
        })?;
    }
    Ok(())
}

/// Owner, mode and xattrs of an open file or directory (times are set by
/// the caller: a directory's after its children).
pub(crate) fn set_on_fd(fd: BorrowedFd, meta: &Meta) -> Result<(), MetaError> {
    sys::fchown(fd, meta.uid, meta.gid).map_err(failed("setting owner"))?;
    sys::fchmod(fd, meta.mode).map_err(failed("setting mode"))?;
    set_xattrs(Node::Fd(fd), meta)
}

/// Owner, mode (unless a symlink: Linux symlinks have no mode), xattrs and
/// times of `name` in `dir`, never following it.
pub(crate) fn set_at(
    dir: BorrowedFd,
    name: &CStr,
    meta: &Meta,
    symlink: bool,
) -> Result<(), MetaError> {
    sys::lchownat(dir, name, meta.uid, meta.gid).map_err(failed("setting owner"))?;
    if !symlink {
        sys::lchmodat(dir, name, meta.mode).map_err(failed("setting mode"))?;
    }
    set_xattrs(Node::At(dir, name), meta)?;
    sys::lutimensat(dir, name, meta.mtime).map_err(failed("setting times"))
}
