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

/// `--dns`, `--dns-search` and `--dns-option` as resolv.conf can take them.
fn check_dns(a: &RunArgs) -> Result<(), String> {
    for server in &a.dns {
        server
            .parse::<std::net::IpAddr>()
            .map_err(|_| format!("--dns {server:?} is not an address"))?;
    }
    // One line each in resolv.conf: no line breaks or blanks inside.
    for (flag, values) in [
        ("--dns-search", &a.dns_search),
        ("--dns-option", &a.dns_option),
    ] {
        if let Some(bad) = values
            .iter()
            .find(|v| v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(format!("{flag} {bad:?}: one word, no spaces"));
        }
    }
    Ok(())
}

pub fn choose(a: &RunArgs) -> Result<Choice, String> {
    check_dns(a)?;
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
    let bandwidth = hull_network::Bandwidth::from_rates(
        a.ingress_bandwidth.as_deref(),
        a.egress_bandwidth.as_deref(),
    )?;
    let needs_network =
        !ports.is_empty() || a.ip.is_some() || a.mac_address.is_some() || bandwidth.is_some();
    let mut labels = HashMap::from([(labels::NETWORK.to_string(), a.network.clone())]);
    match a.network.as_str() {
        "host" | "none" if needs_network => Err(format!(
            "-p, --ip, --mac-address and --ingress/egress-bandwidth need a network: --network {} has none",
            a.network
        )),
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
            if let Some(b) = &bandwidth {
                let json = serde_json::to_string(b).expect("JSON values serialise");
                labels.insert(labels::BANDWIDTH.to_string(), json);
            }
            let mut dns = dns_settings(a);
            dns.searches.retain(|d| d != ".");
            if !dns.is_empty() {
                let json = serde_json::to_string(&dns).expect("JSON values serialise");
                labels.insert(labels::DNS.to_string(), json);
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

/// `--dns`, `--dns-search` and `--dns-option`. A search domain `.` means
/// none (docker's way to drop the host's): it stays here, so that
/// resolv.conf leaves the host's out, and is no domain for the plugins.
fn dns_settings(a: &RunArgs) -> hull_network::Dns {
    hull_network::Dns {
        servers: a.dns.clone(),
        searches: a.dns_search.clone(),
        options: a.dns_option.clone(),
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
/// fallback (Google's public resolvers). `--dns-search` and `--dns-option`
/// replace the host's `search` and `options` lines, as with docker.
fn resolv_text(dns: &hull_network::Dns, host: bool) -> String {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if host && dns.is_empty() {
        return host_resolv;
    }
    let mut text = without_lines(&host_resolv, dns);
    if dns.servers.is_empty() && !text.contains("nameserver") {
        let upstream =
            std::fs::read_to_string("/run/systemd/resolve/resolv.conf").unwrap_or_default();
        text = without_lines(&upstream, dns);
        if !text.contains("nameserver") {
            text.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        }
    }
    for server in &dns.servers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    let searches: Vec<&str> = dns
        .searches
        .iter()
        .map(String::as_str)
        .filter(|d| *d != ".")
        .collect();
    if !searches.is_empty() {
        text.push_str(&format!("search {}\n", searches.join(" ")));
    }
    if !dns.options.is_empty() {
        text.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    text
}

/// resolv.conf lines without loopback servers, and without the kinds of
/// line `dns` replaces (servers, search, options).
fn without_lines(text: &str, dns: &hull_network::Dns) -> String {
    text.lines()
        .filter(|l| {
            let l = l.trim();
            let keyword = l.split_whitespace().next().unwrap_or("");
            match keyword {
                "nameserver" => {
                    let loopback = l.contains(" 127.") || l.contains(" ::1") || l.ends_with("::1");
                    !loopback && dns.servers.is_empty()
                }
                "search" | "domain" => dns.searches.is_empty(),
                "options" => dns.options.is_empty(),
                _ => true,
            }
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
        resolv_conf: Some(write("resolv.conf", &resolv_text(&dns_settings(a), host))?),
    })
}

/// Once hulld has attached the container (its task is created): its
/// address for its own name in /etc/hosts. Written in place: the file is
/// bind-mounted into the container.
pub async fn record_address(ctx: &Ctx<'_>, id: &str) -> Result<(), String> {
    let c = super::find(ctx.c, id).await?;
    let Some(address) = addresses(&c).ipv4_first() else {
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

/// The addresses hulld recorded for a container, in the network's order.
struct Addresses<'a>(Vec<&'a str>);

fn addresses(c: &hull_api::containers::Container) -> Addresses<'_> {
    Addresses(
        c.labels
            .get(labels::IPS)
            .map(|ips| ips.split(',').filter(|i| !i.is_empty()).collect())
            .unwrap_or_default(),
    )
}

impl<'a> Addresses<'a> {
    fn ipv4(&self) -> Option<&'a str> {
        self.0.iter().find(|a| !a.contains(':')).copied()
    }

    fn ipv6(&self) -> Option<&'a str> {
        self.0.iter().find(|a| a.contains(':')).copied()
    }

    /// The address for the container's own name in /etc/hosts: IPv4 if it
    /// has one, as docker writes it, whatever order the network lists.
    fn ipv4_first(&self) -> Option<&'a str> {
        self.ipv4().or_else(|| self.ipv6())
    }
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
/// container's IPv4 and IPv6 addresses and its published ports.
pub fn settings(c: &hull_api::containers::Container) -> serde_json::Value {
    let ips = addresses(c);
    serde_json::json!({
        "Network": c.labels.get(labels::NETWORK),
        "IPAddress": ips.ipv4().unwrap_or(""),
        "GlobalIPv6Address": ips.ipv6().unwrap_or(""),
        "IPAddresses": ips.0,
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
        let dns = |servers: &[&str], searches: &[&str], options: &[&str]| hull_network::Dns {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            searches: searches.iter().map(|s| s.to_string()).collect(),
            options: options.iter().map(|s| s.to_string()).collect(),
        };
        let resolv = resolv_text(&dns(&["192.0.2.53"], &[], &[]), false);
        assert!(resolv.ends_with("nameserver 192.0.2.53\n"), "{resolv}");
        assert_eq!(resolv.matches("nameserver").count(), 1, "{resolv}");
        let resolv = resolv_text(&dns(&[], &["a.lan", "b.lan"], &["ndots:2"]), false);
        assert!(
            resolv.ends_with("search a.lan b.lan\noptions ndots:2\n"),
            "{resolv}"
        );
        assert_eq!(resolv.matches("search").count(), 1, "{resolv}");
        // `--dns-search .`: no search line at all, not even the host's.
        let resolv = resolv_text(&dns(&[], &["."], &[]), false);
        assert!(!resolv.contains("search"), "{resolv}");
    }

    #[test]
    fn host_resolv_lines_give_way_to_the_flags() {
        let host = "domain corp\nsearch corp.lan\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n";
        let none = hull_network::Dns::default();
        assert_eq!(
            without_lines(host, &none),
            "domain corp\nsearch corp.lan\nnameserver 10.0.0.2\noptions edns0\n"
        );
        let flags = hull_network::Dns {
            servers: vec!["192.0.2.1".into()],
            searches: vec!["x.lan".into()],
            options: vec![],
        };
        assert_eq!(without_lines(host, &flags), "options edns0\n");
    }
}
