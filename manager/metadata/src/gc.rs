//! Mark and sweep over namespaces, as containerd collects: what images,
//! live leases and `containerd.io/gc.root`-labelled content reach stays,
//! following manifests (the caller parses them) and containerd's reference
//! labels; the rest is dropped from its namespace.

use crate::{
    codec, dberr, key, range, ContentRecord, Error, Lease, Metadata, Result, CONTENT, LEASES,
};
use redb::ReadableTable;
use std::collections::{BTreeMap, BTreeSet};

/// A label whose value is a digest this content keeps alive (the key is
/// this, or this followed by `.` and anything).
pub const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";
/// Prefix of labels (`…snapshot.<snapshotter>[/…]`) naming a snapshot key.
pub const GC_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.";
/// Anything carrying this label is a root.
pub const GC_ROOT: &str = "containerd.io/gc.root";
/// On a lease: when it stops protecting (RFC 3339).
pub const GC_EXPIRE: &str = "containerd.io/gc.expire";

/// The digests `labels` reference through `containerd.io/gc.ref.content*`.
pub fn content_refs(labels: &BTreeMap<String, String>) -> impl Iterator<Item = &String> {
    labels.iter().filter_map(|(k, v)| {
        let rest = k.strip_prefix(GC_REF_CONTENT)?;
        (rest.is_empty() || rest.starts_with('.')).then_some(v)
    })
}

/// `(snapshotter, key)` pairs `labels` reference.
pub fn snapshot_refs(labels: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, &String)> {
    labels.iter().filter_map(|(k, v)| {
        let rest = k.strip_prefix(GC_REF_SNAPSHOT)?;
        let snapshotter = rest.split('/').next().filter(|s| !s.is_empty())?;
        Some((snapshotter, v))
    })
}

impl Metadata {
    fn drop_expired_leases(&self) -> Result<()> {
        let now = crate::now();
        self.write(|tx| {
            let mut leases = tx.open_table(LEASES).map_err(dberr)?;
            let mut expired = Vec::new();
            for entry in leases.iter().map_err(dberr)? {
                let (k, v) = entry.map_err(dberr)?;
                let lease: Lease = serde_json::from_slice(v.value()).map_err(codec)?;
                if !lease.live(now) {
                    expired.push(k.value().to_string());
                }
            }
            for k in expired {
                leases.remove(k.as_str()).map_err(dberr)?;
            }
            Ok(())
        })
    }

    /// Mark and sweep: content reachable from an image target, a live lease
    /// or a `containerd.io/gc.root` label (following `children`, e.g.
    /// manifest → config and layers, and `containerd.io/gc.ref.content*`
    /// labels) stays; the rest is dropped from each namespace, and so are
    /// expired leases. Returns the digests no namespace references any
    /// more: the caller deletes them from the content store.
    ///
    /// `children(digest, media_type)` lists what a blob references, with
    /// media types ("" where unknown, as for lease resources). If it fails
    /// for any blob, nothing is swept: what that blob references cannot be
    /// told from garbage.
    pub fn gc(
        &self,
        children: impl Fn(&str, &str) -> Result<Vec<(String, String)>, String>,
    ) -> Result<Vec<String>> {
        self.drop_expired_leases()?;
        let namespaces = self.namespaces()?;
        // In one write transaction, so no pull records content between
        // the mark and the sweep.
        let (unreferenced, keep_anywhere) = self.write(|tx| {
            let mut keep_anywhere = BTreeSet::new();
            let mut unreferenced = BTreeSet::new();
            // Mark everything first, so a failure sweeps nothing.
            let mut marked_in = BTreeMap::new();
            for ns in &namespaces {
                marked_in.insert(ns.clone(), self.mark(ns, &children)?);
            }
            let mut content = tx.open_table(CONTENT).map_err(dberr)?;
            for (ns, marked) in marked_in {
                let (a, b) = range(&ns);
                let mut drop = Vec::new();
                for entry in content.range(a.as_str()..b.as_str()).map_err(dberr)? {
                    let (k, _) = entry.map_err(dberr)?;
                    let digest = k.value()[ns.len() + 1..].to_string();
                    if !marked.contains(&digest) {
                        drop.push(digest);
                    }
                }
                for d in drop {
                    content.remove(key(&ns, &d).as_str()).map_err(dberr)?;
                    unreferenced.insert(d);
                }
                keep_anywhere.extend(marked);
            }
            Ok((unreferenced, keep_anywhere))
        })?;
        Ok(unreferenced.difference(&keep_anywhere).cloned().collect())
    }

    /// The content of `ns` that is reachable from its roots.
    fn mark(
        &self,
        ns: &str,
        children: &impl Fn(&str, &str) -> Result<Vec<(String, String)>, String>,
    ) -> Result<BTreeSet<String>> {
        let records: BTreeMap<String, ContentRecord> =
            self.content_records(ns)?.into_iter().collect();
        // Stack order: typed roots (images) are popped before untyped ones
        // (lease resources, labelled roots).
        let mut roots: Vec<(String, String)> = self
            .leases(ns)?
            .into_iter()
            .flat_map(|l| l.resources)
            .map(|d| (d, String::new()))
            .collect();
        roots.extend(
            records
                .iter()
                .filter(|(_, r)| r.labels.contains_key(crate::GC_ROOT))
                .map(|(d, _)| (d.clone(), String::new())),
        );
        roots.extend(
            self.images(ns)?
                .into_iter()
                .map(|i| (i.target.digest, i.target.media_type)),
        );
        // digest → whether it was seen with its media type: a blob first
        // met untyped (a lease resource) is followed again when it is met
        // as a manifest.
        let mut seen: BTreeMap<String, bool> = BTreeMap::new();
        while let Some((digest, media_type)) = roots.pop() {
            let typed = !media_type.is_empty();
            if seen.get(&digest).is_some_and(|was| *was || !typed) {
                continue;
            }
            seen.insert(digest.clone(), typed);
            roots.extend(children(&digest, &media_type).map_err(Error::Gc)?);
            if let Some(r) = records.get(&digest) {
                roots.extend(content_refs(&r.labels).map(|d| (d.clone(), String::new())));
            }
        }
        Ok(seen.into_keys().collect())
    }
}
