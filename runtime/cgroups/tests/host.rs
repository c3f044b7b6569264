//! Privileged tests on the machine the tests run on (Hull's development and
//! CI hosts are hybrid: v1 hierarchies plus a cgroup2 mount holding
//! hugetlb). Each test makes cgroups only below the test process's own
//! cgroup in each hierarchy (`<own>/hull-test-<pid>-<n>`), moves only
//! processes it spawned, and removes everything through a guard, also when
//! it fails. Without root they skip, or fail when CI is set.
//!
//! Pure v2 behaviour (cgroup.kill, cgroup.freeze, eBPF devices in a v2-only
//! kernel, memory.max OOM) is covered by tests/v2_vm.rs in a VM.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use hull_cgroups::{create, ebpf, CgroupMode, FreezerState, Layout, V2Manager};
use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;
use serde_json::json;

fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).unwrap()
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let v = f();
    eprintln!("  {what}: {:?}", t.elapsed());
    v
}

fn new_container(layout: &Layout) -> CgGuard {
    let name = unique("hull-test");
    let mgr = create(layout, Some(Path::new(&name)), &name, false).unwrap();
    // Below the caller's own cgroup in every hierarchy.
    for (h, dir) in mgr.paths().v1 {
        let own = layout.v1.iter().find(|x| x.name() == h).unwrap().own_dir();
        assert_eq!(dir, own.join(&name));
    }
    CgGuard::new(mgr)
}

#[test]
fn limits_freeze_stats_kill_destroy() {
    if !root_or_skip("limits_freeze_stats_kill_destroy") {
        return;
    }
    let layout = Layout::detect().unwrap();
    eprintln!("cgroup mode: {:?}", layout.mode);
    let g = new_container(&layout);
    let m = &g.mgr;
    let mut p = Gated::spawn("exec sleep 1000");
    let pid = p.pid();

    let warnings = timed("set", || {
        m.set(&res(json!({
            "memory": {"limit": 67108864, "reservation": 33554432},
            "pids": {"limit": 32},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}
        })))
        .unwrap()
    });
    assert!(warnings.is_empty(), "{warnings:?}");
    timed("apply", || m.apply(pid).unwrap());
    p.release();

    let paths = m.paths();
    match layout.mode {
        CgroupMode::Unified => {
            let d = paths.unified.as_ref().unwrap();
            assert_eq!(read(d.join("memory.max")), "67108864");
            assert_eq!(read(d.join("memory.low")), "33554432");
            assert_eq!(read(d.join("pids.max")), "32");
            assert_eq!(read(d.join("cpu.weight")), "20");
            assert_eq!(read(d.join("cpu.max")), "50000 100000");
            assert_eq!(read(d.join("cpuset.cpus")), "0");
        }
        _ => {
            let d = |h: &str| paths.v1[h].clone();
            assert_eq!(read(d("memory").join("memory.limit_in_bytes")), "67108864");
            assert_eq!(
                read(d("memory").join("memory.soft_limit_in_bytes")),
                "33554432"
            );
            assert_eq!(read(d("pids").join("pids.max")), "32");
            let cpu = layout.v1_hierarchy("cpu").unwrap().name();
            assert_eq!(read(d(&cpu).join("cpu.shares")), "512");
            assert_eq!(read(d(&cpu).join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read(d(&cpu).join("cpu.cfs_period_us")), "100000");
            assert_eq!(read(d("cpuset").join("cpuset.cpus")), "0");
            // The new cpuset got the parent's memory nodes.
            assert!(!read(d("cpuset").join("cpuset.mems")).is_empty());
            // The process is in the container's cgroup in every hierarchy.
            let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
            for h in &layout.v1 {
                let line = own
                    .lines()
                    .find(|l| l.split(':').nth(1) == Some(h.name().as_str()))
                    .unwrap();
                let want = paths.v1[&h.name()].strip_prefix(&h.mount_point).unwrap();
                assert_eq!(
                    Path::new(line.split(':').nth(2).unwrap()),
                    Path::new("/").join(want),
                    "{line}"
                );
            }
        }
    }
    assert_eq!(m.pids().unwrap(), vec![pid]);

    // The kernel rejects what it cannot do, and says so.
    if layout.mode != CgroupMode::Unified {
        let e = m
            .set(&res(json!({"cpu": {"shares": 1000000}})))
            .unwrap_err();
        assert!(e.to_string().contains("262144"), "{e}");
        let e = m.set(&res(json!({"cpu": {"cpus": "4095"}}))).unwrap_err();
        assert!(e.to_string().contains("cpuset.cpus"), "{e}");
        eprintln!("example error: {e}");
    }

    // Pause and resume.
    timed("freeze", || m.freeze().unwrap());
    assert_eq!(m.state().unwrap(), FreezerState::Frozen);
    if layout.v1_hierarchy("freezer").is_some() {
        assert_eq!(read(paths.v1["freezer"].join("freezer.state")), "FROZEN");
        assert!(proc_state(pid).starts_with('D'), "{}", proc_state(pid));
    }
    timed("thaw", || m.thaw().unwrap());
    assert_eq!(m.state().unwrap(), FreezerState::Thawed);
    assert!(wait_until(Duration::from_secs(2), || proc_state(pid).starts_with('S')));

    // Stats, in runc's JSON shape.
    let s = timed("stats", || m.stats().unwrap());
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.pids.limit, 32);
    assert_eq!(s.memory.usage.limit, 67_108_864);
    assert_eq!(s.cpuset.cpus, vec![0]);
    let j = serde_json::to_value(&s).unwrap();
    assert_eq!(j["pids"], json!({"current": 1, "limit": 32}));
    assert_eq!(m.oom_events().unwrap(), 0);

    // Kill, even while paused.
    m.freeze().unwrap();
    timed("kill_all(SIGKILL) while frozen", || {
        m.kill_all(Signal::SIGKILL).unwrap()
    });
    let st = p.wait_timeout(Duration::from_secs(10)).expect("killed");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    assert_eq!(m.state().unwrap(), FreezerState::Thawed);

    timed("destroy", || m.destroy().unwrap());
    for d in &g.dirs {
        assert!(!d.exists(), "{} left", d.display());
    }
}

#[test]
fn kill_all_reaches_every_descendant() {
    if !root_or_skip("kill_all_reaches_every_descendant") {
        return;
    }
    let layout = Layout::detect().unwrap();
    let g = new_container(&layout);
    let mut p = Gated::spawn("sleep 1000 & sleep 1000 & sh -c 'sleep 1000' & wait");
    g.mgr.apply(p.pid()).unwrap();
    p.release();
    assert!(
        // sh, two sleeps, and sh -c 'sleep' (one or two processes).
        wait_until(Duration::from_secs(5), || g.mgr.pids().unwrap().len() >= 4),
        "{:?}",
        g.mgr.pids()
    );
    g.mgr.kill_all(Signal::SIGTERM).unwrap();
    assert!(p.wait_timeout(Duration::from_secs(10)).is_some());
    assert!(
        wait_until(Duration::from_secs(5), || g.mgr.pids().unwrap().is_empty()),
        "{:?}",
        g.mgr.pids()
    );
}

#[test]
fn pids_limit_stops_forks() {
    if !root_or_skip("pids_limit_stops_forks") {
        return;
    }
    let layout = Layout::detect().unwrap();
    let g = new_container(&layout);
    g.mgr.set(&res(json!({"pids": {"limit": 4}}))).unwrap();
    // Some shells (dash) give up at the first failed fork, others go on.
    let mut p = Gated::spawn("for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done 2>/dev/null; wait");
    g.mgr.apply(p.pid()).unwrap();
    p.release();
    assert!(wait_until(Duration::from_secs(5), || g
        .mgr
        .pids()
        .unwrap()
        .len()
        >= 3));
    std::thread::sleep(Duration::from_millis(300));
    // The shell (if it is still there) plus three sleeps: never more.
    let n = g.mgr.pids().unwrap().len();
    assert!((3..=4).contains(&n), "{:?}", g.mgr.pids());
    let s = g.mgr.stats().unwrap();
    assert_eq!(s.pids.limit, 4);
    assert!(s.pids.current <= 4);
    let pids_dir = g
        .mgr
        .paths()
        .v1
        .get("pids")
        .cloned()
        .or(g.mgr.paths().unified);
    if let Some(ev) = pids_dir
        .map(|d| d.join("pids.events"))
        .filter(|e| e.exists())
    {
        let max: u64 = read(&ev).strip_prefix("max ").unwrap().parse().unwrap();
        assert!(max >= 1, "pids.events: {max}");
    }
}

#[test]
fn memory_limit_oom_kills_and_is_counted() {
    if !root_or_skip("memory_limit_oom_kills_and_is_counted") {
        return;
    }
    let layout = Layout::detect().unwrap();
    if layout.controller("memory").is_none() {
        eprintln!("skipping: no memory controller");
        return;
    }
    let g = new_container(&layout);
    g.mgr
        .set(&res(
            json!({"memory": {"limit": 16777216, "swap": 16777216}}),
        ))
        .unwrap();
    let mut p = Gated::spawn("x=1234567890; while :; do x=$x$x$x$x; done");
    g.mgr.apply(p.pid()).unwrap();
    p.release();
    let st = p
        .wait_timeout(Duration::from_secs(60))
        .expect("the hog exits");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL), "{st:?}");
    assert!(g.mgr.oom_events().unwrap() >= 1);
    let s = g.mgr.stats().unwrap();
    assert!(
        s.memory.usage.failcnt > 0 || s.memory.usage.max > 0,
        "{:?}",
        s.memory
    );
}

#[test]
fn device_filter_ebpf_on_the_cgroup2_mount() {
    if !root_or_skip("device_filter_ebpf_on_the_cgroup2_mount") {
        return;
    }
    let layout = Layout::detect().unwrap();
    let Some(u) = layout.unified.clone() else {
        eprintln!("skipping: no cgroup2 mount");
        return;
    };
    // A v2 cgroup below our own, with no controllers needed: eBPF device
    // programs attach to any cgroup2 directory (and also apply on a hybrid
    // host, before the v1 devices controller's check).
    let dir = u.own_dir().join(unique("hull-test-bpf"));
    let g = CgGuard::new(Box::new(V2Manager::on_demand(&u.mount_point, &dir)));
    let mut p = Gated::spawn(DEVICE_PROBE);
    g.mgr.apply(p.pid()).unwrap();
    let rules = hull_cgroups::devices::normalize(
        &serde_json::from_value::<Vec<_>>(json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]))
        .unwrap(),
    )
    .unwrap();
    ebpf::apply(&dir, &rules).unwrap();
    assert_eq!(ebpf::attached(&dir).unwrap().len(), 1);
    p.release();
    check_probe(&p.read_lines(2), false);

    // Update: allow /dev/full too; the old program is replaced, not added.
    let mut more = rules.clone();
    more.extend(
        hull_cgroups::devices::normalize(
            &serde_json::from_value::<Vec<_>>(json!([
                {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rw"}
            ]))
            .unwrap(),
        )
        .unwrap(),
    );
    let before = ebpf::attached(&dir).unwrap();
    ebpf::apply(&dir, &more).unwrap();
    let after = ebpf::attached(&dir).unwrap();
    assert_eq!(after.len(), 1);
    assert_ne!(before, after);
    p.release();
    check_probe(&p.read_lines(2), true);
    p.release();
}
