//! A container's network as `hullctl run` sets it up: the spec's network
//! namespace (host, none, or one hulld attaches to a CNI network, told by
//! labels), the files docker writes (hostname, hosts, resolv.conf), and the
//! container's own address in its /etc/hosts once hulld has attached it.

use super::args::RunArgs;
use super::{container_dir, Ctx};
use hull_network::labels;
use hull_network::PortMapping;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use labels::on_cni;

/// Whether a container's labels put it on a CNI network.
pub fn labels_on_cni(l: &HashMap<String, String>) -> bool {
    l.get(labels::NETWORK).is_some_and(|n| on_cni(n))
}

/// What `--network`, `-p` and `--ip` ask for.
pub struct Choice {
    pub spec: hull_spec::Network,
    /// Labels for hulld (the CNI network, ports, address).
    pub labels: HashMap<String, String>,
    pub host: bool,
}

pub fn choose(a: &RunArgs) -> Result<Choice, String> {
    let ports = a
        .publish
        .iter()
        .map(|p| PortMapping::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(ip) = &a.ip {
        ip.parse::<std::net::Ipv4Addr>()
            .map_err(|_| format!("--ip {ip:?} is not an IPv4 address"))?;
    }
    if let Some(mac) = &a.mac_address {
        let octets: Vec<&str> = mac.split(':').collect();
        let valid = octets.len() == 6
            && octets
                .iter()
                .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
        if !valid {
            return Err(format!(
                "--mac-address {mac:?}: use six hex pairs, e.g. 02:42:ac:11:00:02"
            ));
        }
    }
    let mut labels = HashMap::from([(labels::NETWORK.to_string(), a.network.clone())]);
    match a.network.as_str() {
        "host" | "none" if !ports.is_empty() || a.ip.is_some() || a.mac_address.is_some() => {
            Err(format!(
                "-p, --ip and --mac-address need a network: --network {} has none",
                a.network
            ))
        }
        "host" => Ok(Choice {
            spec: hull_spec::Network::Host,
            labels,
            host: true,
        }),
        "none" => Ok(Choice {
            spec: hull_spec::Network::None,
            labels,
            host: false,
        }),
        name => {
            if !hull_network::config::valid_name(name) {
                return Err(format!("--network {name:?} is not a network name"));
            }
            if !ports.is_empty() {
                let json = serde_json::to_string(&ports).expect("JSON values serialise");
                labels.insert(labels::PORTS.to_string(), json);
            }
            if let Some(ip) = &a.ip {
                labels.insert(labels::IP.to_string(), ip.clone());
            }
            if let Some(mac) = &a.mac_address {
                labels.insert(labels::MAC.to_string(), mac.to_ascii_lowercase());
            }
            // A new namespace; hulld joins it to the network and gives the
            // runtime its path.
            Ok(Choice {
                spec: hull_spec::Network::None,
                labels,
                host: false,
            })
        }
    }
}

/// The host's name (a `--network host` container's default hostname).
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_string()).filter(|n| !n.is_empty())
}

/// `--add-host HOST:IP` entries.
fn extra_hosts(a: &RunArgs) -> Result<Vec<(String, String)>, String> {
    a.add_host
        .iter()
        .map(|h| {
            let (name, ip) = h
                .split_once(':')
                .ok_or_else(|| format!("--add-host {h:?}: use HOST:IP"))?;
            ip.parse::<std::net::IpAddr>()
                .map_err(|_| format!("--add-host {h:?}: {ip:?} is not an address"))?;
            Ok((name.to_string(), ip.to_string()))
        })
        .collect()
}

/// The container's hosts file: loopback, its own name (127.0.1.1 until it
/// has an address), then `--add-host` entries.
fn hosts_text(hostname: &str, address: Option<&str>, extra: &[(String, String)]) -> String {
    let mut text = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{hostname}\n",
        address.unwrap_or("127.0.1.1")
    );
    for (name, ip) in extra {
        text.push_str(&format!("{ip}\t{name}\n"));
    }
    text
}

/// resolv.conf: `--dns` servers, else the host's without loopback resolvers
/// (they would be the container's own loopback), as docker filters them.
/// With systemd-resolved the host's only server is 127.0.0.53: then the
/// upstream servers of /run/systemd/resolve/resolv.conf, else docker's
/// fallback (Google's public resolvers).
fn resolv_text(dns: &[String], host: bool) -> String {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if host && dns.is_empty() {
        return host_resolv;
    }
    let mut text = without_loopback_servers(&host_resolv, !dns.is_empty());
    if dns.is_empty() && !text.contains("nameserver") {
        let upstream =
            std::fs::read_to_string("/run/systemd/resolve/resolv.conf").unwrap_or_default();
        text = without_loopback_servers(&upstream, false);
        if !text.contains("nameserver") {
            text.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        }
    }
    for server in dns {
        text.push_str(&format!("nameserver {server}\n"));
    }
    text
}

/// resolv.conf lines without loopback servers (or without any server).
fn without_loopback_servers(text: &str, drop_all: bool) -> String {
    text.lines()
        .filter(|l| {
            let l = l.trim();
            let server = l.starts_with("nameserver");
            let loopback = l.contains(" 127.") || l.contains(" ::1") || l.ends_with("::1");
            !(server && (loopback || drop_all))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The files docker writes for a container: hostname, hosts, resolv.conf.
pub fn write_etc_files(
    dir: &Path,
    hostname: &str,
    a: &RunArgs,
    host: bool,
) -> Result<hull_spec::EtcFiles, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for server in &a.dns {
        server
            .parse::<std::net::IpAddr>()
            .map_err(|_| format!("--dns {server:?} is not an address"))?;
    }
    let write = |name: &str, text: &str| -> Result<PathBuf, String> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("writing {}: {e}", p.display()))?;
        Ok(p)
    };
    let extra = extra_hosts(a)?;
    let hosts = if host {
        let mut text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        for (name, ip) in &extra {
            text.push_str(&format!("{ip}\t{name}\n"));
        }
        text
    } else {
        hosts_text(hostname, None, &extra)
    };
    Ok(hull_spec::EtcFiles {
        hostname: Some(write("hostname", &format!("{hostname}\n"))?),
        hosts: Some(write("hosts", &hosts)?),
        resolv_conf: Some(write("resolv.conf", &resolv_text(&a.dns, host))?),
    })
}

/// Once hulld has attached the container (its task is created): its
/// address for its own name in /etc/hosts. Written in place: the file is
/// bind-mounted into the container.
pub async fn record_address(ctx: &Ctx<'_>, id: &str) -> Result<(), String> {
    let c = super::find(ctx.c, id).await?;
    let Some(address) = c
        .labels
        .get(labels::IPS)
        .and_then(|ips| ips.split(',').next())
        .filter(|a| !a.is_empty())
    else {
        return Ok(());
    };
    let dir = container_dir(ctx.data_root, ctx.namespace, id);
    let hostname = std::fs::read_to_string(dir.join("hostname")).unwrap_or_default();
    let hostname = hostname.trim();
    let path = dir.join("hosts");
    let Ok(old) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let text: String = old
        .lines()
        .map(|l| match l.split_once('\t') {
            Some((_, names)) if names == hostname => format!("{address}\t{hostname}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn published(c: &hull_api::containers::Container) -> Vec<PortMapping> {
    c.labels
        .get(labels::PORTS)
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

/// `ps`'s PORTS column, as docker writes it: `0.0.0.0:8080->80/tcp`.
pub fn ports_column(c: &hull_api::containers::Container) -> String {
    published(c)
        .iter()
        .map(|p| {
            let ip = if p.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                &p.host_ip
            };
            format!("{ip}:{}->{}/{}", p.host_port, p.container_port, p.protocol)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `inspect`'s NetworkSettings (docker's names): the network, the
/// container's address and its published ports.
pub fn settings(c: &hull_api::containers::Container) -> serde_json::Value {
    let ips: Vec<&str> = c
        .labels
        .get(labels::IPS)
        .map(|ips| ips.split(',').filter(|i| !i.is_empty()).collect())
        .unwrap_or_default();
    serde_json::json!({
        "Network": c.labels.get(labels::NETWORK),
        "IPAddress": ips.first().copied().unwrap_or(""),
        "IPAddresses": ips,
        "Ports": published(c),
    })
}

/// `hullctl port CONTAINER`: its published ports, as docker prints them.
pub async fn port(ctx: &Ctx<'_>, name: &str) -> super::Exit {
    let c = super::find(ctx.c, name).await?;
    let ports: Vec<PortMapping> = match c.labels.get(labels::PORTS) {
        Some(json) => {
            serde_json::from_str(json).map_err(|e| format!("label {}: {e}", labels::PORTS))?
        }
        None => Vec::new(),
    };
    for p in ports {
        println!("{p}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_resolv_as_docker_writes_them() {
        let extra = vec![("db".to_string(), "10.0.0.9".to_string())];
        let text = hosts_text("web", Some("10.4.0.2"), &extra);
        assert!(
            text.contains("10.4.0.2\tweb\n") && text.ends_with("10.0.0.9\tdb\n"),
            "{text}"
        );
        assert!(hosts_text("web", None, &[]).contains("127.0.1.1\tweb\n"));
        let resolv = resolv_text(&["192.0.2.53".to_string()], false);
        assert!(resolv.ends_with("nameserver 192.0.2.53\n"), "{resolv}");
        assert_eq!(resolv.matches("nameserver").count(), 1, "{resolv}");
    }
}
