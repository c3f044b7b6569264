//! containerd.services.events.v1: publish, forward and subscribe
//! (`ctr events`), over the daemon's [`crate::events::EventBus`].

use super::{filters::Filters, namespace, Shared};
use hull_api::events::events_server::Events;
use hull_api::events::*;
use hull_api::types::Envelope;
use std::pin::Pin;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

/// Topics are paths: `/tasks/exit`.
fn check_topic(topic: &str) -> Result<(), Status> {
    let ok = topic.starts_with('/')
        && topic.len() > 1
        && topic.len() <= 256
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "invalid event topic {topic:?}: a path like /tasks/exit"
        )))
    }
}

#[tonic::async_trait]
impl Events for Service {
    async fn publish(&self, req: Request<PublishRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        check_topic(&r.topic)?;
        let event = r
            .event
            .ok_or_else(|| Status::invalid_argument("missing event"))?;
        self.0.events.publish(&ns, &r.topic, event);
        Ok(Response::new(()))
    }

    async fn forward(&self, req: Request<ForwardRequest>) -> Result<Response<()>, Status> {
        let envelope = req
            .into_inner()
            .envelope
            .ok_or_else(|| Status::invalid_argument("missing envelope"))?;
        check_topic(&envelope.topic)?;
        hull_metadata::check_namespace(&envelope.namespace).map_err(super::meta_status)?;
        self.0.events.forward(envelope);
        Ok(Response::new(()))
    }

    type SubscribeStream = Pin<Box<ReceiverStream<Result<Envelope, Status>>>>;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let filters = Filters::parse(&req.into_inner().filters)?;
        let mut events = self.0.events.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let envelope = match events.recv().await {
                    Ok(e) => e,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!("an event subscriber fell behind: {n} events dropped");
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                let keep = filters.matches(|p| {
                    super::filters::lookup(
                        p,
                        &[
                            ("topic", &envelope.topic),
                            ("namespace", &envelope.namespace),
                        ],
                        &Default::default(),
                    )
                });
                if keep && tx.send(Ok(envelope)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
