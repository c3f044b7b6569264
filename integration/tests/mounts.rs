//! Mounts, masked/readonly paths, devices, and mount-destination confinement.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use hull_integration::host::mounts_mentioning;
use hull_integration::{json, Bundle, Runtime};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// A mount a test makes on the host, below its own scratch directory. Dropping
/// it detaches the mount and everything below it; declare it after the
/// [`Runtime`] so this happens before the runtime's cleanup checks for leftovers.
struct HostMount(PathBuf);

impl HostMount {
    /// A small tmpfs at `path` (which must exist).
    fn tmpfs(path: &Path) -> HostMount {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", path.display()));
        HostMount(path.to_owned())
    }

    /// `path` bind-mounted onto itself and made shared, as every directory is
    /// on a host where systemd made / shared.
    fn shared_bind(path: &Path) -> HostMount {
        mount(
            Some(path),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap_or_else(|e| panic!("bind-mount {} onto itself: {e}", path.display()));
        let guard = HostMount(path.to_owned());
        mount(
            None::<&str>,
            path,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap_or_else(|e| panic!("make {} shared: {e}", path.display()));
        guard
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        // Also removes whatever a runtime left stacked on or below the mount.
        while !mounts_mentioning(&self.0).is_empty() {
            if let Err(e) = umount2(&self.0, MntFlags::MNT_DETACH) {
                eprintln!("cannot unmount {}: {e}", self.0.display());
                break;
            }
        }
    }
}

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

#[test]
fn no_pivot() {
    let Some(rt) = Runtime::new("mnt-no-pivot") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.sh("awk '$5 == \"/\" { print $4 }' /proc/self/mountinfo; cat /etc/passwd | head -1");
    let out = rt.run(&bundle, &rt.new_id(), &["--no-pivot"]);
    // One root mount, and it is the bundle's rootfs.
    assert_eq!(
        out.ok().lines(),
        [
            bundle.rootfs().to_str().unwrap(),
            "root:x:0:0:root:/root:/bin/sh"
        ],
        "{out}"
    );
}

/// The per-mount fields of a mountinfo line (before " - ").
fn per_mount_fields(line: &str) -> Vec<&str> {
    line.split(" - ")
        .next()
        .unwrap()
        .split_whitespace()
        .collect()
}

#[test]
fn rootfs_propagation_private_on_shared_host() {
    let Some(rt) = Runtime::new("mnt-propagation") else {
        return;
    };
    let mut bundle = rt.bundle();
    let _shared = HostMount::shared_bind(bundle.path());
    bundle
        .set("/linux/rootfsPropagation", "private")
        .sh("awk '$5 == \"/\"' /proc/self/mountinfo");
    let out = rt.run(&bundle, &rt.new_id(), &[]);
    // Nothing the runtime mounted for the container appeared on the host.
    let leaked = mounts_mentioning(&bundle.rootfs());
    assert!(
        leaked.is_empty(),
        "container mounts on the host: {leaked:#?}\n{out}"
    );
    let lines = out.ok().lines();
    assert_eq!(lines.len(), 1, "expected one mount at /:\n{out}");
    // Private: neither "shared:N" (it would propagate to the host) nor
    // "master:N" (the default rslave, receiving the host's mounts).
    let tags = &per_mount_fields(lines[0])[6..];
    assert!(tags.is_empty(), "the container's / is not private: {out}");
}

#[test]
fn rootfs_propagation_modes() {
    let Some(rt) = Runtime::new("mnt-propagation-modes") else {
        return;
    };
    let failed: Vec<String> = [
        "private", "rprivate", "slave", "rslave", "shared", "rshared",
    ]
    .into_iter()
    .filter_map(|mode| {
        let mut bundle = rt.bundle();
        bundle.set("/linux/rootfsPropagation", mode).sh("echo up");
        let out = rt.run(&bundle, &rt.new_id(), &[]);
        (out.out() != "up").then(|| format!("rootfsPropagation {mode}:\n{out}"))
    })
    .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn recursive_readonly_bind() {
    let Some(rt) = Runtime::new("mnt-rro") else {
        return;
    };
    let volume = rt.dir("volume");
    fs::create_dir(volume.join("sub")).unwrap();
    let _sub = HostMount::tmpfs(&volume.join("sub"));
    fs::write(volume.join("sub/marker"), "on the sub-mount\n").unwrap();

    let mut bundle = rt.bundle();
    bundle.mount("/vol", "bind", volume.to_str().unwrap(), &["rbind", "rro"]);
    bundle.sh(&format!(
        "cat /vol/sub/marker; {}; {}",
        probe_write("/vol/top"),
        probe_write("/vol/sub/inner")
    ));
    assert_eq!(
        rt.run_ok(&bundle).lines(),
        [
            "on the sub-mount",
            "/vol/top readonly",
            "/vol/sub/inner readonly"
        ]
    );
}

#[test]
fn cgroup_mount_shows_own_cgroups_read_only() {
    let Some(rt) = Runtime::new("mnt-cgroup") else {
        return;
    };
    let mut bundle = rt.bundle();
    let has_cgroup_mount = bundle.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["destination"] == "/sys/fs/cgroup" && m["type"] == "cgroup");
    assert!(has_cgroup_mount, "the default spec mounts /sys/fs/cgroup");
    // Read-only checks only: never write to a cgroup filesystem.
    bundle.sh(
        "awk '$5 == \"/sys/fs/cgroup/memory\"' /proc/self/mountinfo; \
         grep '^[0-9]*:memory:' /proc/self/cgroup",
    );
    let out = rt.run_ok(&bundle);
    let lines = out.lines();
    assert_eq!(
        lines.len(),
        2,
        "no memory hierarchy at /sys/fs/cgroup/memory:\n{out}"
    );
    let (per_mount, per_sb) = lines[0].split_once(" - ").unwrap();
    let fields: Vec<&str> = per_mount.split_whitespace().collect();
    assert_eq!(per_sb.split_whitespace().next(), Some("cgroup"), "{out}");
    assert!(
        fields[5].split(',').any(|o| o == "ro"),
        "not read-only: {out}"
    );
    // The mount shows the container's own cgroup, not the hierarchy's root.
    let own = lines[1].splitn(3, ':').nth(2).unwrap();
    assert_eq!(fields[3], own, "{out}");
}

#[test]
fn default_masked_proc_acpi() {
    let Some(rt) = Runtime::new("mnt-masked-acpi") else {
        return;
    };
    if !Path::new("/proc/acpi").is_dir() {
        return hull_integration::skip("the host has no /proc/acpi");
    }
    let mut bundle = rt.bundle();
    let masked = bundle.config["linux"]["maskedPaths"].clone();
    assert!(
        masked.as_array().unwrap().iter().any(|p| p == "/proc/acpi"),
        "the default spec masks /proc/acpi: {masked}"
    );
    bundle.sh(&format!(
        "awk '$5 == \"/proc/acpi\" {{ print $6 }}' /proc/self/mountinfo | cut -d, -f1; ls -A /proc/acpi | wc -l; {}",
        probe_write("/proc/acpi/x")
    ));
    assert_eq!(
        rt.run_ok(&bundle).lines(),
        ["ro", "0", "/proc/acpi/x readonly"]
    );
}

/// A config without a mount namespace: the rootfs's mounts are made in the
/// runtime's mount namespace, the program is chrooted into the rootfs (and
/// so is an exec'd process), and `delete` removes every mount made for it
/// (runc 1.1 leaves them all mounted). The runtime runs inside
/// `unshare --mount --propagation private`, so the "host" namespace here is
/// a private copy that dies with the script: nothing can reach the real one.
#[test]
fn no_mount_namespace() {
    let Some(rt) = Runtime::new("mnt-no-mountns") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle
        .remove_namespace("mount")
        .remove("/linux/maskedPaths")
        .remove("/linux/readonlyPaths")
        .args(&["sleep", "600"]);
    bundle.write_file("hull-marker", "in-the-rootfs\n");
    bundle.save();
    let id = rt.new_id();
    let rootfs = bundle.rootfs();
    // The same with a createRuntime hook that fails after the mounts.
    let mut failing = rt.bundle();
    failing.config = bundle.config.clone();
    failing.push("/hooks/createRuntime", json!({ "path": "/bin/false" }));
    failing.save();
    let failing_id = rt.new_id();
    let script = r#"
        hull() { "$HULL" --root "$ROOT" "$@"; }
        mounts() { grep -c " $ROOTFS[/ ]" /proc/self/mountinfo; }
        # Whatever happens, nothing stays behind in this namespace.
        trap 'hull delete --force "$ID" 2>/dev/null' EXIT
        echo "before=$(mounts)"
        hull create --bundle "$BUNDLE" "$ID" || exit 1
        hull start "$ID" || exit 1
        echo "running=$(mounts)"
        echo "init-root=$(readlink /proc/$(hull state "$ID" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')/root)"
        echo "exec=$(hull exec "$ID" cat /hull-marker)"
        hull delete --force "$ID" || exit 1
        echo "after=$(mounts)"
        hull create --bundle "$FAILING" "$FAILING_ID" 2>/dev/null && exit 1
        echo "after-failed-create=$(grep -c " $FAILING_ROOTFS[/ ]" /proc/self/mountinfo)"
    "#;
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("HULL", hull_integration::runtime_bin())
        .env("ROOT", rt.root())
        .env("BUNDLE", bundle.path())
        .env("ROOTFS", &rootfs)
        .env("ID", &id)
        .env("FAILING", failing.path())
        .env("FAILING_ROOTFS", failing.rootfs())
        .env("FAILING_ID", &failing_id)
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{report}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"before=0"), "{report}");
    let running: usize = lines
        .iter()
        .find_map(|l| l.strip_prefix("running="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        running >= 3,
        "the container's mounts (proc, dev, ...) below its rootfs:\n{report}"
    );
    assert!(
        lines.contains(&format!("init-root={}", rootfs.display()).as_str()),
        "the init's root is its rootfs:\n{report}"
    );
    if hull_integration::is_hull() {
        // runc 1.1 leaves the exec'd process in the host's root...
        assert!(lines.contains(&"exec=in-the-rootfs"), "{report}");
        // ... and every mount of the container on the host.
        assert!(
            lines.contains(&"after=0"),
            "mounts left by delete:\n{report}"
        );
        assert!(
            lines.contains(&"after-failed-create=0"),
            "mounts left by a failed create:\n{report}"
        );
    }
    // Nothing reached the test's own mount namespace.
    assert!(
        mounts_mentioning(&rootfs).is_empty(),
        "{:?}",
        mounts_mentioning(&rootfs)
    );
}

/// Without a mount namespace, masked and read-only paths would mask and
/// remount the host's own: refused, with runc's words.
#[test]
fn no_mount_namespace_refuses_masked_paths() {
    let Some(rt) = Runtime::new("mnt-no-mountns-masked") else {
        return;
    };
    for pointer in ["/linux/maskedPaths", "/linux/readonlyPaths"] {
        let mut bundle = rt.bundle();
        bundle
            .remove_namespace("mount")
            .remove("/linux/maskedPaths")
            .remove("/linux/readonlyPaths")
            .set(pointer, json!(["/proc/kcore"]))
            .args(&["true"]);
        rt.create_rejected(&bundle, &rt.new_id())
            .fails_mentioning("unable to restrict sys entries without a private MNT namespace");
    }
}

/// `tmpcopyup` (podman's --tmpfs and --read-only): the tmpfs starts with a
/// copy of the image's directory (files, a symlink, a subdirectory, owners
/// and modes), is writable over a read-only root, and the image itself is
/// untouched.
#[test]
fn tmpcopyup_fills_the_tmpfs_from_the_image() {
    use std::os::unix::fs::PermissionsExt;
    let Some(rt) = Runtime::new("mnt-tmpcopyup") else {
        return;
    };
    let mut bundle = rt.bundle();
    let file = bundle.write_file("/data/conf/app.conf", "from the image\n");
    std::os::unix::fs::chown(&file, Some(1000), Some(1001)).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o604)).unwrap();
    symlink("conf/app.conf", bundle.rootfs().join("data/link")).unwrap();
    bundle.mount(
        "/data",
        "tmpfs",
        "tmpfs",
        &["tmpcopyup", "nosuid", "mode=755", "size=1m"],
    );
    let out = rt
        .run_ok(
            bundle.sh("cat /data/link; stat -c '%u:%g %a' /data/conf/app.conf; \
             echo new > /data/conf/new && cat /data/conf/new; \
             grep ' /data ' /proc/mounts | cut -d' ' -f3"),
        )
        .out()
        .to_owned();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["from the image", "1000:1001 604", "new", "tmpfs"],
        "{out}"
    );
    assert!(!bundle.rootfs().join("data/conf/new").exists());
    // Only for tmpfs: a bind with tmpcopyup is refused, naming the option.
    let mut other = rt.bundle();
    let dir = rt.dir("src");
    other.mount(
        "/mnt",
        "bind",
        &dir.to_string_lossy(),
        &["rbind", "tmpcopyup"],
    );
    other.sh("true");
    rt.run(&other, &rt.new_id(), &[])
        .fails_mentioning("tmpcopyup");
}

/// An idmapped bind mount (mounts[].uidMappings/gidMappings with "idmap"),
/// as the runtime spec defines the mapping (written to the mount's user
/// namespace as "containerID hostID size": an id on disk is a containerID
/// and shows as its hostID): with 0 -> 1000, a host file owned by 5:5
/// shows as 1005:1005, and a file the container's user 1000 creates is
/// root's on the host. The source itself is unchanged.
#[test]
fn idmapped_bind_mount_maps_owners_both_ways() {
    use std::os::unix::fs::MetadataExt;
    let Some(rt) = Runtime::new("mnt-idmap") else {
        return;
    };
    let src = rt.dir("idmapped");
    fs::write(src.join("theirs"), "x").unwrap();
    std::os::unix::fs::chown(src.join("theirs"), Some(5), Some(5)).unwrap();
    let mut bundle = rt.bundle();
    let map = json!([{ "containerID": 0, "hostID": 1000, "size": 10 }]);
    bundle.push(
        "/mounts",
        json!({
            "destination": "/shared", "type": "bind", "source": src.to_string_lossy(),
            "options": ["bind", "idmap"], "uidMappings": map, "gidMappings": map
        }),
    );
    bundle.set("/process/user", json!({ "uid": 1000, "gid": 1000 }));
    let out = rt
        .run_ok(bundle.sh(
            "stat -c '%u:%g' /shared/theirs; stat -c '%u:%g' /shared; echo made > /shared/mine && echo ok",
        ))
        .out()
        .to_owned();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["1005:1005", "1000:1000", "ok"],
        "{out}"
    );
    let mine = fs::metadata(src.join("mine")).unwrap();
    assert_eq!((mine.uid(), mine.gid()), (0, 0));
    let theirs = fs::metadata(src.join("theirs")).unwrap();
    assert_eq!((theirs.uid(), theirs.gid()), (5, 5));
    // "idmap" on a tmpfs is refused, naming it; "idmap" without mappings
    // (and no user namespace to take them from) too.
    let mut bad = rt.bundle();
    bad.mount("/t", "tmpfs", "tmpfs", &["idmap"]).sh("true");
    rt.run(&bad, &rt.new_id(), &[]).fails_mentioning("idmap");
    let mut bad = rt.bundle();
    bad.mount("/s", "bind", &src.to_string_lossy(), &["bind", "idmap"])
        .sh("true");
    rt.run(&bad, &rt.new_id(), &[])
        .fails_mentioning("needs mappings");
}

/// In a container with its own user namespace (0 -> 100000), "idmap"
/// without mappings of its own takes the container's: the host's root-owned
/// files are root's inside (not nobody's, as through a plain bind), and what
/// the container's root creates is root's on the host.
#[test]
fn idmap_in_a_user_namespace_uses_the_containers_mapping() {
    use std::os::unix::fs::MetadataExt;
    let Some(rt) = Runtime::new("mnt-idmap-userns") else {
        return;
    };
    let src = rt.dir("volume");
    fs::write(src.join("roots"), "x").unwrap();
    let mut bundle = rt.bundle();
    let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    // The root filesystem is the host root's: the mount points must exist.
    for dir in ["plain", "mapped"] {
        fs::create_dir_all(bundle.rootfs().join(dir)).unwrap();
    }
    bundle
        .namespace("user", None)
        .set("/linux/uidMappings", map.clone())
        .set("/linux/gidMappings", map)
        .mount("/plain", "bind", &src.to_string_lossy(), &["bind"])
        .mount(
            "/mapped",
            "bind",
            &src.to_string_lossy(),
            &["bind", "idmap"],
        );
    let out = rt
        .run_ok(
            bundle
                .sh("stat -c %u:%g /plain/roots /mapped/roots; echo new > /mapped/made && echo ok"),
        )
        .out()
        .to_owned();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["65534:65534", "0:0", "ok"],
        "{out}"
    );
    let made = fs::metadata(src.join("made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (0, 0));
}
