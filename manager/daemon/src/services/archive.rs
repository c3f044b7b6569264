//! The transfer service's import and export: image archives streamed over
//! gRPC (client → hulld for import, hulld → client for export), bridged to
//! hull-images' blocking archive reader and writer by bounded channels,
//! so neither side ever holds more than a few chunks.

use super::transfer::{label_snapshot, record_image};
use super::{meta_status, namespace, now, status, Shared};
use hull_api::transfer::*;
use hull_api::types::Descriptor;
use hull_images::archive::{self, ArchiveError, ExportImage, Platforms};
use hull_images::Platform;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

pub type ImportStream = Pin<Box<ReceiverStream<Result<ImportProgress, Status>>>>;
pub type ExportStream = Pin<Box<ReceiverStream<Result<ExportChunk, Status>>>>;

/// An import's lease keeps what it stored from the GC until the images
/// are recorded; if the import fails, what it stored goes with the lease.
const IMPORT_LEASE_SECONDS: u64 = 3600;
/// Export chunks sent to the client.
const CHUNK: usize = 1 << 20;

fn archive_status(e: ArchiveError) -> Status {
    let code = match &e {
        ArchiveError::Format(_) | ArchiveError::Tampered { .. } => Code::InvalidArgument,
        ArchiveError::Incomplete { .. } => Code::FailedPrecondition,
        ArchiveError::Read(_) | ArchiveError::Write(_) => Code::Aborted,
        ArchiveError::Store(_) => Code::Internal,
    };
    status(code, e.to_string())
}

/// The archive's bytes as the client sends them, read on a blocking thread.
struct ChunkReader {
    rx: mpsc::Receiver<Result<Vec<u8>, String>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Forward the request stream's data into `tx` (an error if the client
/// breaks off, so a cut archive is never taken for a complete one).
async fn feed(mut stream: Streaming<ImportChunk>, tx: mpsc::Sender<Result<Vec<u8>, String>>) {
    loop {
        let item = match stream.message().await {
            Ok(Some(chunk)) if chunk.data.is_empty() => continue,
            Ok(Some(chunk)) => Ok(chunk.data),
            Ok(None) => return,
            Err(e) => Err(format!("the client's stream broke off: {}", e.message())),
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

pub async fn import(
    d: &Shared,
    req: Request<Streaming<ImportChunk>>,
) -> Result<Response<ImportStream>, Status> {
    let ns = namespace(&req)?;
    let mut stream = req.into_inner();
    let first = stream
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("an import needs its options and the archive"))?;
    let options = first.options.unwrap_or_default();
    let snapshotter = match options.no_unpack {
        true => None,
        false => Some(d.snapshotters.get(&options.snapshotter)?),
    };
    let platform = super::platform_or_host(&options.platform)?;
    let lease = hull_metadata::Lease {
        id: super::leases::new_lease_id("import"),
        resources: Default::default(),
        expires: now() + IMPORT_LEASE_SECONDS,
        ..Default::default()
    };
    {
        let (d, n, l) = (d.clone(), ns.clone(), lease.clone());
        super::blocking(move || {
            d.meta.create_namespace(&n).map_err(meta_status)?;
            d.meta.put_lease_deferred(&n, &l).map_err(meta_status)
        })
        .await?;
    }
    let (data_tx, data_rx) = mpsc::channel(8);
    if !first.data.is_empty() {
        let _ = data_tx.send(Ok(first.data)).await;
    }
    tokio::spawn(feed(stream, data_tx));
    let (tx, rx) = mpsc::channel(64);
    let d = d.clone();
    tokio::task::spawn_blocking(move || {
        let job = ImportJob {
            d: &d,
            ns: &ns,
            lease: &lease.id,
            snapshotter,
            platform,
        };
        let name = (!options.name.is_empty()).then_some(options.name);
        let outcome = job.run(data_rx, name, &tx);
        if let Err(e) = d.meta.delete_lease_deferred(&ns, &lease.id) {
            tracing::warn!("finishing lease {}: {e}", lease.id);
        }
        let _ = tx.blocking_send(outcome);
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}

struct ImportJob<'a> {
    d: &'a crate::daemon::Daemon,
    ns: &'a str,
    lease: &'a str,
    snapshotter: Option<Arc<dyn hull_snapshots::Snapshotter>>,
    platform: Platform,
}

impl ImportJob<'_> {
    /// Read the archive, then name (and unpack) each image; the last
    /// message is the summary, sent by the caller.
    fn run(
        &self,
        rx: mpsc::Receiver<Result<Vec<u8>, String>>,
        name: Option<String>,
        tx: &mpsc::Sender<Result<ImportProgress, Status>>,
    ) -> Result<ImportProgress, Status> {
        let reader = ChunkReader {
            rx,
            current: Vec::new(),
            pos: 0,
        };
        let mut on_blob = |digest: &str| {
            if let Err(e) = self
                .d
                .meta
                .record_fetched(self.ns, self.lease, digest, None)
            {
                tracing::error!("recording {digest} in namespace {}: {e}", self.ns);
            }
        };
        let opts = archive::ImportOptions { name };
        let imported =
            archive::import(&*self.d.store, reader, &opts, &mut on_blob).map_err(archive_status)?;
        for (name, target) in &imported.images {
            let snapshot = self.unpack(name, target)?;
            record_image(self.d, self.ns, name, target)?;
            let image = ImportedImage {
                name: name.clone(),
                target: Some(Descriptor {
                    media_type: target.media_type.clone(),
                    digest: target.digest.clone(),
                    size: target.size as i64,
                    annotations: Default::default(),
                }),
                snapshot: snapshot.unwrap_or_default(),
            };
            let _ = tx.blocking_send(Ok(ImportProgress {
                event: Some(import_progress::Event::Image(image)),
            }));
        }
        Ok(ImportProgress {
            event: Some(import_progress::Event::Done(ImportDone {
                blobs: imported.blobs,
                bytes: imported.bytes,
            })),
        })
    }

    /// Unpack the platform's manifest of `target` (if asked to), labelling
    /// its config with the snapshot; returns the top chain ID.
    fn unpack(
        &self,
        name: &str,
        target: &hull_images::pull::Descriptor,
    ) -> Result<Option<String>, Status> {
        let Some(sn) = &self.snapshotter else {
            return Ok(None);
        };
        let (_, config, layers) =
            archive::platform_manifest(&*self.d.store, name, target, &self.platform)
                .map_err(archive_status)?;
        let unpacker = Arc::new(crate::unpack::SnapshotUnpacker {
            snapshotter: sn.clone(),
            meta: self.d.meta.clone(),
            ns: self.ns.to_string(),
            lease: self.lease.to_string(),
        });
        let config_digest = config.digest.clone();
        let chain = hull_images::pull::unpack_stored(
            self.d.store.clone(),
            unpacker,
            config,
            layers,
            Arc::new(|_| {}),
            name,
        )
        .map_err(|e| status(Code::Internal, e.to_string()))?;
        label_snapshot(self.d, self.ns, &config_digest, sn.name(), &chain)?;
        Ok(Some(chain))
    }
}

/// Chunks of the archive as hull-images writes it, to the client.
struct ChunkWriter {
    tx: mpsc::Sender<Result<ExportChunk, Status>>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(ExportChunk { data }))
            .map_err(|_| std::io::Error::other("the client went away"))
    }
}

pub async fn export(
    d: &Shared,
    req: Request<ExportRequest>,
) -> Result<Response<ExportStream>, Status> {
    let ns = namespace(&req)?;
    let r = req.into_inner();
    if r.names.is_empty() {
        return Err(Status::invalid_argument(
            "name at least one image to export",
        ));
    }
    let platforms = match r.all_platforms {
        true => Platforms::All,
        false => Platforms::One(super::platform_or_host(&r.platform)?),
    };
    let images = {
        let (d, ns) = (d.clone(), ns.clone());
        super::blocking(move || {
            let mut out = Vec::new();
            for name in r.names {
                let full = name
                    .parse::<hull_images::Reference>()
                    .map(|r| r.to_string())
                    .unwrap_or(name);
                let image = d.meta.image(&ns, &full).map_err(meta_status)?;
                out.push(ExportImage {
                    name: full,
                    target: hull_images::pull::Descriptor {
                        media_type: image.target.media_type,
                        digest: image.target.digest,
                        size: image.target.size,
                    },
                });
            }
            Ok(out)
        })
        .await?
    };
    let (tx, rx) = mpsc::channel(4);
    let d = d.clone();
    tokio::task::spawn_blocking(move || {
        let mut writer = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = archive::export(&*d.store, &images, &platforms, &mut writer) {
            tracing::warn!("export: {e}");
            let _ = tx.blocking_send(Err(archive_status(e)));
        }
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}
