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

/// What a collection found unreachable.
#[derive(Debug, Default)]
pub struct Collected {
    /// Digests no namespace references any more: delete them from the
    /// content store.
    pub blobs: Vec<String>,
    /// Snapshots to remove, children before parents.
    pub snapshots: Vec<DoomedSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoomedSnapshot {
    pub namespace: String,
    pub snapshotter: String,
    pub key: String,
}

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
    ) -> Result<Collected> {
        self.drop_expired_leases()?;
        let namespaces = self.namespaces()?;
        // In one write transaction, so no pull records content between
        // the mark and the sweep.
        let (unreferenced, keep_anywhere, snapshots) = self.write(|tx| {
            let mut keep_anywhere = BTreeSet::new();
            let mut unreferenced = BTreeSet::new();
            // Mark everything first, so a failure sweeps nothing.
            let mut marked_in = BTreeMap::new();
            let mut doomed_snapshots = Vec::new();
            for ns in &namespaces {
                let marked = self.mark(ns, &children)?;
                doomed_snapshots.extend(self.unreachable_snapshots(ns, &marked)?);
                marked_in.insert(ns.clone(), marked);
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
            Ok((unreferenced, keep_anywhere, doomed_snapshots))
        })?;
        Ok(Collected {
            blobs: unreferenced.difference(&keep_anywhere).cloned().collect(),
            snapshots,
        })
    }

    /// The snapshots of `ns` nothing keeps: roots are containers, live leases, the
    /// `containerd.io/gc.ref.snapshot.*` labels of reachable content
    /// (`marked`) and `containerd.io/gc.root` labels; parents of kept
    /// snapshots are kept. Children come before their parents in the
    /// result, the order they can be removed in.
    fn unreachable_snapshots(
        &self,
        ns: &str,
        marked: &BTreeSet<String>,
    ) -> Result<Vec<DoomedSnapshot>> {
        let snapshot_err = |e: crate::SnapshotError| Error::Gc(e.to_string());
        let all = self.namespace_snapshots(ns).map_err(snapshot_err)?;
        if all.is_empty() {
            return Ok(Vec::new());
        }
        let mut roots: Vec<(String, String)> = Vec::new();
        for lease in self.leases(ns)? {
            roots.extend(lease.snapshots.iter().filter_map(|s| {
                let (sn, key) = s.split_once('/')?;
                Some((sn.to_string(), key.to_string()))
            }));
        }
        for (digest, record) in self.content_records(ns)? {
            if marked.contains(&digest) {
                roots.extend(
                    snapshot_refs(&record.labels).map(|(sn, k)| (sn.to_string(), k.clone())),
                );
            }
        }
        // A container's root filesystem.
        roots.extend(
            self.containers(ns)?
                .into_iter()
                .filter(|c| !c.snapshot_key.is_empty())
                .map(|c| (c.snapshotter, c.snapshot_key)),
        );
        roots.extend(
            all.iter()
                .filter(|(_, _, r)| r.labels.contains_key(GC_ROOT))
                .map(|(sn, k, _)| (sn.clone(), k.clone())),
        );
        let by_key: BTreeMap<(String, String), &crate::SnapshotRecord> = all
            .iter()
            .map(|(sn, k, r)| ((sn.clone(), k.clone()), r))
            .collect();
        let mut kept = BTreeSet::new();
        while let Some(id) = roots.pop() {
            if let Some(r) = by_key.get(&id) {
                if kept.insert(id.clone()) {
                    if let Some(parent) = &r.parent {
                        roots.push((id.0.clone(), parent.clone()));
                    }
                }
            }
        }
        let depth = |mut id: (String, String)| {
            let mut d = 0;
            while let Some(parent) = by_key.get(&id).and_then(|r| r.parent.clone()) {
                id.1 = parent;
                d += 1;
                if d > by_key.len() {
                    break;
                }
            }
            d
        };
        let mut doomed: Vec<(usize, DoomedSnapshot)> = by_key
            .keys()
            .filter(|id| !kept.contains(*id))
            .map(|(sn, key)| {
                (
                    depth((sn.clone(), key.clone())),
                    DoomedSnapshot {
                        namespace: ns.to_string(),
                        snapshotter: sn.clone(),
                        key: key.clone(),
                    },
                )
            })
            .collect();
        doomed.sort_by_key(|d| std::cmp::Reverse(d.0));
        Ok(doomed.into_iter().map(|(_, d)| d).collect())
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
