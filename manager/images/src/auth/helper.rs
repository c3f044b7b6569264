//! Docker credential helpers: `docker-credential-<name> get|store|erase`,
//! with the server URL (get, erase) or a JSON record (store) on stdin and a
//! JSON record on stdout. A helper is whatever program the user installed
//! under that name, so it runs with its output and its runtime bounded: a
//! broken or hung helper fails the command with a readable error instead
//! of hanging it or filling memory.

use super::AuthConfigError;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a helper may take (docker has no limit; a keychain prompt is
/// the slowest legitimate case).
const TIMEOUT: Duration = Duration::from_secs(30);
/// A credential record is a few KiB at most.
const MAX_OUTPUT: usize = 1 << 20;
/// How much of a failing helper's output goes into the error.
const SHOWN: usize = 1024;
/// What helpers print (and exit non-zero with) when they hold nothing for
/// the server: docker-credential-helpers' `credentials.errCredentialsNotFound`.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// A helper named by a config file, found on the search path.
pub(super) struct Helper {
    /// `docker-credential-<name>`, for messages.
    program: String,
    file: PathBuf,
}

/// What a helper run printed, and how it ended.
struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Helper {
    /// `docker-credential-<name>` in the first directory of `path_env` (a
    /// PATH value) that has it as an executable file. `config` is the file
    /// that names the helper, for the error.
    pub(super) fn find(
        name: &str,
        config: &Path,
        path_env: Option<&OsStr>,
    ) -> Result<Helper, AuthConfigError> {
        let program = format!("docker-credential-{name}");
        if name.contains('/') {
            return Err(AuthConfigError::HelperName {
                name: name.into(),
                path: config.into(),
            });
        }
        let file = std::env::split_paths(path_env.unwrap_or_default())
            // An empty entry would mean the current directory: not searched.
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(&program))
            .find(|f| is_executable(f));
        match file {
            Some(file) => Ok(Helper { program, file }),
            None => Err(AuthConfigError::HelperMissing {
                program,
                path: config.into(),
            }),
        }
    }

    /// The helper's credentials for `server`; `None` when it has none.
    pub(super) fn get(
        &self,
        host: &str,
        server: &str,
    ) -> Result<Option<(String, String)>, AuthConfigError> {
        let out = self.run("get", host, server.as_bytes())?;
        if !out.status.success() {
            return match is_not_found(&out) {
                true => Ok(None),
                false => Err(self.failed("get", host, &out)),
            };
        }
        let record: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| self.error("get", host, format!("printed invalid JSON: {e}")))?;
        let field = |name: &str| record.get(name).and_then(|v| v.as_str()).unwrap_or("");
        let (username, secret) = (field("Username"), field("Secret"));
        if username.is_empty() && secret.is_empty() {
            return Ok(None);
        }
        Ok(Some((username.to_string(), secret.to_string())))
    }

    pub(super) fn store(
        &self,
        host: &str,
        server: &str,
        username: &str,
        secret: &str,
    ) -> Result<(), AuthConfigError> {
        let record = serde_json::json!({
            "ServerURL": server,
            "Username": username,
            "Secret": secret,
        });
        let out = self.run("store", host, record.to_string().as_bytes())?;
        match out.status.success() {
            true => Ok(()),
            false => Err(self.failed("store", host, &out)),
        }
    }

    /// Whether the helper removed something (`false`: it had nothing).
    pub(super) fn erase(&self, host: &str, server: &str) -> Result<bool, AuthConfigError> {
        let out = self.run("erase", host, server.as_bytes())?;
        match (out.status.success(), is_not_found(&out)) {
            (true, _) => Ok(true),
            (false, true) => Ok(false),
            (false, false) => Err(self.failed("erase", host, &out)),
        }
    }

    fn run(
        &self,
        action: &'static str,
        host: &str,
        input: &[u8],
    ) -> Result<Output, AuthConfigError> {
        run(&self.file, action, input, TIMEOUT).map_err(|detail| self.error(action, host, detail))
    }

    fn failed(&self, action: &'static str, host: &str, out: &Output) -> AuthConfigError {
        let mut said = String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(SHOWN)])
            .trim()
            .to_string();
        let stdout = String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(SHOWN)]);
        if !stdout.trim().is_empty() {
            if !said.is_empty() {
                said.push_str("; ");
            }
            said.push_str(stdout.trim());
        }
        if said.is_empty() {
            said = "no output".into();
        }
        self.error(action, host, format!("{}: {said}", out.status))
    }

    fn error(&self, action: &'static str, host: &str, detail: String) -> AuthConfigError {
        AuthConfigError::Helper {
            program: self.program.clone(),
            action,
            host: host.into(),
            detail,
        }
    }
}

fn is_executable(file: &Path) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn is_not_found(out: &Output) -> bool {
    String::from_utf8_lossy(&out.stdout).contains(NOT_FOUND)
}

/// Run `program action` with `input` on stdin; at most `limit` for all of
/// it, then the helper is killed (by its PID) and reaped. `Err` says what
/// went wrong, for [`Helper::error`].
fn run(program: &Path, action: &str, input: &[u8], limit: Duration) -> Result<Output, String> {
    let deadline = Instant::now() + limit;
    let mut child = spawn(program, action)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its status.
        let _ = stdin.write_all(input);
    }
    let pipes = [
        child.stdout.take().map(OwnedFd::from),
        child.stderr.take().map(OwnedFd::from),
    ];
    let [Some(stdout), Some(stderr)] = pipes else {
        unreachable!("both pipes were requested");
    };
    let result = read_bounded([stdout.into(), stderr.into()], deadline, limit).and_then(|out| {
        let status = wait_bounded(&mut child, deadline, limit)?;
        let [stdout, stderr] = out;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    });
    if result.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

fn spawn(program: &Path, action: &str) -> Result<Child, String> {
    let mut tries = 0;
    loop {
        let spawned = Command::new(program)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            // Just installed (its writer's descriptor is still open,
            // e.g. inherited by a process forked meanwhile): try again.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 10 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("cannot start {}: {e}", program.display())),
            Ok(child) => return Ok(child),
        }
    }
}

fn too_slow(limit: Duration) -> String {
    format!(
        "it did not finish within {} s and was killed",
        limit.as_secs_f64()
    )
}

/// Everything the helper writes to its two pipes until it closes them,
/// at most [`MAX_OUTPUT`] bytes each, before `deadline`.
fn read_bounded(
    pipes: [File; 2],
    deadline: Instant,
    limit: Duration,
) -> Result<[Vec<u8>; 2], String> {
    let mut out = [Vec::new(), Vec::new()];
    let mut open = [true, true];
    let mut chunk = [0u8; 8192];
    while open.contains(&true) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(too_slow(limit));
        }
        let mut fds: Vec<libc::pollfd> = (0..2)
            .filter(|&i| open[i])
            .map(|i| libc::pollfd {
                fd: pipes[i].as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let wait_ms = left.as_millis().min(i32::MAX as u128 - 1) as i32 + 1;
        // SAFETY: `fds` holds `fds.len()` initialised pollfd records.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("waiting for its output: {e}"));
        }
        for p in fds.iter().filter(|p| p.revents != 0) {
            let i = usize::from(p.fd != pipes[0].as_raw_fd());
            match (&pipes[i]).read(&mut chunk) {
                Ok(0) => open[i] = false,
                Ok(k) if out[i].len() + k > MAX_OUTPUT => {
                    return Err(format!("it printed more than {MAX_OUTPUT} bytes"))
                }
                Ok(k) => out[i].extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading its output: {e}")),
            }
        }
    }
    Ok(out)
}

fn wait_bounded(
    child: &mut Child,
    deadline: Instant,
    limit: Duration,
) -> Result<ExitStatus, String> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => return Err(too_slow(limit)),
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(name: &str, body: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix(&format!("hull-helper-{name}-"))
            .tempdir()
            .unwrap();
        let file = dir.path().join("helper");
        std::fs::write(&file, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, file)
    }

    #[test]
    fn a_hung_helper_is_killed_and_reaped() {
        let (dir, file) = script("hang", "exec sleep 30");
        let started = Instant::now();
        let err = run(&file, "get", b"x", Duration::from_millis(300))
            .err()
            .expect("times out");
        assert!(err.contains("did not finish within 0.3 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(dir);
    }

    #[test]
    fn output_is_capped_and_input_arrives() {
        let (dir, file) = script("big", "head -c 2000000 /dev/zero");
        let err = run(&file, "get", b"", Duration::from_secs(10))
            .err()
            .expect("too much output");
        assert!(err.contains("more than 1048576 bytes"), "{err}");
        drop(dir);

        let (dir, file) = script("echo", "echo \"$1 $(cat)\"; echo warn >&2");
        let out = run(&file, "get", b"reg.lan", Duration::from_secs(10)).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"get reg.lan\n");
        assert_eq!(out.stderr, b"warn\n");
        drop(dir);
    }
}
