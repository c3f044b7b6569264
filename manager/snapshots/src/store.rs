//! What both snapshotters share: records in the metadata DB and numbered
//! data directories under `<root>/snapshots/<snapshotter>/snapshots/`,
//! created and removed in the crash-safe order the crate doc describes.

use crate::{io_err, usage, Error, Info, Kind, Labels, Result, Usage};
use hull_metadata::{Metadata, SnapshotRecord};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// A snapshot with its parents (nearest first), as the snapshotters need
/// them to build mounts.
pub(crate) struct Chain {
    pub record: SnapshotRecord,
    pub parents: Vec<(String, SnapshotRecord)>,
}

pub(crate) struct Store {
    meta: Arc<Metadata>,
    name: &'static str,
    dir: PathBuf,
    /// Creations hold it shared, cleanup exclusively, so cleanup never
    /// takes a directory renamed into place whose record is being written.
    /// (One process owns a root: hulld.)
    busy: RwLock<()>,
}

fn invalid_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument(
            "snapshot key must not be empty".into(),
        ));
    }
    Ok(())
}

impl Store {
    pub(crate) fn open(meta: Arc<Metadata>, root: &Path, name: &'static str) -> Result<Store> {
        let dir = root.join("snapshots").join(name).join("snapshots");
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        Ok(Store {
            meta,
            name,
            dir,
            busy: RwLock::new(()),
        })
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The data directory of snapshot `id`.
    pub(crate) fn path(&self, id: u64) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// Create snapshot `key` of `kind` on `parent`: `fill` builds its data
    /// directory under a temporary path (given with the parent chain),
    /// which is then renamed into place and recorded.
    pub(crate) fn create(
        &self,
        ns: &str,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
        labels: Labels,
        fill: impl FnOnce(&Path, &[(String, SnapshotRecord)]) -> Result<()>,
    ) -> Result<Chain> {
        invalid_key(key)?;
        let _busy = self.busy.read().unwrap_or_else(|e| e.into_inner());
        // Fail early, before copying anything; the record transaction
        // checks again.
        match self.meta.snapshot(ns, self.name, key) {
            Ok(_) => {
                return Err(Error::AlreadyExists {
                    namespace: ns.into(),
                    key: key.into(),
                })
            }
            Err(hull_metadata::SnapshotError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let parents = match parent {
            Some(p) => self.committed_chain(ns, key, p)?,
            None => Vec::new(),
        };
        let id = self.meta.next_snapshot_id(self.name)?;
        let tmp = self.dir.join(format!("new-{id}"));
        fs::create_dir(&tmp).map_err(io_err("creating", &tmp))?;
        if let Err(e) = fill(&tmp, &parents) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let dir = self.path(id);
        if let Err(e) = fs::rename(&tmp, &dir) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(io_err("renaming into place", &dir)(e));
        }
        let now = hull_metadata::now_nanos();
        let record = SnapshotRecord {
            id,
            kind,
            parent: parent.map(str::to_string),
            labels,
            created: now,
            updated: now,
            usage: None,
        };
        if let Err(e) = self.meta.create_snapshot(ns, self.name, key, &record) {
            let _ = fs::remove_dir_all(&dir);
            return Err(e.into());
        }
        Ok(Chain { record, parents })
    }

    /// `parent` and its ancestors, nearest first; `parent` must be
    /// Committed.
    fn committed_chain(
        &self,
        ns: &str,
        key: &str,
        parent: &str,
    ) -> Result<Vec<(String, SnapshotRecord)>> {
        let record = self
            .meta
            .snapshot(ns, self.name, parent)
            .map_err(|e| match e {
                hull_metadata::SnapshotError::NotFound { .. } => Error::FailedPrecondition {
                    namespace: ns.into(),
                    key: key.into(),
                    reason: format!("parent {parent:?} does not exist"),
                },
                e => e.into(),
            })?;
        if record.kind != Kind::Committed {
            return Err(Error::FailedPrecondition {
                namespace: ns.into(),
                key: key.into(),
                reason: format!(
                    "parent {parent:?} is {:?}, not committed: commit it first",
                    record.kind
                ),
            });
        }
        let mut chain = vec![(parent.to_string(), record)];
        chain.extend(self.meta.snapshot_parent_chain(ns, self.name, parent)?);
        Ok(chain)
    }

    /// An Active snapshot or View with its parents (for mounts).
    pub(crate) fn mountable(&self, ns: &str, key: &str) -> Result<Chain> {
        let record = self.meta.snapshot(ns, self.name, key)?;
        if record.kind == Kind::Committed {
            return Err(Error::FailedPrecondition {
                namespace: ns.into(),
                key: key.into(),
                reason: "a committed snapshot has no mounts: prepare or view a child of it".into(),
            });
        }
        let parents = self.meta.snapshot_parent_chain(ns, self.name, key)?;
        Ok(Chain { record, parents })
    }

    /// An Active snapshot (for unpacking into it).
    pub(crate) fn active(&self, ns: &str, key: &str) -> Result<Chain> {
        let chain = self.mountable(ns, key)?;
        if chain.record.kind != Kind::Active {
            return Err(Error::FailedPrecondition {
                namespace: ns.into(),
                key: key.into(),
                reason: "a view is read-only: prepare an active snapshot to write".into(),
            });
        }
        Ok(chain)
    }

    /// Commit Active `key` as `name`; `data` is the directory whose usage
    /// is measured and stored.
    pub(crate) fn commit(
        &self,
        ns: &str,
        name: &str,
        key: &str,
        labels: Labels,
        data: impl FnOnce(u64) -> PathBuf,
    ) -> Result<()> {
        invalid_key(name)?;
        let record = self.meta.snapshot(ns, self.name, key)?;
        let usage = if record.kind == Kind::Active {
            usage::measure(&data(record.id))?
        } else {
            Usage::default() // refused by the transaction below
        };
        self.meta
            .commit_snapshot(ns, self.name, key, name, labels, usage)?;
        Ok(())
    }

    /// Remove the record, then the data: a crash in between leaves only an
    /// unreferenced directory.
    pub(crate) fn remove(&self, ns: &str, key: &str) -> Result<()> {
        let record = self.meta.remove_snapshot(ns, self.name, key)?;
        let dir = self.path(record.id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(
                "removing the data of the removed snapshot (cleanup retries)",
                &dir,
            )(e)),
        }
    }

    pub(crate) fn stat(&self, ns: &str, key: &str) -> Result<Info> {
        Ok(info(key, self.meta.snapshot(ns, self.name, key)?))
    }

    pub(crate) fn update(&self, ns: &str, new: Info, fieldpaths: &[String]) -> Result<Info> {
        let mut replace_all = fieldpaths.is_empty();
        let mut keys = Vec::new();
        for f in fieldpaths {
            if f == "labels" {
                replace_all = true;
            } else if let Some(k) = f.strip_prefix("labels.") {
                keys.push(k.to_string());
            } else {
                return Err(Error::InvalidArgument(format!(
                    "cannot update field {f:?} of snapshot {:?}: only \"labels\" and \
                     \"labels.KEY\" can change",
                    new.name
                )));
            }
        }
        let record = self.meta.update_snapshot(ns, self.name, &new.name, |r| {
            if replace_all {
                r.labels = new.labels.clone();
            }
            for k in &keys {
                match new.labels.get(k) {
                    Some(v) => r.labels.insert(k.clone(), v.clone()),
                    None => r.labels.remove(k),
                };
            }
        })?;
        Ok(info(&new.name, record))
    }

    pub(crate) fn usage(
        &self,
        ns: &str,
        key: &str,
        data: impl FnOnce(u64) -> PathBuf,
    ) -> Result<Usage> {
        let record = self.meta.snapshot(ns, self.name, key)?;
        match record.usage {
            Some(u) if record.kind == Kind::Committed => Ok(u),
            _ => usage::measure(&data(record.id)),
        }
    }

    pub(crate) fn walk(&self, ns: &str) -> Result<Vec<Info>> {
        Ok(self
            .meta
            .snapshots(ns, self.name)?
            .into_iter()
            .map(|(k, r)| info(&k, r))
            .collect())
    }

    pub(crate) fn cleanup(&self) -> Result<Vec<PathBuf>> {
        let _busy = self.busy.write().unwrap_or_else(|e| e.into_inner());
        let keep = self.meta.snapshot_ids(self.name)?;
        let mut removed = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err("listing", &self.dir))? {
            let entry = entry.map_err(io_err("listing", &self.dir))?;
            let referenced = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|id| keep.contains(&id));
            if referenced {
                continue;
            }
            let path = entry.path();
            let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            result.map_err(io_err("removing unreferenced snapshot data", &path))?;
            removed.push(path);
        }
        Ok(removed)
    }
}

pub(crate) fn info(key: &str, r: SnapshotRecord) -> Info {
    Info {
        name: key.to_string(),
        parent: r.parent,
        kind: r.kind,
        labels: r.labels,
        created: r.created,
        updated: r.updated,
    }
}
