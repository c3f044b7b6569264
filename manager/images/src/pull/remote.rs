//! One repository on one endpoint: manifests and blob bodies, with the
//! registry client's errors turned into a pull's.

use super::feed::Feed;
use super::{backoff, progress, BlobFailure, BlobState, Endpoint, Event, Events, PullError};
use crate::manifest::{self, Document};
use crate::reference::Reference;
use crate::registry;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One repository on one endpoint, with its authenticated client.
pub(super) struct Remote {
    client: Arc<registry::Client>,
    /// The repository path (`library/busybox`).
    repo: String,
    /// The registry a mirror stands in for (`?ns=` on every request).
    ns: Option<String>,
    /// The host requests go to (a mirror or the registry).
    pub(super) host: String,
    pub(super) reference: String,
    /// Further attempts after a transient failure (5xx, reset).
    retries: u32,
}

impl Remote {
    pub(super) fn new(
        client: Arc<registry::Client>,
        endpoint: &Endpoint,
        reference: &Reference,
        retries: u32,
    ) -> Remote {
        Remote {
            client,
            repo: reference.path.clone(),
            ns: endpoint.mirror.then(|| reference.domain.clone()),
            host: endpoint.host.clone(),
            reference: reference.to_string(),
            retries,
        }
    }

    pub(super) fn blob_error(
        &self,
        digest: &str,
        detail: String,
        failure: BlobFailure,
    ) -> PullError {
        PullError::Blob {
            reference: self.reference.clone(),
            digest: digest.to_string(),
            detail,
            failure,
        }
    }

    pub(super) fn error(&self, e: registry::Error) -> PullError {
        PullError::from_registry(&self.host, &self.reference, e)
    }

    pub(super) fn parse(&self, bytes: &[u8]) -> Result<Document, PullError> {
        Document::parse(bytes, "").map_err(|source| PullError::Manifest {
            reference: self.reference.clone(),
            source,
        })
    }

    /// Ping the registry and get a token if it wants one: also where an
    /// unreachable registry or rejected credentials show up first.
    pub(super) async fn authenticate(&self) -> Result<(), PullError> {
        self.client
            .ping(&format!("repository:{}:pull", self.repo))
            .await
            .map_err(|e| self.error(e))
    }

    pub(super) async fn manifest(&self, object: &str) -> Result<(Vec<u8>, String), PullError> {
        let mut attempt = 0;
        loop {
            match self
                .client
                .manifest(&self.repo, object, self.ns.as_deref(), manifest::ACCEPT)
                .await
            {
                Ok(m) => return Ok((m.bytes, m.digest)),
                Err(e) if e.transient() && attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!("{}; retrying (attempt {attempt})", self.error(e));
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(self.error(e)),
            }
        }
    }

    /// Stream the rest of a blob into `writer` (from its offset).
    pub(super) async fn download(
        &self,
        d: &manifest::Descriptor,
        writer: &mut hull_content::Writer,
        events: &Events,
        feed: &Feed,
    ) -> Result<(), PullError> {
        if writer.offset() > d.size {
            writer.restart().map_err(PullError::from_store)?;
            feed.restarted();
        }
        let offset = writer.offset();
        if offset == d.size && d.size > 0 {
            return Ok(());
        }
        let digest = d.digest.as_str();
        // An empty blob has no range to ask for (a Range past the end is
        // a 416).
        let range = (d.size > 0).then_some(offset);
        let mut blob = self
            .client
            .blob(&self.repo, digest, range, self.ns.as_deref())
            .await
            .map_err(|e| self.blob_fetch_error(digest, e))?;
        if !blob.partial && writer.offset() > 0 {
            writer.restart().map_err(PullError::from_store)?;
            feed.restarted();
        }
        let state = if writer.offset() > 0 {
            BlobState::Resuming
        } else {
            BlobState::Downloading
        };
        events(Event::Blob(progress(d, state, writer.offset())));
        let mut last_report = Instant::now();
        while let Some(chunk) = blob
            .body
            .chunk()
            .await
            .map_err(|e| self.blob_fetch_error(digest, e))?
        {
            if writer.offset() + chunk.len() as u64 > d.size {
                return Err(self.blob_error(
                    digest,
                    format!(
                        "the registry sent more than the {} bytes the manifest lists",
                        d.size
                    ),
                    BlobFailure::BadData,
                ));
            }
            writer.write_all(&chunk).map_err(|source| {
                PullError::from_store(hull_content::Error::Io {
                    what: "writing the ingest of",
                    path: digest.into(),
                    source,
                })
            })?;
            feed.wrote(chunk.len() as u64);
            if last_report.elapsed() >= Duration::from_millis(100) {
                last_report = Instant::now();
                events(Event::Blob(progress(
                    d,
                    BlobState::Downloading,
                    writer.offset(),
                )));
            }
        }
        if writer.offset() < d.size {
            return Err(self.blob_error(
                digest,
                format!(
                    "transfer interrupted: body ended after {} of {} bytes",
                    writer.offset(),
                    d.size
                ),
                BlobFailure::Transient,
            ));
        }
        Ok(())
    }

    /// A blob request's failure: the network's (retried) or the answer's.
    pub(super) fn blob_fetch_error(&self, digest: &str, e: registry::Error) -> PullError {
        let failure = if e.transient() {
            BlobFailure::Transient
        } else {
            BlobFailure::Fatal
        };
        match e {
            registry::Error::NotFound { .. }
            | registry::Error::Unauthorized { .. }
            | registry::Error::Tls { .. } => self.error(e),
            e => self.blob_error(digest, e.to_string(), failure),
        }
    }
}
