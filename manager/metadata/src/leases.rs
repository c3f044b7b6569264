//! Leases: what protects content, snapshots and ingests from the garbage
//! collector while a client uses them (a pull, an unpack, `ctr`'s
//! operations, which pass the lease in the `containerd-lease` header).

use crate::{
    already_exists, dberr, get, key, not_found, now, put, Error, Metadata, Result, LEASES,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// containerd's resource types in a lease.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LeaseResource {
    /// "content", "ingests" or "snapshots/<snapshotter>".
    pub kind: String,
    pub id: String,
}

impl LeaseResource {
    pub fn content(digest: &str) -> LeaseResource {
        LeaseResource {
            kind: "content".into(),
            id: digest.into(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    /// Content digests.
    #[serde(default)]
    pub resources: BTreeSet<String>,
    /// Snapshots, as "<snapshotter>/<key>".
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub snapshots: BTreeSet<String>,
    /// Ingest refs (partial writes).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub ingests: BTreeSet<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub created: u64,
    /// Seconds since the epoch after which the lease no longer protects
    /// anything (0: never). A pull's lease expires, so one left behind by a
    /// killed daemon cannot pin content forever; containerd's clients set
    /// it with the `containerd.io/gc.expire` label.
    #[serde(default)]
    pub expires: u64,
}

impl Lease {
    pub fn live(&self, now: u64) -> bool {
        self.expires == 0 || self.expires > now
    }

    /// A new lease; `containerd.io/gc.expire` (RFC 3339) sets its expiry.
    pub fn new(id: &str, labels: BTreeMap<String, String>) -> Result<Lease> {
        let expires = match labels.get(crate::GC_EXPIRE) {
            Some(t) => hull_timefmt::parse_rfc3339(t).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "lease {id}: label {} is not an RFC 3339 time: {t:?}",
                    crate::GC_EXPIRE
                ))
            })?,
            None => 0,
        };
        Ok(Lease {
            id: id.to_string(),
            labels,
            created: now(),
            expires,
            ..Lease::default()
        })
    }

    pub fn typed_resources(&self) -> Vec<LeaseResource> {
        let kinds = [("content", &self.resources), ("ingests", &self.ingests)];
        let mut out: Vec<LeaseResource> = kinds
            .iter()
            .flat_map(|(kind, set)| {
                set.iter().map(|id| LeaseResource {
                    kind: kind.to_string(),
                    id: id.clone(),
                })
            })
            .collect();
        out.extend(self.snapshots.iter().filter_map(|s| {
            let (sn, key) = s.split_once('/')?;
            Some(LeaseResource {
                kind: format!("snapshots/{sn}"),
                id: key.to_string(),
            })
        }));
        out
    }

    /// Add (or remove, with `add` false) a resource; an unknown kind is an
    /// error.
    fn change(&mut self, r: &LeaseResource, add: bool) -> Result<()> {
        let (set, id) = match r.kind.as_str() {
            "content" => (&mut self.resources, r.id.clone()),
            "ingests" => (&mut self.ingests, r.id.clone()),
            k => match k.strip_prefix("snapshots/") {
                Some(sn) if !sn.is_empty() => (&mut self.snapshots, format!("{sn}/{}", r.id)),
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "lease resource type {k:?}: use content, ingests or snapshots/<snapshotter>"
                    )))
                }
            },
        };
        if add {
            set.insert(id);
        } else {
            set.remove(&id);
        }
        Ok(())
    }
}

pub(crate) fn add_resource(
    tx: &redb::WriteTransaction,
    ns: &str,
    id: &str,
    r: &LeaseResource,
) -> Result<()> {
    change_resource(tx, ns, id, r, true)
}

fn change_resource(
    tx: &redb::WriteTransaction,
    ns: &str,
    id: &str,
    r: &LeaseResource,
    add: bool,
) -> Result<()> {
    let mut t = tx.open_table(LEASES).map_err(dberr)?;
    let k = key(ns, id);
    let mut lease: Lease = get(&t, &k)?.ok_or_else(|| not_found("lease", ns, id))?;
    lease.change(r, add)?;
    put(&mut t, &k, &lease)
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

impl Metadata {
    pub fn put_lease(&self, ns: &str, lease: &Lease) -> Result<()> {
        self.write(|tx| self.insert_lease(tx, ns, lease))
    }

    /// containerd's Create: an existing id is an error.
    pub fn create_lease(&self, ns: &str, lease: &Lease) -> Result<()> {
        self.write(|tx| {
            let t = tx.open_table(LEASES).map_err(dberr)?;
            if get::<Lease>(&t, &key(ns, &lease.id))?.is_some() {
                return Err(already_exists("lease", ns, &lease.id));
            }
            drop(t);
            self.insert_lease(tx, ns, lease)
        })
    }

    /// [`Metadata::put_lease`] without its own fsync, for a pull's expiring
    /// lease: lost in a crash, it would have protected nothing yet.
    pub fn put_lease_deferred(&self, ns: &str, lease: &Lease) -> Result<()> {
        self.write_deferred(|tx| self.insert_lease(tx, ns, lease))
    }

    fn insert_lease(&self, tx: &redb::WriteTransaction, ns: &str, lease: &Lease) -> Result<()> {
        self.require_namespace(tx, ns)?;
        let mut t = tx.open_table(LEASES).map_err(dberr)?;
        put(&mut t, &key(ns, &lease.id), lease)
    }

    /// Add content `digest` to lease `id` (one transaction, so concurrent
    /// additions are not lost).
    pub fn add_lease_resource(&self, ns: &str, id: &str, digest: &str) -> Result<()> {
        self.add_lease_typed(ns, id, &LeaseResource::content(digest))
    }

    pub fn add_lease_typed(&self, ns: &str, id: &str, r: &LeaseResource) -> Result<()> {
        self.write(|tx| add_resource(tx, ns, id, r))
    }

    pub fn delete_lease_typed(&self, ns: &str, id: &str, r: &LeaseResource) -> Result<()> {
        self.write(|tx| change_resource(tx, ns, id, r, false))
    }

    pub fn lease(&self, ns: &str, id: &str) -> Result<Lease> {
        self.read(|tx| {
            let t = tx.open_table(LEASES).map_err(dberr)?;
            let v = t
                .get(key(ns, id).as_str())
                .map_err(dberr)?
                .ok_or_else(|| not_found("lease", ns, id))?;
            serde_json::from_slice(v.value()).map_err(crate::codec)
        })
    }

    pub fn leases(&self, ns: &str) -> Result<Vec<Lease>> {
        Ok(self
            .list_records(LEASES, ns)?
            .into_iter()
            .map(|(_, l)| l)
            .collect())
    }

    pub fn delete_lease(&self, ns: &str, id: &str) -> Result<()> {
        self.write(|tx| remove_lease(tx, ns, id))
    }

    /// [`Metadata::delete_lease`] without its own fsync, for a finished
    /// pull: lost in a crash, the lease just lives until it expires.
    pub fn delete_lease_deferred(&self, ns: &str, id: &str) -> Result<()> {
        self.write_deferred(|tx| remove_lease(tx, ns, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_resources_round_trip() {
        let mut l = Lease::default();
        for (kind, id) in [
            ("content", "sha256:a"),
            ("ingests", "ref-1"),
            ("snapshots/overlayfs", "extract-1 sha256:c"),
        ] {
            l.change(
                &LeaseResource {
                    kind: kind.into(),
                    id: id.into(),
                },
                true,
            )
            .unwrap();
        }
        let kinds: Vec<String> = l.typed_resources().into_iter().map(|r| r.kind).collect();
        assert_eq!(kinds, ["content", "ingests", "snapshots/overlayfs"]);
        assert!(l
            .change(
                &LeaseResource {
                    kind: "bogus".into(),
                    id: "x".into()
                },
                true
            )
            .is_err());
    }
}
