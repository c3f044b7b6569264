//! What one running hulld holds: its config, the content store, the
//! metadata DB and the puller, shared by all services.

use crate::config::Config;
use hull_content::{ContentStore, Digest, LocalStore};
use hull_metadata::Metadata;
use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub struct Daemon {
    pub config: Config,
    pub store: Arc<LocalStore>,
    pub meta: Arc<Metadata>,
    pub puller: hull_images::Puller,
    pub started: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("content store: {0}")]
    Content(#[from] hull_content::Error),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("metadata DB {path}: {source}")]
    Metadata {
        path: String,
        source: hull_metadata::Error,
    },
}

/// An unreferenced blob younger than this may be a pull's, committed but not
/// yet recorded: the sweep of orphans leaves it alone.
const ORPHAN_GRACE: Duration = Duration::from_secs(600);
/// Partial downloads untouched this long are dropped (a pull's lease, which
/// keeps its completed blobs for a retry, lasts as long).
const STALE_INGEST: Duration = Duration::from_secs(24 * 3600);

/// Blobs larger than this are layers, never manifests: GC does not read them.
const MAX_MANIFEST_SIZE: u64 = 4 << 20;

impl Daemon {
    pub fn open(config: Config) -> Result<Daemon, OpenError> {
        let store = Arc::new(LocalStore::open(config.root.join("content"))?);
        let db = config.root.join("metadata.redb");
        let meta = Metadata::open(&db).map_err(|source| OpenError::Metadata {
            path: db.display().to_string(),
            source,
        })?;
        meta.create_namespace(hull_api::DEFAULT_NAMESPACE)
            .map_err(|source| OpenError::Metadata {
                path: db.display().to_string(),
                source,
            })?;
        let puller = hull_images::Puller::new(store.clone(), config.registry_config()?);
        Ok(Daemon {
            config,
            store,
            meta: Arc::new(meta),
            puller,
            started: Instant::now(),
        })
    }

    /// The digests a blob references, if it is a manifest or an index.
    fn children(&self, digest: &str) -> Vec<String> {
        let Ok(d) = digest.parse::<Digest>() else {
            return Vec::new();
        };
        let Ok(info) = self.store.info(&d) else {
            return Vec::new();
        };
        if info.size > MAX_MANIFEST_SIZE {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        match self.store.open(&d).map(|mut f| f.read_to_end(&mut bytes)) {
            Ok(Ok(_)) => hull_images::manifest::children(&bytes),
            _ => Vec::new(),
        }
    }

    /// Mark and sweep: drop expired leases and every blob no image or live
    /// lease reaches in any namespace; then the orphans (blobs in the store
    /// that no namespace records, e.g. after a crash lost a pull's deferred
    /// record) older than [`ORPHAN_GRACE`], and stale partial downloads.
    /// Returns the removed digests and bytes.
    pub fn gc(&self) -> Result<(Vec<String>, u64), hull_metadata::Error> {
        let mut doomed = self.meta.gc(|d| self.children(d))?;
        doomed.extend(self.orphans()?);
        let mut bytes = 0;
        let mut removed = Vec::new();
        for digest in doomed {
            if let Ok(d) = digest.parse::<Digest>() {
                bytes += self.store.info(&d).map(|i| i.size).unwrap_or(0);
                match self.store.delete(&d) {
                    Ok(()) | Err(hull_content::Error::NotFound(_)) => removed.push(digest),
                    Err(e) => tracing::warn!("gc: removing {digest}: {e}"),
                }
            }
        }
        self.drop_stale_ingests();
        if !removed.is_empty() {
            tracing::info!("gc: removed {} blobs, {bytes} bytes", removed.len());
        }
        Ok((removed, bytes))
    }

    fn orphans(&self) -> Result<Vec<String>, hull_metadata::Error> {
        let mut known = BTreeSet::new();
        for ns in self.meta.namespaces()? {
            known.extend(self.meta.content(&ns)?);
            known.extend(self.meta.leases(&ns)?.into_iter().flat_map(|l| l.resources));
        }
        let now = SystemTime::now();
        let old = |d: &Digest| {
            self.store
                .blob_modified(d)
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > ORPHAN_GRACE)
        };
        Ok(self
            .store
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| !known.contains(&i.digest.to_string()) && old(&i.digest))
            .map(|i| i.digest.to_string())
            .collect())
    }

    fn drop_stale_ingests(&self) {
        let now = SystemTime::now();
        for status in self.store.statuses().unwrap_or_default() {
            let stale = self
                .store
                .ingest_modified(&status.reference)
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > STALE_INGEST);
            if stale {
                match self.store.abort(&status.reference) {
                    Ok(()) => tracing::info!("gc: dropped stale download {}", status.reference),
                    Err(e) => tracing::warn!("gc: dropping {}: {e}", status.reference),
                }
            }
        }
    }

    /// Remove a blob from the store (after its last reference went).
    pub fn delete_blob(&self, digest: &str) {
        if let Ok(d) = digest.parse::<Digest>() {
            if let Err(e) = self.store.delete(&d) {
                tracing::warn!("removing {digest}: {e}");
            }
        }
    }
}
