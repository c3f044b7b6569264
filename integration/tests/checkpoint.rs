//! `checkpoint` and `restore`: they exist with runc's flags and drive CRIU
//! where it works; where it does not (not installed, or `criu check`
//! failing, as Debian 12's CRIU 3.17 does on newer kernels) they fail with
//! CRIU's reason and leave everything as it was.

use std::process::Command;

use hull_integration::{is_hull, Runtime};

/// Whether `criu check` passes on this host (None: no criu in PATH).
fn criu_works() -> Option<bool> {
    match Command::new("criu").arg("check").output() {
        Ok(out) => Some(out.status.success()),
        Err(_) => None,
    }
}

/// Checkpoint, then restore from the images: the program goes on where it
/// was (its counter keeps counting in a file).
fn round_trip(rt: &Runtime) {
    let mut bundle = rt.bundle();
    bundle
        .writable_root()
        .sh("i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done");
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    rt.start(&id).ok();
    let images = rt.dir("images");
    let images = images.to_str().unwrap();
    rt.cmd(&["checkpoint", "--image-path", images, &id]).ok();
    rt.cmd(&["state", &id]).failed();
    let before: u64 = bundle.read_file("/tmp/count").trim().parse().unwrap();
    let path = bundle.path().to_str().unwrap().to_owned();
    rt.cmd(&[
        "restore",
        "-d",
        "--image-path",
        images,
        "--bundle",
        &path,
        &id,
    ])
    .ok();
    assert_eq!(rt.status(&id), "running");
    let went_on =
        hull_integration::host::wait_until(hull_integration::runtime::STATUS_TIMEOUT, || {
            bundle
                .read_file("/tmp/count")
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                > before
        });
    assert!(went_on, "the restored program does not run");
    rt.delete_force(&id).ok();
}

#[test]
fn checkpoint_and_restore() {
    let Some(rt) = Runtime::new("ckpt") else {
        return;
    };
    if criu_works() == Some(true) {
        return round_trip(&rt);
    }
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let pid = rt.pid(&id);
    let images = rt.dir("images").join("ckpt");
    let images = images.to_str().unwrap();
    let out = rt.cmd(&["checkpoint", "--image-path", images, "--leave-running", &id]);
    assert_eq!(out.code(), 1, "{out}");
    if is_hull() {
        let reason = match criu_works() {
            None => "was not found in PATH",
            _ => "cannot work on this host: `criu check` failed",
        };
        out.fails_mentioning("checkpoint needs CRIU")
            .fails_mentioning(reason);
    }
    // Nothing happened to the container.
    assert_eq!(rt.status(&id), "running");
    assert_eq!(rt.pid(&id), pid);

    let restored = rt.new_id();
    let path = bundle.path().to_str().unwrap().to_owned();
    let before = rt.root_entries();
    let out = rt.cmd(&[
        "restore",
        "-d",
        "--image-path",
        images,
        "--bundle",
        &path,
        &restored,
    ]);
    assert_eq!(out.code(), 1, "{out}");
    if is_hull() {
        out.fails_mentioning("restore needs CRIU");
    }
    assert_eq!(
        rt.root_entries(),
        before,
        "restore left state behind:\n{out}"
    );
    rt.assert_no_cgroups(&restored, "after a failed restore");
}

/// `--criu PATH` names the CRIU binary; a wrong one is said so.
#[test]
fn criu_path_that_does_not_exist() {
    if !is_hull() {
        return hull_integration::skip("runc's words differ");
    }
    let Some(rt) = Runtime::new("ckpt-no-criu") else {
        return;
    };
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    rt.cmd(&["--criu", "/nonexistent/criu", "checkpoint", &id])
        .fails_mentioning("/nonexistent/criu does not exist");
    assert_eq!(rt.status(&id), "running");
    let out = rt.cmd(&["checkpoint", "--help"]);
    for flag in [
        "--image-path",
        "--work-path",
        "--parent-path",
        "--leave-running",
        "--tcp-established",
        "--ext-unix-sk",
        "--shell-job",
        "--lazy-pages",
        "--status-fd",
        "--page-server",
        "--file-locks",
        "--pre-dump",
        "--manage-cgroups-mode",
        "--empty-ns",
        "--auto-dedup",
    ] {
        assert!(out.stdout.contains(flag), "checkpoint lacks {flag}:\n{out}");
    }
    let out = rt.cmd(&["restore", "--help"]);
    for flag in [
        "--console-socket",
        "--image-path",
        "--work-path",
        "--bundle",
        "--detach",
        "--pid-file",
        "--no-subreaper",
        "--no-pivot",
        "--lsm-profile",
        "--lsm-mount-context",
    ] {
        assert!(out.stdout.contains(flag), "restore lacks {flag}:\n{out}");
    }
}
