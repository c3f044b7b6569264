//! Unpacking while downloading: layers are applied in order, each as soon
//! as its parent snapshot is committed, reading the layer from the growing
//! ingest (see [`super::feed`]). A layer's snapshot is committed only after
//! the blob's digest (checked by the content store's commit, which ends the
//! feed) and its diff_id (checked by the [`LayerUnpacker`]) are right.
//!
//! The snapshotter and the diff applier belong to the daemon; this module
//! only drives them through [`LayerUnpacker`], so the order, the chain IDs
//! and the fallbacks are testable without root.

use super::feed::{FeedReader, Feeds};
use super::{Event, Events, PullError};
use crate::manifest;
use hull_content::{ContentStore, Digest};
use serde::Deserialize;
use std::io::Read;
use std::sync::Arc;

/// The largest image config read (configs with long histories are larger
/// than manifests, but not this large).
const MAX_CONFIG_SIZE: u64 = 32 << 20;

/// What the daemon provides to unpack one image's layers into snapshots.
pub trait LayerUnpacker: Send + Sync {
    /// The snapshotter's name (`overlayfs`, `native`).
    fn snapshotter(&self) -> &str;
    /// Whether the committed snapshot `chain_id` exists already.
    fn exists(&self, chain_id: &str) -> Result<bool, String>;
    /// Apply the compressed `layer` on `parent` and commit it as
    /// `chain_id`, if its uncompressed digest is `diff_id`. On any failure
    /// nothing of it stays. `applied` is told the uncompressed bytes so far.
    fn unpack(
        &self,
        layer: &mut dyn Read,
        media_type: &str,
        parent: Option<&str>,
        chain_id: &str,
        diff_id: &str,
        applied: &dyn Fn(u64),
    ) -> Result<(), String>;
}

/// How far a layer's unpack got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackProgress {
    pub layer: String,
    pub chain_id: String,
    /// "unpacking", "unpacked" or "exists".
    pub state: &'static str,
    pub applied: u64,
}

/// The chain IDs of a layer stack (OCI image spec): the first is its
/// diff_id, each next one sha256("<previous> <diff_id>").
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()).to_string(),
        };
        out.push(next);
    }
    out
}

#[derive(Deserialize)]
struct Config {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

/// Unpack an image whose blobs are all in the store already (an import,
/// or a pull without unpack): the same job, with every blob's feed
/// complete. Blocking; returns the top snapshot's chain ID.
pub fn unpack_stored(
    store: Arc<dyn ContentStore + Send + Sync>,
    unpacker: Arc<dyn LayerUnpacker>,
    config: manifest::Descriptor,
    layers: Vec<manifest::Descriptor>,
    events: Events,
    reference: &str,
) -> Result<String, PullError> {
    let feeds = Arc::new(Feeds::default());
    for b in std::iter::once(&config).chain(&layers) {
        feeds.get(&b.digest).committed();
    }
    UnpackJob {
        store,
        feeds,
        unpacker,
        config,
        layers,
        events,
        reference: reference.to_string(),
    }
    .run()
}

/// One image's unpack, run on a blocking thread beside the downloads.
pub(super) struct UnpackJob {
    pub store: Arc<dyn ContentStore + Send + Sync>,
    pub feeds: Arc<Feeds>,
    pub unpacker: Arc<dyn LayerUnpacker>,
    pub config: manifest::Descriptor,
    pub layers: Vec<manifest::Descriptor>,
    pub events: Events,
    pub reference: String,
}

impl UnpackJob {
    fn error(&self, detail: String) -> PullError {
        PullError::Unpack {
            reference: self.reference.clone(),
            detail,
        }
    }

    fn diff_ids(&self) -> Result<Vec<String>, PullError> {
        let feed = self.feeds.get(&self.config.digest);
        feed.wait_committed()
            .map_err(|e| self.error(format!("the config did not arrive: {e}")))?;
        if self.config.size > MAX_CONFIG_SIZE {
            return Err(self.error(format!(
                "config {} is {} bytes, more than the {MAX_CONFIG_SIZE} read",
                self.config.digest, self.config.size
            )));
        }
        let digest: Digest = self
            .config
            .digest
            .parse()
            .map_err(|e| self.error(format!("{e}")))?;
        let mut bytes = Vec::new();
        self.store
            .open(&digest)
            .map_err(|e| self.error(e.to_string()))?
            .take(MAX_CONFIG_SIZE)
            .read_to_end(&mut bytes)
            .map_err(|e| self.error(format!("reading config {digest}: {e}")))?;
        let config: Config = serde_json::from_slice(&bytes)
            .map_err(|e| self.error(format!("config {digest} has no rootfs.diff_ids: {e}")))?;
        Ok(config.rootfs.diff_ids)
    }

    /// Apply every layer; returns the top snapshot's chain ID.
    pub fn run(self) -> Result<String, PullError> {
        if let Some(f) = self
            .layers
            .iter()
            .find(|l| manifest::is_foreign_layer(&l.media_type))
        {
            return Err(self.error(format!(
                "layer {} is a foreign (non-distributable) layer: it cannot be unpacked here; pull with --no-unpack",
                f.digest
            )));
        }
        let diff_ids = self.diff_ids()?;
        if diff_ids.len() != self.layers.len() {
            return Err(self.error(format!(
                "the manifest lists {} layers, the config {} diff_ids",
                self.layers.len(),
                diff_ids.len()
            )));
        }
        let chains = chain_ids(&diff_ids);
        for (i, layer) in self.layers.iter().enumerate() {
            let parent = i.checked_sub(1).map(|p| chains[p].as_str());
            self.layer(layer, parent, &chains[i], &diff_ids[i])?;
        }
        Ok(chains.last().cloned().unwrap_or_default())
    }

    fn report(
        &self,
        layer: &manifest::Descriptor,
        chain_id: &str,
        state: &'static str,
        applied: u64,
    ) {
        (self.events)(Event::Unpack(UnpackProgress {
            layer: layer.digest.clone(),
            chain_id: chain_id.to_string(),
            state,
            applied,
        }));
    }

    fn layer(
        &self,
        layer: &manifest::Descriptor,
        parent: Option<&str>,
        chain_id: &str,
        diff_id: &str,
    ) -> Result<(), PullError> {
        if self.unpacker.exists(chain_id).map_err(|e| self.error(e))? {
            self.report(layer, chain_id, "exists", 0);
            return Ok(());
        }
        self.report(layer, chain_id, "unpacking", 0);
        let digest: Digest = layer
            .digest
            .parse()
            .map_err(|e| self.error(format!("{e}")))?;
        let feed = self.feeds.get(&layer.digest);
        let applied = std::sync::atomic::AtomicU64::new(0);
        let tick = |n: u64| {
            let before = applied.swap(n, std::sync::atomic::Ordering::Relaxed);
            // A report per 16 MiB applied is plenty for a progress line.
            if n >> 24 != before >> 24 {
                self.report(layer, chain_id, "unpacking", n);
            }
        };
        let mut reader = FeedReader::new(feed.clone(), self.store.clone(), digest.clone());
        let first = self.unpacker.unpack(
            &mut reader,
            &layer.media_type,
            parent,
            chain_id,
            diff_id,
            &tick,
        );
        if let Err(first) = first {
            // The download failed (the pull reports why), started over, or
            // the streamed apply met something odd: once the blob is
            // complete and verified, apply it once more from the store.
            feed.wait_committed()
                .map_err(|e| self.error(format!("layer {}: {e}", layer.digest)))?;
            tracing::debug!("unpacking {} again from the store: {first}", layer.digest);
            let mut reader = FeedReader::new(feed, self.store.clone(), digest);
            self.unpacker
                .unpack(
                    &mut reader,
                    &layer.media_type,
                    parent,
                    chain_id,
                    diff_id,
                    &tick,
                )
                .map_err(|e| self.error(format!("layer {}: {e}", layer.digest)))?;
        }
        let total = applied.load(std::sync::atomic::Ordering::Relaxed);
        self.report(layer, chain_id, "unpacked", total);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let chains = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chains[0], a);
        assert_eq!(
            chains[1],
            Digest::of(format!("{a} {b}").as_bytes()).to_string()
        );
        assert!(chain_ids(&[]).is_empty());
    }
}
