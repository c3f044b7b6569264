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
/// hairpin) with `host-local` IPAM on `subnets` (one range set each, so an
/// IPv4 and an IPv6 subnet give a container one address of each), then
/// `portmap`, `firewall` (isolating it from other bridges) and `tuning`.
pub fn bridge_network(name: &str, bridge: &str, subnets: &[&str], ipam_dir: &Path) -> Value {
    let ranges: Vec<Value> = subnets.iter().map(|s| json!([{"subnet": s}])).collect();
    let mut routes = vec![json!({"dst": "0.0.0.0/0"})];
    if subnets.iter().any(|s| is_ipv6(s)) {
        routes.push(json!({"dst": "::/0"}));
    }
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
                    "ranges": ranges,
                    "routes": routes,
                    "dataDir": ipam_dir,
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            // Containers of other bridge networks cannot reach these (as
            // docker isolates its networks; nerdctl's default, firewall
            // plugin 1.1+).
            {"type": "firewall", "ingressPolicy": "same-bridge"},
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

/// A subnet in CIDR notation: its family, address bits (IPv4 in the low 32
/// of the 128) and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cidr {
    v6: bool,
    bits: u128,
    len: u32,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (addr, len) = s.split_once('/')?;
        // Digits only: `+24` parses in Rust but not in the plugins (Go).
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: u32 = len.parse().ok()?;
        match addr.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(a) if len <= 32 => Some(Cidr {
                v6: false,
                bits: u32::from(a) as u128,
                len,
            }),
            std::net::IpAddr::V6(a) if len <= 128 => Some(Cidr {
                v6: true,
                bits: u128::from(a),
                len,
            }),
            _ => None,
        }
    }

    fn width(&self) -> u32 {
        if self.v6 {
            128
        } else {
            32
        }
    }

    /// The first `len` bits, the rest zero.
    fn prefix(&self, len: u32) -> u128 {
        let host_bits = self.width() - len;
        if host_bits >= 128 {
            0
        } else {
            self.bits >> host_bits << host_bits
        }
    }
}

/// Whether two subnets share addresses (never across IPv4 and IPv6).
pub fn overlap(a: &str, b: &str) -> bool {
    let (Some(a), Some(b)) = (Cidr::parse(a), Cidr::parse(b)) else {
        return false;
    };
    let len = a.len.min(b.len);
    a.v6 == b.v6 && a.prefix(len) == b.prefix(len)
}

/// Whether `s` is an IPv6 CIDR.
pub fn is_ipv6(s: &str) -> bool {
    Cidr::parse(s).is_some_and(|c| c.v6)
}

/// Check a subnet for `network create`: a CIDR whose host bits are zero,
/// IPv4 with a prefix from /8 to /30, IPv6 from /48 to /120 (host-local
/// hands out from it; a wider one is a typo more likely than a plan).
pub fn check_subnet(s: &str) -> Result<(), String> {
    let Some(c) = Cidr::parse(s) else {
        return Err(format!(
            "subnet {s:?} is not a CIDR such as 10.5.0.0/24 or fd00:5::/64"
        ));
    };
    let (family, lengths) = if c.v6 {
        ("IPv6", 48..=120)
    } else {
        ("IPv4", 8..=30)
    };
    if !lengths.contains(&c.len) {
        return Err(format!(
            "subnet {s}: use an {family} prefix length from {} to {}",
            lengths.start(),
            lengths.end()
        ));
    }
    if c.prefix(c.len) != c.bits {
        return Err(format!(
            "subnet {s}: the address has host bits set; the network is {0}: use --subnet {0}",
            network_text(&c)
        ));
    }
    Ok(())
}

fn network_text(c: &Cidr) -> String {
    let p = c.prefix(c.len);
    let addr: std::net::IpAddr = if c.v6 {
        std::net::Ipv6Addr::from(p).into()
    } else {
        std::net::Ipv4Addr::from(p as u32).into()
    };
    format!("{addr}/{}", c.len)
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
        let net = bridge_network("bridge", "hull0", &["10.4.0.0/24"], Path::new("/tmp/ipam"));
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
        let err = check_subnet("10.5.0.7/24").unwrap_err();
        assert!(err.contains("the network is 10.5.0.0/24"), "{err}");

        assert!(overlap("fd00:5::/64", "fd00:5::8000/120"));
        assert!(!overlap("fd00:5::/64", "fd00:6::/64"));
        assert!(!overlap("10.0.0.0/8", "::/0"), "no overlap across families");
        assert!(check_subnet("fd00:5::/64").is_ok());
        assert!(check_subnet("fd00:5::/32").is_err());
        let err = check_subnet("fd00:5::1/64").unwrap_err();
        assert!(err.contains("the network is fd00:5::/64"), "{err}");
        assert!(is_ipv6("fd00:5::/64") && !is_ipv6("10.5.0.0/24"));
        // The edges: a zero-length prefix and a full-width one.
        assert!(overlap("::/0", "fd00::/64"));
        assert!(overlap("0.0.0.0/0", "10.0.0.0/8"));
        assert!(overlap("10.0.0.1/32", "10.0.0.0/24"));
        assert!(!overlap("fd00::1/128", "fd00::2/128"));
        assert!(check_subnet("10.5.0.1/32").is_err());
        assert!(check_subnet("fd00::1/128").is_err());
        assert!(check_subnet("10.5.0.0/+24").is_err());
    }

    #[test]
    fn a_dual_stack_bridge_has_a_range_and_a_route_per_family() {
        let net = bridge_network(
            "web",
            "br-x",
            &["10.5.0.0/24", "fd00:5::/64"],
            Path::new("/i"),
        );
        let ipam = &net["plugins"][0]["ipam"];
        assert_eq!(
            ipam["ranges"],
            json!([[{"subnet": "10.5.0.0/24"}], [{"subnet": "fd00:5::/64"}]])
        );
        assert_eq!(
            ipam["routes"],
            json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
        );
    }
}
