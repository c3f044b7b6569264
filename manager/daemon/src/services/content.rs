//! containerd.services.content.v1: blobs visible in a namespace, their
//! labels, reads, and client-side writes (`Write`, the bidirectional
//! stream `ctr` pulls through).

use super::{
    blocking, content_status, filters::Filters, labels_in, labels_out, lease, mask_paths,
    meta_status, namespace, timestamp, Shared,
};
use hull_api::content::content_server::Content;
use hull_api::content::*;
use hull_content::{ContentStore, Digest};
use std::io::{Read, Seek, SeekFrom, Write};
use std::pin::Pin;
use std::time::SystemTime;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

pub struct Service(pub Shared);

const READ_CHUNK: usize = 1 << 20;
/// Infos per List message.
const LIST_BATCH: usize = 100;

fn parse_digest(s: &str) -> Result<Digest, Status> {
    s.parse()
        .map_err(|e: hull_content::InvalidDigest| Status::invalid_argument(e.to_string()))
}

fn secs(t: std::io::Result<SystemTime>) -> u64 {
    t.ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Service {
    /// The blob's info, if `ns` may see it.
    fn visible(&self, ns: &str, digest: &str) -> Result<Info, Status> {
        let d = parse_digest(digest)?;
        let record = self.0.meta.content_record(ns, digest).map_err(|_| {
            Status::not_found(format!("content {digest} not found in namespace {ns:?}"))
        })?;
        let info = self.0.store.info(&d).map_err(content_status)?;
        Ok(info_out(&info.digest.to_string(), info.size, record))
    }

    fn status_of(&self, reference: &str) -> Result<hull_api::content::Status, Status> {
        let s = self.0.store.status(reference).map_err(content_status)?;
        let updated = secs(
            self.0
                .store
                .ingest_modified(reference)
                .map_err(std::io::Error::other),
        );
        Ok(hull_api::content::Status {
            started_at: timestamp(updated),
            updated_at: timestamp(updated),
            r#ref: s.reference,
            offset: s.offset as i64,
            total: s.total.unwrap_or(0) as i64,
            expected: s.expected.map(|d| d.to_string()).unwrap_or_default(),
        })
    }
}

fn info_out(digest: &str, size: u64, r: hull_metadata::ContentRecord) -> Info {
    Info {
        digest: digest.to_string(),
        size: size as i64,
        created_at: timestamp(r.created),
        updated_at: timestamp(r.updated),
        labels: labels_out(r.labels),
    }
}

type ServerStream<T> = Pin<Box<ReceiverStream<Result<T, Status>>>>;

#[tonic::async_trait]
impl Content for Service {
    async fn info(&self, req: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let ns = namespace(&req)?;
        let info = self.visible(&ns, &req.into_inner().digest)?;
        Ok(Response::new(InfoResponse { info: Some(info) }))
    }

    async fn update(
        &self,
        req: Request<UpdateRequest>,
    ) -> Result<Response<UpdateResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let info = r
            .info
            .ok_or_else(|| Status::invalid_argument("missing info"))?;
        self.visible(&ns, &info.digest)?;
        let paths = mask_paths(r.update_mask);
        let d = self.0.clone();
        let digest = info.digest.clone();
        let digest_of_update = info.digest.clone();
        let record = blocking(move || {
            d.meta
                .update_content(&ns, &digest, &labels_in(info.labels), &paths)
                .map_err(meta_status)
        })
        .await?;
        let size = self
            .0
            .store
            .info(&parse_digest(&digest_of_update)?)
            .map(|i| i.size)
            .unwrap_or(0);
        Ok(Response::new(UpdateResponse {
            info: Some(info_out(&digest_of_update, size, record)),
        }))
    }

    type ListStream = ServerStream<ListContentResponse>;

    async fn list(
        &self,
        req: Request<ListContentRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let ns = namespace(&req)?;
        let filters = Filters::parse(&req.into_inner().filters)?;
        let records = self.0.meta.content_records(&ns).map_err(meta_status)?;
        let mut infos = Vec::new();
        for (digest, record) in records {
            let Ok(d) = digest.parse::<Digest>() else {
                continue;
            };
            let Ok(blob) = self.0.store.info(&d) else {
                continue;
            };
            let size = blob.size.to_string();
            let keep = filters.matches(|p| {
                super::filters::lookup(p, &[("digest", &digest), ("size", &size)], &record.labels)
            });
            if keep {
                infos.push(info_out(&digest, blob.size, record));
            }
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            for batch in infos.chunks(LIST_BATCH) {
                let msg = ListContentResponse {
                    info: batch.to_vec(),
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delete(&self, req: Request<DeleteContentRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let digest = req.into_inner().digest;
        parse_digest(&digest)?;
        let d = self.0.clone();
        blocking(move || {
            if !d.meta.remove_content(&ns, &digest).map_err(meta_status)? {
                d.delete_blob(&digest);
            }
            Ok(())
        })
        .await?;
        Ok(Response::new(()))
    }

    type ReadStream = ServerStream<ReadContentResponse>;

    async fn read(
        &self,
        req: Request<ReadContentRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let info = self.visible(&ns, &r.digest)?;
        let size = info.size as u64;
        if r.offset < 0 || r.offset as u64 > size || r.size < 0 {
            return Err(Status::out_of_range(format!(
                "offset {} is outside {} ({size} bytes)",
                r.offset, r.digest
            )));
        }
        let start = r.offset as u64;
        let end = match r.size {
            0 => size,
            n => (start + n as u64).min(size),
        };
        let mut file = self
            .0
            .store
            .open(&parse_digest(&r.digest)?)
            .map_err(content_status)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut offset = start;
            if let Err(e) = file.seek(SeekFrom::Start(offset)) {
                let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
                return;
            }
            while offset < end {
                let mut data = vec![0; READ_CHUNK.min((end - offset) as usize)];
                let msg = match file.read(&mut data) {
                    Ok(0) => Err(Status::data_loss(format!(
                        "{} is shorter than recorded",
                        r.digest
                    ))),
                    Ok(n) => {
                        data.truncate(n);
                        Ok(ReadContentResponse {
                            offset: offset as i64,
                            data,
                        })
                    }
                    Err(e) => Err(Status::internal(e.to_string())),
                };
                let stop = msg.is_err();
                if let Ok(m) = &msg {
                    offset += m.data.len() as u64;
                }
                if tx.blocking_send(msg).is_err() || stop {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let status = self.status_of(&req.into_inner().r#ref)?;
        Ok(Response::new(StatusResponse {
            status: Some(status),
        }))
    }

    async fn list_statuses(
        &self,
        req: Request<ListStatusesRequest>,
    ) -> Result<Response<ListStatusesResponse>, Status> {
        let filters = Filters::parse(&req.into_inner().filters)?;
        let statuses = self
            .0
            .store
            .statuses()
            .map_err(content_status)?
            .into_iter()
            .filter(|s| {
                filters.matches(|p| {
                    super::filters::lookup(p, &[("ref", &s.reference)], &Default::default())
                })
            })
            .filter_map(|s| self.status_of(&s.reference).ok())
            .collect();
        Ok(Response::new(ListStatusesResponse { statuses }))
    }

    type WriteStream = ServerStream<WriteContentResponse>;

    async fn write(
        &self,
        req: Request<Streaming<WriteContentRequest>>,
    ) -> Result<Response<Self::WriteStream>, Status> {
        let ns = namespace(&req)?;
        let lease = lease(&req);
        let mut incoming = req.into_inner();
        let first = incoming
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty write stream"))??;
        let mut session = WriteSession::open(self.0.clone(), ns, lease, &first).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                let reply = session.handle(msg).await;
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    return;
                }
                next = match incoming.next().await {
                    Some(Ok(m)) => Some(m),
                    Some(Err(e)) => {
                        tracing::debug!("content write stream: {e}");
                        None
                    }
                    None => None,
                };
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn abort(&self, req: Request<AbortRequest>) -> Result<Response<()>, Status> {
        let reference = req.into_inner().r#ref;
        self.0.store.abort(&reference).map_err(content_status)?;
        Ok(Response::new(()))
    }
}

/// One client-side write: the ingest for its ref, locked for the stream's
/// life, and what the client said it expects.
struct WriteSession {
    daemon: Shared,
    ns: String,
    lease: Option<String>,
    reference: String,
    writer: Option<hull_content::Writer>,
    total: Option<u64>,
    expected: Option<Digest>,
}

impl WriteSession {
    async fn open(
        daemon: Shared,
        ns: String,
        lease: Option<String>,
        first: &WriteContentRequest,
    ) -> Result<WriteSession, Status> {
        if first.r#ref.is_empty() {
            return Err(Status::invalid_argument(
                "the first write message must name a ref",
            ));
        }
        let expected = match first.expected.as_str() {
            "" => None,
            e => Some(parse_digest(e)?),
        };
        let total = (first.total > 0).then_some(first.total as u64);
        // Content that is already in the store needs no data: record it in
        // the namespace and say so, as containerd does.
        if let Some(digest) = &expected {
            if daemon.store.info(digest).is_ok() {
                let d = daemon.clone();
                let (n, dg, l) = (ns.clone(), digest.to_string(), lease.clone());
                blocking(move || d.record_content(&n, &dg, None, l.as_deref())).await?;
                return Err(Status::already_exists(format!(
                    "content {digest} already exists"
                )));
            }
        }
        let store = daemon.store.clone();
        let reference = first.r#ref.clone();
        let (r, e) = (reference.clone(), expected.clone());
        let writer =
            blocking(move || store.writer(&r, total, e.as_ref()).map_err(content_status)).await?;
        Ok(WriteSession {
            daemon,
            ns,
            lease,
            reference,
            writer: Some(writer),
            total,
            expected,
        })
    }

    async fn handle(&mut self, msg: WriteContentRequest) -> Result<WriteContentResponse, Status> {
        if !msg.r#ref.is_empty() && msg.r#ref != self.reference {
            return Err(Status::invalid_argument(format!(
                "write stream for ref {:?} got a message for {:?}",
                self.reference, msg.r#ref
            )));
        }
        if msg.total > 0 {
            self.total = Some(msg.total as u64);
        }
        if !msg.expected.is_empty() {
            self.expected = Some(parse_digest(&msg.expected)?);
        }
        let action = WriteAction::try_from(msg.action).map_err(|_| {
            Status::invalid_argument(format!("unknown write action {}", msg.action))
        })?;
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| Status::failed_precondition("the write was already committed"))?;
        let data = msg.data;
        let offset = msg.offset;
        let reference = self.reference.clone();
        // File work off the async workers; the writer comes back unless
        // committed.
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let r = match action {
                WriteAction::Stat => Ok(()),
                _ => write_data(&mut writer, &reference, offset, &data),
            };
            (writer, r)
        })
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?;
        result?;
        let mut reply = WriteContentResponse {
            action: action as i32,
            offset: writer.offset() as i64,
            total: self.total.unwrap_or(0) as i64,
            digest: writer.digest().to_string(),
            ..Default::default()
        };
        if action != WriteAction::Commit {
            self.writer = Some(writer);
            return Ok(reply);
        }
        let size = self.total.unwrap_or(writer.offset());
        let expected = self.expected.clone().unwrap_or_else(|| writer.digest());
        let labels = labels_in(msg.labels);
        let d = self.daemon.clone();
        let (ns, lease) = (self.ns.clone(), self.lease.clone());
        let digest = blocking(move || {
            let info = writer.commit(size, &expected).map_err(content_status)?;
            let digest = info.digest.to_string();
            d.record_content(&ns, &digest, Some(&labels), lease.as_deref())?;
            Ok(digest)
        })
        .await?;
        reply.digest = digest;
        reply.offset = size as i64;
        Ok(reply)
    }
}

/// Append `data` at `offset`, containerd's way: a non-zero offset must be
/// where the ingest is; offset 0 on a non-empty ingest starts it over.
fn write_data(
    writer: &mut hull_content::Writer,
    reference: &str,
    offset: i64,
    data: &[u8],
) -> Result<(), Status> {
    if offset > 0 && offset as u64 != writer.offset() {
        return Err(Status::out_of_range(format!(
            "write to ref {reference:?} at offset {offset}, but it holds {} bytes",
            writer.offset()
        )));
    }
    if offset == 0 && writer.offset() > 0 {
        writer.restart().map_err(content_status)?;
    }
    if !data.is_empty() {
        writer.write_all(data).map_err(|e| {
            content_status(hull_content::Error::Io {
                what: "writing",
                path: reference.into(),
                source: e,
            })
        })?;
    }
    Ok(())
}
