//! The v1 manager (and the hybrid composition) against a fake cgroupfs,
//! built through `Layout::parse` + `create` like on a real host.

use std::path::PathBuf;

use serde_json::json;

use super::*;
use crate::fs::take_writes;
use crate::testutil::TempDir;
use crate::{create, open, CgroupMode, Layout};

const HIERARCHIES: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls,net_prio",
    "name=systemd",
];

/// Files (with their initial content) in each fake v1 cgroup.
fn files(h: &str) -> Vec<(&'static str, &'static str)> {
    let mut f = vec![("cgroup.procs", "")];
    f.extend(match h {
        "cpu" => vec![
            ("cpu.shares", "1024\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.cfs_burst_us", "0\n"),
            ("cpu.rt_period_us", "1000000\n"),
            ("cpu.rt_runtime_us", "0\n"),
            ("cpu.idle", "0\n"),
        ],
        "cpuset" => vec![("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
        "memory" => vec![
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            ("memory.soft_limit_in_bytes", "9223372036854771712\n"),
            ("memory.swappiness", "60\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ),
            ("memory.usage_in_bytes", "8192\n"),
        ],
        "devices" => vec![("devices.allow", ""), ("devices.deny", "")],
        "freezer" => vec![("freezer.state", "THAWED\n")],
        "blkio" => vec![
            ("blkio.throttle.read_bps_device", ""),
            ("blkio.throttle.write_bps_device", ""),
            ("blkio.throttle.read_iops_device", ""),
            ("blkio.throttle.write_iops_device", ""),
        ],
        "pids" => vec![("pids.max", "max\n"), ("pids.current", "0\n")],
        "hugetlb" => vec![
            ("hugetlb.2MB.limit_in_bytes", "9223372036854771712\n"),
            ("hugetlb.1GB.limit_in_bytes", "9223372036854771712\n"),
        ],
        "net_cls,net_prio" => vec![("net_cls.classid", "0\n"), ("net_prio.ifpriomap", "")],
        _ => vec![],
    });
    f
}

fn dirname(h: &str) -> String {
    h.replace("name=", "")
}

/// A fake v1 (or hybrid, with `unified`) host: hierarchies at
/// TMP/<name>, the caller in "/" everywhere except memory ("/user").
fn fake_host(hierarchies: &[&str], unified: Option<&str>) -> (TempDir, Layout) {
    let t = TempDir::new();
    let mut mi = String::new();
    let mut cg = String::new();
    for (i, h) in hierarchies.iter().enumerate() {
        let d = dirname(h);
        let own = if *h == "memory" { "/user" } else { "/" };
        mi.push_str(&format!(
            "{} 31 0:{} / {}/{d} rw - cgroup cgroup rw,{h}\n",
            40 + i,
            40 + i,
            t.path().display()
        ));
        cg.push_str(&format!("{}:{h}:{own}\n", i + 1));
        for dir in ["", &own[1..], &format!("{}/ctr", &own[1..])] {
            for (f, v) in files(h) {
                let rel = format!("{d}/{dir}/{f}").replace("//", "/");
                t.file(&rel, v);
            }
        }
        if *h == "cpuset" {
            t.file(&format!("{d}/cpuset.cpus"), "0-3\n");
            t.file(&format!("{d}/cpuset.mems"), "0\n");
        }
    }
    if let Some(ctrls) = unified {
        mi.push_str(&format!(
            "99 31 0:99 / {}/unified rw - cgroup2 cgroup2 rw\n",
            t.path().display()
        ));
        cg.push_str("0::/\n");
        t.file("unified/cgroup.controllers", &format!("{ctrls}\n"));
        t.file("unified/cgroup.subtree_control", "");
        for (f, v) in [
            ("cgroup.procs", ""),
            ("cgroup.kill", ""),
            ("cgroup.freeze", "0\n"),
            ("hugetlb.2MB.max", "max\n"),
            ("hugetlb.2MB.current", "0\n"),
        ] {
            t.file(&format!("unified/ctr/{f}"), v);
        }
        t.file("unified/ctr/hugetlb.2MB.events", "max 2\n");
    }
    let layout = Layout::parse(&mi, &cg, |p| {
        std::fs::read_to_string(p.join("cgroup.controllers")).ok()
    })
    .unwrap();
    (t, layout)
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
fn relative_path_goes_below_the_callers_cgroup_in_each_hierarchy() {
    let (t, layout) = fake_host(HIERARCHIES, None);
    assert_eq!(layout.mode, CgroupMode::Legacy);
    let m = create(&layout, Some(std::path::Path::new("ctr")), "id", false).unwrap();
    let p = m.paths();
    assert_eq!(p.v1.len(), HIERARCHIES.len());
    assert_eq!(p.v1["memory"], t.path().join("memory/user/ctr"));
    assert_eq!(p.v1["cpu"], t.path().join("cpu/ctr"));
    assert_eq!(p.v1["name=systemd"], t.path().join("systemd/ctr"));
    assert_eq!(m.path(), t.path().join("freezer/ctr"));
    // Absolute: below each hierarchy's root.
    let a = create(&layout, Some(std::path::Path::new("/x/y")), "id", false).unwrap();
    assert_eq!(a.paths().v1["memory"], t.path().join("memory/x/y"));
    // Round trip through the saved paths.
    let again = open(&layout, &p).unwrap();
    assert_eq!(again.paths(), p);
    // Tampered paths are refused.
    let mut bad = p.clone();
    bad.v1.insert("memory".into(), "/etc".into());
    assert!(open(&layout, &bad).is_err());
    let mut bad = p;
    bad.v1.insert("cpu".into(), t.path().join("cpu/../memory"));
    assert!(open(&layout, &bad).is_err());
}

#[test]
fn apply_joins_every_hierarchy_and_seeds_cpuset() {
    let (t, layout) = fake_host(HIERARCHIES, None);
    let m = create(&layout, Some(std::path::Path::new("ctr")), "id", false).unwrap();
    take_writes();
    m.apply(4242).unwrap();
    let w = take_writes();
    assert_eq!(writes_to(&w, "cgroup.procs").len(), HIERARCHIES.len());
    assert_eq!(t.read("systemd/ctr/cgroup.procs"), "4242");
    assert_eq!(t.read("cpuset/ctr/cpuset.cpus"), "0-3");
    assert_eq!(t.read("cpuset/ctr/cpuset.mems"), "0");
    // cpuset before the join.
    let first_cpuset = w
        .iter()
        .position(|(p, _)| p.ends_with("cpuset/ctr/cpuset.cpus"));
    let join = w
        .iter()
        .position(|(p, _)| p.ends_with("cpuset/ctr/cgroup.procs"));
    assert!(first_cpuset < join);
}

#[test]
fn every_resource_lands_in_its_file() {
    let (t, layout) = fake_host(HIERARCHIES, None);
    let m = create(&layout, Some(std::path::Path::new("ctr")), "id", false).unwrap();
    take_writes();
    let warnings = m
        .set(&res(json!({
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000, "idle": 0,
                    "realtimePeriod": 1000000, "realtimeRuntime": 950000, "cpus": "1", "mems": "0"},
            "memory": {"limit": 104857600, "swap": 209715200, "reservation": 52428800,
                       "swappiness": 10, "disableOOMKiller": true, "kernel": 1},
            "pids": {"limit": 16},
            "blockIO": {"weight": 500,
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}, {"name": "lo", "priority": 2}]},
            "devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
        })))
        .unwrap();
    let w = take_writes();
    assert_eq!(t.read("cpu/ctr/cpu.shares"), "512");
    assert_eq!(t.read("cpu/ctr/cpu.cfs_quota_us"), "50000");
    assert_eq!(t.read("cpu/ctr/cpu.cfs_period_us"), "100000");
    assert_eq!(t.read("cpu/ctr/cpu.cfs_burst_us"), "1000");
    assert_eq!(t.read("cpu/ctr/cpu.rt_runtime_us"), "950000");
    assert_eq!(t.read("cpuset/ctr/cpuset.cpus"), "1");
    assert_eq!(t.read("memory/user/ctr/memory.limit_in_bytes"), "104857600");
    assert_eq!(
        t.read("memory/user/ctr/memory.memsw.limit_in_bytes"),
        "209715200"
    );
    assert_eq!(
        t.read("memory/user/ctr/memory.soft_limit_in_bytes"),
        "52428800"
    );
    assert_eq!(t.read("memory/user/ctr/memory.swappiness"), "10");
    assert_eq!(t.read("memory/user/ctr/memory.oom_control"), "1");
    assert_eq!(t.read("pids/ctr/pids.max"), "16");
    assert_eq!(
        t.read("blkio/ctr/blkio.throttle.read_bps_device"),
        "8:0 1048576"
    );
    assert_eq!(
        t.read("blkio/ctr/blkio.throttle.write_iops_device"),
        "8:0 10"
    );
    assert_eq!(t.read("hugetlb/ctr/hugetlb.2MB.limit_in_bytes"), "2097152");
    assert_eq!(t.read("net_cls,net_prio/ctr/net_cls.classid"), "1048577");
    assert_eq!(writes_to(&w, "net_prio.ifpriomap"), ["eth0 5", "lo 2"]);
    // rt: period before runtime.
    let rt: Vec<_> = w
        .iter()
        .filter_map(|(p, _)| p.file_name()?.to_str())
        .filter(|f| f.starts_with("cpu.rt"))
        .collect();
    assert_eq!(rt, ["cpu.rt_period_us", "cpu.rt_runtime_us"]);
    // Lowering from "unlimited": limit first, then memsw.
    let mem: Vec<_> = w
        .iter()
        .filter_map(|(p, _)| p.file_name()?.to_str())
        .filter(|f| f.ends_with("limit_in_bytes") && f.starts_with("memory."))
        .collect();
    assert_eq!(
        mem,
        [
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.soft_limit_in_bytes"
        ]
    );
    let dev: Vec<_> = w
        .iter()
        .filter(|(p, _)| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("devices."))
        })
        .map(|(p, v)| format!("{} {v}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert_eq!(
        dev,
        [
            "devices.deny a",
            "devices.deny a",
            "devices.allow c 1:3 rwm"
        ]
    );
    // Kernel memory ignored, blkio weight has no file on this "kernel".
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].contains("kernel"));
    assert!(warnings[1].contains("blockIO weights"));
}

#[test]
fn memory_and_swap_ordering() {
    let (t, layout) = fake_host(&["memory"], None);
    let m = create(&layout, Some(std::path::Path::new("ctr")), "id", false).unwrap();
    let order = |w: Vec<(PathBuf, String)>| -> Vec<String> {
        w.into_iter()
            .filter(|(p, _)| p.to_string_lossy().contains("limit_in_bytes"))
            .map(|(p, v)| format!("{}={v}", p.file_name().unwrap().to_string_lossy()))
            .collect()
    };
    m.set(&res(json!({"memory": {"limit": 100, "swap": 200}})))
        .unwrap();
    take_writes();
    // Raising above the current limit: memsw first.
    m.set(&res(json!({"memory": {"limit": 300, "swap": 400}})))
        .unwrap();
    assert_eq!(
        order(take_writes()),
        [
            "memory.memsw.limit_in_bytes=400",
            "memory.limit_in_bytes=300"
        ]
    );
    // Lowering: limit first.
    m.set(&res(json!({"memory": {"limit": 50, "swap": 60}})))
        .unwrap();
    assert_eq!(
        order(take_writes()),
        ["memory.limit_in_bytes=50", "memory.memsw.limit_in_bytes=60"]
    );
    // Unlimited swap: memsw first.
    m.set(&res(json!({"memory": {"limit": 10, "swap": -1}})))
        .unwrap();
    assert_eq!(
        order(take_writes()),
        ["memory.memsw.limit_in_bytes=-1", "memory.limit_in_bytes=10"]
    );
    // Unlimited memory alone also lifts memsw.
    m.set(&res(json!({"memory": {"limit": -1}}))).unwrap();
    assert_eq!(
        order(take_writes()),
        ["memory.memsw.limit_in_bytes=-1", "memory.limit_in_bytes=-1"]
    );
    assert_eq!(t.read("memory/user/ctr/memory.limit_in_bytes"), "-1");
    // checkBeforeUpdate: usage is 8192.
    assert!(m
        .set(&res(
            json!({"memory": {"limit": 4096, "checkBeforeUpdate": true}})
        ))
        .is_err());
}

#[test]
fn shares_clamped_by_the_kernel_are_an_error() {
    let (t, layout) = fake_host(&["cpu"], None);
    let m = create(&layout, Some(std::path::Path::new("ctr")), "id", false).unwrap();
    // (A regular file reads back what was written, so only the happy path
    // of the read-back check can be shown here; the host test covers the
    // kernel.)
    m.set(&res(json!({"cpu": {"shares": 2}}))).unwrap();
    assert_eq!(t.read("cpu/ctr/cpu.shares"), "2");
}

#[test]
fn missing_hierarchies() {
    let (_t, layout) = fake_host(&["cpu", "freezer"], None);
    let m = create(&layout, Some(std::path::Path::new("ctr")), "id", false).unwrap();
    for (cfg, what) in [
        (
            json!({"memory": {"limit": 1000}}),
            "no memory cgroup hierarchy",
        ),
        (json!({"pids": {"limit": 1}}), "no pids cgroup hierarchy"),
        (json!({"cpu": {"cpus": "0"}}), "no cpuset cgroup hierarchy"),
        (
            json!({"devices": [{"allow": false}]}),
            "no devices cgroup hierarchy",
        ),
        (
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}),
            "no hugetlb",
        ),
        (
            json!({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]}}),
            "no blkio",
        ),
        (json!({"rdma": {"mlx4_0": {"hcaHandles": 1}}}), "no rdma"),
        (json!({"unified": {"memory.high": "1"}}), "needs cgroup v2"),
    ] {
        let e = m.set(&res(cfg.clone())).unwrap_err();
        assert!(e.to_string().contains(what), "{cfg}: {e}");
    }
    // A limit for a controller the host does not have is refused, naming it.
    for (cfg, controller) in [
        (json!({"network": {"classID": 1}}), "net_cls"),
        (
            json!({"network": {"priorities": [{"name": "lo", "priority": 1}]}}),
            "net_prio",
        ),
        (json!({"blockIO": {"weight": 100}}), "blkio"),
    ] {
        let e = m.set(&res(cfg.clone())).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cgroup controller {controller}:")),
            "{cfg}: {e}"
        );
    }
    // Values that mean "not set" need no controller.
    m.set(&res(json!({"network": {"classID": 0, "priorities": []}})))
        .unwrap();
    // Nothing requested for a missing controller is fine.
    m.set(&res(json!({"memory": {}}))).unwrap();
}

#[test]
fn freezer_state_pids_oom_destroy() {
    let (t, layout) = fake_host(&["memory", "freezer", "pids"], None);
    let m = create(&layout, Some(std::path::Path::new("ctr")), "id", false).unwrap();
    m.set(&res(json!({}))).unwrap();
    assert_eq!(m.state().unwrap(), FreezerState::Thawed);
    m.freeze().unwrap(); // a regular file reads back FROZEN at once
    assert_eq!(m.state().unwrap(), FreezerState::Frozen);
    m.thaw().unwrap();
    assert_eq!(t.read("freezer/ctr/freezer.state"), "THAWED");
    assert_eq!(m.pids().unwrap(), Vec::<i32>::new());
    t.file(
        "memory/user/ctr/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
    );
    assert_eq!(m.oom_events().unwrap(), 3);
    m.destroy().unwrap();
    assert!(!t.path().join("memory/user/ctr").exists());
    assert!(!t.path().join("freezer/ctr").exists());
    assert!(t.path().join("memory/user").exists());
    m.destroy().unwrap();
}

#[test]
fn stats_from_sample_files() {
    let (t, layout) = fake_host(
        &[
            "cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "hugetlb",
        ],
        None,
    );
    let m = create(&layout, Some(std::path::Path::new("ctr")), "id", false).unwrap();
    for (f, v) in [
        ("cpuacct/ctr/cpuacct.usage", "2248423543146\n"),
        (
            "cpuacct/ctr/cpuacct.usage_percpu",
            "1178914947144 1069511641115 \n",
        ),
        (
            "cpuacct/ctr/cpuacct.usage_all",
            "cpu user system\n0 962586301971 206636075176\n1 842508868616 218175233314\n",
        ),
        ("cpuacct/ctr/cpuacct.stat", "user 182008\nsystem 42833\n"),
        (
            "cpu/ctr/cpu.stat",
            "nr_periods 20\nnr_throttled 5\nthrottled_time 123456\nnr_bursts 0\nburst_time 0\n",
        ),
        ("cpuset/ctr/cpuset.cpus", "0-1\n"),
        ("cpuset/ctr/cpuset.mems", "0\n"),
        ("cpuset/ctr/cpuset.sched_load_balance", "1\n"),
        ("cpuset/ctr/cpuset.sched_relax_domain_level", "-1\n"),
        (
            "memory/user/ctr/memory.stat",
            "cache 349892608\nrss 2027520\nrss_huge 0\ntotal_cache 349892608\n",
        ),
        ("memory/user/ctr/memory.usage_in_bytes", "351920128\n"),
        ("memory/user/ctr/memory.max_usage_in_bytes", "400000000\n"),
        ("memory/user/ctr/memory.failcnt", "2\n"),
        (
            "memory/user/ctr/memory.limit_in_bytes",
            "9223372036854771712\n",
        ),
        ("memory/user/ctr/memory.memsw.usage_in_bytes", "351920128\n"),
        (
            "memory/user/ctr/memory.memsw.max_usage_in_bytes",
            "400000000\n",
        ),
        ("memory/user/ctr/memory.memsw.failcnt", "0\n"),
        ("memory/user/ctr/memory.kmem.tcp.usage_in_bytes", "0\n"),
        (
            "memory/user/ctr/memory.kmem.tcp.limit_in_bytes",
            "9223372036854771712\n",
        ),
        ("pids/ctr/pids.current", "7\n"),
        ("pids/ctr/pids.max", "100\n"),
        (
            "blkio/ctr/blkio.bfq.io_serviced_recursive",
            "8:0 Read 10\n8:0 Write 20\n8:0 Total 30\nTotal 30\n",
        ),
        (
            "blkio/ctr/blkio.bfq.io_service_bytes_recursive",
            "8:0 Read 40960\n8:0 Write 81920\nTotal 122880\n",
        ),
        ("hugetlb/ctr/hugetlb.2MB.usage_in_bytes", "2097152\n"),
        ("hugetlb/ctr/hugetlb.2MB.max_usage_in_bytes", "4194304\n"),
        ("hugetlb/ctr/hugetlb.2MB.failcnt", "1\n"),
    ] {
        t.file(f, v);
    }
    let s = m.stats().unwrap();
    assert_eq!(s.cpu.usage.total, 2_248_423_543_146);
    assert_eq!(
        s.cpu.usage.percpu,
        vec![1_178_914_947_144, 1_069_511_641_115]
    );
    assert_eq!(
        s.cpu.usage.percpu_user,
        vec![962_586_301_971, 842_508_868_616]
    );
    assert_eq!(
        s.cpu.usage.percpu_kernel,
        vec![206_636_075_176, 218_175_233_314]
    );
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    assert_eq!(s.cpu.usage.user, 182_008 * 1_000_000_000 / hz);
    assert_eq!(s.cpu.usage.kernel, 42_833 * 1_000_000_000 / hz);
    assert_eq!(s.cpu.throttling.periods, 20);
    assert_eq!(s.cpu.throttling.throttled_time, 123_456);
    assert_eq!(s.cpuset.cpus, vec![0, 1]);
    assert_eq!(s.cpuset.sched_load_balance, 1);
    assert_eq!(s.cpuset.sched_relax_domain_level, -1);
    assert_eq!(s.memory.cache, 349_892_608);
    assert_eq!(s.memory.usage.usage, 351_920_128);
    assert_eq!(s.memory.usage.max, 400_000_000);
    assert_eq!(s.memory.usage.failcnt, 2);
    assert_eq!(s.memory.usage.limit, 9_223_372_036_854_771_712);
    assert_eq!(s.memory.swap.usage, 351_920_128);
    assert_eq!(s.memory.kernel, Default::default());
    assert_eq!(s.memory.kernel_tcp.limit, 9_223_372_036_854_771_712);
    assert_eq!(s.memory.raw["rss"], 2_027_520);
    assert_eq!(s.pids.current, 7);
    assert_eq!(s.pids.limit, 100);
    assert_eq!(s.blkio.io_serviced_recursive.len(), 3);
    assert_eq!(s.blkio.io_service_bytes_recursive[1].value, 81920);
    assert_eq!(s.hugetlb["2MB"].max, 4_194_304);
    assert_eq!(s.hugetlb["2MB"].failcnt, 1);
    assert!(!s.hugetlb.contains_key("1GB") || s.hugetlb["1GB"].usage == 0);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["memory"]["usage"]["limit"], 9_223_372_036_854_771_712u64);
    assert_eq!(
        v["blkio"]["ioServicedRecursive"][0],
        json!({"major": 8, "op": "Read", "value": 10})
    );
}

#[test]
fn hybrid_routes_hugetlb_to_the_unified_hierarchy() {
    let v1: Vec<&str> = HIERARCHIES
        .iter()
        .copied()
        .filter(|h| *h != "hugetlb")
        .collect();
    let (t, layout) = fake_host(&v1, Some("hugetlb"));
    assert_eq!(layout.mode, CgroupMode::Hybrid);
    let m = create(&layout, Some(std::path::Path::new("ctr")), "id", false).unwrap();
    assert_eq!(m.paths().unified, Some(t.path().join("unified/ctr")));
    take_writes();
    m.apply(77).unwrap();
    let w = take_writes();
    // Joined v1 and v2; no controller enabled just for joining.
    assert_eq!(t.read("unified/ctr/cgroup.procs"), "77");
    assert!(writes_to(&w, "cgroup.subtree_control").is_empty());
    m.set(&res(json!({
        "memory": {"limit": 1000},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
        "unified": {"hugetlb.2MB.max": "4194304"}
    })))
    .unwrap();
    let w = take_writes();
    assert_eq!(t.read("memory/user/ctr/memory.limit_in_bytes"), "1000");
    assert_eq!(writes_to(&w, "cgroup.subtree_control"), ["+hugetlb"]);
    assert_eq!(writes_to(&w, "hugetlb.2MB.max"), ["2097152", "4194304"]);
    let e = m
        .set(&res(json!({"unified": {"memory.high": "1"}})))
        .unwrap_err();
    assert!(
        e.to_string().contains("not in the cgroup v2 hierarchy"),
        "{e}"
    );
    // Stats: memory from v1, hugetlb from v2.
    let s = m.stats().unwrap();
    assert_eq!(s.hugetlb["2MB"].failcnt, 2);
    // SIGKILL through cgroup.kill.
    m.kill_all(Signal::SIGKILL).unwrap();
    assert_eq!(t.read("unified/ctr/cgroup.kill"), "1");
    m.destroy().unwrap();
    assert!(!t.path().join("unified/ctr").exists());
    assert!(!t.path().join("cpu/ctr").exists());
}
