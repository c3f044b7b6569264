//! Runtime options a client may pass with Create: containerd's runc options
//! (`containerd.runc.v1.Options`: BinaryName, Root, SystemdCgroup,
//! NoPivotRoot, NoNewKeyring), so configurations written for the runc shim
//! work unchanged. Other option types (`runtimeoptions.v1.Options` from
//! `ctr --runtime-config-path`) carry nothing for hull and are ignored.

use std::path::Path;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options;

use crate::error::{Error, Result};

pub const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";

/// The options of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShimOptions {
    pub binary_name: String,
    pub root: String,
    pub systemd_cgroup: bool,
    pub no_pivot_root: bool,
    pub no_new_keyring: bool,
}

impl ShimOptions {
    pub fn from_any(any: Option<&Any>) -> Result<ShimOptions> {
        let Some(any) = any.filter(|a| !a.type_url.is_empty() || !a.value.is_empty()) else {
            return Ok(ShimOptions::default());
        };
        let name = any.type_url.rsplit('/').next().unwrap_or_default();
        if name != RUNC_OPTIONS_TYPE {
            return Ok(ShimOptions::default());
        }
        let o = Options::parse_from_bytes(&any.value).map_err(|e| {
            Error::InvalidArgument(format!("decoding the runtime options ({name}): {e}"))
        })?;
        if !o.criu_image_path.is_empty() || !o.criu_work_path.is_empty() {
            return Err(Error::Unimplemented(
                "runtime options ask for CRIU paths: checkpoint/restore is not supported by hull"
                    .into(),
            ));
        }
        Ok(ShimOptions {
            binary_name: o.binary_name,
            root: o.root,
            systemd_cgroup: o.systemd_cgroup,
            no_pivot_root: o.no_pivot_root,
            no_new_keyring: o.no_new_keyring,
        })
    }
}

/// The bundle file telling a later `delete` action (run after the shim
/// died) which runtime binary and root the container used.
pub const BUNDLE_FILE: &str = "hull-shim.json";

pub fn save(bundle: &Path, binary: &Path, root: &Path, systemd: bool) -> Result<()> {
    let v = serde_json::json!({"binary": binary, "root": root, "systemd_cgroup": systemd});
    let path = bundle.join(BUNDLE_FILE);
    std::fs::write(&path, v.to_string())
        .map_err(|e| Error::Internal(format!("writing {}: {e}", path.display())))
}

/// (binary, root, systemd_cgroup) saved by [`save`], if readable.
pub fn load(bundle: &Path) -> Option<(String, String, bool)> {
    let text = std::fs::read(bundle.join(BUNDLE_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    Some((
        v["binary"].as_str()?.to_owned(),
        v["root"].as_str()?.to_owned(),
        v["systemd_cgroup"].as_bool().unwrap_or(false),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_options_are_read() {
        let mut o = Options::new();
        o.binary_name = "/usr/local/bin/hull".into();
        o.root = "/run/x".into();
        let mut any = Any::new();
        any.type_url = RUNC_OPTIONS_TYPE.into();
        any.value = o.write_to_bytes().unwrap();
        let s = ShimOptions::from_any(Some(&any)).unwrap();
        assert_eq!(s.binary_name, "/usr/local/bin/hull");
        assert_eq!(s.root, "/run/x");
        any.type_url = "runtimeoptions.v1.Options".into();
        assert_eq!(
            ShimOptions::from_any(Some(&any)).unwrap(),
            ShimOptions::default()
        );
        any.type_url = RUNC_OPTIONS_TYPE.into();
        any.value = vec![0xff, 0xff];
        assert!(ShimOptions::from_any(Some(&any)).is_err());
    }
}
