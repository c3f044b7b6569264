//! The pure cgroup v2 suite, run inside the cgroup2 VM by
//! `runtime/cgroups/run-v2-tests.sh` (which sets HULL_CG2VM=1). Elsewhere
//! each test returns at once with a message: the development hosts are
//! hybrid, and these tests need a v2-only kernel with every controller.
//!
//! Covered: limits in every v2 file and their read-back, the eBPF device
//! filter (allowed /dev/null, denied /dev/full, replaced on update),
//! cgroup.freeze, cgroup.kill, memory.max OOM kills counted in
//! memory.events, pids.max stopping forks, stats, destroy.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use hull_cgroups::{create, ebpf, CgroupMode, FreezerState, Layout};
use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;
use serde_json::json;

fn in_vm(test: &str) -> bool {
    if std::env::var("HULL_CG2VM").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipping {test}: runs in the cgroup2 VM (runtime/cgroups/run-v2-tests.sh)");
    false
}

fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).unwrap()
}

fn v2_container() -> (Layout, CgGuard) {
    let layout = Layout::detect().unwrap();
    assert_eq!(layout.mode, CgroupMode::Unified, "{layout:?}");
    let name = unique("hull-vm");
    let mgr = create(&layout, Some(Path::new(&name)), &name, false).unwrap();
    (layout, CgGuard::new(mgr))
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let v = f();
    eprintln!("  {what}: {:?}", t.elapsed());
    v
}

#[test]
fn v2_limits_devices_freeze_kill() {
    if !in_vm("v2_limits_devices_freeze_kill") {
        return;
    }
    let (layout, g) = v2_container();
    let m = &g.mgr;
    let dir = m.path().to_path_buf();
    assert_eq!(
        dir,
        layout
            .unified
            .as_ref()
            .unwrap()
            .own_dir()
            .join(dir.file_name().unwrap())
    );

    let mut devices: Vec<serde_json::Value> = vec![
        json!({"allow": false, "access": "rwm"}),
        json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}),
    ];
    let has_hugetlb = Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && read("/sys/fs/cgroup/cgroup.controllers").contains("hugetlb");
    let mut cfg = json!({
        "memory": {"limit": 67108864, "swap": 67108864, "reservation": 1048576},
        "pids": {"limit": 64},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "devices": devices.clone(),
        "unified": {"memory.high": "62914560", "memory.oom.group": "1"}
    });
    if has_hugetlb {
        cfg["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 0}]);
    }
    let w = timed("set", || m.set(&res(cfg)).unwrap());
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(read(dir.join("memory.max")), "67108864");
    assert_eq!(read(dir.join("memory.swap.max")), "0");
    assert_eq!(read(dir.join("memory.low")), "1048576");
    assert_eq!(read(dir.join("memory.high")), "62914560");
    assert_eq!(read(dir.join("memory.oom.group")), "1");
    assert_eq!(read(dir.join("pids.max")), "64");
    assert_eq!(read(dir.join("cpu.weight")), "20");
    assert_eq!(read(dir.join("cpu.max")), "50000 100000");
    assert_eq!(read(dir.join("cpuset.cpus")), "0");
    if has_hugetlb {
        assert_eq!(read(dir.join("hugetlb.2MB.max")), "0");
    }
    assert_eq!(ebpf::attached(&dir).unwrap().len(), 1);

    // Devices: the probe runs in the container cgroup.
    let mut p = Gated::spawn(DEVICE_PROBE);
    timed("apply", || m.apply(p.pid()).unwrap());
    p.release();
    check_probe(&p.read_lines(2), false);
    devices.push(json!({"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rw"}));
    let before = ebpf::attached(&dir).unwrap();
    m.set(&res(json!({"devices": devices}))).unwrap();
    let after = ebpf::attached(&dir).unwrap();
    assert_eq!(after.len(), 1, "replaced, not added");
    assert_ne!(before, after);
    p.release();
    check_probe(&p.read_lines(2), true);
    p.release();
    assert!(p.wait_timeout(Duration::from_secs(30)).is_some());

    // Freeze / thaw through cgroup.freeze.
    let mut s = Gated::spawn("exec sleep 1000");
    m.apply(s.pid()).unwrap();
    s.release();
    timed("freeze", || m.freeze().unwrap());
    assert_eq!(m.state().unwrap(), FreezerState::Frozen);
    assert!(read(dir.join("cgroup.events")).contains("frozen 1"));
    m.thaw().unwrap();
    assert_eq!(m.state().unwrap(), FreezerState::Thawed);

    // Stats in runc's shape.
    let st = m.stats().unwrap();
    assert_eq!(st.memory.usage.limit, 67_108_864);
    assert!(st.cpu.usage.total > 0, "{:?}", st.cpu);
    assert_eq!(st.pids.limit, 64);
    assert!(st.pids.current >= 1);
    eprintln!("  stats: {}", serde_json::to_string(&st).unwrap());

    // A paused container is killed through cgroup.kill.
    let mut tree = Gated::spawn("sleep 1000 & sleep 1000 & wait");
    m.apply(tree.pid()).unwrap();
    tree.release();
    assert!(wait_until(Duration::from_secs(10), || m
        .pids()
        .unwrap()
        .len()
        == 4));
    m.freeze().unwrap();
    timed("kill_all(SIGKILL) via cgroup.kill", || {
        m.kill_all(Signal::SIGKILL).unwrap()
    });
    assert_eq!(
        tree.wait_timeout(Duration::from_secs(30))
            .and_then(|s| s.signal()),
        Some(libc::SIGKILL)
    );
    assert_eq!(
        s.wait_timeout(Duration::from_secs(30))
            .and_then(|s| s.signal()),
        Some(libc::SIGKILL)
    );
    assert!(wait_until(Duration::from_secs(10), || m
        .pids()
        .unwrap()
        .is_empty()));

    // Other signals: freeze, signal each, thaw.
    let mut t = Gated::spawn("sleep 1000 & wait");
    m.apply(t.pid()).unwrap();
    t.release();
    assert!(wait_until(Duration::from_secs(10), || m
        .pids()
        .unwrap()
        .len()
        == 2));
    m.kill_all(Signal::SIGTERM).unwrap();
    assert!(t.wait_timeout(Duration::from_secs(30)).is_some());
    assert_eq!(m.state().unwrap(), FreezerState::Thawed);

    timed("destroy", || m.destroy().unwrap());
    assert!(!dir.exists());
}

#[test]
fn v2_memory_max_oom_kill_is_counted() {
    if !in_vm("v2_memory_max_oom_kill_is_counted") {
        return;
    }
    let (_layout, g) = v2_container();
    g.mgr
        .set(&res(
            json!({"memory": {"limit": 16777216, "swap": 16777216}}),
        ))
        .unwrap();
    let mut hog = Gated::spawn("x=1234567890; while :; do x=$x$x$x$x; done");
    g.mgr.apply(hog.pid()).unwrap();
    hog.release();
    let st = timed("OOM kill", || hog.wait_timeout(Duration::from_secs(120)))
        .expect("the hog is killed");
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    let ooms = g.mgr.oom_events().unwrap();
    assert!(ooms >= 1, "memory.events oom_kill = {ooms}");
    let s = g.mgr.stats().unwrap();
    assert!(s.memory.usage.failcnt >= 1, "{:?}", s.memory.usage);
}

#[test]
fn v2_pids_max_stops_forks() {
    if !in_vm("v2_pids_max_stops_forks") {
        return;
    }
    let (_layout, g) = v2_container();
    g.mgr.set(&res(json!({"pids": {"limit": 4}}))).unwrap();
    let mut p = Gated::spawn("for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done 2>/dev/null; wait");
    g.mgr.apply(p.pid()).unwrap();
    p.release();
    assert!(wait_until(Duration::from_secs(20), || g
        .mgr
        .pids()
        .unwrap()
        .len()
        >= 3));
    std::thread::sleep(Duration::from_millis(500));
    let n = g.mgr.pids().unwrap().len();
    assert!((3..=4).contains(&n), "{:?}", g.mgr.pids());
    let ev = read(g.mgr.path().join("pids.events"));
    let max: u64 = ev
        .lines()
        .find_map(|l| l.strip_prefix("max "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(max >= 1, "{ev}");
}
