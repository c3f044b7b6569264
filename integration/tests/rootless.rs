//! Rootless: hull run by an unprivileged user (created by the test) on a
//! bundle from `hull spec --rootless`, its own id mapped to root in a user
//! namespace, state under $XDG_RUNTIME_DIR/hull, no cgroups (none can be
//! made and the config asks for no limits), and `exec` into the container
//! (which joins its pid namespace from inside the user namespace).

use hull_integration::host::{cgroup_dirs_named, wait_until, ScratchDir};
use hull_integration::{bundle, require_root, runtime_bin};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A system user for the test, removed (with its processes' end) on drop.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    /// A system user (no subordinate ids), or a regular one, which useradd
    /// gives ranges in /etc/subuid and /etc/subgid (userdel removes them).
    fn create(label: &str, system: bool) -> TestUser {
        let name = format!("hull{label}{}", std::process::id());
        let mut cmd = Command::new("useradd");
        if system {
            cmd.arg("--system");
        }
        let out = cmd
            .args(["--no-create-home", "--user-group", "--shell", "/bin/sh"])
            .arg(&name)
            .output()
            .expect("useradd (package passwd)");
        assert!(out.status.success(), "useradd: {out:?}");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        TestUser { name, uid, gid }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

struct Rootless<'a> {
    user: &'a TestUser,
    bundle: PathBuf,
    xdg: PathBuf,
}

impl Rootless<'_> {
    /// `hull ARGS` as the test user, in the bundle, with its XDG dir.
    fn hull(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(runtime_bin());
        cmd.args(args)
            .current_dir(&self.bundle)
            .env("XDG_RUNTIME_DIR", &self.xdg)
            .uid(self.user.uid)
            .gid(self.user.gid)
            .stdin(Stdio::null());
        cmd
    }

    /// `hull create ID`: the container keeps the stdio it is given, so it
    /// gets none (a pipe would stay open as long as the container runs).
    fn create(&self, id: &str) {
        let status = self
            .command(&["create", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "hull create {id} as {}", self.user.name);
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.hull(args);
        assert!(
            out.status.success(),
            "hull {args:?} as {}: {out:?}",
            self.user.name
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn set_args(&self, args: &[&str]) {
        let path = self.bundle.join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["process"]["args"] = serde_json::json!(args);
        std::fs::write(&path, config.to_string()).unwrap();
    }
}

/// The template's rootfs and a `hull spec --rootless` config mapping the
/// user's own id to root, all owned by the user.
fn rootless_bundle(dir: &Path, user: &TestUser) -> PathBuf {
    let b = dir.join("bundle");
    std::fs::create_dir_all(&b).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(bundle::template().join("rootfs"))
        .arg(&b)
        .status()
        .unwrap();
    assert!(copied.success());
    let spec = Command::new(runtime_bin())
        .args(["spec", "--rootless"])
        .current_dir(&b)
        .output()
        .unwrap();
    assert!(spec.status.success(), "{spec:?}");
    let path = b.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["process"]["terminal"] = serde_json::json!(false);
    config["linux"]["uidMappings"] =
        serde_json::json!([{ "containerID": 0, "hostID": user.uid, "size": 1 }]);
    config["linux"]["gidMappings"] =
        serde_json::json!([{ "containerID": 0, "hostID": user.gid, "size": 1 }]);
    std::fs::write(&path, config.to_string()).unwrap();
    let owned = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(dir)
        .status()
        .unwrap();
    assert!(owned.success());
    b
}

/// A scratch dir the test user can reach (ScratchDir makes it root's only).
fn user_scratch(name: &str) -> ScratchDir {
    let scratch = ScratchDir::new(name);
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&*scratch, mode).unwrap();
    scratch
}

#[test]
fn an_unprivileged_user_runs_and_execs_into_a_container() {
    if !require_root() {
        return;
    }
    let scratch = user_scratch("rootless");
    let user = TestUser::create("rl", true);
    let bundle = rootless_bundle(&scratch, &user);
    let xdg = scratch.join("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    let _ = Command::new("chown")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(&xdg)
        .status();
    let rl = Rootless {
        user: &user,
        bundle,
        xdg: xdg.clone(),
    };

    // Foreground: root in its own user namespace, mapped to the user.
    rl.set_args(&["sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let id = format!("rl-{}", std::process::id());
    let out = rl.ok(&["run", &id]);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["0", "0", &user.uid.to_string(), "1"], "{out}");
    assert!(
        cgroup_dirs_named(&id).is_empty(),
        "no cgroups in rootless mode"
    );

    // Detached: state under $XDG_RUNTIME_DIR/hull, exec, kill, delete.
    rl.set_args(&["sh", "-c", "exec sleep 300"]);
    rl.create(&id);
    // Unprivileged, hull cannot mount the read-only overlay view of its
    // binary: the waiting init runs from the sealed memfd copy instead.
    let state: serde_json::Value = serde_json::from_str(&rl.ok(&["state", &id])).unwrap();
    let exe = std::fs::read_link(format!("/proc/{}/exe", state["pid"])).unwrap();
    assert!(exe.to_string_lossy().starts_with("/memfd:hull"), "{exe:?}");
    rl.ok(&["start", &id]);
    assert!(xdg.join("hull").join(&id).is_dir());
    assert!(rl.ok(&["list", "-q"]).lines().any(|l| l == id));
    let exec = rl.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo pid-ns-of-$(cat /proc/1/comm); id -u",
    ]);
    assert_eq!(exec, "pid-ns-of-sleep\n0\n");
    let state: serde_json::Value = serde_json::from_str(&rl.ok(&["state", &id])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    rl.ok(&["kill", &id, "KILL"]);
    assert!(wait_until(Duration::from_secs(5), || {
        rl.ok(&["state", &id]).contains("\"stopped\"")
    }));
    rl.ok(&["delete", &id]);
    assert!(!xdg.join("hull").join(&id).exists());
    assert!(
        !hull_integration::host::pid_alive(pid as i32),
        "the container's init is gone"
    );

    // A limit needs a cgroup the user cannot make: refused, saying why.
    let path = rl.bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["linux"]["resources"] = serde_json::json!({ "pids": { "limit": 10 } });
    std::fs::write(&path, config.to_string()).unwrap();
    let limited = rl.hull(&["run", &format!("{id}-limited")]);
    let err = String::from_utf8_lossy(&limited.stderr);
    assert!(
        !limited.status.success() && err.contains("cgroup"),
        "{limited:?}"
    );
    assert!(cgroup_dirs_named(&format!("{id}-limited")).is_empty());
}

/// The first subordinate id of `name` in /etc/subuid or /etc/subgid.
fn subordinate_start(file: &str, name: &str) -> u32 {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| f[1].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no range for {name} in {file}"))
}

/// More than the user's own id mapped (root to the user, 1-65536 to its
/// range in /etc/subuid and /etc/subgid), through newuidmap/newgidmap: the
/// container's root can give files to other ids.
#[test]
fn a_rootless_container_maps_a_range_through_newuidmap() {
    if !require_root() {
        return;
    }
    let scratch = user_scratch("rootless-range");
    let user = TestUser::create("sub", false);
    let bundle = rootless_bundle(&scratch, &user);
    let (subuid, subgid) = (
        subordinate_start("/etc/subuid", &user.name),
        subordinate_start("/etc/subgid", &user.name),
    );
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["linux"]["uidMappings"] = serde_json::json!([
        { "containerID": 0, "hostID": user.uid, "size": 1 },
        { "containerID": 1, "hostID": subuid, "size": 65536 }
    ]);
    config["linux"]["gidMappings"] = serde_json::json!([
        { "containerID": 0, "hostID": user.gid, "size": 1 },
        { "containerID": 1, "hostID": subgid, "size": 65536 }
    ]);
    for set in ["bounding", "effective", "permitted"] {
        config["process"]["capabilities"][set] = serde_json::json!(["CAP_CHOWN"]);
    }
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs" }));
    std::fs::write(&path, config.to_string()).unwrap();
    let xdg = scratch.join("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    for p in [&path, &xdg] {
        let _ = Command::new("chown")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(p)
            .status();
    }
    let rl = Rootless {
        user: &user,
        bundle,
        xdg,
    };
    rl.set_args(&[
        "sh",
        "-c",
        "wc -l < /proc/self/uid_map; touch /tmp/f && chown 1000:2000 /tmp/f && stat -c %u:%g /tmp/f",
    ]);
    let out = rl.ok(&["run", &format!("rlr-{}", std::process::id())]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["2", "1000:2000"],
        "{out}"
    );
}
