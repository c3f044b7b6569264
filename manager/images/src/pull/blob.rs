//! One blob's download into the content store: resume, retry, wait for
//! another pull of the same blob, verify and commit.

use super::feed::{Feed, Feeds};
use super::{
    backoff, ingest_ref, progress, BlobFailure, BlobState, Descriptor, Event, Events, PullError,
    Remote,
};
use crate::manifest;
use hull_content::{ContentStore, Digest};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every blob download of one pull shares.
pub(super) struct BlobFetcher {
    pub(super) store: Arc<dyn ContentStore + Send + Sync>,
    pub(super) retries: u32,
    /// How long another pull's download of the same blob may go without
    /// progress before this one gives up waiting for it.
    pub(super) stall: Duration,
    pub(super) remote: Arc<Remote>,
    pub(super) events: Events,
    /// Where each download says how far it got (for unpacking while
    /// downloading).
    pub(super) feeds: Arc<Feeds>,
}

impl BlobFetcher {
    /// Download one blob into its ingest, resuming and retrying; returns
    /// the descriptor and the bytes that came over the network. Its feed
    /// tells readers when it is complete or failed.
    pub(super) async fn fetch(
        self: Arc<Self>,
        d: manifest::Descriptor,
    ) -> Result<(Descriptor, u64), PullError> {
        let feed = self.feeds.get(&d.digest);
        let result = self.fetch_into(d, &feed).await;
        match &result {
            Ok(_) => feed.committed(),
            Err(e) => feed.failed(&e.to_string()),
        }
        result
    }

    async fn fetch_into(
        &self,
        d: manifest::Descriptor,
        feed: &Feed,
    ) -> Result<(Descriptor, u64), PullError> {
        let (remote, events) = (&self.remote, &self.events);
        let d = &d;
        let desc = Descriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size,
        };
        let digest: Digest = d
            .digest
            .parse()
            .map_err(|e| remote.blob_error(&d.digest, format!("{e}"), BlobFailure::Fatal))?;
        let reference = ingest_ref(&d.digest);
        let mut fetched = 0;
        let mut attempt = 0;
        let mut other = OtherDownload::new();
        loop {
            if let Ok(info) = self.store.info(&digest) {
                if info.size != d.size {
                    return Err(remote.blob_error(
                        &d.digest,
                        format!(
                            "the manifest lists it with {} bytes, but the blob in the store has {}: the manifest is wrong",
                            d.size, info.size
                        ),
                        BlobFailure::Fatal,
                    ));
                }
                events(Event::Blob(progress(d, BlobState::Exists, d.size)));
                events(Event::Committed(desc.clone()));
                return Ok((desc, fetched));
            }
            let mut writer = match self.store.writer(&reference, Some(d.size), Some(&digest)) {
                Ok(w) => w,
                Err(hull_content::Error::Locked(_)) => {
                    // Another pull is fetching the same blob: wait for it
                    // while it makes progress (shown as ours).
                    let offset = self.store.status(&reference).map(|s| s.offset).unwrap_or(0);
                    if other.advanced(offset) {
                        events(Event::Blob(progress(d, BlobState::Waiting, offset)));
                    } else if other.stalled_for() > self.stall {
                        return Err(remote.blob_error(
                            &d.digest,
                            format!(
                                "another pull has been downloading it without progress for {}s: try again later",
                                other.stalled_for().as_secs()
                            ),
                            BlobFailure::Fatal,
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => return Err(PullError::from_store(e)),
            };
            let before = writer.offset();
            feed.opened(writer.data_path(), before);
            let result = remote.download(d, &mut writer, events, feed).await;
            fetched += writer.offset().saturating_sub(before);
            match result {
                Ok(()) => return self.commit(d, desc, digest, writer, fetched).await,
                Err(
                    e @ (PullError::NoSpace { .. }
                    | PullError::Blob {
                        failure: BlobFailure::BadData,
                        ..
                    }),
                ) => {
                    // A partial download is no use on a full disk (its
                    // bytes are what the next pull needs), nor when the
                    // registry sent wrong data.
                    drop(writer);
                    let _ = self.store.abort(&reference);
                    return Err(e);
                }
                Err(e) if e.transient() && attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!("{e}; retrying (attempt {attempt})");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Verify and publish a complete download.
    async fn commit(
        &self,
        d: &manifest::Descriptor,
        desc: Descriptor,
        digest: Digest,
        writer: hull_content::Writer,
        fetched: u64,
    ) -> Result<(Descriptor, u64), PullError> {
        let size = d.size;
        let committed = tokio::task::spawn_blocking(move || writer.commit(size, &digest))
            .await
            .expect("content store commit panicked");
        match committed {
            Ok(_) => {
                (self.events)(Event::Blob(progress(d, BlobState::Done, d.size)));
                (self.events)(Event::Committed(desc.clone()));
                Ok((desc, fetched))
            }
            // The store has dropped the data already.
            Err(e @ hull_content::Error::DigestMismatch { .. }) => Err(self.remote.blob_error(
                &d.digest,
                format!("the registry sent wrong content: {e}"),
                BlobFailure::BadData,
            )),
            Err(e) => Err(PullError::from_store(e)),
        }
    }
}

/// Progress of a download of the same blob by another pull, as seen
/// through its ingest's size.
struct OtherDownload {
    offset: Option<u64>,
    since: Instant,
}

impl OtherDownload {
    fn new() -> OtherDownload {
        OtherDownload {
            offset: None,
            since: Instant::now(),
        }
    }

    /// Whether the other download got further since the last look.
    fn advanced(&mut self, offset: u64) -> bool {
        if self.offset == Some(offset) {
            return false;
        }
        self.offset = Some(offset);
        self.since = Instant::now();
        true
    }

    fn stalled_for(&self) -> Duration {
        self.since.elapsed()
    }
}
