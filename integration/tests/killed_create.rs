//! A `create` killed with SIGKILL at any point (the caller's timeout, the OOM
//! killer, a crashed shim) leaves nothing that `delete --force` cannot find:
//! no cgroup in any hierarchy, no waiting init, no hook, no state.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hull_integration::host::{self, wait_until};
use hull_integration::{is_hull, json, runtime_bin, skip, Bundle, Runtime};

/// `create --bundle B ID` in the background, for the test to kill.
fn spawn_create(rt: &Runtime, bundle: &Bundle, id: &str) -> Child {
    Command::new(runtime_bin())
        .arg("--root")
        .arg(rt.root())
        .args(["create", "--bundle"])
        .arg(bundle.path())
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn create")
}

fn sigkill(child: &mut Child) {
    // SAFETY: plain syscall on our own child, which is not reaped yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().expect("reap create");
}

/// `delete --force ID` succeeds and removes everything of the container.
#[track_caller]
fn assert_delete_force_cleans_up(rt: &Runtime, id: &str, what: &str) {
    rt.delete_force(id).ok();
    rt.assert_no_cgroups(id, &format!("by delete --force after {what}"));
    let gone = wait_until(Duration::from_secs(2), || {
        rt.processes_in_bundles().is_empty()
    });
    assert!(
        gone,
        "processes left after {what} and delete --force: {:?}",
        rt.processes_in_bundles()
    );
    assert!(
        !rt.root().join(id).exists(),
        "state of {id} left after {what} and delete --force"
    );
    rt.cmd(&["state", id]).failed();
}

#[test]
fn sigkill_at_any_point_of_create() {
    let Some(rt) = Runtime::new("killed-create") else {
        return;
    };
    if !is_hull() {
        return skip("runc 1.1 leaves cgroups and processes of a killed create");
    }
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]);
    bundle.save();
    // Joining a namespace by path with a new pid namespace makes the init a
    // grandchild of create (after an intermediate fork): kill that too.
    let mut joining = rt.bundle();
    let own_net = format!("/proc/{}/ns/net", std::process::id());
    joining
        .args(&["sleep", "600"])
        .namespace("network", Some(&own_net));
    joining.save();
    // A debug build's create takes tens of milliseconds: spread the kills
    // over all of it, and past it (the create has finished: a normal delete).
    for i in 0..20u64 {
        let id = rt.new_id();
        let bundle = if i % 2 == 0 { &bundle } else { &joining };
        let mut create = spawn_create(&rt, bundle, &id);
        std::thread::sleep(Duration::from_micros(i * i * 300));
        sigkill(&mut create);
        assert_delete_force_cleans_up(
            &rt,
            &id,
            &format!("SIGKILL of create after {}us", i * i * 300),
        );
    }
}

/// A createRuntime hook that hangs: create is killed while it waits for the
/// hook. The hook (and what it started) must die with create, and the
/// half-created container shows as stopped until `delete --force`.
#[test]
fn sigkill_while_a_create_hook_hangs() {
    let Some(rt) = Runtime::new("killed-create-hook") else {
        return;
    };
    if !is_hull() {
        return skip("runc 1.1 orphans the hooks of a killed create");
    }
    let marker_dir = rt.dir("hook");
    for (round, pause_ms) in [0u64, 20, 200].into_iter().enumerate() {
        let marker = marker_dir.join(format!("started-{round}"));
        let mut bundle = rt.bundle();
        // The shell waits for sleep: the hook has a process of its own.
        let script = format!("touch {}; sleep 600; exit 0", marker.display());
        bundle.args(&["sleep", "600"]).push(
            "/hooks/createRuntime",
            json!({ "path": "/bin/sh", "args": ["sh", "-c", script] }),
        );
        bundle.save();
        let id = rt.new_id();
        let mut create = spawn_create(&rt, &bundle, &id);
        let hook_started = wait_until(Duration::from_secs(10), || Path::new(&marker).exists());
        assert!(hook_started, "the createRuntime hook never ran");
        assert_eq!(rt.status(&id), "creating", "while the hook runs");
        std::thread::sleep(Duration::from_millis(pause_ms));
        sigkill(&mut create);

        let all_gone = wait_until(Duration::from_secs(2), || {
            rt.processes_in_bundles().is_empty()
        });
        assert!(
            all_gone,
            "hook or init still running after create was killed: {:?}",
            rt.processes_in_bundles()
        );
        let state = rt.state(&id);
        assert_eq!(state["status"], "stopped", "{state}");
        let listed = rt.cmd(&["list", "--format", "json"]);
        let listed: serde_json::Value = serde_json::from_str(&listed.ok().stdout).unwrap();
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == id.as_str()),
            "list does not show the half-created container: {listed}"
        );
        assert_delete_force_cleans_up(&rt, &id, "SIGKILL of create during its hook");
    }
}

/// `delete --force` of a container whose create hangs in a hook stops that
/// create (and with it the hook and the init) and removes everything.
#[test]
fn delete_force_while_create_hangs_in_a_hook() {
    let Some(rt) = Runtime::new("killed-create-delete") else {
        return;
    };
    if !is_hull() {
        return skip("runc 1.1 has no state for a container still being created");
    }
    let marker = rt.dir("hook").join("started");
    let mut bundle = rt.bundle();
    let script = format!("touch {}; sleep 600; exit 0", marker.display());
    bundle.args(&["sleep", "600"]).push(
        "/hooks/createRuntime",
        json!({ "path": "/bin/sh", "args": ["sh", "-c", script] }),
    );
    bundle.save();
    let id = rt.new_id();
    let mut create = spawn_create(&rt, &bundle, &id);
    assert!(wait_until(Duration::from_secs(10), || marker.exists()));

    rt.delete(&id).fails_mentioning("creating");
    assert_delete_force_cleans_up(&rt, &id, "delete --force during create");
    let status = create.wait().expect("reap create");
    assert!(
        !status.success(),
        "create succeeded although its container was deleted"
    );
}

/// A create killed half-way leaves its (empty) cgroup behind until `delete`.
/// Another container may be created into it meanwhile; deleting the
/// half-created one must then neither kill that container nor remove its
/// cgroup.
#[test]
fn leftover_cgroup_taken_over_is_not_killed_by_delete() {
    let Some(rt) = Runtime::new("killed-create-shared") else {
        return;
    };
    if !is_hull() {
        return skip("runc 1.1 has no state for a container still being created");
    }
    let (killed_id, next_id) = (rt.new_id(), rt.new_id());
    let marker = rt.dir("hook").join("started");
    let mut killed = rt.bundle();
    let script = format!("touch {}; sleep 600; exit 0", marker.display());
    killed
        .args(&["sleep", "600"])
        .set("/linux/cgroupsPath", next_id.as_str())
        .push(
            "/hooks/createRuntime",
            json!({ "path": "/bin/sh", "args": ["sh", "-c", script] }),
        );
    killed.save();
    let mut create = spawn_create(&rt, &killed, &killed_id);
    assert!(wait_until(Duration::from_secs(10), || marker.exists()));
    sigkill(&mut create);
    let emptied = wait_until(Duration::from_secs(5), || {
        let dirs = rt.cgroup_dirs(&next_id);
        !dirs.is_empty() && dirs.iter().all(|d| host::cgroup_procs(d).is_empty())
    });
    assert!(emptied, "the killed create's init is still in its cgroup");

    let mut next = rt.bundle();
    next.args(&["sleep", "600"])
        .set("/linux/cgroupsPath", next_id.as_str());
    rt.create(&next, &next_id, &[]).ok();
    rt.start(&next_id).ok();
    let pid = rt.pid(&next_id);

    rt.delete_force(&killed_id).ok();
    assert!(
        host::pid_alive(pid),
        "delete of the half-created container killed the other one"
    );
    assert_eq!(rt.status(&next_id), "running");
    assert!(
        !rt.cgroup_dirs(&next_id).is_empty(),
        "the running container's cgroup was removed"
    );
    rt.delete_force(&next_id).ok();
    rt.assert_no_cgroups(&next_id, "by delete --force");
}
