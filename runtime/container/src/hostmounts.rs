//! The mounts of a container without a mount namespace of its own. They
//! are made in the runtime's (the host's) mount namespace, all below the
//! rootfs: the init binds the rootfs onto itself, makes that bind private
//! (so nothing mounted below it propagates to other namespaces), and mounts
//! the config's mounts below it. Delete detaches the bind, and with it
//! everything below: runc 1.1 leaves /proc, /sys, /dev and the cgroup
//! binds of such a container mounted on the host for good.
//!
//! What is hull's is known without trusting the container: the state records,
//! before the first mount, which mount the rootfs path was on; everything
//! stacked on the rootfs path above that one is the container's.

use crate::error::{Context, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where a container without a mount namespace has its mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRootfs {
    pub path: PathBuf,
    /// The mount (statx STATX_MNT_ID) the rootfs path was on before create.
    pub below: u64,
    /// The mount namespace (inode of /proc/self/ns/mnt) of the mounts.
    pub mount_ns: u64,
}

/// The id of the mount `path` is on (its topmost mount, if stacked).
fn mount_id(path: &Path) -> Result<u64> {
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::msg(format!("{} contains a NUL byte", path.display())))?;
    // SAFETY: statx is plain data; zeroed is a valid value.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx reads the NUL-terminated path and writes `buf`.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            cpath.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT,
            libc::STATX_MNT_ID,
            &mut buf,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| format!("statx {}", path.display()));
    }
    if buf.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Error::msg(
            "this kernel reports no mount ids (statx STATX_MNT_ID, Linux 5.8+): a container without a mount namespace needs them",
        ));
    }
    Ok(buf.stx_mnt_id)
}

fn own_mount_ns() -> Option<u64> {
    crate::namespaces::ns_inode(std::process::id() as i32, crate::namespaces::Kind::Mount)
}

impl HostRootfs {
    /// Recorded by `create` before anything is mounted.
    pub fn before_create(rootfs: &Path) -> Result<HostRootfs> {
        Ok(HostRootfs {
            path: rootfs.to_path_buf(),
            below: mount_id(rootfs)?,
            mount_ns: own_mount_ns().ok_or_else(|| Error::msg("reading /proc/self/ns/mnt"))?,
        })
    }

    /// Detach every mount stacked on the rootfs above the one it was on
    /// before create (hull's bind, and with it all the container's mounts).
    /// Nothing to do when there is none; from another mount namespace
    /// nothing can be done (a warning says so).
    pub fn unmount(&self) -> Result<()> {
        if own_mount_ns() != Some(self.mount_ns) {
            // Not reachable from here (and gone with their namespace once
            // its last process exits): said, not fatal, or the container
            // could never be deleted.
            crate::log::warn(format!(
                "the container's mounts below {} are in another mount namespace than this hull's: left there (delete where create ran to remove them)",
                self.path.display()
            ));
            return Ok(());
        }
        // Each round removes one mount stacked at the path; a few at most.
        for _ in 0..64 {
            match mount_id(&self.path) {
                Ok(id) if id == self.below => return Ok(()),
                Ok(_) => {}
                // The rootfs itself is gone: so is anything mounted on it.
                Err(_) if !self.path.exists() => return Ok(()),
                Err(e) => return Err(e),
            }
            crate::debug!(
                "unmounting {} (detaching the container's mounts)",
                self.path.display()
            );
            match nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) => {}
                // Not a mount point: the mount it was on went away meanwhile.
                Err(nix::errno::Errno::EINVAL) => return Ok(()),
                Err(e) => {
                    return Err(Error::sys(
                        format!(
                            "unmounting the container's mounts at {}",
                            self.path.display()
                        ),
                        e,
                    ))
                }
            }
        }
        Err(Error::msg(format!(
            "{} still has mounts stacked on it after 64 unmounts",
            self.path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_ids_are_readable() {
        let root = mount_id(Path::new("/")).unwrap();
        assert!(root > 0);
        // /proc is a mount of its own.
        assert_ne!(mount_id(Path::new("/proc")).unwrap(), root);
    }
}
