//! Thin wrappers over the *at() system calls the applier and the tree copy
//! use, each returning `io::Result`. Everything takes a directory fd plus a
//! single name (never a path with `/`), so what it touches is decided by the
//! fd, which was itself opened confined to a root (see [`open_in_root`]).
//!
//! libc rather than nix: several calls (openat2 with RESOLVE_IN_ROOT,
//! fchmodat2, mknodat with raw modes, fsetxattr on raw bytes) are simpler to
//! express directly, and every unsafe block here is one syscall whose
//! arguments are valid C strings, valid fds and live buffers.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub(crate) fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// A C string from bytes that are known to hold no NUL (names and paths are
/// checked when they are parsed); a NUL still yields an error, not a panic.
pub(crate) fn cstr(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `openat2(dir, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`:
/// `path` is resolved as if `dir` were `/`. `..` stops at `dir`, absolute
/// symlinks start at `dir`, and /proc magic links are refused, so nothing
/// outside `dir` can be reached whatever the tree under it contains.
pub(crate) fn open_in_root(dir: BorrowedFd, path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // The kernel answers EAGAIN when a rename raced with the lookup; a
    // few retries settle it.
    let mut tries = 0;
    loop {
        // SAFETY: path is a valid C string, how a live open_how of the size
        // passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel returned a new fd that we now own.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        let e = io::Error::last_os_error();
        tries += 1;
        if errno(&e) != libc::EAGAIN || tries > 16 {
            return Err(e);
        }
    }
}

/// `openat(dir, name, flags | O_CLOEXEC | O_NOFOLLOW, mode)`.
pub(crate) fn openat(dir: BorrowedFd, name: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: name is a valid C string.
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A directory fd that can be read (for getdents, fsetxattr, fchown).
pub(crate) fn open_dir(dir: BorrowedFd, name: &CStr) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

pub(crate) fn fstatat(dir: BorrowedFd, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data, filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: name is a valid C string, st a live buffer.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

pub(crate) fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    // SAFETY: as fstatat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open, st a live buffer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

pub(crate) fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub(crate) fn mkdirat(dir: BorrowedFd, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: name is a valid C string.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub(crate) fn mknodat(dir: BorrowedFd, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: name is a valid C string.
    cvt(unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            name.as_ptr(),
            mode as libc::mode_t,
            dev as libc::dev_t,
        )
    })
    .map(drop)
}

pub(crate) fn symlinkat(target: &CStr, dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: both are valid C strings.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// A hard link; flags 0, so a symlink target is linked itself, not followed.
pub(crate) fn linkat(
    from_dir: BorrowedFd,
    from: &CStr,
    to_dir: BorrowedFd,
    to: &CStr,
) -> io::Result<()> {
    // SAFETY: both names are valid C strings.
    cvt(unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            0,
        )
    })
    .map(drop)
}

pub(crate) fn unlinkat(dir: BorrowedFd, name: &CStr, is_dir: bool) -> io::Result<()> {
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: name is a valid C string.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

pub(crate) fn readlinkat(dir: BorrowedFd, name: &CStr) -> io::Result<CString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buf is a live buffer of the length passed.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    cstr(&buf)
}

/// lchown: the entry itself, never what a symlink points at.
pub(crate) fn lchownat(dir: BorrowedFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: name is a valid C string.
    cvt(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

pub(crate) fn fchown(fd: BorrowedFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: fd is open.
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(drop)
}

pub(crate) fn fchmod(fd: BorrowedFd, mode: u32) -> io::Result<()> {
    // SAFETY: fd is open.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

/// chmod of `name` in `dir` without following a symlink: fchmodat2 with
/// AT_SYMLINK_NOFOLLOW (Linux 6.6). On an older kernel the caller has just
/// created `name` as a non-symlink itself, so plain fchmodat is equivalent.
pub(crate) fn lchmodat(dir: BorrowedFd, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: name is a valid C string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            mode as libc::mode_t,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if errno(&e) != libc::ENOSYS {
        return Err(e);
    }
    // SAFETY: name is a valid C string.
    cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, 0) })
        .map(drop)
}

/// A time as utimensat wants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Time {
    pub sec: i64,
    pub nsec: i64,
}

fn timespecs(t: Time) -> [libc::timespec; 2] {
    let ts = libc::timespec {
        tv_sec: t.sec as libc::time_t,
        tv_nsec: t.nsec as _,
    };
    [ts, ts]
}

/// Set atime and mtime of `name` itself (AT_SYMLINK_NOFOLLOW).
pub(crate) fn lutimensat(dir: BorrowedFd, name: &CStr, t: Time) -> io::Result<()> {
    let ts = timespecs(t);
    // SAFETY: name is a valid C string, ts two live timespecs.
    cvt(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

pub(crate) fn futimens(fd: BorrowedFd, t: Time) -> io::Result<()> {
    let ts = timespecs(t);
    // SAFETY: fd is open, ts two live timespecs.
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) }).map(drop)
}

/// What an xattr call acts on: an open fd (regular files and directories),
/// or a name in a directory fd, not followed if it is a symlink (symlinks
/// and device nodes, which cannot be opened safely for fsetxattr).
#[derive(Clone, Copy)]
pub(crate) enum Node<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a CStr),
}

/// `/proc/self/fd/<dir>/<name>`: the kernel follows the fd's magic link to
/// the very directory we hold, then looks `name` up in it, and the l*xattr
/// calls do not follow `name` itself. (setxattrat(2) would do this without
/// /proc but needs Linux 6.13.)
fn proc_path(dir: BorrowedFd, name: &CStr) -> io::Result<CString> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.to_bytes());
    cstr(&p)
}

pub(crate) fn setxattr(node: Node, key: &CStr, value: &[u8]) -> io::Result<()> {
    let (ptr, len) = (value.as_ptr().cast(), value.len());
    let r = match node {
        // SAFETY: key is a valid C string, value a live buffer of its length.
        Node::Fd(fd) => unsafe { libc::fsetxattr(fd.as_raw_fd(), key.as_ptr(), ptr, len, 0) },
        Node::At(dir, name) => {
            let path = proc_path(dir, name)?;
            // SAFETY: as above; path is a valid C string.
            unsafe { libc::lsetxattr(path.as_ptr(), key.as_ptr(), ptr, len, 0) }
        }
    };
    cvt(r).map(drop)
}

/// One list or get call into `buf`, retried with a larger buffer on ERANGE.
fn sized_call(mut call: impl FnMut(&mut [u8]) -> isize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    loop {
        let n = call(&mut buf);
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if errno(&e) == libc::ERANGE && buf.len() < 1 << 22 {
            let len = buf.len() * 8;
            buf.resize(len, 0);
            continue;
        }
        return Err(e);
    }
}

/// Names of the xattrs of `node` (none where the fs has no xattrs).
pub(crate) fn listxattr(node: Node) -> io::Result<Vec<CString>> {
    let path = match node {
        Node::At(dir, name) => Some(proc_path(dir, name)?),
        Node::Fd(_) => None,
    };
    let list = sized_call(|buf| match (node, &path) {
        // SAFETY: buf is a live buffer of the length passed.
        (Node::Fd(fd), _) => unsafe {
            libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
        },
        // SAFETY: as above; p is a valid C string.
        (_, Some(p)) => unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) },
        (_, None) => -1,
    });
    let list = match list {
        Ok(l) => l,
        Err(e) if errno(&e) == libc::ENOTSUP => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(list
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| CString::new(n).ok())
        .collect())
}

pub(crate) fn getxattr(node: Node, key: &CStr) -> io::Result<Vec<u8>> {
    let path = match node {
        Node::At(dir, name) => Some(proc_path(dir, name)?),
        Node::Fd(_) => None,
    };
    sized_call(|buf| match (node, &path) {
        // SAFETY: key is a valid C string, buf a live buffer.
        (Node::Fd(fd), _) => unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                key.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        },
        // SAFETY: as above; p is a valid C string.
        (_, Some(p)) => unsafe {
            libc::lgetxattr(p.as_ptr(), key.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        },
        (_, None) => -1,
    })
}

/// Names in a directory (without `.` and `..`), read from an fd opened by
/// [`open_dir`]. The fd is duplicated, so the caller keeps its own.
pub(crate) fn read_dir_names(dir: BorrowedFd) -> io::Result<Vec<CString>> {
    // SAFETY: dup of an open fd.
    let fd = cvt(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: fd is a fresh directory fd that fdopendir takes over.
    let d = unsafe { libc::fdopendir(fd) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so fd is still ours to close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    // The dup shares the file offset with `dir`: start from the top.
    // SAFETY: d is a live DIR.
    unsafe { libc::rewinddir(d) };
    let mut names = Vec::new();
    let result = loop {
        // readdir returns NULL both at the end and on error; errno tells.
        // SAFETY: errno location is thread-local and always valid.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: d is a live DIR.
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if errno(&e) == 0 { Ok(()) } else { Err(e) };
        }
        // SAFETY: d_name of a returned entry is a NUL-terminated string.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        let b = name.to_bytes();
        if b != b"." && b != b".." {
            names.push(name.to_owned());
        }
    };
    // SAFETY: d is live and closed once (this also closes fd).
    unsafe { libc::closedir(d) };
    result.map(|()| names)
}

pub(crate) fn makedev(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}
