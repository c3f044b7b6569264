//! Reading and writing cgroup files, creating and removing cgroup
//! directories.
//!
//! Every cgroup file write goes through [`write`], which opens the file
//! without `O_CREAT`: in cgroupfs a missing file means a missing controller
//! or an old kernel, and creating a regular file instead would hide that.
//! Tests run the managers against a temporary directory with the files
//! pre-created; in test builds each write is also recorded (per thread) so a
//! test can check the exact sequence, e.g. `devices.deny` before
//! `devices.allow`, which a regular file (keeping only the last write) could
//! not show.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

#[cfg(test)]
thread_local! {
    static WRITES: std::cell::RefCell<Vec<(PathBuf, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The writes made by this thread since the last call (test builds only).
#[cfg(test)]
pub(crate) fn take_writes() -> Vec<(PathBuf, String)> {
    WRITES.with(|w| std::mem::take(&mut *w.borrow_mut()))
}

/// Writes `value` to `dir/file` in one write(2), as cgroupfs expects.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    #[cfg(test)]
    WRITES.with(|w| w.borrow_mut().push((path.clone(), value.to_string())));
    let res = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|source| Error::Write {
        path,
        value: value.to_string(),
        source,
    })
}

/// Like [`write`] but reports the raw io error (for callers that retry).
pub(crate) fn try_write(dir: &Path, file: &str, value: &str) -> Result<(), (Error, i32)> {
    write(dir, file, value).map_err(|e| {
        let errno = e.errno().unwrap_or(0);
        (e, errno)
    })
}

/// The content of `dir/file`.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
}

/// The content of `dir/file`, or `None` when it does not exist.
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if is_missing(&e) => Ok(None),
        Err(source) => Err(Error::Read { path, source }),
    }
}

pub(crate) fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// ENOENT, and also ENODEV/ENOTSUP that some cgroup files return when the
/// feature behind them is off (e.g. PSI files with psi=0).
fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::EOPNOTSUPP)
    )
}

/// Parses a single-number file: "123\n", or "max" as `u64::MAX`.
pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64> {
    let t = s.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse::<u64>()
        .map_err(|_| Error::parse(path, s, "expected a number or \"max\""))
}

/// Reads a single-number file; `None` when the file does not exist.
pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>> {
    match read_opt(dir, file)? {
        Some(s) => parse_u64(&dir.join(file), &s).map(Some),
        None => Ok(None),
    }
}

/// Reads a single-number file, 0 when it does not exist.
pub(crate) fn read_u64_or0(dir: &Path, file: &str) -> Result<u64> {
    Ok(read_u64_opt(dir, file)?.unwrap_or(0))
}

/// Parses a "flat keyed" file ("key value" per line) into pairs; lines
/// whose value is not a number are skipped (some kernels add text fields).
pub(crate) fn parse_flat_keyed(s: &str) -> Vec<(String, u64)> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?;
            let v = if v == "max" {
                u64::MAX
            } else {
                v.parse().ok()?
            };
            Some((k.to_string(), v))
        })
        .collect()
}

/// The value of `key` in a flat keyed file, `None` when file or key is absent.
pub(crate) fn read_keyed(dir: &Path, file: &str, key: &str) -> Result<Option<u64>> {
    Ok(read_opt(dir, file)?.and_then(|s| {
        parse_flat_keyed(&s)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }))
}

/// Creates `dir` and any missing parents below `top` (which must exist),
/// calling `on_create` for each directory this call created, top-down.
pub(crate) fn create_dirs(
    top: &Path,
    dir: &Path,
    mut on_create: impl FnMut(&Path) -> Result<()>,
) -> Result<()> {
    let rel = dir.strip_prefix(top).map_err(|_| {
        Error::invalid(format!(
            "cgroup {} is not below its hierarchy {}",
            dir.display(),
            top.display()
        ))
    })?;
    let mut cur = top.to_path_buf();
    for comp in rel.components() {
        cur.push(comp);
        match fs::create_dir(&cur) {
            Ok(()) => on_create(&cur)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("creating cgroup", &cur, e)),
        }
    }
    Ok(())
}

/// The process ids in `dir/cgroup.procs` and in every cgroup below it.
pub(crate) fn procs_recursive(dir: &Path) -> Result<Vec<i32>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Some(procs) = read_opt(&d, "cgroup.procs")? else {
            continue; // removed while walking
        };
        for l in procs.lines() {
            let l = l.trim();
            if l.is_empty() {
                continue;
            }
            let pid = l
                .parse::<i32>()
                .map_err(|_| Error::parse(&d.join("cgroup.procs"), &procs, "expected pids"))?;
            // Processes outside our pid namespace read as 0: never
            // hand those (kill(0) is our own process group) to callers.
            if pid > 0 {
                out.push(pid);
            }
        }
        stack.extend(subdirs(&d)?);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The child cgroups (directories) of `dir`.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing cgroup", dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("listing cgroup", dir, e))?;
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(ent.path());
        }
    }
    out.sort();
    Ok(out)
}

/// How long [`remove_tree`] keeps retrying while processes exit.
pub(crate) const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Removes the cgroup `dir` and every cgroup below it, deepest first.
///
/// `rmdir` of a cgroup fails with EBUSY while it still has processes,
/// including ones that were just killed and are still exiting (zombies are
/// counted until reaped), so EBUSY is retried with a growing pause until
/// `timeout`. A directory that is already gone is fine.
///
/// On a real cgroupfs `rmdir` removes a cgroup with its interface files;
/// against a plain directory tree (tests) the regular files are removed
/// first.
pub(crate) fn remove_tree(dir: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match remove_once(dir) {
            Ok(()) => return Ok(()),
            Err((e, true)) if Instant::now() < deadline => {
                drop(e);
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// One bottom-up pass; the bool says whether retrying may help (EBUSY).
fn remove_once(dir: &Path) -> Result<(), (Error, bool)> {
    for sub in subdirs(dir).map_err(|e| (e, false))? {
        remove_once(&sub)?;
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && !is_cgroupfs(dir) => {
            // A plain directory standing in for a cgroup (tests).
            let rd = fs::read_dir(dir).map_err(|e| (Error::io("listing", dir, e), false))?;
            for ent in rd.flatten() {
                let _ = fs::remove_file(ent.path());
            }
            fs::remove_dir(dir).map_err(|e| (Error::io("removing cgroup", dir, e), false))
        }
        Err(e) => {
            let busy = e.raw_os_error() == Some(libc::EBUSY);
            Err((Error::io("removing cgroup", dir, e), busy))
        }
    }
}

/// Whether `path` is on a cgroup or cgroup2 filesystem.
pub(crate) fn is_cgroupfs(path: &Path) -> bool {
    match nix::sys::statfs::statfs(path) {
        Ok(st) => {
            let t = st.filesystem_type();
            t == nix::sys::statfs::CGROUP2_SUPER_MAGIC || t == nix::sys::statfs::CGROUP_SUPER_MAGIC
        }
        Err(_) => false,
    }
}

/// Polls `check` until it returns `Some`, pausing between tries with a
/// growing interval (1 ms up to 50 ms), until `timeout`.
pub(crate) fn poll<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = check()? {
            return Ok(Some(v));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed() {
        let v = parse_flat_keyed("usage_usec 10\nnr_periods 2\nbad x\nmax max\n");
        assert_eq!(
            v,
            vec![
                ("usage_usec".into(), 10),
                ("nr_periods".into(), 2),
                ("max".into(), u64::MAX)
            ]
        );
    }

    #[test]
    fn write_needs_an_existing_file() {
        let d = crate::testutil::TempDir::new();
        let e = write(d.path(), "memory.max", "1").unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
        fs::write(d.path().join("memory.max"), "max\n").unwrap();
        write(d.path(), "memory.max", "1").unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("memory.max")).unwrap(),
            "1"
        );
    }

    #[test]
    fn remove_tree_plain_dirs() {
        let d = crate::testutil::TempDir::new();
        let c = d.path().join("a/b/c");
        fs::create_dir_all(&c).unwrap();
        fs::write(c.join("cgroup.procs"), "").unwrap();
        remove_tree(&d.path().join("a"), Duration::from_millis(10)).unwrap();
        assert!(!d.path().join("a").exists());
        remove_tree(&d.path().join("a"), Duration::from_millis(10)).unwrap();
    }

    #[test]
    fn procs_of_a_tree() {
        let d = crate::testutil::TempDir::new();
        fs::create_dir_all(d.path().join("x/y")).unwrap();
        fs::write(d.path().join("cgroup.procs"), "5\n3\n").unwrap();
        fs::write(d.path().join("x/cgroup.procs"), "").unwrap();
        fs::write(d.path().join("x/y/cgroup.procs"), "9\n3\n").unwrap();
        assert_eq!(procs_recursive(d.path()).unwrap(), vec![3, 5, 9]);
    }
}
