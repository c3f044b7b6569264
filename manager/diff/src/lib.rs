//! hull-diff: the layer applier (containerd's "diff applier"). It unpacks
//! one OCI/Docker layer, a tar stream that may be gzip- or zstd-compressed,
//! into a snapshot directory and returns the layer's diff_id, the sha256 of
//! the uncompressed stream, which the caller compares with the image config.
//!
//! Why our own applier rather than `tar::Archive::unpack`: a layer is
//! untrusted input written as root. Every filesystem operation here is an
//! *at() call on a directory fd opened with openat2(RESOLVE_IN_ROOT), so
//! `..`, absolute names and symlinks in the layer or already in the tree
//! resolve inside the root by construction (see `apply.rs`); the `tar`
//! crate only parses headers and PAX/GNU records, behind a guard that bounds
//! what it may buffer (`guard.rs`). Layers also need what `unpack` does not
//! do: OCI whiteouts (translated for overlayfs or applied by deletion),
//! owners and xattrs set in the right order, directory times set after
//! their children.
//!
//! Decisions worth knowing:
//! - Names are cleaned lexically (`../x` is `x`); a name that cleans to the
//!   root itself is skipped (`path.rs`).
//! - GNU sparse entries (and PAX sparse records) are refused: layer builders
//!   never write them, and the `tar` crate would expand their holes into
//!   real zeros.
//! - xattrs: `trusted.overlay.*` from a layer is dropped; `trusted.*` and
//!   `security.selinux` are skipped where the fs refuses them; anything else
//!   that fails to apply fails the apply (`meta.rs`).
//! - A hard link must point at an entry already in the root (this layer's,
//!   or a full copy's for the native snapshotter); a missing target fails.
//! - A malformed or truncated layer fails the apply; the root is then left
//!   half-written and the caller removes the snapshot.

mod apply;
mod guard;
mod meta;
mod path;
mod stream;
mod sys;
mod tree;

pub use tree::{copy_tree, disk_usage, CopyError};

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    /// The root is an overlayfs upper dir: `.wh.NAME` becomes a character
    /// device 0:0 named NAME, an opaque marker sets
    /// `trusted.overlay.opaque=y` on its directory (needs CAP_SYS_ADMIN).
    Overlay,
    /// The root is a full copy of the layers below: `.wh.NAME` deletes NAME
    /// (recursively), an opaque marker deletes everything in its directory
    /// that this layer did not create itself.
    Remove,
}

/// How to apply a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyOptions {
    pub whiteouts: Whiteouts,
    /// With [`Whiteouts::Overlay`]: the lower dirs under the upper dir,
    /// topmost first. A directory the layer needs but does not list (and
    /// that is not in the upper dir yet) gets the mode, owner, xattrs and
    /// mtime of the same path in the topmost lower that has it, so the
    /// merged view keeps the image's metadata (root-owned 0755 if none has
    /// it). Ignored with [`Whiteouts::Remove`].
    pub parents: Vec<PathBuf>,
}

/// What was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// `sha256:<hex>` of the whole uncompressed stream, tar padding and end
    /// blocks included: the layer's diff_id.
    pub diff_id: String,
    /// Bytes in the uncompressed stream.
    pub size: u64,
}

/// Why a layer could not be applied. The root is then partly written; the
/// caller removes the snapshot.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "media type {0:?} is not a layer this applier unpacks \
         (tar, tar+gzip or tar+zstd, OCI or Docker)"
    )]
    UnsupportedMediaType(String),
    #[error(
        "the layer's media type is {media_type:?} but its data {found}: \
         the layer is mislabelled or corrupt; check the manifest or pull it again"
    )]
    Mislabelled {
        media_type: String,
        found: &'static str,
    },
    #[error("snapshot root {}: {source}: it must be an existing directory", path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the layer is not a valid {what}{}: {source}: the layer is corrupt, \
         truncated or hostile; remove the snapshot and pull it again",
        after.as_ref().map(|p| format!(" (after entry {p:?})")).unwrap_or_default()
    )]
    Malformed {
        what: &'static str,
        after: Option<String>,
        #[source]
        source: io::Error,
    },
    #[error("layer entry {path:?} refused: {reason}")]
    Refused { path: String, reason: String },
    #[error(
        "layer entry {path:?} claims {expected} bytes but the layer ends after {actual}: \
         the layer is truncated; pull it again"
    )]
    Truncated {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("layer entry {path:?}: {what}: {source}")]
    Io {
        path: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer entry {path:?}: {what}: {source}")]
    Metadata {
        path: String,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("reading the layer: {0}")]
    Read(#[source] io::Error),
}

/// Unpack `layer` (the blob as stored, compressed or not, per `media_type`)
/// into `root`, an existing directory. Returns the diff_id and size of the
/// uncompressed stream, read to its very end.
pub fn apply(
    layer: impl Read,
    media_type: &str,
    root: &Path,
    opts: &ApplyOptions,
) -> Result<Applied, ApplyError> {
    let mut applier = apply::Applier::new(root, opts)?;
    let stream = stream::open(layer, media_type)?;
    let mut archive = tar::Archive::new(guard::Guard::new(stream));
    // The last entry's name, kept as bytes (no allocation per entry) for
    // the message if the stream breaks after it.
    let mut last: Vec<u8> = Vec::new();
    let shown =
        |last: &[u8]| (!last.is_empty()).then(|| String::from_utf8_lossy(last).into_owned());
    let malformed = |last: &[u8], source| ApplyError::Malformed {
        what: "tar stream",
        after: shown(last),
        source,
    };
    for entry in archive.entries().map_err(|e| malformed(&last, e))? {
        let mut entry = entry.map_err(|e| malformed(&last, e))?;
        applier.entry(&mut entry)?;
        last.clear();
        last.extend_from_slice(&entry.path_bytes());
    }
    applier.finish()?;
    // The diff_id covers the whole stream: the end-of-archive blocks and
    // whatever padding the writer added after them.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|source| ApplyError::Malformed {
        what: "layer after the end of its tar stream",
        after: shown(&last),
        source,
    })?;
    let (diff_id, size) = rest.into_inner().finish().map_err(ApplyError::Read)?;
    Ok(Applied { diff_id, size })
}

/// A directory fd for a path given by the caller (the root, lower dirs,
/// copy source and target): those are ours, so following symlinks in them
/// is fine; everything under them is reached with *at() calls.
pub(crate) fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)?;
    Ok(OwnedFd::from(f))
}
