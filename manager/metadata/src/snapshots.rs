//! Snapshot records of the snapshotters (hull-snapshots), in the same DB as
//! images and content, so a snapshot and the garbage collector's view of it
//! change in one transaction.
//!
//! Keys are `<namespace>/<snapshotter>/<key>`: neither a namespace nor a
//! snapshotter name contains `/`, so one namespace's snapshots of one
//! snapshotter are a contiguous key range, while snapshot keys themselves
//! may contain `/` (containerd's unpack keys do). Values are JSON
//! [`SnapshotRecord`]s. A counter per snapshotter hands out the ids that
//! name the data directories; ids are never reused, so a directory left by
//! a crash can never be mistaken for a newer snapshot's.
//!
//! Every change is one write transaction that checks before it changes
//! anything; a refused change returns its typed [`SnapshotError`] after
//! committing nothing.

use crate::{check_namespace, codec, dberr, Error, Metadata};
use redb::{ReadableTable, TableDefinition, TableError, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const SNAPSHOT_IDS: TableDefinition<&str, u64> = TableDefinition::new("snapshot_ids");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// Read-only, from a committed parent.
    View,
    /// Writable; becomes Committed by `commit`.
    Active,
    /// Immutable; the only kind that can be a parent.
    Committed,
}

/// Disk use of a snapshot's own data (not its parents').
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotUsage {
    /// Bytes allocated (st_blocks * 512), each inode counted once.
    pub size: u64,
    pub inodes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Names the data directory; unique per snapshotter.
    pub id: u64,
    pub kind: SnapshotKind,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Nanoseconds since the epoch (containerd's API carries nanoseconds).
    pub created: u64,
    pub updated: u64,
    /// Committed snapshots only: measured once at commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<SnapshotUsage>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {key:?} not found in namespace {namespace:?}")]
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
    #[error(transparent)]
    Db(#[from] Error),
}

/// Nanoseconds since the epoch.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::Db(format!(
            "invalid {what} {name:?}: it must be non-empty and contain no '/'"
        )));
    }
    Ok(())
}

/// Both parts of a key prefix must be free of '/', or one namespace's key
/// could alias another's (`a/overlayfs` + `native` vs `a` + `overlayfs`).
fn check_prefix(ns: &str, snapshotter: &str) -> Result<(), Error> {
    check_namespace(ns)?;
    check_name("snapshotter name", snapshotter)
}

fn snapshot_key(ns: &str, snapshotter: &str, key: &str) -> String {
    format!("{ns}/{snapshotter}/{key}")
}

/// "<ns>/<snapshotter>/" up to "<ns>/<snapshotter>0" ('0' follows '/').
fn snapshot_range(ns: &str, snapshotter: &str) -> (String, String) {
    (
        format!("{ns}/{snapshotter}/"),
        format!("{ns}/{snapshotter}0"),
    )
}

fn not_found(ns: &str, key: &str) -> SnapshotError {
    SnapshotError::NotFound {
        namespace: ns.to_string(),
        key: key.to_string(),
    }
}

fn precondition(ns: &str, key: &str, reason: impl Into<String>) -> SnapshotError {
    SnapshotError::FailedPrecondition {
        namespace: ns.to_string(),
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn decode(v: &[u8]) -> Result<SnapshotRecord, Error> {
    serde_json::from_slice(v).map_err(codec)
}

/// The table in a write transaction, and a record in it.
fn get_in(
    t: &redb::Table<&str, &[u8]>,
    ns: &str,
    snapshotter: &str,
    key: &str,
) -> Result<Option<SnapshotRecord>, Error> {
    match t
        .get(snapshot_key(ns, snapshotter, key).as_str())
        .map_err(dberr)?
    {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

fn put_in(
    t: &mut redb::Table<&str, &[u8]>,
    ns: &str,
    snapshotter: &str,
    key: &str,
    record: &SnapshotRecord,
) -> Result<(), Error> {
    let value = serde_json::to_vec(record).map_err(codec)?;
    t.insert(
        snapshot_key(ns, snapshotter, key).as_str(),
        value.as_slice(),
    )
    .map_err(dberr)?;
    Ok(())
}

/// Keys of the snapshots (of this namespace and snapshotter) whose parent
/// is `parent`.
fn children_in(
    t: &redb::Table<&str, &[u8]>,
    ns: &str,
    snapshotter: &str,
    parent: &str,
) -> Result<Vec<String>, Error> {
    let (a, b) = snapshot_range(ns, snapshotter);
    let mut out = Vec::new();
    for entry in t.range(a.as_str()..b.as_str()).map_err(dberr)? {
        let (k, v) = entry.map_err(dberr)?;
        if decode(v.value())?.parent.as_deref() == Some(parent) {
            out.push(k.value()[a.len()..].to_string());
        }
    }
    Ok(out)
}

impl Metadata {
    /// A write transaction whose body may refuse with a typed error. The
    /// body checks before it changes anything, so committing after a
    /// refusal commits nothing.
    fn snapshot_write<T>(
        &self,
        body: impl FnMut(&WriteTransaction) -> Result<Result<T, SnapshotError>, Error>,
    ) -> Result<T, SnapshotError> {
        self.write(body)?
    }

    /// Run `f` over the snapshot table in a read transaction (None when no
    /// snapshot was ever written: the table does not exist yet).
    fn snapshot_read<T>(
        &self,
        mut f: impl FnMut(Option<&redb::ReadOnlyTable<&str, &[u8]>>) -> Result<T, SnapshotError>,
    ) -> Result<T, SnapshotError> {
        // The outer result is the database's (retried after an I/O error),
        // the inner one the snapshot operation's.
        self.read(|tx| {
            Ok(match tx.open_table(SNAPSHOTS) {
                Ok(t) => f(Some(&t)),
                Err(TableError::TableDoesNotExist(_)) => f(None),
                Err(e) => Err(dberr(e).into()),
            })
        })?
    }

    /// A new data-directory id for `snapshotter` (never handed out before).
    pub fn next_snapshot_id(&self, snapshotter: &str) -> Result<u64, SnapshotError> {
        check_name("snapshotter name", snapshotter)?;
        self.snapshot_write(|tx| {
            let mut t = tx.open_table(SNAPSHOT_IDS).map_err(dberr)?;
            let next = t
                .get(snapshotter)
                .map_err(dberr)?
                .map(|v| v.value())
                .unwrap_or(0)
                + 1;
            t.insert(snapshotter, next).map_err(dberr)?;
            Ok(Ok(next))
        })
    }

    pub fn snapshot(
        &self,
        ns: &str,
        snapshotter: &str,
        key: &str,
    ) -> Result<SnapshotRecord, SnapshotError> {
        check_prefix(ns, snapshotter)?;
        self.snapshot_read(|t| {
            let Some(t) = t else {
                return Err(not_found(ns, key));
            };
            match t
                .get(snapshot_key(ns, snapshotter, key).as_str())
                .map_err(dberr)?
            {
                Some(v) => Ok(decode(v.value())?),
                None => Err(not_found(ns, key)),
            }
        })
    }

    /// Every snapshot of `snapshotter` in `ns`, by key.
    pub fn snapshots(
        &self,
        ns: &str,
        snapshotter: &str,
    ) -> Result<Vec<(String, SnapshotRecord)>, SnapshotError> {
        check_prefix(ns, snapshotter)?;
        self.snapshot_read(|t| {
            let Some(t) = t else { return Ok(Vec::new()) };
            let (a, b) = snapshot_range(ns, snapshotter);
            let mut out = Vec::new();
            for entry in t.range(a.as_str()..b.as_str()).map_err(dberr)? {
                let (k, v) = entry.map_err(dberr)?;
                out.push((k.value()[a.len()..].to_string(), decode(v.value())?));
            }
            Ok(out)
        })
    }

    /// Every snapshot in `ns` of any snapshotter, as (snapshotter, key,
    /// record): what the garbage collector walks.
    pub fn namespace_snapshots(
        &self,
        ns: &str,
    ) -> Result<Vec<(String, String, SnapshotRecord)>, SnapshotError> {
        check_namespace(ns)?;
        self.snapshot_read(|t| {
            let Some(t) = t else { return Ok(Vec::new()) };
            let (a, b) = (format!("{ns}/"), format!("{ns}0"));
            let mut out = Vec::new();
            for entry in t.range(a.as_str()..b.as_str()).map_err(dberr)? {
                let (k, v) = entry.map_err(dberr)?;
                let rest = &k.value()[a.len()..];
                if let Some((snapshotter, key)) = rest.split_once('/') {
                    out.push((snapshotter.to_string(), key.to_string(), decode(v.value())?));
                }
            }
            Ok(out)
        })
    }

    /// The parents of `key`, nearest first, as (key, record).
    pub fn snapshot_parent_chain(
        &self,
        ns: &str,
        snapshotter: &str,
        key: &str,
    ) -> Result<Vec<(String, SnapshotRecord)>, SnapshotError> {
        check_prefix(ns, snapshotter)?;
        self.snapshot_read(|t| {
            let Some(t) = t else {
                return Err(not_found(ns, key));
            };
            let get = |k: &str| -> Result<Option<SnapshotRecord>, SnapshotError> {
                match t
                    .get(snapshot_key(ns, snapshotter, k).as_str())
                    .map_err(dberr)?
                {
                    Some(v) => Ok(Some(decode(v.value())?)),
                    None => Ok(None),
                }
            };
            let mut next = get(key)?.ok_or_else(|| not_found(ns, key))?.parent;
            let mut chain: Vec<(String, SnapshotRecord)> = Vec::new();
            while let Some(p) = next {
                // A parent is Committed and cannot be removed while it has
                // children, so a missing one or a cycle is a damaged DB.
                if chain.iter().any(|(k, _)| *k == p) {
                    return Err(Error::Db(format!("snapshot parent cycle at {p:?}")).into());
                }
                let r = get(&p)?.ok_or_else(|| {
                    precondition(ns, key, format!("its ancestor {p:?} is missing"))
                })?;
                next = r.parent.clone();
                chain.push((p, r));
            }
            Ok(chain)
        })
    }

    /// The ids of every record of `snapshotter` in every namespace: the
    /// data directories that must be kept.
    pub fn snapshot_ids(&self, snapshotter: &str) -> Result<BTreeSet<u64>, SnapshotError> {
        self.snapshot_read(|t| {
            let Some(t) = t else {
                return Ok(BTreeSet::new());
            };
            let mut ids = BTreeSet::new();
            for entry in t.iter().map_err(dberr)? {
                let (k, v) = entry.map_err(dberr)?;
                let mut parts = k.value().splitn(3, '/');
                if parts.nth(1) == Some(snapshotter) {
                    ids.insert(decode(v.value())?.id);
                }
            }
            Ok(ids)
        })
    }

    /// Record a new Active or View snapshot whose data directory (named by
    /// `record.id`) is already in place. The key must be free and the
    /// parent, if any, Committed.
    pub fn create_snapshot(
        &self,
        ns: &str,
        snapshotter: &str,
        key: &str,
        record: &SnapshotRecord,
    ) -> Result<(), SnapshotError> {
        check_prefix(ns, snapshotter)?;
        self.snapshot_write(|tx| {
            self.require_namespace(tx, ns)?;
            let mut t = tx.open_table(SNAPSHOTS).map_err(dberr)?;
            if get_in(&t, ns, snapshotter, key)?.is_some() {
                return Ok(Err(SnapshotError::AlreadyExists {
                    namespace: ns.to_string(),
                    key: key.to_string(),
                }));
            }
            if let Some(p) = &record.parent {
                match get_in(&t, ns, snapshotter, p)? {
                    Some(r) if r.kind == SnapshotKind::Committed => {}
                    Some(r) => {
                        return Ok(Err(precondition(
                            ns,
                            key,
                            format!(
                                "parent {p:?} is {:?}, not committed: commit it first",
                                r.kind
                            ),
                        )))
                    }
                    None => {
                        return Ok(Err(precondition(
                            ns,
                            key,
                            format!("parent {p:?} does not exist"),
                        )))
                    }
                }
            }
            put_in(&mut t, ns, snapshotter, key, record)?;
            Ok(Ok(()))
        })
    }

    /// Turn Active `key` into Committed `name` (same id, parent and data;
    /// `key` is gone). Returns the new record.
    pub fn commit_snapshot(
        &self,
        ns: &str,
        snapshotter: &str,
        key: &str,
        name: &str,
        labels: BTreeMap<String, String>,
        usage: SnapshotUsage,
    ) -> Result<SnapshotRecord, SnapshotError> {
        check_prefix(ns, snapshotter)?;
        self.snapshot_write(|tx| {
            let mut t = tx.open_table(SNAPSHOTS).map_err(dberr)?;
            let Some(active) = get_in(&t, ns, snapshotter, key)? else {
                return Ok(Err(not_found(ns, key)));
            };
            if active.kind != SnapshotKind::Active {
                return Ok(Err(precondition(
                    ns,
                    key,
                    format!(
                        "it is {:?}: only an active snapshot can be committed",
                        active.kind
                    ),
                )));
            }
            if get_in(&t, ns, snapshotter, name)?.is_some() {
                return Ok(Err(SnapshotError::AlreadyExists {
                    namespace: ns.to_string(),
                    key: name.to_string(),
                }));
            }
            let now = now_nanos();
            let committed = SnapshotRecord {
                kind: SnapshotKind::Committed,
                labels: labels.clone(),
                created: now,
                updated: now,
                usage: Some(usage),
                ..active
            };
            t.remove(snapshot_key(ns, snapshotter, key).as_str())
                .map_err(dberr)?;
            put_in(&mut t, ns, snapshotter, name, &committed)?;
            Ok(Ok(committed))
        })
    }

    /// Drop the record of `key`, refused while it has children. Returns the
    /// record (its id names the directory the caller then removes).
    pub fn remove_snapshot(
        &self,
        ns: &str,
        snapshotter: &str,
        key: &str,
    ) -> Result<SnapshotRecord, SnapshotError> {
        check_prefix(ns, snapshotter)?;
        self.snapshot_write(|tx| {
            let mut t = tx.open_table(SNAPSHOTS).map_err(dberr)?;
            let Some(record) = get_in(&t, ns, snapshotter, key)? else {
                return Ok(Err(not_found(ns, key)));
            };
            let children = children_in(&t, ns, snapshotter, key)?;
            if !children.is_empty() {
                return Ok(Err(precondition(
                    ns,
                    key,
                    format!(
                        "cannot remove snapshot {key:?}: it has children ({}); remove them first",
                        children.join(", ")
                    ),
                )));
            }
            t.remove(snapshot_key(ns, snapshotter, key).as_str())
                .map_err(dberr)?;
            Ok(Ok(record))
        })
    }

    /// Change `key`'s record with `change` (the caller changes labels only)
    /// and stamp `updated`. Returns the new record.
    pub fn update_snapshot(
        &self,
        ns: &str,
        snapshotter: &str,
        key: &str,
        change: impl Fn(&mut SnapshotRecord),
    ) -> Result<SnapshotRecord, SnapshotError> {
        check_prefix(ns, snapshotter)?;
        self.snapshot_write(|tx| {
            let mut t = tx.open_table(SNAPSHOTS).map_err(dberr)?;
            let Some(mut record) = get_in(&t, ns, snapshotter, key)? else {
                return Ok(Err(not_found(ns, key)));
            };
            change(&mut record);
            record.updated = now_nanos();
            put_in(&mut t, ns, snapshotter, key, &record)?;
            Ok(Ok(record))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDb(std::path::PathBuf, Metadata);

    fn db(name: &str) -> TempDb {
        let dir =
            std::env::temp_dir().join(format!("hull-meta-snap-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let m = Metadata::open(&dir.join("meta.db")).unwrap();
        m.create_namespace("ns").unwrap();
        TempDb(dir, m)
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn record(id: u64, kind: SnapshotKind, parent: Option<&str>) -> SnapshotRecord {
        SnapshotRecord {
            id,
            kind,
            parent: parent.map(str::to_string),
            labels: BTreeMap::new(),
            created: 1,
            updated: 1,
            usage: None,
        }
    }

    #[test]
    fn an_unused_db_reads_as_empty_and_ids_count_per_snapshotter() {
        let t = db("empty");
        let m = &t.1;
        assert!(m.snapshots("ns", "overlayfs").unwrap().is_empty());
        assert!(m.snapshot_ids("overlayfs").unwrap().is_empty());
        assert!(matches!(
            m.snapshot("ns", "overlayfs", "k"),
            Err(SnapshotError::NotFound { .. })
        ));
        assert_eq!(m.next_snapshot_id("overlayfs").unwrap(), 1);
        assert_eq!(m.next_snapshot_id("overlayfs").unwrap(), 2);
        assert_eq!(m.next_snapshot_id("native").unwrap(), 1);
        assert!(m.next_snapshot_id("a/b").is_err());
    }

    #[test]
    fn refusals_change_nothing() {
        let t = db("refusals");
        let m = &t.1;
        let ov = "overlayfs";
        m.create_snapshot("ns", ov, "a", &record(1, SnapshotKind::Active, None))
            .unwrap();
        let e = m
            .create_snapshot("ns", ov, "a", &record(2, SnapshotKind::View, None))
            .unwrap_err();
        assert!(matches!(e, SnapshotError::AlreadyExists { .. }), "{e}");
        let e = m
            .create_snapshot("ns", ov, "b", &record(2, SnapshotKind::Active, Some("a")))
            .unwrap_err();
        assert!(matches!(e, SnapshotError::FailedPrecondition { .. }), "{e}");
        let e = m
            .create_snapshot("nope", ov, "b", &record(2, SnapshotKind::Active, None))
            .unwrap_err();
        assert!(matches!(e, SnapshotError::Db(Error::NoNamespace(_))), "{e}");
        let usage = SnapshotUsage {
            size: 4096,
            inodes: 1,
        };
        let c = m
            .commit_snapshot("ns", ov, "a", "A", BTreeMap::new(), usage)
            .unwrap();
        assert_eq!(
            (c.id, c.kind, c.usage),
            (1, SnapshotKind::Committed, Some(usage))
        );
        m.create_snapshot("ns", ov, "b", &record(2, SnapshotKind::Active, Some("A")))
            .unwrap();
        let e = m.remove_snapshot("ns", ov, "A").unwrap_err();
        assert!(e.to_string().contains("it has children (b)"), "{e}");
        assert_eq!(m.snapshots("ns", ov).unwrap().len(), 2);
        assert_eq!(
            m.snapshot_ids(ov).unwrap().into_iter().collect::<Vec<_>>(),
            vec![1, 2]
        );
        let chain = m.snapshot_parent_chain("ns", ov, "b").unwrap();
        assert_eq!(chain.len(), 1);
        assert_eq!(chain[0].0, "A");
        // "ns/overlayfs" + "native" + "b" must not alias "ns" + "overlayfs" + "native/b".
        let e = m
            .remove_snapshot("ns/overlayfs", "native", "b")
            .unwrap_err();
        assert!(
            matches!(e, SnapshotError::Db(Error::InvalidNamespace(_))),
            "{e}"
        );
        assert!(m.snapshot("ns", "over/lay", "b").is_err());
        m.remove_snapshot("ns", ov, "b").unwrap();
        m.remove_snapshot("ns", ov, "A").unwrap();
        assert!(m.snapshots("ns", ov).unwrap().is_empty());
    }

    #[test]
    fn records_are_json_with_the_documented_fields() {
        let mut r = record(7, SnapshotKind::Committed, Some("p"));
        r.usage = Some(SnapshotUsage { size: 1, inodes: 2 });
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["kind"], "committed");
        assert_eq!(v["id"], 7);
        assert_eq!(v["usage"]["inodes"], 2);
        let active = serde_json::to_value(record(1, SnapshotKind::Active, None)).unwrap();
        assert!(active.get("usage").is_none());
    }
}
