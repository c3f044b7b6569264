//! `hullctl network ls|inspect|create|rm`: hulld's CNI networks.

use crate::client::Client;
use crate::output::{print_json, safe, Format};
use crate::{status, Result};
use hull_api::networks::{
    CreateNetworkRequest, ListNetworksRequest, Network, RemoveNetworkRequest,
};

#[derive(clap::Subcommand)]
pub enum NetworkCmd {
    /// List networks
    #[command(alias = "list")]
    Ls {
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Show networks (their conflist, subnets and attached containers)
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Create a bridge network
    Create {
        name: String,
        /// IPv4 subnet, e.g. 10.5.0.0/24; with --ipv6 also an IPv6 one, e.g. fd00:5::/64
        #[arg(long, required = true)]
        subnet: Vec<String>,
        /// Dual stack: containers get an IPv6 address too (from the IPv6 --subnet)
        #[arg(long)]
        ipv6: bool,
        /// Bridge device (default: derived from the name)
        #[arg(long)]
        bridge: Option<String>,
    },
    /// Remove networks no container uses
    #[command(alias = "remove", alias = "delete")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn json(n: &Network) -> serde_json::Value {
    serde_json::json!({
        "Name": n.name,
        "File": n.file,
        "Subnets": n.subnets,
        "Plugins": n.plugins,
        "Containers": n.containers,
        "Default": n.default,
        "Config": serde_json::from_str::<serde_json::Value>(&n.config).unwrap_or_default(),
    })
}

async fn list(c: &Client) -> Result<Vec<Network>> {
    Ok(c.networks()
        .list(ListNetworksRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .networks)
}

pub async fn network(c: &Client, cmd: NetworkCmd, format: Format) -> Result {
    match cmd {
        NetworkCmd::Ls { quiet } => {
            let all = list(c).await?;
            match (format, quiet) {
                (Format::Json, _) => print_json(&all.iter().map(json).collect::<Vec<_>>().into()),
                (Format::Table, true) => all.iter().for_each(|n| println!("{}", safe(&n.name))),
                (Format::Table, false) => {
                    println!("{:<20} {:<20} {:<10} FILE", "NAME", "SUBNET", "DEFAULT");
                    for n in &all {
                        println!(
                            "{:<20} {:<20} {:<10} {}",
                            safe(&n.name),
                            safe(&n.subnets.join(",")),
                            if n.default { "yes" } else { "" },
                            safe(&n.file)
                        );
                    }
                }
            }
        }
        NetworkCmd::Inspect { names } => {
            let all = list(c).await?;
            let mut out = Vec::new();
            for name in &names {
                let n = all
                    .iter()
                    .find(|n| &n.name == name)
                    .ok_or_else(|| format!("no such network: {name}"))?;
                out.push(json(n));
            }
            print_json(&out.into());
        }
        NetworkCmd::Create {
            name,
            subnet,
            ipv6,
            bridge,
        } => {
            let (subnet, ipv6_subnet) = split_subnets(&subnet, ipv6)?;
            let wanted_v6 = ipv6_subnet.clone();
            let n = c
                .networks()
                .create(CreateNetworkRequest {
                    name,
                    subnet,
                    bridge: bridge.unwrap_or_default(),
                    ipv6_subnet,
                })
                .await
                .map_err(status)?
                .into_inner();
            // A hulld older than --ipv6 drops the field and makes IPv4 only.
            if !wanted_v6.is_empty() && !n.subnets.contains(&wanted_v6) {
                return Err(format!(
                    "hulld made network {} without the IPv6 subnet {wanted_v6}: it is older than this hullctl; update hulld, then remove and create the network again",
                    n.name
                ));
            }
            println!("{}", safe(&n.name));
        }
        NetworkCmd::Rm { names } => {
            for name in names {
                c.networks()
                    .remove(RemoveNetworkRequest { name: name.clone() })
                    .await
                    .map_err(status)?;
                println!("{}", safe(&name));
            }
        }
    }
    Ok(())
}

/// `--subnet`s as docker takes them: one IPv4 subnet, and an IPv6 one
/// exactly when `--ipv6` is given.
fn split_subnets(subnets: &[String], ipv6: bool) -> Result<(String, String), String> {
    let (v6, v4): (Vec<&String>, Vec<&String>) = subnets.iter().partition(|s| s.contains(':'));
    let [v4] = v4.as_slice() else {
        return Err("give one IPv4 --subnet, e.g. 10.5.0.0/24".into());
    };
    match (v6.as_slice(), ipv6) {
        ([], false) => Ok((v4.to_string(), String::new())),
        ([v6], true) => Ok((v4.to_string(), v6.to_string())),
        ([], true) => Err("--ipv6 needs an IPv6 --subnet as well, e.g. fd00:5::/64".into()),
        (_, false) => Err("an IPv6 --subnet needs --ipv6".into()),
        (_, true) => Err("give one IPv6 --subnet".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_split_by_family_as_docker_wants_them() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            split_subnets(&v(&["10.5.0.0/24"]), false),
            Ok(("10.5.0.0/24".into(), String::new()))
        );
        assert_eq!(
            split_subnets(&v(&["fd00:5::/64", "10.5.0.0/24"]), true),
            Ok(("10.5.0.0/24".into(), "fd00:5::/64".into()))
        );
        assert!(split_subnets(&v(&["10.5.0.0/24", "fd00:5::/64"]), false).is_err());
        assert!(split_subnets(&v(&["10.5.0.0/24"]), true).is_err());
        assert!(split_subnets(&v(&["fd00:5::/64"]), true).is_err());
        assert!(split_subnets(&v(&["10.5.0.0/24", "10.6.0.0/24"]), false).is_err());
    }
}
