//! Network namespaces that outlive any process: each one is pinned by a
//! bind mount of its nsfs file onto a plain file (`ip netns add` does the
//! same under /run/netns), so a container's runtime joins it by path and
//! the CNI plugins configure it before anything runs inside.
//!
//! hulld is multi-threaded; a namespace is made on a thread of its own
//! that unshares only itself (CLONE_NEWNET is per thread), pins the new
//! namespace and ends: no process is forked for it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A new network namespace pinned at `path` (its parent is created).
pub fn create(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let target = path.to_path_buf();
    let made = std::thread::Builder::new()
        .name("hull-netns".into())
        .spawn(move || pin_new(&target))
        .and_then(|t| {
            t.join()
                .unwrap_or_else(|_| Err(io::Error::other("the netns thread panicked")))
        });
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// On a thread that ends right after: a new namespace for this thread,
/// bind-mounted onto `target`.
fn pin_new(target: &Path) -> io::Result<()> {
    // SAFETY: unshare changes only this thread's network namespace.
    check(unsafe { libc::unshare(libc::CLONE_NEWNET) })?;
    let source = cstr(Path::new("/proc/thread-self/ns/net"))?;
    let target = cstr(target)?;
    // SAFETY: plain bind mount of two valid C strings.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    })
}

/// Unpin and remove the namespace at `path`; a missing one is no error.
/// The namespace itself goes when nothing else holds it.
pub fn remove(path: &Path) -> io::Result<()> {
    let c = cstr(path)?;
    // SAFETY: unmounting a path we pinned.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        // EINVAL: not a mount point (a crash between the file and the
        // mount); ENOENT: gone already.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(e);
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
