use super::{blocking, content_status, meta_status, namespace, Shared};
use hull_api::content::content_server::Content;
use hull_api::content::*;
use hull_content::{ContentStore, Digest};
use std::io::{Read, Seek, SeekFrom};
use std::pin::Pin;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

const READ_CHUNK: usize = 1 << 20;

fn parse_digest(s: &str) -> Result<Digest, Status> {
    s.parse()
        .map_err(|e: hull_content::InvalidDigest| Status::invalid_argument(e.to_string()))
}

impl Service {
    /// The blob's info, if `ns` may see it.
    fn visible(&self, ns: &str, digest: &str) -> Result<ContentInfo, Status> {
        let d = parse_digest(digest)?;
        let refs = self.0.meta.content(ns).map_err(meta_status)?;
        if !refs.iter().any(|r| r == digest) {
            return Err(Status::not_found(format!(
                "content {digest} not found in namespace {ns:?}"
            )));
        }
        let info = self.0.store.info(&d).map_err(content_status)?;
        Ok(ContentInfo {
            digest: info.digest.to_string(),
            size: info.size,
        })
    }
}

#[tonic::async_trait]
impl Content for Service {
    async fn info(&self, req: Request<InfoRequest>) -> Result<Response<ContentInfo>, Status> {
        let ns = namespace(&req)?;
        Ok(Response::new(self.visible(&ns, &req.into_inner().digest)?))
    }

    async fn list(
        &self,
        req: Request<ListContentRequest>,
    ) -> Result<Response<ListContentResponse>, Status> {
        let ns = namespace(&req)?;
        let refs = self.0.meta.content(&ns).map_err(meta_status)?;
        let blobs = refs
            .iter()
            .filter_map(|r| r.parse::<Digest>().ok())
            .filter_map(|d| self.0.store.info(&d).ok())
            .map(|i| ContentInfo {
                digest: i.digest.to_string(),
                size: i.size,
            })
            .collect();
        Ok(Response::new(ListContentResponse { blobs }))
    }

    type ReadStream = Pin<Box<ReceiverStream<Result<ReadContentResponse, Status>>>>;

    async fn read(
        &self,
        req: Request<ReadContentRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let info = self.visible(&ns, &r.digest)?;
        if r.offset > info.size {
            return Err(Status::out_of_range(format!(
                "offset {} is past the end of {} ({} bytes)",
                r.offset, r.digest, info.size
            )));
        }
        let end = match r.size {
            0 => info.size,
            n => (r.offset + n).min(info.size),
        };
        let mut file = self
            .0
            .store
            .open(&parse_digest(&r.digest)?)
            .map_err(content_status)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut offset = r.offset;
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
                        Ok(ReadContentResponse { offset, data })
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

    async fn list_statuses(
        &self,
        _req: Request<ListStatusesRequest>,
    ) -> Result<Response<ListStatusesResponse>, Status> {
        let statuses = self
            .0
            .store
            .statuses()
            .map_err(content_status)?
            .into_iter()
            .map(|s| hull_api::content::Status {
                r#ref: s.reference,
                offset: s.offset,
                total: s.total.unwrap_or(0),
                expected: s.expected.map(|d| d.to_string()).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(ListStatusesResponse { statuses }))
    }

    async fn delete(
        &self,
        req: Request<DeleteContentRequest>,
    ) -> Result<Response<DeleteContentResponse>, Status> {
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
        Ok(Response::new(DeleteContentResponse {}))
    }

    async fn garbage_collect(
        &self,
        _req: Request<GarbageCollectRequest>,
    ) -> Result<Response<GarbageCollectResponse>, Status> {
        let d = self.0.clone();
        let (removed, bytes) = blocking(move || d.gc().map_err(meta_status)).await?;
        Ok(Response::new(GarbageCollectResponse { removed, bytes }))
    }
}
