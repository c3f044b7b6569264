use super::{blocking, meta_status, namespace, now, status, Shared};
use hull_api::transfer::transfer_server::Transfer;
use hull_api::transfer::*;
use hull_api::types::Descriptor;
use hull_images::pull::{Event, PullError, PullOptions};
use hull_images::Reference;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

pub struct Service(pub Shared);

/// How long a pull's lease protects what it fetched if the pull does not
/// finish (failed, or the daemon was killed): a retry within this time
/// reuses the completed blobs.
const PULL_LEASE_SECONDS: u64 = 24 * 3600;

fn pull_status(e: PullError) -> Status {
    let code = match e {
        PullError::NotFound { .. } | PullError::NoPlatform { .. } => Code::NotFound,
        PullError::Unauthorized { .. } => Code::Unauthenticated,
        PullError::Unreachable { .. } | PullError::Tls { .. } => Code::Unavailable,
        PullError::NoSpace { .. } => Code::ResourceExhausted,
        PullError::Manifest { .. } | PullError::TooLarge { .. } => Code::FailedPrecondition,
        PullError::Blob { .. } => Code::DataLoss,
        PullError::Store(_) | PullError::Registry { .. } | PullError::Unpack { .. } => {
            Code::Internal
        }
    };
    status(code, e.to_string())
}

fn descriptor(d: &hull_images::pull::Descriptor) -> Descriptor {
    Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size as i64,
        annotations: Default::default(),
    }
}

fn message(event: pull_progress::Event) -> Result<PullProgress, Status> {
    Ok(PullProgress { event: Some(event) })
}

#[tonic::async_trait]
impl Transfer for Service {
    type PullStream = Pin<Box<ReceiverStream<Result<PullProgress, Status>>>>;
    type PushStream = super::push::PushStream;
    type ImportStream = super::archive::ImportStream;
    type ExportStream = super::archive::ExportStream;

    async fn push(&self, req: Request<PushRequest>) -> Result<Response<Self::PushStream>, Status> {
        super::push::push(&self.0, req).await
    }

    async fn import(
        &self,
        req: Request<tonic::Streaming<ImportChunk>>,
    ) -> Result<Response<Self::ImportStream>, Status> {
        super::archive::import(&self.0, req).await
    }

    async fn export(
        &self,
        req: Request<ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        super::archive::export(&self.0, req).await
    }

    async fn pull(&self, req: Request<PullRequest>) -> Result<Response<Self::PullStream>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let reference: Reference = r
            .reference
            .parse()
            .map_err(|e: hull_images::InvalidReference| Status::invalid_argument(e.to_string()))?;
        let platform = super::platform_or_host(&r.platform)?;
        let opts = PullOptions {
            platform,
            credentials: r
                .credentials
                .into_iter()
                .map(|c| (c.host, (c.username, c.secret)))
                .collect(),
            max_concurrent_downloads: r.max_concurrent_downloads as usize,
            unpacker: None,
        };
        let lease = hull_metadata::Lease {
            id: super::leases::new_lease_id("pull"),
            resources: Default::default(),
            expires: now() + PULL_LEASE_SECONDS,
            ..Default::default()
        };
        let snapshotter = if r.unpack && r.store_image {
            Some(self.0.snapshotters.get(&r.snapshotter)?)
        } else {
            None
        };
        let opts = PullOptions {
            unpacker: snapshotter.clone().map(|sn| {
                Arc::new(crate::unpack::SnapshotUnpacker {
                    snapshotter: sn,
                    meta: self.0.meta.clone(),
                    ns: ns.clone(),
                    lease: lease.id.clone(),
                }) as Arc<dyn hull_images::pull::LayerUnpacker>
            }),
            ..opts
        };
        let d = self.0.clone();
        let (n, l) = (ns.clone(), lease.clone());
        blocking(move || {
            d.meta.create_namespace(&n).map_err(meta_status)?;
            d.meta.put_lease_deferred(&n, &l).map_err(meta_status)
        })
        .await?;

        let (tx, rx) = mpsc::channel(1024);
        let d = self.0.clone();
        tokio::spawn(async move {
            // Where each blob came from (containerd's label): a push to
            // the same registry mounts it from there instead of sending it.
            let source = std::collections::BTreeMap::from([(
                hull_images::push::source_label(&reference.domain),
                reference.path.clone(),
            )]);
            let events: hull_images::pull::Events = Arc::new({
                let (d, ns, lease_id, tx) = (d.clone(), ns.clone(), lease.id.clone(), tx.clone());
                move |event: Event| {
                    let msg = match event {
                        Event::Resolved(t) => pull_progress::Event::Resolved(descriptor(&t)),
                        Event::Blob(b) => pull_progress::Event::Blob(BlobProgress {
                            digest: b.digest,
                            media_type: b.media_type,
                            state: b.state.as_str().into(),
                            offset: b.offset,
                            total: b.total,
                        }),
                        Event::Unpack(u) => pull_progress::Event::Unpack(UnpackProgress {
                            layer: u.layer,
                            chain_id: u.chain_id,
                            state: u.state.into(),
                            applied: u.applied,
                        }),
                        Event::Committed(c) => {
                            // Visible in the namespace and protected by the lease
                            // from the moment it is in the store.
                            if let Err(e) =
                                d.meta
                                    .record_fetched(&ns, &lease_id, &c.digest, Some(&source))
                            {
                                tracing::error!("recording {} in namespace {ns}: {e}", c.digest);
                            }
                            return;
                        }
                    };
                    // Progress is best effort: a slow client misses updates.
                    let _ = tx.try_send(message(msg));
                }
            });
            // A client that goes away (Ctrl-C of hullctl) cancels the pull:
            // dropping it aborts its downloads, whose partial data stays
            // for the next pull to resume.
            let result = tokio::select! {
                result = d.puller.pull(&reference, &opts, &events) => result,
                _ = tx.closed() => {
                    tracing::info!("pull {reference}: the client went away, cancelled");
                    return;
                }
            };
            let outcome = match result {
                Ok(pulled) => {
                    let name = reference.to_string();
                    let labelled = match (&snapshotter, &pulled.snapshot) {
                        (Some(sn), Some(chain)) => {
                            label_snapshot(&d, &ns, &pulled.config.digest, sn.name(), chain)
                        }
                        _ => Ok(()),
                    };
                    let stored = match labelled {
                        Ok(()) if r.store_image => {
                            record_image(&d, &ns, &name, &pulled.target).map(drop)
                        }
                        other => other,
                    };
                    // The image holds the content now. A content-only fetch
                    // keeps its lease (expiring, as ctr's), or the next GC
                    // would take what was just fetched.
                    let cleanup = if r.store_image {
                        d.meta.delete_lease_deferred(&ns, &lease.id)
                    } else {
                        d.meta.flush()
                    };
                    if let Err(e) = cleanup {
                        tracing::warn!("finishing lease {}: {e}", lease.id);
                    }
                    stored.map(|_| {
                        pull_progress::Event::Done(PullDone {
                            name,
                            target: Some(descriptor(&pulled.target)),
                            bytes_fetched: pulled.bytes_fetched,
                            blobs: pulled.blobs.len() as u32,
                            snapshot: pulled.snapshot.clone().unwrap_or_default(),
                        })
                    })
                }
                Err(e) => {
                    tracing::warn!("pull {reference}: {e}");
                    Err(pull_status(e))
                }
            };
            let _ = tx.send(outcome.and_then(message)).await;
            release_free_memory();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn login(&self, req: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        let r = req.into_inner();
        hull_images::pull::check_credentials(
            self.0.puller.config(),
            &r.host,
            &r.username,
            &r.secret,
        )
        .await
        .map_err(pull_status)?;
        Ok(Response::new(LoginResponse {}))
    }
}

/// Record (create or update) image `name` pointing at `target`, and tell
/// the event subscribers. Called only once all of its content is in.
pub(super) fn record_image(
    d: &crate::daemon::Daemon,
    ns: &str,
    name: &str,
    target: &hull_images::pull::Descriptor,
) -> Result<hull_metadata::Image, Status> {
    let previous = d.meta.image(ns, name).ok();
    let record = hull_metadata::Image {
        name: name.to_string(),
        target: hull_metadata::Descriptor {
            media_type: target.media_type.clone(),
            digest: target.digest.clone(),
            size: target.size,
            annotations: Default::default(),
        },
        labels: Default::default(),
        created: previous.as_ref().map_or_else(now, |i| i.created),
        updated: now(),
    };
    d.meta.put_image(ns, &record).map_err(meta_status)?;
    let (topic, event) = crate::events::image_put(&record, previous.is_some());
    d.events.publish(ns, topic, event);
    Ok(record)
}

/// The unpacked snapshot belongs to the image through its config
/// (containerd's `containerd.io/gc.ref.snapshot.<snapshotter>` label).
pub(super) fn label_snapshot(
    d: &crate::daemon::Daemon,
    ns: &str,
    config: &str,
    snapshotter: &str,
    chain: &str,
) -> Result<(), Status> {
    let label = format!("{}{snapshotter}", hull_metadata::GC_REF_SNAPSHOT);
    d.meta
        .update_content(
            ns,
            config,
            &[(label.clone(), chain.to_string())].into(),
            &[format!("labels.{label}")],
        )
        .map(drop)
        .map_err(meta_status)
}

/// Hand the memory a pull freed (download and unpack buffers, on several
/// threads) back to the kernel: glibc keeps freed heap pages for reuse,
/// and an idle daemon should be small.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
