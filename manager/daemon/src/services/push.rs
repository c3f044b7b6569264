//! The transfer service's push: an image of the namespace to a registry,
//! with per-blob progress streamed to the client.

use super::{meta_status, namespace, status, Shared};
use hull_api::transfer::*;
use hull_api::types::Descriptor;
use hull_images::pull::Event;
use hull_images::push::{PushError, PushOptions, Pusher};
use hull_images::{Platform, Reference};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

pub type PushStream = std::pin::Pin<Box<ReceiverStream<Result<PushProgress, Status>>>>;

fn push_status(e: PushError) -> Status {
    let code = match &e {
        PushError::Missing { .. } => Code::FailedPrecondition,
        PushError::Content { .. } => Code::FailedPrecondition,
        PushError::Unauthorized { .. } => Code::PermissionDenied,
        PushError::Registry {
            transient: true, ..
        } => Code::Unavailable,
        PushError::Registry { .. } => Code::Unknown,
    };
    status(code, e.to_string())
}

fn parse<T: std::str::FromStr>(text: &str) -> Result<T, Status>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| Status::invalid_argument(e.to_string()))
}

/// Blobs pulled from another repository of the registry pushed to, with
/// that repository (their `containerd.io/distribution.source.*` label):
/// mounted there instead of sent.
fn mount_sources(
    d: &crate::daemon::Daemon,
    ns: &str,
    domain: &str,
    digests: &[String],
) -> std::collections::BTreeMap<String, String> {
    let label = hull_images::push::source_label(domain);
    digests
        .iter()
        .filter_map(|digest| {
            let record = d.meta.content_record(ns, digest).ok()?;
            let repo = record.labels.get(&label)?.split(',').next()?.to_string();
            Some((digest.clone(), repo))
        })
        .collect()
}

pub async fn push(d: &Shared, req: Request<PushRequest>) -> Result<Response<PushStream>, Status> {
    let ns = namespace(&req)?;
    let r = req.into_inner();
    let local: Reference = parse(&r.name)?;
    let remote: Reference = if r.remote.is_empty() {
        local.clone()
    } else {
        parse(&r.remote)?
    };
    let platform: Option<Platform> = match r.platform.as_str() {
        "" => None,
        p => Some(parse(p)?),
    };
    let name = local.to_string();
    let image = {
        let (d, ns, name) = (d.clone(), ns.clone(), name.clone());
        super::blocking(move || d.meta.image(&ns, &name).map_err(meta_status)).await?
    };
    let target = hull_images::pull::Descriptor {
        media_type: image.target.media_type.clone(),
        digest: image.target.digest.clone(),
        size: image.target.size,
    };
    let plan = {
        let (d, name, platform) = (d.clone(), name.clone(), platform.clone());
        super::blocking(move || {
            hull_images::push::plan(&*d.store, &name, &target, platform.as_ref())
                .map_err(push_status)
        })
        .await?
    };
    let mount_from = {
        let (d, ns, domain) = (d.clone(), ns.clone(), remote.domain.clone());
        let digests = plan.blob_digests();
        super::blocking(move || Ok(mount_sources(&d, &ns, &domain, &digests))).await?
    };
    let opts = PushOptions {
        credentials: r
            .credentials
            .into_iter()
            .map(|c| (c.host, (c.username, c.secret)))
            .collect(),
        platform,
        mount_from,
        chunk_size: d.config.push.chunk_size,
        max_concurrent_uploads: match r.max_concurrent_uploads {
            0 => d.config.push.max_concurrent_uploads,
            n => n as usize,
        },
    };
    let (tx, rx) = mpsc::channel(1024);
    let d = d.clone();
    tokio::spawn(async move {
        let events: hull_images::pull::Events = Arc::new({
            let tx = tx.clone();
            move |event: Event| {
                if let Event::Blob(b) = event {
                    let msg = push_progress::Event::Blob(BlobProgress {
                        digest: b.digest,
                        media_type: b.media_type,
                        state: b.state.as_str().into(),
                        offset: b.offset,
                        total: b.total,
                    });
                    // Progress is best effort: a slow client misses updates.
                    let _ = tx.try_send(Ok(PushProgress { event: Some(msg) }));
                }
            }
        });
        let pusher = Pusher::new(d.store.clone(), d.puller.config().clone());
        // A client that goes away cancels the push.
        let result = tokio::select! {
            result = pusher.push(plan, &remote, &opts, &events) => result,
            _ = tx.closed() => {
                tracing::info!("push {remote}: the client went away, cancelled");
                return;
            }
        };
        let outcome = match result {
            Ok(p) => Ok(PushProgress {
                event: Some(push_progress::Event::Done(PushDone {
                    remote: remote.to_string(),
                    target: Some(Descriptor {
                        media_type: p.target.media_type,
                        digest: p.target.digest,
                        size: p.target.size as i64,
                        annotations: Default::default(),
                    }),
                    uploaded: p.uploaded,
                    bytes_uploaded: p.bytes_uploaded,
                    existing: p.existing,
                    mounted: p.mounted,
                })),
            }),
            Err(e) => {
                tracing::warn!("push {remote}: {e}");
                Err(push_status(e))
            }
        };
        let _ = tx.send(outcome).await;
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}
