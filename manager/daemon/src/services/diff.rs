//! containerd.services.diff.v1: Apply unpacks a layer from the content
//! store into a snapshot (what ctr's client-side unpack calls between
//! Snapshots.Prepare and Commit). Diff (making a layer from two snapshots)
//! answers Unimplemented.
//!
//! The mounts name the snapshot's directories; hulld writes into them
//! directly (an overlay upper dir with overlay whiteouts, a native copy
//! with whiteouts applied as deletions) instead of mounting them, and only
//! into directories of its own snapshotters.

use super::{blocking, content_status, namespace, Shared};
use hull_api::diff::diff_server::Diff;
use hull_api::diff::*;
use hull_api::types::{Descriptor, Mount};
use hull_content::{ContentStore, Digest};
use hull_diff::{ApplyOptions, Whiteouts};
use std::path::{Path, PathBuf};
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

/// What an applied layer is, uncompressed.
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// `path`, resolved, if it is a directory below `root`.
fn inside(root: &Path, path: &str) -> Result<PathBuf, Status> {
    let resolved = std::fs::canonicalize(path)
        .map_err(|e| Status::invalid_argument(format!("mount source {path}: {e}")))?;
    let root = std::fs::canonicalize(root)
        .map_err(|e| Status::internal(format!("snapshot root {}: {e}", root.display())))?;
    if resolved.starts_with(&root) && resolved != root {
        Ok(resolved)
    } else {
        Err(Status::invalid_argument(format!(
            "{path} is not a directory of hulld's snapshots: Diff.Apply only applies into snapshots (Snapshots.Prepare's mounts)"
        )))
    }
}

/// Where and how to apply, from a snapshot's mounts.
fn target(root: &Path, mounts: &[Mount]) -> Result<(PathBuf, ApplyOptions), Status> {
    let [m] = mounts else {
        return Err(Status::invalid_argument(format!(
            "Diff.Apply needs the one mount of a snapshot, got {}",
            mounts.len()
        )));
    };
    match m.r#type.as_str() {
        "bind" => {
            if m.options.iter().any(|o| o == "ro") {
                return Err(Status::invalid_argument("the mount is read-only (a view)"));
            }
            let dir = inside(root, &m.source)?;
            let overlay =
                dir.starts_with(std::fs::canonicalize(root.join("overlayfs")).unwrap_or_default());
            let whiteouts = if overlay {
                Whiteouts::Overlay
            } else {
                Whiteouts::Remove
            };
            Ok((
                dir,
                ApplyOptions {
                    whiteouts,
                    parents: Vec::new(),
                },
            ))
        }
        "overlay" => {
            let option = |name: &str| {
                m.options
                    .iter()
                    .find_map(|o| o.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            };
            let upper = option("upperdir").ok_or_else(|| {
                Status::invalid_argument("the overlay mount has no upperdir (a read-only view)")
            })?;
            let parents = option("lowerdir")
                .map(|l| {
                    l.split(':')
                        .map(|p| inside(root, p))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default();
            Ok((
                inside(root, upper)?,
                ApplyOptions {
                    whiteouts: Whiteouts::Overlay,
                    parents,
                },
            ))
        }
        t => Err(Status::invalid_argument(format!(
            "Diff.Apply cannot apply into a mount of type {t:?}"
        ))),
    }
}

#[tonic::async_trait]
impl Diff for Service {
    async fn apply(&self, req: Request<ApplyRequest>) -> Result<Response<ApplyResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let desc = r
            .diff
            .ok_or_else(|| Status::invalid_argument("missing the layer descriptor"))?;
        let digest: Digest = desc
            .digest
            .parse()
            .map_err(|e: hull_content::InvalidDigest| Status::invalid_argument(e.to_string()))?;
        if self.0.meta.content_record(&ns, &desc.digest).is_err() {
            return Err(Status::not_found(format!(
                "layer {} is not content of namespace {ns:?}",
                desc.digest
            )));
        }
        let (root, opts) = target(self.0.snapshotters.root(), &r.mounts)?;
        let d = self.0.clone();
        let applied = blocking(move || {
            let file = d.store.open(&digest).map_err(content_status)?;
            hull_diff::apply(file, &desc.media_type, &root, &opts)
                .map_err(|e| Status::failed_precondition(format!("layer {digest}: {e}")))
        })
        .await?;
        Ok(Response::new(ApplyResponse {
            applied: Some(Descriptor {
                media_type: LAYER_TAR.into(),
                digest: applied.diff_id,
                size: applied.size as i64,
                annotations: Default::default(),
            }),
        }))
    }

    async fn diff(&self, _req: Request<DiffRequest>) -> Result<Response<DiffResponse>, Status> {
        Err(Status::unimplemented(
            "hulld does not implement containerd.services.diff.v1.Diff/Diff (making layers from snapshots)",
        ))
    }
}
