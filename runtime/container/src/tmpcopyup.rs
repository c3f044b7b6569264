//! The `tmpcopyup` mount option (runc's; podman adds it to `--tmpfs` and to
//! the tmpfs mounts of `--read-only`): a new tmpfs over a directory of the
//! image that starts with a copy of what the image has there, so /etc or
//! /var/tmp stay usable and writable over a read-only root.
//!
//! The tmpfs is made detached with the new mount API (fsopen, fsconfig,
//! fsmount), filled, then moved over the directory: no staging directory,
//! and nothing is visible at the destination before the copy is complete.
//! The copy works on file descriptors only (`*at` calls, O_NOFOLLOW), so
//! symlinks in the image are copied as symlinks and never followed out of
//! the root; it keeps type, mode, owner and times, and copies hard links as
//! separate files, as runc does.

use crate::error::{Context, Error, Result};
use crate::fscontext::FsContext;
use crate::mountopts::{attr, MountOptions};
use nix::fcntl::{AtFlags, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Directories deeper than this in the image are refused (a bound on the
/// recursion; no real image comes close).
const MAX_DEPTH: usize = 128;

const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

fn check(r: libc::c_long, what: &str) -> Result<libc::c_long> {
    if r < 0 {
        Err(std::io::Error::last_os_error()).ctx(|| what.to_string())
    } else {
        Ok(r)
    }
}

/// A detached tmpfs with `data`'s options ("size=64m,mode=1777") and the
/// mount attributes of `flags` (nosuid, nodev, noexec, atime; not ro: it is
/// filled first).
fn detached_tmpfs(data: &str, flags: MsFlags) -> Result<OwnedFd> {
    let fs = FsContext::open("tmpfs")?;
    for option in data.split(',').filter(|o| !o.is_empty()) {
        let (key, value) = match option.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (option, None),
        };
        fs.set(key, value)
            .ctx(|| format!("tmpfs option {option:?}"))?;
    }
    let mut attrs = 0u64;
    for (flag, a) in [
        (MsFlags::MS_NOSUID, attr::NOSUID),
        (MsFlags::MS_NODEV, attr::NODEV),
        (MsFlags::MS_NOEXEC, attr::NOEXEC),
        (MsFlags::MS_NOATIME, attr::NOATIME),
        (MsFlags::MS_STRICTATIME, attr::STRICTATIME),
        (MsFlags::MS_NODIRATIME, attr::NODIRATIME),
    ] {
        if flags.contains(flag) {
            attrs |= a;
        }
    }
    fs.mount(attrs)
}

fn open_dir_at(dir: RawFd, name: &CStr) -> Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opening directory {name:?}"))?;
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Owner, mode (after the owner: chown clears setuid) and times of `name`
/// in `dst` as `st` says.
fn copy_attributes(dst: RawFd, name: &CStr, st: &libc::stat, symlink: bool) -> Result<()> {
    nix::unistd::fchownat(
        Some(dst),
        name,
        Some(st.st_uid.into()),
        Some(st.st_gid.into()),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ctx(|| format!("chown of {name:?}"))?;
    if !symlink {
        nix::sys::stat::fchmodat(
            Some(dst),
            name,
            Mode::from_bits_truncate(st.st_mode & 0o7777),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .ctx(|| format!("chmod of {name:?}"))?;
    }
    let times = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    // SAFETY: utimensat with two timespecs and a NUL-terminated name.
    let r = unsafe {
        libc::utimensat(
            dst,
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| format!("times of {name:?}"));
    }
    Ok(())
}

/// Copy every entry of directory `src` into directory `dst`.
fn copy_tree(src: &OwnedFd, dst: &OwnedFd, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::msg(format!(
            "directories nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let dup = nix::unistd::dup(src.as_raw_fd()).ctx(|| "dup")?;
    let mut dir = nix::dir::Dir::from_fd(dup).ctx(|| "reading a directory")?;
    let names: Vec<CString> = dir
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        copy_entry(src, dst, &name, depth).map_err(|e| e.context(format!("copying {name:?}")))?;
    }
    Ok(())
}

fn copy_entry(src: &OwnedFd, dst: &OwnedFd, name: &CStr, depth: usize) -> Result<()> {
    let st = nix::sys::stat::fstatat(Some(src.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .ctx(|| "stat")?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let (s, d) = (src.as_raw_fd(), dst.as_raw_fd());
    match kind {
        SFlag::S_IFDIR => {
            nix::sys::stat::mkdirat(Some(d), name, Mode::from_bits_truncate(0o700))
                .ctx(|| "mkdir")?;
            let (from, to) = (open_dir_at(s, name)?, open_dir_at(d, name)?);
            copy_tree(&from, &to, depth + 1)?;
        }
        SFlag::S_IFREG => {
            let open = |dir, flags, mode| -> Result<File> {
                let fd = nix::fcntl::openat(Some(dir), name, flags, mode).ctx(|| "open")?;
                // SAFETY: a new fd we own.
                Ok(unsafe { File::from_raw_fd(fd) })
            };
            let mut from = open(
                s,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let mut to = open(
                d,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )?;
            std::io::copy(&mut from, &mut to).ctx(|| "copying the data")?;
        }
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(Some(s), name).ctx(|| "readlink")?;
            nix::unistd::symlinkat(target.as_os_str(), Some(d), name).ctx(|| "symlink")?;
        }
        _ => {
            nix::sys::stat::mknodat(
                Some(d),
                name,
                kind,
                Mode::from_bits_truncate(0o600),
                st.st_rdev,
            )
            .ctx(|| "mknod")?;
        }
    }
    copy_attributes(d, name, &st, kind == SFlag::S_IFLNK)
}

/// Mount a tmpfs holding a copy of `target`'s content over `target` (an
/// O_PATH fd of the directory in the container's root).
pub fn mount_over(target: &OwnedFd, opts: &MountOptions) -> Result<()> {
    let mnt = detached_tmpfs(&opts.data, opts.flags)?;
    // An O_PATH fd serves as the directory for openat.
    let src = open_dir_at(target.as_raw_fd(), c".")?;
    copy_tree(&src, &mnt, 0).map_err(|e| e.context("tmpcopyup"))?;
    // The root of the copy gets the directory's own mode, owner and times.
    let st = nix::sys::stat::fstat(src.as_raw_fd()).ctx(|| "stat of the destination")?;
    copy_attributes(mnt.as_raw_fd(), c".", &st, false)?;
    // SAFETY: move_mount between two fds we hold, empty paths.
    check(
        unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mnt.as_raw_fd(),
                c"".as_ptr(),
                target.as_raw_fd(),
                c"".as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        },
        "moving the filled tmpfs into place",
    )?;
    Ok(())
}
