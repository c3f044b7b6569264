//! Mounts, masked/readonly paths, devices, and mount-destination confinement.

use std::fs;
use std::os::unix::fs::symlink;

use hull_integration::host::mounts_mentioning;
use hull_integration::{json, Bundle, Runtime};

/// Shell snippet printing "PATH writable" or "PATH readonly" for a path to touch.
fn probe_write(path: &str) -> String {
    format!("if touch {path} 2>/dev/null; then echo {path} writable; else echo {path} readonly; fi")
}

/// The mountinfo line (inside the container) whose mount point is `dest`.
fn mountinfo_line(rt: &Runtime, bundle: &mut Bundle, dest: &str) -> String {
    bundle.sh(&format!("awk '$5 == \"{dest}\"' /proc/self/mountinfo"));
    let out = rt.run_ok(bundle);
    assert_eq!(out.lines().len(), 1, "expected one mount at {dest}:\n{out}");
    out.out().to_owned()
}

#[test]
fn tmpfs_with_options() {
    let Some(rt) = Runtime::new("mnt-tmpfs") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.mount(
        "/scratch",
        "tmpfs",
        "tmpfs",
        &["nosuid", "nodev", "noexec", "size=2m", "mode=1750"],
    );
    let line = mountinfo_line(&rt, &mut bundle, "/scratch");
    let (per_mount, per_sb) = line.split_once(" - ").unwrap();
    let mount_opts: Vec<&str> = per_mount
        .split_whitespace()
        .nth(5)
        .unwrap()
        .split(',')
        .collect();
    for opt in ["rw", "nosuid", "nodev", "noexec"] {
        assert!(mount_opts.contains(&opt), "missing {opt}: {line}");
    }
    let sb: Vec<&str> = per_sb.split_whitespace().collect();
    assert_eq!(sb[0], "tmpfs", "{line}");
    let sb_opts: Vec<&str> = sb[2].split(',').collect();
    assert!(
        sb_opts.contains(&"size=2048k") && sb_opts.contains(&"mode=1750"),
        "{line}"
    );
}

#[test]
fn bind_mount_writes_reach_host() {
    let Some(rt) = Runtime::new("mnt-bind") else {
        return;
    };
    let host_dir = rt.dir("shared");
    fs::write(host_dir.join("from-host"), "hello from host\n").unwrap();
    let mut bundle = rt.bundle();
    bundle.bind(&host_dir, "/shared", false);
    bundle.sh("cat /shared/from-host; echo written inside > /shared/from-container");
    assert_eq!(rt.run_ok(&bundle).out(), "hello from host");
    assert_eq!(
        fs::read_to_string(host_dir.join("from-container")).unwrap(),
        "written inside\n"
    );
}

#[test]
fn readonly_bind_mount() {
    let Some(rt) = Runtime::new("mnt-bind-ro") else {
        return;
    };
    let host_dir = rt.dir("shared");
    fs::write(host_dir.join("file"), "content\n").unwrap();
    let mut bundle = rt.bundle();
    bundle.bind(&host_dir, "/shared", true);
    bundle.sh(&format!("cat /shared/file; {}", probe_write("/shared/new")));
    assert_eq!(
        rt.run_ok(&bundle).lines(),
        ["content", "/shared/new readonly"]
    );
    assert_eq!(fs::read_dir(&host_dir).unwrap().count(), 1);
}

#[test]
fn readonly_root() {
    let Some(rt) = Runtime::new("mnt-ro-root") else {
        return;
    };
    for (readonly, expected) in [(true, "/newfile readonly"), (false, "/newfile writable")] {
        let mut bundle = rt.bundle();
        bundle
            .set("/root/readonly", readonly)
            .sh(&probe_write("/newfile"));
        assert_eq!(
            rt.run_ok(&bundle).out(),
            expected,
            "root.readonly={readonly}"
        );
    }
}

#[test]
fn masked_paths() {
    let Some(rt) = Runtime::new("mnt-masked") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.write_file("secret-dir/key", "top secret\n");
    bundle.write_file("secret-file", "top secret\n");
    for path in ["/secret-dir", "/secret-file", "/proc/kcore"] {
        bundle.push("/linux/maskedPaths", path);
    }
    bundle.sh("ls -A /secret-dir | wc -l; cat /secret-file | wc -c; cat /proc/kcore | wc -c");
    assert_eq!(rt.run_ok(&bundle).lines(), ["0", "0", "0"]);
    // Masking hides, it does not delete.
    assert_eq!(bundle.read_file("secret-dir/key"), "top secret\n");
}

#[test]
fn readonly_paths() {
    let Some(rt) = Runtime::new("mnt-ro-paths") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.write_file("locked/file", "x\n");
    bundle
        .writable_root()
        .push("/linux/readonlyPaths", "/locked");
    bundle.sh(&format!(
        "{}; {}",
        probe_write("/locked/new"),
        probe_write("/free")
    ));
    assert_eq!(
        rt.run_ok(&bundle).lines(),
        ["/locked/new readonly", "/free writable"]
    );
}

#[test]
fn default_devices_and_links() {
    let Some(rt) = Runtime::new("mnt-devices") else {
        return;
    };
    let mut bundle = rt.bundle();
    let nodes = ["null", "zero", "full", "random", "urandom", "tty"];
    let links = ["ptmx", "fd", "stdin", "stdout", "stderr"];
    let script: Vec<String> = nodes
        .iter()
        .map(|n| format!("test -c /dev/{n} && echo {n} ok || echo {n} missing"))
        .chain(
            links
                .iter()
                .map(|l| format!("echo {l} $(readlink /dev/{l})")),
        )
        .chain(["head -c 4 /dev/zero | wc -c".to_owned()])
        .collect();
    bundle.sh(&script.join("; "));
    let out = rt.run_ok(&bundle);
    let expected: Vec<String> = nodes
        .iter()
        .map(|n| format!("{n} ok"))
        .chain(
            [
                "ptmx pts/ptmx",
                "fd /proc/self/fd",
                "stdin /proc/self/fd/0",
                "stdout /proc/self/fd/1",
                "stderr /proc/self/fd/2",
                "4",
            ]
            .map(str::to_owned),
        )
        .collect();
    assert_eq!(out.lines(), expected);
}

#[test]
fn linux_devices_entry() {
    let Some(rt) = Runtime::new("mnt-linux-dev") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.push(
        "/linux/devices",
        json!({ "path": "/dev/hull-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 0 }),
    );
    bundle.sh("stat -c '%F %t %T %a %u %g' /dev/hull-null");
    assert_eq!(
        rt.run_ok(&bundle).out(),
        "character special file 1 3 640 0 0"
    );
}

/// A symlink inside the rootfs that points at a host path must be resolved
/// inside the rootfs when used as a mount destination: the mount (and any
/// directory created for it) stays in the container.
#[test]
fn symlinked_mount_destination_stays_in_rootfs() {
    let Some(rt) = Runtime::new("mnt-symlink") else {
        return;
    };
    let host_target = rt.dir("host-target");
    let escape = host_target.join("sub");
    let escape_str = escape.to_str().unwrap();
    let mut bundle = rt.bundle();
    symlink(&escape, bundle.rootfs().join("evil")).unwrap();
    bundle.mount("/evil", "tmpfs", "tmpfs", &["size=1m"]);
    bundle.sh(&format!("awk '$5 == \"{escape_str}\" {{ print $9 }}' /proc/self/mountinfo; echo inside > /evil/marker"));

    // The tmpfs is mounted at the link target *within* the container.
    assert_eq!(rt.run_ok(&bundle).out(), "tmpfs");
    assert_eq!(
        fs::read_dir(&host_target).unwrap().count(),
        0,
        "the runtime created something on the host"
    );
    assert!(mounts_mentioning(&host_target).is_empty());
}
