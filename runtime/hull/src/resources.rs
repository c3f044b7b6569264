//! Values of `update` and `events` as runc's command line takes them:
//! resource flags with byte suffixes, and Go-style durations.

use crate::cli::UpdateArgs;
use hull_container::error::Context;
use hull_container::{bail, Error, Result};

/// Bytes as runc's flags take them: a number with an optional k/m/g/t suffix
/// (binary units), or -1 for "no limit".
fn parse_bytes(flag: &str, v: &str) -> Result<i64> {
    let t = v.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1i64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        Some((i, 't')) => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    num.trim()
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            Error::msg(format!(
                "invalid value {v:?} for {flag}: use bytes, e.g. 536870912 or 512m, or -1"
            ))
        })
}

/// The resources `update` applies: --resources, then each flag on top.
pub fn from_update_args(args: &UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
    if args.l3_cache_schema.is_some() || args.mem_bw_schema.is_some() {
        bail!("--l3-cache-schema and --mem-bw-schema need Intel RDT, which hull does not support");
    }
    let mut r: LinuxResources = match &args.resources {
        None => serde_json::from_str("{}").map_err(|e| Error::msg(e.to_string()))?,
        Some(p) => {
            let text = if p.as_os_str() == "-" {
                let mut t = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut t)
                    .ctx(|| "reading resources from stdin")?;
                t
            } else {
                std::fs::read(p).ctx(|| format!("reading resources file {}", p.display()))?
            };
            serde_json::from_slice(&text).map_err(|e| {
                Error::msg(format!("--resources: invalid linux.resources JSON: {e}"))
            })?
        }
    };
    let empty = || serde_json::from_str::<serde_json::Value>("{}").unwrap_or_default();
    let mut cpu: LinuxCpu = r
        .cpu()
        .clone()
        .unwrap_or_else(|| serde_json::from_value(empty()).unwrap_or_default());
    let mut cpu_set = false;
    if let Some(v) = args.cpu_period {
        cpu.set_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = args.cpu_quota {
        cpu.set_quota(Some(v));
        cpu_set = true;
    }
    if let Some(v) = args.cpu_share {
        cpu.set_shares(Some(v));
        cpu_set = true;
    }
    if let Some(v) = args.cpu_rt_period {
        cpu.set_realtime_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = args.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(v));
        cpu_set = true;
    }
    if let Some(v) = &args.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
        cpu_set = true;
    }
    if let Some(v) = &args.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
        cpu_set = true;
    }
    if cpu_set {
        r.set_cpu(Some(cpu));
    }
    let mut mem: LinuxMemory =
        (*r.memory()).unwrap_or_else(|| serde_json::from_value(empty()).unwrap_or_default());
    let mut mem_set = false;
    if let Some(v) = &args.memory {
        mem.set_limit(Some(parse_bytes("--memory", v)?));
        mem_set = true;
    }
    if let Some(v) = &args.memory_reservation {
        mem.set_reservation(Some(parse_bytes("--memory-reservation", v)?));
        mem_set = true;
    }
    if let Some(v) = &args.memory_swap {
        mem.set_swap(Some(parse_bytes("--memory-swap", v)?));
        mem_set = true;
    }
    if args.kernel_memory.is_some() || args.kernel_memory_tcp.is_some() {
        hull_container::log::warn("--kernel-memory and --kernel-memory-tcp are ignored: current kernels no longer support kernel memory limits");
    }
    if mem_set {
        r.set_memory(Some(mem));
    }
    if let Some(v) = args.pids_limit {
        let mut p: LinuxPids = (*r.pids()).unwrap_or_default();
        p.set_limit(v);
        r.set_pids(Some(p));
    }
    if let Some(w) = args.blkio_weight {
        let mut b: LinuxBlockIo = r
            .block_io()
            .clone()
            .unwrap_or_else(|| serde_json::from_value(empty()).unwrap_or_default());
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

/// Go-style durations as runc takes them: "5s", "500ms", "1m", "1h".
pub fn parse_interval(v: &str) -> Result<std::time::Duration> {
    let bad = || {
        Error::msg(format!(
            "invalid --interval {v:?}: use e.g. 5s, 500ms or 1m"
        ))
    };
    let t = v.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if secs <= 0.0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_with_suffixes() {
        assert_eq!(parse_bytes("--memory", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("--memory", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("--memory", "1024").unwrap(), 1024);
        assert_eq!(parse_bytes("--memory", "-1").unwrap(), -1);
        assert_eq!(parse_bytes("--memory", "64kb").unwrap(), 64 << 10);
        for bad in ["", "x", "-5", "1q", "m"] {
            assert!(parse_bytes("--memory", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_durations() {
        use std::time::Duration;
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("1m").unwrap(), Duration::from_secs(60));
        for bad in ["", "5", "0s", "-1s", "5x"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
