//! Mounting what a snapshotter returns.
//!
//! Bind mounts and overlays whose options fit in a page use mount(2). An
//! overlay with a long `lowerdir=` list (more than a page of options: about
//! 60 layers at our path lengths) goes through the new mount API instead:
//! fsopen("overlay"), one `fsconfig(FSCONFIG_SET_STRING, "lowerdir+", dir)`
//! per lower (Linux 6.8), then fsmount and move_mount. containerd works
//! around the page limit differently: a helper process chdirs to the lower
//! dirs' common parent and passes relative paths. We do not, because chdir
//! is process-wide in a multi-threaded daemon (it needs a fork), and the
//! relative paths only shorten the string, while `lowerdir+` has no limit on
//! the list (each path must be under 256 bytes, the fsconfig string limit).
//! Overlays with a ',' or ':' in a path also take this route, since the
//! classic option string cannot carry them.

use crate::{Error, Mount, Result};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// mount(2) takes at most a page of data (including the NUL).
const PAGE: usize = 4096;

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn mount_err(target: &Path, m: &Mount, source: io::Error) -> Error {
    Error::Io {
        what: format!("mounting {} from {:?} on", m.kind, m.source),
        path: target.to_path_buf(),
        source,
    }
}

/// Flags that mount(2) takes as bits, the rest are filesystem data.
fn flag(option: &str) -> Option<(bool, libc::c_ulong)> {
    let f = match option {
        "ro" => (true, libc::MS_RDONLY),
        "rw" => (false, libc::MS_RDONLY),
        "nosuid" => (true, libc::MS_NOSUID),
        "suid" => (false, libc::MS_NOSUID),
        "nodev" => (true, libc::MS_NODEV),
        "dev" => (false, libc::MS_NODEV),
        "noexec" => (true, libc::MS_NOEXEC),
        "exec" => (false, libc::MS_NOEXEC),
        "noatime" => (true, libc::MS_NOATIME),
        "nodiratime" => (true, libc::MS_NODIRATIME),
        "relatime" => (true, libc::MS_RELATIME),
        "strictatime" => (true, libc::MS_STRICTATIME),
        "sync" => (true, libc::MS_SYNCHRONOUS),
        "bind" => (true, libc::MS_BIND),
        "rbind" => (true, libc::MS_BIND | libc::MS_REC),
        _ => return None,
    };
    Some(f)
}

fn split_options(options: &[String]) -> (libc::c_ulong, Vec<&str>) {
    let mut flags = 0;
    let mut data = Vec::new();
    for o in options {
        match flag(o) {
            Some((true, f)) => flags |= f,
            Some((false, f)) => flags &= !f,
            None => data.push(o.as_str()),
        }
    }
    (flags, data)
}

/// Mount each of `mounts` on `target` in order (a later one over the
/// earlier), as containerd's mount.All does.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for m in mounts {
        let dest = if m.target.is_empty() {
            target.to_path_buf()
        } else {
            target.join(m.target.trim_start_matches('/'))
        };
        mount_one(m, &dest).map_err(|e| mount_err(&dest, m, e))?;
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> io::Result<()> {
    let (flags, data) = split_options(&m.options);
    if flags & libc::MS_BIND != 0 || m.kind == "bind" {
        return bind(m, target, flags | libc::MS_BIND);
    }
    let data = data.join(",");
    let awkward_paths = m.kind == "overlay"
        && m.options.iter().any(|o| {
            o.split_once('=').is_some_and(|(k, v)| {
                matches!(k, "lowerdir" | "upperdir" | "workdir") && v.contains(',')
            })
        });
    if m.kind == "overlay" && (data.len() + 1 > PAGE || awkward_paths) {
        return overlay_new_api(m, target);
    }
    let src = cstr(m.source.as_bytes())?;
    let dst = cstr(target.as_os_str().as_bytes())?;
    let ty = cstr(m.kind.as_bytes())?;
    let d = cstr(data.as_bytes())?;
    // SAFETY: all pointers are valid C strings for the duration of the call.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            ty.as_ptr(),
            flags,
            d.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A bind mount; MS_RDONLY is ignored by the first mount(2) of a bind, so a
/// read-only one is remounted.
fn bind(m: &Mount, target: &Path, flags: libc::c_ulong) -> io::Result<()> {
    let src = cstr(m.source.as_bytes())?;
    let dst = cstr(target.as_os_str().as_bytes())?;
    let first = flags & (libc::MS_BIND | libc::MS_REC);
    // SAFETY: valid C strings; NULL type and data are allowed for binds.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            first,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let rest = flags & !(libc::MS_BIND | libc::MS_REC);
    if rest == 0 {
        return Ok(());
    }
    let remount = libc::MS_REMOUNT | libc::MS_BIND | rest;
    // SAFETY: as above.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            dst.as_ptr(),
            std::ptr::null(),
            remount,
            std::ptr::null(),
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        let _ = unmount(target);
        return Err(e);
    }
    Ok(())
}

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The kernel's own words on why an fsconfig failed (read from the fs
/// context fd), added to the errno.
fn with_log(fs: &OwnedFd, e: io::Error, what: &str) -> io::Error {
    let mut msgs = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: buf is a live buffer of the length passed.
        let n = unsafe { libc::read(fs.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        msgs.push(
            String::from_utf8_lossy(&buf[..n as usize])
                .trim()
                .to_string(),
        );
    }
    let log = if msgs.is_empty() {
        String::new()
    } else {
        format!(" ({})", msgs.join("; "))
    };
    io::Error::new(e.kind(), format!("{what}: {e}{log}"))
}

fn fsconfig(
    fs: &OwnedFd,
    cmd: libc::c_uint,
    key: Option<&str>,
    value: Option<&str>,
) -> io::Result<()> {
    let key = key.map(|k| cstr(k.as_bytes())).transpose()?;
    let value = value.map(|v| cstr(v.as_bytes())).transpose()?;
    let kp = key.as_ref().map_or(std::ptr::null(), |k| k.as_ptr());
    let vp = value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
    // SAFETY: fs is an fs context fd; key/value are valid C strings or NULL
    // as the command requires.
    let r = unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, kp, vp, 0) };
    check(r).map(drop).map_err(|e| {
        let what = match (key.as_ref(), value.as_ref()) {
            (Some(k), Some(v)) => {
                format!("fsconfig {}={}", k.to_string_lossy(), v.to_string_lossy())
            }
            _ => "creating the overlay".to_string(),
        };
        with_log(fs, e, &what)
    })
}

fn overlay_new_api(m: &Mount, target: &Path) -> io::Result<()> {
    let name = cstr(b"overlay")?;
    // SAFETY: name is a valid C string.
    let fd =
        check(unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), libc::FSOPEN_CLOEXEC) })?;
    // SAFETY: a new fd that we own.
    let fs = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    fsconfig(
        &fs,
        libc::FSCONFIG_SET_STRING,
        Some("source"),
        Some(&m.source),
    )?;
    let mut attrs = 0u64;
    for o in &m.options {
        match (o.as_str(), o.split_once('=')) {
            ("ro", _) => attrs |= libc::MOUNT_ATTR_RDONLY,
            ("rw", _) => {}
            ("nosuid", _) => attrs |= libc::MOUNT_ATTR_NOSUID,
            ("nodev", _) => attrs |= libc::MOUNT_ATTR_NODEV,
            ("noexec", _) => attrs |= libc::MOUNT_ATTR_NOEXEC,
            (_, Some(("lowerdir", dirs))) => {
                for dir in dirs.split(':').filter(|d| !d.is_empty()) {
                    fsconfig(&fs, libc::FSCONFIG_SET_STRING, Some("lowerdir+"), Some(dir))?;
                }
            }
            (_, Some((k, v))) => fsconfig(&fs, libc::FSCONFIG_SET_STRING, Some(k), Some(v))?,
            (flag, None) => fsconfig(&fs, libc::FSCONFIG_SET_FLAG, Some(flag), None)?,
        }
    }
    fsconfig(&fs, libc::FSCONFIG_CMD_CREATE, None, None)?;
    // SAFETY: fs is a created fs context.
    let mfd = check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs,
        )
    })
    .map_err(|e| with_log(&fs, e, "fsmount"))?;
    // SAFETY: a new fd that we own.
    let mnt = unsafe { OwnedFd::from_raw_fd(mfd as i32) };
    let empty = cstr(b"")?;
    let dst = cstr(target.as_os_str().as_bytes())?;
    // SAFETY: mnt is a detached mount; both paths are valid C strings.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// Unmount `target` (not following a symlink there). Not being a mount
/// point is not an error; a busy mount is retried for a second.
pub fn unmount(target: &Path) -> Result<()> {
    let err = |source| Error::Io {
        what: "unmounting".into(),
        path: target.to_path_buf(),
        source,
    };
    let dst = cstr(target.as_os_str().as_bytes()).map_err(err)?;
    for attempt in 0.. {
        // SAFETY: dst is a valid C string.
        if unsafe { libc::umount2(dst.as_ptr(), libc::UMOUNT_NOFOLLOW) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL) => return Ok(()),
            Some(libc::EBUSY) if attempt < 20 => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            _ => return Err(err(e)),
        }
    }
    Ok(())
}

/// Mounts on a target that are unmounted (all of them, the last first) when
/// this is dropped, also on a panic.
pub struct Mounted {
    target: PathBuf,
    count: usize,
}

impl Mounted {
    /// [`mount_all`], undone on drop; a failure part-way unmounts what was
    /// mounted.
    pub fn new(mounts: &[Mount], target: &Path) -> Result<Mounted> {
        let mut guard = Mounted {
            target: target.to_path_buf(),
            count: 0,
        };
        for m in mounts {
            mount_all(std::slice::from_ref(m), target)?;
            guard.count += 1;
        }
        Ok(guard)
    }

    pub fn target(&self) -> &Path {
        &self.target
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for _ in 0..self.count {
            let _ = unmount(&self.target);
        }
    }
}
