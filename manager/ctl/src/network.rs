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
        /// IPv4 subnet, e.g. 10.5.0.0/24
        #[arg(long, required = true)]
        subnet: String,
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
            bridge,
        } => {
            let n = c
                .networks()
                .create(CreateNetworkRequest {
                    name,
                    subnet,
                    bridge: bridge.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
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
