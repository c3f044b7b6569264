//! Writing tar entries into the root, one entry at a time.
//!
//! Every operation is done on the fd of the entry's parent directory,
//! opened with openat2(RESOLVE_IN_ROOT) from the root's fd, plus the final
//! name with an *at() call that does not follow it. Whatever the layer
//! holds (`..`, absolute names, symlinks to `/` or chains of `..`, a file
//! written "through" a symlink, a hard link to a host path), the kernel
//! resolves it inside the root, so nothing outside can be written, chmod'ed,
//! chown'ed, linked or deleted.
//!
//! Replacement: an entry whose name exists is created after removing what
//! is there (recursively for a directory), except a directory over a
//! directory, which is kept and gets the entry's metadata. Removing rather
//! than writing in place matters for files hard-linked elsewhere in lower
//! data, which must keep their content.
//!
//! The parent fd of the previous entry is kept: layers list a directory's
//! entries together, so most entries need no path walk at all. It stays
//! valid because an entry only changes names inside its own parent.

use crate::meta::{self, Meta, MetaError};
use crate::path::{clean, EntryPath, PATH_MAX};
use crate::sys::{self, Node, Time};
use crate::tree::remove_all_at;
use crate::{ApplyError, ApplyOptions, Whiteouts};
use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Copy buffer for file data, reused for every file.
const COPY_BUFFER: usize = 1 << 20;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";

pub(crate) struct Applier {
    root: OwnedFd,
    lowers: Vec<OwnedFd>,
    whiteouts: Whiteouts,
    /// The parent directory of the previous entry, with its path.
    cached_parent: Option<(Vec<u8>, OwnedFd)>,
    /// Directory mtimes, set at the end (writing children changes them).
    dir_times: HashMap<Vec<u8>, Time>,
    /// Paths this layer created, and their ancestors (Remove mode: an
    /// opaque directory keeps exactly these).
    written: HashSet<Vec<u8>>,
    buf: Vec<u8>,
}

fn io_err(path: &EntryPath, what: &'static str) -> impl FnOnce(io::Error) -> ApplyError {
    let path = path.to_string();
    move |source| ApplyError::Io { path, what, source }
}

fn meta_err(path: &EntryPath) -> impl FnOnce(MetaError) -> ApplyError {
    let path = path.to_string();
    move |e| ApplyError::Metadata {
        path,
        what: e.what,
        source: e.source,
    }
}

fn refused(path: &str, reason: impl Into<String>) -> ApplyError {
    ApplyError::Refused {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn c_path(dir: &[u8]) -> io::Result<CString> {
    if dir.is_empty() {
        Ok(CString::from(c"."))
    } else {
        sys::cstr(dir)
    }
}

fn open_root(path: &Path) -> Result<OwnedFd, ApplyError> {
    crate::open_dir_path(path).map_err(|source| ApplyError::Root {
        path: path.to_path_buf(),
        source,
    })
}

impl Applier {
    pub(crate) fn new(root: &Path, opts: &ApplyOptions) -> Result<Applier, ApplyError> {
        let root_fd = open_root(root)?;
        let lowers = match opts.whiteouts {
            Whiteouts::Overlay => opts
                .parents
                .iter()
                .map(|p| open_root(p))
                .collect::<Result<_, _>>()?,
            Whiteouts::Remove => Vec::new(),
        };
        Ok(Applier {
            root: root_fd,
            lowers,
            whiteouts: opts.whiteouts,
            cached_parent: None,
            dir_times: HashMap::new(),
            written: HashSet::new(),
            buf: vec![0; COPY_BUFFER],
        })
    }

    /// Apply one tar entry.
    pub(crate) fn entry<R: Read>(&mut self, e: &mut tar::Entry<R>) -> Result<(), ApplyError> {
        let raw = e.path_bytes().into_owned();
        let kind = e.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        // Entry names for messages are made only when something fails.
        let shown = || String::from_utf8_lossy(&raw).into_owned();
        let Some(path) = clean(&raw).map_err(|r| refused(&shown(), r))? else {
            return Ok(()); // the root itself: see path.rs
        };
        let meta = read_meta(e, &raw)?;
        if let Some(target) = path.name().strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(&path, target, &meta);
        }
        use tar::EntryType as T;
        match kind {
            T::Regular if raw.ends_with(b"/") => self.dir(&path, &meta),
            T::Regular | T::Continuous => self.file(&path, e, &meta),
            T::Directory => self.dir(&path, &meta),
            T::Symlink => {
                let target = link_name(e, &raw)?;
                self.symlink(&path, &target, &meta)
            }
            T::Link => {
                let target = link_name(e, &raw)?;
                self.hardlink(&path, &target)
            }
            T::Char | T::Block | T::Fifo => {
                let h = e.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let ty = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                self.node(&path, ty, sys::makedev(major, minor), &meta)
            }
            other => Err(refused(
                &shown(),
                format!("unsupported tar entry type {:?}", other.as_byte() as char),
            )),
        }
    }

    /// Set the directories' mtimes, now that nothing more is written into
    /// them. A path that is gone or no longer a directory is skipped.
    pub(crate) fn finish(mut self) -> Result<(), ApplyError> {
        self.cached_parent = None;
        for (path, time) in std::mem::take(&mut self.dir_times) {
            let p = EntryPath::from_parts(b"", &path);
            let (dir, name) = p.split();
            let Ok(pfd) = self.open_dir_in_root(dir) else {
                continue;
            };
            let name = sys::cstr(name).map_err(io_err(&p, "setting times"))?;
            match sys::fstatat(pfd.as_fd(), &name) {
                Ok(st) if sys::is_dir(&st) => {}
                _ => continue,
            }
            sys::lutimensat(pfd.as_fd(), &name, time).map_err(io_err(&p, "setting times"))?;
        }
        Ok(())
    }

    fn open_dir_in_root(&self, dir: &[u8]) -> io::Result<OwnedFd> {
        sys::open_in_root(
            self.root.as_fd(),
            &c_path(dir)?,
            libc::O_PATH | libc::O_DIRECTORY,
        )
    }

    /// The fd of `dir` (cached from the previous entry when it is the same),
    /// creating missing directories when `create`; None when it does not
    /// exist and `create` is false. Give it back with `put_parent`.
    fn take_parent(&mut self, dir: &[u8], create: bool) -> io::Result<Option<OwnedFd>> {
        if let Some((cached, fd)) = self.cached_parent.take() {
            if cached == dir {
                return Ok(Some(fd));
            }
        }
        match self.open_dir_in_root(dir) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if sys::errno(&e) == libc::ENOENT && create => {
                self.make_parents(dir)?;
                self.open_dir_in_root(dir).map(Some)
            }
            Err(e) if sys::errno(&e) == libc::ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put_parent(&mut self, dir: &[u8], fd: OwnedFd) {
        self.cached_parent = Some((dir.to_vec(), fd));
    }

    fn parent_of(&mut self, path: &EntryPath) -> Result<OwnedFd, ApplyError> {
        let (dir, _) = path.split();
        match self.take_parent(dir, true) {
            Ok(Some(fd)) => Ok(fd),
            Ok(None) => Err(io_err(path, "opening the parent directory")(
                io::Error::from_raw_os_error(libc::ENOENT),
            )),
            Err(e) if matches!(sys::errno(&e), libc::ENOTDIR | libc::ELOOP) => Err(refused(
                &path.to_string(),
                "its parent path is not a directory (a file, a dangling symlink or a symlink loop)",
            )),
            Err(e) => Err(io_err(path, "opening the parent directory")(e)),
        }
    }

    /// Create each missing directory of `dir`, with the metadata of the
    /// same path in the topmost lower layer that has it (so the merged view
    /// keeps the image's owners and modes), root-owned 0755 otherwise.
    fn make_parents(&mut self, dir: &[u8]) -> io::Result<()> {
        let full = EntryPath::from_parts(b"", dir);
        let prefixes: Vec<Vec<u8>> = full
            .ancestors()
            .map(<[u8]>::to_vec)
            .chain(std::iter::once(dir.to_vec()))
            .collect();
        for prefix in prefixes {
            match self.open_dir_in_root(&prefix) {
                Ok(_) => continue,
                Err(e) if sys::errno(&e) == libc::ENOENT => {}
                Err(e) => return Err(e),
            }
            let p = EntryPath::from_parts(b"", &prefix);
            let (pdir, name) = p.split();
            let pfd = self.open_dir_in_root(pdir)?;
            let name = sys::cstr(name)?;
            // EEXIST here means a dangling symlink or a non-directory:
            // reported as such by the caller.
            sys::mkdirat(pfd.as_fd(), &name, 0o700).map_err(|e| {
                if sys::errno(&e) == libc::EEXIST {
                    io::Error::from_raw_os_error(libc::ENOTDIR)
                } else {
                    e
                }
            })?;
            let meta = self.lower_meta(&prefix)?;
            let fd = sys::open_dir(pfd.as_fd(), &name)?;
            meta::set_on_fd(fd.as_fd(), &meta).map_err(|e| e.source)?;
            if meta.mtime.sec != 0 || meta.mtime.nsec != 0 {
                self.dir_times.entry(prefix.clone()).or_insert(meta.mtime);
            }
            self.mark_written(&p);
        }
        Ok(())
    }

    /// Metadata of `path` in the topmost lower that has it, if it is a
    /// directory there; the default directory otherwise.
    fn lower_meta(&self, path: &[u8]) -> io::Result<Meta> {
        let c = c_path(path)?;
        for lower in &self.lowers {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            match sys::open_in_root(lower.as_fd(), &c, flags) {
                Ok(fd) => {
                    let st = sys::fstat(fd.as_fd())?;
                    return Meta::of(&st, Node::Fd(fd.as_fd()));
                }
                Err(e) if sys::errno(&e) == libc::ENOENT => continue,
                // There but not a directory: it hides the layers below.
                Err(e) if matches!(sys::errno(&e), libc::ENOTDIR | libc::ELOOP) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(Meta::default_dir())
    }

    fn mark_written(&mut self, path: &EntryPath) {
        if self.whiteouts != Whiteouts::Remove {
            return;
        }
        if !self.written.insert(path.as_bytes().to_vec()) {
            return;
        }
        for a in path.ancestors() {
            self.written.insert(a.to_vec());
        }
    }

    /// Create `name` with `create`; if something is there, remove it and
    /// try once more.
    fn create_replacing<T>(
        pfd: BorrowedFd,
        name: &CStr,
        mut create: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        match create() {
            Err(e) if sys::errno(&e) == libc::EEXIST => {
                remove_all_at(pfd, name)?;
                create()
            }
            r => r,
        }
    }

    fn file<R: Read>(
        &mut self,
        path: &EntryPath,
        e: &mut tar::Entry<R>,
        meta: &Meta,
    ) -> Result<(), ApplyError> {
        let pfd = self.parent_of(path)?;
        let name = sys::cstr(path.name()).map_err(io_err(path, "creating file"))?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
        let fd = Self::create_replacing(pfd.as_fd(), &name, || {
            sys::openat(pfd.as_fd(), &name, flags, 0o600)
        })
        .map_err(io_err(path, "creating file"))?;
        self.put_parent(path.split().0, pfd);
        let mut file = File::from(fd);
        let expected = e.size();
        let mut copied = 0u64;
        loop {
            let n = match e.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(io_err(path, "reading file data from the layer")(err)),
            };
            file.write_all(&self.buf[..n])
                .map_err(io_err(path, "writing file data"))?;
            copied += n as u64;
        }
        if copied != expected {
            return Err(ApplyError::Truncated {
                path: path.to_string(),
                expected,
                actual: copied,
            });
        }
        meta::set_on_fd(file.as_fd(), meta).map_err(meta_err(path))?;
        sys::futimens(file.as_fd(), meta.mtime).map_err(io_err(path, "setting times"))?;
        self.mark_written(path);
        Ok(())
    }

    fn dir(&mut self, path: &EntryPath, meta: &Meta) -> Result<(), ApplyError> {
        let pfd = self.parent_of(path)?;
        let name = sys::cstr(path.name()).map_err(io_err(path, "creating directory"))?;
        match sys::mkdirat(pfd.as_fd(), &name, 0o700) {
            Ok(()) => {}
            Err(e) if sys::errno(&e) == libc::EEXIST => {
                let st = sys::fstatat(pfd.as_fd(), &name).map_err(io_err(path, "stat"))?;
                if !sys::is_dir(&st) {
                    remove_all_at(pfd.as_fd(), &name)
                        .and_then(|()| sys::mkdirat(pfd.as_fd(), &name, 0o700))
                        .map_err(io_err(path, "replacing with a directory"))?;
                }
            }
            Err(e) => return Err(io_err(path, "creating directory")(e)),
        }
        let fd = sys::open_dir(pfd.as_fd(), &name).map_err(io_err(path, "opening directory"))?;
        self.put_parent(path.split().0, pfd);
        meta::set_on_fd(fd.as_fd(), meta).map_err(meta_err(path))?;
        self.dir_times.insert(path.as_bytes().to_vec(), meta.mtime);
        self.mark_written(path);
        Ok(())
    }

    fn symlink(&mut self, path: &EntryPath, target: &[u8], meta: &Meta) -> Result<(), ApplyError> {
        let shown = path.to_string();
        if target.is_empty() || target.len() > PATH_MAX || target.contains(&0) {
            return Err(refused(
                &shown,
                "symlink target is empty, too long or has a NUL",
            ));
        }
        let pfd = self.parent_of(path)?;
        let name = sys::cstr(path.name()).map_err(io_err(path, "creating symlink"))?;
        let target = sys::cstr(target).map_err(io_err(path, "creating symlink"))?;
        Self::create_replacing(pfd.as_fd(), &name, || {
            sys::symlinkat(&target, pfd.as_fd(), &name)
        })
        .map_err(io_err(path, "creating symlink"))?;
        meta::set_at(pfd.as_fd(), &name, meta, true).map_err(meta_err(path))?;
        self.put_parent(path.split().0, pfd);
        self.mark_written(path);
        Ok(())
    }

    /// A hard link to an entry already in the root. The target is resolved
    /// in the root like any entry name (so `/etc/passwd` means the root's
    /// own), must exist, and is linked itself (a symlink is not followed).
    fn hardlink(&mut self, path: &EntryPath, raw_target: &[u8]) -> Result<(), ApplyError> {
        let shown = path.to_string();
        let target = clean(raw_target)
            .map_err(|r| refused(&shown, format!("hard link target: {r}")))?
            .ok_or_else(|| refused(&shown, "hard link to the root directory"))?;
        if target == *path {
            return Ok(());
        }
        let (tdir, tname) = target.split();
        let missing = || {
            refused(
                &shown,
                format!("hard link target {target} does not exist in the layer"),
            )
        };
        let tfd = match self.open_dir_in_root(tdir) {
            Ok(fd) => fd,
            Err(e) if matches!(sys::errno(&e), libc::ENOENT | libc::ENOTDIR) => {
                return Err(missing())
            }
            Err(e) => return Err(io_err(path, "opening the hard link target's directory")(e)),
        };
        let tname = sys::cstr(tname).map_err(io_err(path, "creating hard link"))?;
        let pfd = self.parent_of(path)?;
        let name = sys::cstr(path.name()).map_err(io_err(path, "creating hard link"))?;
        let result = match sys::linkat(tfd.as_fd(), &tname, pfd.as_fd(), &name) {
            Err(e) if sys::errno(&e) == libc::EEXIST => {
                if same_inode(tfd.as_fd(), &tname, pfd.as_fd(), &name) {
                    Ok(())
                } else {
                    remove_all_at(pfd.as_fd(), &name)
                        .and_then(|()| sys::linkat(tfd.as_fd(), &tname, pfd.as_fd(), &name))
                }
            }
            r => r,
        };
        self.put_parent(path.split().0, pfd);
        match result {
            Ok(()) => {}
            Err(e) if sys::errno(&e) == libc::ENOENT => return Err(missing()),
            Err(e) if sys::errno(&e) == libc::EPERM => {
                return Err(refused(
                    &shown,
                    format!("hard link target {target} is a directory or not linkable"),
                ))
            }
            Err(e) => return Err(io_err(path, "creating hard link")(e)),
        }
        self.mark_written(path);
        Ok(())
    }

    /// A character or block device or a fifo (`ty` is its S_IF* type).
    fn node(&mut self, path: &EntryPath, ty: u32, dev: u64, meta: &Meta) -> Result<(), ApplyError> {
        let pfd = self.parent_of(path)?;
        let name = sys::cstr(path.name()).map_err(io_err(path, "creating device node"))?;
        Self::create_replacing(pfd.as_fd(), &name, || {
            sys::mknodat(pfd.as_fd(), &name, ty | 0o600, dev)
        })
        .map_err(io_err(path, "creating device node"))?;
        meta::set_at(pfd.as_fd(), &name, meta, false).map_err(meta_err(path))?;
        self.put_parent(path.split().0, pfd);
        self.mark_written(path);
        Ok(())
    }

    /// `.wh.NAME` deletes NAME from the layers below; `.wh..wh..opq` makes
    /// its directory opaque. Other `.wh..wh.` names are aufs bookkeeping
    /// (`.wh..wh.plnk`, `.wh..wh.aufs`) and are skipped.
    fn whiteout(&mut self, path: &EntryPath, target: &[u8], meta: &Meta) -> Result<(), ApplyError> {
        let (dir, _) = path.split();
        if path.name() == OPAQUE_MARKER {
            return self.opaque(path, dir);
        }
        if target.starts_with(WHITEOUT_PREFIX) {
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(refused(&path.to_string(), "whiteout names no entry"));
        }
        let gone = EntryPath::from_parts(dir, target);
        match self.whiteouts {
            Whiteouts::Overlay => {
                // overlayfs' whiteout: a character device 0:0 named NAME.
                let dev_meta = Meta {
                    mode: 0,
                    xattrs: Vec::new(),
                    ..meta.clone()
                };
                self.node(&gone, libc::S_IFCHR, 0, &dev_meta)
            }
            Whiteouts::Remove => {
                let pfd = match self.take_parent(dir, false) {
                    Ok(Some(fd)) => fd,
                    // Nothing there, nothing to delete.
                    Ok(None) => return Ok(()),
                    Err(e) if sys::errno(&e) == libc::ENOTDIR => return Ok(()),
                    Err(e) => return Err(io_err(&gone, "opening the whiteout's directory")(e)),
                };
                let name = sys::cstr(target).map_err(io_err(&gone, "removing"))?;
                let result = remove_all_at(pfd.as_fd(), &name);
                self.put_parent(dir, pfd);
                match result {
                    Err(e) if sys::errno(&e) != libc::ENOENT => {
                        Err(io_err(&gone, "removing whited-out entry")(e))
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    fn opaque(&mut self, marker: &EntryPath, dir: &[u8]) -> Result<(), ApplyError> {
        let open = |me: &Self| {
            sys::open_in_root(
                me.root.as_fd(),
                &c_path(dir)?,
                libc::O_RDONLY | libc::O_DIRECTORY,
            )
        };
        let fd = match (open(self), self.whiteouts) {
            (Ok(fd), _) => fd,
            (Err(e), Whiteouts::Overlay) if sys::errno(&e) == libc::ENOENT => {
                // Opaque directory not created by the layer: make it.
                self.make_parents(dir)
                    .and_then(|()| open(self))
                    .map_err(io_err(marker, "creating the opaque directory"))?
            }
            (Err(e), Whiteouts::Remove) if sys::errno(&e) == libc::ENOENT => return Ok(()),
            (Err(e), _) => return Err(io_err(marker, "opening the opaque directory")(e)),
        };
        match self.whiteouts {
            Whiteouts::Overlay => {
                sys::setxattr(Node::Fd(fd.as_fd()), OPAQUE_XATTR, b"y").map_err(io_err(
                    marker,
                    "setting trusted.overlay.opaque (needs CAP_SYS_ADMIN)",
                ))
            }
            Whiteouts::Remove => {
                let dir = dir.to_vec();
                self.clear_unwritten(fd.as_fd(), &dir)
                    .map_err(io_err(marker, "emptying the opaque directory"))
            }
        }
    }

    /// Remove from `dir` (at path `path`) everything this layer did not
    /// write, descending into the directories it did write.
    fn clear_unwritten(&self, dir: BorrowedFd, path: &[u8]) -> io::Result<()> {
        for name in sys::read_dir_names(dir)? {
            let child = EntryPath::from_parts(path, name.to_bytes());
            if !self.written.contains(child.as_bytes()) {
                remove_all_at(dir, &name)?;
                continue;
            }
            let st = sys::fstatat(dir, &name)?;
            if sys::is_dir(&st) {
                let fd = sys::open_dir(dir, &name)?;
                self.clear_unwritten(fd.as_fd(), child.as_bytes())?;
            }
        }
        Ok(())
    }
}

fn same_inode(a: BorrowedFd, an: &CStr, b: BorrowedFd, bn: &CStr) -> bool {
    match (sys::fstatat(a, an), sys::fstatat(b, bn)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

fn link_name<R: Read>(e: &tar::Entry<R>, raw: &[u8]) -> Result<Vec<u8>, ApplyError> {
    e.link_name_bytes()
        .map(|c| c.into_owned())
        .ok_or_else(|| refused(&String::from_utf8_lossy(raw), "link entry without a target"))
}

/// Mode, owner, mtime and xattrs from the header and its PAX records.
fn read_meta<R: Read>(e: &mut tar::Entry<R>, raw: &[u8]) -> Result<Meta, ApplyError> {
    let shown = String::from_utf8_lossy(raw);
    let shown = shown.as_ref();
    let bad = |what: &str| refused(shown, format!("invalid {what} in the header"));
    let h = e.header();
    let old = h.as_old();
    let mode =
        numeric(h.mode().map(u64::from), &old.mode).map_err(|_| bad("mode"))? as u32 & 0o7777;
    let id = |v: io::Result<u64>, raw: &[u8], what| {
        u32::try_from(numeric(v, raw).map_err(|_| bad(what))?).map_err(|_| bad(what))
    };
    let uid = id(h.uid(), &old.uid, "uid")?;
    let gid = id(h.gid(), &old.gid, "gid")?;
    let sec = numeric(h.mtime(), &old.mtime).map_err(|_| bad("mtime"))?;
    let mut meta = Meta {
        mode,
        uid,
        gid,
        mtime: Time {
            sec: i64::try_from(sec).map_err(|_| bad("mtime"))?,
            nsec: 0,
        },
        xattrs: Vec::new(),
    };
    let Some(pax) = e.pax_extensions().map_err(|_| bad("PAX records"))? else {
        return Ok(meta);
    };
    for ext in pax {
        let ext = ext.map_err(|_| bad("PAX records"))?;
        let key = ext.key_bytes();
        if key == b"mtime" {
            meta.mtime = parse_pax_time(ext.value_bytes()).ok_or_else(|| bad("PAX mtime"))?;
        } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            if meta::dropped_from_layer(name) {
                continue;
            }
            let name = sys::cstr(name).map_err(|_| bad("xattr name"))?;
            meta.xattrs.push((name, ext.value_bytes().to_vec()));
        } else if key.starts_with(b"GNU.sparse.") {
            return Err(refused(
                shown,
                "PAX sparse files are not unpacked: rebuild the layer without --sparse",
            ));
        }
    }
    Ok(meta)
}

/// A numeric header field; one left empty (all NUL or spaces, as some
/// writers leave unused fields) reads as 0, as Go's archive/tar and GNU tar
/// read it.
fn numeric(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        r => r,
    }
}

/// A PAX time: decimal seconds with an optional fraction ("1700000000.5").
fn parse_pax_time(v: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(v).ok()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = int.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nsec = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse::<i64>().ok()?
    };
    // A negative time with a fraction counts back from the integer part.
    let (sec, nsec) = if sec < 0 || int.starts_with('-') {
        if nsec > 0 {
            (sec - 1, 1_000_000_000 - nsec)
        } else {
            (sec, 0)
        }
    } else {
        (sec, nsec)
    };
    Some(Time { sec, nsec })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse_with_fractions() {
        let t = |s: &str| parse_pax_time(s.as_bytes());
        assert_eq!(
            t("1700000000"),
            Some(Time {
                sec: 1700000000,
                nsec: 0
            })
        );
        assert_eq!(
            t("1700000000.5"),
            Some(Time {
                sec: 1700000000,
                nsec: 500_000_000
            })
        );
        assert_eq!(
            t("1.123456789123"),
            Some(Time {
                sec: 1,
                nsec: 123_456_789
            })
        );
        assert_eq!(
            t("-1.5"),
            Some(Time {
                sec: -2,
                nsec: 500_000_000
            })
        );
        assert_eq!(t("x"), None);
    }
}
