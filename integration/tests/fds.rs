//! What leaks from the runtime into the container (CVE-2024-21626): open file
//! descriptors beyond stdio and `--preserve-fds`, and a working directory
//! outside the container's root.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use hull_integration::{Output, Runtime};

/// Lists the fds of the shell itself (not of `ls`, which opens its own
/// directory fd); the trailing `true` keeps sh from exec'ing `ls` in its place.
const LIST_SHELL_FDS: &str = "ls /proc/$$/fd; true";

/// Runtime command configuration giving the runtime `files[i]` as fd 3+i,
/// without close-on-exec: what a caller (a shim, a socket-activated service)
/// may hand the runtime on purpose or by accident.
fn with_inherited_fds(files: &[&Path]) -> impl FnOnce(&mut Command) {
    // Park the files at fds >= 100 first, so that placing them at 3, 4, ...
    // in the child cannot clobber one another.
    let parked: Vec<OwnedFd> = files
        .iter()
        .map(|path| {
            let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that we own.
            let fd = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
            assert!(fd >= 100, "F_DUPFD_CLOEXEC failed");
            // SAFETY: fd is open and owned by nothing else.
            unsafe { OwnedFd::from_raw_fd(fd) }
        })
        .collect();
    move |cmd: &mut Command| {
        // The hook owns the parked fds, so they stay open until the command
        // is dropped after spawn.
        // SAFETY: only dup2 (async-signal-safe) runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for (i, fd) in parked.iter().enumerate() {
                    if libc::dup2(fd.as_raw_fd(), 3 + i as RawFd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

/// Files in the scratch area: (path of "fd3" with known content, path of "fd4").
fn fd_files(rt: &Runtime) -> (PathBuf, PathBuf) {
    let dir = rt.dir("fds");
    let (a, b) = (dir.join("fd3"), dir.join("fd4"));
    std::fs::write(&a, "content of fd 3\n").unwrap();
    std::fs::write(&b, "content of fd 4\n").unwrap();
    (a, b)
}

/// The shell's fd numbers from [`LIST_SHELL_FDS`] output (after any other lines).
#[track_caller]
fn listed_fds(out: &Output, skip: usize) -> Vec<&str> {
    out.ok().lines()[skip..].to_vec()
}

#[test]
fn run_gets_only_stdio() {
    let Some(rt) = Runtime::new("fds-run") else {
        return;
    };
    let (fd3, fd4) = fd_files(&rt);
    let mut bundle = rt.bundle();
    bundle.sh(LIST_SHELL_FDS);
    let out = rt.run_with(
        &bundle,
        &rt.new_id(),
        &[],
        with_inherited_fds(&[&fd3, &fd4]),
    );
    assert_eq!(listed_fds(&out, 0), ["0", "1", "2"], "{out}");
}

#[test]
fn exec_gets_only_stdio() {
    let Some(rt) = Runtime::new("fds-exec") else {
        return;
    };
    let (fd3, fd4) = fd_files(&rt);
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let out = rt.cmd_with(
        &["exec", &id, "sh", "-c", LIST_SHELL_FDS],
        with_inherited_fds(&[&fd3, &fd4]),
    );
    assert_eq!(listed_fds(&out, 0), ["0", "1", "2"], "{out}");
}

#[test]
fn preserve_fds_passes_exactly_n() {
    let Some(rt) = Runtime::new("fds-preserve") else {
        return;
    };
    let (fd3, fd4) = fd_files(&rt);
    let mut bundle = rt.bundle();
    bundle.sh(&format!("cat <&3; {LIST_SHELL_FDS}"));
    let out = rt.run_with(
        &bundle,
        &rt.new_id(),
        &["--preserve-fds", "1"],
        with_inherited_fds(&[&fd3, &fd4]),
    );
    assert_eq!(out.ok().lines()[0], "content of fd 3", "{out}");
    // fd 3 is preserved, fd 4 is not.
    assert_eq!(listed_fds(&out, 1), ["0", "1", "2", "3"], "{out}");
}

#[test]
fn exec_preserve_fds() {
    let Some(rt) = Runtime::new("fds-exec-preserve") else {
        return;
    };
    let (fd3, fd4) = fd_files(&rt);
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let out = rt.cmd_with(
        &[
            "exec",
            "--preserve-fds",
            "1",
            &id,
            "sh",
            "-c",
            &format!("cat <&3; {LIST_SHELL_FDS}"),
        ],
        with_inherited_fds(&[&fd3, &fd4]),
    );
    assert_eq!(out.ok().lines()[0], "content of fd 3", "{out}");
    assert_eq!(listed_fds(&out, 1), ["0", "1", "2", "3"], "{out}");
}

/// The process's working directory, as the kernel reports it from inside:
/// a cwd outside the container's root would show as a host path.
const SHOW_CWD: &str = "readlink /proc/self/cwd; readlink /proc/$$/cwd";

#[test]
fn cwd_is_inside_the_container() {
    let Some(rt) = Runtime::new("fds-cwd") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.set("/process/cwd", "/tmp").sh(SHOW_CWD);
    assert_eq!(rt.run_ok(&bundle).lines(), ["/tmp", "/tmp"]);

    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let out = rt.exec(&id, &["--cwd", "/tmp"], &["sh", "-c", SHOW_CWD]);
    assert_eq!(out.ok().lines(), ["/tmp", "/tmp"]);
    // The init's cwd too ("/" from the default spec).
    let out = rt.exec(&id, &[], &["readlink", "/proc/1/cwd"]);
    assert_eq!(out.ok().out(), "/");
}
