//! Namespaces: containerd's unit of isolation. Every image, content
//! reference, lease and snapshot belongs to one.

use crate::{
    already_exists, codec, dberr, get, key, put, range, Error, Metadata, Result, CONTENT, IMAGES,
    LEASES, NAMESPACES,
};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    #[serde(skip)]
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// containerd's rule for namespace names (its `identifiers` package):
/// runs of letters and digits joined by single '.', '_' or '-', at most 76
/// characters. So `.`, `..`, `../x` and `a..b` are not names.
pub fn check_namespace(ns: &str) -> Result<()> {
    let bytes = ns.as_bytes();
    let separator = |b: u8| matches!(b, b'.' | b'_' | b'-');
    let ok = !ns.is_empty()
        && ns.len() <= 76
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || separator(*b))
        && !separator(bytes[0])
        && !separator(bytes[bytes.len() - 1])
        && !bytes.windows(2).any(|w| separator(w[0]) && separator(w[1]));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidNamespace(ns.to_string()))
    }
}

impl Metadata {
    /// Create `ns` if it does not exist (pulls and the default namespace).
    pub fn create_namespace(&self, ns: &str) -> Result<()> {
        match self.create_namespace_with(ns, &BTreeMap::new()) {
            Err(Error::AlreadyExists { .. }) => Ok(()),
            other => other.map(drop),
        }
    }

    /// containerd's Create: an existing namespace is an error.
    pub fn create_namespace_with(
        &self,
        ns: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Namespace> {
        check_namespace(ns)?;
        let record = Namespace {
            name: ns.to_string(),
            labels: labels.clone(),
        };
        self.write(|tx| {
            let mut t = tx.open_table(NAMESPACES).map_err(dberr)?;
            if t.get(ns).map_err(dberr)?.is_some() {
                return Err(already_exists("namespace", ns, ns));
            }
            put(&mut t, ns, &record)
        })?;
        Ok(record)
    }

    pub fn namespace(&self, ns: &str) -> Result<Namespace> {
        check_namespace(ns)?;
        self.read(|tx| {
            let t = tx.open_table(NAMESPACES).map_err(dberr)?;
            let v = t
                .get(ns)
                .map_err(dberr)?
                .ok_or_else(|| Error::NoNamespace(ns.to_string()))?;
            let mut n: Namespace = serde_json::from_slice(v.value()).map_err(codec)?;
            n.name = ns.to_string();
            Ok(n)
        })
    }

    pub fn update_namespace(
        &self,
        ns: &str,
        labels: &BTreeMap<String, String>,
        paths: &[String],
    ) -> Result<Namespace> {
        check_namespace(ns)?;
        self.write(|tx| {
            let mut t = tx.open_table(NAMESPACES).map_err(dberr)?;
            let mut n: Namespace =
                get(&t, ns)?.ok_or_else(|| Error::NoNamespace(ns.to_string()))?;
            n.labels = crate::merge_labels(&n.labels, labels, paths)?;
            put(&mut t, ns, &n)?;
            n.name = ns.to_string();
            Ok(n)
        })
    }

    pub fn namespaces(&self) -> Result<Vec<String>> {
        Ok(self
            .list_namespaces()?
            .into_iter()
            .map(|n| n.name)
            .collect())
    }

    pub fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        self.read(|tx| {
            let t = tx.open_table(NAMESPACES).map_err(dberr)?;
            let mut out = Vec::new();
            for entry in t.iter().map_err(dberr)? {
                let (k, v) = entry.map_err(dberr)?;
                let mut n: Namespace = serde_json::from_slice(v.value()).map_err(codec)?;
                n.name = k.value().to_string();
                out.push(n);
            }
            Ok(out)
        })
    }

    /// Remove a namespace without images or leases. Its content references
    /// go with it; returns the digests no other namespace references (the
    /// caller removes those blobs).
    pub fn delete_namespace(&self, ns: &str) -> Result<Vec<String>> {
        check_namespace(ns)?;
        let others: Vec<String> = self.namespaces()?.into_iter().filter(|o| o != ns).collect();
        self.write(|tx| {
            for table in [IMAGES, LEASES, crate::containers::CONTAINERS] {
                let t = tx.open_table(table).map_err(dberr)?;
                let (a, b) = range(ns);
                if t.range(a.as_str()..b.as_str())
                    .map_err(dberr)?
                    .next()
                    .is_some()
                {
                    return Err(Error::NamespaceNotEmpty(ns.to_string()));
                }
            }
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
            let (a, b) = range(ns);
            let mine: Vec<String> = content
                .range(a.as_str()..b.as_str())
                .map_err(dberr)?
                .map(|e| e.map(|(k, _)| k.value()[ns.len() + 1..].to_string()))
                .collect::<Result<_, _>>()
                .map_err(dberr)?;
            let mut freed = Vec::new();
            for digest in &mine {
                content.remove(key(ns, digest).as_str()).map_err(dberr)?;
                let mut shared = false;
                for o in &others {
                    shared |= content
                        .get(key(o, digest).as_str())
                        .map_err(dberr)?
                        .is_some();
                }
                if !shared {
                    freed.push(digest.clone());
                }
            }
            Ok(freed)
        })
    }

    pub(crate) fn require_namespace(&self, tx: &redb::WriteTransaction, ns: &str) -> Result<()> {
        check_namespace(ns)?;
        let t = tx.open_table(NAMESPACES).map_err(dberr)?;
        if t.get(ns).map_err(dberr)?.is_none() {
            return Err(Error::NoNamespace(ns.to_string()));
        }
        Ok(())
    }
}
