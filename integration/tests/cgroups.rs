//! cgroups: the limits of `linux.resources` hold inside the container (OOM
//! kills, fork failures, device denials), land in the host's cgroup files
//! with runc's conversions, and can be changed (`update`), frozen (`pause`)
//! and read back (`events`, `ps`); nothing is left in /sys/fs/cgroup after
//! `delete`, a failed create or a forced delete.
//!
//! The host's files are found from /proc/<pid>/cgroup of a container process,
//! so the checks follow wherever the runtime put the container. Every
//! container uses the default placement (below the test's own cgroup); the
//! harness's Drop guard checks that no cgroup named after a container id is
//! left behind. The file names checked are cgroup v1's (memory, cpu, pids,
//! blkio, cpuset, freezer, devices); on a host without a v1 hierarchy for a
//! controller the checks of that controller are skipped with a message.

use hull_integration::host::{self, cgroup_dir, wait_until, ProcessRef};
use hull_integration::{is_hull, json, runtime_bin, skip, Bundle, Runtime, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// `FILE` of container process `pid`'s cgroup in the hierarchy of
/// `controller`, trimmed; panics if unreadable.
#[track_caller]
fn cg_read(pid: i32, controller: &str, file: &str) -> String {
    let dir = cg_dir(pid, controller);
    let path = dir.join(file);
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_owned()
}

#[track_caller]
fn cg_read_u64(pid: i32, controller: &str, file: &str) -> u64 {
    let text = cg_read(pid, controller, file);
    text.parse()
        .unwrap_or_else(|_| panic!("{controller}/{file} is not a number: {text:?}"))
}

/// The cgroup directory of `pid` for `controller`; panics if there is none.
#[track_caller]
fn cg_dir(pid: i32, controller: &str) -> PathBuf {
    let dir = cgroup_dir(pid, controller)
        .unwrap_or_else(|| panic!("process {pid} has no {controller} cgroup on the host"));
    assert!(
        dir != Path::new(host::CGROUP_ROOT).join(controller),
        "process {pid} is in the root {controller} cgroup {}: the runtime did not move it",
        dir.display()
    );
    dir
}

/// True if the host has a cgroup v1 hierarchy with `controller`; else prints
/// why the checks that need it are skipped.
fn has_v1(controller: &str) -> bool {
    let me = std::process::id() as i32;
    if cgroup_dir(me, controller).is_some() {
        return true;
    }
    skip(&format!("no cgroup v1 {controller} hierarchy on this host"));
    false
}

/// `events --stats ID`, parsed: exactly one JSON line of type "stats".
#[track_caller]
fn stats(rt: &Runtime, id: &str) -> Value {
    let out = rt.cmd(&["events", "--stats", id]);
    out.ok();
    assert_eq!(out.lines().len(), 1, "expected one JSON line:\n{out}");
    let v: Value = serde_json::from_str(out.out())
        .unwrap_or_else(|e| panic!("events --stats is not JSON ({e}):\n{out}"));
    assert_eq!(v["type"], "stats", "{out}");
    assert_eq!(v["id"], id, "{out}");
    v["data"].clone()
}

/// The u64 at a JSON pointer of a stats object (a missing field is 0, as
/// runc omits zero values).
#[track_caller]
fn num(stats: &Value, pointer: &str) -> u64 {
    match stats.pointer(pointer) {
        None => 0,
        Some(v) => v
            .as_u64()
            .unwrap_or_else(|| panic!("stats {pointer} is not a number: {v}")),
    }
}

/// `ps --format json ID`: the container's host pids.
#[track_caller]
fn ps_pids(rt: &Runtime, id: &str) -> Vec<i32> {
    let out = rt.cmd(&["ps", "--format", "json", id]);
    out.ok();
    let pids: Vec<i32> = serde_json::from_str(out.out())
        .unwrap_or_else(|e| panic!("ps --format json is not a JSON array of pids ({e}):\n{out}"));
    pids
}

/// A file inside a running container, read through /proc/<pid>/root.
fn read_inside(pid: i32, path: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/root{path}")).ok()
}

/// `events --interval INTERVAL ID` running in the background, its stdout
/// going to a file; killed and reaped on drop.
struct EventsWatcher {
    child: Child,
    out: PathBuf,
    command: String,
}

impl EventsWatcher {
    fn start(rt: &Runtime, id: &str, interval: &str) -> EventsWatcher {
        let dir = rt.dir("events");
        let out = dir.join("events.out");
        let err = dir.join("events.err");
        let child = Command::new(runtime_bin())
            .arg("--root")
            .arg(rt.root())
            .args(["events", "--interval", interval, id])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn events");
        let command = format!(
            "{} --root {} events --interval {interval} {id}",
            runtime_bin().display(),
            rt.root().display()
        );
        EventsWatcher {
            child,
            out,
            command,
        }
    }

    /// The JSON lines printed so far (a partly written last line is skipped).
    fn events(&self) -> Vec<Value> {
        fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn ooms(&self, id: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e["type"] == "oom" && e["id"] == id)
            .count()
    }

    fn describe(&self) -> String {
        let err = fs::read_to_string(self.out.with_file_name("events.err")).unwrap_or_default();
        format!(
            "$ {}\n--- stdout ---\n{}\n--- stderr ---\n{err}",
            self.command,
            fs::read_to_string(&self.out).unwrap_or_default()
        )
    }
}

impl Drop for EventsWatcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A memory hog for busybox sh: doubles a string until the OOM killer ends it.
const HOG: &str = "x=1234567890; while :; do x=$x$x; done";

#[test]
fn memory_limit_oom_kills_and_is_reported() {
    let Some(rt) = Runtime::new("cg-oom") else {
        return;
    };
    if !has_v1("memory") {
        return;
    }
    let limit = 32 * MIB;
    let mut bundle = rt.bundle();
    // memory+swap equal to the limit: swap cannot absorb the hog.
    bundle
        .set(
            "/linux/resources/memory",
            json!({ "limit": limit, "swap": limit }),
        )
        .writable_root()
        // The hog is a child of the init, so the container outlives it and
        // `events` is still watching when the OOM killer strikes.
        .sh(&format!(
            "sh -c '{HOG}'; echo $? > /tmp/hog-status; sleep 600"
        ));
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    let pid = rt.pid(&id);
    let events = EventsWatcher::start(&rt, &id, "100ms");
    // Let the watcher take its baseline before anything runs.
    assert!(
        wait_until(Duration::from_secs(10), || !events.events().is_empty()),
        "`events --interval` printed nothing for a created container:\n{}",
        events.describe()
    );
    rt.start(&id).ok();

    let status_file = bundle.rootfs().join("tmp/hog-status");
    let hog_status = || {
        fs::read_to_string(&status_file)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    assert!(
        wait_until(Duration::from_secs(20), || !hog_status().is_empty()),
        "the memory hog still runs after 20s: the 32 MiB limit is not enforced"
    );
    assert_eq!(
        hog_status(),
        "137",
        "the hog should die of SIGKILL (exit status 128+9)"
    );
    assert_eq!(rt.status(&id), "running", "only the hog should be killed");

    let oom_control = cg_read(pid, "memory", "memory.oom_control");
    let oom_kills: u64 = oom_control
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no oom_kill in memory.oom_control: {oom_control:?}"));
    assert!(
        oom_kills >= 1,
        "memory.oom_control does not count the kill: {oom_control:?}"
    );

    assert!(
        wait_until(Duration::from_secs(3), || events.ooms(&id) >= 1),
        "`events --interval` printed no {{\"type\":\"oom\"}} line for the OOM kill:\n{}",
        events.describe()
    );

    let s = stats(&rt, &id);
    assert_eq!(num(&s, "/memory/usage/limit"), limit, "{s}");
    assert!(
        num(&s, "/memory/usage/max") + 2 * MIB >= limit,
        "peak usage should have reached the {limit}-byte limit: {}",
        s["memory"]["usage"]
    );
    assert_eq!(
        num(&s, "/memory/usage/failcnt"),
        cg_read_u64(pid, "memory", "memory.failcnt"),
        "stats failcnt differs from memory.failcnt: {}",
        s["memory"]["usage"]
    );
    assert_eq!(
        num(&s, "/memory/swap/failcnt"),
        cg_read_u64(pid, "memory", "memory.memsw.failcnt"),
        "stats swap failcnt differs from memory.memsw.failcnt: {}",
        s["memory"]["swap"]
    );
    rt.delete_force(&id).ok();
    rt.assert_no_cgroups(&id, "after delete --force");
}

#[test]
fn oom_kill_of_init_is_reported_by_events() {
    let Some(rt) = Runtime::new("cg-oom-init") else {
        return;
    };
    if !has_v1("memory") {
        return;
    }
    let limit = 32 * MIB;
    let mut bundle = rt.bundle();
    bundle
        .set(
            "/linux/resources/memory",
            json!({ "limit": limit, "swap": limit }),
        )
        .sh(HOG);
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    // Found while the init waits for start: once it is dead, /proc no longer tells.
    let memory_dir = cg_dir(rt.pid(&id), "memory");
    let events = EventsWatcher::start(&rt, &id, "100ms");
    assert!(
        wait_until(Duration::from_secs(10), || !events.events().is_empty()),
        "`events --interval` printed nothing for a created container:\n{}",
        events.describe()
    );
    rt.start(&id).ok();
    rt.wait_for_status(&id, "stopped");
    let oom_control = fs::read_to_string(memory_dir.join("memory.oom_control")).unwrap_or_default();
    assert!(
        oom_control.contains("oom_kill 1"),
        "the init should have been OOM-killed; memory.oom_control: {oom_control:?}"
    );
    // runc's `events` goes on after the container stopped, hull's ends:
    // either way the OOM kill must have been reported.
    assert!(
        wait_until(Duration::from_secs(5), || events.ooms(&id) >= 1),
        "the OOM killer ended the container's init, but `events --interval` (running \
         all along) printed no {{\"type\":\"oom\"}} line:\n{}",
        events.describe()
    );
    rt.delete(&id).ok();
    rt.assert_no_cgroups(&id, "after delete");
}

#[test]
fn pids_limit_stops_forks() {
    let Some(rt) = Runtime::new("cg-pids") else {
        return;
    };
    if !has_v1("pids") {
        return;
    }
    let mut bundle = rt.bundle();
    bundle
        .set("/linux/resources/pids", json!({ "limit": 10 }))
        .writable_root()
        // busybox sh exits at the first failed fork: the loop runs in a
        // subshell, the init stays.
        .sh(
            "(for i in $(seq 20); do sleep 600 & done) 2>/tmp/fork-errors; \
             echo done > /tmp/spawned; exec sleep 600",
        );
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    let pid = rt.pid(&id);
    rt.start(&id).ok();
    let spawned = bundle.rootfs().join("tmp/spawned");
    assert!(
        wait_until(Duration::from_secs(10), || spawned.exists()),
        "the fork loop did not finish"
    );
    assert_eq!(cg_read(pid, "pids", "pids.max"), "10");
    let current = cg_read_u64(pid, "pids", "pids.current");
    assert!(
        (2..=10).contains(&current),
        "pids.current = {current} with pids.max 10"
    );
    let errors = bundle.read_file("/tmp/fork-errors");
    assert!(
        errors.contains("fork"),
        "20 background sleeps under a limit of 10 should fail to fork; stderr was {errors:?}"
    );
    let pids = ps_pids(&rt, &id);
    assert!(
        pids.len() <= 10 && pids.contains(&pid),
        "ps lists {} processes (limit 10): {pids:?}",
        pids.len()
    );
    let s = stats(&rt, &id);
    assert_eq!(num(&s, "/pids/limit"), 10, "{}", s["pids"]);
    rt.delete_force(&id).ok();
    rt.assert_no_cgroups(&id, "after delete --force");
}

#[test]
fn cpu_cpuset_and_blkio_values_land_in_cgroup_files() {
    let Some(rt) = Runtime::new("cg-cpu") else {
        return;
    };
    if !has_v1("cpu") || !has_v1("cpuset") {
        return;
    }
    let mut bundle = rt.bundle();
    bundle
        .set(
            "/linux/resources/cpu",
            json!({ "shares": 512, "quota": 50000, "period": 100000, "cpus": "0" }),
        )
        .set("/linux/resources/blockIO", json!({ "weight": 500 }));
    let id = rt.start_sleeper(&mut bundle);
    let pid = rt.pid(&id);
    assert_eq!(cg_read(pid, "cpu", "cpu.shares"), "512");
    assert_eq!(cg_read(pid, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cg_read(pid, "cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(cg_read(pid, "cpuset", "cpuset.cpus"), "0");
    // The cpuset limit binds the process itself.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(str::trim);
    assert_eq!(allowed, Some("0"), "the init may still run on other CPUs");

    if has_v1("blkio") {
        let dir = cg_dir(pid, "blkio");
        if dir.join("blkio.weight").exists() {
            assert_eq!(cg_read(pid, "blkio", "blkio.weight"), "500");
        } else if dir.join("blkio.bfq.weight").exists() {
            // "500", or "default 500" followed by per-device lines.
            let text = cg_read(pid, "blkio", "blkio.bfq.weight");
            let weight = text
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().last())
                .unwrap_or_default();
            assert_eq!(weight, "500", "blkio.bfq.weight is {text:?}");
        } else {
            skip("neither blkio.weight nor blkio.bfq.weight exists (no CFQ/BFQ)");
        }
    }
    rt.delete_force(&id).ok();
    rt.assert_no_cgroups(&id, "after delete --force");
}

/// A capability added to the bounding, effective and permitted sets.
fn add_cap(bundle: &mut Bundle, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        bundle.push(&format!("/process/capabilities/{set}"), cap);
    }
}

#[test]
fn devices_cgroup_denies_what_is_not_allowed() {
    let Some(rt) = Runtime::new("cg-devices") else {
        return;
    };
    let mut bundle = rt.bundle();
    // c 7:250 and 7:251 are vcs minors no console uses: opening an allowed
    // one fails with ENXIO, never EPERM, so EPERM can only be the cgroup's.
    bundle
        .set(
            "/linux/devices",
            json!([
                { "path": "/dev/hull-denied", "type": "c", "major": 7, "minor": 250, "fileMode": 438 },
                { "path": "/dev/hull-allowed", "type": "c", "major": 7, "minor": 251, "fileMode": 438 }
            ]),
        )
        .set(
            "/linux/resources/devices",
            json!([
                { "allow": false, "access": "rwm" },
                { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" },
                { "allow": false, "type": "c", "major": 7, "minor": 250, "access": "rwm" },
                { "allow": true, "type": "c", "major": 7, "minor": 251, "access": "rw" }
            ]),
        );
    add_cap(&mut bundle, "CAP_MKNOD");
    bundle.sh(
        "try() { r=$(\"$@\" 2>&1 >/dev/null) && echo \"$*: ok\" || echo \"$*: $r\"; }; \
         try head -c1 /dev/null; \
         try head -c1 /dev/zero; \
         try head -c1 /dev/hull-denied; \
         try sh -c 'echo x > /dev/hull-denied'; \
         try head -c1 /dev/hull-allowed; \
         try mknod /dev/hull-made c 7 250; \
         try head -c1 /dev/hull-made; \
         try mknod /dev/hull-blk b 8 0; \
         try head -c1 /dev/hull-blk",
    );
    let out = rt.run_ok(&bundle);
    let lines = out.lines();
    assert_eq!(lines.len(), 9, "{out}");
    let result = |i: usize| lines[i].split_once(": ").map_or(lines[i], |(_, r)| r);
    assert_eq!(
        result(0),
        "ok",
        "reading /dev/null (allowed by config):\n{out}"
    );
    assert_eq!(
        result(1),
        "ok",
        "reading /dev/zero (runc default allow):\n{out}"
    );
    let denied = [2, 3, 6, 8];
    for i in denied {
        assert!(
            lines[i].contains("Operation not permitted"),
            "line {i} should fail with EPERM from the devices cgroup:\n{out}"
        );
    }
    assert!(
        !lines[4].contains("Operation not permitted"),
        "c 7:251 is allowed by the config; only the driver may refuse it:\n{out}"
    );
    assert_eq!(result(5), "ok", "mknod c (runc default 'c *:* m'):\n{out}");
    assert_eq!(result(7), "ok", "mknod b (runc default 'b *:* m'):\n{out}");
}

/// The counter the pause test's container writes every 50 ms.
fn counter(bundle: &Bundle) -> Option<u64> {
    fs::read_to_string(bundle.rootfs().join("tmp/counter"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[track_caller]
fn wait_counter_advances(bundle: &Bundle, what: &str) {
    let start = counter(bundle);
    assert!(
        wait_until(Duration::from_secs(5), || {
            counter(bundle).is_some_and(|c| Some(c) > start)
        }),
        "counter does not advance {what} (stuck at {start:?})"
    );
}

/// A container whose process writes an increasing counter to /tmp/counter
/// every 50 ms, started and seen counting; returns its id and init pid.
fn start_counter(rt: &Runtime, bundle: &mut Bundle) -> (String, i32) {
    bundle
        .writable_root()
        .sh("i=0; while :; do i=$((i+1)); echo $i > /tmp/counter.new; \
         mv /tmp/counter.new /tmp/counter; usleep 50000; done");
    let id = rt.new_id();
    rt.create(bundle, &id, &[]).ok();
    let pid = rt.pid(&id);
    rt.start(&id).ok();
    wait_counter_advances(bundle, "after start");
    (id, pid)
}

/// Pauses `id` and checks that its counter stands still; returns the value.
#[track_caller]
fn pause_and_check_frozen(rt: &Runtime, bundle: &Bundle, id: &str, pid: i32) -> Option<u64> {
    rt.cmd(&["pause", id]).ok();
    assert_eq!(rt.status(id), "paused");
    if has_v1("freezer") {
        assert_eq!(cg_read(pid, "freezer", "freezer.state"), "FROZEN");
    }
    let frozen = counter(bundle);
    assert!(frozen.is_some(), "no counter value");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        counter(bundle),
        frozen,
        "the counter advanced while the container was paused"
    );
    frozen
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let Some(rt) = Runtime::new("cg-pause") else {
        return;
    };
    let mut bundle = rt.bundle();
    let (id, pid) = start_counter(&rt, &mut bundle);
    pause_and_check_frozen(&rt, &bundle, &id, pid);
    rt.exec(&id, &[], &["true"]).fails_mentioning("paused");
    rt.cmd(&["pause", &id]).failed();

    rt.cmd(&["resume", &id]).ok();
    assert_eq!(rt.status(&id), "running");
    if has_v1("freezer") {
        assert_eq!(cg_read(pid, "freezer", "freezer.state"), "THAWED");
    }
    wait_counter_advances(&bundle, "after resume");
    rt.exec(&id, &[], &["true"]).ok();
    rt.cmd(&["resume", &id]).fails_mentioning("not paused");
    rt.delete_force(&id).ok();
    rt.assert_no_cgroups(&id, "after delete --force");
}

#[test]
fn exec_ignore_paused_runs_once_resumed() {
    let Some(rt) = Runtime::new("cg-ignore-paused") else {
        return;
    };
    let mut bundle = rt.bundle();
    let (id, pid) = start_counter(&rt, &mut bundle);
    let frozen = pause_and_check_frozen(&rt, &bundle, &id, pid);
    // --ignore-paused: the exec is not refused; its process joins the frozen
    // cgroup and runs once the container is resumed (the command may wait
    // for that, or return at once).
    let marker = bundle.rootfs().join("tmp/exec-ran");
    std::thread::scope(|scope| {
        let exec = scope.spawn(|| {
            rt.exec(
                &id,
                &["--ignore-paused", "--detach"],
                &["sh", "-c", "echo yes > /tmp/exec-ran"],
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            counter(&bundle),
            frozen,
            "the counter advanced while the container was paused"
        );
        rt.cmd(&["resume", &id]).ok();
        let out = exec.join().expect("exec thread");
        assert!(
            out.success(),
            "exec --ignore-paused into a paused container was refused:\n{out}"
        );
    });
    assert!(
        wait_until(Duration::from_secs(5), || marker.exists()),
        "the process exec'd with --ignore-paused never ran"
    );
    wait_counter_advances(&bundle, "after resume");
    rt.delete_force(&id).ok();
    rt.assert_no_cgroups(&id, "after delete --force");
}

#[test]
fn update_changes_limits_of_running_container() {
    let Some(rt) = Runtime::new("cg-update") else {
        return;
    };
    if !has_v1("memory") || !has_v1("pids") || !has_v1("cpu") {
        return;
    }
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let pid = rt.pid(&id);

    rt.cmd(&["update", "--memory", "64m", &id]).ok();
    assert_eq!(
        cg_read_u64(pid, "memory", "memory.limit_in_bytes"),
        64 * MIB
    );

    rt.cmd(&["update", "--pids-limit", "5", &id]).ok();
    assert_eq!(cg_read(pid, "pids", "pids.max"), "5");

    rt.cmd(&[
        "update",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        &id,
    ])
    .ok();
    assert_eq!(cg_read(pid, "cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(cg_read(pid, "cpu", "cpu.cfs_period_us"), "100000");

    rt.cmd(&["update", "--cpu-share", "256", &id]).ok();
    assert_eq!(cg_read(pid, "cpu", "cpu.shares"), "256");

    // --resources -: runtime-spec linux.resources JSON on stdin.
    let file = rt.dir("update").join("resources.json");
    fs::write(
        &file,
        json!({ "memory": { "limit": 96 * MIB }, "pids": { "limit": 7 } }).to_string(),
    )
    .unwrap();
    rt.cmd_with(&["update", "--resources", "-", &id], |c| {
        c.stdin(fs::File::open(&file).unwrap());
    })
    .ok();
    assert_eq!(
        cg_read_u64(pid, "memory", "memory.limit_in_bytes"),
        96 * MIB
    );
    assert_eq!(cg_read(pid, "pids", "pids.max"), "7");
    // Settings the JSON leaves out stay as they were.
    assert_eq!(cg_read(pid, "cpu", "cpu.cfs_quota_us"), "20000");

    // Intel RDT is refused, and nothing of the rejected update is applied.
    rt.cmd(&[
        "update",
        "--l3-cache-schema",
        "L3:0=f",
        "--pids-limit",
        "9",
        &id,
    ])
    .fails_mentioning("l3");
    rt.cmd(&["update", "--mem-bw-schema", "MB:0=50", &id])
        .fails_mentioning("mem");
    assert_eq!(cg_read(pid, "pids", "pids.max"), "7");

    let s = stats(&rt, &id);
    assert_eq!(num(&s, "/memory/usage/limit"), 96 * MIB, "{}", s["memory"]);
    assert_eq!(num(&s, "/pids/limit"), 7, "{}", s["pids"]);
    assert_eq!(rt.status(&id), "running");
    rt.delete_force(&id).ok();
    rt.assert_no_cgroups(&id, "after delete --force");
}

#[test]
fn update_moves_memory_and_swap_limits_in_either_direction() {
    let Some(rt) = Runtime::new("cg-update-swap") else {
        return;
    };
    if !has_v1("memory") {
        return;
    }
    let memsw = "memory.memsw.limit_in_bytes";
    let mut bundle = rt.bundle();
    bundle.set(
        "/linux/resources/memory",
        json!({ "limit": 32 * MIB, "swap": 32 * MIB }),
    );
    let id = rt.start_sleeper(&mut bundle);
    let pid = rt.pid(&id);
    if cgroup_dir(pid, "memory").is_some_and(|d| !d.join(memsw).exists()) {
        skip("no swap accounting (memory.memsw.*) on this host");
        rt.delete_force(&id).ok();
        return;
    }
    assert_eq!(cg_read_u64(pid, "memory", memsw), 32 * MIB);
    // Raising the limit above the old memory+swap limit, and lowering both
    // below the old limit, each need the two files written in the right order.
    rt.cmd(&["update", "--memory", "64m", "--memory-swap", "128m", &id])
        .ok();
    assert_eq!(
        cg_read_u64(pid, "memory", "memory.limit_in_bytes"),
        64 * MIB
    );
    assert_eq!(cg_read_u64(pid, "memory", memsw), 128 * MIB);
    rt.cmd(&["update", "--memory", "16m", "--memory-swap", "16m", &id])
        .ok();
    assert_eq!(
        cg_read_u64(pid, "memory", "memory.limit_in_bytes"),
        16 * MIB
    );
    assert_eq!(cg_read_u64(pid, "memory", memsw), 16 * MIB);
    rt.delete_force(&id).ok();
    rt.assert_no_cgroups(&id, "after delete --force");
}

#[test]
fn update_of_stopped_container_fails() {
    let Some(rt) = Runtime::new("cg-update-stopped") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.args(&["true"]);
    let id = rt.start_until_stopped(&bundle);
    let out = rt.cmd(&["update", "--pids-limit", "5", &id]);
    if is_hull() {
        out.fails_mentioning("stopped");
    } else {
        out.failed();
    }
    rt.delete(&id).ok();
    rt.assert_no_cgroups(&id, "after delete");
}

#[test]
fn events_stats_match_cgroup_files() {
    let Some(rt) = Runtime::new("cg-stats") else {
        return;
    };
    if !has_v1("memory") || !has_v1("pids") || !has_v1("cpuacct") {
        return;
    }
    let limit = 64 * MIB;
    let mut bundle = rt.bundle();
    // 8 MiB in tmpfs stay charged to the container while it sleeps.
    bundle
        .set("/linux/resources/memory", json!({ "limit": limit }))
        .set("/linux/resources/pids", json!({ "limit": 20 }))
        .sh(
            "dd if=/dev/zero of=/dev/shm/fill bs=1M count=8 2>/dev/null; \
             touch /dev/shm/ready; exec sleep 600",
        );
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    let pid = rt.pid(&id);
    rt.start(&id).ok();
    assert!(
        wait_until(Duration::from_secs(10), || read_inside(
            pid,
            "/dev/shm/ready"
        )
        .is_some()),
        "the container did not fill /dev/shm"
    );

    let usage_before = cg_read_u64(pid, "memory", "memory.usage_in_bytes");
    let pids_before = cg_read_u64(pid, "pids", "pids.current");
    let s = stats(&rt, &id);
    let usage_after = cg_read_u64(pid, "memory", "memory.usage_in_bytes");
    let pids_after = cg_read_u64(pid, "pids", "pids.current");
    let cpu_after = cg_read_u64(pid, "cpuacct", "cpuacct.usage");

    assert_eq!(
        num(&s, "/memory/usage/limit"),
        cg_read_u64(pid, "memory", "memory.limit_in_bytes"),
        "{}",
        s["memory"]["usage"]
    );
    assert_eq!(num(&s, "/memory/usage/limit"), limit);
    let usage = num(&s, "/memory/usage/usage");
    assert!(
        usage >= 8 * MIB,
        "usage {usage} below the 8 MiB in /dev/shm: {}",
        s["memory"]["usage"]
    );
    let (lo, hi) = (
        usage_before.min(usage_after).saturating_sub(2 * MIB),
        usage_before.max(usage_after) + 2 * MIB,
    );
    assert!(
        (lo..=hi).contains(&usage),
        "stats usage {usage} far from memory.usage_in_bytes ({usage_before}, then {usage_after})"
    );
    assert!(
        num(&s, "/memory/usage/max") >= usage,
        "peak below current usage: {}",
        s["memory"]["usage"]
    );

    assert_eq!(
        pids_before, pids_after,
        "the container's process count changed"
    );
    assert_eq!(num(&s, "/pids/current"), pids_after, "{}", s["pids"]);
    assert_eq!(num(&s, "/pids/limit"), 20, "{}", s["pids"]);

    let cpu = num(&s, "/cpu/usage/total");
    assert!(
        cpu > 0 && cpu <= cpu_after,
        "cpu total {cpu} should be > 0 and <= cpuacct.usage {cpu_after}"
    );
    rt.delete_force(&id).ok();
    rt.assert_no_cgroups(&id, "after delete --force");
}

#[test]
fn delete_of_stopped_container_removes_cgroups() {
    let Some(rt) = Runtime::new("cg-del-stopped") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle
        .set("/linux/resources/pids", json!({ "limit": 10 }))
        .args(&["true"]);
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    assert!(
        !rt.cgroup_dirs(&id).is_empty(),
        "create made no cgroup named after the container"
    );
    rt.start(&id).ok();
    rt.wait_for_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_no_cgroups(&id, "after delete of the stopped container");

    // A foreground run removes them when the process exits.
    let id = rt.new_id();
    rt.run(&bundle, &id, &[]).ok();
    rt.assert_no_cgroups(&id, "after a foreground run");
}

#[test]
fn failed_create_with_invalid_resource_removes_cgroups() {
    let Some(rt) = Runtime::new("cg-create-fail") else {
        return;
    };
    // A CPU the host does not have: the kernel refuses cpuset.cpus.
    let mut bundle = rt.bundle();
    bundle.set("/linux/resources/cpu", json!({ "cpus": "4095" }));
    let id = rt.new_id();
    let out = rt.create_rejected(&bundle, &id);
    assert!(
        out.stderr.contains("cpu"),
        "the error should name the setting:\n{out}"
    );
    rt.assert_no_cgroups(&id, &format!("after a failed create:\n{out}"));
}

#[test]
fn failed_create_after_cgroups_are_set_up_removes_them() {
    let Some(rt) = Runtime::new("cg-create-fail-late") else {
        return;
    };
    // The cgroups exist, with limits, before the rootfs is set up; a bind
    // mount of a missing source fails after that.
    let mut bundle = rt.bundle();
    bundle
        .set("/linux/resources/pids", json!({ "limit": 10 }))
        .mount("/mnt", "bind", "/nonexistent-hull-test-source", &["rbind"]);
    let id = rt.new_id();
    let out = rt.create_rejected(&bundle, &id);
    assert!(
        out.stderr.contains("nonexistent-hull-test-source"),
        "the create should fail at the mount:\n{out}"
    );
    rt.assert_no_cgroups(&id, &format!("after a failed create:\n{out}"));
}

#[test]
fn delete_force_of_paused_container_kills_and_removes_everything() {
    let Some(rt) = Runtime::new("cg-del-paused") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle.sh("sleep 600 & sleep 600 & wait");
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    rt.start(&id).ok();
    assert!(
        wait_until(Duration::from_secs(5), || ps_pids(&rt, &id).len() == 3),
        "expected 3 processes, ps lists {:?}",
        ps_pids(&rt, &id)
    );
    let procs: Vec<ProcessRef> = ps_pids(&rt, &id)
        .into_iter()
        .filter_map(ProcessRef::capture)
        .collect();
    assert_eq!(procs.len(), 3);
    rt.cmd(&["pause", &id]).ok();
    assert_eq!(rt.status(&id), "paused");
    rt.delete(&id).fails_mentioning("paused");
    rt.delete_force(&id).ok();
    assert!(
        wait_until(Duration::from_secs(5), || procs
            .iter()
            .all(|p| !p.is_alive())),
        "processes of the paused container survived delete --force: {:?}",
        procs.iter().filter(|p| p.is_alive()).collect::<Vec<_>>()
    );
    rt.assert_no_cgroups(&id, "after delete --force of a paused container");
    assert!(
        !rt.root_entries().contains(&id),
        "state left in --root: {:?}",
        rt.root_entries()
    );
}

#[test]
fn ps_and_kill_all_use_the_cgroup_without_pid_namespace() {
    let Some(rt) = Runtime::new("cg-ps-kill") else {
        return;
    };
    let mut bundle = rt.bundle();
    bundle
        .remove_namespace("pid")
        .sh("sleep 600 & sleep 600 & wait");
    let id = rt.new_id();
    rt.create(&bundle, &id, &[]).ok();
    let init = rt.pid(&id);
    rt.start(&id).ok();
    assert!(
        wait_until(Duration::from_secs(5), || ps_pids(&rt, &id).len() == 3),
        "expected the init and its 2 sleeps, ps lists {:?}",
        ps_pids(&rt, &id)
    );
    let pids = ps_pids(&rt, &id);
    assert!(pids.contains(&init), "ps misses the init {init}: {pids:?}");
    for &p in pids.iter().filter(|&&p| p != init) {
        let cmdline = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        assert_eq!(
            cmdline, b"sleep\x00600\x00",
            "pid {p} listed by ps is not one of the container's sleeps"
        );
    }
    let procs: Vec<ProcessRef> = pids
        .iter()
        .copied()
        .filter_map(ProcessRef::capture)
        .collect();
    for p in &procs {
        rt.track_pid(p.pid);
    }
    rt.cmd(&["kill", "--all", &id, "KILL"]).ok();
    assert!(
        wait_until(Duration::from_secs(5), || procs
            .iter()
            .all(|p| !p.is_alive())),
        "kill --all left processes alive: {:?}",
        procs.iter().filter(|p| p.is_alive()).collect::<Vec<_>>()
    );
    rt.wait_for_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_no_cgroups(&id, "after delete");
}

#[test]
fn cgroup_namespace_roots_the_container_at_its_cgroup() {
    let Some(rt) = Runtime::new("cg-ns") else {
        return;
    };
    if !has_v1("memory") || !has_v1("pids") {
        return;
    }
    let limit = 48 * MIB;
    let mut bundle = rt.bundle();
    bundle
        .namespace("cgroup", None)
        .set("/linux/resources/memory", json!({ "limit": limit }))
        .set("/linux/resources/pids", json!({ "limit": 12 }))
        .sh("cat /proc/self/cgroup; echo ---; \
             cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
             cat /sys/fs/cgroup/pids/pids.max; \
             cat /sys/fs/cgroup/pids/cgroup.procs");
    let out = rt.run_ok(&bundle);
    let text = out.out();
    let (membership, files) = text.split_once("---").unwrap_or_else(|| panic!("{out}"));
    let membership: Vec<&str> = membership.lines().filter(|l| !l.is_empty()).collect();
    assert!(!membership.is_empty(), "{out}");
    for line in &membership {
        assert!(
            line.ends_with(":/"),
            "/proc/self/cgroup should show the container's cgroup as / in a cgroup \
             namespace, got {line:?}:\n{out}"
        );
    }
    let files: Vec<&str> = files
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(files.len() >= 3, "{out}");
    assert_eq!(
        files[0],
        limit.to_string(),
        "/sys/fs/cgroup/memory inside is not the container's own cgroup:\n{out}"
    );
    assert_eq!(files[1], "12", "/sys/fs/cgroup/pids inside:\n{out}");
    // The container's processes, by their pids in its own pid namespace.
    assert!(
        files[2..].contains(&"1"),
        "cgroup.procs inside does not list the container's pid 1:\n{out}"
    );
}

/// `--systemd-cgroup` with runc's `slice:prefix:name` form: on a host
/// without a running systemd, a clear error and nothing left behind.
#[test]
fn systemd_cgroup_without_systemd_is_a_clear_error() {
    let Some(rt) = Runtime::new("cg-systemd") else {
        return;
    };
    if std::path::Path::new("/run/systemd/system").exists() {
        return hull_integration::skip("systemd runs on this host");
    }
    if !hull_integration::is_hull() {
        return hull_integration::skip("runc 1.1 reports a dbus error instead");
    }
    let mut bundle = rt.bundle();
    bundle
        .set("/linux/cgroupsPath", "system.slice:hull:cg-systemd")
        .args(&["true"]);
    bundle.save();
    let id = rt.new_id();
    let out = rt.cmd_with(
        &[
            "--systemd-cgroup",
            "create",
            "--bundle",
            &bundle.path().to_string_lossy(),
            &id,
        ],
        |_| {},
    );
    out.fails_mentioning("systemd");
    assert!(rt.root_entries().is_empty(), "state left behind: {out}");
    rt.assert_no_cgroups(&id, "failed --systemd-cgroup create");
}

/// Two containers never share a cgroup: deleting a container kills every
/// process in its cgroup, so a second container put into a cgroup that
/// already has processes would take the first one down with it. As runc 1.2
/// does, that create is refused and the first container keeps running.
#[test]
fn shared_cgroups_path_is_refused() {
    let Some(rt) = Runtime::new("cg-shared") else {
        return;
    };
    if !is_hull() {
        return skip("runc 1.1 lets a container join a cgroup that has processes");
    }
    let first_id = rt.new_id();
    let mut first = rt.bundle();
    // The default placement, spelled out so the second container can ask for it.
    first
        .args(&["sleep", "600"])
        .set("/linux/cgroupsPath", first_id.as_str());
    rt.create(&first, &first_id, &[]).ok();
    rt.start(&first_id).ok();
    let pid = rt.pid(&first_id);
    let memory_dir = cgroup_dir(pid, "memory");

    let mut second = rt.bundle();
    second
        .args(&["sleep", "600"])
        .set("/linux/cgroupsPath", first_id.as_str());
    let second_id = rt.new_id();
    rt.create_rejected(&second, &second_id)
        .fails_mentioning("container's cgroup is not empty: 1 process(es) found");
    rt.delete_force(&second_id).ok();

    assert_eq!(rt.status(&first_id), "running");
    assert!(host::pid_alive(pid), "the first container's process died");
    assert_eq!(
        cgroup_dir(pid, "memory"),
        memory_dir,
        "moved out of its cgroup"
    );
}

/// A limit for a controller the host has no hierarchy for is refused,
/// naming the controller (runc refuses it too): the container would
/// otherwise run without the limit it asked for. On this kind of host
/// net_cls and net_prio are usually not mounted.
#[test]
fn limits_for_a_missing_controller_are_refused() {
    let Some(rt) = Runtime::new("cg-missing-controller") else {
        return;
    };
    let me = std::process::id() as i32;
    let pure_v2 = !Path::new("/sys/fs/cgroup/unified").exists()
        && Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if pure_v2 && !is_hull() {
        return skip("runc 1.1 ignores linux.resources.network on cgroup v2");
    }
    let mut checked = 0;
    for (controller, network) in [
        ("net_cls", json!({ "classID": 1048577 })),
        (
            "net_prio",
            json!({ "priorities": [{ "name": "lo", "priority": 1 }] }),
        ),
    ] {
        if cgroup_dir(me, controller).is_some() {
            eprintln!("SKIP: this host has a {controller} hierarchy");
            continue;
        }
        let mut bundle = rt.bundle();
        bundle
            .args(&["true"])
            .set("/linux/resources/network", network);
        rt.create_rejected(&bundle, &rt.new_id())
            .fails_mentioning(controller);
        checked += 1;
    }
    if checked == 0 {
        skip("the host has every controller this test can leave out");
    }
}
