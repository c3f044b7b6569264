//! `hull events --stats` (runc's `types.Stats` JSON) → the metrics type
//! containerd's `ctr task metrics` decodes: `io.containerd.cgroups.v1.Metrics`
//! on v1 and hybrid hosts, `io.containerd.cgroups.v2.Metrics` on a pure
//! cgroup v2 host (as containerd's own shim chooses). Missing fields are 0.

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;
use serde_json::Value;

use crate::events::any;

pub const V1_TYPE: &str = "io.containerd.cgroups.v1.Metrics";
pub const V2_TYPE: &str = "io.containerd.cgroups.v2.Metrics";

/// True on a pure cgroup v2 host (/sys/fs/cgroup is cgroup2).
pub fn unified_host() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// `events --stats` prints `{"type":"stats","id":..,"data":{...}}`.
pub fn from_stats_json(text: &[u8], unified: bool) -> Result<Any, String> {
    let v: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let data = v.get("data").unwrap_or(&v);
    Ok(if unified {
        any(V2_TYPE, &to_v2(data))
    } else {
        any(V1_TYPE, &to_v1(data))
    })
}

fn mem_entry(v: &Value) -> MessageField<v1::MemoryEntry> {
    let mut e = v1::MemoryEntry::new();
    e.limit = u(&v["limit"]);
    e.usage = u(&v["usage"]);
    e.max = u(&v["max"]);
    e.failcnt = u(&v["failcnt"]);
    MessageField::some(e)
}

pub fn to_v1(d: &Value) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    let mut pids = v1::PidsStat::new();
    pids.current = u(&d["pids"]["current"]);
    pids.limit = u(&d["pids"]["limit"]);
    m.pids = MessageField::some(pids);

    let mut cpu = v1::CPUStat::new();
    let mut usage = v1::CPUUsage::new();
    let cu = &d["cpu"]["usage"];
    usage.total = u(&cu["total"]);
    usage.kernel = u(&cu["kernel"]);
    usage.user = u(&cu["user"]);
    usage.per_cpu = cu["percpu"]
        .as_array()
        .map(|a| a.iter().map(u).collect())
        .unwrap_or_default();
    cpu.usage = MessageField::some(usage);
    let mut thr = v1::Throttle::new();
    let t = &d["cpu"]["throttling"];
    thr.periods = u(&t["periods"]);
    thr.throttled_periods = u(&t["throttledPeriods"]);
    thr.throttled_time = u(&t["throttledTime"]);
    cpu.throttling = MessageField::some(thr);
    m.cpu = MessageField::some(cpu);

    m.memory = MessageField::some(memory_v1(&d["memory"]));

    let mut blkio = v1::BlkIOStat::new();
    let b = &d["blkio"];
    let entries = |key: &str| -> Vec<v1::BlkIOEntry> {
        b[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        let mut x = v1::BlkIOEntry::new();
                        x.major = u(&e["major"]);
                        x.minor = u(&e["minor"]);
                        x.op = e["op"].as_str().unwrap_or_default().to_owned();
                        x.value = u(&e["value"]);
                        x
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    blkio.io_service_bytes_recursive = entries("ioServiceBytesRecursive");
    blkio.io_serviced_recursive = entries("ioServicedRecursive");
    blkio.io_queued_recursive = entries("ioQueueRecursive");
    blkio.io_service_time_recursive = entries("ioServiceTimeRecursive");
    blkio.io_wait_time_recursive = entries("ioWaitTimeRecursive");
    blkio.io_merged_recursive = entries("ioMergedRecursive");
    blkio.io_time_recursive = entries("ioTimeRecursive");
    blkio.sectors_recursive = entries("sectorsRecursive");
    m.blkio = MessageField::some(blkio);

    if let Some(h) = d["hugetlb"].as_object() {
        for (size, s) in h {
            let mut x = v1::HugetlbStat::new();
            x.pagesize = size.clone();
            x.usage = u(&s["usage"]);
            x.max = u(&s["max"]);
            x.failcnt = u(&s["failcnt"]);
            m.hugetlb.push(x);
        }
    }
    m
}

fn memory_v1(mem: &Value) -> v1::MemoryStat {
    let raw = &mem["raw"];
    let r = |k: &str| u(&raw[k]);
    let mut s = v1::MemoryStat::new();
    s.cache = r("cache");
    s.rss = r("rss");
    s.rss_huge = r("rss_huge");
    s.mapped_file = r("mapped_file");
    s.dirty = r("dirty");
    s.writeback = r("writeback");
    s.pg_pg_in = r("pgpgin");
    s.pg_pg_out = r("pgpgout");
    s.pg_fault = r("pgfault");
    s.pg_maj_fault = r("pgmajfault");
    s.inactive_anon = r("inactive_anon");
    s.active_anon = r("active_anon");
    s.inactive_file = r("inactive_file");
    s.active_file = r("active_file");
    s.unevictable = r("unevictable");
    s.hierarchical_memory_limit = r("hierarchical_memory_limit");
    s.hierarchical_swap_limit = r("hierarchical_memsw_limit");
    s.total_cache = r("total_cache");
    s.total_rss = r("total_rss");
    s.total_rss_huge = r("total_rss_huge");
    s.total_mapped_file = r("total_mapped_file");
    s.total_dirty = r("total_dirty");
    s.total_writeback = r("total_writeback");
    s.total_pg_pg_in = r("total_pgpgin");
    s.total_pg_pg_out = r("total_pgpgout");
    s.total_pg_fault = r("total_pgfault");
    s.total_pg_maj_fault = r("total_pgmajfault");
    s.total_inactive_anon = r("total_inactive_anon");
    s.total_active_anon = r("total_active_anon");
    s.total_inactive_file = r("total_inactive_file");
    s.total_active_file = r("total_active_file");
    s.total_unevictable = r("total_unevictable");
    s.usage = mem_entry(&mem["usage"]);
    s.swap = mem_entry(&mem["swap"]);
    s.kernel = mem_entry(&mem["kernel"]);
    s.kernel_tcp = mem_entry(&mem["kernelTCP"]);
    s
}

pub fn to_v2(d: &Value) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let mut pids = v2::PidsStat::new();
    pids.current = u(&d["pids"]["current"]);
    pids.limit = u(&d["pids"]["limit"]);
    m.pids = MessageField::some(pids);

    // runc reports v2's microsecond counters in nanoseconds.
    let mut cpu = v2::CPUStat::new();
    let cu = &d["cpu"]["usage"];
    cpu.usage_usec = u(&cu["total"]) / 1000;
    cpu.user_usec = u(&cu["user"]) / 1000;
    cpu.system_usec = u(&cu["kernel"]) / 1000;
    let t = &d["cpu"]["throttling"];
    cpu.nr_periods = u(&t["periods"]);
    cpu.nr_throttled = u(&t["throttledPeriods"]);
    cpu.throttled_usec = u(&t["throttledTime"]) / 1000;
    m.cpu = MessageField::some(cpu);

    let mem = &d["memory"];
    let raw = &mem["raw"];
    let r = |k: &str| u(&raw[k]);
    let mut s = v2::MemoryStat::new();
    s.anon = r("anon");
    s.file = r("file");
    s.kernel_stack = r("kernel_stack");
    s.slab = r("slab");
    s.sock = r("sock");
    s.shmem = r("shmem");
    s.file_mapped = r("file_mapped");
    s.file_dirty = r("file_dirty");
    s.file_writeback = r("file_writeback");
    s.anon_thp = r("anon_thp");
    s.inactive_anon = r("inactive_anon");
    s.active_anon = r("active_anon");
    s.inactive_file = r("inactive_file");
    s.active_file = r("active_file");
    s.unevictable = r("unevictable");
    s.slab_reclaimable = r("slab_reclaimable");
    s.slab_unreclaimable = r("slab_unreclaimable");
    s.pgfault = r("pgfault");
    s.pgmajfault = r("pgmajfault");
    s.usage = u(&mem["usage"]["usage"]);
    s.usage_limit = u(&mem["usage"]["limit"]);
    s.max_usage = u(&mem["usage"]["max"]);
    // runc's "swap" on v2 is memory+swap (see hull-cgroups' stats).
    s.swap_usage = u(&mem["swap"]["usage"]).saturating_sub(s.usage);
    s.swap_limit = u(&mem["swap"]["limit"]);
    m.memory = MessageField::some(s);

    let mut io = v2::IOStat::new();
    let mut by_dev: Vec<v2::IOEntry> = Vec::new();
    for (key, read_field) in [
        ("ioServiceBytesRecursive", true),
        ("ioServicedRecursive", false),
    ] {
        for e in d["blkio"][key].as_array().into_iter().flatten() {
            let (major, minor) = (u(&e["major"]), u(&e["minor"]));
            let idx = match by_dev
                .iter()
                .position(|x| x.major == major && x.minor == minor)
            {
                Some(i) => i,
                None => {
                    let mut x = v2::IOEntry::new();
                    x.major = major;
                    x.minor = minor;
                    by_dev.push(x);
                    by_dev.len() - 1
                }
            };
            let x = &mut by_dev[idx];
            let val = u(&e["value"]);
            match (
                read_field,
                e["op"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
                    .as_str(),
            ) {
                (true, "read") => x.rbytes = val,
                (true, "write") => x.wbytes = val,
                (false, "read") => x.rios = val,
                (false, "write") => x.wios = val,
                _ => {}
            }
        }
    }
    io.usage = by_dev;
    m.io = MessageField::some(io);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_stats_to_v1_metrics() {
        let json = br#"{"type":"stats","id":"c","data":{"cpu":{"usage":{"total":5000,"percpu":[3000,2000],"kernel":10,"user":20}},
            "memory":{"usage":{"limit":1048576,"usage":4096,"max":8192,"failcnt":0},"raw":{"cache":7,"total_rss":9}},
            "pids":{"current":2,"limit":10},"blkio":{"ioServiceBytesRecursive":[{"major":8,"op":"Read","value":5}]}}}"#;
        let a = from_stats_json(json, false).unwrap();
        assert_eq!(a.type_url, V1_TYPE);
        let m = to_v1(&serde_json::from_slice::<Value>(json).unwrap()["data"]);
        assert_eq!(m.cpu.usage.total, 5000);
        assert_eq!(m.cpu.usage.per_cpu, vec![3000, 2000]);
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.cache, 7);
        assert_eq!(m.memory.total_rss, 9);
        assert_eq!(m.pids.current, 2);
        assert_eq!(m.blkio.io_service_bytes_recursive[0].value, 5);
        let m2 = to_v2(&serde_json::from_slice::<Value>(json).unwrap()["data"]);
        assert_eq!(m2.cpu.usage_usec, 5);
        assert_eq!(m2.io.usage[0].rbytes, 5);
        assert!(from_stats_json(b"nope", false).is_err());
    }
}
