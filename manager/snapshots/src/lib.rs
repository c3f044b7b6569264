//! hull-snapshots: containerd's snapshotter model. A snapshot is a
//! directory tree named by a key in a namespace; Active snapshots are
//! writable, Views read-only, and committing an Active one makes it an
//! immutable Committed snapshot that can be the parent of others. Image
//! layers are unpacked into a chain of them (hull-diff), and a container's
//! rootfs is an Active snapshot on top of the image's last layer, mounted
//! from the [`Mount`]s a snapshotter returns ([`mount_all`]).
//!
//! Two snapshotters share one record store in the manager's metadata DB
//! (hull-metadata, so a snapshot's record and the garbage collector's view
//! of it change in one transaction):
//! - [`Overlay`] (`overlayfs`, the default): each snapshot holds only its
//!   own changes; mounts stack them with overlayfs, as containerd's overlay
//!   snapshotter does.
//! - [`Native`] (`native`): each snapshot is a full copy of its parent; for
//!   filesystems overlayfs cannot use as an upper dir.
//!
//! Crash safety: a data directory is built under a temporary name and
//! renamed into place before its record is written, and a record is
//! removed before its directory. A crash at any point leaves at most a
//! directory no record names, which [`Snapshotter::cleanup`] removes.
//!
//! Times ([`Info::created`], [`Info::updated`]) are nanoseconds since the
//! epoch, which is what containerd's API carries.

mod mount;
mod native;
mod overlay;
mod store;
mod usage;

pub use hull_metadata::{SnapshotKind as Kind, SnapshotUsage as Usage};
pub use mount::{mount_all, unmount, Mounted};
pub use native::Native;
pub use overlay::Overlay;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

pub type Labels = BTreeMap<String, String>;

/// What `stat` and `walk` tell about a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// The snapshot's key.
    pub name: String,
    pub parent: Option<String>,
    pub kind: Kind,
    pub labels: Labels,
    /// Nanoseconds since the epoch.
    pub created: u64,
    pub updated: u64,
}

/// One mount, as containerd describes it (`type`, `source`, `target`,
/// `options`). `target` is relative to where the list is mounted; our
/// snapshotters leave it empty (the mount point itself).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mount {
    /// containerd's `type`: "bind" or "overlay".
    pub kind: String,
    pub source: String,
    pub target: String,
    pub options: Vec<String>,
}

/// Where and how a layer is unpacked into a snapshot (for hull-diff).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackTarget {
    pub root: PathBuf,
    pub options: hull_diff::ApplyOptions,
}

/// Why a snapshot operation failed. The variants are the gRPC codes the
/// API maps them to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "snapshot {key:?} not found in namespace {namespace:?}: check the key (walk lists them)"
    )]
    NotFound { namespace: String, key: String },
    #[error(
        "snapshot {key:?} already exists in namespace {namespace:?}: \
         use another key or remove the existing snapshot first"
    )]
    AlreadyExists { namespace: String, key: String },
    #[error("snapshot {key:?} in namespace {namespace:?}: {reason}")]
    FailedPrecondition {
        namespace: String,
        key: String,
        reason: String,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("metadata: {0}")]
    Metadata(#[source] hull_metadata::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<hull_metadata::SnapshotError> for Error {
    fn from(e: hull_metadata::SnapshotError) -> Error {
        use hull_metadata::SnapshotError as S;
        match e {
            S::NotFound { namespace, key } => Error::NotFound { namespace, key },
            S::AlreadyExists { namespace, key } => Error::AlreadyExists { namespace, key },
            S::FailedPrecondition {
                namespace,
                key,
                reason,
            } => Error::FailedPrecondition {
                namespace,
                key,
                reason,
            },
            S::Db(e) => e.into(),
        }
    }
}

impl From<hull_metadata::Error> for Error {
    fn from(e: hull_metadata::Error) -> Error {
        match e {
            hull_metadata::Error::InvalidNamespace(_) => Error::InvalidArgument(e.to_string()),
            e => Error::Metadata(e),
        }
    }
}

pub(crate) fn io_err(
    what: impl Into<String>,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let (what, path) = (what.into(), path.into());
    move |source| Error::Io { what, path, source }
}

/// containerd's snapshotter interface, per namespace. Keys of Active, View
/// and Committed snapshots share one key space in a namespace.
pub trait Snapshotter: Send + Sync {
    /// "overlayfs" or "native": the name records are kept under.
    fn name(&self) -> &'static str;

    /// A new Active (writable) snapshot `key` on top of the Committed
    /// `parent` (or empty); returns how to mount it.
    fn prepare(
        &self,
        ns: &str,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
    ) -> Result<Vec<Mount>>;

    /// A new read-only View `key` of the Committed `parent`.
    fn view(&self, ns: &str, key: &str, parent: Option<&str>, labels: Labels)
        -> Result<Vec<Mount>>;

    /// The mounts of an Active snapshot or a View.
    fn mounts(&self, ns: &str, key: &str) -> Result<Vec<Mount>>;

    /// Turn Active `key` into Committed `name`, keeping its data; `key`
    /// no longer exists afterwards.
    fn commit(&self, ns: &str, name: &str, key: &str, labels: Labels) -> Result<()>;

    /// Remove a snapshot and its data; refused while it has children.
    fn remove(&self, ns: &str, key: &str) -> Result<()>;

    fn stat(&self, ns: &str, key: &str) -> Result<Info>;

    /// Change labels only: `fieldpaths` "labels" replaces them all,
    /// "labels.KEY" sets or (absent from `info`) deletes one; none at all
    /// means "labels". Other paths are invalid.
    fn update(&self, ns: &str, info: Info, fieldpaths: &[String]) -> Result<Info>;

    /// Disk use of the snapshot's own data: measured at commit for a
    /// Committed snapshot, now for the others.
    fn usage(&self, ns: &str, key: &str) -> Result<Usage>;

    /// Every snapshot of the namespace.
    fn walk(&self, ns: &str) -> Result<Vec<Info>>;

    /// Remove data directories no record names (left by a crash); returns
    /// what was removed.
    fn cleanup(&self) -> Result<Vec<PathBuf>>;

    /// Where a layer for Active `key` is unpacked, and how.
    fn unpack_target(&self, ns: &str, key: &str) -> Result<UnpackTarget>;
}
