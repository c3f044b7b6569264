//! config.json's `linux`: namespaces, cgroup and limits, the confinement
//! (seccomp, masked and read-only paths), sysctls and devices.

use crate::devices::cgroup_rules;
use crate::{seccomp, Network, RunOptions, SpecError};
use serde_json::{json, Map, Value};

/// Paths of /proc and /sys that a container must not read (docker's list
/// as of docker 28; docker also masks each CPU's thermal_throttle directory,
/// which depends on the host and is left out here).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths of /proc a container may read but not write (docker's list).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// docker's CFS period: `--cpus` is quota per 100 ms.
const CPU_PERIOD: u64 = 100_000;

/// docker refuses smaller memory limits: the container could not start.
const MIN_MEMORY: u64 = 6 << 20;

pub(crate) fn linux(opts: &RunOptions, capabilities: &[&str]) -> Result<Value, SpecError> {
    let mut linux = json!({
        "namespaces": namespaces(opts)?,
        "cgroupsPath": cgroups_path(opts)?,
        "resources": resources(opts)?,
    });
    if !opts.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        if !opts.seccomp_unconfined {
            let profile = seccomp::profile(capabilities)?;
            linux["seccomp"] =
                serde_json::to_value(profile).map_err(|e| SpecError::Internal(e.to_string()))?;
        }
    } else if !opts.host_devices.is_empty() {
        linux["devices"] = serde_json::to_value(&opts.host_devices)
            .map_err(|e| SpecError::Internal(e.to_string()))?;
    }
    if !opts.sysctls.is_empty() {
        linux["sysctl"] = sysctls(opts)?;
    }
    Ok(linux)
}

fn namespaces(opts: &RunOptions) -> Result<Value, SpecError> {
    let mut ns = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match &opts.network {
        Network::Host => {}
        Network::None => ns.push(json!({"type": "network"})),
        Network::Path(path) => {
            if !path.is_absolute() {
                return Err(SpecError::invalid(
                    "--network",
                    path.display().to_string(),
                    "the network namespace path must be absolute, e.g. /var/run/netns/NAME",
                ));
            }
            ns.push(json!({"type": "network", "path": path}));
        }
    }
    if opts.cgroupns_private {
        ns.push(json!({"type": "cgroup"}));
    }
    Ok(Value::Array(ns))
}

/// `/<parent>/<namespace>/<id>` for the cgroupfs driver.
fn cgroups_path(opts: &RunOptions) -> Result<String, SpecError> {
    let parent = opts.cgroup_parent.trim_matches('/');
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." || part.contains(':') || part.contains('\0') {
            return Err(SpecError::invalid(
                "--cgroup-parent",
                &opts.cgroup_parent,
                "use a plain cgroup path such as hull or hull/batch \
                 (no \"..\"; \"slice:prefix:name\" needs the systemd driver, which hull lacks)",
            ));
        }
    }
    Ok(if parent.is_empty() {
        format!("/{}/{}", opts.namespace, opts.id)
    } else {
        format!("/{parent}/{}/{}", opts.namespace, opts.id)
    })
}

fn resources(opts: &RunOptions) -> Result<Value, SpecError> {
    let mut r = Map::new();
    r.insert(
        "devices".into(),
        Value::Array(cgroup_rules(opts.privileged)),
    );
    if let Some(memory) = memory(opts)? {
        r.insert("memory".into(), memory);
    }
    if let Some(cpus) = opts.cpus.filter(|c| *c != 0.0) {
        crate::units::check_cpus(cpus)?;
        // Rounded, not truncated: 0.29 * 100000 is 28999.999... in binary.
        let quota = (cpus * CPU_PERIOD as f64).round() as i64;
        r.insert("cpu".into(), json!({"quota": quota, "period": CPU_PERIOD}));
    }
    match opts.pids_limit {
        Some(n) if n > 0 => {
            r.insert("pids".into(), json!({"limit": n}));
        }
        Some(n) if n < -1 => {
            return Err(SpecError::invalid(
                "--pids-limit",
                n.to_string(),
                "must be a positive number of processes, or 0 or -1 for no limit",
            ))
        }
        _ => {}
    }
    Ok(Value::Object(r))
}

/// `--memory` and `--memory-swap` as docker combines them: swap is memory
/// plus swap, twice the memory when not given, -1 for unlimited swap.
fn memory(opts: &RunOptions) -> Result<Option<Value>, SpecError> {
    let limit = opts.memory.filter(|m| *m > 0);
    let swap = opts.memory_swap.filter(|s| *s != 0);
    let Some(limit) = limit else {
        if let Some(s) = swap {
            return Err(SpecError::invalid(
                "--memory-swap",
                s.to_string(),
                "needs --memory: set the memory limit too",
            ));
        }
        return Ok(None);
    };
    let limit_i64 = i64::try_from(limit).map_err(|_| {
        SpecError::invalid(
            "--memory",
            limit.to_string(),
            "too large: give at most 8 EiB",
        )
    })?;
    if limit < MIN_MEMORY {
        return Err(SpecError::invalid(
            "--memory",
            limit.to_string(),
            "below the minimum of 6 MiB: give at least 6m",
        ));
    }
    let swap = match swap {
        None => limit_i64.checked_mul(2).ok_or_else(|| {
            SpecError::invalid(
                "--memory",
                limit.to_string(),
                "too large to double for the default swap: set --memory-swap -1",
            )
        })?,
        Some(-1) => -1,
        Some(s) if s < limit_i64 => {
            return Err(SpecError::invalid(
                "--memory-swap",
                s.to_string(),
                format!(
                    "is memory plus swap, so it must be at least --memory ({limit}), or -1 for unlimited swap"
                ),
            ))
        }
        Some(s) => s,
    };
    Ok(Some(json!({"limit": limit_i64, "swap": swap})))
}

/// Only sysctls a container's own namespaces hold may be set (docker's
/// list); the network ones not when the network is the host's.
fn sysctls(opts: &RunOptions) -> Result<Value, SpecError> {
    let mut out = Map::new();
    for (key, value) in &opts.sysctls {
        let err = |problem: &str| SpecError::invalid("--sysctl", format!("{key}={value}"), problem);
        let ipc = key.starts_with("fs.mqueue.")
            || matches!(
                key.as_str(),
                "kernel.msgmax"
                    | "kernel.msgmnb"
                    | "kernel.msgmni"
                    | "kernel.sem"
                    | "kernel.shmall"
                    | "kernel.shmmax"
                    | "kernel.shmmni"
                    | "kernel.shm_rmid_forced"
            );
        let net = key.starts_with("net.");
        if key.contains("..") || key.contains('/') || key.contains('\0') || value.contains('\0') {
            return Err(err("not a valid sysctl name and value"));
        }
        if matches!(key.as_str(), "kernel.hostname" | "kernel.domainname") {
            return Err(err("set the host name with --hostname instead"));
        }
        if !ipc && !net {
            return Err(err(
                "not a namespaced sysctl: it would change the host; only fs.mqueue.*, \
                 kernel.msg*/sem/shm* and net.* can be set per container",
            ));
        }
        if net && opts.network == Network::Host {
            return Err(err(
                "net.* sysctls cannot be set with --network host: they would change the host",
            ));
        }
        out.insert(key.clone(), Value::String(value.clone()));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RunOptions {
        RunOptions {
            id: "c1".into(),
            namespace: "default".into(),
            ..Default::default()
        }
    }

    #[test]
    fn cgroup_paths() {
        let mut o = opts();
        assert_eq!(cgroups_path(&o).unwrap(), "/default/c1");
        o.cgroup_parent = "hull".into();
        assert_eq!(cgroups_path(&o).unwrap(), "/hull/default/c1");
        o.cgroup_parent = "/hull/batch/".into();
        assert_eq!(cgroups_path(&o).unwrap(), "/hull/batch/default/c1");
        for bad in ["../escape", "system.slice:hull:x"] {
            o.cgroup_parent = bad.into();
            let e = cgroups_path(&o).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--cgroup-parent {bad:?}")), "{e}");
        }
    }

    #[test]
    fn memory_and_swap() {
        let mut o = opts();
        o.memory = Some(256 << 20);
        assert_eq!(
            memory(&o).unwrap(),
            Some(json!({"limit": 256i64 << 20, "swap": 512i64 << 20}))
        );
        o.memory_swap = Some(-1);
        assert_eq!(memory(&o).unwrap().unwrap()["swap"], -1);
        o.memory_swap = Some(300 << 20);
        assert_eq!(memory(&o).unwrap().unwrap()["swap"], 300i64 << 20);
        o.memory_swap = Some(100 << 20);
        let e = memory(&o).unwrap_err().to_string();
        assert!(e.contains("must be at least --memory"), "{e}");
        o.memory = Some(0);
        assert!(memory(&o)
            .unwrap_err()
            .to_string()
            .contains("needs --memory"));
        o.memory_swap = None;
        assert_eq!(memory(&o).unwrap(), None);
        o.memory = Some(1 << 20);
        assert!(memory(&o)
            .unwrap_err()
            .to_string()
            .contains("minimum of 6 MiB"));
        o.memory = Some(u64::MAX);
        assert!(memory(&o).unwrap_err().to_string().contains("too large"));
    }

    #[test]
    fn sysctl_rules() {
        let mut o = opts();
        o.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
        o.sysctls.insert("kernel.shmmax".into(), "100".into());
        assert_eq!(sysctls(&o).unwrap()["net.ipv4.ip_forward"], "1");
        o.network = Network::Host;
        assert!(sysctls(&o)
            .unwrap_err()
            .to_string()
            .contains("--network host"));
        for bad in [
            "kernel.pid_max",
            "vm.swappiness",
            "kernel.hostname",
            "net/../x",
        ] {
            let mut o = opts();
            o.sysctls.insert(bad.into(), "1".into());
            let e = sysctls(&o).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--sysctl \"{bad}=1\"")), "{e}");
        }
    }
}
