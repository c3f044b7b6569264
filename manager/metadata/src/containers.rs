//! Containers: containerd's container records (metadata only: image,
//! runtime, OCI spec, snapshot, labels, extensions). A container keeps its
//! snapshot from the collector.

use crate::{already_exists, dberr, get, key, not_found, now, put, Error, Metadata, Result};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub(crate) const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");

/// A protobuf `Any` as stored: its type URL and encoded bytes (base64 in
/// the JSON record).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnyRecord {
    pub type_url: String,
    #[serde(with = "base64_bytes")]
    pub value: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    pub name: String,
    #[serde(default)]
    pub options: Option<AnyRecord>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub image: String,
    pub runtime: Runtime,
    #[serde(default)]
    pub spec: Option<AnyRecord>,
    #[serde(default)]
    pub snapshotter: String,
    #[serde(default)]
    pub snapshot_key: String,
    pub created: u64,
    pub updated: u64,
    #[serde(default)]
    pub extensions: BTreeMap<String, AnyRecord>,
    #[serde(default)]
    pub sandbox: String,
}

/// containerd's identifier rule (as for namespaces) for container ids.
pub fn check_id(id: &str) -> Result<()> {
    crate::check_namespace(id).map_err(|_| {
        Error::InvalidArgument(format!(
            "invalid container id {id:?}: use letters and digits, joined by single '.', '_' or '-', at most 76 characters"
        ))
    })
}

impl Metadata {
    /// containerd's Create: the id must be new; a runtime name is required.
    pub fn create_container(&self, ns: &str, c: &Container) -> Result<Container> {
        check_id(&c.id)?;
        if c.runtime.name.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "container {}: a runtime name is required (e.g. io.containerd.hull.v2)",
                c.id
            )));
        }
        let mut record = c.clone();
        record.created = now();
        record.updated = record.created;
        self.write(|tx| {
            self.require_namespace(tx, ns)?;
            let mut t = tx.open_table(CONTAINERS).map_err(dberr)?;
            let k = key(ns, &record.id);
            if t.get(k.as_str()).map_err(dberr)?.is_some() {
                return Err(already_exists("container", ns, &record.id));
            }
            put(&mut t, &k, &record)
        })?;
        Ok(record)
    }

    pub fn container(&self, ns: &str, id: &str) -> Result<Container> {
        self.read(|tx| {
            let t = tx.open_table(CONTAINERS).map_err(dberr)?;
            let v = t
                .get(key(ns, id).as_str())
                .map_err(dberr)?
                .ok_or_else(|| not_found("container", ns, id))?;
            serde_json::from_slice(v.value()).map_err(crate::codec)
        })
    }

    pub fn containers(&self, ns: &str) -> Result<Vec<Container>> {
        Ok(self
            .list_records(CONTAINERS, ns)?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    }

    /// containerd's Update: `paths` (a field mask) name what changes:
    /// labels[.KEY], image, spec, snapshotter, snapshot_key, runtime,
    /// extensions[.KEY]; none means everything updatable.
    pub fn update_container(&self, ns: &str, c: &Container, paths: &[String]) -> Result<Container> {
        self.write(|tx| {
            let mut t = tx.open_table(CONTAINERS).map_err(dberr)?;
            let k = key(ns, &c.id);
            let mut record: Container =
                get(&t, &k)?.ok_or_else(|| not_found("container", ns, &c.id))?;
            let all = [
                "labels",
                "image",
                "spec",
                "snapshotter",
                "snapshot_key",
                "runtime",
                "extensions",
            ];
            let paths: Vec<String> = if paths.is_empty() {
                all.iter().map(|p| p.to_string()).collect()
            } else {
                paths.to_vec()
            };
            for p in &paths {
                match p.as_str() {
                    "labels" => record.labels = c.labels.clone(),
                    l if l.starts_with("labels.") => {
                        record.labels =
                            crate::merge_labels(&record.labels, &c.labels, &[l.to_string()])?
                    }
                    "image" => record.image = c.image.clone(),
                    "spec" => record.spec = c.spec.clone(),
                    "snapshotter" | "snapshot_key"
                        if record.snapshot_key != c.snapshot_key
                            || record.snapshotter != c.snapshotter =>
                    {
                        return Err(Error::InvalidArgument(format!(
                            "container {}: its snapshot cannot be changed",
                            c.id
                        )))
                    }
                    "snapshotter" | "snapshot_key" => {}
                    "runtime" if record.runtime.name != c.runtime.name => {
                        return Err(Error::InvalidArgument(format!(
                            "container {}: its runtime cannot be changed",
                            c.id
                        )))
                    }
                    "runtime" => record.runtime.options = c.runtime.options.clone(),
                    "extensions" => record.extensions = c.extensions.clone(),
                    e if e.starts_with("extensions.") => {
                        let name = &e["extensions.".len()..];
                        match c.extensions.get(name) {
                            Some(v) => record.extensions.insert(name.to_string(), v.clone()),
                            None => record.extensions.remove(name),
                        };
                    }
                    other => {
                        return Err(Error::InvalidArgument(format!(
                            "cannot update field {other:?} of container {}",
                            c.id
                        )))
                    }
                }
            }
            record.updated = now();
            put(&mut t, &k, &record)?;
            Ok(record)
        })
    }

    pub fn delete_container(&self, ns: &str, id: &str) -> Result<Container> {
        self.write(|tx| {
            let mut t = tx.open_table(CONTAINERS).map_err(dberr)?;
            let k = key(ns, id);
            let old: Container = get(&t, &k)?.ok_or_else(|| not_found("container", ns, id))?;
            t.remove(k.as_str()).map_err(dberr)?;
            Ok(old)
        })
    }
}
