//! One daemon per root: an exclusive flock on `<root>/hulld.lock`, held for
//! the daemon's life (the kernel drops it when the process dies, even by
//! SIGKILL, so a crash never leaves a stale lock). The pid goes into the
//! lock file and into `<state>/hulld.pid` for scripts.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub struct RootLock {
    _file: File,
    pid_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another hulld (pid {pid}) is using root {}: stop it, or give this one its own --root", root.display())]
    Busy { root: PathBuf, pid: String },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LockError {
    let path = path.to_path_buf();
    move |source| LockError::Io { what, path, source }
}

impl RootLock {
    pub fn acquire(root: &Path, state: &Path) -> Result<RootLock, LockError> {
        for dir in [root, state] {
            fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
        let path = root.join("hulld.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("opening", &path))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(LockError::Busy {
                root: root.into(),
                pid: pid.trim().to_string(),
            });
        }
        let me = std::process::id().to_string();
        file.set_len(0).map_err(io("writing", &path))?;
        file.rewind().map_err(io("writing", &path))?;
        file.write_all(me.as_bytes())
            .map_err(io("writing", &path))?;

        let pid_file = state.join("hulld.pid");
        let tmp = state.join(".hulld.pid.tmp");
        fs::write(&tmp, format!("{me}\n")).map_err(io("writing", &tmp))?;
        fs::rename(&tmp, &pid_file).map_err(io("writing", &pid_file))?;
        Ok(RootLock {
            _file: file,
            pid_file,
        })
    }
}

impl Drop for RootLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.pid_file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_daemon_on_the_same_root_is_refused() {
        let tmp = tempfile::Builder::new()
            .prefix("hulld-lock-test-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        let (root, state) = (dir.join("root"), dir.join("state"));
        let first = RootLock::acquire(&root, &state).unwrap();
        assert_eq!(
            fs::read_to_string(state.join("hulld.pid")).unwrap().trim(),
            std::process::id().to_string()
        );
        // flock locks belong to the open file description: a second open in
        // the same process conflicts just as another process would.
        let err = RootLock::acquire(&root, &dir.join("state2"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("--root"), "{err}");
        drop(first);
        assert!(!state.join("hulld.pid").exists());
        RootLock::acquire(&root, &state).unwrap();
    }
}
