//! Task events to containerd: `containerd.services.events.ttrpc.v1.Events/
//! Forward` on `TTRPC_ADDRESS`, one Envelope (namespace, topic, event Any)
//! per event, in the order they were published, from one thread so that a
//! slow or absent containerd never stalls a request or the main loop.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::ttrpc::context::{self, Context};
use containerd_shim_protos::{ttrpc, EventsClient};

use crate::log::{debug, warning};

const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

/// An Any the way containerd's typeurl writes one: the message's full
/// proto name as type URL, no "type.googleapis.com/" prefix.
pub fn any(type_url: &str, msg: &impl Message) -> Any {
    let mut a = Any::new();
    a.type_url = type_url.to_owned();
    a.value = msg.write_to_bytes().unwrap_or_default();
    a
}

pub struct Publisher {
    namespace: String,
    tx: Mutex<Option<Sender<Envelope>>>,
    thread: Mutex<Option<(JoinHandle<()>, Receiver<()>)>>,
}

impl Publisher {
    /// `address`: containerd's ttrpc socket (`TTRPC_ADDRESS`, with or
    /// without `unix://`); empty drops events (no containerd to tell).
    pub fn start(namespace: &str, address: &str) -> Publisher {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let address = match address {
            "" => String::new(),
            a if a.contains("://") => a.to_owned(),
            a => format!("unix://{a}"),
        };
        let ns = namespace.to_owned();
        let thread = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                forward_loop(&address, &ns, rx);
                let _ = done_tx.send(());
            })
            .map_err(|e| warning!("cannot start the event publisher thread: {e}"))
            .ok();
        Publisher {
            namespace: namespace.to_owned(),
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(thread.map(|t| (t, done_rx))),
        }
    }

    pub fn publish(&self, topic: &str, type_url: &str, event: &impl Message) {
        let mut env = Envelope::new();
        env.timestamp = MessageField::some(timestamp(SystemTime::now()));
        env.namespace = self.namespace.clone();
        env.topic = topic.to_owned();
        env.event = MessageField::some(any(type_url, event));
        debug!("publishing {topic}");
        if let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = tx.send(env);
        }
    }

    /// Stops taking events and waits up to `timeout` for the queued ones
    /// to reach containerd.
    pub fn close(&self, timeout: Duration) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((handle, done)) = thread {
            if done.recv_timeout(timeout).is_ok() {
                let _ = handle.join();
            }
        }
    }
}

fn forward_loop(address: &str, namespace: &str, rx: Receiver<Envelope>) {
    // One connection per burst of events: an idle shim keeps no client
    // threads around.
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        if address.is_empty() {
            continue;
        }
        let mut client = None;
        for env in batch {
            let topic = env.topic.clone();
            let mut req = ForwardRequest::new();
            req.envelope = MessageField::some(env);
            let mut sent = false;
            for attempt in 0..3 {
                if client.is_none() {
                    client = connect(address);
                }
                let Some(c) = client.as_ref() else {
                    std::thread::sleep(Duration::from_millis(100 << attempt));
                    continue;
                };
                match c.forward(request_context(namespace), &req) {
                    Ok(_) => {
                        sent = true;
                        break;
                    }
                    Err(e) => {
                        debug!("forwarding {topic} to {address}: {e}");
                        client = None;
                    }
                }
            }
            if !sent {
                warning!("could not publish {topic} to containerd at {address}: event dropped");
            }
        }
    }
}

fn connect(address: &str) -> Option<EventsClient> {
    match ttrpc::Client::connect(address) {
        Ok(c) => Some(EventsClient::new(c)),
        Err(e) => {
            debug!("connecting to {address}: {e}");
            None
        }
    }
}

fn request_context(namespace: &str) -> Context {
    let mut ctx = context::with_timeout(FORWARD_TIMEOUT.as_nanos() as i64);
    ctx.add(
        "containerd-namespace-ttrpc".to_owned(),
        namespace.to_owned(),
    );
    ctx
}
