//! Whole-tree operations on directory fds: recursive removal (whiteouts,
//! replacements) and the full copy the native snapshotter makes of a parent
//! snapshot. Both walk with fds and *at() calls and never follow a symlink,
//! so a symlink in the tree cannot send them outside it.
//!
//! Our own code rather than a crate: `std::fs::remove_dir_all` and the
//! copy crates take paths from the root down (each call re-resolves the
//! whole path) and none keeps owners, xattrs, devices, and hard links
//! together.

use crate::meta::{self, Meta};
use crate::sys::{self, Node};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Remove `name` in `dir` and, if it is a directory, everything under it.
pub(crate) fn remove_all_at(dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    match sys::unlinkat(dir, name, false) {
        Ok(()) => return Ok(()),
        Err(e) if sys::errno(&e) != libc::EISDIR => return Err(e),
        Err(_) => {}
    }
    let fd = sys::open_dir(dir, name)?;
    for child in sys::read_dir_names(fd.as_fd())? {
        remove_all_at(fd.as_fd(), &child)?;
    }
    drop(fd);
    sys::unlinkat(dir, name, true)
}

/// A failed step of [`copy_tree`].
#[derive(Debug, thiserror::Error)]
#[error("copying {}: {what}: {source}", path.display())]
pub struct CopyError {
    /// The source path that could not be copied.
    pub path: PathBuf,
    pub what: &'static str,
    #[source]
    pub source: io::Error,
}

/// Copy the tree under `src` into the empty directory `dst`: every
/// directory, regular file (data through copy_file_range), symlink, device
/// node, fifo and socket, with owners, modes (setuid/setgid/sticky),
/// xattrs and times; files hard-linked to each other in `src` are hard
/// links in `dst`. `dst` itself gets the owner, mode, xattrs and times of
/// `src`. Needs root for the owners and device nodes.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), CopyError> {
    let open_dir = |p: &Path| crate::open_dir_path(p);
    let err = |path: &Path, what| {
        let path = path.to_path_buf();
        move |source| CopyError { path, what, source }
    };
    let s = open_dir(src).map_err(err(src, "opening the source directory"))?;
    let d = open_dir(dst).map_err(err(dst, "opening the target directory"))?;
    let mut copy = Copy {
        src: src.to_path_buf(),
        dst_root: d.try_clone().map_err(err(dst, "duplicating an fd"))?,
        links: HashMap::new(),
    };
    copy.dir(s.as_fd(), d.as_fd(), Path::new(""))?;
    let st = sys::fstat(s.as_fd()).map_err(err(src, "stat"))?;
    copy.dir_meta(s.as_fd(), d.as_fd(), &st, Path::new(""))
}

struct Copy {
    src: PathBuf,
    dst_root: OwnedFd,
    /// (dev, ino) of multiply-linked sources → where the first copy is.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Copy {
    fn err(&self, rel: &Path, what: &'static str) -> impl FnOnce(io::Error) -> CopyError {
        let path = self.src.join(rel);
        move |source| CopyError { path, what, source }
    }

    fn dir(&mut self, s: BorrowedFd, d: BorrowedFd, rel: &Path) -> Result<(), CopyError> {
        let names = sys::read_dir_names(s).map_err(self.err(rel, "listing"))?;
        for name in names {
            let child = rel.join(OsStr::from_bytes(name.to_bytes()));
            let st = sys::fstatat(s, &name).map_err(self.err(&child, "stat"))?;
            if sys::is_dir(&st) {
                sys::mkdirat(d, &name, 0o700).map_err(self.err(&child, "creating directory"))?;
                let cs = sys::open_dir(s, &name).map_err(self.err(&child, "opening"))?;
                let cd = sys::open_dir(d, &name).map_err(self.err(&child, "opening copy"))?;
                self.dir(cs.as_fd(), cd.as_fd(), &child)?;
                self.dir_meta(cs.as_fd(), cd.as_fd(), &st, &child)?;
            } else {
                self.non_dir(s, d, &name, &st, &child)?;
            }
        }
        Ok(())
    }

    fn dir_meta(
        &self,
        s: BorrowedFd,
        d: BorrowedFd,
        st: &libc::stat,
        rel: &Path,
    ) -> Result<(), CopyError> {
        let m = Meta::of(st, Node::Fd(s)).map_err(self.err(rel, "reading metadata"))?;
        meta::set_on_fd(d, &m).map_err(|e| CopyError {
            path: self.src.join(rel),
            what: "setting metadata",
            source: e.source,
        })?;
        sys::futimens(d, m.mtime).map_err(self.err(rel, "setting times"))
    }

    fn non_dir(
        &mut self,
        s: BorrowedFd,
        d: BorrowedFd,
        name: &CStr,
        st: &libc::stat,
        rel: &Path,
    ) -> Result<(), CopyError> {
        let id = (st.st_dev, st.st_ino);
        if st.st_nlink > 1 {
            if let Some(first) = self.links.get(&id) {
                return self.link(first, d, name, rel);
            }
            self.links.insert(id, rel.to_path_buf());
        }
        let kind = st.st_mode & libc::S_IFMT;
        match kind {
            libc::S_IFREG => self.file(s, d, name, rel)?,
            libc::S_IFLNK => {
                let target = sys::readlinkat(s, name).map_err(self.err(rel, "readlink"))?;
                sys::symlinkat(&target, d, name).map_err(self.err(rel, "creating symlink"))?;
            }
            _ => sys::mknodat(d, name, kind | 0o600, st.st_rdev)
                .map_err(self.err(rel, "creating node"))?,
        }
        let m = Meta::of(st, Node::At(s, name)).map_err(self.err(rel, "reading metadata"))?;
        meta::set_at(d, name, &m, kind == libc::S_IFLNK).map_err(|e| CopyError {
            path: self.src.join(rel),
            what: "setting metadata",
            source: e.source,
        })
    }

    fn file(&self, s: BorrowedFd, d: BorrowedFd, name: &CStr, rel: &Path) -> Result<(), CopyError> {
        let from = sys::openat(s, name, libc::O_RDONLY, 0).map_err(self.err(rel, "opening"))?;
        let to = sys::openat(
            d,
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        )
        .map_err(self.err(rel, "creating copy"))?;
        // std::io::copy between two files uses copy_file_range (reflinks on
        // filesystems that have them, in-kernel copies elsewhere).
        io::copy(&mut File::from(from), &mut File::from(to))
            .map_err(self.err(rel, "copying data"))?;
        Ok(())
    }

    fn link(&self, first: &Path, d: BorrowedFd, name: &CStr, rel: &Path) -> Result<(), CopyError> {
        // `first` lies in the copy we are making, under directories we
        // created; resolving it in the copy's root keeps it there anyway.
        let parent = first.parent().unwrap_or(Path::new(""));
        let parent_c = if parent.as_os_str().is_empty() {
            CString::from(c".")
        } else {
            sys::cstr(parent.as_os_str().as_encoded_bytes()).map_err(self.err(rel, "linking"))?
        };
        let leaf = first.file_name().unwrap_or_default();
        let leaf_c = sys::cstr(leaf.as_encoded_bytes()).map_err(self.err(rel, "linking"))?;
        let pd = sys::open_in_root(
            self.dst_root.as_fd(),
            &parent_c,
            libc::O_PATH | libc::O_DIRECTORY,
        )
        .map_err(self.err(rel, "opening the first link's directory"))?;
        sys::linkat(pd.as_fd(), &leaf_c, d, name).map_err(self.err(rel, "creating hard link"))
    }
}

/// Disk use of the tree under `root`: (bytes allocated as st_blocks * 512,
/// number of inodes), each inode counted once however many links it has,
/// `root` itself included. This is what containerd reports as a snapshot's
/// usage. Symlinks are counted, never followed.
pub fn disk_usage(root: &Path) -> io::Result<(u64, u64)> {
    let fd = crate::open_dir_path(root)?;
    let st = sys::fstat(fd.as_fd())?;
    let mut seen = std::collections::HashSet::new();
    seen.insert((st.st_dev, st.st_ino));
    let mut size = st.st_blocks as u64 * 512;
    usage_of(fd.as_fd(), &mut seen, &mut size)?;
    Ok((size, seen.len() as u64))
}

fn usage_of(
    dir: BorrowedFd,
    seen: &mut std::collections::HashSet<(u64, u64)>,
    size: &mut u64,
) -> io::Result<()> {
    for name in sys::read_dir_names(dir)? {
        let st = match sys::fstatat(dir, &name) {
            Ok(st) => st,
            // Removed while we walk (an active snapshot in use).
            Err(e) if sys::errno(&e) == libc::ENOENT => continue,
            Err(e) => return Err(e),
        };
        if seen.insert((st.st_dev, st.st_ino)) {
            *size += st.st_blocks as u64 * 512;
        }
        if sys::is_dir(&st) {
            match sys::open_dir(dir, &name) {
                Ok(fd) => usage_of(fd.as_fd(), seen, size)?,
                Err(e) if sys::errno(&e) == libc::ENOENT => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
