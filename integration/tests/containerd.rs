//! A real client: containerd 1.6 and its runc shim drive the runtime through
//! `ctr --runc-binary`, as a user switching containerd to hull would.

use hull_integration::{require_root, runtime_bin, workspace_dir};
use std::process::Command;

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn containerd_runs_containers_through_hull() {
    if !require_root() {
        return;
    }
    if !have("containerd") || !have("ctr") {
        assert!(
            std::env::var_os("CI").is_none(),
            "containerd is not installed in CI: add it to hack/deps.sh"
        );
        eprintln!("SKIP: containerd not installed");
        return;
    }
    let scratch = hull_integration::host::scratch_dir("containerd");
    let template = hull_integration::bundle::template();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(workspace_dir().join("integration/scripts/containerd-client.sh"))
        .arg(runtime_bin())
        .arg(template.join("rootfs"))
        .arg(&scratch)
        .output()
        .expect("running unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(scratch.join("containerd.log")).unwrap_or_default();
    let cleanup = hull_integration::host::remove_scratch_dir(&scratch);
    let report = format!(
        "stdout:\n{stdout}\nstderr:\n{stderr}\ncontainerd log tail:\n{}",
        tail(&log, 20)
    );
    assert!(out.status.success(), "{report}");
    assert!(stdout.contains("hello-from-containerd"), "{report}");
    // The container has its own pid namespace: its process is pid 1 there.
    assert!(stdout.lines().any(|l| l == "pid=1"), "{report}");
    assert!(
        stdout.contains("exec-ran") && stdout.contains("exec-status=3"),
        "{report}"
    );
    assert!(stdout.contains("STOPPED"), "{report}");
    let kill_exited = stdout
        .lines()
        .find(|l| l.starts_with("kill-exited:"))
        .unwrap_or_default();
    assert!(
        !kill_exited.contains("unknown error after kill"),
        "kill of an exited task:\n{report}"
    );
    assert!(stdout.contains("== remaining tasks: 0"), "{report}");
    cleanup.expect("scratch dir removed");
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
