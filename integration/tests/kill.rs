//! `kill` as runc answers it: clients decide from its exit status and words
//! whether a container has already exited (containerd's shim reads "container
//! not running" as "process already finished"). The end-to-end check through
//! containerd's CRI is in `cri.rs`.

use hull_integration::{host, Runtime};

/// A stopped container: `kill` fails with runc's words, whatever the signal;
/// `kill --all` has nothing left to signal and succeeds.
#[test]
fn kill_of_a_stopped_container() {
    let Some(rt) = Runtime::new("kill-stopped") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["true"]);
    let id = rt.start_until_stopped(&bundle);
    for signal in ["KILL", "TERM", "0"] {
        let out = rt.kill(&id, signal);
        assert_eq!(out.code(), 1, "{out}");
        out.fails_mentioning("container not running");
    }
    for signal in ["KILL", "TERM"] {
        let out = rt.cmd(&["kill", "--all", &id, signal]);
        assert_eq!(out.code(), 0, "kill --all of a stopped container:\n{out}");
    }
    assert_eq!(rt.status(&id), "stopped");
    rt.delete(&id).ok();
}

/// Signal 0 asks "is it alive?": success for a created or running
/// container, nothing sent.
#[test]
fn kill_with_signal_zero_checks_liveness() {
    let Some(rt) = Runtime::new("kill-zero") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]);
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    rt.kill(&id, "0").ok();
    assert_eq!(rt.status(&id), "created");
    rt.start(&id).ok();
    rt.kill(&id, "0").ok();
    rt.cmd(&["kill", "--all", &id, "0"]).ok();
    assert_eq!(rt.status(&id), "running");
}

/// SIGKILL to a paused container kills it: the frozen init acts on the
/// signal only once thawed, so the runtime thaws it (as runc does).
#[test]
fn kill_of_a_paused_container() {
    let Some(rt) = Runtime::new("kill-paused") else {
        return;
    };
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let pid = rt.pid(&id);
    rt.cmd(&["pause", &id]).ok();
    assert_eq!(rt.status(&id), "paused");
    rt.kill(&id, "KILL").ok();
    rt.wait_for_status(&id, "stopped");
    let gone = host::wait_until(hull_integration::runtime::STATUS_TIMEOUT, || {
        !host::pid_alive(pid)
    });
    assert!(
        gone,
        "init {pid} still alive after kill of the paused container"
    );
    rt.delete(&id).ok();
}

/// A created container that is then paused is "paused" (runc's status
/// wins over created), `start` refuses it with runc's words, `resume`
/// brings it back to created.
#[test]
fn paused_before_start() {
    let Some(rt) = Runtime::new("kill-paused-created") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["sleep", "600"]);
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    rt.cmd(&["pause", &id]).ok();
    assert_eq!(rt.status(&id), "paused");
    rt.start(&id)
        .fails_mentioning("cannot start a container in the paused state");
    rt.cmd(&["resume", &id]).ok();
    assert_eq!(rt.status(&id), "created");
    rt.start(&id).ok();
    assert_eq!(rt.status(&id), "running");
}
