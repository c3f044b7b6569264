//! The overlayfs snapshotter: each snapshot directory holds `fs` (its own
//! changes: the upper dir while Active, a lower dir once Committed) and
//! `work` (overlayfs' work dir). Layout and mounts are containerd's:
//!
//! ```text
//! <root>/snapshots/overlayfs/snapshots/<id>/{fs,work}
//! Active, no parent   bind <fs> [rw, rbind]
//! View, no parent     bind <fs> [ro, rbind]
//! View, one parent    bind <parent fs> [ro, rbind]
//! Active with parents overlay [index=off, workdir=<work>, upperdir=<fs>,
//!                              lowerdir=<parent fs>:<grandparent fs>:...]
//! View, parents       overlay [index=off, lowerdir=...] (no upper: read-only)
//! ```
//!
//! `index=off`: the inode index would tie the lower dirs to one upper dir,
//! and the same committed layers are shared by many containers.

use crate::store::{Chain, Store};
use crate::{Info, Kind, Labels, Mount, Result, Snapshotter, UnpackTarget, Usage};
use hull_diff::{ApplyOptions, Whiteouts};
use hull_metadata::Metadata;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Overlay {
    store: Store,
}

fn make_dirs(tmp: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    b.mode(0o755);
    b.create(tmp.join("fs"))
        .map_err(crate::io_err("creating", tmp.join("fs")))?;
    b.mode(0o700);
    b.create(tmp.join("work"))
        .map_err(crate::io_err("creating", tmp.join("work")))
}

impl Overlay {
    /// The snapshotter over `<root>/snapshots/overlayfs`.
    pub fn new(meta: Arc<Metadata>, root: &Path) -> Result<Overlay> {
        Ok(Overlay {
            store: Store::open(meta, root, "overlayfs")?,
        })
    }

    fn fs(&self, id: u64) -> PathBuf {
        self.store.path(id).join("fs")
    }

    /// The upper dir of Active `key`: where its layer is unpacked.
    pub fn upperdir(&self, ns: &str, key: &str) -> Result<PathBuf> {
        Ok(self.fs(self.store.active(ns, key)?.record.id))
    }

    /// The lower dirs under `key`, nearest parent first.
    pub fn lowerdirs(&self, ns: &str, key: &str) -> Result<Vec<PathBuf>> {
        let chain = self.store.mountable(ns, key)?;
        Ok(self.parent_dirs(&chain))
    }

    fn parent_dirs(&self, chain: &Chain) -> Vec<PathBuf> {
        chain.parents.iter().map(|(_, r)| self.fs(r.id)).collect()
    }

    fn mounts_of(&self, chain: &Chain) -> Vec<Mount> {
        let own = self.fs(chain.record.id);
        let active = chain.record.kind == Kind::Active;
        let bind = |dir: &Path, rw: &str| Mount {
            kind: "bind".into(),
            source: dir.display().to_string(),
            target: String::new(),
            options: vec![rw.into(), "rbind".into()],
        };
        let lowers = self.parent_dirs(chain);
        match (lowers.len(), active) {
            (0, true) => return vec![bind(&own, "rw")],
            (0, false) => return vec![bind(&own, "ro")],
            (1, false) => return vec![bind(&lowers[0], "ro")],
            _ => {}
        }
        let mut options = vec!["index=off".to_string()];
        if active {
            let work = self.store.path(chain.record.id).join("work");
            options.push(format!("workdir={}", work.display()));
            options.push(format!("upperdir={}", own.display()));
        }
        let joined: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        options.push(format!("lowerdir={}", joined.join(":")));
        vec![Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options,
        }]
    }
}

impl Snapshotter for Overlay {
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
        let chain = self
            .store
            .create(ns, key, parent, Kind::Active, labels, |tmp, _| {
                make_dirs(tmp)
            })?;
        Ok(self.mounts_of(&chain))
    }

    fn view(
        &self,
        ns: &str,
        key: &str,
        parent: Option<&str>,
        labels: Labels,
    ) -> Result<Vec<Mount>> {
        let chain = self
            .store
            .create(ns, key, parent, Kind::View, labels, |tmp, _| make_dirs(tmp))?;
        Ok(self.mounts_of(&chain))
    }

    fn mounts(&self, ns: &str, key: &str) -> Result<Vec<Mount>> {
        Ok(self.mounts_of(&self.store.mountable(ns, key)?))
    }

    fn commit(&self, ns: &str, name: &str, key: &str, labels: Labels) -> Result<()> {
        self.store.commit(ns, name, key, labels, |id| self.fs(id))
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
        self.store.usage(ns, key, |id| self.fs(id))
    }

    fn walk(&self, ns: &str) -> Result<Vec<Info>> {
        self.store.walk(ns)
    }

    fn cleanup(&self) -> Result<Vec<PathBuf>> {
        self.store.cleanup()
    }

    fn unpack_target(&self, ns: &str, key: &str) -> Result<UnpackTarget> {
        let chain = self.store.active(ns, key)?;
        Ok(UnpackTarget {
            root: self.fs(chain.record.id),
            options: ApplyOptions {
                whiteouts: Whiteouts::Overlay,
                parents: self.parent_dirs(&chain),
            },
        })
    }
}
