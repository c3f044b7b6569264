//! What one running hulld holds: its config, the content store, the
//! metadata DB and the puller, shared by all services.

use crate::config::Config;
use hull_content::{ContentStore, Digest, LocalStore};
use hull_metadata::Metadata;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

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
    /// lease reaches in any namespace. Returns the removed digests and bytes.
    pub fn gc(&self) -> Result<(Vec<String>, u64), hull_metadata::Error> {
        let unreferenced = self.meta.gc(|d| self.children(d))?;
        let mut bytes = 0;
        let mut removed = Vec::new();
        for digest in unreferenced {
            if let Ok(d) = digest.parse::<Digest>() {
                bytes += self.store.info(&d).map(|i| i.size).unwrap_or(0);
                match self.store.delete(&d) {
                    Ok(()) | Err(hull_content::Error::NotFound(_)) => removed.push(digest),
                    Err(e) => tracing::warn!("gc: removing {digest}: {e}"),
                }
            }
        }
        if !removed.is_empty() {
            tracing::info!("gc: removed {} blobs, {bytes} bytes", removed.len());
        }
        Ok((removed, bytes))
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
