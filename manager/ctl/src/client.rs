//! The connection to hulld: a gRPC channel over its unix socket, with the
//! namespace header added to every request.

use hull_api::content::content_client::ContentClient;
use hull_api::gc::gc_client::GcClient;
use hull_api::images::images_client::ImagesClient;
use hull_api::leases::leases_client::LeasesClient;
use hull_api::namespaces::namespaces_client::NamespacesClient;
use hull_api::snapshots::snapshots_client::SnapshotsClient;
use hull_api::transfer::transfer_client::TransferClient;
use hull_api::version::version_client::VersionClient;
use std::path::Path;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

#[derive(Clone)]
pub struct Namespace(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Namespace {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut()
            .insert(hull_api::NAMESPACE_HEADER, self.0.clone());
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, Namespace>;

pub struct Client {
    channel: Channel,
    ns: Namespace,
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
            ns: Namespace(ns),
        })
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.channel.clone(), self.ns.clone())
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
}
