//! A handle on the runtime under test with its own `--root`, and a Drop guard that
//! removes every container, process and file the test created — also on panic.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bundle::Bundle;
use crate::host::{self, ProcessRef};
use crate::{require_root, runtime_bin};

/// How long one runtime command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a container may take to reach an expected status.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// Result of one runtime invocation.
#[derive(Debug)]
pub struct Output {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Exit code; death by signal N is reported as 128 + N, like a shell does.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics (showing the whole invocation) unless the command exited 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "expected success:\n{self}");
        self
    }

    /// Panics unless the command failed.
    #[track_caller]
    pub fn failed(&self) -> &Self {
        assert!(!self.success(), "expected failure:\n{self}");
        self
    }

    /// Panics unless the command failed with exactly one line on stderr that
    /// mentions `needle` (case-insensitive).
    #[track_caller]
    pub fn fails_mentioning(&self, needle: &str) -> &Self {
        self.failed();
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "expected a one-line error message:\n{self}");
        assert!(
            lines[0].to_lowercase().contains(&needle.to_lowercase()),
            "error message does not mention {needle:?}:\n{self}"
        );
        self
    }

    /// stdout with surrounding whitespace removed.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }

    /// stdout as lines, each trimmed.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().map(str::trim).collect()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.code(),
            self.stdout,
            self.stderr
        )
    }
}

/// The runtime under test, with a private `--root` and scratch area.
///
/// Dropping it force-deletes every container id it handed out, kills every
/// process it recorded, checks that nothing is left mounted or running from its
/// bundles and that no cgroup named after one of its ids remains (removing any
/// it finds), and removes its scratch directory.
pub struct Runtime {
    name: String,
    scratch: PathBuf,
    root: PathBuf,
    counter: AtomicUsize,
    ids: Mutex<Vec<String>>,
    processes: Mutex<Vec<ProcessRef>>,
    children: Mutex<Vec<Child>>,
    bundles: Mutex<Vec<PathBuf>>,
}

impl Runtime {
    /// A fresh runtime handle for the test `name`, or `None` if the test must be
    /// skipped because it is not running as root (see [`require_root`]).
    pub fn new(name: &str) -> Option<Runtime> {
        if !require_root() {
            return None;
        }
        let bin = runtime_bin();
        assert!(
            bin.exists(),
            "runtime binary {} not found: build it (cargo build -p hull) or set HULL_BIN",
            bin.display()
        );
        let scratch = host::scratch_dir(name);
        let root = scratch.join("state");
        Some(Runtime {
            name: name.to_owned(),
            scratch,
            root,
            counter: AtomicUsize::new(0),
            ids: Mutex::new(Vec::new()),
            processes: Mutex::new(Vec::new()),
            children: Mutex::new(Vec::new()),
            bundles: Mutex::new(Vec::new()),
        })
    }

    /// The `--root` directory passed to every command.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A new directory inside this runtime's scratch area (removed on drop).
    pub fn dir(&self, label: &str) -> PathBuf {
        let dir = self.scratch.join(format!(
            "{label}-{}",
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&dir).expect("mkdir in scratch");
        dir
    }

    /// A unique container id (test name + pid), registered for cleanup.
    pub fn new_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{}-{n}", self.name, std::process::id());
        self.track_id(&id);
        id
    }

    /// Registers an id created some other way for `delete --force` on drop.
    pub fn track_id(&self, id: &str) {
        self.ids.lock().unwrap().push(id.to_owned());
    }

    /// Registers a host pid to be killed on drop (if it is still the same process).
    pub fn track_pid(&self, pid: i32) {
        if let Some(p) = ProcessRef::capture(pid) {
            self.processes.lock().unwrap().push(p);
        }
    }

    /// Spawns a helper process on the host; it is killed and reaped on drop.
    pub fn spawn_host(&self, program: &str, args: &[&str]) -> i32 {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let pid = child.id() as i32;
        self.children.lock().unwrap().push(child);
        pid
    }

    /// A fresh copy of the template bundle.
    pub fn bundle(&self) -> Bundle {
        let dir = self.scratch.join(format!(
            "bundle-{}",
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        self.bundles.lock().unwrap().push(dir.clone());
        Bundle::copy_template(dir)
    }

    /// Runs `RUNTIME --root ROOT args...`, capturing stdout and stderr.
    ///
    /// Output goes to files rather than pipes: a detached container inherits the
    /// runtime's stdio, and waiting for EOF on a pipe would wait for the container.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.cmd_with(args, |_| {})
    }

    /// Like [`Runtime::cmd`], with `configure` applied to the command just
    /// before it is spawned: to pass extra file descriptors, switch
    /// credentials, or replace stdio (then that stream is not captured).
    pub fn cmd_with<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        configure: impl FnOnce(&mut Command),
    ) -> Output {
        self.cmd_timeout(args, COMMAND_TIMEOUT, configure)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Runtime::cmd_with`], but a hanging command is killed and reported as an error.
    fn cmd_timeout<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        timeout: Duration,
        configure: impl FnOnce(&mut Command),
    ) -> Result<Output, String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let out_path = self.scratch.join(format!("cmd-{n}.out"));
        let err_path = self.scratch.join(format!("cmd-{n}.err"));
        let command = std::iter::once(runtime_bin().into_os_string())
            .chain([
                OsStr::new("--root").into(),
                self.root.clone().into_os_string(),
            ])
            .chain(args.iter().map(|a| a.as_ref().to_owned()))
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new(runtime_bin());
        cmd.arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).expect("create stdout file"))
            .stderr(File::create(&err_path).expect("create stderr file"));
        configure(&mut cmd);
        let spawned = cmd.spawn();
        // The command holds the parent's copies of the child's stdio (e.g. a
        // PTY slave): close them now, so readers see EOF when the child exits.
        drop(cmd);
        let mut child = spawned.map_err(|e| format!("cannot run {command}: {e}"))?;
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| format!("wait for {command}: {e}"))?
            {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{command}` did not finish within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let read =
            |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
        Ok(Output {
            command,
            status,
            stdout: read(&out_path),
            stderr: read(&err_path),
        })
    }

    /// `create --bundle B [extra...] ID`; on success the container's pid is recorded.
    pub fn create(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
        bundle.save();
        let out = self.cmd(
            &[
                &["create", "--bundle", &bundle.path().to_string_lossy()],
                extra,
                &[id],
            ]
            .concat(),
        );
        if out.success() {
            self.track_pid(self.pid(id));
        }
        out
    }

    /// `create --pid-file P ID` that must fail and leave nothing behind: no new
    /// entry in `--root`, no pid file, no host mount mentioning the bundle, no
    /// process running from it. Returns the failed command's output.
    #[track_caller]
    pub fn create_rejected(&self, bundle: &Bundle, id: &str) -> Output {
        self.track_id(id);
        let before = self.root_entries();
        let pid_file = self.dir("rejected").join("container.pid");
        let out = self.create(bundle, id, &["--pid-file", pid_file.to_str().unwrap()]);
        out.failed();
        assert_eq!(
            self.root_entries(),
            before,
            "state left in --root after a failed create:\n{out}"
        );
        assert!(
            !pid_file.exists(),
            "pid file written by a failed create:\n{out}"
        );
        let mounts = host::mounts_mentioning(bundle.path());
        assert!(
            mounts.is_empty(),
            "mounts left after a failed create: {mounts:?}\n{out}"
        );
        let dirs = [bundle.path().to_owned(), bundle.rootfs()];
        let gone = host::wait_until(Duration::from_secs(2), || {
            host::pids_rooted_in(&dirs).is_empty()
        });
        assert!(
            gone,
            "processes left after a failed create: {:?}\n{out}",
            host::pids_rooted_in(&dirs)
        );
        out
    }

    /// Foreground `run --bundle B [extra...] ID`: the container's stdout is the
    /// runtime's stdout, and its exit code the runtime's.
    pub fn run(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
        self.run_with(bundle, id, extra, |_| {})
    }

    /// [`Runtime::run`] with the command adjusted as in [`Runtime::cmd_with`].
    pub fn run_with(
        &self,
        bundle: &Bundle,
        id: &str,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Output {
        bundle.save();
        self.cmd_with(
            &[
                &["run", "--bundle", &bundle.path().to_string_lossy()],
                extra,
                &[id],
            ]
            .concat(),
            configure,
        )
    }

    /// Runs the bundle's process in the foreground with a fresh id and returns
    /// its output, asserting that it exited 0.
    #[track_caller]
    pub fn run_ok(&self, bundle: &Bundle) -> Output {
        let out = self.run(bundle, &self.new_id(), &[]);
        out.ok();
        out
    }

    /// Creates and starts a container (detached) and waits until its process
    /// has exited; returns its id, the container left "stopped".
    #[track_caller]
    pub fn start_until_stopped(&self, bundle: &Bundle) -> String {
        let id = self.new_id();
        self.create(bundle, &id, &[]).ok();
        self.start(&id).ok();
        self.wait_for_status(&id, "stopped");
        id
    }

    /// Creates and starts a container whose process sleeps; returns its id.
    pub fn start_sleeper(&self, bundle: &mut Bundle) -> String {
        bundle.args(&["sleep", "600"]);
        let id = self.new_id();
        self.create(bundle, &id, &[]).ok();
        self.start(&id).ok();
        assert_eq!(self.status(&id), "running");
        id
    }

    pub fn start(&self, id: &str) -> Output {
        self.cmd(&["start", id])
    }

    pub fn kill(&self, id: &str, signal: &str) -> Output {
        self.cmd(&["kill", id, signal])
    }

    pub fn delete(&self, id: &str) -> Output {
        self.cmd(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Output {
        self.cmd(&["delete", "--force", id])
    }

    /// `exec [flags...] ID args...`
    pub fn exec(&self, id: &str, flags: &[&str], args: &[&str]) -> Output {
        self.cmd(&[&["exec"], flags, &[id], args].concat())
    }

    /// Parsed `state ID`; panics if the command fails.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.cmd(&["state", id]);
        out.ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON ({e}):\n{out}"))
    }

    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .expect("state.status is a string")
            .to_owned()
    }

    #[track_caller]
    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"]
            .as_i64()
            .expect("state.pid is a number") as i32
    }

    /// Waits until `state ID` reports `status`.
    #[track_caller]
    pub fn wait_for_status(&self, id: &str, status: &str) {
        let mut last = String::new();
        let reached = host::wait_until(STATUS_TIMEOUT, || {
            last = self.status(id);
            last == status
        });
        assert!(
            reached,
            "container {id} still {last:?} after {STATUS_TIMEOUT:?}, expected {status:?}"
        );
    }

    /// The directories named after container `id` anywhere under
    /// /sys/fs/cgroup (every hierarchy, any depth): empty once the runtime
    /// removed the container's cgroups.
    pub fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        host::cgroup_dirs_named(id)
    }

    /// Panics unless no directory named after container `id` is left under
    /// /sys/fs/cgroup.
    #[track_caller]
    pub fn assert_no_cgroups(&self, id: &str, context: &str) {
        let left = self.cgroup_dirs(id);
        assert!(
            left.is_empty(),
            "cgroups of container {id} left behind {context}: {left:?}"
        );
    }

    /// Entries of the `--root` directory (empty if it does not exist).
    pub fn root_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.root)
            .map(|rd| {
                rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Host processes whose root or cwd is one of this runtime's bundles or rootfs.
    pub fn processes_in_bundles(&self) -> Vec<i32> {
        let dirs: Vec<PathBuf> = self
            .bundles
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| [b.clone(), b.join("rootfs")])
            .collect();
        host::pids_rooted_in(&dirs)
    }

    /// Cleanup; returns the problems found (leftovers), if any.
    fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let ids = std::mem::take(self.ids.get_mut().unwrap());
        for id in ids.iter().rev() {
            // A failing delete is expected (already deleted, never created); a hanging one is not.
            if let Err(e) =
                self.cmd_timeout(&["delete", "--force", id], Duration::from_secs(20), |_| {})
            {
                problems.push(e);
            }
        }
        // No cgroup named after one of the test's containers may outlive it.
        for id in &ids {
            let gone = host::wait_until(Duration::from_secs(2), || {
                host::cgroup_dirs_named(id).is_empty()
            });
            if gone {
                continue;
            }
            for dir in host::cgroup_dirs_named(id) {
                let removed = match host::remove_cgroup_dir(&dir) {
                    Ok(()) => "removed by the harness".to_owned(),
                    Err(e) => format!("could not remove it: {e}"),
                };
                problems.push(format!(
                    "cgroup of container {id} left behind: {} ({removed})",
                    dir.display()
                ));
            }
        }
        for p in std::mem::take(self.processes.get_mut().unwrap()) {
            p.kill();
        }
        for mut child in std::mem::take(self.children.get_mut().unwrap()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let gone = host::wait_until(Duration::from_secs(5), || {
            self.processes_in_bundles().is_empty()
        });
        if !gone {
            let pids = self.processes_in_bundles();
            problems.push(format!(
                "processes still running from the bundles: {pids:?}"
            ));
            for pid in pids {
                if let Some(p) = ProcessRef::capture(pid) {
                    p.kill();
                }
            }
        }
        if let Err(e) = host::remove_scratch_dir(&self.scratch) {
            problems.push(e);
        }
        problems
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let problems = self.cleanup();
        if problems.is_empty() {
            return;
        }
        let report = format!(
            "cleanup of test {} found leftovers:\n{}",
            self.name,
            problems.join("\n")
        );
        if std::thread::panicking() {
            eprintln!("{report}");
        } else {
            panic!("{report}");
        }
    }
}
