//! Generates tonic clients and servers for containerd's API and hull's own
//! transfer service. Needs `protoc` (Debian: protobuf-compiler, installed by
//! hack/deps.sh).
//!
//! containerd's proto files are not copied into this repository: they come
//! from the `containerd-client` crate (a build dependency, so cargo fetches
//! it), found through `cargo metadata`. That crate generates clients only;
//! hulld needs the servers, so the files are compiled here.

use std::path::{Path, PathBuf};
use std::process::Command;

/// containerd's services and the types and events they use.
const CONTAINERD_PROTOS: &[&str] = &[
    "github.com/containerd/containerd/api/services/namespaces/v1/namespace.proto",
    "github.com/containerd/containerd/api/services/content/v1/content.proto",
    "github.com/containerd/containerd/api/services/images/v1/images.proto",
    "github.com/containerd/containerd/api/services/leases/v1/leases.proto",
    "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto",
    "github.com/containerd/containerd/api/services/diff/v1/diff.proto",
    "github.com/containerd/containerd/api/services/introspection/v1/introspection.proto",
    "github.com/containerd/containerd/api/services/version/v1/version.proto",
    "github.com/containerd/containerd/api/services/containers/v1/containers.proto",
    "github.com/containerd/containerd/api/services/tasks/v1/tasks.proto",
    "github.com/containerd/containerd/api/services/events/v1/events.proto",
    "github.com/containerd/containerd/api/events/container.proto",
    "github.com/containerd/containerd/api/events/content.proto",
    "github.com/containerd/containerd/api/events/image.proto",
    "github.com/containerd/containerd/api/events/namespace.proto",
    "github.com/containerd/containerd/api/events/snapshot.proto",
    "github.com/containerd/containerd/api/events/task.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let vendor = containerd_client_dir()?.join("vendor");
    println!("cargo:rerun-if-changed=proto");
    let mut protos: Vec<PathBuf> = CONTAINERD_PROTOS.iter().map(|p| vendor.join(p)).collect();
    protos.push("proto/transfer.proto".into());
    protos.push("proto/gc.proto".into());
    protos.push("proto/network.proto".into());
    let includes = [vendor.clone(), PathBuf::from("proto")];
    tonic_prost_build::configure().compile_protos(&protos, &includes)?;
    Ok(())
}

/// Where cargo unpacked the `containerd-client` crate: asked of `cargo
/// metadata` for this build's target only (other targets' dependencies are
/// not downloaded on a fresh machine, and --offline would fail on them),
/// else looked up in cargo's registry cache.
fn containerd_client_dir() -> Result<PathBuf, Box<dyn std::error::Error>> {
    match from_cargo_metadata() {
        Ok(dir) => Ok(dir),
        Err(e) => from_registry_cache().ok_or_else(|| {
            format!("cannot find the containerd-client crate's sources: {e}").into()
        }),
    }
}

fn from_cargo_metadata() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["metadata", "--format-version", "1", "--offline"]);
    if let Ok(target) = std::env::var("TARGET") {
        cmd.args(["--filter-platform", &target]);
    }
    let out = cmd.arg("--manifest-path").arg(&manifest).output()?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let path = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "containerd-client")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("containerd-client is not in the dependency graph of hull-api")?;
    Ok(Path::new(path)
        .parent()
        .ok_or("containerd-client's manifest has no directory")?
        .to_path_buf())
}

/// `$CARGO_HOME/registry/src/*/containerd-client-*`, the newest.
fn from_registry_cache() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .filter_map(|e| e.ok())
        .flat_map(|index| std::fs::read_dir(index.path()).into_iter().flatten())
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("containerd-client-0.9."))
        })
        .collect();
    found.sort();
    found.pop()
}
