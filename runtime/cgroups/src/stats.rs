//! Container resource statistics in the JSON shape of `runc events
//! --stats` (runc's `types.Stats`), so tools that parse runc's output
//! (containerd's runc shim, scripts) read Hull's unchanged.
//!
//! Field names and omission rules follow runc's Go tags: `omitempty` fields
//! are skipped when zero/empty, `omitzero` structs when all-zero, and the
//! rest are always present. `intel_rdt` and `network_interfaces` are not
//! cgroup data; they are emitted empty (`{}` / `null`) for the caller to fill.
//!
//! Units: CPU times in nanoseconds (v2's microsecond counters are scaled,
//! v1's `cpuacct.stat` ticks converted with the clock tick rate), memory in
//! bytes. On cgroup v2 `memory.swap` is reported as memory+swap, as v1 did.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fs;

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Everything `stats()` reports; serializes as runc's `data` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    /// Keyed by page size ("2MB", "1GB").
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Not cgroup data: left for the runtime to fill.
    pub intel_rdt: serde_json::Map<String, serde_json::Value>,
    /// Not cgroup data: left for the runtime to fill.
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: CpuUsage,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttling: Throttling,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// Nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(default, rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(default, rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: MemoryEntry,
    /// memory+swap (v1 `memsw`; v2 memory + swap added up).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub swap: MemoryEntry,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kernel: MemoryEntry,
    #[serde(default, rename = "kernelTCP", skip_serializing_if = "is_zero")]
    pub kernel_tcp: MemoryEntry,
    /// `memory.stat` as is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// Bytes; `limit` is `u64::MAX` when unlimited.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Blkio {
    #[serde(
        default,
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioServicedRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioQueueRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioServiceTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioWaitTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioMergedRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "sectorsRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sectors_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage (v1 only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Pressure stall information (v2 `*.pressure`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Psi {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub some: PsiData,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub full: PsiData,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PsiData {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Microseconds.
    pub total: u64,
}

/// "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull ..." → Psi.
pub(crate) fn parse_psi(path: &Path, s: &str) -> Result<Psi> {
    let mut psi = Psi::default();
    for line in s.lines() {
        let mut it = line.split_whitespace();
        let data = match it.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => continue,
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let bad = || Error::parse(path, s, format!("bad PSI value {kv:?}"));
            match k {
                "avg10" => data.avg10 = v.parse().map_err(|_| bad())?,
                "avg60" => data.avg60 = v.parse().map_err(|_| bad())?,
                "avg300" => data.avg300 = v.parse().map_err(|_| bad())?,
                "total" => data.total = v.parse().map_err(|_| bad())?,
                _ => {}
            }
        }
    }
    Ok(psi)
}

/// PSI of `dir/file`, `None` when absent (kernel without PSI, psi=0).
pub(crate) fn read_psi(dir: &Path, file: &str) -> Result<Option<Psi>> {
    match fs::read_opt(dir, file)? {
        Some(s) => parse_psi(&dir.join(file), &s).map(Some),
        None => Ok(None),
    }
}

/// A CPU list ("0-3,8,10-11") → [0, 1, 2, 3, 8, 10, 11].
pub(crate) fn parse_cpu_list(path: &Path, s: &str) -> Result<Vec<u16>> {
    let mut out = Vec::new();
    let bad = || Error::parse(path, s, "expected a list like 0-3,8");
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u16 = a.trim().parse().map_err(|_| bad())?;
        let b: u16 = b.trim().parse().map_err(|_| bad())?;
        if b < a || out.len() + usize::from(b - a) + 1 > 65_536 {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// v1 blkio stat lines: "8:0 Read 123", "8:0 123" (sectors, time),
/// "Total 123" (skipped).
pub(crate) fn parse_blkio_v1(path: &Path, s: &str) -> Result<Vec<BlkioEntry>> {
    let mut out = Vec::new();
    for line in s.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (dev, op, val) = match f.as_slice() {
            [dev, op, val] => (*dev, *op, *val),
            [dev, val] if dev.contains(':') => (*dev, "", *val),
            _ => continue,
        };
        let bad = || Error::parse(path, s, format!("bad line {line:?}"));
        let (maj, min) = dev.split_once(':').ok_or_else(bad)?;
        out.push(BlkioEntry {
            major: maj.parse().map_err(|_| bad())?,
            minor: min.parse().map_err(|_| bad())?,
            op: op.to_string(),
            value: val.parse().map_err(|_| bad())?,
        });
    }
    Ok(out)
}

/// v2 `io.stat` ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0")
/// → (service bytes, serviced) tables with v1's "Read"/"Write" ops.
pub(crate) fn parse_io_stat(path: &Path, s: &str) -> Result<(Vec<BlkioEntry>, Vec<BlkioEntry>)> {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in s.lines() {
        let mut it = line.split_whitespace();
        let Some(dev) = it.next() else { continue };
        let Some((maj, min)) = dev.split_once(':') else {
            continue;
        };
        let bad = || Error::parse(path, s, format!("bad line {line:?}"));
        let major: u64 = maj.parse().map_err(|_| bad())?;
        let minor: u64 = min.parse().map_err(|_| bad())?;
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let (table, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            table.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value: v.parse().map_err(|_| bad())?,
            });
        }
    }
    Ok((bytes, ios))
}

/// `memory.stat` → map (every numeric key).
pub(crate) fn parse_memory_stat(s: &str) -> BTreeMap<String, u64> {
    fs::parse_flat_keyed(s).into_iter().collect()
}

/// Hugepage sizes with a `hugetlb.<size>.<suffix>` file in `dir`, excluding
/// the `.rsvd.` variants.
pub(crate) fn hugetlb_sizes(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing cgroup", dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(rest) = name.strip_prefix("hugetlb.") {
            if let Some(size) = rest.strip_suffix(suffix) {
                if let Some(size) = size.strip_suffix('.') {
                    if !size.contains('.') {
                        out.push(size.to_string());
                    }
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_stats_json_matches_runc_omission_rules() {
        let v = serde_json::to_value(Stats::default()).unwrap();
        assert_eq!(
            v,
            json!({
                "cpu": {},
                "cpuset": {"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
                    "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
                    "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0},
                "memory": {},
                "pids": {},
                "blkio": {},
                "hugetlb": {},
                "intel_rdt": {},
                "network_interfaces": null
            })
        );
    }

    #[test]
    fn filled_stats_json_field_names() {
        let mut s = Stats::default();
        s.cpu.usage = CpuUsage {
            total: 5,
            percpu: vec![2, 3],
            percpu_kernel: vec![],
            percpu_user: vec![],
            kernel: 1,
            user: 4,
        };
        s.cpu.throttling.throttled_periods = 2;
        s.memory.usage = MemoryEntry {
            limit: 100,
            usage: 50,
            max: 60,
            failcnt: 0,
        };
        s.memory.kernel_tcp.limit = 7;
        s.memory.raw.insert("cache".into(), 9);
        s.pids = Pids {
            current: 3,
            limit: 10,
        };
        s.blkio.io_service_bytes_recursive.push(BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 4096,
        });
        s.hugetlb.insert(
            "2MB".into(),
            Hugetlb {
                usage: 0,
                max: 0,
                failcnt: 1,
            },
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["cpu"],
            json!({"usage": {"total": 5, "percpu": [2, 3], "kernel": 1, "user": 4},
                   "throttling": {"throttledPeriods": 2}})
        );
        assert_eq!(
            v["memory"],
            json!({"usage": {"limit": 100, "usage": 50, "max": 60, "failcnt": 0},
                   "kernelTCP": {"limit": 7, "failcnt": 0}, "raw": {"cache": 9}})
        );
        assert_eq!(v["pids"], json!({"current": 3, "limit": 10}));
        assert_eq!(
            v["blkio"],
            json!({"ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 4096}]})
        );
        assert_eq!(v["hugetlb"], json!({"2MB": {"failcnt": 1}}));
        let back: Stats = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn psi() {
        let p = parse_psi(
            Path::new("x"),
            "some avg10=1.50 avg60=0.00 avg300=0.00 total=123\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        )
        .unwrap();
        assert_eq!(p.some.avg10, 1.5);
        assert_eq!(p.some.total, 123);
        assert_eq!(p.full, PsiData::default());
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"some": {"avg10": 1.5, "avg60": 0.0, "avg300": 0.0, "total": 123}})
        );
        assert!(parse_psi(Path::new("x"), "some avg10=x").is_err());
    }

    #[test]
    fn cpu_lists() {
        let p = Path::new("x");
        assert_eq!(
            parse_cpu_list(p, "0-3,8,10-11\n").unwrap(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpu_list(p, "\n").unwrap(), Vec::<u16>::new());
        assert!(parse_cpu_list(p, "3-1").is_err());
        assert!(parse_cpu_list(p, "a").is_err());
        assert!(parse_cpu_list(p, "0-65535").unwrap().len() == 65536);
    }

    #[test]
    fn blkio_lines() {
        let s = "8:0 Read 4096\n8:0 Write 0\n8:0 Sync 1\n8:0 Total 4097\n253:1 77\nTotal 4097\n";
        let e = parse_blkio_v1(Path::new("x"), s).unwrap();
        assert_eq!(e.len(), 5);
        assert_eq!(e[0].op, "Read");
        assert_eq!(
            e[4],
            BlkioEntry {
                major: 253,
                minor: 1,
                op: String::new(),
                value: 77
            }
        );
        assert!(parse_blkio_v1(Path::new("x"), "x:y Read 1").is_err());
    }

    #[test]
    fn io_stat() {
        let (b, i) = parse_io_stat(
            Path::new("x"),
            "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n254:0 rbytes=9 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
        )
        .unwrap();
        assert_eq!(b.len(), 4);
        assert_eq!(i.len(), 4);
        assert_eq!(
            b[1],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Write".into(),
                value: 2
            }
        );
        assert_eq!(i[2].major, 254);
    }
}
