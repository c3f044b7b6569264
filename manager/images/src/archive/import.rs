//! Reading OCI layout tars and Docker `save` tars into the content store.

use super::{read_blob, ArchiveError, IMAGE_NAME_ANNOTATION, MAX_DOCUMENT, REF_NAME_ANNOTATION};
use crate::manifest::{self, Document};
use crate::pull::Descriptor;
use crate::reference::Reference;
use hull_content::{ContentStore, Digest};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};

/// More entries than this is not an image archive (a tar bomb of empty
/// files would otherwise grow the path maps without bound).
const MAX_ENTRIES: usize = 100_000;
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";

#[derive(Default)]
pub struct ImportOptions {
    /// The name of the archive's one image (instead of the archive's own,
    /// or where it has none).
    pub name: Option<String>,
}

#[derive(Debug, Default)]
pub struct Imported {
    /// Image names and what each points at.
    pub images: Vec<(String, Descriptor)>,
    /// Blobs stored (new or already there) and the bytes read for them.
    pub blobs: u32,
    pub bytes: u64,
}

/// Read the archive in `input` into `store`; `on_blob` hears of every
/// blob that is in the store (verified) as it lands, before any image is
/// named. Returns the images to record.
pub fn import(
    store: &dyn ContentStore,
    input: impl Read,
    opts: &ImportOptions,
    on_blob: &mut dyn FnMut(&str),
) -> Result<Imported, ArchiveError> {
    let mut input = BufReader::with_capacity(1 << 20, input);
    let head = input.fill_buf().map_err(ArchiveError::Read)?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let mut reader = Reader {
        store,
        on_blob,
        docs: HashMap::new(),
        files: HashMap::new(),
        links: HashMap::new(),
        out: Imported::default(),
    };
    if gzip {
        reader.entries(HeaderGuard::new(flate2::read::MultiGzDecoder::new(input)))?;
    } else {
        reader.entries(HeaderGuard::new(input))?;
    }
    let images = if reader.docs.contains_key("index.json") {
        reader.oci_images(opts)?
    } else if reader.docs.contains_key("manifest.json") {
        reader.docker_images(opts)?
    } else {
        return Err(ArchiveError::Format(
            "it has neither index.json (OCI layout) nor manifest.json (docker save)".into(),
        ));
    };
    let mut out = reader.out;
    out.images = rename(images, opts)?;
    Ok(out)
}

/// Apply `--name`: only for an archive of one image. A name without a tag
/// keeps the tag the archive gives.
fn rename(
    images: Vec<(String, Descriptor)>,
    opts: &ImportOptions,
) -> Result<Vec<(String, Descriptor)>, ArchiveError> {
    let Some(name) = &opts.name else {
        return Ok(images);
    };
    let mut targets: Vec<&Descriptor> = images.iter().map(|(_, d)| d).collect();
    targets.dedup_by(|a, b| a.digest == b.digest);
    let [one] = targets.as_slice() else {
        return Err(ArchiveError::Format(format!(
            "the archive holds {} images; --name can name only one",
            targets.len()
        )));
    };
    let has_tag = name
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':') || last.contains('@'));
    let archive_tag = images
        .first()
        .and_then(|(n, _)| n.parse::<Reference>().ok())
        .and_then(|r| r.tag);
    let name = match (has_tag, archive_tag) {
        (false, Some(tag)) => normalise(&format!("{name}:{tag}"))?,
        _ => normalise(name)?,
    };
    Ok(vec![(name, (*one).clone())])
}

fn normalise(name: &str) -> Result<String, ArchiveError> {
    name.parse::<Reference>()
        .map(|r| r.to_string())
        .map_err(|e| ArchiveError::Format(e.to_string()))
}

struct Reader<'a> {
    store: &'a dyn ContentStore,
    on_blob: &'a mut dyn FnMut(&str),
    /// index.json, manifest.json and the like, by path.
    docs: HashMap<String, Vec<u8>>,
    /// Other files (Docker archives' layers and configs): path → blob.
    files: HashMap<String, (Digest, u64)>,
    /// Links: path → the path it stands for.
    links: HashMap<String, String>,
    out: Imported,
}

/// The tar crate reads GNU long names (`L`, `K`) and PAX headers (`x`,
/// `g`) into memory whole, without a bound: this reader, in front of it,
/// follows the tar framing and refuses such an entry over [`MAX_META`]
/// before the crate reads it.
struct HeaderGuard<R> {
    inner: R,
    /// Bytes of the current 512-byte header block seen so far.
    header: Vec<u8>,
    /// Data (with padding) still to pass before the next header.
    data_left: u64,
}

/// Long names and PAX records are a few KiB.
const MAX_META: u64 = 1 << 20;

impl<R: Read> HeaderGuard<R> {
    fn new(inner: R) -> HeaderGuard<R> {
        HeaderGuard {
            inner,
            header: Vec::with_capacity(512),
            data_left: 0,
        }
    }

    /// A complete header block: where its entry's data ends.
    fn header_done(&mut self) -> std::io::Result<()> {
        let h = std::mem::take(&mut self.header);
        if h.iter().all(|b| *b == 0) {
            return Ok(()); // end-of-archive blocks
        }
        let size = tar_size(&h[124..136]).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a tar header with a bad size",
            )
        })?;
        if matches!(h[156], b'L' | b'K' | b'x' | b'g') && size > MAX_META {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a tar long-name or PAX entry of {size} bytes (at most {MAX_META})"),
            ));
        }
        self.data_left = size.div_ceil(512) * 512;
        Ok(())
    }
}

/// A tar size field: octal, or GNU base-256 (high bit set).
fn tar_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut n: u64 = 0;
        for (i, b) in field.iter().enumerate() {
            let b = if i == 0 { b & 0x7f } else { *b };
            n = n.checked_mul(256)?.checked_add(b as u64)?;
        }
        return Some(n);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = if self.data_left > 0 {
            buf.len()
                .min(self.data_left.min(usize::MAX as u64) as usize)
        } else {
            buf.len().min(512 - self.header.len())
        };
        let n = self.inner.read(&mut buf[..want])?;
        if self.data_left > 0 {
            self.data_left -= n as u64;
        } else {
            self.header.extend_from_slice(&buf[..n]);
            if self.header.len() == 512 {
                self.header_done()?;
            }
        }
        Ok(n)
    }
}

/// `./a/b` → `a/b`; paths leaving the archive are refused.
fn clean_path(raw: &std::path::Path) -> Result<String, ArchiveError> {
    use std::path::Component;
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => {
                return Err(ArchiveError::Format(format!(
                    "entry {} leaves the archive",
                    raw.display()
                )))
            }
        }
    }
    Ok(parts.join("/"))
}

/// `dir/link` pointing at `../x/layer.tar` → `x/layer.tar`.
fn join_link(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl Reader<'_> {
    fn entries(&mut self, input: impl Read) -> Result<(), ArchiveError> {
        let mut archive = tar::Archive::new(input);
        let entries = archive.entries().map_err(ArchiveError::Read)?;
        for (n, entry) in entries.enumerate() {
            if n >= MAX_ENTRIES {
                return Err(ArchiveError::Format(format!(
                    "more than {MAX_ENTRIES} entries"
                )));
            }
            let mut entry = entry.map_err(ArchiveError::Read)?;
            let path = clean_path(&entry.path().map_err(ArchiveError::Read)?)?;
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(ArchiveError::Read)?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let target = if kind.is_symlink() {
                    join_link(&path, &target)
                } else {
                    clean_path(std::path::Path::new(&target))?
                };
                self.links.insert(path, target);
            } else if kind.is_file() {
                self.file(&path, &mut entry)?;
            }
        }
        Ok(())
    }

    fn file(&mut self, path: &str, entry: &mut impl Read) -> Result<(), ArchiveError> {
        let base = path.rsplit('/').next().unwrap_or(path);
        if matches!(
            path,
            "index.json" | "manifest.json" | "oci-layout" | "repositories"
        ) {
            let mut doc = Vec::new();
            entry
                .take(MAX_DOCUMENT + 1)
                .read_to_end(&mut doc)
                .map_err(ArchiveError::Read)?;
            if doc.len() as u64 > MAX_DOCUMENT {
                return Err(ArchiveError::Format(format!("{path} is larger than 8 MiB")));
            }
            self.docs.insert(path.to_string(), doc);
            return Ok(());
        }
        if let Some(rest) = path.strip_prefix("blobs/") {
            let (alg, hex) = rest.split_once('/').unwrap_or(("", rest));
            let digest: Digest = format!("{alg}:{hex}").parse().map_err(|e| {
                ArchiveError::Format(format!("{path} is not named by a sha256 digest ({e})"))
            })?;
            return self.blob(path, entry, Some(digest)).map(drop);
        }
        if matches!(base, "VERSION" | "json") {
            // The legacy per-layer metadata of `docker save`: unused.
            std::io::copy(entry, &mut std::io::sink()).map_err(ArchiveError::Read)?;
            return Ok(());
        }
        let stored = self.blob(path, entry, None)?;
        self.files.insert(path.to_string(), stored);
        Ok(())
    }

    /// Store one entry as a blob, verified against `expected` when the
    /// archive names it by digest, else named by what it hashes to.
    fn blob(
        &mut self,
        path: &str,
        entry: &mut impl Read,
        expected: Option<Digest>,
    ) -> Result<(Digest, u64), ArchiveError> {
        if let Some(d) = &expected {
            if let Ok(info) = self.store.info(d) {
                // Already here (and verified when it came): skip the bytes.
                std::io::copy(entry, &mut std::io::sink()).map_err(ArchiveError::Read)?;
                self.landed(d, 0);
                return Ok((d.clone(), info.size));
            }
        }
        // Unique in the process: imports run at once share the store.
        static INGESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = INGESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let reference = format!("import-{}-{n}", std::process::id());
        let written = self.write(&reference, entry, expected.as_ref());
        match written {
            Ok(info) => {
                self.landed(&info.digest, info.size);
                Ok((info.digest, info.size))
            }
            Err(e) => {
                if !matches!(e, ArchiveError::Store(hull_content::Error::Locked(_))) {
                    let _ = self.store.abort(&reference);
                }
                Err(match e {
                    ArchiveError::Store(hull_content::Error::DigestMismatch { actual, .. }) => {
                        ArchiveError::Tampered {
                            entry: path.to_string(),
                            detail: format!("its content hashes to {actual}"),
                        }
                    }
                    e => e,
                })
            }
        }
    }

    fn write(
        &self,
        reference: &str,
        entry: &mut impl Read,
        expected: Option<&Digest>,
    ) -> Result<hull_content::Info, ArchiveError> {
        let mut w = self
            .store
            .writer(reference, None, expected)
            .map_err(ArchiveError::Store)?;
        w.restart().map_err(ArchiveError::Store)?;
        let mut buf = vec![0; 1 << 20];
        loop {
            let n = entry.read(&mut buf).map_err(ArchiveError::Read)?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).map_err(|source| {
                ArchiveError::Store(hull_content::Error::Io {
                    what: "writing the ingest of",
                    path: reference.into(),
                    source,
                })
            })?;
        }
        let size = w.offset();
        let digest = expected.cloned().unwrap_or_else(|| w.digest());
        w.commit(size, &digest).map_err(ArchiveError::Store)
    }

    fn landed(&mut self, digest: &Digest, bytes: u64) {
        self.out.blobs += 1;
        self.out.bytes += bytes;
        (self.on_blob)(&digest.to_string());
    }

    fn doc(&self, name: &str) -> Result<serde_json::Value, ArchiveError> {
        serde_json::from_slice(&self.docs[name])
            .map_err(|e| ArchiveError::Format(format!("{name}: {e}")))
    }
}

/// The OCI layout half: names from index.json's annotations.
impl Reader<'_> {
    fn oci_images(
        &mut self,
        opts: &ImportOptions,
    ) -> Result<Vec<(String, Descriptor)>, ArchiveError> {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "mediaType", default)]
            media_type: String,
            digest: String,
            size: u64,
            #[serde(default)]
            annotations: BTreeMap<String, String>,
        }
        #[derive(Deserialize)]
        struct Index {
            manifests: Vec<Entry>,
        }
        let index: Index = serde_json::from_value(self.doc("index.json")?)
            .map_err(|e| ArchiveError::Format(format!("index.json: {e}")))?;
        let mut images = Vec::new();
        for e in index.manifests {
            let target = Descriptor {
                media_type: e.media_type,
                digest: e.digest,
                size: e.size,
            };
            let name = match (
                e.annotations.get(IMAGE_NAME_ANNOTATION),
                e.annotations.get(REF_NAME_ANNOTATION),
            ) {
                (Some(full), _) => normalise(full)?,
                (None, Some(r)) if r.contains('/') || r.contains(':') => normalise(r)?,
                (None, Some(tag)) => match &opts.name {
                    // Named by rename() once the whole archive is read.
                    Some(_) => format!("import.invalid/unnamed:{tag}"),
                    None => {
                        return Err(ArchiveError::Format(format!(
                            "index.json names {} only by its tag {tag:?}: give the image's name with --name",
                            target.digest
                        )))
                    }
                },
                (None, None) => match &opts.name {
                    Some(n) => normalise(n)?,
                    None => {
                        return Err(ArchiveError::Format(format!(
                            "index.json entry {} has no name: give one with --name",
                            target.digest
                        )))
                    }
                },
            };
            check_complete(self.store, &name, &target)?;
            images.push((name, target));
        }
        Ok(images)
    }
}

/// Every blob of `target` needed for at least one platform is here; a
/// manifest of the index may be missing (a one-platform export), but not
/// all of them, and not part of one. An index may hold manifests only (as
/// a pull and a push accept), each checked once however often it is listed.
fn check_complete(
    store: &dyn ContentStore,
    image: &str,
    target: &Descriptor,
) -> Result<(), ArchiveError> {
    let bytes = read_blob(store, &target.digest, manifest::MAX_SIZE)?
        .ok_or_else(|| incomplete(image, "manifest", &target.digest))?;
    let children = match Document::parse(&bytes, &target.media_type) {
        Ok(Document::Index { manifests, .. }) => manifests,
        Ok(Document::Manifest { config, layers, .. }) => {
            return check_blobs(store, image, &config, &layers)
        }
        Err(e) => return Err(ArchiveError::Format(format!("{image}: {e}"))),
    };
    let mut checked = std::collections::BTreeSet::new();
    for child in &children {
        if !checked.insert(child.digest.clone()) {
            continue;
        }
        let Some(bytes) = read_blob(store, &child.digest, manifest::MAX_SIZE)? else {
            continue;
        };
        match Document::parse(&bytes, &child.media_type) {
            Ok(Document::Manifest { config, layers, .. }) => {
                check_blobs(store, image, &config, &layers)?
            }
            Ok(Document::Index { .. }) => {
                return Err(ArchiveError::Format(format!(
                    "{image}: {} is an index inside an index, which hull does not import",
                    child.digest
                )))
            }
            Err(e) => return Err(ArchiveError::Format(format!("{image}: {e}"))),
        }
    }
    let present = checked
        .iter()
        .filter(|d| d.parse::<Digest>().is_ok_and(|d| store.info(&d).is_ok()))
        .count();
    if present == 0 {
        return Err(incomplete(
            image,
            "index without any of its manifests",
            &target.digest,
        ));
    }
    Ok(())
}

fn incomplete(image: &str, what: &str, digest: &str) -> ArchiveError {
    ArchiveError::Incomplete {
        image: image.into(),
        what: what.into(),
        digest: digest.into(),
        why: "missing from the archive and the content store".into(),
    }
}

/// A manifest's config and layers are all in the store.
fn check_blobs(
    store: &dyn ContentStore,
    image: &str,
    config: &manifest::Descriptor,
    layers: &[manifest::Descriptor],
) -> Result<(), ArchiveError> {
    for b in std::iter::once(config).chain(layers) {
        let present = b
            .digest
            .parse::<Digest>()
            .is_ok_and(|d| store.info(&d).is_ok());
        if !present && !manifest::is_foreign_layer(&b.media_type) {
            return Err(incomplete(image, "layer or config", &b.digest));
        }
    }
    Ok(())
}

/// The `docker save` half: manifest.json names configs and layers by path.
impl Reader<'_> {
    fn resolve(&self, path: &str) -> Result<(Digest, u64), ArchiveError> {
        let mut p = path.trim_start_matches("./").to_string();
        for _ in 0..16 {
            if let Some(found) = self.files.get(&p) {
                return Ok(found.clone());
            }
            if let Some(rest) = p.strip_prefix("blobs/") {
                let d: Digest = rest.replacen('/', ":", 1).parse().map_err(|e| {
                    ArchiveError::Format(format!("manifest.json names {path}: {e}"))
                })?;
                let info = self.store.info(&d).map_err(|_| {
                    ArchiveError::Format(format!(
                        "manifest.json names {path}, which is not in the archive"
                    ))
                })?;
                return Ok((d, info.size));
            }
            match self.links.get(&p) {
                Some(next) => p = next.clone(),
                None => break,
            }
        }
        Err(ArchiveError::Format(format!(
            "manifest.json names {path}, which is not in the archive"
        )))
    }

    fn docker_images(
        &mut self,
        _opts: &ImportOptions,
    ) -> Result<Vec<(String, Descriptor)>, ArchiveError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let entries: Vec<Entry> = serde_json::from_value(self.doc("manifest.json")?)
            .map_err(|e| ArchiveError::Format(format!("manifest.json: {e}")))?;
        let mut images = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let target = self.docker_manifest(&e.config, &e.layers)?;
            let tags = e.repo_tags.clone().unwrap_or_default();
            if tags.is_empty() {
                images.push((format!("import-{i}:latest"), target.clone()));
            }
            for tag in tags {
                images.push((normalise(&tag)?, target.clone()));
            }
        }
        if images.iter().any(|(n, _)| n.starts_with("import-")) && _opts.name.is_none() {
            return Err(ArchiveError::Format(
                "manifest.json lists an image without RepoTags: give it a name with --name".into(),
            ));
        }
        Ok(images)
    }

    /// Build (and store) the Docker schema 2 manifest of one entry, after
    /// checking its layers against the config's diff_ids.
    fn docker_manifest(
        &mut self,
        config_path: &str,
        layer_paths: &[String],
    ) -> Result<Descriptor, ArchiveError> {
        let (config_digest, config_size) = self.resolve(config_path)?;
        let config = read_blob(self.store, &config_digest.to_string(), MAX_DOCUMENT)?
            .ok_or_else(|| ArchiveError::Format(format!("{config_path} is not in the archive")))?;
        #[derive(Deserialize)]
        struct RootFs {
            diff_ids: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Config {
            rootfs: RootFs,
        }
        let parsed: Config = serde_json::from_slice(&config).map_err(|e| {
            ArchiveError::Format(format!("{config_path} is not an image config: {e}"))
        })?;
        if parsed.rootfs.diff_ids.len() != layer_paths.len() {
            return Err(ArchiveError::Format(format!(
                "manifest.json lists {} layers, the config {config_path} {} diff_ids",
                layer_paths.len(),
                parsed.rootfs.diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (path, diff_id) in layer_paths.iter().zip(&parsed.rootfs.diff_ids) {
            let (digest, size) = self.resolve(path)?;
            let media_type = self.layer_type(&digest)?;
            if media_type == DOCKER_LAYER && digest.to_string() != *diff_id {
                return Err(ArchiveError::Tampered {
                    entry: path.clone(),
                    detail: format!("it hashes to {digest}, the config's diff_id is {diff_id}"),
                });
            }
            layers.push(serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": size}));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest.to_string(), "size": config_size},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).expect("JSON values serialise");
        let digest = Digest::of(&bytes);
        self.blob("manifest", &mut bytes.as_slice(), Some(digest.clone()))?;
        Ok(Descriptor {
            media_type: manifest::DOCKER_MANIFEST.into(),
            digest: digest.to_string(),
            size: bytes.len() as u64,
        })
    }

    /// Layers in Docker archives are plain tars, unless compressed.
    fn layer_type(&self, digest: &Digest) -> Result<&'static str, ArchiveError> {
        let mut magic = [0u8; 4];
        let mut f = self.store.open(digest).map_err(ArchiveError::Store)?;
        let n = f.read(&mut magic).map_err(ArchiveError::Read)?;
        Ok(match &magic[..n] {
            [0x1f, 0x8b, ..] => DOCKER_LAYER_GZIP,
            [0x28, 0xb5, 0x2f, 0xfd] => DOCKER_LAYER_ZSTD,
            _ => DOCKER_LAYER,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_long_name_entry_is_refused_before_it_is_read() {
        let tmp = tempfile::Builder::new()
            .prefix("hull-import-guard-")
            .tempdir()
            .unwrap();
        let store = hull_content::LocalStore::open(tmp.path().join("content")).unwrap();
        let mut header = [0u8; 512];
        header[..13].copy_from_slice(b"././@LongLink");
        // 8 GiB, in octal.
        header[124..136].copy_from_slice(b"100000000000");
        header[156] = b'L';
        let err = import(&store, &header[..], &ImportOptions::default(), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("long-name or PAX entry of 8589934592 bytes"),
            "{err}"
        );
        assert_eq!(tar_size(b"00000001000\0"), Some(512));
        assert_eq!(
            tar_size(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
            Some(256)
        );
    }
}
