//! What one running hulld holds: its config, the content store, the
//! metadata DB and the puller, shared by all services.

use crate::config::Config;
use hull_content::{ContentStore, Digest, LocalStore};
use hull_images::manifest::{self, MAX_SIZE};
use hull_metadata::Metadata;
use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What a collection removed.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Blob digests.
    pub removed: Vec<String>,
    pub bytes: u64,
    /// Snapshots, as "<namespace>/<snapshotter>/<key>".
    pub snapshots: Vec<String>,
}

pub struct Daemon {
    pub config: Config,
    pub store: Arc<LocalStore>,
    pub meta: Arc<Metadata>,
    pub puller: hull_images::Puller,
    pub snapshotters: crate::snapshotters::Snapshotters,
    pub events: crate::events::EventBus,
    pub shims: crate::shim::ShimRuntime,
    pub tasks: crate::tasks::Tasks,
    pub network: crate::network::Networking,
    /// This daemon's identity (introspection's Server), kept in the root.
    pub uuid: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("content store: {0}")]
    Content(#[from] hull_content::Error),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("snapshots: {0}")]
    Snapshots(#[from] hull_snapshots::Error),
    #[error("daemon id {path}: {source}")]
    Uuid {
        path: String,
        source: std::io::Error,
    },
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

impl Daemon {
    pub fn open(config: Config) -> Result<Daemon, OpenError> {
        let store = Arc::new(LocalStore::open(config.root.join("content"))?);
        let db = config.root.join("metadata.redb");
        let meta = Metadata::open(&db).map_err(|source| OpenError::Metadata {
            path: db.display().to_string(),
            source,
        })?;
        // Namespaces are made by the first write into them, as containerd
        // does (so `default` exists once something was put there).
        let meta = Arc::new(meta);
        let snapshotters = crate::snapshotters::Snapshotters::open(
            meta.clone(),
            &config.root,
            &config.snapshots.default,
        )?;
        snapshotters.get("").map_err(|_| {
            crate::config::ConfigError::Invalid(format!(
                "snapshots.default = {:?}: choose one of {}",
                config.snapshots.default,
                snapshotters.names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let puller = hull_images::Puller::new(store.clone(), config.registry_config()?);
        let uuid = daemon_uuid(&config.root).map_err(|source| OpenError::Uuid {
            path: config.root.join("uuid").display().to_string(),
            source,
        })?;
        let shims = crate::shim::ShimRuntime {
            binary: find_program(&config.runtime.shim),
            grpc_address: config.grpc.address.clone(),
            ttrpc_address: ttrpc_address(&config.grpc.address),
            tasks_dir: config.state.join("tasks"),
            runtime_root: config.state.join("runtime"),
        };
        let network = crate::network::Networking::new(&config);
        Ok(Daemon {
            network,
            config,
            store,
            meta,
            puller,
            snapshotters,
            events: Default::default(),
            tasks: Default::default(),
            shims,
            uuid,
        })
    }

    /// Whether the store holds a blob.
    pub fn store_has(&self, digest: &str) -> bool {
        digest
            .parse::<Digest>()
            .is_ok_and(|d| self.store.info(&d).is_ok())
    }

    /// A committed blob becomes content of `ns` (with labels merged), and
    /// part of the client's lease if it works under one.
    pub fn record_content(
        &self,
        ns: &str,
        digest: &str,
        labels: Option<&std::collections::BTreeMap<String, String>>,
        lease: Option<&str>,
    ) -> Result<(), tonic::Status> {
        use crate::services::meta_status;
        self.meta.create_namespace(ns).map_err(meta_status)?;
        self.meta
            .add_content_with(ns, digest, labels)
            .map_err(meta_status)?;
        if let Some(lease) = lease {
            self.meta
                .add_lease_resource(ns, lease, digest)
                .map_err(meta_status)?;
        }
        Ok(())
    }

    /// What a blob references, with media types, for the garbage
    /// collector. A blob of a manifest or index type must be read: if it
    /// cannot be (over [`MAX_SIZE`], unreadable, malformed), the error
    /// stops the collection, since what it references would look like
    /// garbage. A blob of unknown type (a lease resource) is sniffed: one
    /// that parses as a manifest is followed, anything else is a leaf.
    fn children(&self, digest: &str, media_type: &str) -> Result<Vec<(String, String)>, String> {
        let must_read = manifest::is_manifest_type(media_type);
        if !must_read && !media_type.is_empty() {
            return Ok(Vec::new());
        }
        let Ok(d) = digest.parse::<Digest>() else {
            return Ok(Vec::new());
        };
        let info = match self.store.info(&d) {
            Ok(info) => info,
            // Not fetched (another platform of an index): nothing below.
            Err(hull_content::Error::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(format!("{e}")),
        };
        let unreadable = |why: String| {
            let what = if must_read { "manifest" } else { "blob" };
            format!("cannot read {what} {digest}: {why}: remove the image that references it (`hullctl images rm`), then collect again")
        };
        if info.size > MAX_SIZE {
            return match must_read {
                true => Err(unreadable(format!(
                    "{} bytes, more than the {MAX_SIZE} a manifest may have",
                    info.size
                ))),
                false => Ok(Vec::new()),
            };
        }
        let mut bytes = Vec::new();
        self.store
            .open(&d)
            .and_then(|mut f| {
                f.read_to_end(&mut bytes)
                    .map_err(|source| hull_content::Error::Io {
                        what: "reading",
                        path: digest.into(),
                        source,
                    })
            })
            .map_err(|e| unreadable(e.to_string()))?;
        match manifest::children(&bytes) {
            Ok(children) => Ok(children
                .into_iter()
                .map(|c| (c.digest, c.media_type))
                .collect()),
            Err(e) if must_read => Err(unreadable(e.to_string())),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// Mark and sweep: drop expired leases and every blob no image or live
    /// lease reaches in any namespace; then the orphans (blobs in the store
    /// that no namespace records, e.g. after a crash lost a pull's deferred
    /// record) older than [`ORPHAN_GRACE`], and stale partial downloads.
    /// Returns the removed digests and bytes.
    pub fn gc(&self) -> Result<GcReport, hull_metadata::Error> {
        let collected = self.meta.gc(|d, t| self.children(d, t))?;
        let mut report = GcReport::default();
        for s in collected.snapshots {
            let name = format!("{}/{}/{}", s.namespace, s.snapshotter, s.key);
            let removed = self
                .snapshotters
                .get(&s.snapshotter)
                .map_err(|e| e.message().to_string())
                .and_then(|sn| sn.remove(&s.namespace, &s.key).map_err(|e| e.to_string()));
            match removed {
                Ok(()) => report.snapshots.push(name),
                // A child prepared since the mark keeps it; the next
                // collection looks again.
                Err(e) => tracing::warn!("gc: removing snapshot {name}: {e}"),
            }
        }
        let mut doomed = collected.blobs;
        doomed.extend(self.orphans()?);
        for digest in doomed {
            if let Ok(d) = digest.parse::<Digest>() {
                let size = self.store.info(&d).map(|i| i.size).unwrap_or(0);
                match self.store.delete(&d) {
                    Ok(()) | Err(hull_content::Error::NotFound(_)) => {
                        report.bytes += size;
                        report.removed.push(digest)
                    }
                    Err(e) => tracing::warn!("gc: removing {digest}: {e}"),
                }
            }
        }
        self.drop_stale_ingests();
        if !report.removed.is_empty() || !report.snapshots.is_empty() {
            tracing::info!(
                "gc: removed {} blobs ({} bytes) and {} snapshots",
                report.removed.len(),
                report.bytes,
                report.snapshots.len()
            );
        }
        Ok(report)
    }

    /// Remove layer unpacks a killed daemon left half-done: `extract-…`
    /// snapshots (ours and ctr's) that are still Active. At start-up no
    /// client is connected yet, so none of them is in progress; an unpack
    /// cannot resume, the next pull starts it over.
    pub fn drop_interrupted_unpacks(&self) {
        let Ok(namespaces) = self.meta.namespaces() else {
            return;
        };
        for ns in namespaces {
            let Ok(all) = self.meta.namespace_snapshots(&ns) else {
                continue;
            };
            for (name, key, record) in all {
                let interrupted = key.starts_with("extract-")
                    && record.kind == hull_metadata::SnapshotKind::Active;
                if !interrupted {
                    continue;
                }
                let removed = self
                    .snapshotters
                    .get(&name)
                    .map_err(|e| e.message().to_string())
                    .and_then(|sn| sn.remove(&ns, &key).map_err(|e| e.to_string()));
                match removed {
                    Ok(()) => tracing::info!("removed the interrupted unpack {ns}/{name}/{key:?}"),
                    Err(e) => tracing::warn!("removing the interrupted unpack {key:?}: {e}"),
                }
            }
        }
    }

    /// Collect after a change that released content (an image or lease
    /// removed): the change stands even if collection fails, which only
    /// keeps more than needed; the failure is logged for the operator.
    pub fn gc_after(&self, change: &str) {
        if let Err(e) = self.gc() {
            tracing::error!("gc after {change}: {e}");
        }
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

/// A random id made on first start and kept in `<root>/uuid`.
fn daemon_uuid(root: &std::path::Path) -> std::io::Result<String> {
    let path = root.join("uuid");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let id = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    let tmp = root.join(".uuid.tmp");
    std::fs::write(&tmp, &id)?;
    std::fs::rename(&tmp, &path)?;
    Ok(id)
}

/// Where shims forward events: the gRPC socket's path plus `.ttrpc`.
pub fn ttrpc_address(grpc: &std::path::Path) -> std::path::PathBuf {
    let mut s = grpc.as_os_str().to_owned();
    s.push(".ttrpc");
    s.into()
}

/// A program by path, or by name in hulld's own directory, else on PATH
/// (left as a name: the error when it is run says it is missing).
fn find_program(name: &std::path::Path) -> std::path::PathBuf {
    if name.components().count() > 1 {
        return name.to_path_buf();
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)));
    match beside {
        Some(p) if p.exists() => p,
        _ => name.to_path_buf(),
    }
}
