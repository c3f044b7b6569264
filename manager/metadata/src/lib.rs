//! hull-metadata: what the manager records about content, in one embedded
//! transactional database (redb): namespaces, images (name → target
//! descriptor), which content each namespace references, and leases that
//! protect content while it is being used. Every change is one transaction,
//! so a crash leaves the previous or the next state, never half of one.
//!
//! Keys are `<namespace>/<name>`: namespace names cannot contain `/`, so a
//! namespace's entries are one contiguous key range.

mod snapshots;

pub use snapshots::{now_nanos, SnapshotError, SnapshotKind, SnapshotRecord, SnapshotUsage};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const NAMESPACES: TableDefinition<&str, &[u8]> = TableDefinition::new("namespaces");
const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
const CONTENT: TableDefinition<&str, &[u8]> = TableDefinition::new("content");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "invalid namespace {0:?}: use letters, digits, '.', '_' and '-' (e.g. default, k8s.io)"
    )]
    InvalidNamespace(String),
    #[error("namespace {0:?} does not exist: create it with `hullctl namespaces create {0}`")]
    NoNamespace(String),
    #[error("namespace {0:?} is not empty: remove its images and leases first")]
    NamespaceNotEmpty(String),
    #[error("{kind} {name:?} not found in namespace {namespace:?}")]
    NotFound {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("metadata database: {0}")]
    Db(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn not_found(kind: &'static str, ns: &str, name: &str) -> Error {
    Error::NotFound {
        kind,
        namespace: ns.to_string(),
        name: name.to_string(),
    }
}

fn dberr<E: std::fmt::Display>(e: E) -> Error {
    Error::Db(e.to_string())
}

/// What an image name points at (an OCI descriptor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub name: String,
    pub target: Descriptor,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub created: u64,
    pub updated: u64,
}

/// Content kept alive while a pull or unpack is in progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    #[serde(default)]
    pub resources: BTreeSet<String>,
    /// Seconds since the epoch after which the lease no longer protects
    /// anything (0: never). A pull's lease expires, so one left behind by a
    /// killed daemon cannot pin content forever.
    #[serde(default)]
    pub expires: u64,
}

impl Lease {
    pub fn live(&self, now: u64) -> bool {
        self.expires == 0 || self.expires > now
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn check_namespace(ns: &str) -> Result<()> {
    let ok = !ns.is_empty()
        && ns.len() <= 76
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidNamespace(ns.to_string()))
    }
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// The key range of one namespace: "<ns>/" up to "<ns>0" ('0' follows '/').
fn range(ns: &str) -> (String, String) {
    (format!("{ns}/"), format!("{ns}0"))
}

fn add_resource(tx: &redb::WriteTransaction, ns: &str, id: &str, digest: &str) -> Result<()> {
    let mut t = tx.open_table(LEASES).map_err(dberr)?;
    let k = key(ns, id);
    let mut lease: Lease = match t.get(k.as_str()).map_err(dberr)? {
        Some(v) => serde_json::from_slice(v.value()).map_err(dberr)?,
        None => return Err(not_found("lease", ns, id)),
    };
    lease.resources.insert(digest.to_string());
    let value = serde_json::to_vec(&lease).map_err(dberr)?;
    t.insert(k.as_str(), value.as_slice()).map_err(dberr)?;
    Ok(())
}

fn remove_lease(tx: &redb::WriteTransaction, ns: &str, id: &str) -> Result<()> {
    let removed = tx
        .open_table(LEASES)
        .map_err(dberr)?
        .remove(key(ns, id).as_str())
        .map_err(dberr)?
        .is_some();
    if !removed {
        return Err(not_found("lease", ns, id));
    }
    Ok(())
}

pub struct Metadata {
    db: Database,
}

impl Metadata {
    pub fn open(path: &Path) -> Result<Metadata> {
        let db = Database::create(path).map_err(dberr)?;
        let tx = db.begin_write().map_err(dberr)?;
        for t in [NAMESPACES, IMAGES, CONTENT, LEASES] {
            tx.open_table(t).map_err(dberr)?;
        }
        tx.commit().map_err(dberr)?;
        Ok(Metadata { db })
    }

    fn write<T>(&self, f: impl FnOnce(&redb::WriteTransaction) -> Result<T>) -> Result<T> {
        self.write_with(redb::Durability::Immediate, f)
    }

    /// A commit that is made durable by the next durable one (one fsync
    /// less). Only for changes whose loss in a crash is harmless.
    fn write_deferred<T>(&self, f: impl FnOnce(&redb::WriteTransaction) -> Result<T>) -> Result<T> {
        self.write_with(redb::Durability::None, f)
    }

    fn write_with<T>(
        &self,
        durability: redb::Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        let mut tx = self.db.begin_write().map_err(dberr)?;
        tx.set_durability(durability).map_err(dberr)?;
        let out = f(&tx)?;
        tx.commit().map_err(dberr)?;
        Ok(out)
    }

    fn list_values<V: for<'de> Deserialize<'de>>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        ns: &str,
    ) -> Result<Vec<V>> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(table).map_err(dberr)?;
        let (a, b) = range(ns);
        let mut out = Vec::new();
        for entry in t.range(a.as_str()..b.as_str()).map_err(dberr)? {
            let (_, v) = entry.map_err(dberr)?;
            out.push(serde_json::from_slice(v.value()).map_err(dberr)?);
        }
        Ok(out)
    }

    pub fn create_namespace(&self, ns: &str) -> Result<()> {
        check_namespace(ns)?;
        if self.namespaces()?.iter().any(|n| n == ns) {
            return Ok(());
        }
        self.write(|tx| {
            tx.open_table(NAMESPACES)
                .map_err(dberr)?
                .insert(ns, b"{}".as_slice())
                .map_err(dberr)?;
            Ok(())
        })
    }

    pub fn namespaces(&self) -> Result<Vec<String>> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(NAMESPACES).map_err(dberr)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(dberr)? {
            out.push(entry.map_err(dberr)?.0.value().to_string());
        }
        Ok(out)
    }

    /// Remove a namespace without images or leases. Its content references
    /// go with it; returns the digests no other namespace references (the
    /// caller removes those blobs).
    pub fn delete_namespace(&self, ns: &str) -> Result<Vec<String>> {
        check_namespace(ns)?;
        if !self.images(ns)?.is_empty() || !self.leases(ns)?.is_empty() {
            return Err(Error::NamespaceNotEmpty(ns.to_string()));
        }
        let mine = self.content(ns)?;
        let others: Vec<String> = self.namespaces()?.into_iter().filter(|o| o != ns).collect();
        self.write(|tx| {
            let removed = tx
                .open_table(NAMESPACES)
                .map_err(dberr)?
                .remove(ns)
                .map_err(dberr)?
                .is_some();
            if !removed {
                return Err(Error::NoNamespace(ns.to_string()));
            }
            let mut content = tx.open_table(CONTENT).map_err(dberr)?;
            let mut freed = Vec::new();
            for digest in mine {
                content.remove(key(ns, &digest).as_str()).map_err(dberr)?;
                let mut shared = false;
                for o in &others {
                    shared |= content
                        .get(key(o, &digest).as_str())
                        .map_err(dberr)?
                        .is_some();
                }
                if !shared {
                    freed.push(digest);
                }
            }
            Ok(freed)
        })
    }

    fn require_namespace(&self, tx: &redb::WriteTransaction, ns: &str) -> Result<()> {
        check_namespace(ns)?;
        let t = tx.open_table(NAMESPACES).map_err(dberr)?;
        if t.get(ns).map_err(dberr)?.is_none() {
            return Err(Error::NoNamespace(ns.to_string()));
        }
        Ok(())
    }

    /// Create or update an image; its target content becomes referenced by
    /// the namespace in the same transaction.
    pub fn put_image(&self, ns: &str, image: &Image) -> Result<()> {
        self.write(|tx| {
            self.require_namespace(tx, ns)?;
            let value = serde_json::to_vec(image).map_err(dberr)?;
            tx.open_table(IMAGES)
                .map_err(dberr)?
                .insert(key(ns, &image.name).as_str(), value.as_slice())
                .map_err(dberr)?;
            tx.open_table(CONTENT)
                .map_err(dberr)?
                .insert(key(ns, &image.target.digest).as_str(), b"{}".as_slice())
                .map_err(dberr)?;
            Ok(())
        })
    }

    pub fn image(&self, ns: &str, name: &str) -> Result<Image> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(IMAGES).map_err(dberr)?;
        let v = t
            .get(key(ns, name).as_str())
            .map_err(dberr)?
            .ok_or_else(|| not_found("image", ns, name))?;
        serde_json::from_slice(v.value()).map_err(dberr)
    }

    pub fn images(&self, ns: &str) -> Result<Vec<Image>> {
        self.list_values(IMAGES, ns)
    }

    pub fn delete_image(&self, ns: &str, name: &str) -> Result<()> {
        self.write(|tx| {
            let removed = tx
                .open_table(IMAGES)
                .map_err(dberr)?
                .remove(key(ns, name).as_str())
                .map_err(dberr)?
                .is_some();
            if !removed {
                return Err(not_found("image", ns, name));
            }
            Ok(())
        })
    }

    /// Record that `ns` has (committed) content `digest`.
    pub fn add_content(&self, ns: &str, digest: &str) -> Result<()> {
        self.write(|tx| {
            self.require_namespace(tx, ns)?;
            tx.open_table(CONTENT)
                .map_err(dberr)?
                .insert(key(ns, digest).as_str(), b"{}".as_slice())
                .map_err(dberr)?;
            Ok(())
        })
    }

    /// Drop `ns`'s reference to `digest`. Returns whether another namespace
    /// still references it (if not, the caller removes the blob).
    pub fn remove_content(&self, ns: &str, digest: &str) -> Result<bool> {
        let namespaces = self.namespaces()?;
        self.write(|tx| {
            let mut t = tx.open_table(CONTENT).map_err(dberr)?;
            let removed = t.remove(key(ns, digest).as_str()).map_err(dberr)?.is_some();
            if !removed {
                return Err(not_found("content", ns, digest));
            }
            for other in namespaces.iter().filter(|o| o.as_str() != ns) {
                if t.get(key(other, digest).as_str()).map_err(dberr)?.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Content digests visible in `ns`.
    pub fn content(&self, ns: &str) -> Result<Vec<String>> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(CONTENT).map_err(dberr)?;
        let (a, b) = range(ns);
        let mut out = Vec::new();
        for entry in t.range(a.as_str()..b.as_str()).map_err(dberr)? {
            let (k, _) = entry.map_err(dberr)?;
            out.push(k.value()[ns.len() + 1..].to_string());
        }
        Ok(out)
    }

    pub fn put_lease(&self, ns: &str, lease: &Lease) -> Result<()> {
        self.write(|tx| self.insert_lease(tx, ns, lease))
    }

    /// [`Metadata::put_lease`] without its own fsync, for a pull's expiring
    /// lease: lost in a crash, it would have protected nothing yet.
    pub fn put_lease_deferred(&self, ns: &str, lease: &Lease) -> Result<()> {
        self.write_deferred(|tx| self.insert_lease(tx, ns, lease))
    }

    /// A pulled blob is in the store: make it content of `ns`, protected by
    /// `lease`, in one commit without an fsync of its own. The image record
    /// written at the end of the pull makes it durable; if a crash loses it
    /// first, the blob stays in the store and the next pull records it again.
    pub fn record_fetched(&self, ns: &str, lease: &str, digest: &str) -> Result<()> {
        self.write_deferred(|tx| {
            self.require_namespace(tx, ns)?;
            tx.open_table(CONTENT)
                .map_err(dberr)?
                .insert(key(ns, digest).as_str(), b"{}".as_slice())
                .map_err(dberr)?;
            add_resource(tx, ns, lease, digest)
        })
    }

    /// Make every deferred commit durable.
    pub fn flush(&self) -> Result<()> {
        self.write(|_| Ok(()))
    }

    fn insert_lease(&self, tx: &redb::WriteTransaction, ns: &str, lease: &Lease) -> Result<()> {
        self.require_namespace(tx, ns)?;
        let value = serde_json::to_vec(lease).map_err(dberr)?;
        tx.open_table(LEASES)
            .map_err(dberr)?
            .insert(key(ns, &lease.id).as_str(), value.as_slice())
            .map_err(dberr)?;
        Ok(())
    }

    /// Add `digest` to lease `id` (one transaction, so concurrent additions
    /// are not lost).
    pub fn add_lease_resource(&self, ns: &str, id: &str, digest: &str) -> Result<()> {
        self.write(|tx| add_resource(tx, ns, id, digest))
    }

    pub fn leases(&self, ns: &str) -> Result<Vec<Lease>> {
        self.list_values(LEASES, ns)
    }

    pub fn delete_lease(&self, ns: &str, id: &str) -> Result<()> {
        self.write(|tx| remove_lease(tx, ns, id))
    }

    /// [`Metadata::delete_lease`] without its own fsync, for a finished
    /// pull: lost in a crash, the lease just lives until it expires.
    pub fn delete_lease_deferred(&self, ns: &str, id: &str) -> Result<()> {
        self.write_deferred(|tx| remove_lease(tx, ns, id))
    }

    /// Mark and sweep: content reachable from an image target or a live
    /// lease (following `children`, e.g. manifest → config and layers)
    /// stays; the rest is dropped from each namespace, and so are expired
    /// leases. Returns the digests no namespace references any more: the
    /// caller deletes them from the content store.
    pub fn gc(&self, children: impl Fn(&str) -> Vec<String>) -> Result<Vec<String>> {
        let namespaces = self.namespaces()?;
        let now = now();
        self.write(|tx| {
            let mut leases = tx.open_table(LEASES).map_err(dberr)?;
            let mut expired = Vec::new();
            for entry in leases.iter().map_err(dberr)? {
                let (k, v) = entry.map_err(dberr)?;
                let lease: Lease = serde_json::from_slice(v.value()).map_err(dberr)?;
                if !lease.live(now) {
                    expired.push(k.value().to_string());
                }
            }
            for k in expired {
                leases.remove(k.as_str()).map_err(dberr)?;
            }
            Ok(())
        })?;
        let mut keep_anywhere = BTreeSet::new();
        let mut unreferenced = BTreeSet::new();
        self.write(|tx| {
            let mut content = tx.open_table(CONTENT).map_err(dberr)?;
            for ns in &namespaces {
                let mut roots: Vec<String> = self
                    .images(ns)?
                    .into_iter()
                    .map(|i| i.target.digest)
                    .collect();
                roots.extend(self.leases(ns)?.into_iter().flat_map(|l| l.resources));
                let mut marked = BTreeSet::new();
                while let Some(d) = roots.pop() {
                    if marked.insert(d.clone()) {
                        roots.extend(children(&d));
                    }
                }
                let (a, b) = range(ns);
                let mut drop = Vec::new();
                for entry in content.range(a.as_str()..b.as_str()).map_err(dberr)? {
                    let (k, _) = entry.map_err(dberr)?;
                    let digest = k.value()[ns.len() + 1..].to_string();
                    if !marked.contains(&digest) {
                        drop.push(digest);
                    }
                }
                for d in drop {
                    content.remove(key(ns, &d).as_str()).map_err(dberr)?;
                    unreferenced.insert(d);
                }
                keep_anywhere.extend(marked);
            }
            Ok(())
        })?;
        Ok(unreferenced.difference(&keep_anywhere).cloned().collect())
    }
}
