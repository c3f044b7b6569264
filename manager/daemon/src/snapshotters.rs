//! The snapshotters hulld serves (overlayfs, native) by name, and the
//! mapping of their errors to gRPC codes.

use hull_metadata::Metadata;
use hull_snapshots::{Native, Overlay, Snapshotter};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tonic::{Code, Status};

pub struct Snapshotters {
    by_name: BTreeMap<&'static str, Arc<dyn Snapshotter>>,
    default: String,
    /// `<root>/snapshots`: every snapshot directory is below it.
    root: PathBuf,
}

impl Snapshotters {
    pub fn open(
        meta: Arc<Metadata>,
        root: &Path,
        default: &str,
    ) -> Result<Snapshotters, hull_snapshots::Error> {
        let mut by_name: BTreeMap<&'static str, Arc<dyn Snapshotter>> = BTreeMap::new();
        by_name.insert("overlayfs", Arc::new(Overlay::new(meta.clone(), root)?));
        by_name.insert("native", Arc::new(Native::new(meta, root)?));
        Ok(Snapshotters {
            by_name,
            default: default.to_string(),
            root: root.join("snapshots"),
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }

    /// The snapshotter called `name` ("" for the default).
    pub fn get(&self, name: &str) -> Result<Arc<dyn Snapshotter>, Status> {
        let name = if name.is_empty() {
            self.default.as_str()
        } else {
            name
        };
        self.by_name.get(name).cloned().ok_or_else(|| {
            Status::invalid_argument(format!(
                "snapshotter {name:?} is not available: hulld has {}",
                self.by_name.keys().copied().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Remove data directories no record names (what a crash can leave).
    pub fn cleanup(&self) {
        for sn in self.by_name.values() {
            match sn.cleanup() {
                Ok(removed) if !removed.is_empty() => {
                    tracing::info!(
                        "{}: removed {} orphaned snapshot directories",
                        sn.name(),
                        removed.len()
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("{}: cleaning up: {e}", sn.name()),
            }
        }
    }

    /// The directory all snapshot data lives below.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

pub fn snapshot_status(e: hull_snapshots::Error) -> Status {
    use hull_snapshots::Error as E;
    let code = match &e {
        E::NotFound { .. } => Code::NotFound,
        E::AlreadyExists { .. } => Code::AlreadyExists,
        E::FailedPrecondition { .. } => Code::FailedPrecondition,
        E::InvalidArgument(_) => Code::InvalidArgument,
        E::Io { source, .. }
            if matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT)
            ) =>
        {
            Code::ResourceExhausted
        }
        E::Io { .. } | E::Metadata(_) => Code::Internal,
    };
    crate::services::status(code, e.to_string())
}
