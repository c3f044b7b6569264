//! Image archives: moving images without a registry.
//! - [`export`] writes an OCI image layout as a tar (`oci-layout`,
//!   `index.json`, `blobs/sha256/…`) that also carries Docker's
//!   `manifest.json`, so docker/podman `load`, `skopeo copy oci-archive:`
//!   and `ctr images import` all read it;
//! - [`import`] reads such tars, OCI layouts from other tools, and `docker
//!   save` / `skopeo copy docker-archive:` tars, gzip-compressed or not.
//!
//! Both stream: blobs go between the tar and the content store entry by
//! entry, never whole in memory. An import verifies every blob against
//! its digest (its name in an OCI layout, the manifest's and the config's
//! diff_ids for Docker archives) and names the images only at the end,
//! when all of their content is in.

mod export;
mod import;

pub use export::{export, ExportImage, Exported};
pub use import::{import, ImportOptions, Imported};

use crate::manifest::{self, Document};
use crate::platform::Platform;
use crate::pull::Descriptor;
use hull_content::{ContentStore, Digest};
use std::io::Read;

/// containerd's annotation for an image's full name in an OCI layout.
pub const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";
/// The OCI layout's annotation for a reference (a tag, or a full name).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Documents in an archive (index.json, manifest.json, configs) are read
/// into memory; more than this is not an image archive.
const MAX_DOCUMENT: u64 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("reading the archive: {0}")]
    Read(std::io::Error),
    #[error("writing the archive: {0}")]
    Write(std::io::Error),
    #[error("the archive is not an image archive: {0}")]
    Format(String),
    #[error("the archive's {entry} does not match its digest ({detail}): the archive is damaged or was changed; nothing was imported")]
    Tampered { entry: String, detail: String },
    #[error("{image}: {what} {digest} is {why}")]
    Incomplete {
        image: String,
        what: String,
        digest: String,
        why: String,
    },
    #[error("content store: {0}")]
    Store(hull_content::Error),
}

/// A manifest or index from the store, at most [`manifest::MAX_SIZE`].
pub(crate) fn read_blob(
    store: &dyn ContentStore,
    digest: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    let Ok(d) = digest.parse::<Digest>() else {
        return Ok(None);
    };
    let file = match store.open(&d) {
        Ok(f) => f,
        Err(hull_content::Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(ArchiveError::Store(e)),
    };
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ArchiveError::Read)?;
    if bytes.len() as u64 > limit {
        return Err(ArchiveError::Format(format!(
            "{digest} is larger than the {limit} bytes a document may have"
        )));
    }
    Ok(Some(bytes))
}

/// Which manifests of an index an export or an unpack wants.
#[derive(Clone, Debug)]
pub enum Platforms {
    All,
    One(Platform),
}

impl Platforms {
    /// The children of an index this selection keeps.
    pub fn pick<'a>(&self, manifests: &'a [manifest::Descriptor]) -> Vec<&'a manifest::Descriptor> {
        match self {
            Platforms::All => manifests.iter().collect(),
            Platforms::One(p) => p.select(manifests).into_iter().collect(),
        }
    }
}

/// The manifest of `target` for `platform`: itself, or the index's entry.
/// Returns its descriptor, config and layers.
pub fn platform_manifest(
    store: &dyn ContentStore,
    image: &str,
    target: &Descriptor,
    platform: &Platform,
) -> Result<(Descriptor, manifest::Descriptor, Vec<manifest::Descriptor>), ArchiveError> {
    let incomplete = |what: &str, digest: &str, why: &str| ArchiveError::Incomplete {
        image: image.into(),
        what: what.into(),
        digest: digest.into(),
        why: why.into(),
    };
    let mut desc = target.clone();
    for _ in 0..2 {
        let bytes = read_blob(store, &desc.digest, manifest::MAX_SIZE)?
            .ok_or_else(|| incomplete("manifest", &desc.digest, "not in the content store"))?;
        match Document::parse(&bytes, &desc.media_type) {
            Ok(Document::Manifest { config, layers, .. }) => return Ok((desc, config, layers)),
            Ok(Document::Index { manifests, .. }) => {
                let chosen = platform.select(&manifests).ok_or_else(|| {
                    incomplete("index", &desc.digest, &format!("without {platform}"))
                })?;
                desc = Descriptor {
                    media_type: chosen.media_type.clone(),
                    digest: chosen.digest.clone(),
                    size: chosen.size,
                };
            }
            Err(e) => return Err(incomplete("manifest", &desc.digest, &e.to_string())),
        }
    }
    Err(incomplete(
        "index",
        &target.digest,
        "an index inside an index",
    ))
}
