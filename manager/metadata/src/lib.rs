//! hull-metadata: what the manager records, in one embedded transactional
//! database (redb): namespaces, images (name → target descriptor), which
//! content each namespace references (with labels, as containerd keeps
//! them), leases that protect content and snapshots while they are used,
//! snapshot records, and the garbage collector over all of it. Every change
//! is one transaction, so a crash leaves the previous or the next state,
//! never half of one.
//!
//! Keys are `<namespace>/<name>`: namespace names cannot contain `/`, so a
//! namespace's entries are one contiguous key range.

mod containers;
mod content;
mod gc;
mod images;
mod leases;
mod namespaces;
mod snapshots;

pub use containers::{check_id, AnyRecord, Container, Runtime};
pub use content::ContentRecord;
pub use gc::{
    content_refs, snapshot_refs, Collected, DoomedSnapshot, GC_EXPIRE, GC_REF_CONTENT,
    GC_REF_SNAPSHOT, GC_ROOT,
};
pub use images::{Descriptor, Image};
pub use leases::{Lease, LeaseResource};
pub use namespaces::{check_namespace, Namespace};
pub use snapshots::{now_nanos, SnapshotError, SnapshotKind, SnapshotRecord, SnapshotUsage};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub(crate) const NAMESPACES: TableDefinition<&str, &[u8]> = TableDefinition::new("namespaces");
pub(crate) const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
pub(crate) const CONTENT: TableDefinition<&str, &[u8]> = TableDefinition::new("content");
pub(crate) const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "invalid namespace {0:?}: use letters and digits, joined by single '.', '_' or '-', at most 76 characters (e.g. default, k8s.io)"
    )]
    InvalidNamespace(String),
    #[error("namespace {0:?} does not exist: create it with `hullctl namespaces create {0}`")]
    NoNamespace(String),
    #[error("namespace {0:?} is not empty: remove its images, leases and snapshots first")]
    NamespaceNotEmpty(String),
    #[error("{kind} {name:?} not found in namespace {namespace:?}")]
    NotFound {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("{kind} {name:?} already exists in namespace {namespace:?}")]
    AlreadyExists {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("garbage collection stopped, nothing was removed: {0}")]
    Gc(String),
    #[error("metadata database: {0}: free space on its device, then try again")]
    NoSpace(String),
    #[error("metadata database: I/O error: {0}")]
    Io(String),
    /// redb refuses every transaction after an I/O error until the
    /// database is reopened; [`Metadata`] reopens it and tries once more,
    /// so callers see this only if that fails too.
    #[error("metadata database: unusable after an earlier I/O error, and reopening it failed")]
    Poisoned,
    #[error("metadata database: {0}")]
    Db(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn not_found(kind: &'static str, ns: &str, name: &str) -> Error {
    Error::NotFound {
        kind,
        namespace: ns.to_string(),
        name: name.to_string(),
    }
}

pub(crate) fn already_exists(kind: &'static str, ns: &str, name: &str) -> Error {
    Error::AlreadyExists {
        kind,
        namespace: ns.to_string(),
        name: name.to_string(),
    }
}

pub(crate) fn dberr<E: Into<redb::Error>>(e: E) -> Error {
    match e.into() {
        redb::Error::PreviousIo => Error::Poisoned,
        redb::Error::Io(e)
            if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) =>
        {
            Error::NoSpace(e.to_string())
        }
        e @ redb::Error::Io(_) => Error::Io(e.to_string()),
        e => Error::Db(e.to_string()),
    }
}

pub(crate) fn codec(e: serde_json::Error) -> Error {
    Error::Db(format!("a record does not decode: {e}"))
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// The key range of one namespace: "<ns>/" up to "<ns>0" ('0' follows '/').
pub(crate) fn range(ns: &str) -> (String, String) {
    (format!("{ns}/"), format!("{ns}0"))
}

type Table<'t> = redb::Table<'t, &'static str, &'static [u8]>;

/// A JSON record of `table` at `key`, if there is one.
pub(crate) fn get<T: for<'de> Deserialize<'de>>(t: &Table<'_>, key: &str) -> Result<Option<T>> {
    match t.get(key).map_err(dberr)? {
        Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(codec)?)),
        None => Ok(None),
    }
}

pub(crate) fn put<T: Serialize>(t: &mut Table<'_>, key: &str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(codec)?;
    t.insert(key, bytes.as_slice()).map_err(dberr)?;
    Ok(())
}

/// Labels after an update: with no paths, `new` replaces them all; with
/// paths (containerd's field mask), only `labels` (all) or `labels.KEY`
/// entries change, and an empty value removes a key.
pub fn merge_labels(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    paths: &[String],
) -> Result<BTreeMap<String, String>> {
    if paths.is_empty() {
        return Ok(new.clone());
    }
    let mut out = old.clone();
    for path in paths {
        if path == "labels" {
            out = new.clone();
        } else if let Some(k) = path.strip_prefix("labels.") {
            match new.get(k).filter(|v| !v.is_empty()) {
                Some(v) => {
                    out.insert(k.to_string(), v.clone());
                }
                None => {
                    out.remove(k);
                }
            }
        } else {
            return Err(Error::InvalidArgument(format!(
                "cannot update {path:?}: only labels can be changed"
            )));
        }
    }
    Ok(out)
}

/// The metadata DB's own page cache (redb's default is 1 GiB).
const DB_CACHE_BYTES: usize = 4 << 20;

pub struct Metadata {
    path: PathBuf,
    /// `None` after an I/O error: the next use opens the file again.
    db: Mutex<Option<Arc<Database>>>,
}

impl Metadata {
    pub fn open(path: &Path) -> Result<Metadata> {
        let db = Self::open_db(path)?;
        Ok(Metadata {
            path: path.to_path_buf(),
            db: Mutex::new(Some(Arc::new(db))),
        })
    }

    fn open_db(path: &Path) -> Result<Database> {
        // redb caches up to 1 GiB of pages by default; the whole DB of a
        // node is a few MiB, and the page cache keeps it warm anyway.
        let db = redb::Builder::new()
            .set_cache_size(DB_CACHE_BYTES)
            .create(path)
            .map_err(dberr)?;
        let tx = db.begin_write().map_err(dberr)?;
        for t in [NAMESPACES, IMAGES, CONTENT, LEASES, containers::CONTAINERS] {
            tx.open_table(t).map_err(dberr)?;
        }
        tx.commit().map_err(dberr)?;
        Ok(db)
    }

    fn db(&self) -> Result<Arc<Database>> {
        let mut slot = self.db.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let db = Arc::new(Self::open_db(&self.path)?);
        *slot = Some(db.clone());
        Ok(db)
    }

    /// Run `op` on the database. After an I/O error (a full disk, say)
    /// redb refuses every later transaction until the file is reopened,
    /// although the data on disk is intact: so an I/O error drops the
    /// handle, and an operation that meets a handle in that state reopens
    /// it and runs once more. Once space is back, hulld needs no restart.
    fn with_db<T>(&self, mut op: impl FnMut(&Database) -> Result<T>) -> Result<T> {
        let db = self.db()?;
        match op(&db) {
            Err(Error::Poisoned) => {
                drop(db);
                self.forget_db();
                op(&*self.db()?)
            }
            Err(e @ (Error::Io(_) | Error::NoSpace(_))) => {
                self.forget_db();
                Err(e)
            }
            result => result,
        }
    }

    fn forget_db(&self) {
        *self.db.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(crate) fn read<T>(
        &self,
        mut f: impl FnMut(&redb::ReadTransaction) -> Result<T>,
    ) -> Result<T> {
        self.with_db(|db| f(&db.begin_read().map_err(dberr)?))
    }

    pub(crate) fn write<T>(
        &self,
        f: impl FnMut(&redb::WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        self.write_with(redb::Durability::Immediate, f)
    }

    /// A commit that is made durable by the next durable one (one fsync
    /// less). Only for changes whose loss in a crash is harmless.
    pub(crate) fn write_deferred<T>(
        &self,
        f: impl FnMut(&redb::WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        self.write_with(redb::Durability::None, f)
    }

    fn write_with<T>(
        &self,
        durability: redb::Durability,
        mut f: impl FnMut(&redb::WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        self.with_db(|db| {
            let mut tx = db.begin_write().map_err(dberr)?;
            tx.set_durability(durability).map_err(dberr)?;
            let out = f(&tx)?;
            tx.commit().map_err(dberr)?;
            Ok(out)
        })
    }

    /// Every record of `table` in namespace `ns`, with its name.
    pub(crate) fn list_records<V: for<'de> Deserialize<'de>>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        ns: &str,
    ) -> Result<Vec<(String, V)>> {
        self.read(|tx| {
            let t = tx.open_table(table).map_err(dberr)?;
            let (a, b) = range(ns);
            let mut out = Vec::new();
            for entry in t.range(a.as_str()..b.as_str()).map_err(dberr)? {
                let (k, v) = entry.map_err(dberr)?;
                let name = k.value()[ns.len() + 1..].to_string();
                out.push((name, serde_json::from_slice(v.value()).map_err(codec)?));
            }
            Ok(out)
        })
    }

    /// Make every deferred commit durable.
    pub fn flush(&self) -> Result<()> {
        self.write(|_| Ok(()))
    }
}
