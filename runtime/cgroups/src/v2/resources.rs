//! Writing `linux.resources` to cgroup v2 files.
//!
//! | OCI | file | conversion |
//! |---|---|---|
//! | cpu.shares | cpu.weight | [`convert::cpu_shares_to_weight`] |
//! | cpu.quota/period | cpu.max | "QUOTA PERIOD"; quota ≤ 0 → "max"; a missing half keeps the current value |
//! | cpu.burst | cpu.max.burst | written before cpu.max, retried after it on EINVAL |
//! | cpu.idle | cpu.idle | |
//! | cpu.cpus/mems | cpuset.cpus / cpuset.mems | |
//! | memory.limit | memory.max | -1 → "max", 0 = unset |
//! | memory.reservation | memory.low | -1 → "max", 0 = unset |
//! | memory.swap | memory.swap.max | [`convert::memory_swap_to_v2`] (written first) |
//! | pids.limit | pids.max | ≤ 0 → "max" |
//! | blockIO.weight | io.bfq.weight, else io.weight | BFQ takes 10..1000 as is, io.weight gets [`convert::blkio_weight_to_io_weight`] |
//! | blockIO.weightDevice | same files, "MAJ:MIN W" lines | |
//! | blockIO.throttle* | io.max | one "MAJ:MIN rbps=.. wbps=.. riops=.. wiops=.." line per device; rate 0 → "max" |
//! | hugepageLimits | hugetlb.SIZE.max (+ .rsvd.max when present) | negative → "max" |
//! | rdma | rdma.max | "DEV hca_handle=N hca_object=N" |
//! | unified | the named file, verbatim | written last |
//!
//! Settings v2 cannot express are ignored with a warning (never silently):
//! swappiness, disableOOMKiller, kernel/kernelTCP, realtime CPU,
//! blockIO leaf weights. `network` needs the net_cls and net_prio
//! controllers, which cgroup v2 does not have: refused, naming them.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use crate::convert;
use crate::error::{Error, Result};
use crate::fs;

/// Controllers `r` needs enabled (without unified keys and devices).
pub(crate) fn needed_controllers(r: &LinuxResources) -> Vec<&'static str> {
    let mut out = Vec::new();
    if let Some(c) = r.cpu() {
        if c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.idle().is_some()
        {
            out.push("cpu");
        }
        if c.cpus().as_deref().is_some_and(|s| !s.is_empty())
            || c.mems().as_deref().is_some_and(|s| !s.is_empty())
        {
            out.push("cpuset");
        }
    }
    if let Some(m) = r.memory() {
        if m.limit().is_some() || m.reservation().is_some() || m.swap().is_some() {
            out.push("memory");
        }
    }
    if r.pids().is_some() {
        out.push("pids");
    }
    if r.block_io().as_ref().is_some_and(io_is_set) {
        out.push("io");
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        out.push("hugetlb");
    }
    if r.rdma().as_ref().is_some_and(|h| !h.is_empty()) {
        out.push("rdma");
    }
    out
}

fn io_is_set(b: &LinuxBlockIo) -> bool {
    b.weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|d| !d.is_empty())
        || [
            b.throttle_read_bps_device(),
            b.throttle_write_bps_device(),
            b.throttle_read_iops_device(),
            b.throttle_write_iops_device(),
        ]
        .iter()
        .any(|d| d.as_ref().is_some_and(|d| !d.is_empty()))
}

/// Writes every typed resource (not devices, not unified).
pub(crate) fn set(dir: &Path, r: &LinuxResources, warnings: &mut Vec<String>) -> Result<()> {
    if let Some(c) = r.cpu() {
        set_cpuset(dir, c)?;
        set_cpu(dir, c, warnings)?;
    }
    if let Some(m) = r.memory() {
        set_memory(dir, m, warnings)?;
    }
    if let Some(p) = r.pids() {
        fs::write(dir, "pids.max", &pids_max(p.limit()))?;
    }
    if let Some(b) = r.block_io() {
        set_io(dir, b, warnings)?;
    }
    for h in r.hugepage_limits().iter().flatten() {
        let prefix = format!("hugetlb.{}", h.page_size());
        let v = convert::max_or(h.limit());
        if !fs::exists(dir, &format!("{prefix}.max")) {
            return Err(Error::unsupported(
                "hugetlb",
                format!(
                    "page size {} is not supported here (no {prefix}.max in {})",
                    h.page_size(),
                    dir.display()
                ),
            ));
        }
        fs::write(dir, &format!("{prefix}.max"), &v)?;
        // Reservations (Linux 5.7+) are limited too, or a reservation could
        // exceed the limit.
        if fs::exists(dir, &format!("{prefix}.rsvd.max")) {
            fs::write(dir, &format!("{prefix}.rsvd.max"), &v)?;
        }
    }
    if let Some(rdma) = r.rdma() {
        let mut devs: Vec<_> = rdma.iter().collect();
        devs.sort_by(|a, b| a.0.cmp(b.0));
        for (dev, lim) in devs {
            if let Some(line) = rdma_line(dev, lim.hca_handles(), lim.hca_objects()) {
                fs::write(dir, "rdma.max", &line)?;
            }
        }
    }
    Ok(())
}

/// linux.resources.network (net_cls classID, net_prio priorities) on cgroup
/// v2, which has neither controller: refused, as a limit the container
/// would silently run without. classID 0 and no priorities are "not set".
pub(crate) fn refuse_network(r: &LinuxResources) -> Result<()> {
    let Some(n) = r.network() else {
        return Ok(());
    };
    if n.class_id().is_some_and(|id| id != 0) {
        return Err(Error::unsupported(
            "net_cls",
            "cgroup v2 has no net_cls controller, so linux.resources.network.classID cannot be applied",
        ));
    }
    if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(Error::unsupported(
            "net_prio",
            "cgroup v2 has no net_prio controller, so linux.resources.network.priorities cannot be applied",
        ));
    }
    Ok(())
}

pub(crate) fn pids_max(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

/// "mlx4_0 hca_handle=2 hca_object=2000" (absent fields are left alone).
pub(crate) fn rdma_line(dev: &str, handles: Option<u32>, objects: Option<u32>) -> Option<String> {
    if handles.is_none() && objects.is_none() {
        return None;
    }
    let mut line = dev.to_string();
    if let Some(h) = handles {
        line.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = objects {
        line.push_str(&format!(" hca_object={o}"));
    }
    Some(line)
}

fn set_cpuset(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        fs::write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        fs::write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

fn set_cpu(dir: &Path, c: &LinuxCpu, warnings: &mut Vec<String>) -> Result<()> {
    if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
        warnings.push(
            "linux.resources.cpu.realtimeRuntime/realtimePeriod are ignored: cgroup v2 has no \
             real-time CPU budget"
                .to_string(),
        );
    }
    if let Some(idle) = c.idle() {
        fs::write(dir, "cpu.idle", &idle.to_string())?;
    }
    if let Some(w) = c.shares().and_then(convert::cpu_shares_to_weight) {
        fs::write(dir, "cpu.weight", &w.to_string())?;
    }
    // A larger burst can be refused until the new quota is in place, so
    // on EINVAL it is retried after cpu.max.
    let mut burst_later = None;
    if let Some(b) = c.burst() {
        let quota_coming = c.quota().is_some() || c.period().is_some();
        match fs::try_write(dir, "cpu.max.burst", &b.to_string()) {
            Ok(()) => {}
            Err((_, libc::EINVAL)) if quota_coming => burst_later = Some(b),
            Err((e, _)) => return Err(e),
        }
    }
    if c.quota().is_some() || c.period().is_some() {
        let current = fs::read_opt(dir, "cpu.max")?.unwrap_or_default();
        let mut cur = current.split_whitespace();
        let (cur_quota, cur_period) = (cur.next().unwrap_or("max"), cur.next().unwrap_or("100000"));
        let quota = match c.quota() {
            Some(q) if q > 0 => q.to_string(),
            Some(_) => "max".to_string(),
            None => cur_quota.to_string(),
        };
        let period = match c.period() {
            Some(p) if p > 0 => p.to_string(),
            _ => cur_period.to_string(),
        };
        fs::write(dir, "cpu.max", &format!("{quota} {period}"))?;
    }
    if let Some(b) = burst_later {
        fs::write(dir, "cpu.max.burst", &b.to_string())?;
    }
    Ok(())
}

fn set_memory(dir: &Path, m: &LinuxMemory, warnings: &mut Vec<String>) -> Result<()> {
    if m.swappiness().is_some() {
        warnings.push(
            "linux.resources.memory.swappiness is ignored: cgroup v2 has no per-cgroup swappiness"
                .to_string(),
        );
    }
    if m.disable_oom_killer() == Some(true) {
        warnings.push(
            "linux.resources.memory.disableOOMKiller is ignored: cgroup v2 cannot disable the OOM \
             killer"
                .to_string(),
        );
    }
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        warnings.push(
            "linux.resources.memory.kernel/kernelTCP are ignored: kernel memory limits are \
             deprecated and not available in cgroup v2"
                .to_string(),
        );
    }
    let limit = m.limit().filter(|&l| l != 0);
    if m.check_before_update() == Some(true) {
        if let Some(l) = limit.filter(|&l| l > 0) {
            if let Some(cur) = fs::read_u64_opt(dir, "memory.current")? {
                if l as u64 <= cur {
                    return Err(Error::invalid(format!(
                        "rejecting memory limit {l} (checkBeforeUpdate): the container already uses {cur} bytes"
                    )));
                }
            }
        }
    }
    if let Some(swap) = convert::memory_swap_to_v2(m.swap(), m.limit())? {
        if let Err((e, errno)) = fs::try_write(dir, "memory.swap.max", &swap) {
            // No swap accounting: "unlimited" and "no swap" are what the
            // kernel does anyway.
            if !(errno == libc::ENOENT && (swap == "max" || swap == "0")) {
                return Err(e);
            }
        }
    }
    if let Some(l) = limit {
        fs::write(dir, "memory.max", &convert::max_or(l))?;
    }
    if let Some(r) = m.reservation().filter(|&r| r != 0) {
        fs::write(dir, "memory.low", &convert::max_or(r))?;
    }
    Ok(())
}

fn set_io(dir: &Path, b: &LinuxBlockIo, warnings: &mut Vec<String>) -> Result<()> {
    let bfq = fs::exists(dir, "io.bfq.weight");
    if b.leaf_weight().is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.leaf_weight().is_some())
    {
        warnings.push(
            "linux.resources.blockIO leafWeight is ignored: cgroup v2 has no leaf weights"
                .to_string(),
        );
    }
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        if bfq {
            fs::write(dir, "io.bfq.weight", &w.to_string())?;
        } else if let Some(v) = convert::blkio_weight_to_io_weight(w) {
            fs::write(dir, "io.weight", &v.to_string())?;
        }
    }
    for d in b.weight_device().iter().flatten() {
        let Some(w) = d.weight().filter(|&w| w != 0) else {
            continue;
        };
        if bfq {
            fs::write(
                dir,
                "io.bfq.weight",
                &format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        } else if let Some(v) = convert::blkio_weight_to_io_weight(w) {
            fs::write(
                dir,
                "io.weight",
                &format!("{}:{} {v}", d.major(), d.minor()),
            )?;
        }
    }
    for line in io_max_lines(b) {
        fs::write(dir, "io.max", &line)?;
    }
    Ok(())
}

/// One io.max line per device, keys in the order rbps wbps riops wiops,
/// devices in order of first appearance.
pub(crate) fn io_max_lines(b: &LinuxBlockIo) -> Vec<String> {
    let mut devs: Vec<((i64, i64), Vec<String>)> = Vec::new();
    let groups = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in groups {
        for t in list.iter().flatten() {
            let dev = (t.major(), t.minor());
            let val = if t.rate() == 0 {
                "max".to_string()
            } else {
                t.rate().to_string()
            };
            let idx = match devs.iter().position(|(d, _)| *d == dev) {
                Some(i) => i,
                None => {
                    devs.push((dev, Vec::new()));
                    devs.len() - 1
                }
            };
            let entry = &mut devs[idx];
            // A later entry for the same device and key wins.
            entry.1.retain(|kv| !kv.starts_with(&format!("{key}=")));
            entry.1.push(format!("{key}={val}"));
        }
    }
    devs.into_iter()
        .map(|((maj, min), kvs)| format!("{maj}:{min} {}", kvs.join(" ")))
        .collect()
}

/// Writes the `unified` map (already validated and sorted).
pub(crate) fn set_unified(dir: &Path, unified: &[(String, String)]) -> Result<()> {
    for (k, v) in unified {
        if !fs::exists(dir, k) {
            let ctl = crate::validate::unified_controller(k).unwrap_or("cgroup");
            return Err(Error::unsupported(
                ctl,
                format!(
                    "linux.resources.unified key {k:?}: there is no such file in {} (unknown setting, or the controller is not available)",
                    dir.display()
                ),
            ));
        }
        fs::write(dir, k, v)?;
    }
    Ok(())
}
