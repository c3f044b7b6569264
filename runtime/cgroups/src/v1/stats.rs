//! Statistics from cgroup v1 files, per hierarchy; an unmounted hierarchy
//! leaves its section empty.

use std::path::Path;

use super::V1Manager;
use crate::error::Result;
use crate::fs;
use crate::stats::{self, Hugetlb, MemoryEntry, Stats};

pub(crate) fn fill(m: &V1Manager, s: &mut Stats) -> Result<()> {
    if let Some(dir) = m.dir_of("cpuacct") {
        cpuacct(dir, s)?;
    }
    if let Some(dir) = m.dir_of("cpu") {
        if let Some(st) = fs::read_opt(dir, "cpu.stat")? {
            for (k, v) in fs::parse_flat_keyed(&st) {
                match k.as_str() {
                    "nr_periods" => s.cpu.throttling.periods = v,
                    "nr_throttled" => s.cpu.throttling.throttled_periods = v,
                    "throttled_time" => s.cpu.throttling.throttled_time = v,
                    _ => {}
                }
            }
        }
    }
    if let Some(dir) = m.dir_of("cpuset") {
        cpuset(dir, s)?;
    }
    if let Some(dir) = m.dir_of("memory") {
        memory(dir, s)?;
    }
    if let Some(dir) = m.dir_of("pids") {
        s.pids.current = fs::read_u64_or0(dir, "pids.current")?;
        s.pids.limit = match fs::read_u64_opt(dir, "pids.max")? {
            Some(u64::MAX) | None => 0,
            Some(v) => v,
        };
    }
    if let Some(dir) = m.dir_of("blkio") {
        blkio(dir, s)?;
    }
    if let Some(dir) = m.dir_of("hugetlb") {
        for size in stats::hugetlb_sizes(dir, "limit_in_bytes")? {
            // Prefer the reservation counters (Linux 5.7+), like runc.
            let p = if fs::exists(dir, &format!("hugetlb.{size}.rsvd.usage_in_bytes")) {
                format!("hugetlb.{size}.rsvd")
            } else {
                format!("hugetlb.{size}")
            };
            s.hugetlb.insert(
                size,
                Hugetlb {
                    usage: fs::read_u64_or0(dir, &format!("{p}.usage_in_bytes"))?,
                    max: fs::read_u64_or0(dir, &format!("{p}.max_usage_in_bytes"))?,
                    failcnt: fs::read_u64_or0(dir, &format!("{p}.failcnt"))?,
                },
            );
        }
    }
    Ok(())
}

fn numbers(path: &Path, s: &str) -> Result<Vec<u64>> {
    s.split_whitespace()
        .map(|w| {
            w.parse::<u64>()
                .map_err(|_| crate::error::Error::parse(path, s, "expected numbers"))
        })
        .collect()
}

fn cpuacct(dir: &Path, s: &mut Stats) -> Result<()> {
    s.cpu.usage.total = fs::read_u64_or0(dir, "cpuacct.usage")?;
    if let Some(p) = fs::read_opt(dir, "cpuacct.usage_percpu")? {
        s.cpu.usage.percpu = numbers(&dir.join("cpuacct.usage_percpu"), &p)?;
    }
    // "cpu user system" then one line per CPU, in nanoseconds.
    if let Some(all) = fs::read_opt(dir, "cpuacct.usage_all")? {
        let path = dir.join("cpuacct.usage_all");
        for line in all.lines().skip(1) {
            let v = numbers(&path, line)?;
            if let [_, user, system] = v.as_slice() {
                s.cpu.usage.percpu_user.push(*user);
                s.cpu.usage.percpu_kernel.push(*system);
            }
        }
    }
    // "user N\nsystem N" in clock ticks.
    if let Some(st) = fs::read_opt(dir, "cpuacct.stat")? {
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = if hz > 0 { hz as u64 } else { 100 };
        for (k, v) in fs::parse_flat_keyed(&st) {
            let ns = v.saturating_mul(1_000_000_000) / hz;
            match k.as_str() {
                "user" => s.cpu.usage.user = ns,
                "system" => s.cpu.usage.kernel = ns,
                _ => {}
            }
        }
    }
    Ok(())
}

fn cpuset(dir: &Path, s: &mut Stats) -> Result<()> {
    if let Some(c) = fs::read_opt(dir, "cpuset.cpus")? {
        s.cpuset.cpus = stats::parse_cpu_list(&dir.join("cpuset.cpus"), &c)?;
    }
    if let Some(c) = fs::read_opt(dir, "cpuset.mems")? {
        s.cpuset.mems = stats::parse_cpu_list(&dir.join("cpuset.mems"), &c)?;
    }
    let c = &mut s.cpuset;
    for (file, field) in [
        ("cpuset.cpu_exclusive", &mut c.cpu_exclusive),
        ("cpuset.mem_hardwall", &mut c.mem_hardwall),
        ("cpuset.mem_exclusive", &mut c.mem_exclusive),
        ("cpuset.memory_migrate", &mut c.memory_migrate),
        ("cpuset.memory_spread_page", &mut c.memory_spread_page),
        ("cpuset.memory_spread_slab", &mut c.memory_spread_slab),
        ("cpuset.memory_pressure", &mut c.memory_pressure),
        ("cpuset.sched_load_balance", &mut c.sched_load_balance),
    ] {
        *field = fs::read_u64_or0(dir, file)?;
    }
    if let Some(v) = fs::read_opt(dir, "cpuset.sched_relax_domain_level")? {
        c.sched_relax_domain_level = v.trim().parse().unwrap_or(0);
    }
    Ok(())
}

fn entry(dir: &Path, prefix: &str) -> Result<Option<MemoryEntry>> {
    let Some(usage) = fs::read_u64_opt(dir, &format!("{prefix}.usage_in_bytes"))? else {
        return Ok(None);
    };
    Ok(Some(MemoryEntry {
        usage,
        limit: fs::read_u64_or0(dir, &format!("{prefix}.limit_in_bytes"))?,
        max: fs::read_u64_or0(dir, &format!("{prefix}.max_usage_in_bytes"))?,
        failcnt: fs::read_u64_or0(dir, &format!("{prefix}.failcnt"))?,
    }))
}

fn memory(dir: &Path, s: &mut Stats) -> Result<()> {
    if let Some(st) = fs::read_opt(dir, "memory.stat")? {
        s.memory.raw = stats::parse_memory_stat(&st);
        s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
    }
    if let Some(e) = entry(dir, "memory")? {
        s.memory.usage = e;
    }
    if let Some(e) = entry(dir, "memory.memsw")? {
        s.memory.swap = e;
    }
    if let Some(e) = entry(dir, "memory.kmem")? {
        s.memory.kernel = e;
    }
    if let Some(e) = entry(dir, "memory.kmem.tcp")? {
        s.memory.kernel_tcp = e;
    }
    Ok(())
}

/// The first group whose first file has entries wins, as in runc: BFQ with
/// debug stats, BFQ, CFQ, then the throttling layer's counters.
fn blkio(dir: &Path, s: &mut Stats) -> Result<()> {
    let b = &mut s.blkio;
    type Slot = fn(&mut crate::stats::Blkio) -> &mut Vec<crate::stats::BlkioEntry>;
    let bytes: Slot = |b| &mut b.io_service_bytes_recursive;
    let serviced: Slot = |b| &mut b.io_serviced_recursive;
    let queued: Slot = |b| &mut b.io_queued_recursive;
    let stime: Slot = |b| &mut b.io_service_time_recursive;
    let wtime: Slot = |b| &mut b.io_wait_time_recursive;
    let merged: Slot = |b| &mut b.io_merged_recursive;
    let time: Slot = |b| &mut b.io_time_recursive;
    let sectors: Slot = |b| &mut b.sectors_recursive;
    let groups: [&[(&str, Slot)]; 5] = [
        &[
            ("blkio.bfq.sectors_recursive", sectors),
            ("blkio.bfq.io_service_time_recursive", stime),
            ("blkio.bfq.io_wait_time_recursive", wtime),
            ("blkio.bfq.io_merged_recursive", merged),
            ("blkio.bfq.io_queued_recursive", queued),
            ("blkio.bfq.time_recursive", time),
            ("blkio.bfq.io_serviced_recursive", serviced),
            ("blkio.bfq.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.bfq.io_serviced_recursive", serviced),
            ("blkio.bfq.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.sectors_recursive", sectors),
            ("blkio.io_service_time_recursive", stime),
            ("blkio.io_wait_time_recursive", wtime),
            ("blkio.io_merged_recursive", merged),
            ("blkio.io_queued_recursive", queued),
            ("blkio.time_recursive", time),
            ("blkio.io_serviced_recursive", serviced),
            ("blkio.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.throttle.io_serviced_recursive", serviced),
            ("blkio.throttle.io_service_bytes_recursive", bytes),
        ],
        &[
            ("blkio.throttle.io_serviced", serviced),
            ("blkio.throttle.io_service_bytes", bytes),
        ],
    ];
    for group in groups {
        let mut parsed = Vec::new();
        for (i, (file, slot)) in group.iter().enumerate() {
            let Some(text) = fs::read_opt(dir, file)? else {
                break;
            };
            let e = stats::parse_blkio_v1(&dir.join(file), &text)?;
            if i == 0 && e.is_empty() {
                break;
            }
            parsed.push((*slot, e));
        }
        if parsed.len() == group.len() {
            for (slot, e) in parsed {
                *slot(b) = e;
            }
            return Ok(());
        }
    }
    Ok(())
}
