//! Where shims forward their task events: a ttrpc server on
//! `<grpc socket>.ttrpc` speaking `containerd.services.events.ttrpc.v1`
//! (the address goes to shims as TTRPC_ADDRESS, as containerd does).

use crate::events::EventBus;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::{create_events, Events};
use containerd_shim_protos::ttrpc;
use std::path::Path;
use std::sync::Arc;

struct Forwarder(Arc<crate::daemon::Daemon>);

#[async_trait::async_trait]
impl Events for Forwarder {
    async fn forward(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        req: ForwardRequest,
    ) -> ttrpc::Result<Empty> {
        if let Some(e) = req.envelope.as_ref() {
            let bus: &EventBus = &self.0.events;
            bus.forward(hull_api::types::Envelope {
                timestamp: e.timestamp.as_ref().map(|t| prost_types::Timestamp {
                    seconds: t.seconds,
                    nanos: t.nanos,
                }),
                namespace: e.namespace.clone(),
                topic: e.topic.clone(),
                event: e.event.as_ref().map(|a| prost_types::Any {
                    type_url: a.type_url.clone(),
                    value: a.value.clone(),
                }),
            });
        }
        Ok(Empty::new())
    }
}

/// Serve shims' events until the daemon stops.
pub fn serve(
    daemon: Arc<crate::daemon::Daemon>,
    address: &Path,
) -> Result<ttrpc::r#async::Server, String> {
    match std::fs::remove_file(address) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing stale {}: {e}", address.display())),
    }
    let server = ttrpc::r#async::Server::new()
        .bind(&format!("unix://{}", address.display()))
        .map_err(|e| format!("listening on {}: {e}", address.display()))?
        .register_service(create_events(Arc::new(Forwarder(daemon))));
    Ok(server)
}
