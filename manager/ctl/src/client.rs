//! The connection to hulld: a gRPC channel over its unix socket, with the
//! namespace header added to every request.

use hull_api::containers::containers_client::ContainersClient;
use hull_api::content::content_client::ContentClient;
use hull_api::gc::gc_client::GcClient;
use hull_api::images::images_client::ImagesClient;
use hull_api::leases::leases_client::LeasesClient;
use hull_api::namespaces::namespaces_client::NamespacesClient;
use hull_api::networks::networks_client::NetworksClient;
use hull_api::snapshots::snapshots_client::SnapshotsClient;
use hull_api::tasks::tasks_client::TasksClient;
use hull_api::transfer::transfer_client::TransferClient;
use hull_api::version::version_client::VersionClient;
use std::path::Path;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// The headers every request carries: the namespace, and the lease the
/// client works under, if any.
#[derive(Clone)]
pub struct Namespace {
    ns: MetadataValue<tonic::metadata::Ascii>,
    lease: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for Namespace {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut()
            .insert(hull_api::NAMESPACE_HEADER, self.ns.clone());
        if let Some(lease) = &self.lease {
            req.metadata_mut()
                .insert(hull_api::LEASE_HEADER, lease.clone());
        }
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, Namespace>;

#[derive(Clone)]
pub struct Client {
    channel: Channel,
    ns: Namespace,
    /// The lease this client made (released by `release`).
    lease: Option<String>,
}

impl Client {
    pub async fn connect(address: &Path, namespace: &str) -> Result<Client, String> {
        let ns = namespace
            .parse()
            .map_err(|_| format!("invalid namespace {namespace:?}"))?;
        let not_running = |e: &dyn std::fmt::Display| {
            format!(
                "cannot connect to hulld at {}: {e}: is hulld running? (start it with `hulld`, or point --address / HULL_ADDRESS at its socket)",
                address.display()
            )
        };
        if let Err(e) = std::fs::metadata(address) {
            return Err(not_running(&e));
        }
        let channel = Endpoint::from_shared(format!("unix://{}", address.display()))
            .map_err(|e| not_running(&e))?
            .connect()
            .await
            .map_err(|e| not_running(&hull_images::registry::error_chain(&e)))?;
        Ok(Client {
            channel,
            ns: Namespace { ns, lease: None },
            lease: None,
        })
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.channel.clone(), self.ns.clone())
    }

    /// A client whose requests work under a new lease (expiring in an
    /// hour, should hullctl die before `release`): what it creates is kept
    /// from the collector until something else holds it.
    pub async fn with_lease(&self) -> Result<Client, String> {
        use hull_api::leases::CreateRequest;
        let expire = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        let secs = expire
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let labels = [(
            "containerd.io/gc.expire".to_string(),
            hull_timefmt::rfc3339_secs(secs),
        )]
        .into();
        let lease = self
            .leases()
            .create(CreateRequest {
                id: String::new(),
                labels,
            })
            .await
            .map_err(crate::status)?
            .into_inner()
            .lease
            .ok_or("hulld returned no lease")?;
        let mut c = self.clone();
        c.ns.lease = Some(
            lease
                .id
                .parse()
                .map_err(|_| format!("lease id {:?} is not a header value", lease.id))?,
        );
        c.lease = Some(lease.id);
        Ok(c)
    }

    /// Drop this client's lease (the collector then judges what it held).
    pub async fn release(&self) {
        if let Some(id) = &self.lease {
            let _ = self
                .leases()
                .delete(hull_api::leases::DeleteRequest {
                    id: id.clone(),
                    sync: false,
                })
                .await;
        }
    }

    pub fn containers(&self) -> ContainersClient<Svc> {
        ContainersClient::new(self.svc())
    }
    pub fn tasks(&self) -> TasksClient<Svc> {
        TasksClient::new(self.svc())
    }

    pub fn images(&self) -> ImagesClient<Svc> {
        ImagesClient::new(self.svc())
    }
    pub fn content(&self) -> ContentClient<Svc> {
        ContentClient::new(self.svc()).max_decoding_message_size(8 << 20)
    }
    pub fn namespaces(&self) -> NamespacesClient<Svc> {
        NamespacesClient::new(self.svc())
    }
    pub fn leases(&self) -> LeasesClient<Svc> {
        LeasesClient::new(self.svc())
    }
    pub fn transfer(&self) -> TransferClient<Svc> {
        TransferClient::new(self.svc())
    }
    pub fn version(&self) -> VersionClient<Svc> {
        VersionClient::new(self.svc())
    }
    pub fn snapshots(&self) -> SnapshotsClient<Svc> {
        SnapshotsClient::new(self.svc())
    }
    pub fn gc(&self) -> GcClient<Svc> {
        GcClient::new(self.svc())
    }
    pub fn networks(&self) -> NetworksClient<Svc> {
        NetworksClient::new(self.svc())
    }
}
