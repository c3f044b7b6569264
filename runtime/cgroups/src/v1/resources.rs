//! Writing `linux.resources` to cgroup v1 files.
//!
//! | OCI | hierarchy: file | missing hierarchy |
//! |---|---|---|
//! | cpu.shares | cpu: cpu.shares (read back: the kernel clamps) | error |
//! | cpu.realtimePeriod/Runtime | cpu: cpu.rt_period_us, then cpu.rt_runtime_us | error |
//! | cpu.period/quota | cpu: cpu.cfs_period_us, cpu.cfs_quota_us (EINVAL on the period is retried after the quota) | error |
//! | cpu.burst / idle | cpu: cpu.cfs_burst_us / cpu.idle | error |
//! | cpu.cpus/mems | cpuset: cpuset.cpus / cpuset.mems | error |
//! | memory.limit + swap | memory: memory.limit_in_bytes, memory.memsw.limit_in_bytes, ordered so memsw ≥ limit holds at every step | error |
//! | memory.reservation | memory: memory.soft_limit_in_bytes | error |
//! | memory.swappiness | memory: memory.swappiness | error |
//! | memory.disableOOMKiller | memory: memory.oom_control | error |
//! | memory.kernel/kernelTCP | ignored with a warning (deprecated, as runc) | — |
//! | pids.limit | pids: pids.max (≤ 0 → "max") | error |
//! | blockIO.weight/leafWeight/weightDevice | blkio: blkio.bfq.weight or blkio.weight (+ _device, leaf_); without such files a warning (weights need BFQ/CFQ) | error |
//! | blockIO.throttle* | blkio: blkio.throttle.{read,write}_{bps,iops}_device | error |
//! | devices | devices: "a" to devices.deny, then each rule in order | error |
//! | hugepageLimits | hugetlb: hugetlb.SIZE.limit_in_bytes (+ rsvd) | error |
//! | network.classID | net_cls: net_cls.classid | error |
//! | network.priorities | net_prio: net_prio.ifpriomap | error |
//! | rdma | rdma: rdma.max | error |
//!
//! "0" means "not set" for limits, as in runc; "-1" means unlimited and is
//! written as is (v1 files accept it). A limit for a controller the host has
//! no hierarchy for is refused, naming the controller (as runc refuses it):
//! ignoring it would run the container without the limit it asked for.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::V1Manager;
use crate::devices;
use crate::error::{Error, Result};
use crate::fs;
use crate::validate::Checked;

fn need<'a>(m: &'a V1Manager, controller: &str, what: &str) -> Result<&'a Path> {
    m.dir_of(controller).ok_or_else(|| {
        Error::unsupported(
            controller,
            format!(
                "no {controller} cgroup hierarchy is mounted on this host, so {what} cannot be applied"
            ),
        )
    })
}

pub(crate) fn set(
    m: &V1Manager,
    r: &LinuxResources,
    checked: &Checked,
    warnings: &mut Vec<String>,
) -> Result<()> {
    if let Some(c) = r.cpu() {
        set_cpuset(m, c)?;
        set_cpu(m, c)?;
    }
    if let Some(mem) = r.memory() {
        set_memory(m, mem, warnings)?;
    }
    if let Some(p) = r.pids() {
        let dir = need(m, "pids", "linux.resources.pids")?;
        fs::write(dir, "pids.max", &crate::v2::pids_max(p.limit()))?;
    }
    if let Some(b) = r.block_io() {
        set_blkio(m, b, warnings)?;
    }
    if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
        let dir = need(m, "hugetlb", "linux.resources.hugepageLimits")?;
        for l in h {
            let prefix = format!("hugetlb.{}", l.page_size());
            let file = format!("{prefix}.limit_in_bytes");
            if !fs::exists(dir, &file) {
                return Err(Error::unsupported(
                    "hugetlb",
                    format!(
                        "page size {} is not supported here (no {file} in {})",
                        l.page_size(),
                        dir.display()
                    ),
                ));
            }
            let v = if l.limit() < 0 {
                "-1".to_string()
            } else {
                l.limit().to_string()
            };
            fs::write(dir, &file, &v)?;
            let rsvd = format!("{prefix}.rsvd.limit_in_bytes");
            if fs::exists(dir, &rsvd) {
                fs::write(dir, &rsvd, &v)?;
            }
        }
    }
    if let Some(n) = r.network() {
        // classID 0 is "not set", as with runc.
        if let Some(id) = n.class_id().filter(|&id| id != 0) {
            let dir = need(m, "net_cls", "linux.resources.network.classID")?;
            fs::write(dir, "net_cls.classid", &id.to_string())?;
        }
        if let Some(prios) = n.priorities().as_ref().filter(|p| !p.is_empty()) {
            let dir = need(m, "net_prio", "linux.resources.network.priorities")?;
            for p in prios {
                fs::write(
                    dir,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
    }
    if let Some(rdma) = r.rdma().as_ref().filter(|r| !r.is_empty()) {
        let dir = need(m, "rdma", "linux.resources.rdma")?;
        let mut devs: Vec<_> = rdma.iter().collect();
        devs.sort_by(|a, b| a.0.cmp(b.0));
        for (dev, lim) in devs {
            if let Some(line) = crate::v2::rdma_line(dev, lim.hca_handles(), lim.hca_objects()) {
                fs::write(dir, "rdma.max", &line)?;
            }
        }
    }
    if let Some(rules) = &checked.devices {
        let dir = need(
            m,
            "devices",
            "linux.resources.devices (the device allow-list)",
        )?;
        for (file, line) in devices::v1_writes(rules) {
            fs::write(dir, file, &line)?;
        }
    }
    Ok(())
}

fn set_cpuset(m: &V1Manager, c: &LinuxCpu) -> Result<()> {
    let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
    let mems = c.mems().as_deref().filter(|s| !s.is_empty());
    if cpus.is_none() && mems.is_none() {
        return Ok(());
    }
    let dir = need(m, "cpuset", "linux.resources.cpu.cpus/mems")?;
    if let Some(v) = cpus {
        fs::write(dir, "cpuset.cpus", v)?;
    }
    if let Some(v) = mems {
        fs::write(dir, "cpuset.mems", v)?;
    }
    Ok(())
}

fn set_cpu(m: &V1Manager, c: &LinuxCpu) -> Result<()> {
    let shares = c.shares().filter(|&s| s != 0);
    let quota = c.quota().filter(|&q| q != 0);
    let period = c.period().filter(|&p| p != 0);
    let rt_period = c.realtime_period().filter(|&p| p != 0);
    let rt_runtime = c.realtime_runtime().filter(|&r| r != 0);
    if shares.is_none()
        && quota.is_none()
        && period.is_none()
        && rt_period.is_none()
        && rt_runtime.is_none()
        && c.burst().is_none()
        && c.idle().is_none()
    {
        return Ok(());
    }
    let dir = need(m, "cpu", "linux.resources.cpu")?;
    if let Some(s) = shares {
        fs::write(dir, "cpu.shares", &s.to_string())?;
        let got = fs::read_u64_opt(dir, "cpu.shares")?;
        if let Some(got) = got.filter(|&g| g != s) {
            return Err(Error::invalid(format!(
                "linux.resources.cpu.shares {s} is out of range: the kernel set {got} (allowed 2..262144)"
            )));
        }
    }
    // Real-time budget: period first, then the runtime it bounds.
    if let Some(p) = rt_period {
        fs::write(dir, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(r) = rt_runtime {
        fs::write(dir, "cpu.rt_runtime_us", &r.to_string())?;
    }
    // A shorter period can be refused while the old quota is still in
    // place (old quota / new period would exceed the parent's limit): on
    // EINVAL, set the quota first and then the period again.
    let mut period_later = None;
    if let Some(p) = period {
        match fs::try_write(dir, "cpu.cfs_period_us", &p.to_string()) {
            Ok(()) => {}
            Err((_, libc::EINVAL)) if quota.is_some() => period_later = Some(p),
            Err((e, _)) => return Err(e),
        }
    }
    if let Some(q) = quota {
        let q = if q < 0 { -1 } else { q };
        fs::write(dir, "cpu.cfs_quota_us", &q.to_string())?;
    }
    if let Some(p) = period_later {
        fs::write(dir, "cpu.cfs_period_us", &p.to_string())?;
    }
    if let Some(b) = c.burst() {
        fs::write(dir, "cpu.cfs_burst_us", &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        fs::write(dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

fn set_memory(m: &V1Manager, mem: &LinuxMemory, warnings: &mut Vec<String>) -> Result<()> {
    if mem.kernel().is_some() || mem.kernel_tcp().is_some() {
        warnings.push(
            "linux.resources.memory.kernel/kernelTCP are ignored: kernel memory limits are \
             deprecated (as in runc)"
                .to_string(),
        );
    }
    let limit = mem.limit().filter(|&l| l != 0);
    let mut swap = mem.swap().filter(|&s| s != 0);
    let reservation = mem.reservation().filter(|&r| r != 0);
    if limit.is_none()
        && swap.is_none()
        && reservation.is_none()
        && mem.swappiness().is_none()
        && mem.disable_oom_killer().is_none()
    {
        return Ok(());
    }
    let dir = need(m, "memory", "linux.resources.memory")?;
    let has_memsw = fs::exists(dir, "memory.memsw.limit_in_bytes");
    // Unlimited memory with no swap setting means unlimited memory+swap.
    if limit == Some(-1) && swap.is_none() && has_memsw {
        swap = Some(-1);
    }
    if mem.check_before_update() == Some(true) {
        if let Some(l) = limit.filter(|&l| l > 0) {
            let cur = fs::read_u64_or0(dir, "memory.usage_in_bytes")?;
            if l as u64 <= cur {
                return Err(Error::invalid(format!(
                    "rejecting memory limit {l} (checkBeforeUpdate): the container already uses {cur} bytes"
                )));
            }
        }
    }
    let write_limit = |l: i64| fs::write(dir, "memory.limit_in_bytes", &l.to_string());
    let write_swap = |s: i64| fs::write(dir, "memory.memsw.limit_in_bytes", &s.to_string());
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // The kernel keeps memsw ≥ limit at all times: when memsw grows
            // (or becomes unlimited) raise it first, else lower the limit
            // first.
            let cur = fs::read_u64_or0(dir, "memory.limit_in_bytes")?;
            if s == -1 || cur < s as u64 {
                write_swap(s)?;
                write_limit(l)?;
            } else {
                write_limit(l)?;
                write_swap(s)?;
            }
        }
        (Some(l), None) => write_limit(l)?,
        (None, Some(s)) => write_swap(s)?,
        (None, None) => {}
    }
    if let Some(r) = reservation {
        fs::write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(s) = mem.swappiness() {
        fs::write(dir, "memory.swappiness", &s.to_string())?;
    }
    if let Some(d) = mem.disable_oom_killer() {
        fs::write(dir, "memory.oom_control", if d { "1" } else { "0" })?;
    }
    Ok(())
}

fn set_blkio(m: &V1Manager, b: &LinuxBlockIo, warnings: &mut Vec<String>) -> Result<()> {
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    let any_throttle = throttles
        .iter()
        .any(|(_, l)| l.as_ref().is_some_and(|l| !l.is_empty()));
    let weight = b.weight().filter(|&w| w != 0);
    let leaf = b.leaf_weight().filter(|&w| w != 0);
    let wdev: Vec<_> = b.weight_device().iter().flatten().collect();
    let any_weight = weight.is_some() || leaf.is_some() || !wdev.is_empty();
    let Some(dir) = m.dir_of("blkio") else {
        if any_throttle {
            need(m, "blkio", "linux.resources.blockIO throttling")?;
        }
        if any_weight {
            need(m, "blkio", "linux.resources.blockIO weights")?;
        }
        return Ok(());
    };
    if any_weight {
        // BFQ (current kernels) or CFQ (before 5.0) file names.
        let (wfile, wdfile, lfile, ldfile) = if fs::exists(dir, "blkio.bfq.weight") {
            ("blkio.bfq.weight", "blkio.bfq.weight_device", "", "")
        } else {
            (
                "blkio.weight",
                "blkio.weight_device",
                "blkio.leaf_weight",
                "blkio.leaf_weight_device",
            )
        };
        let mut ignored = false;
        let mut put = |file: &str, value: String| -> Result<()> {
            if file.is_empty() || !fs::exists(dir, file) {
                ignored = true;
                return Ok(());
            }
            fs::write(dir, file, &value)
        };
        if let Some(w) = weight {
            put(wfile, w.to_string())?;
        }
        if let Some(w) = leaf {
            put(lfile, w.to_string())?;
        }
        for d in &wdev {
            if let Some(w) = d.weight().filter(|&w| w != 0) {
                put(wdfile, format!("{}:{} {w}", d.major(), d.minor()))?;
            }
            if let Some(w) = d.leaf_weight().filter(|&w| w != 0) {
                put(ldfile, format!("{}:{} {w}", d.major(), d.minor()))?;
            }
        }
        if ignored {
            warnings.push(format!(
                "some linux.resources.blockIO weights are ignored: {} has no such weight files \
                 (the block devices' I/O scheduler is neither BFQ nor CFQ)",
                dir.display()
            ));
        }
    }
    for (file, list) in throttles {
        for t in list.iter().flatten() {
            fs::write(
                dir,
                file,
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}
