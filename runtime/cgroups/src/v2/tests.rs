//! The v2 manager against a fake cgroupfs: every conversion and file.

use serde_json::json;

use super::*;
use crate::fs::take_writes;
use crate::testutil::TempDir;

/// A fake cgroup2 mount with the container at `ctr`.
fn fake() -> (TempDir, V2Manager) {
    let t = TempDir::new();
    t.file(
        "cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    t.file("cgroup.subtree_control", "");
    for (f, v) in [
        ("cgroup.controllers", ""),
        ("cgroup.subtree_control", ""),
        ("cgroup.procs", ""),
        ("cgroup.freeze", "0\n"),
        ("cgroup.events", "populated 0\nfrozen 0\n"),
        ("cgroup.kill", ""),
        ("cgroup.max.depth", "max\n"),
        ("cpu.weight", "100\n"),
        ("cpu.max", "max 100000\n"),
        ("cpu.max.burst", "0\n"),
        ("cpu.idle", "0\n"),
        ("cpuset.cpus", "\n"),
        ("cpuset.mems", "\n"),
        ("memory.max", "max\n"),
        ("memory.low", "0\n"),
        ("memory.high", "max\n"),
        ("memory.oom.group", "0\n"),
        ("memory.swap.max", "max\n"),
        ("memory.current", "4096\n"),
        ("pids.max", "max\n"),
        ("io.weight", "default 100\n"),
        ("io.max", ""),
        ("hugetlb.2MB.max", "max\n"),
        ("hugetlb.2MB.rsvd.max", "max\n"),
        ("hugetlb.1GB.max", "max\n"),
        ("rdma.max", ""),
    ] {
        t.file(&format!("ctr/{f}"), v);
    }
    let m = V2Manager::new(t.path(), t.path().join("ctr"));
    (t, m)
}

fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).unwrap()
}

fn writes_to(w: &[(PathBuf, String)], file: &str) -> Vec<String> {
    w.iter()
        .filter(|(p, _)| p.file_name().is_some_and(|n| n == file))
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn every_resource_lands_in_its_file() {
    let (t, m) = fake();
    take_writes();
    let warnings = m
        .set(&res(json!({
            "cpu": {"shares": 1024, "quota": 50000, "period": 200000, "burst": 1000, "idle": 0,
                    "cpus": "0-1", "mems": "0"},
            "memory": {"limit": 104857600, "reservation": 52428800, "swap": 209715200},
            "pids": {"limit": 42},
            "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100},
                                                     {"major": 8, "minor": 16, "rate": 0}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}, {"pageSize": "1GB", "limit": -1}],
            "rdma": {"mlx5_1": {"hcaHandles": 3}, "mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000}},
            "unified": {"memory.high": "99999999", "memory.oom.group": "1"}
        })))
        .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(t.read("ctr/cpu.weight"), "39");
    assert_eq!(t.read("ctr/cpu.max"), "50000 200000");
    assert_eq!(t.read("ctr/cpu.max.burst"), "1000");
    assert_eq!(t.read("ctr/cpu.idle"), "0");
    assert_eq!(t.read("ctr/cpuset.cpus"), "0-1");
    assert_eq!(t.read("ctr/cpuset.mems"), "0");
    assert_eq!(t.read("ctr/memory.max"), "104857600");
    assert_eq!(t.read("ctr/memory.low"), "52428800");
    assert_eq!(t.read("ctr/memory.swap.max"), "104857600");
    assert_eq!(t.read("ctr/pids.max"), "42");
    assert_eq!(t.read("ctr/hugetlb.2MB.max"), "4194304");
    assert_eq!(t.read("ctr/hugetlb.2MB.rsvd.max"), "4194304");
    assert_eq!(t.read("ctr/hugetlb.1GB.max"), "max");
    assert_eq!(t.read("ctr/memory.high"), "99999999");
    assert_eq!(t.read("ctr/memory.oom.group"), "1");

    let w = take_writes();
    // Controllers enabled in the parent, one by one, only needed ones.
    assert_eq!(
        writes_to(&w, "cgroup.subtree_control"),
        ["+cpu", "+cpuset", "+memory", "+pids", "+io", "+hugetlb", "+rdma"]
    );
    // io.weight: the converted default weight, then the device weight.
    assert_eq!(writes_to(&w, "io.weight"), ["4950", "8:0 10000"]);
    assert_eq!(
        writes_to(&w, "io.max"),
        ["8:0 rbps=1048576 wiops=100", "8:16 wiops=max"]
    );
    assert_eq!(
        writes_to(&w, "rdma.max"),
        ["mlx4_0 hca_handle=2 hca_object=2000", "mlx5_1 hca_handle=3"]
    );
    // swap before memory.max, unified last.
    let order: Vec<&str> = w
        .iter()
        .filter_map(|(p, _)| p.file_name()?.to_str())
        .filter(|f| f.starts_with("memory."))
        .collect();
    assert_eq!(
        order,
        [
            "memory.swap.max",
            "memory.max",
            "memory.low",
            "memory.high",
            "memory.oom.group"
        ]
    );
    // idle before weight, burst before cpu.max.
    let cpu: Vec<&str> = w
        .iter()
        .filter_map(|(p, _)| p.file_name()?.to_str())
        .filter(|f| f.starts_with("cpu."))
        .collect();
    assert_eq!(cpu, ["cpu.idle", "cpu.weight", "cpu.max.burst", "cpu.max"]);
}

#[test]
fn cpu_max_keeps_the_missing_half() {
    let (t, m) = fake();
    t.file("ctr/cpu.max", "30000 50000\n");
    m.set(&res(json!({"cpu": {"period": 100000}}))).unwrap();
    assert_eq!(t.read("ctr/cpu.max"), "30000 100000");
    m.set(&res(json!({"cpu": {"quota": 20000}}))).unwrap();
    assert_eq!(t.read("ctr/cpu.max"), "20000 100000");
    m.set(&res(json!({"cpu": {"quota": -1}}))).unwrap();
    assert_eq!(t.read("ctr/cpu.max"), "max 100000");
    m.set(&res(json!({"cpu": {"quota": 0, "period": 10000}})))
        .unwrap();
    assert_eq!(t.read("ctr/cpu.max"), "max 10000");
}

#[test]
fn memory_conversions() {
    let (t, m) = fake();
    m.set(&res(json!({"memory": {"limit": -1}}))).unwrap();
    assert_eq!(t.read("ctr/memory.max"), "max");
    assert_eq!(t.read("ctr/memory.swap.max"), "max");
    m.set(&res(json!({"memory": {"limit": 1000, "swap": 1000}})))
        .unwrap();
    assert_eq!(t.read("ctr/memory.swap.max"), "0");
    m.set(&res(
        json!({"memory": {"limit": 1000, "swap": -1, "reservation": -1}}),
    ))
    .unwrap();
    assert_eq!(t.read("ctr/memory.swap.max"), "max");
    assert_eq!(t.read("ctr/memory.low"), "max");
    // swap < limit is refused before anything is written.
    take_writes();
    let e = m
        .set(&res(
            json!({"pids": {"limit": 5}, "memory": {"limit": 1000, "swap": 500}}),
        ))
        .unwrap_err();
    assert!(e.to_string().contains("less than memory.limit"), "{e}");
    assert!(take_writes().is_empty());
    // checkBeforeUpdate: memory.current is 4096.
    let e = m
        .set(&res(
            json!({"memory": {"limit": 4096, "checkBeforeUpdate": true}}),
        ))
        .unwrap_err();
    assert!(e.to_string().contains("already uses 4096"), "{e}");
    m.set(&res(
        json!({"memory": {"limit": 8192, "checkBeforeUpdate": true}}),
    ))
    .unwrap();
}

#[test]
fn no_swap_accounting() {
    let (t, m) = fake();
    std::fs::remove_file(t.path().join("ctr/memory.swap.max")).unwrap();
    // "max" and "0" are what the kernel does anyway without swap accounting.
    m.set(&res(json!({"memory": {"limit": 1000, "swap": -1}})))
        .unwrap();
    m.set(&res(json!({"memory": {"limit": 1000, "swap": 1000}})))
        .unwrap();
    let e = m
        .set(&res(json!({"memory": {"limit": 1000, "swap": 3000}})))
        .unwrap_err();
    assert!(e.to_string().contains("swap accounting is off"), "{e}");
}

#[test]
fn pids_and_bfq() {
    let (t, m) = fake();
    m.set(&res(json!({"pids": {"limit": 0}}))).unwrap();
    assert_eq!(t.read("ctr/pids.max"), "max");
    m.set(&res(json!({"pids": {"limit": -1}}))).unwrap();
    assert_eq!(t.read("ctr/pids.max"), "max");
    t.file("ctr/io.bfq.weight", "default 100\n");
    take_writes();
    m.set(&res(json!({"blockIO": {"weight": 300,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 20}]}})))
        .unwrap();
    assert_eq!(
        writes_to(&take_writes(), "io.bfq.weight"),
        ["300", "8:0 20"]
    );
}

#[test]
fn warnings_for_what_v2_cannot_do() {
    let (_t, m) = fake();
    let w = m
        .set(&res(json!({
            "memory": {"swappiness": 10, "disableOOMKiller": true, "kernel": 1, "kernelTCP": 1},
            "cpu": {"realtimeRuntime": 100, "realtimePeriod": 1000},
            "blockIO": {"leafWeight": 100},
            "network": {"classID": 0}
        })))
        .unwrap();
    assert_eq!(w.len(), 5, "{w:#?}");
}

#[test]
fn unsupported_things_are_errors() {
    let (_t, m) = fake();
    for (cfg, controller) in [
        (json!({"network": {"classID": 1}}), "net_cls"),
        (
            json!({"network": {"priorities": [{"name": "lo", "priority": 1}]}}),
            "net_prio",
        ),
    ] {
        let e = m.set(&res(cfg.clone())).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cgroup controller {controller}:")),
            "{cfg}: {e}"
        );
    }
    let e = m
        .set(&res(
            json!({"hugepageLimits": [{"pageSize": "64KB", "limit": 1}]}),
        ))
        .unwrap_err();
    assert!(
        e.to_string().contains("page size 64KB is not supported"),
        "{e}"
    );
    let e = m
        .set(&res(json!({"unified": {"memory.nosuch": "1"}})))
        .unwrap_err();
    assert!(e.to_string().contains("no such file"), "{e}");
    let e = m
        .set(&res(json!({"unified": {"misc.max": "x 1"}})))
        .unwrap_err();
    assert!(e.to_string().contains("misc"), "{e}");
    let e = m
        .set(&res(json!({"unified": {"../../cgroup.procs": "1"}})))
        .unwrap_err();
    assert!(e.to_string().contains("no '/' or '..'"), "{e}");
}

#[test]
fn apply_enables_everything_available_then_joins() {
    let (t, m) = fake();
    take_writes();
    m.apply(12345).unwrap();
    let w = take_writes();
    assert_eq!(
        writes_to(&w, "cgroup.subtree_control"),
        ["+cpuset", "+cpu", "+io", "+memory", "+hugetlb", "+pids", "+rdma", "+misc"]
    );
    assert_eq!(t.read("ctr/cgroup.procs"), "12345");
    // The on-demand variant (hybrid) only creates and joins.
    let h = V2Manager::on_demand(t.path(), t.path().join("ctr"));
    h.apply(1).unwrap();
    assert!(writes_to(&take_writes(), "cgroup.subtree_control").is_empty());
}

#[test]
fn creates_missing_directories() {
    let t = TempDir::new();
    t.file("cgroup.controllers", "memory\n");
    t.file("cgroup.subtree_control", "");
    let m = V2Manager::on_demand(t.path(), t.path().join("a/b/ctr"));
    // cgroup.procs does not exist in a plain directory: the error names it.
    let e = m.apply(1).unwrap_err();
    assert!(e.to_string().contains("a/b/ctr/cgroup.procs"), "{e}");
    assert!(t.path().join("a/b/ctr").is_dir());
    m.destroy().unwrap();
    assert!(!t.path().join("a/b/ctr").exists());
    assert!(t.path().join("a/b").exists());
}

#[test]
fn freezer_kill_pids_oom() {
    let (t, m) = fake();
    assert_eq!(m.state().unwrap(), FreezerState::Thawed);
    // The fake kernel reports frozen right away.
    t.file("ctr/cgroup.events", "populated 1\nfrozen 1\n");
    m.freeze().unwrap();
    assert_eq!(t.read("ctr/cgroup.freeze"), "1");
    assert_eq!(m.state().unwrap(), FreezerState::Frozen);
    m.thaw().unwrap();
    assert_eq!(m.state().unwrap(), FreezerState::Thawed);

    m.kill_all(Signal::SIGKILL).unwrap();
    assert_eq!(t.read("ctr/cgroup.kill"), "1");

    t.file("ctr/cgroup.procs", "0\n");
    t.file("ctr/sub/cgroup.procs", "");
    assert_eq!(m.pids().unwrap(), Vec::<i32>::new());

    assert_eq!(m.oom_events().unwrap(), 0);
    t.file(
        "ctr/memory.events",
        "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n",
    );
    assert_eq!(m.oom_events().unwrap(), 1);
}

#[test]
fn stats_from_sample_files() {
    let (t, m) = fake();
    for (f, v) in [
        (
            "cpu.stat",
            "usage_usec 2229918\nuser_usec 1805107\nsystem_usec 424811\nnr_periods 10\nnr_throttled 3\nthrottled_usec 500\nnr_bursts 0\nburst_usec 0\n",
        ),
        ("cpu.pressure", "some avg10=0.50 avg60=0.10 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"),
        ("cpuset.cpus.effective", "0-1\n"),
        ("cpuset.mems.effective", "0\n"),
        ("memory.current", "1048576\n"),
        ("memory.max", "104857600\n"),
        ("memory.peak", "2097152\n"),
        ("memory.events", "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n"),
        ("memory.swap.current", "4096\n"),
        ("memory.swap.max", "max\n"),
        ("memory.stat", "anon 524288\nfile 262144\nkernel 8192\nsock 0\npgfault 100\n"),
        ("pids.current", "3\n"),
        ("pids.max", "max\n"),
        ("io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"),
        ("hugetlb.2MB.current", "2097152\n"),
        ("hugetlb.2MB.events", "max 4\n"),
        ("hugetlb.1GB.current", "0\n"),
    ] {
        t.file(&format!("ctr/{f}"), v);
    }
    let s = m.stats().unwrap();
    assert_eq!(s.cpu.usage.total, 2_229_918_000);
    assert_eq!(s.cpu.usage.user, 1_805_107_000);
    assert_eq!(s.cpu.usage.kernel, 424_811_000);
    assert_eq!(s.cpu.throttling.periods, 10);
    assert_eq!(s.cpu.throttling.throttled_periods, 3);
    assert_eq!(s.cpu.throttling.throttled_time, 500_000);
    assert_eq!(s.cpu.psi.as_ref().unwrap().some.total, 1234);
    assert_eq!(s.cpuset.cpus, vec![0, 1]);
    assert_eq!(s.memory.usage.usage, 1_048_576);
    assert_eq!(s.memory.usage.limit, 104_857_600);
    assert_eq!(s.memory.usage.max, 2_097_152);
    assert_eq!(s.memory.usage.failcnt, 7);
    assert_eq!(s.memory.swap.usage, 1_048_576 + 4096);
    assert_eq!(s.memory.swap.limit, u64::MAX);
    assert_eq!(s.memory.cache, 262_144);
    assert_eq!(s.memory.raw["anon"], 524_288);
    assert_eq!(s.pids.current, 3);
    assert_eq!(s.pids.limit, 0);
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
    assert_eq!(s.blkio.io_serviced_recursive[1].value, 2);
    assert_eq!(s.hugetlb["2MB"].usage, 2_097_152);
    assert_eq!(s.hugetlb["2MB"].failcnt, 4);
    assert_eq!(s.hugetlb["1GB"].usage, 0);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["memory"]["usage"]["failcnt"], 7);
    assert_eq!(v["pids"], json!({"current": 3}));
    assert_eq!(v["hugetlb"]["2MB"], json!({"usage": 2097152, "failcnt": 4}));
}

#[test]
fn paths_and_reopen() {
    let (t, m) = fake();
    let p = m.paths();
    assert_eq!(p.unified.as_deref(), Some(t.path().join("ctr").as_path()));
    assert_eq!(m.path(), t.path().join("ctr"));
    let j = serde_json::to_value(&p).unwrap();
    assert_eq!(j, json!({"unified": t.path().join("ctr")}));
}
