//! hull.services.networks.v1: the CNI networks of hulld's config dir, for
//! `hullctl network ls|inspect|create|rm`.

use super::{blocking, Shared};
use hull_api::networks::networks_server::Networks;
use hull_api::networks::*;
use hull_network::config::{self, NetworkList};
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

fn network_out(d: &crate::daemon::Daemon, n: &NetworkList) -> Network {
    Network {
        name: n.name.clone(),
        file: n.file.display().to_string(),
        subnets: n.subnets(),
        plugins: n
            .plugins
            .iter()
            .filter_map(|p| p["type"].as_str().map(str::to_string))
            .collect(),
        config: n.to_json().to_string(),
        containers: d.network.users(&n.name, &|owner| live(d, owner)),
        default: n.name == d.config.network.default_network,
    }
}

fn live(d: &crate::daemon::Daemon, owner: &str) -> bool {
    owner
        .split_once('/')
        .is_some_and(|(ns, id)| d.tasks.has_task(ns, id))
}

/// A bridge device name (at most 15 bytes, as Linux allows) for a network.
fn bridge_for(name: &str) -> String {
    let full = format!("hull-{name}");
    if full.len() <= 15 {
        return full;
    }
    let hash = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    format!("br-{:012x}", hash & 0xffff_ffff_ffff)
}

/// The request's IPv4 subnet and, for a dual-stack network, its IPv6 one,
/// each checked.
fn requested_subnets(r: &CreateNetworkRequest) -> Result<Vec<&str>, Status> {
    let bad = Status::invalid_argument;
    if config::is_ipv6(&r.subnet) {
        return Err(bad(format!(
            "subnet {} is IPv6: give an IPv4 --subnet too, and --ipv6",
            r.subnet
        )));
    }
    config::check_subnet(&r.subnet).map_err(bad)?;
    let mut subnets = vec![r.subnet.as_str()];
    if !r.ipv6_subnet.is_empty() {
        if !config::is_ipv6(&r.ipv6_subnet) {
            return Err(bad(format!(
                "{} is not an IPv6 subnet: give one such as fd00:5::/64",
                r.ipv6_subnet
            )));
        }
        config::check_subnet(&r.ipv6_subnet).map_err(bad)?;
        // The bridge plugin needs the kernel's IPv6 (and turns on its
        // forwarding): refused here rather than at each container's ADD.
        if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
            return Err(Status::failed_precondition(
                "this kernel has IPv6 disabled (no /proc/sys/net/ipv6): create the network without --ipv6",
            ));
        }
        subnets.push(&r.ipv6_subnet);
    }
    Ok(subnets)
}

/// One `network create` at a time: the overlap check and the file it
/// writes must not interleave with another's.
static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn create(d: &crate::daemon::Daemon, r: CreateNetworkRequest) -> Result<Network, Status> {
    let _one_at_a_time = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    if !config::valid_name(&r.name) || matches!(r.name.as_str(), "none" | "host") {
        return Err(Status::invalid_argument(format!(
            "network name {:?}: use letters, digits and ._- (not none or host)",
            r.name
        )));
    }
    let subnets = requested_subnets(&r)?;
    let networks = d.network.networks()?;
    if networks.iter().any(|n| n.name == r.name) {
        return Err(Status::already_exists(format!(
            "network {:?} exists already",
            r.name
        )));
    }
    for n in &networks {
        for subnet in &subnets {
            if let Some(s) = n.subnets().iter().find(|s| config::overlap(s, subnet)) {
                return Err(Status::failed_precondition(format!(
                    "subnet {subnet} overlaps {s} of network {:?}: choose another --subnet",
                    n.name
                )));
            }
        }
    }
    let bridge = if r.bridge.is_empty() {
        bridge_for(&r.name)
    } else {
        r.bridge.clone()
    };
    let doc = config::bridge_network(
        &r.name,
        &bridge,
        &subnets,
        &d.config.root.join("cni/networks"),
    );
    let file =
        config::write(d.network.config_dir(), &doc).map_err(|e| Status::internal(e.to_string()))?;
    let list = NetworkList::parse(&file, doc.to_string().as_bytes())
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(network_out(d, &list))
}

fn remove(d: &crate::daemon::Daemon, name: &str) -> Result<(), Status> {
    let list = d
        .network
        .networks()?
        .into_iter()
        .find(|n| n.name == name)
        .ok_or_else(|| {
            Status::not_found(format!(
                "network {name:?} not found: see `hullctl network ls`"
            ))
        })?;
    if name == d.config.network.default_network {
        return Err(Status::failed_precondition(format!(
            "network {name:?} is hulld's default network: it is not removed"
        )));
    }
    let users = d.network.users(name, &|owner| live(d, owner));
    if !users.is_empty() {
        return Err(Status::failed_precondition(format!(
            "network {name:?} is in use by {}: remove those containers first",
            users.join(", ")
        )));
    }
    std::fs::remove_file(&list.file)
        .map_err(|e| Status::internal(format!("removing {}: {e}", list.file.display())))
}

#[tonic::async_trait]
impl Networks for Service {
    async fn list(
        &self,
        _req: Request<ListNetworksRequest>,
    ) -> Result<Response<ListNetworksResponse>, Status> {
        let d = self.0.clone();
        let networks = blocking(move || {
            Ok(d.network
                .networks()?
                .iter()
                .map(|n| network_out(&d, n))
                .collect())
        })
        .await?;
        Ok(Response::new(ListNetworksResponse { networks }))
    }

    async fn create(
        &self,
        req: Request<CreateNetworkRequest>,
    ) -> Result<Response<Network>, Status> {
        let d = self.0.clone();
        let r = req.into_inner();
        Ok(Response::new(blocking(move || create(&d, r)).await?))
    }

    async fn remove(
        &self,
        req: Request<RemoveNetworkRequest>,
    ) -> Result<Response<RemoveNetworkResponse>, Status> {
        let d = self.0.clone();
        let name = req.into_inner().name;
        blocking(move || remove(&d, &name)).await?;
        Ok(Response::new(RemoveNetworkResponse {}))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bridge_names_fit_linux() {
        assert_eq!(super::bridge_for("web"), "hull-web");
        let long = super::bridge_for("a-rather-long-network-name");
        assert!(long.len() <= 15 && long.starts_with("br-"), "{long}");
    }
}
