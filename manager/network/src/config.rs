//! CNI network configuration: the `*.conflist` files of a directory (and
//! single-plugin `*.conf` / `*.json` files, wrapped as a list of one), as
//! libcni reads them: in file-name order, the first file naming a network
//! wins. Errors name the file and the field.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A network: a named chain of plugins.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    /// Each plugin's configuration (its `type` names the binary).
    pub plugins: Vec<Value>,
    pub file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("CNI config {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("CNI config {}: field {field:?}: {why}: fix or remove the file", file.display())]
    Invalid {
        file: PathBuf,
        field: String,
        why: String,
    },
    #[error("network {0:?}: {1}")]
    Refused(String, String),
}

fn invalid(file: &Path, field: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_path_buf(),
        field: field.into(),
        why: why.into(),
    }
}

/// Names of networks and plugin types: what the CNI spec allows (and no
/// path separators: a type names a binary in the plugin dirs).
pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && s.len() <= 128
}

impl NetworkList {
    /// Whether one of its plugins declares `capability` (CNI
    /// `"capabilities": {"<name>": true}`).
    pub fn has_capability(&self, capability: &str) -> bool {
        self.plugins
            .iter()
            .any(|p| p["capabilities"][capability].as_bool() == Some(true))
    }

    /// Parse one file's bytes.
    pub fn parse(file: &Path, bytes: &[u8]) -> Result<NetworkList, ConfigError> {
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|e| invalid(file, "", format!("not JSON ({e})")))?;
        let is_list = file.extension().is_some_and(|e| e == "conflist");
        let name = doc["name"]
            .as_str()
            .ok_or_else(|| invalid(file, "name", "missing"))?;
        if !valid_name(name) {
            return Err(invalid(
                file,
                "name",
                format!("{name:?} is not a valid network name"),
            ));
        }
        let version = doc["cniVersion"]
            .as_str()
            .ok_or_else(|| invalid(file, "cniVersion", "missing"))?;
        let plugins = if is_list {
            doc["plugins"]
                .as_array()
                .filter(|p| !p.is_empty())
                .cloned()
                .ok_or_else(|| invalid(file, "plugins", "missing or empty"))?
        } else {
            vec![doc.clone()]
        };
        for (i, p) in plugins.iter().enumerate() {
            let ty = p["type"]
                .as_str()
                .ok_or_else(|| invalid(file, &format!("plugins[{i}].type"), "missing"))?;
            if !valid_name(ty) {
                return Err(invalid(
                    file,
                    &format!("plugins[{i}].type"),
                    format!("{ty:?} is not a plugin name"),
                ));
            }
        }
        Ok(NetworkList {
            name: name.to_string(),
            cni_version: version.to_string(),
            plugins,
            file: file.to_path_buf(),
        })
    }

    /// The list as a conflist document.
    pub fn to_json(&self) -> Value {
        json!({"cniVersion": self.cni_version, "name": self.name, "plugins": self.plugins})
    }

    /// The IPv4/IPv6 subnets its IPAM hands out from (host-local's
    /// `subnet` and `ranges`).
    pub fn subnets(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.plugins {
            let ipam = &p["ipam"];
            if let Some(s) = ipam["subnet"].as_str() {
                out.push(s.to_string());
            }
            for set in ipam["ranges"].as_array().into_iter().flatten() {
                for r in set.as_array().into_iter().flatten() {
                    if let Some(s) = r["subnet"].as_str() {
                        out.push(s.to_string());
                    }
                }
            }
        }
        out
    }
}

/// Every network in `dir` (none if it does not exist), in file-name order,
/// the first of each name only.
pub fn load_dir(dir: &Path) -> Result<Vec<NetworkList>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                file: dir.into(),
                source,
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "conflist" || e == "conf" || e == "json")
        })
        .collect();
    files.sort();
    let mut out: Vec<NetworkList> = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let list = NetworkList::parse(&file, &bytes)?;
        if !out.iter().any(|n| n.name == list.name) {
            out.push(list);
        }
    }
    Ok(out)
}

/// A bridge network as nerdctl makes it: `bridge` (gateway, masquerade,
/// hairpin) with `host-local` IPAM on `subnet`, then `portmap`,
/// `firewall` and `tuning`.
pub fn bridge_network(name: &str, bridge: &str, subnet: &str, ipam_dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                // host-local reads `--ip` from the runtime config.
                "capabilities": {"ips": true},
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir,
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall"},
            // tuning sets the MAC address asked for (`--mac-address`).
            {"type": "tuning", "capabilities": {"mac": true}}
        ]
    })
}

/// Write a network's conflist into `dir` atomically (`<name>.conflist`).
pub fn write(dir: &Path, doc: &Value) -> Result<PathBuf, ConfigError> {
    let name = doc["name"].as_str().unwrap_or_default();
    let file = dir.join(format!("{name}.conflist"));
    let err = |source| ConfigError::Read {
        file: file.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(".{name}.conflist.tmp"));
    let text = serde_json::to_vec_pretty(doc).expect("JSON values serialise");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, &file).map_err(err)?;
    Ok(file)
}

/// `a.b.c.d/n` as (network, prefix length); IPv4 only.
fn cidr4(s: &str) -> Option<(u32, u32)> {
    let (addr, len) = s.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((u32::from(addr), len))
}

/// Whether two IPv4 subnets share addresses.
pub fn overlap(a: &str, b: &str) -> bool {
    let (Some((a, la)), Some((b, lb))) = (cidr4(a), cidr4(b)) else {
        return false;
    };
    let len = la.min(lb);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a & mask == b & mask
}

/// Check a subnet for `network create`: valid IPv4 CIDR.
pub fn check_subnet(s: &str) -> Result<(), String> {
    match cidr4(s) {
        Some((_, len)) if (8..=30).contains(&len) => Ok(()),
        Some(_) => Err(format!("subnet {s}: use a prefix length from 8 to 30")),
        None => Err(format!(
            "subnet {s:?} is not an IPv4 CIDR such as 10.5.0.0/24"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_lists_and_single_confs_first_name_wins_and_names_bad_fields() {
        let tmp = tempfile::Builder::new()
            .prefix("hull-cni-config-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().join("net.d");
        std::fs::create_dir_all(&dir).unwrap();
        let net = bridge_network("bridge", "hull0", "10.4.0.0/24", Path::new("/tmp/ipam"));
        write(&dir, &net).unwrap();
        std::fs::write(
            dir.join("20-other.conf"),
            r#"{"cniVersion":"0.4.0","name":"other","type":"ptp"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("zz-dup.conflist"),
            r#"{"cniVersion":"1.0.0","name":"bridge","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        let lists = load_dir(&dir).unwrap();
        let names: Vec<&str> = lists.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            ["other", "bridge"],
            "file-name order: 20-other, bridge, zz-dup (ignored)"
        );
        let bridge = lists.iter().find(|l| l.name == "bridge").unwrap();
        assert_eq!(bridge.plugins.len(), 4);
        assert_eq!(bridge.subnets(), ["10.4.0.0/24"]);
        std::fs::write(
            dir.join("40-bad.conflist"),
            r#"{"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"../x"}]}"#,
        )
        .unwrap();
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("40-bad.conflist") && err.contains("plugins[0].type"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(load_dir(&dir).unwrap().is_empty());
    }

    #[test]
    fn subnets_overlap_and_are_checked() {
        assert!(overlap("10.4.0.0/24", "10.4.0.128/25"));
        assert!(overlap("10.0.0.0/8", "10.4.0.0/24"));
        assert!(!overlap("10.4.0.0/24", "10.4.1.0/24"));
        assert!(check_subnet("10.5.0.0/24").is_ok());
        assert!(check_subnet("10.5.0.0/31").is_err());
        assert!(check_subnet("nope").is_err());
    }
}
