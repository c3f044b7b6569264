//! A real CRI client: crictl (cri-tools) against Debian's containerd 1.6
//! with its runc runtime's BinaryName set to the runtime under test. The
//! CRI stops a pod by killing its containers; an exited container's kill
//! must fail with runc's "container not running" for containerd to take it
//! as "already exited" (anything else: "unknown error after kill", and the
//! pod can be neither stopped nor removed).

use std::path::PathBuf;
use std::process::Command;

use hull_integration::host::{self, cgroup_dirs_named, remove_cgroup_dir};
use hull_integration::{require_root, runtime_bin, workspace_dir};

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// ../shared/tools/crictl beside the clone (see its README).
fn crictl() -> PathBuf {
    workspace_dir()
        .parent()
        .expect("workspace has a parent")
        .join("shared/tools/crictl")
}

#[test]
fn cri_pod_with_an_exited_container_is_stopped_and_removed() {
    if !require_root() {
        return;
    }
    if !have("containerd") || !have("ctr") || !crictl().exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "containerd (hack/deps.sh) or {} is missing in CI",
            crictl().display()
        );
        eprintln!("SKIP: containerd or crictl not installed");
        return;
    }
    let layout = hull_integration::manager::images_dir().join("small");
    let scratch = host::scratch_dir("cri");
    // Relative: the pods' cgroups go below this test's own cgroup.
    let cgroup_parent = format!("hull-it-cri-{}", std::process::id());
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--mount-proc",
        ])
        .arg(workspace_dir().join("integration/scripts/cri-client.sh"))
        .arg(runtime_bin())
        .arg(crictl())
        .arg(&scratch)
        .arg(&layout)
        .arg(&cgroup_parent)
        .output()
        .expect("running unshare");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let log = std::fs::read_to_string(scratch.join("containerd.log")).unwrap_or_default();

    // The pods' cgroups must be gone; their parent (made for the relative
    // cgroup_parent, left by runtimes as runc leaves parents) goes now.
    let mut left = Vec::new();
    for dir in cgroup_dirs_named(&cgroup_parent) {
        let subs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        left.extend(subs);
        if let Err(e) = remove_cgroup_dir(&dir) {
            left.push(PathBuf::from(e));
        }
    }
    let cleanup = host::remove_scratch_dir(&scratch);
    let report = format!(
        "stdout:\n{stdout}\nstderr:\n{stderr}\ncontainerd log tail:\n{}",
        tail(&log, 15)
    );
    assert!(out.status.success(), "{report}");
    let lines: Vec<&str> = stdout.lines().collect();
    for want in [
        "state=CONTAINER_EXITED",
        "stopp=ok",
        "rmp=ok",
        "pods-left=0",
        "hull-containers-left=0",
    ] {
        assert!(lines.contains(&want), "no {want:?}:\n{report}");
    }
    assert!(stdout.contains("hello-from-cri"), "{report}");
    assert!(
        left.is_empty(),
        "pod cgroups left behind: {left:?}\n{report}"
    );
    cleanup.expect("scratch dir removed");
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
