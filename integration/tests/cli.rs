//! Commands around the lifecycle: `features`, `spec`, `ps`, `kill --all`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use hull_integration::host::{pid_alive, wait_until};
use hull_integration::runtime::STATUS_TIMEOUT;
use hull_integration::{is_hull, Runtime, Value};

/// Unprivileged uid/gid for commands that must not run as root.
const NOBODY: u32 = 65534;

/// Strings of the JSON array at `pointer`.
#[track_caller]
fn strings<'a>(v: &'a Value, pointer: &str) -> Vec<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{pointer} is not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("array of strings"))
        .collect()
}

/// "1.2.3" (optionally with a "-suffix") as numbers, for ordering.
#[track_caller]
fn version(v: &Value) -> Vec<u64> {
    let text = v
        .as_str()
        .unwrap_or_else(|| panic!("version is not a string: {v}"));
    let core = text.split('-').next().unwrap();
    let parts: Vec<u64> = core
        .split('.')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("bad version {text:?}")))
        .collect();
    assert_eq!(parts.len(), 3, "bad version {text:?}");
    parts
}

#[test]
fn features_document() {
    let Some(rt) = Runtime::new("cli-features") else {
        return;
    };
    let out = rt.cmd(&["features"]);
    let f: Value = serde_json::from_str(&out.ok().stdout)
        .unwrap_or_else(|e| panic!("features is not JSON ({e}):\n{out}"));

    assert!(
        version(&f["ociVersionMin"]) <= version(&f["ociVersionMax"]),
        "{f}"
    );
    let mut hooks = strings(&f, "/hooks");
    hooks.sort();
    assert_eq!(
        hooks,
        [
            "createContainer",
            "createRuntime",
            "poststart",
            "poststop",
            "prestart",
            "startContainer"
        ]
    );
    let namespaces = strings(&f, "/linux/namespaces");
    let mut expected = vec!["cgroup", "ipc", "mount", "network", "pid", "user", "uts"];
    if is_hull() {
        expected.push("time"); // not in runc 1.1
    }
    for ns in expected {
        assert!(
            namespaces.contains(&ns),
            "namespace {ns} missing: {namespaces:?}"
        );
    }
    let options = strings(&f, "/mountOptions");
    for opt in ["rro", "rbind", "ro", "nosuid"] {
        assert!(
            options.contains(&opt),
            "mount option {opt} missing: {options:?}"
        );
    }
    if is_hull() {
        // runtime-spec 1.2/1.3 features runc 1.1 does not have.
        assert!(
            options.contains(&"tmpcopyup") && options.contains(&"idmap"),
            "{options:?}"
        );
        let linux = &f["linux"];
        assert_eq!(linux["mountExtensions"]["idmap"]["enabled"], true, "{f}");
        assert_eq!(linux["netDevices"]["enabled"], true, "{f}");
        let modes = strings(&f, "/linux/memoryPolicy/modes");
        assert!(modes.contains(&"MPOL_BIND"), "{modes:?}");
    }
}

#[test]
fn spec_rootless_maps_the_callers_ids() {
    let Some(rt) = Runtime::new("cli-spec-rootless") else {
        return;
    };
    let dir = rt.dir("spec");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    // Run as an unprivileged user, so "the caller's uid" is not 0 by accident.
    let out = rt.cmd_with(
        &["spec", "--rootless", "--bundle", dir.to_str().unwrap()],
        |cmd| {
            cmd.uid(NOBODY).gid(NOBODY); // std also drops supplementary groups
        },
    );
    out.ok();
    let text = fs::read_to_string(dir.join("config.json")).expect("config.json written");
    let config: Value = serde_json::from_str(&text).expect("config.json is JSON");

    let namespaces: Vec<&str> = config["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .map(|ns| ns["type"].as_str().unwrap())
        .collect();
    assert!(namespaces.contains(&"user"), "{namespaces:?}");
    assert!(!namespaces.contains(&"network"), "{namespaces:?}");
    for mappings in ["uidMappings", "gidMappings"] {
        let list = config["linux"][mappings]
            .as_array()
            .unwrap_or_else(|| panic!("no linux.{mappings}: {text}"));
        assert!(
            list.iter()
                .any(|m| m["hostID"] == NOBODY && m["containerID"] == 0 && m["size"] == 1),
            "linux.{mappings} does not map container root to {NOBODY}: {list:?}"
        );
    }
}

#[test]
fn spec_does_not_overwrite_config() {
    let Some(rt) = Runtime::new("cli-spec-exists") else {
        return;
    };
    let dir = rt.dir("spec");
    let config = dir.join("config.json");
    fs::write(&config, "{\"mine\": true}\n").unwrap();
    rt.cmd(&["spec", "--bundle", dir.to_str().unwrap()])
        .fails_mentioning("config.json");
    assert_eq!(fs::read_to_string(&config).unwrap(), "{\"mine\": true}\n");
}

/// A running container whose init (`sleep`) has a background child; returns
/// (id, init pid, child pid), host pids.
fn container_with_child(rt: &Runtime) -> (String, i32, i32) {
    let mut bundle = rt.bundle();
    bundle.sh("sleep 600 & exec sleep 600");
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    rt.start(&id).ok();
    let init = rt.pid(&id);
    let children = format!("/proc/{init}/task/{init}/children");
    let mut child = None;
    let found = wait_until(STATUS_TIMEOUT, || {
        child = fs::read_to_string(&children)
            .ok()
            .and_then(|c| c.split_whitespace().next()?.parse().ok());
        child.is_some()
    });
    assert!(found, "the container's init {init} has no child");
    let child = child.unwrap();
    rt.track_pid(child);
    (id, init, child)
}

#[test]
fn ps_lists_the_containers_processes() {
    let Some(rt) = Runtime::new("cli-ps") else {
        return;
    };
    let (id, init, child) = container_with_child(&rt);
    let mut expected = vec![init, child];
    expected.sort();

    let json = rt.cmd(&["ps", "--format", "json", &id]);
    let mut pids: Vec<i32> = serde_json::from_str(&json.ok().stdout)
        .unwrap_or_else(|e| panic!("ps --format json is not a list of pids ({e}):\n{json}"));
    pids.sort();
    assert_eq!(pids, expected, "{json}");

    let table = rt.cmd(&["ps", &id]);
    let lines = table.ok().lines();
    let pid_col = lines[0]
        .split_whitespace()
        .position(|h| h == "PID")
        .unwrap_or_else(|| panic!("no PID column in the header:\n{table}"));
    let mut pids: Vec<i32> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(pid_col).unwrap().parse().unwrap())
        .collect();
    pids.sort();
    assert_eq!(pids, expected, "{table}");
}

#[test]
fn kill_all_signals_every_process() {
    let Some(rt) = Runtime::new("cli-kill-all") else {
        return;
    };
    let (id, init, child) = container_with_child(&rt);

    // SIGTERM without a handler is ignored by a pid namespace's init, but
    // ends any other process: only --all reaches the child.
    rt.cmd(&["kill", "--all", &id, "TERM"]).ok();
    assert!(
        wait_until(STATUS_TIMEOUT, || !pid_alive(child)),
        "kill --all TERM did not reach the background process {child}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(pid_alive(init), "init {init} should have ignored SIGTERM");
    assert_eq!(rt.status(&id), "running");

    rt.cmd(&["kill", "--all", &id, "KILL"]).ok();
    rt.wait_for_status(&id, "stopped");
    assert!(!pid_alive(init), "init {init} survived kill --all KILL");
}
