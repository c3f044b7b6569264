//! Image manifests and indexes as far as pulling and garbage collection need
//! them: what a blob is (by media type, or by shape when the type is
//! missing) and which blobs it references.

use serde::Deserialize;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The largest manifest or index hull accepts, anywhere: a pull refuses a
/// bigger one, and the garbage collector, which must read every manifest it
/// keeps to find what it references, never meets one it cannot read.
/// containerd uses the same limit.
pub const MAX_SIZE: u64 = 4 << 20;

/// What we ask registries for, best first. Schema 1 is accepted only so it
/// can be recognised and refused with a clear error instead of a 404.
pub const ACCEPT: &[&str] = &[
    OCI_INDEX,
    DOCKER_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1_SIGNED,
    DOCKER_SCHEMA1,
];

/// Layers that must not be fetched from the registry (the spec's
/// "non-distributable" / Docker's "foreign" layers, e.g. Windows bases).
pub fn is_foreign_layer(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.docker.image.rootfs.foreign.")
        || media_type.starts_with("application/vnd.oci.image.layer.nondistributable.")
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<u32>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

/// A parsed manifest-like document.
#[derive(Debug, PartialEq, Eq)]
pub enum Document {
    Index {
        media_type: String,
        manifests: Vec<Descriptor>,
    },
    Manifest {
        media_type: String,
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("Docker image manifest schema 1 is deprecated and not supported: push the image again with a current client (schema 2 or OCI)")]
    Schema1,
    #[error("not an image manifest or index (media type {0:?})")]
    Unsupported(String),
    #[error("malformed manifest: {0}")]
    Malformed(String),
}

impl Document {
    /// Parse `bytes`, served with `content_type` (may be empty).
    pub fn parse(bytes: &[u8], content_type: &str) -> Result<Document, ManifestError> {
        let raw: Raw =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        let declared = raw
            .media_type
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| content_type.to_string());
        if raw.schema_version == Some(1)
            || declared == DOCKER_SCHEMA1
            || declared == DOCKER_SCHEMA1_SIGNED
        {
            return Err(ManifestError::Schema1);
        }
        match (raw.manifests, raw.config, raw.layers) {
            (Some(manifests), None, _)
                if matches!(declared.as_str(), OCI_INDEX | DOCKER_LIST | "")
                    || declared.contains("json") =>
            {
                let media_type = if declared.is_empty() {
                    OCI_INDEX.to_string()
                } else {
                    declared
                };
                Ok(Document::Index {
                    media_type,
                    manifests,
                })
            }
            (None, Some(config), Some(layers))
                if declared != OCI_INDEX && declared != DOCKER_LIST =>
            {
                let media_type = if declared.is_empty() {
                    OCI_MANIFEST.to_string()
                } else {
                    declared
                };
                Ok(Document::Manifest {
                    media_type,
                    config,
                    layers,
                })
            }
            _ => Err(ManifestError::Unsupported(declared)),
        }
    }

    pub fn media_type(&self) -> &str {
        match self {
            Document::Index { media_type, .. } | Document::Manifest { media_type, .. } => {
                media_type
            }
        }
    }
}

/// True for the media types whose blobs are manifests or indexes, i.e. whose
/// children the garbage collector must follow.
pub fn is_manifest_type(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_INDEX | OCI_MANIFEST | DOCKER_LIST | DOCKER_MANIFEST
    )
}

/// The blobs a manifest or index references, with their media types.
pub fn children(bytes: &[u8]) -> Result<Vec<Descriptor>, ManifestError> {
    Ok(match Document::parse(bytes, "")? {
        Document::Index { manifests, .. } => manifests,
        Document::Manifest { config, layers, .. } => {
            std::iter::once(config).chain(layers).collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":3},
        "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:l1","size":10},
                  {"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:l2","size":20}]}"#;

    #[test]
    fn manifests_and_indexes_by_type_or_shape() {
        let doc = Document::parse(MANIFEST.as_bytes(), "").unwrap();
        assert_eq!(doc.media_type(), OCI_MANIFEST);
        let digests: Vec<String> = children(MANIFEST.as_bytes())
            .unwrap()
            .into_iter()
            .map(|d| d.digest)
            .collect();
        assert_eq!(digests, ["sha256:c", "sha256:l1", "sha256:l2"]);

        // No mediaType in the body: the Content-Type header decides, else the shape.
        let index = r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:a","size":1,
            "platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}"#;
        match Document::parse(index.as_bytes(), DOCKER_LIST).unwrap() {
            Document::Index {
                media_type,
                manifests,
            } => {
                assert_eq!(media_type, DOCKER_LIST);
                assert_eq!(
                    manifests[0].platform.as_ref().unwrap().variant.as_deref(),
                    Some("v8")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Document::parse(index.as_bytes(), "").unwrap().media_type(),
            OCI_INDEX
        );
    }

    #[test]
    fn schema1_and_garbage_are_refused_clearly() {
        let v1 = r#"{"schemaVersion":1,"name":"x","tag":"latest","fsLayers":[]}"#;
        let err = Document::parse(v1.as_bytes(), DOCKER_SCHEMA1_SIGNED).unwrap_err();
        assert_eq!(err, ManifestError::Schema1);
        assert!(err.to_string().contains("schema 1"));
        assert!(matches!(
            Document::parse(b"{\"schemaVersion\":2}", "text/plain"),
            Err(ManifestError::Unsupported(_))
        ));
        assert!(matches!(
            Document::parse(b"nope", ""),
            Err(ManifestError::Malformed(_))
        ));
        assert!(children(b"\x1f\x8b binary layer").is_err());
    }

    #[test]
    fn foreign_layers() {
        assert!(is_foreign_layer(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
        ));
        assert!(is_foreign_layer(
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        ));
        assert!(!is_foreign_layer(
            "application/vnd.oci.image.layer.v1.tar+gzip"
        ));
    }
}
