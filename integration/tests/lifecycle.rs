//! Container lifecycle: create, start, state, kill, delete, list, run.

use std::fs;

use hull_integration::host::pid_alive;
use hull_integration::{json, Runtime};

/// A process that exits cleanly on SIGTERM. (The init of a pid namespace only
/// receives signals it has a handler for, SIGKILL aside.)
const TERMINABLE: &str = "trap 'exit 0' TERM; while true; do sleep 0.1; done";

#[test]
fn create_start_state() {
    let Some(rt) = Runtime::new("lc-state") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]);
    let id = rt.new_id();

    rt.create(&bundle, &id, &[]).ok();
    let state = rt.state(&id);
    assert_eq!(state["status"], "created", "{state}");
    assert_eq!(state["id"], id.as_str());
    assert!(state["pid"].as_i64().unwrap() > 0, "{state}");
    assert_eq!(state["bundle"], bundle.path().to_str().unwrap());
    assert!(state["ociVersion"].is_string(), "{state}");
    // A created container's process exists but has not run the user program.
    assert!(pid_alive(rt.pid(&id)));

    rt.start(&id).ok();
    assert_eq!(rt.status(&id), "running");
}

/// Kills a running container with `signal` and checks it ends up stopped and deletable.
fn kill_stops_container(name: &str, signal: &str) {
    let Some(rt) = Runtime::new(name) else { return };
    let mut bundle = rt.bundle();
    bundle.sh(TERMINABLE);
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    rt.start(&id).ok();
    let pid = rt.pid(&id);

    rt.kill(&id, signal).ok();
    rt.wait_for_status(&id, "stopped");
    rt.delete(&id).ok();
    assert!(!pid_alive(pid), "container process {pid} survived");
    rt.cmd(&["state", &id]).failed();
}

#[test]
fn kill_by_name_kill() {
    kill_stops_container("lc-kill-name", "KILL");
}

#[test]
fn kill_by_name_sigterm() {
    kill_stops_container("lc-kill-sigterm", "SIGTERM");
}

#[test]
fn kill_by_number() {
    kill_stops_container("lc-kill-number", "9");
}

#[test]
fn list_table_json_and_quiet() {
    let Some(rt) = Runtime::new("lc-list") else {
        return;
    };
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let pid = rt.pid(&id).to_string();

    let table = rt.cmd(&["list"]);
    table.ok();
    let lines = table.lines();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{table}"
    );
    let row: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with(&id))
        .expect("row for container")
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..4],
        [
            id.as_str(),
            pid.as_str(),
            "running",
            bundle.path().to_str().unwrap()
        ],
        "{table}"
    );

    let listed = rt.cmd(&["list", "--format", "json"]);
    listed.ok();
    let entries: serde_json::Value =
        serde_json::from_str(&listed.stdout).expect("list --format json is JSON");
    let entry = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id.as_str())
        .expect("entry for container");
    assert_eq!(entry["status"], "running");
    assert_eq!(entry["pid"].to_string(), pid);

    let quiet = rt.cmd(&["list", "-q"]);
    assert_eq!(quiet.ok().lines(), [id.as_str()]);
}

#[test]
fn list_of_empty_root_is_header_only() {
    let Some(rt) = Runtime::new("lc-list-empty") else {
        return;
    };
    let out = rt.cmd(&["list"]);
    let lines = out.ok().lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with("ID"), "{out}");
}

#[test]
fn run_returns_exit_code() {
    let Some(rt) = Runtime::new("lc-run-code") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.sh("echo out; echo err >&2; exit 3");
    let id = rt.new_id();
    let out = rt.run(&bundle, &id, &[]);
    assert_eq!(out.code(), 3, "{out}");
    assert_eq!(out.out(), "out");
    assert!(out.stderr.contains("err"), "{out}");
    // A foreground run deletes the container when it exits.
    assert!(
        rt.root_entries().is_empty(),
        "left in root: {:?}",
        rt.root_entries()
    );
}

#[test]
fn run_detached() {
    let Some(rt) = Runtime::new("lc-run-detach") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]);
    let id = rt.new_id();
    let pid_file = rt.dir("pid").join("pid");
    rt.run(
        &bundle,
        &id,
        &["-d", "--pid-file", pid_file.to_str().unwrap()],
    )
    .ok();
    assert_eq!(rt.status(&id), "running");
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().trim(),
        rt.pid(&id).to_string()
    );
}

#[test]
fn pid_file_matches_state() {
    let Some(rt) = Runtime::new("lc-pid-file") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]);
    let id = rt.new_id();
    let pid_file = rt.dir("pid").join("container.pid");
    rt.create(&bundle, &id, &["--pid-file", pid_file.to_str().unwrap()])
        .ok();
    let content = fs::read_to_string(&pid_file).expect("pid file written");
    assert_eq!(content.trim(), rt.pid(&id).to_string());
}

#[test]
fn delete_running_without_force_fails() {
    let Some(rt) = Runtime::new("lc-delete-running") else {
        return;
    };
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let pid = rt.pid(&id);

    rt.delete(&id).failed();
    assert_eq!(rt.status(&id), "running");
    assert!(pid_alive(pid));
}

#[test]
fn delete_force_running() {
    let Some(rt) = Runtime::new("lc-delete-force") else {
        return;
    };
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let pid = rt.pid(&id);

    rt.delete_force(&id).ok();
    assert!(
        !pid_alive(pid),
        "container process {pid} survived delete --force"
    );
    assert!(!rt.root().join(&id).exists(), "state dir left behind");
    rt.cmd(&["state", &id]).failed();
}

#[test]
fn delete_created() {
    let Some(rt) = Runtime::new("lc-delete-created") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]);
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    let pid = rt.pid(&id);

    rt.delete(&id).ok();
    assert!(!pid_alive(pid), "init process {pid} survived delete");
    assert!(!rt.root().join(&id).exists(), "state dir left behind");
}

#[test]
fn delete_stopped() {
    let Some(rt) = Runtime::new("lc-delete-stopped") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["true"]);
    let id = rt.start_until_stopped(&bundle);
    rt.delete(&id).ok();
    assert!(
        rt.root_entries().is_empty(),
        "left in root: {:?}",
        rt.root_entries()
    );
}

#[test]
fn annotations_in_state() {
    let Some(rt) = Runtime::new("lc-annotations") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.set(
        "/annotations",
        json!({ "org.hull.test": "yes", "com.example.key": "value" }),
    );
    bundle.args(&["sleep", "600"]);
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    let state = rt.state(&id);
    assert_eq!(state["annotations"]["org.hull.test"], "yes", "{state}");
    assert_eq!(state["annotations"]["com.example.key"], "value", "{state}");
}

/// A foreground `run` forwards the signals it receives to the container's
/// process and exits with that process's status.
#[test]
fn run_forwards_signals_and_returns_status() {
    let Some(rt) = Runtime::new("life-signal") else {
        return;
    };
    let mut bundle = rt.bundle();
    // pid 1 of a pid namespace ignores signals it has no handler for: trap TERM.
    bundle.sh("trap 'exit 42' TERM; echo ready > /dev/shm/ready; while true; do sleep 0.1; done");
    bundle.save();
    let id = rt.new_id();
    let mut child = std::process::Command::new(hull_integration::runtime_bin())
        .arg("--root")
        .arg(rt.root())
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn run");
    rt.track_pid(child.id() as i32);
    let running = hull_integration::host::wait_until(std::time::Duration::from_secs(20), || {
        rt.cmd(&["state", id.as_str()])
            .out()
            .contains("\"running\"")
    });
    assert!(running, "container did not reach running");
    // The trap is installed before the marker appears: wait for it inside.
    let ready = hull_integration::host::wait_until(std::time::Duration::from_secs(20), || {
        rt.exec(&id, &[], &["cat", "/dev/shm/ready"]).out() == "ready"
    });
    assert!(ready, "container never got ready");
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait for run");
    assert_eq!(
        status.code(),
        Some(42),
        "run did not return the container's status"
    );
    assert!(
        rt.root_entries().is_empty(),
        "foreground run left state behind"
    );
}

/// Concurrent `start`s of one created container (a retrying client, two
/// controllers): exactly one starts it, every other one fails with runc's
/// words for a container that is no longer created, never with a socket
/// error.
#[test]
fn concurrent_starts_one_wins() {
    let Some(rt) = Runtime::new("lc-start-race") else {
        return;
    };
    if !hull_integration::is_hull() {
        return hull_integration::skip("runc 1.1's losing starts wait on the exec fifo forever");
    }
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]);
    for _ in 0..3 {
        let id = rt.new_id();
        rt.create(&bundle, &id, &[]).ok();
        let outs: Vec<_> = std::thread::scope(|s| {
            let starts: Vec<_> = (0..8).map(|_| s.spawn(|| rt.start(&id))).collect();
            starts.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let winners = outs.iter().filter(|o| o.success()).count();
        assert_eq!(winners, 1, "{} starts succeeded:\n{outs:#?}", winners);
        for out in outs.iter().filter(|o| !o.success()) {
            out.fails_mentioning("cannot start an already running container");
        }
        assert_eq!(rt.status(&id), "running");
    }
}

/// `state` and `delete` see the init's exit as soon as its program ends, not
/// when the kernel has finished tearing the process down, which can take a
/// while: a pid namespace's init, for one, finishes exiting only once every
/// other process of its namespace is reaped. Here an exec'd process's parent
/// (a `hull exec` the test keeps stopped) cannot reap it, which holds the
/// init in that state for as long as the test wants.
#[test]
fn stopped_as_soon_as_init_exits() {
    let Some(rt) = Runtime::new("lc-exit-seen") else {
        return;
    };
    if !hull_integration::is_hull() {
        return hull_integration::skip("runc 1.1 reports an init that is still exiting as running");
    }
    let mut bundle = rt.bundle();
    bundle.args(&["true"]);
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    let init = rt.pid(&id);
    let mut exec = std::process::Command::new(hull_integration::runtime_bin())
        .arg("--root")
        .arg(rt.root())
        .args(["exec", &id, "sleep", "600"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn exec");
    let exec_pid = exec.id() as i32;
    rt.track_pid(exec_pid);
    let exec_running =
        hull_integration::host::wait_until(std::time::Duration::from_secs(10), || {
            let ps = rt.cmd(&["ps", "--format", "json", &id]);
            serde_json::from_str::<Vec<i32>>(ps.out()).is_ok_and(|pids| pids.len() == 2)
        });
    assert!(exec_running, "the exec'd process did not start");
    // SAFETY: signals to the child this test spawned.
    unsafe { libc::kill(exec_pid, libc::SIGSTOP) };

    rt.start(&id).ok();
    let stopped = hull_integration::host::wait_until(std::time::Duration::from_secs(2), || {
        rt.status(&id) == "stopped"
    });
    let exiting = fs::read_to_string(format!("/proc/{init}/stat")).is_ok();
    assert!(
        stopped,
        "`true` has ended but the container is still {}",
        rt.status(&id)
    );
    assert!(
        exiting,
        "the init finished exiting: the test did not hold it up"
    );
    rt.delete(&id).ok();
    assert!(!rt.root().join(&id).exists(), "state left after delete");
    rt.assert_no_cgroups(&id, "by delete");

    // SAFETY: as above.
    unsafe { libc::kill(exec_pid, libc::SIGCONT) };
    exec.wait().expect("reap exec");
    let gone =
        hull_integration::host::wait_until(std::time::Duration::from_secs(5), || !pid_alive(init));
    assert!(gone, "the init {init} did not finish exiting");
}
