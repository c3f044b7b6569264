//! Statistics from cgroup v2 files, mapped to runc's (v1-shaped) names.
//!
//! Each controller's files exist only when it is enabled for the cgroup;
//! a missing controller leaves its section empty rather than failing the
//! whole call. `only` restricts collection to some controllers (the
//! unified half of a hybrid host reports just the ones it owns).

use std::path::Path;

use crate::error::Result;
use crate::fs;
use crate::stats::{self, Hugetlb, MemoryEntry, Stats};

pub(crate) fn fill(dir: &Path, s: &mut Stats, only: Option<&[String]>) -> Result<()> {
    let want = |c: &str| only.is_none_or(|o| o.iter().any(|x| x == c));
    if want("cpu") {
        cpu(dir, s)?;
    }
    if want("cpuset") {
        if let Some(c) = fs::read_opt(dir, "cpuset.cpus.effective")? {
            s.cpuset.cpus = stats::parse_cpu_list(&dir.join("cpuset.cpus.effective"), &c)?;
        }
        if let Some(m) = fs::read_opt(dir, "cpuset.mems.effective")? {
            s.cpuset.mems = stats::parse_cpu_list(&dir.join("cpuset.mems.effective"), &m)?;
        }
    }
    if want("memory") {
        memory(dir, s)?;
    }
    if want("pids") {
        if let Some(cur) = fs::read_u64_opt(dir, "pids.current")? {
            s.pids.current = cur;
            s.pids.limit = match fs::read_u64_opt(dir, "pids.max")? {
                Some(u64::MAX) | None => 0,
                Some(v) => v,
            };
        }
    }
    if want("io") {
        if let Some(st) = fs::read_opt(dir, "io.stat")? {
            let (bytes, ios) = stats::parse_io_stat(&dir.join("io.stat"), &st)?;
            s.blkio.io_service_bytes_recursive = bytes;
            s.blkio.io_serviced_recursive = ios;
        }
        s.blkio.psi = stats::read_psi(dir, "io.pressure")?;
    }
    if want("hugetlb") {
        for size in stats::hugetlb_sizes(dir, "max")? {
            let p = format!("hugetlb.{size}");
            let usage = match fs::read_u64_opt(dir, &format!("{p}.rsvd.current"))? {
                Some(v) => v,
                None => fs::read_u64_or0(dir, &format!("{p}.current"))?,
            };
            let failcnt = fs::read_keyed(dir, &format!("{p}.events"), "max")?.unwrap_or(0);
            s.hugetlb.insert(
                size,
                Hugetlb {
                    usage,
                    max: 0,
                    failcnt,
                },
            );
        }
    }
    Ok(())
}

fn cpu(dir: &Path, s: &mut Stats) -> Result<()> {
    // cpu.stat exists even without the cpu controller (usage only).
    if let Some(st) = fs::read_opt(dir, "cpu.stat")? {
        for (k, v) in fs::parse_flat_keyed(&st) {
            match k.as_str() {
                "usage_usec" => s.cpu.usage.total = v.saturating_mul(1000),
                "user_usec" => s.cpu.usage.user = v.saturating_mul(1000),
                "system_usec" => s.cpu.usage.kernel = v.saturating_mul(1000),
                "nr_periods" => s.cpu.throttling.periods = v,
                "nr_throttled" => s.cpu.throttling.throttled_periods = v,
                "throttled_usec" => s.cpu.throttling.throttled_time = v.saturating_mul(1000),
                _ => {}
            }
        }
    }
    s.cpu.psi = stats::read_psi(dir, "cpu.pressure")?;
    Ok(())
}

fn memory(dir: &Path, s: &mut Stats) -> Result<()> {
    let Some(usage) = fs::read_u64_opt(dir, "memory.current")? else {
        return Ok(()); // memory controller not enabled here
    };
    if let Some(st) = fs::read_opt(dir, "memory.stat")? {
        s.memory.raw = stats::parse_memory_stat(&st);
        s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
    }
    let mem = MemoryEntry {
        usage,
        limit: fs::read_u64_opt(dir, "memory.max")?.unwrap_or(u64::MAX),
        max: fs::read_u64_or0(dir, "memory.peak")?,
        failcnt: fs::read_keyed(dir, "memory.events", "max")?.unwrap_or(0),
    };
    // v1 reported memory+swap; do the same so consumers see one meaning.
    if let Some(swap_usage) = fs::read_u64_opt(dir, "memory.swap.current")? {
        let swap_limit = fs::read_u64_opt(dir, "memory.swap.max")?.unwrap_or(u64::MAX);
        s.memory.swap = MemoryEntry {
            usage: swap_usage.saturating_add(mem.usage),
            limit: if swap_limit == u64::MAX || mem.limit == u64::MAX {
                u64::MAX
            } else {
                swap_limit.saturating_add(mem.limit)
            },
            max: 0,
            failcnt: fs::read_keyed(dir, "memory.swap.events", "max")?.unwrap_or(0),
        };
    }
    s.memory.usage = mem;
    s.memory.psi = stats::read_psi(dir, "memory.pressure")?;
    Ok(())
}
