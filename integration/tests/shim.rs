//! hull-shim (`containerd-shim-hull-v2`, runtime `io.containerd.hull.v2`)
//! driven by a real containerd 1.6 through `ctr run --runtime`, as a user
//! switching containerd to hull's own shim would. Each test runs its own
//! containerd in a private mount namespace (integration/scripts/
//! shim-client.sh) and checks afterwards that nothing is left: no shim
//! process, no mount, no socket, no cgroup named after its containers.
//!
//! Needs the shim built: `cargo build -p hull -p hull-shim` (target/debug),
//! or `HULL_SHIM_BIN`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hull_integration::host::{
    cgroup_dirs_named, mounts_mentioning, remove_cgroup_dir, remove_scratch_dir, scratch_dir,
    wait_until, ProcessRef,
};
use hull_integration::{require_root, runtime_bin, workspace_dir};

const NAMESPACE: &str = "hull-shim-it";

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `$HULL_SHIM_BIN`, else the debug build beside the runtime's.
fn shim_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("HULL_SHIM_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| workspace_dir().join(t))
        .unwrap_or_else(|| workspace_dir().join("target"));
    target.join("debug/containerd-shim-hull-v2")
}

struct Run {
    stdout: String,
    report: String,
    /// Problems found while cleaning up (each also fixed).
    leftovers: Vec<String>,
}

impl Run {
    fn value(&self, key: &str) -> Option<&str> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }

    fn assert_clean(&self) {
        assert!(
            self.leftovers.is_empty(),
            "left behind: {:?}\n{}",
            self.leftovers,
            self.report
        );
        for key in ["remaining-tasks", "remaining-sockets", "remaining-mounts"] {
            assert_eq!(self.value(key), Some("0"), "{key}\n{}", self.report);
        }
    }

    fn has_event(&self, topic: &str) -> bool {
        self.stdout
            .lines()
            .any(|l| l == format!("event: {NAMESPACE} {topic}"))
    }
}

/// Runs one scenario of shim-client.sh; None when the test is skipped.
fn scenario(name: &str) -> Option<Run> {
    if !require_root() {
        return None;
    }
    if !have("containerd") || !have("ctr") || !have("script") {
        assert!(
            std::env::var_os("CI").is_none(),
            "containerd, ctr and script(1) must be installed in CI: see hack/deps.sh"
        );
        eprintln!("SKIP: containerd, ctr or script(1) not installed");
        return None;
    }
    let shim = shim_bin();
    assert!(
        shim.is_file(),
        "{} missing: build it with `cargo build -p hull-shim`",
        shim.display()
    );
    static N: AtomicUsize = AtomicUsize::new(0);
    let tag = format!(
        "{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let ids: Vec<String> = ["fg", "bg", "tty", "log", "dead"]
        .iter()
        .map(|n| format!("{n}-{tag}"))
        .collect();
    let scratch = scratch_dir(&format!("shim-{name}"));
    // containerd finds the shim, and the shim finds `hull`, on the PATH.
    let bindir = scratch.join("bin");
    std::fs::create_dir(&bindir).expect("mkdir bin");
    std::os::unix::fs::symlink(&shim, bindir.join("containerd-shim-hull-v2")).expect("link shim");
    std::os::unix::fs::symlink(runtime_bin(), bindir.join("hull")).expect("link hull");
    let ctd = scratch.join("ctd");
    let template = hull_integration::bundle::template();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(workspace_dir().join("integration/scripts/shim-client.sh"))
        .arg(&bindir)
        .arg(template.join("rootfs"))
        .arg(&ctd)
        .arg(NAMESPACE)
        .arg(&tag)
        .arg(name)
        .output()
        .expect("running unshare");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(ctd.join("containerd.log")).unwrap_or_default();
    let mut leftovers = cleanup(&ctd, &ids, &stdout);
    if let Err(e) = remove_scratch_dir(&scratch) {
        leftovers.push(e);
    }
    let report = format!(
        "status: {}\nstdout:\n{stdout}\nstderr:\n{stderr}\ncontainerd log tail:\n{}",
        out.status,
        tail(&log, 25)
    );
    assert!(out.status.success(), "{report}");
    Some(Run {
        stdout,
        report,
        leftovers,
    })
}

/// Checks (and removes) what a scenario may have left: shim processes,
/// cgroups named after its containers, mounts on the host.
fn cleanup(ctd: &Path, ids: &[String], stdout: &str) -> Vec<String> {
    let mut found = Vec::new();
    let address = ctd.join("containerd.sock").to_string_lossy().into_owned();
    // Shims this run started: the pids it printed, and any process whose
    // command line names this run's containerd.
    let mut shims: Vec<i32> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("shim-pid=")?.parse().ok())
        .collect();
    shims.extend(processes_mentioning(&address));
    for pid in shims {
        let Some(p) = ProcessRef::capture(pid) else {
            continue;
        };
        if !wait_until(Duration::from_secs(5), || !p.is_alive()) {
            found.push(format!("shim process {pid} still running"));
            p.kill();
        }
    }
    for id in ids {
        for dir in cgroup_dirs_named(id) {
            found.push(format!("cgroup {}", dir.display()));
            if let Err(e) = remove_cgroup_dir(&dir) {
                found.push(e);
            }
        }
    }
    // The namespace's parent cgroups: removed when empty (another run may
    // still use them).
    for dir in cgroup_dirs_named(NAMESPACE) {
        let _ = std::fs::remove_dir(&dir);
    }
    for m in mounts_mentioning(ctd) {
        found.push(format!("host mount {m}"));
    }
    found
}

fn processes_mentioning(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn shim_foreground_run_prints_output_and_returns_exit_status() {
    let Some(run) = scenario("foreground") else {
        return;
    };
    let r = &run.report;
    assert!(run.stdout.contains("hello-from-hull-shim"), "{r}");
    // Its own pid namespace: the program is pid 1 there.
    assert!(run.stdout.lines().any(|l| l == "pid=1"), "{r}");
    assert_eq!(run.value("fg-status"), Some("3"), "{r}");
    for topic in [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
    ] {
        assert!(run.has_event(topic), "no {topic} event\n{r}");
    }
    run.assert_clean();
}

#[test]
fn shim_detached_task_ls_ps_exec_pause_resume_metrics_kill_delete() {
    let Some(run) = scenario("detached") else {
        return;
    };
    let r = &run.report;
    let out = &run.stdout;
    assert!(
        out.lines()
            .any(|l| l.starts_with("bg-") && l.contains("RUNNING")),
        "{r}"
    );
    assert!(
        out.contains("exec-ran") && run.value("exec-status") == Some("5"),
        "{r}"
    );
    // `ctr task ps` names the exec process it knows by its exec id.
    assert_eq!(run.value("ps-with-exec-lines"), Some("1"), "{r}");
    assert_eq!(run.value("paused-status"), Some("PAUSED"), "{r}");
    assert_eq!(run.value("resumed-status"), Some("RUNNING"), "{r}");
    // Metrics decoded by ctr (cgroup v1 on this host: hybrid).
    for metric in ["pids.current", "memory.usage_in_bytes", "cpuacct.usage"] {
        assert!(
            out.lines().any(|l| l.starts_with(metric)),
            "no {metric}\n{r}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("bg-") && l.contains("STOPPED")),
        "{r}"
    );
    // `ctr task delete` reports the status of the killed task.
    assert!(
        out.contains("delete-output: ") && out.contains("exit code 137"),
        "{r}"
    );
    for topic in [
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ] {
        assert!(run.has_event(topic), "no {topic} event\n{r}");
    }
    let rss: u64 = run
        .value("shim-rss-kb")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    eprintln!(
        "idle shim {}: VmRSS {rss} kB, {} threads",
        shim_bin().display(),
        run.value("shim-threads").unwrap_or("?")
    );
    run.assert_clean();
}

#[test]
fn shim_tty_run_gets_a_terminal() {
    let Some(run) = scenario("tty") else { return };
    let r = &run.report;
    // script(1) may echo control characters before the output.
    assert!(run.stdout.lines().any(|l| l.contains("/dev/pts/")), "{r}");
    assert!(run.stdout.contains("tty-ok"), "{r}");
    run.assert_clean();
}

#[test]
fn shim_log_uri_file_appends_stdout_and_stderr() {
    let Some(run) = scenario("log-uri") else {
        return;
    };
    let r = &run.report;
    assert!(run.stdout.contains("log-file: to-stdout"), "{r}");
    assert!(run.stdout.contains("log-file: to-stderr"), "{r}");
    run.assert_clean();
}

#[test]
fn shim_killed_under_a_running_container_is_cleaned_up_by_delete() {
    let Some(run) = scenario("dead-shim") else {
        return;
    };
    let r = &run.report;
    assert_eq!(run.value("tasks-after-kill"), Some("0"), "{r}");
    // The container's process went with it (hull delete --force).
    let pid: i32 = run
        .value("container-pid")
        .and_then(|v| v.parse().ok())
        .expect("container pid");
    assert!(
        wait_until(Duration::from_secs(5), || {
            !hull_integration::host::pid_alive(pid)
        }),
        "container process {pid} survived its shim's cleanup\n{r}"
    );
    run.assert_clean();
}
