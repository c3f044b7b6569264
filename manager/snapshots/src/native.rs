//! The native snapshotter: each snapshot directory is a full copy of its
//! parent (hull_diff::copy_tree: owners, modes, xattrs, times, devices,
//! symlinks and hard links kept), mounted with a bind mount. It works on
//! any filesystem, at the cost of a copy per snapshot; layers are applied
//! into it with `Whiteouts::Remove`.
//!
//! ```text
//! <root>/snapshots/native/snapshots/<id>
//! Active  bind <dir> [rw, rbind]
//! View    bind <dir> [ro, rbind]
//! ```

use crate::store::Store;
use crate::{Error, Info, Kind, Labels, Mount, Result, Snapshotter, UnpackTarget, Usage};
use hull_diff::{ApplyOptions, Whiteouts};
use hull_metadata::{Metadata, SnapshotRecord};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Native {
    store: Store,
}

impl Native {
    /// The snapshotter over `<root>/snapshots/native`.
    pub fn new(meta: Arc<Metadata>, root: &Path) -> Result<Native> {
        Ok(Native {
            store: Store::open(meta, root, "native")?,
        })
    }

    /// The directory of Active `key`: where its layer is unpacked.
    pub fn dir(&self, ns: &str, key: &str) -> Result<PathBuf> {
        Ok(self.store.path(self.store.active(ns, key)?.record.id))
    }

    fn create(
        &self,
        ns: &str,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
        labels: Labels,
    ) -> Result<Vec<Mount>> {
        let fill = |tmp: &Path, parents: &[(String, SnapshotRecord)]| {
            // Without a parent the directory starts empty, 0755 like an
            // image root.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755))
                .map_err(crate::io_err("setting the mode of", tmp))?;
            let Some((_, p)) = parents.first() else {
                return Ok(());
            };
            hull_diff::copy_tree(&self.store.path(p.id), tmp).map_err(|e| Error::Io {
                what: format!("copying the parent snapshot: {}", e.what),
                path: e.path,
                source: e.source,
            })
        };
        let chain = self.store.create(ns, key, parent, kind, labels, fill)?;
        Ok(self.mounts_of(chain.record.id, kind))
    }

    fn mounts_of(&self, id: u64, kind: Kind) -> Vec<Mount> {
        let rw = if kind == Kind::Active { "rw" } else { "ro" };
        vec![Mount {
            kind: "bind".into(),
            source: self.store.path(id).display().to_string(),
            target: String::new(),
            options: vec![rw.into(), "rbind".into()],
        }]
    }
}

impl Snapshotter for Native {
    fn name(&self) -> &'static str {
        self.store.name()
    }

    fn prepare(
        &self,
        ns: &str,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
    ) -> Result<Vec<Mount>> {
        self.create(ns, key, parent, Kind::Active, labels)
    }

    fn view(
        &self,
        ns: &str,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
    ) -> Result<Vec<Mount>> {
        self.create(ns, key, parent, Kind::View, labels)
    }

    fn mounts(&self, ns: &str, key: &str) -> Result<Vec<Mount>> {
        let chain = self.store.mountable(ns, key)?;
        Ok(self.mounts_of(chain.record.id, chain.record.kind))
    }

    fn commit(&self, ns: &str, name: &str, key: &str, labels: Labels) -> Result<()> {
        self.store
            .commit(ns, name, key, labels, |id| self.store.path(id))
    }

    fn remove(&self, ns: &str, key: &str) -> Result<()> {
        self.store.remove(ns, key)
    }

    fn stat(&self, ns: &str, key: &str) -> Result<Info> {
        self.store.stat(ns, key)
    }

    fn update(&self, ns: &str, info: Info, fieldpaths: &[String]) -> Result<Info> {
        self.store.update(ns, info, fieldpaths)
    }

    fn usage(&self, ns: &str, key: &str) -> Result<Usage> {
        self.store.usage(ns, key, |id| self.store.path(id))
    }

    fn walk(&self, ns: &str) -> Result<Vec<Info>> {
        self.store.walk(ns)
    }

    fn cleanup(&self) -> Result<Vec<PathBuf>> {
        self.store.cleanup()
    }

    fn unpack_target(&self, ns: &str, key: &str) -> Result<UnpackTarget> {
        Ok(UnpackTarget {
            root: self.dir(ns, key)?,
            options: ApplyOptions {
                whiteouts: Whiteouts::Remove,
                parents: Vec::new(),
            },
        })
    }
}
