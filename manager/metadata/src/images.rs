//! Images: a name (a normalised reference) pointing at a manifest or index.

use crate::{dberr, key, not_found, Metadata, Result, IMAGES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an image name points at (an OCI descriptor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
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

impl Metadata {
    /// Create or update an image; its target content becomes referenced by
    /// the namespace in the same transaction.
    pub fn put_image(&self, ns: &str, image: &Image) -> Result<()> {
        self.write(|tx| {
            self.require_namespace(tx, ns)?;
            let mut t = tx.open_table(IMAGES).map_err(dberr)?;
            crate::put(&mut t, &key(ns, &image.name), image)?;
            crate::content::insert_content(tx, ns, &image.target.digest, None)
        })
    }

    pub fn image(&self, ns: &str, name: &str) -> Result<Image> {
        self.read(|tx| {
            let t = tx.open_table(IMAGES).map_err(dberr)?;
            let v = t
                .get(key(ns, name).as_str())
                .map_err(dberr)?
                .ok_or_else(|| not_found("image", ns, name))?;
            serde_json::from_slice(v.value()).map_err(crate::codec)
        })
    }

    pub fn images(&self, ns: &str) -> Result<Vec<Image>> {
        Ok(self
            .list_records(IMAGES, ns)?
            .into_iter()
            .map(|(_, i)| i)
            .collect())
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
}
