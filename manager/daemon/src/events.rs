//! The daemon's event exchange, as containerd's: services publish what
//! changed (`/containers/create`, `/tasks/exit`, ...), shims forward theirs,
//! and clients subscribe with filters (`ctr events`). Events are typed
//! protobuf messages of containerd's `containerd.events` package, carried
//! as `Any` in an `Envelope`.

use hull_api::containerd::events as ev;
use hull_api::types::Envelope;
use prost::Message;
use tokio::sync::broadcast;

/// Events a slow subscriber may fall behind by before it misses some.
const BACKLOG: usize = 1024;

pub struct EventBus {
    tx: broadcast::Sender<Envelope>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl EventBus {
    pub fn publish(&self, ns: &str, topic: &str, event: prost_types::Any) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.forward(Envelope {
            timestamp: Some(prost_types::Timestamp {
                seconds: now.as_secs() as i64,
                nanos: now.subsec_nanos() as i32,
            }),
            namespace: ns.to_string(),
            topic: topic.to_string(),
            event: Some(event),
        });
    }

    /// An envelope made elsewhere (a shim, a client's Forward).
    pub fn forward(&self, envelope: Envelope) {
        tracing::debug!("event {} {}", envelope.namespace, envelope.topic);
        // No subscriber is fine.
        let _ = self.tx.send(envelope);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.tx.subscribe()
    }

    /// Run `handle(namespace, exit)`, each on a task of its own, for every
    /// exit of a container's own process (exec'd processes exit too: those
    /// are left out), for the daemon's life. A subscriber that falls
    /// behind misses some: fine for what reacts to exits early, as a task's
    /// delete still does all that is needed.
    pub fn each_init_exit<F, Fut>(&self, handle: F)
    where
        F: Fn(String, ev::TaskExit) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut events = self.subscribe();
        tokio::spawn(async move {
            loop {
                let envelope = match events.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                if envelope.topic != "/tasks/exit" {
                    continue;
                }
                let Some(exit) = envelope
                    .event
                    .as_ref()
                    .and_then(|e| ev::TaskExit::decode(e.value.as_slice()).ok())
                else {
                    continue;
                };
                if exit.id != exit.container_id && !exit.id.is_empty() {
                    continue;
                }
                tokio::spawn(handle(envelope.namespace, exit));
            }
        });
    }
}

/// An event message as `Any`, under containerd's type name.
pub fn any<M: Message>(name: &str, m: &M) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("containerd.events.{name}"),
        value: m.encode_to_vec(),
    }
}

pub fn container_create(c: &hull_metadata::Container) -> prost_types::Any {
    any(
        "ContainerCreate",
        &ev::ContainerCreate {
            id: c.id.clone(),
            image: c.image.clone(),
            runtime: Some(ev::container_create::Runtime {
                name: c.runtime.name.clone(),
                options: c
                    .runtime
                    .options
                    .clone()
                    .map(crate::services::containers::any_out),
            }),
        },
    )
}

pub fn container_update(c: &hull_metadata::Container) -> prost_types::Any {
    any(
        "ContainerUpdate",
        &ev::ContainerUpdate {
            id: c.id.clone(),
            image: c.image.clone(),
            labels: c.labels.clone().into_iter().collect(),
            snapshot_key: c.snapshot_key.clone(),
        },
    )
}

pub fn container_delete(id: &str) -> prost_types::Any {
    any(
        "ContainerDelete",
        &ev::ContainerDelete { id: id.to_string() },
    )
}

/// `/images/create` or, for an image that was there, `/images/update`,
/// with its event. containerd declares its image events in the images
/// service's package (`containerd.services.images.v1.ImageCreate`), not in
/// `containerd.events`.
pub fn image_put(image: &hull_metadata::Image, existed: bool) -> (&'static str, prost_types::Any) {
    use hull_api::images::{ImageCreate, ImageUpdate};
    let (name, labels) = (
        image.name.clone(),
        image.labels.clone().into_iter().collect(),
    );
    if existed {
        (
            "/images/update",
            image_any("ImageUpdate", &ImageUpdate { name, labels }),
        )
    } else {
        (
            "/images/create",
            image_any("ImageCreate", &ImageCreate { name, labels }),
        )
    }
}

pub fn image_delete(name: &str) -> prost_types::Any {
    let event = hull_api::images::ImageDelete {
        name: name.to_string(),
    };
    image_any("ImageDelete", &event)
}

fn image_any<M: Message>(name: &str, m: &M) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("containerd.services.images.v1.{name}"),
        value: m.encode_to_vec(),
    }
}
