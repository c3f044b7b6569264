//! Putting config.json together.

use crate::{capabilities, linux, mounts, process};
use crate::{ImageConfig, Network, RootfsFiles, RunOptions, SpecError};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

/// The runtime-spec version written (what hull and runc 1.2 implement).
pub const OCI_VERSION: &str = "1.2.1";

/// containerd's limit on identifier length.
const MAX_IDENTIFIER: usize = 76;

/// The kernel's limit on host names (HOST_NAME_MAX).
const MAX_HOSTNAME: usize = 64;

/// Turn an image config and run options into an OCI runtime spec, as
/// nerdctl (and, where nerdctl says nothing, docker) would. `files` reads
/// the image's /etc/passwd and /etc/group to resolve user names. The root
/// filesystem is `rootfs` in the bundle; change `spec.root` for another.
pub fn generate(
    image: &ImageConfig,
    opts: &RunOptions,
    files: &dyn RootfsFiles,
) -> Result<Spec, SpecError> {
    if !image.os.is_empty() && image.os != "linux" {
        return Err(SpecError::ImageConfig(format!(
            "the image is for {:?}, not linux: pull the linux variant (--platform linux/ARCH)",
            image.os
        )));
    }
    check_identifier("container id", &opts.id)?;
    check_identifier("namespace", &opts.namespace)?;
    let caps = capabilities::resolve(
        opts.privileged,
        &opts.cap_add,
        &opts.cap_drop,
        opts.host_capabilities.as_deref(),
    )?;
    let hostname = hostname(opts)?;
    let mut spec = json!({
        "ociVersion": OCI_VERSION,
        "process": process::process(image, opts, files, hostname.as_deref(), &caps)?,
        "root": {"path": "rootfs", "readonly": opts.read_only},
    });
    if let Some(h) = &hostname {
        spec["hostname"] = json!(h);
    }
    spec["mounts"] = Value::Array(mounts::mounts(opts)?);
    if !opts.annotations.is_empty() {
        spec["annotations"] = json!(opts.annotations);
    }
    spec["linux"] = linux::linux(opts, &caps)?;
    serde_json::from_value(spec).map_err(|e| SpecError::Internal(e.to_string()))
}

/// containerd's identifier rule: letters and digits, with single `.`, `_`
/// or `-` between them.
fn check_identifier(what: &'static str, s: &str) -> Result<(), SpecError> {
    let bytes = s.as_bytes();
    let separator = |b: u8| matches!(b, b'.' | b'_' | b'-');
    let well_formed = !bytes.is_empty()
        && bytes.len() <= MAX_IDENTIFIER
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || separator(*b))
        && !separator(bytes[0])
        && !separator(bytes[bytes.len() - 1])
        && !bytes.windows(2).any(|w| separator(w[0]) && separator(w[1]));
    if well_formed {
        return Ok(());
    }
    Err(SpecError::invalid(
        what,
        s,
        format!(
            "use 1-{MAX_IDENTIFIER} letters and digits, with single '.', '_' or '-' between them"
        ),
    ))
}

/// `--hostname`, else the id's first 12 characters (docker, nerdctl); with
/// the host's network, the host's name (docker), read from
/// /proc/sys/kernel/hostname. `None` when even that cannot be read: the new
/// UTS namespace then keeps the name it was created with, the host's.
fn hostname(opts: &RunOptions) -> Result<Option<String>, SpecError> {
    if let Some(h) = &opts.hostname {
        let ok = !h.is_empty()
            && h.len() <= MAX_HOSTNAME
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !ok {
            return Err(SpecError::invalid(
                "--hostname",
                h,
                format!("use 1-{MAX_HOSTNAME} letters, digits, '-', '.' or '_'"),
            ));
        }
        return Ok(Some(h.clone()));
    }
    if opts.network == Network::Host {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty());
        return Ok(host);
    }
    Ok(Some(opts.id.chars().take(12).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["a", "default", "k8s.io", "abc_def-1.2", &"x".repeat(76)] {
            assert!(check_identifier("namespace", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a/b", "a b", "ä", &"x".repeat(77)] {
            let e = check_identifier("container id", bad)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("container id {bad:?}: use 1-76")),
                "{e}"
            );
        }
    }

    #[test]
    fn hostnames() {
        let mut o = RunOptions {
            id: "0123456789abcdef".into(),
            ..Default::default()
        };
        assert_eq!(hostname(&o).unwrap().as_deref(), Some("0123456789ab"));
        o.hostname = Some("web-1.local".into());
        assert_eq!(hostname(&o).unwrap().as_deref(), Some("web-1.local"));
        for bad in ["", "a b", "a/b", &"h".repeat(65)] {
            o.hostname = Some(bad.to_string());
            let e = hostname(&o).unwrap_err().to_string();
            assert!(e.starts_with("--hostname "), "{e}");
        }
        o.hostname = None;
        o.network = Network::Host;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname(&o).unwrap().as_deref(), Some(host.trim()));
    }
}
