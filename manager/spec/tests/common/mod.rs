//! Shared fixtures: an image like nginx's or busybox's, its account files,
//! and the generated config.json as JSON.

#![allow(dead_code)] // each test binary uses a different part

use hull_spec::{generate, ImageConfig, RunOptions, SpecError};
use serde_json::Value;
use std::collections::HashMap;

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                          app:x:1000:1000:app:/home/app:/bin/sh\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
pub const GROUP: &str = "root:x:0:\nwheel:x:10:root\napp:x:1000:\n\
                         video:x:44:app\nstaff:x:50:app,daemon\nnogroup:x:65534:\n";

pub fn files() -> HashMap<String, Vec<u8>> {
    HashMap::from([
        ("/etc/passwd".to_string(), PASSWD.as_bytes().to_vec()),
        ("/etc/group".to_string(), GROUP.as_bytes().to_vec()),
    ])
}

pub fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
    ImageConfig {
        entrypoint: strings(entrypoint),
        cmd: strings(cmd),
        env: strings(&["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"]),
        ..Default::default()
    }
}

pub fn busybox() -> ImageConfig {
    ImageConfig {
        cmd: strings(&["sh"]),
        env: strings(&["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
        os: "linux".into(),
        ..Default::default()
    }
}

pub fn opts() -> RunOptions {
    RunOptions {
        id: "0123456789abcdef0123".into(),
        namespace: "default".into(),
        cgroup_parent: "hull".into(),
        ..Default::default()
    }
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// config.json as the runtime would read it.
pub fn config(image: &ImageConfig, opts: &RunOptions) -> Value {
    try_config(image, opts).unwrap_or_else(|e| panic!("generate: {e}"))
}

pub fn try_config(image: &ImageConfig, opts: &RunOptions) -> Result<Value, SpecError> {
    let spec = generate(image, opts, &files())?;
    Ok(serde_json::to_value(&spec).expect("serialize spec"))
}

/// A JSON array of strings, sorted (capability sets have no order).
pub fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect();
    out.sort();
    out
}

pub fn mount<'a>(config: &'a Value, destination: &str) -> Option<&'a Value> {
    config["mounts"]
        .as_array()?
        .iter()
        .find(|m| m["destination"] == destination)
}

pub fn destinations(config: &Value) -> Vec<String> {
    config["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| m["destination"].as_str().expect("destination").to_string())
        .collect()
}

/// Every syscall name some rule of the seccomp profile allows.
pub fn allowed_syscalls(config: &Value) -> Vec<String> {
    config["linux"]["seccomp"]["syscalls"]
        .as_array()
        .expect("seccomp syscalls")
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| sorted(&r["names"]))
        .collect()
}
