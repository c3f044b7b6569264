//! The summary of a task's metrics that `hullctl stats` shows and hulld's
//! Prometheus endpoint exports: containerd's cgroup metrics messages (`io.containerd.cgroups.v1.Metrics` on cgroup v1 and
//! hybrid hosts, `...v2.Metrics` on v2), decoded with the types of
//! containerd-shim-protos.

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::Message;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub cpu_nanos: u64,
    pub memory: u64,
    pub memory_limit: Option<u64>,
    pub pids: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

/// The summary of one metric's data (zeros for an unknown type).
pub fn decode(data: Option<&prost_types::Any>) -> Summary {
    let Some(any) = data else {
        return Summary::default();
    };
    // cgroup v1 reports "no limit" as a page-rounded i64::MAX.
    let limit = |l: u64| (l > 0 && l < 1 << 62).then_some(l);
    if any.type_url.ends_with("cgroups.v2.Metrics") {
        let Ok(m) = v2::Metrics::parse_from_bytes(&any.value) else {
            return Summary::default();
        };
        let io = m.io.as_ref();
        return Summary {
            cpu_nanos: m.cpu.as_ref().map(|c| c.usage_usec * 1000).unwrap_or(0),
            memory: m.memory.as_ref().map(|x| x.usage).unwrap_or(0),
            memory_limit: m.memory.as_ref().and_then(|x| limit(x.usage_limit)),
            pids: m.pids.as_ref().map(|p| p.current).unwrap_or(0),
            read_bytes: io
                .map(|i| i.usage.iter().map(|e| e.rbytes).sum())
                .unwrap_or(0),
            write_bytes: io
                .map(|i| i.usage.iter().map(|e| e.wbytes).sum())
                .unwrap_or(0),
        };
    }
    let Ok(m) = v1::Metrics::parse_from_bytes(&any.value) else {
        return Summary::default();
    };
    let usage = m.memory.as_ref().and_then(|x| x.usage.as_ref());
    let blk = |op: &str| -> u64 {
        m.blkio
            .as_ref()
            .map(|b| {
                b.io_service_bytes_recursive
                    .iter()
                    .filter(|e| e.op.eq_ignore_ascii_case(op))
                    .map(|e| e.value)
                    .sum()
            })
            .unwrap_or(0)
    };
    Summary {
        cpu_nanos: m
            .cpu
            .as_ref()
            .and_then(|c| c.usage.as_ref())
            .map(|u| u.total)
            .unwrap_or(0),
        memory: usage.map(|u| u.usage).unwrap_or(0),
        memory_limit: usage.and_then(|u| limit(u.limit)),
        pids: m.pids.as_ref().map(|p| p.current).unwrap_or(0),
        read_bytes: blk("read"),
        write_bytes: blk("write"),
    }
}
