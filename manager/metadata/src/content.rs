//! Which content each namespace references, with containerd's per-namespace
//! labels (`containerd.io/gc.ref.*` among them, which the collector
//! follows). The blobs themselves live in the content store; a blob no
//! namespace references is garbage.

use crate::{dberr, get, key, not_found, now, put, Metadata, Result, CONTENT};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentRecord {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Seconds since the epoch (0 in records from before labels existed).
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub updated: u64,
}

impl ContentRecord {
    fn new(labels: BTreeMap<String, String>) -> ContentRecord {
        let t = now();
        ContentRecord {
            labels,
            created: t,
            updated: t,
        }
    }
}

pub(crate) fn insert_content(
    tx: &redb::WriteTransaction,
    ns: &str,
    digest: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<()> {
    let mut t = tx.open_table(CONTENT).map_err(dberr)?;
    let k = key(ns, digest);
    let record = match get::<ContentRecord>(&t, &k)? {
        // Committed again: keep the record, merge labels given now.
        Some(mut r) => {
            if let Some(labels) = labels {
                r.labels.extend(labels.clone());
                r.updated = now();
            }
            r
        }
        None => ContentRecord::new(labels.cloned().unwrap_or_default()),
    };
    put(&mut t, &k, &record)
}

impl Metadata {
    /// Record that `ns` has (committed) content `digest`.
    pub fn add_content(&self, ns: &str, digest: &str) -> Result<()> {
        self.add_content_with(ns, digest, None)
    }

    /// [`Metadata::add_content`] with labels merged into the record.
    pub fn add_content_with(
        &self,
        ns: &str,
        digest: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Result<()> {
        self.write(|tx| {
            self.require_namespace(tx, ns)?;
            insert_content(tx, ns, digest, labels)
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
        Ok(self
            .content_records(ns)?
            .into_iter()
            .map(|(d, _)| d)
            .collect())
    }

    pub fn content_records(&self, ns: &str) -> Result<Vec<(String, ContentRecord)>> {
        self.list_records(CONTENT, ns)
    }

    pub fn content_record(&self, ns: &str, digest: &str) -> Result<ContentRecord> {
        self.read(|tx| {
            let t = tx.open_table(CONTENT).map_err(dberr)?;
            let v = t
                .get(key(ns, digest).as_str())
                .map_err(dberr)?
                .ok_or_else(|| not_found("content", ns, digest))?;
            serde_json::from_slice(v.value()).map_err(crate::codec)
        })
    }

    /// Change a record's labels (containerd's Content.Update).
    pub fn update_content(
        &self,
        ns: &str,
        digest: &str,
        labels: &BTreeMap<String, String>,
        paths: &[String],
    ) -> Result<ContentRecord> {
        self.write(|tx| {
            let mut t = tx.open_table(CONTENT).map_err(dberr)?;
            let k = key(ns, digest);
            let mut r: ContentRecord =
                get(&t, &k)?.ok_or_else(|| not_found("content", ns, digest))?;
            r.labels = crate::merge_labels(&r.labels, labels, paths)?;
            r.updated = now();
            put(&mut t, &k, &r)?;
            Ok(r)
        })
    }

    /// A pulled blob is in the store: make it content of `ns`, protected by
    /// `lease`, in one commit without an fsync of its own. The image record
    /// written at the end of the pull makes it durable; if a crash loses it
    /// first, the blob stays in the store and the next pull records it again.
    /// `labels` are merged into the record (a pull's distribution source).
    pub fn record_fetched(
        &self,
        ns: &str,
        lease: &str,
        digest: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Result<()> {
        self.write_deferred(|tx| {
            self.require_namespace(tx, ns)?;
            insert_content(tx, ns, digest, labels)?;
            crate::leases::add_resource(tx, ns, lease, &crate::LeaseResource::content(digest))
        })
    }
}
