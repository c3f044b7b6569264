//! Generated specs as the runtime sees them: hull's own config.json parser,
//! validation, mount option parser and seccomp compiler (no root needed);
//! and, as root with a built `hull`, a busybox container actually run.

mod common;

use common::*;
use hull_spec::{generate, EtcFiles, ImageConfig, Network, RootfsFiles, RunOptions};
use oci_spec::runtime::Spec;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The option sets a user relies on, each one a spec to check.
fn option_sets() -> Vec<(&'static str, RunOptions)> {
    let mut sets = vec![("defaults", opts())];
    let mut o = opts();
    o.privileged = true;
    o.host_devices = hull_spec::host_devices(Path::new("/dev")).unwrap();
    sets.push(("privileged", o));
    let mut o = opts();
    o.network = Network::Host;
    o.sysctls.insert("kernel.shmmax".into(), "65536".into());
    sets.push(("host network", o));
    let mut o = opts();
    // Validation opens the path: a namespace that exists.
    o.network = Network::Path("/proc/self/ns/net".into());
    o.cgroupns_private = true;
    sets.push(("netns path", o));
    let mut o = opts();
    o.user = Some("app:video".into());
    o.group_add = strings(&["staff"]);
    o.tty = true;
    o.read_only = true;
    o.cap_add = strings(&["ALL"]);
    o.cap_drop = strings(&["SYS_ADMIN"]);
    o.memory = Some(256 << 20);
    o.memory_swap = Some(-1);
    o.cpus = Some(0.5);
    o.pids_limit = Some(64);
    o.shm_size = Some(128 << 20);
    o.ulimits = vec!["nofile=1024:2048".parse().unwrap()];
    o.volumes = vec!["/srv:/srv:ro".parse().unwrap()];
    o.tmpfs = vec!["/run:size=16m,mode=755".parse().unwrap()];
    o.etc_files = EtcFiles {
        hosts: Some("/tmp/hosts".into()),
        hostname: Some("/tmp/hostname".into()),
        resolv_conf: Some("/tmp/resolv.conf".into()),
    };
    o.annotations.insert("a".into(), "b".into());
    o.sysctls
        .insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
    o.no_new_privileges = true;
    sets.push(("everything", o));
    sets
}

#[test]
fn specs_pass_the_runtimes_parser_and_validation() {
    for (name, o) in option_sets() {
        let spec = generate(&busybox(), &o, &files()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = serde_json::to_string_pretty(&spec).unwrap();
        let parsed = hull_container::spec::parse_spec(text.as_bytes())
            .unwrap_or_else(|e| panic!("{name}: hull's parser: {e}\n{text}"));
        hull_container::spec::validate(&parsed)
            .unwrap_or_else(|e| panic!("{name}: hull's validation: {e}"));
        // Serde round trip: what is written is what is read.
        let back: Spec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, spec, "{name}: round trip");
        let process = parsed.process().as_ref().unwrap();
        hull_container::capabilities::CapabilityPlan::from_process(process)
            .unwrap_or_else(|e| panic!("{name}: capabilities: {e}"));
        for m in parsed.mounts().as_deref().unwrap_or_default() {
            let o = hull_container::mountopts::parse(m.options().as_deref().unwrap_or_default());
            // Anything hull does not know as a flag lands in the data string;
            // only filesystem key=value options (and devpts' newinstance) may.
            for d in o.data.split(',').filter(|d| !d.is_empty()) {
                assert!(
                    d.contains('=') || d == "newinstance",
                    "{name}: mount {:?}: option {d:?} not understood",
                    m.destination()
                );
            }
            if m.typ().as_deref() == Some("bind") {
                assert!(o.is_bind(), "{name}: {:?}", m.destination());
            }
        }
    }
}

#[test]
fn seccomp_profiles_compile_with_hulls_compiler() {
    for (add, drop) in [
        (vec![], vec![]),
        (vec!["ALL"], vec![]),
        (vec![], vec!["ALL"]),
    ] {
        let mut o = opts();
        o.cap_add = strings(&add);
        o.cap_drop = strings(&drop);
        let spec = generate(&busybox(), &o, &files()).unwrap();
        let profile = spec.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        let compiled = hull_seccomp::compile(profile)
            .unwrap_or_else(|e| panic!("add {add:?} drop {drop:?}: {e}"));
        assert!(!compiled.filter.needs_listener);
    }
}

/// A rootfs directory read the way a caller must: regular files only (a
/// symlinked /etc/passwd is not followed) and at most 1 MiB.
struct RootfsDir(PathBuf);

impl RootfsFiles for RootfsDir {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let full = self.0.join(path.trim_start_matches('/'));
        if !std::fs::symlink_metadata(&full).ok()?.is_file() {
            return None;
        }
        let mut out = Vec::new();
        std::fs::File::open(full)
            .ok()?
            .take(1 << 20)
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    }
}

fn hull_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("HULL_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| workspace.join(t))
        .unwrap_or_else(|| workspace.join("target"));
    target.join("debug/hull")
}

/// A busybox rootfs with the applets the test uses and an app user.
fn busybox_rootfs(rootfs: &Path) {
    for dir in ["bin", "etc", "proc", "sys", "dev", "tmp", "srv", "ro"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox (install busybox-static)");
    std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "id", "cat", "grep", "hostname", "touch", "echo", "pwd",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    std::fs::write(rootfs.join("etc/passwd"), PASSWD).unwrap();
    std::fs::write(rootfs.join("etc/group"), GROUP).unwrap();
}

/// Empty cgroups the run leaves above the container's own (which hull
/// removes), on every hierarchy of this host.
fn remove_parent_cgroups(parent: &str, namespace: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    roots.extend(hierarchies.flatten().map(|e| e.path()));
    for root in roots {
        let _ = std::fs::remove_dir(root.join(parent).join(namespace));
        let _ = std::fs::remove_dir(root.join(parent));
    }
}

/// The hull binary when this test can run containers (root), else `None`
/// after saying why the test is skipped.
fn hull_for_root_tests() -> Option<PathBuf> {
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let hull = hull_binary();
    if root && hull.exists() {
        return Some(hull);
    }
    // In CI the suite builds hull first and runs as root: a skip there is
    // a broken suite, not a pass.
    assert!(
        std::env::var_os("CI").is_none(),
        "privileged test skipped in CI: needs root and {}",
        hull.display()
    );
    eprintln!(
        "skipped: needs root and {} (cargo build -p hull, or set HULL_BIN)",
        hull.display()
    );
    None
}

/// What a container printed, and whether its rw volume reached the host.
struct RunResult {
    success: bool,
    stdout: String,
    stderr: String,
    volume_written: bool,
}

/// Generates config.json for a busybox bundle in a scratch directory, runs
/// it with `hull run`, and removes everything afterwards. `-v` entries may
/// name the scratch directory's `data` as `$DATA`.
fn run_in_hull(
    hull: &Path,
    image: &ImageConfig,
    mut opts: RunOptions,
    volumes: &[&str],
) -> RunResult {
    let scratch = std::env::temp_dir().join(format!("{}-{}", opts.id, std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let bundle = scratch.join("bundle");
    let rootfs = bundle.join("rootfs");
    busybox_rootfs(&rootfs);
    let data = scratch.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    for v in volumes {
        let v = v.replace("$DATA", &data.display().to_string());
        opts.volumes.push(v.parse().unwrap());
    }
    let resolv = scratch.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.53\n").unwrap();
    opts.etc_files.resolv_conf = Some(resolv);
    let spec = generate(image, &opts, &RootfsDir(rootfs.clone())).unwrap();
    let config = serde_json::to_string_pretty(&spec).unwrap();
    std::fs::write(bundle.join("config.json"), config).unwrap();

    let state = scratch.join("state");
    let hull_cmd = |args: &[&str]| {
        Command::new(hull)
            .arg("--root")
            .arg(&state)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = hull_cmd(&["run", "--bundle", &bundle.to_string_lossy(), &opts.id]);
    let _ = hull_cmd(&["delete", "--force", &opts.id]);
    remove_parent_cgroups(&opts.cgroup_parent, &opts.namespace);
    let volume_written = data.join("written").exists();
    let _ = std::fs::remove_dir_all(&scratch);
    RunResult {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        volume_written,
    }
}

fn assert_printed(r: &RunResult, expected: &[&str]) {
    assert!(r.success, "hull run failed:\n{}\n{}", r.stdout, r.stderr);
    for e in expected {
        assert!(
            r.stdout.contains(e),
            "missing {e:?} in:\n{}\n{}",
            r.stdout,
            r.stderr
        );
    }
}

#[test]
fn runs_in_hull_as_root() {
    let Some(hull) = hull_for_root_tests() else {
        return;
    };
    let image = ImageConfig {
        entrypoint: strings(&["/bin/sh", "-c"]),
        env: strings(&["FROM_IMAGE=1"]),
        user: "app".into(),
        ..Default::default()
    };
    let script = "id; hostname; echo \"FOO=$FOO FROM_IMAGE=$FROM_IMAGE\"; pwd; \
                  touch /srv/written && echo data-rw; \
                  touch /ro/x 2>/dev/null || echo volume-ro; \
                  touch /x 2>/dev/null || echo rootfs-ro; \
                  touch /scratch/x && echo tmpfs-rw; \
                  cat /etc/resolv.conf; \
                  grep -q ' /proc/keys ' /proc/mounts && echo keys-masked; \
                  grep -E '^(Seccomp|CapBnd|NoNewPrivs):' /proc/self/status";
    let opts = RunOptions {
        id: "hull-spec-run".into(),
        namespace: "default".into(),
        cgroup_parent: "hull-spec-test".into(),
        hostname: Some("spec-test".into()),
        args: vec![script.to_string()],
        env: strings(&["FOO=bar"]),
        workdir: Some("/tmp".into()),
        read_only: true,
        cap_drop: strings(&["ALL"]),
        cap_add: strings(&["KILL"]),
        memory: Some(64 << 20),
        pids_limit: Some(50),
        cpus: Some(0.5),
        tmpfs: vec!["/scratch:mode=1777".parse().unwrap()],
        ..Default::default()
    };
    let r = run_in_hull(&hull, &image, opts, &["$DATA:/srv", "$DATA:/ro:ro"]);
    assert_printed(
        &r,
        &[
            // The kernel lists groups sorted; the primary one is among them.
            "uid=1000(app) gid=1000(app) groups=",
            "44(video)",
            "50(staff)",
            ",1000(app)",
            "spec-test",
            "FOO=bar FROM_IMAGE=1",
            "/tmp",
            "data-rw",
            "volume-ro",
            "rootfs-ro",
            "tmpfs-rw",
            "nameserver 127.0.0.53",
            "keys-masked",
            "Seccomp:\t2",
            "CapBnd:\t0000000000000020",
            "NoNewPrivs:\t0",
        ],
    );
    assert!(r.volume_written, "the rw volume's write reached the host");
}

#[test]
fn privileged_runs_in_hull_as_root() {
    let Some(hull) = hull_for_root_tests() else {
        return;
    };
    let script = "grep -E '^(Seccomp|CapEff):' /proc/self/status; \
                  grep ' /sys sysfs ' /proc/mounts; \
                  test -c /dev/null && echo has-null; \
                  grep -q ' /proc/keys ' /proc/mounts || echo keys-unmasked";
    let opts = RunOptions {
        id: "hull-spec-privileged".into(),
        namespace: "default".into(),
        cgroup_parent: "hull-spec-test".into(),
        entrypoint: Some(strings(&["/bin/sh", "-c"])),
        args: vec![script.to_string()],
        privileged: true,
        host_devices: hull_spec::host_devices(Path::new("/dev")).unwrap(),
        host_capabilities: Some(hull_spec::current_capabilities().unwrap()),
        ..Default::default()
    };
    let r = run_in_hull(&hull, &busybox(), opts, &[]);
    assert_printed(&r, &["Seccomp:\t0", "sysfs rw,", "has-null"]);
    // Every capability this test (the "manager") holds, no more.
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = ours.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert!(r.stdout.contains(cap_eff), "{cap_eff} in:\n{}", r.stdout);
    assert!(
        r.stdout.contains("keys-unmasked"),
        "no masked paths:\n{}",
        r.stdout
    );
}
