//! Resolve paths *inside* a root directory, the way the container will see
//! them, creating what is missing.
//!
//! A container image is untrusted: any component of a mount destination may
//! be a symlink (`/evil -> /etc`), or be swapped for one (CVE-2019-19921,
//! CVE-2021-30465). Paths are therefore walked one component at a time from
//! an fd of the root, each opened with O_NOFOLLOW; symlinks are read and
//! re-rooted at the root, and ".." never climbs above it. The result is an
//! O_PATH fd, and mounts target `/proc/self/fd/N`, so nothing can be
//! redirected between the check and the use.

use crate::error::{Context, Error, Result};
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Component, Path};

const MAX_SYMLINKS: usize = 40;

/// What to create when the last component is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// Do not create anything: fail with ENOENT.
    Nothing,
    /// Create directories all the way.
    Dir,
    /// Create parent directories and an empty regular file at the end.
    File,
}

fn open_path(dir: BorrowedFd, name: &OsStr) -> nix::Result<OwnedFd> {
    let fd = openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat returned a new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Open `path` inside `root` (O_PATH), creating it as asked.
pub fn resolve(root: BorrowedFd, path: &Path, create: Create) -> Result<OwnedFd> {
    resolve_inner(root, path, create)
        .ctx(|| format!("resolving {} inside the root filesystem", path.display()))
}

fn resolve_inner(root: BorrowedFd, path: &Path, create: Create) -> Result<OwnedFd> {
    let mut pending = components(path);
    let mut stack: Vec<OwnedFd> = vec![root.try_clone_to_owned().ctx(|| "dup root fd")?];
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let cur = stack.last().expect("stack holds the root").as_fd();
        match open_path(cur, &name) {
            Ok(fd) => {
                let st =
                    fstat(fd.as_raw_fd()).ctx(|| format!("stat {}", name.to_string_lossy()))?;
                let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
                if kind == SFlag::S_IFLNK {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Error::sys("too many symlinks", nix::errno::Errno::ELOOP));
                    }
                    let target = nix::fcntl::readlinkat(Some(cur.as_raw_fd()), name.as_os_str())
                        .ctx(|| format!("readlink {}", name.to_string_lossy()))?;
                    let target = Path::new(&target);
                    if target.is_absolute() {
                        stack.truncate(1);
                    }
                    for c in components(target).into_iter().rev() {
                        pending.push_front(c);
                    }
                    continue;
                }
                if kind != SFlag::S_IFDIR && !pending.is_empty() {
                    return Err(Error::sys(
                        name.to_string_lossy(),
                        nix::errno::Errno::ENOTDIR,
                    ));
                }
                stack.push(fd);
            }
            Err(nix::errno::Errno::ENOENT) if create != Create::Nothing => {
                let last = pending.is_empty();
                let made = if last && create == Create::File {
                    openat(
                        Some(cur.as_raw_fd()),
                        name.as_os_str(),
                        OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_WRONLY
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map(|fd| drop(unsafe { OwnedFd::from_raw_fd(fd) }))
                } else {
                    mkdirat(
                        Some(cur.as_raw_fd()),
                        name.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    )
                };
                match made {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => pending.push_front(name),
                    Err(e) => {
                        return Err(Error::sys(
                            format!("creating {}", name.to_string_lossy()),
                            e,
                        ))
                    }
                }
            }
            Err(e) => return Err(Error::sys(name.to_string_lossy(), e)),
        }
    }
    Ok(stack.pop().expect("stack holds the root"))
}

/// The path through which the kernel reaches the object behind `fd`.
pub fn proc_fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Whether the last component of `path` inside root is a symlink.
pub fn last_is_symlink(root: BorrowedFd, path: &Path) -> bool {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let Some(name) = path.file_name() else {
        return false;
    };
    let Ok(dir) = resolve(root, parent, Create::Nothing) else {
        return false;
    };
    nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK)
    .unwrap_or(false)
}

/// Whether `fd` is a directory.
pub fn is_dir(fd: &OwnedFd) -> bool {
    fstat(fd.as_raw_fd())
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
        .unwrap_or(false)
}

/// Open a directory as the root for [`resolve`].
pub fn open_root(path: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opening root {}", path.display()))?;
    // SAFETY: open returned a new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("hull-inroot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn real(fd: &OwnedFd) -> std::path::PathBuf {
        std::fs::read_link(proc_fd_path(fd)).unwrap()
    }

    #[test]
    fn absolute_symlinks_stay_inside() {
        let base = tmp("abs");
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        symlink(&outside, root.join("evil")).unwrap();
        let rfd = open_root(&root).unwrap();
        let fd = resolve(rfd.as_fd(), Path::new("/evil/sub"), Create::Dir).unwrap();
        let got = real(&fd);
        assert!(got.starts_with(&root), "{got:?} escaped {root:?}");
        assert!(
            std::fs::read_dir(&outside).unwrap().next().is_none(),
            "host dir touched"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn dotdot_and_relative_links_cannot_climb() {
        let base = tmp("dotdot");
        let root = base.join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        symlink("../../../../..", root.join("a/up")).unwrap();
        let rfd = open_root(&root).unwrap();
        let fd = resolve(rfd.as_fd(), Path::new("../../a/up/x"), Create::Dir).unwrap();
        assert_eq!(real(&fd), root.join("x"));
        let f = resolve(rfd.as_fd(), Path::new("/a/file"), Create::File).unwrap();
        assert!(!is_dir(&f));
        assert!(root.join("a/file").is_file());
        assert!(resolve(rfd.as_fd(), Path::new("/missing"), Create::Nothing).is_err());
        assert!(last_is_symlink(rfd.as_fd(), Path::new("/a/up")));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
