//! Writing images as an OCI layout tar with Docker's `manifest.json`.

use super::{read_blob, ArchiveError, Platforms, IMAGE_NAME_ANNOTATION, REF_NAME_ANNOTATION};
use crate::manifest::{self, Document};
use crate::platform::Platform;
use crate::pull::Descriptor;
use crate::reference::Reference;
use hull_content::{ContentStore, Digest};
use serde_json::json;
use std::collections::HashSet;
use std::io::Write;

/// One image to export: its name and what it points at.
pub struct ExportImage {
    pub name: String,
    pub target: Descriptor,
}

#[derive(Debug, Default)]
pub struct Exported {
    pub blobs: u32,
    pub bytes: u64,
}

/// What goes into the archive, worked out before a byte is written, so a
/// missing blob fails the export before the output is half written.
#[derive(Default)]
struct Contents {
    blobs: Vec<(Digest, u64)>,
    seen: HashSet<String>,
    index: Vec<serde_json::Value>,
    docker: Vec<serde_json::Value>,
}

/// Write `images` (with the manifests `platforms` picks of each index) as
/// an OCI layout tar to `out`.
pub fn export(
    store: &dyn ContentStore,
    images: &[ExportImage],
    platforms: &Platforms,
    out: impl Write,
) -> Result<Exported, ArchiveError> {
    let mut contents = Contents::default();
    for image in images {
        contents.add_image(store, image, platforms)?;
    }
    contents.write(store, out)
}

impl Contents {
    fn add_blob(
        &mut self,
        image: &str,
        what: &str,
        d: &manifest::Descriptor,
    ) -> Result<(), ArchiveError> {
        let digest: Digest = d.digest.parse().map_err(|e| ArchiveError::Incomplete {
            image: image.into(),
            what: what.into(),
            digest: d.digest.clone(),
            why: format!("not a valid digest ({e})"),
        })?;
        if !self.seen.insert(d.digest.clone()) {
            return Ok(());
        }
        self.blobs.push((digest, d.size));
        Ok(())
    }

    fn add_image(
        &mut self,
        store: &dyn ContentStore,
        image: &ExportImage,
        platforms: &Platforms,
    ) -> Result<(), ArchiveError> {
        let name = image.name.as_str();
        let read = |d: &Descriptor, what: &str| {
            read_blob(store, &d.digest, manifest::MAX_SIZE)?.ok_or_else(|| {
                ArchiveError::Incomplete {
                    image: name.into(),
                    what: what.into(),
                    digest: d.digest.clone(),
                    why: "not in the content store: export one platform with --platform, or get the rest of the image first".into(),
                }
            })
        };
        let root = read(&image.target, "manifest")?;
        let mut manifests = Vec::new();
        // Docker's manifest.json names one manifest per image: the host's
        // if the index has it, else the first exported.
        let mut docker_choice = image.target.digest.clone();
        match Document::parse(&root, &image.target.media_type) {
            Ok(Document::Index { manifests: m, .. }) => {
                let picked = platforms.pick(&m);
                docker_choice = Platform::host()
                    .select(&m)
                    .filter(|h| picked.iter().any(|p| p.digest == h.digest))
                    .or(picked.first().copied())
                    .map(|d| d.digest.clone())
                    .unwrap_or_default();
                for child in picked {
                    let desc = Descriptor {
                        media_type: child.media_type.clone(),
                        digest: child.digest.clone(),
                        size: child.size,
                    };
                    let bytes = read(&desc, "platform manifest")?;
                    manifests.push((desc, bytes));
                }
                if manifests.is_empty() {
                    return Err(ArchiveError::Incomplete {
                        image: name.into(),
                        what: "index".into(),
                        digest: image.target.digest.clone(),
                        why: "without a manifest for the platform asked for (use --all-platforms or --platform)".into(),
                    });
                }
            }
            Ok(Document::Manifest { .. }) => manifests.push((image.target.clone(), root.clone())),
            Err(e) => {
                return Err(ArchiveError::Format(format!("{name}: {e}")));
            }
        }
        let mut docker_entry = None;
        for (desc, bytes) in &manifests {
            let Ok(Document::Manifest { config, layers, .. }) =
                Document::parse(bytes, &desc.media_type)
            else {
                return Err(ArchiveError::Format(format!(
                    "{name}: {} is not an image manifest",
                    desc.digest
                )));
            };
            self.add_blob(name, "config", &config)?;
            let mut paths = Vec::new();
            for l in layers
                .iter()
                .filter(|l| !manifest::is_foreign_layer(&l.media_type))
            {
                self.add_blob(name, "layer", l)?;
                paths.push(blob_path(&l.digest));
            }
            self.add_blob(name, "manifest", &as_manifest(desc))?;
            if desc.digest == docker_choice {
                docker_entry = Some((config.digest.clone(), paths));
            }
        }
        if manifests[0].0.digest != image.target.digest {
            self.add_blob(name, "index", &as_manifest(&image.target))?;
        }
        self.add_names(name, image, docker_entry);
        Ok(())
    }

    fn add_names(
        &mut self,
        name: &str,
        image: &ExportImage,
        docker: Option<(String, Vec<String>)>,
    ) {
        let tag = name
            .parse::<Reference>()
            .ok()
            .and_then(|r| r.tag)
            .unwrap_or_else(|| "latest".into());
        self.index.push(json!({
            "mediaType": image.target.media_type,
            "digest": image.target.digest,
            "size": image.target.size,
            "annotations": {IMAGE_NAME_ANNOTATION: name, REF_NAME_ANNOTATION: tag},
        }));
        if let Some((config, layers)) = docker {
            let familiar = name
                .strip_prefix("docker.io/library/")
                .or_else(|| name.strip_prefix("docker.io/"))
                .unwrap_or(name);
            self.docker.push(json!({
                "Config": blob_path(&config),
                "RepoTags": [familiar],
                "Layers": layers,
            }));
        }
    }

    fn write(self, store: &dyn ContentStore, out: impl Write) -> Result<Exported, ArchiveError> {
        let mut tar = tar::Builder::new(out);
        let mut done = Exported::default();
        let w = ArchiveError::Write;
        append_dir(&mut tar, "blobs/").map_err(w)?;
        append_dir(&mut tar, "blobs/sha256/").map_err(w)?;
        append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(w)?;
        for (digest, size) in &self.blobs {
            let file = store.open(digest).map_err(ArchiveError::Store)?;
            let actual = file.metadata().map_err(ArchiveError::Read)?.len();
            if actual != *size {
                return Err(ArchiveError::Format(format!(
                    "blob {digest} has {actual} bytes in the store, its manifest says {size}"
                )));
            }
            let mut header = header(*size, 0o644, tar::EntryType::Regular);
            tar.append_data(&mut header, blob_path(&digest.to_string()), file)
                .map_err(w)?;
            done.blobs += 1;
            done.bytes += size;
        }
        let index =
            json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": self.index});
        append_bytes(&mut tar, "index.json", &to_vec(&index)).map_err(w)?;
        if !self.docker.is_empty() {
            append_bytes(&mut tar, "manifest.json", &to_vec(&json!(self.docker))).map_err(w)?;
        }
        tar.into_inner().and_then(|mut o| o.flush()).map_err(w)?;
        Ok(done)
    }
}

fn to_vec(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON values serialise")
}

fn as_manifest(d: &Descriptor) -> manifest::Descriptor {
    manifest::Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        platform: None,
    }
}

fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

fn header(size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(kind);
    h
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> std::io::Result<()> {
    let mut h = header(0, 0o755, tar::EntryType::Directory);
    tar.append_data(&mut h, path, std::io::empty())
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut h = header(data.len() as u64, 0o644, tar::EntryType::Regular);
    tar.append_data(&mut h, path, data)
}
