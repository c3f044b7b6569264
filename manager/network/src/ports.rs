//! Published ports: docker's `-p` syntax and CNI's `portMappings`.

use serde::{Deserialize, Serialize};

/// One published port, as the portmap plugin's `portMappings` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// "tcp" or "udp".
    pub protocol: String,
    /// Empty: every address of the host.
    #[serde(default, rename = "hostIP", skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

impl PortMapping {
    /// `[hostIP:]hostPort:containerPort[/tcp|udp]` (hostIP may be `[v6]`).
    pub fn parse(spec: &str) -> Result<PortMapping, String> {
        let bad = |why: &str| {
            format!("-p {spec:?}: {why}; use [hostIP:]hostPort:containerPort[/tcp|udp]")
        };
        let (ports, protocol) = match spec.rsplit_once('/') {
            Some((p, proto)) => (p, proto.to_ascii_lowercase()),
            None => (spec, "tcp".to_string()),
        };
        if protocol != "tcp" && protocol != "udp" {
            return Err(bad("the protocol is tcp or udp"));
        }
        let (rest, container) = ports.rsplit_once(':').ok_or_else(|| bad("no host port"))?;
        let (host_ip, host) = match rest.rsplit_once(':') {
            Some((ip, port)) => (ip.trim_start_matches('[').trim_end_matches(']'), port),
            None => ("", rest),
        };
        if !host_ip.is_empty() && host_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(bad("the host IP is not an address"));
        }
        let port = |p: &str| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad(&format!("{p:?} is not a port (1-65535)"))),
        };
        Ok(PortMapping {
            host_port: port(host)?,
            container_port: port(container)?,
            protocol,
            host_ip: host_ip.to_string(),
        })
    }

    /// Whether two mappings want the same host port (an empty host IP
    /// means every address, so it meets any other).
    pub fn clashes(&self, other: &PortMapping) -> bool {
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip.is_empty()
                || other.host_ip.is_empty()
                || self.host_ip == other.host_ip)
    }
}

impl std::fmt::Display for PortMapping {
    /// docker's `port` output: `80/tcp -> 0.0.0.0:8080`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = if self.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            &self.host_ip
        };
        write!(
            f,
            "{}/{} -> {ip}:{}",
            self.container_port, self.protocol, self.host_port
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dockers_forms_and_refuses_the_rest() {
        let p = PortMapping::parse("18080:80").unwrap();
        assert_eq!(
            (
                p.host_port,
                p.container_port,
                p.protocol.as_str(),
                p.host_ip.as_str()
            ),
            (18080, 80, "tcp", "")
        );
        let p = PortMapping::parse("127.0.0.1:53:5353/UDP").unwrap();
        assert_eq!(
            (p.host_ip.as_str(), p.protocol.as_str()),
            ("127.0.0.1", "udp")
        );
        assert_eq!(PortMapping::parse("[::1]:80:80").unwrap().host_ip, "::1");
        assert_eq!(p.to_string(), "5353/udp -> 127.0.0.1:53");
        for bad in [
            "80",
            "0:80",
            "x:80",
            "80:80/sctp",
            "1.2.3:80:80",
            "70000:80",
        ] {
            assert!(PortMapping::parse(bad).is_err(), "{bad}");
        }
        let any = PortMapping::parse("8080:80").unwrap();
        assert!(any.clashes(&PortMapping::parse("127.0.0.1:8080:81").unwrap()));
        assert!(!any.clashes(&PortMapping::parse("8080:80/udp").unwrap()));
        assert!(!PortMapping::parse("127.0.0.1:8080:80")
            .unwrap()
            .clashes(&PortMapping::parse("127.0.0.2:8080:80").unwrap()));
    }
}
