//! Checks on `linux.resources` that do not depend on the host, run before
//! anything is written, so a bad config fails whole instead of leaving half
//! of its limits applied.

use oci_spec::runtime::LinuxResources;

use crate::convert;
use crate::devices::{self, DeviceRule};
use crate::error::{Error, Result};

/// The parts of the config that need parsing, validated.
pub(crate) struct Checked {
    /// Normalised device rules, if the config has a devices list.
    pub devices: Option<Vec<DeviceRule>>,
    /// Unified key/values, sorted by key.
    pub unified: Vec<(String, String)>,
}

pub(crate) fn check(r: &LinuxResources) -> Result<Checked> {
    if let Some(m) = r.memory() {
        for (name, v) in [
            ("limit", m.limit()),
            ("reservation", m.reservation()),
            ("swap", m.swap()),
        ] {
            if let Some(v) = v {
                if v < -1 {
                    return Err(Error::invalid(format!(
                        "linux.resources.memory.{name} {v} is negative (use -1 for unlimited)"
                    )));
                }
            }
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(Error::invalid(format!(
                    "linux.resources.memory.swappiness {s} is above 100"
                )));
            }
        }
        // Same rule in v1 (memsw ≥ memory) and v2 (conversion).
        convert::memory_swap_to_v2(m.swap(), m.limit())?;
    }
    if let Some(c) = r.cpu() {
        if let Some(i) = c.idle() {
            if i != 0 && i != 1 {
                return Err(Error::invalid(format!(
                    "linux.resources.cpu.idle {i} must be 0 or 1"
                )));
            }
        }
        for (name, v) in [("cpus", c.cpus()), ("mems", c.mems())] {
            if let Some(v) = v {
                if !v
                    .chars()
                    .all(|ch| ch.is_ascii_digit() || ch == ',' || ch == '-' || ch == ' ')
                {
                    return Err(Error::invalid(format!(
                        "linux.resources.cpu.{name} {v:?} is not a list like 0-3,8"
                    )));
                }
            }
        }
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight() {
            if w != 0 && !(10..=1000).contains(&w) {
                return Err(Error::invalid(format!(
                    "linux.resources.blockIO.weight {w} is outside 10..1000"
                )));
            }
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                if w != 0 && !(10..=1000).contains(&w) {
                    return Err(Error::invalid(format!(
                        "linux.resources.blockIO.weightDevice {}:{} weight {w} is outside 10..1000",
                        d.major(),
                        d.minor()
                    )));
                }
            }
        }
        let devs = b
            .weight_device()
            .iter()
            .flatten()
            .map(|d| (d.major(), d.minor()))
            .chain(
                [
                    b.throttle_read_bps_device(),
                    b.throttle_write_bps_device(),
                    b.throttle_read_iops_device(),
                    b.throttle_write_iops_device(),
                ]
                .into_iter()
                .flatten()
                .flatten()
                .map(|t| (t.major(), t.minor())),
            );
        for (maj, min) in devs {
            if maj < 0 || min < 0 || maj > i64::from(u32::MAX) || min > i64::from(u32::MAX) {
                return Err(Error::invalid(format!(
                    "linux.resources.blockIO: device {maj}:{min} is not a device number"
                )));
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        convert::check_page_size(h.page_size())?;
    }
    for name in r.rdma().iter().flat_map(|m| m.keys()) {
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(Error::invalid(format!(
                "linux.resources.rdma device name {name:?} is not valid"
            )));
        }
    }
    for p in r
        .network()
        .iter()
        .flat_map(|n| n.priorities().iter().flatten())
    {
        if p.name().is_empty() || p.name().chars().any(|c| c.is_whitespace()) {
            return Err(Error::invalid(format!(
                "linux.resources.network.priorities: interface name {:?} is not valid",
                p.name()
            )));
        }
    }
    let devices = match r.devices() {
        Some(d) => Some(devices::normalize(d)?),
        None => None,
    };
    let mut unified: Vec<(String, String)> = r
        .unified()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    unified.sort();
    for (k, _) in &unified {
        check_unified_key(k)?;
    }
    Ok(Checked { devices, unified })
}

/// A `linux.resources.unified` key must name a file in the container's own
/// cgroup: no '/', no "..", and not the files that move processes
/// (`cgroup.procs`, `cgroup.threads`), which would let a config pull
/// arbitrary host processes into the container.
fn check_unified_key(k: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid(format!(
            "linux.resources.unified key {k:?} {why}"
        )))
    };
    if k.is_empty() || k.contains('/') || k.contains("..") || k.contains('\0') {
        return bad("must be a file name in the container's cgroup (no '/' or '..')");
    }
    if k.starts_with('.') || !k.contains('.') {
        return bad("is not a cgroup interface file name (controller.setting)");
    }
    if matches!(k, "cgroup.procs" | "cgroup.threads") {
        return bad("would move processes; it cannot be set from the config");
    }
    Ok(())
}

/// The controller a unified key belongs to ("memory" for "memory.high";
/// `None` for core "cgroup.*" files).
pub(crate) fn unified_controller(k: &str) -> Option<&str> {
    let c = k.split('.').next()?;
    (c != "cgroup").then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn good_config() {
        let c = check(&res(json!({
            "memory": {"limit": 1000, "swap": 2000, "swappiness": 10},
            "cpu": {"cpus": "0-1", "idle": 1},
            "blockIO": {"weight": 500},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
            "devices": [{"allow": false, "access": "rwm"}],
            "unified": {"memory.high": "1000", "cgroup.max.depth": "3"}
        })))
        .unwrap();
        assert_eq!(c.devices.unwrap().len(), 1);
        assert_eq!(c.unified[0].0, "cgroup.max.depth");
    }

    #[test]
    fn bad_configs() {
        for bad in [
            json!({"memory": {"limit": -2}}),
            json!({"memory": {"limit": 1000, "swap": 10}}),
            json!({"memory": {"swappiness": 101}}),
            json!({"cpu": {"idle": 2}}),
            json!({"cpu": {"cpus": "0;1"}}),
            json!({"blockIO": {"weight": 5}}),
            json!({"blockIO": {"throttleReadBpsDevice": [{"major": -1, "minor": 0, "rate": 1}]}}),
            json!({"hugepageLimits": [{"pageSize": "../2MB", "limit": 1}]}),
            json!({"rdma": {"mlx 0": {"hcaHandles": 1}}}),
            json!({"unified": {"../memory.max": "1"}}),
            json!({"unified": {"memory..max": "1"}}),
            json!({"unified": {"cgroup.procs": "1"}}),
            json!({"unified": {"memory": "1"}}),
            json!({"devices": [{"allow": true, "access": "x"}]}),
        ] {
            assert!(check(&res(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn unified_controllers() {
        assert_eq!(unified_controller("memory.high"), Some("memory"));
        assert_eq!(unified_controller("cgroup.max.depth"), None);
    }
}
