//! Pushing an image from the content store to a registry:
//! - a plan first ([`plan`]): the manifests and blobs the image needs, all
//!   checked to be here before anything is sent, so a partial image (e.g.
//!   one platform pulled of an index) fails at once, naming what is
//!   missing;
//! - blobs the registry has are skipped (`HEAD`), blobs of another
//!   repository on the same registry are mounted, the rest are uploaded:
//!   monolithic up to the chunk size, in chunks above it, and after an
//!   interruption the upload goes on from the offset the session reports
//!   (or starts over in a new session when the registry dropped it);
//! - manifests go last, children before their index, each only after what
//!   it references is there.

use crate::manifest::{self, Document};
use crate::platform::Platform;
use crate::pull::{backoff, progress, BlobState, Credentials, Event, Events, RegistryConfig};
use crate::reference::Reference;
use crate::registry::{self, FileRange, UploadStart};
use hull_content::{ContentStore, Digest};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What to push and how.
pub struct PushOptions {
    pub credentials: Credentials,
    /// Push only this platform's manifest of an index (it becomes the tag).
    pub platform: Option<Platform>,
    /// Blob digest → a repository of the same registry that has it (where
    /// it was pulled from): such blobs are mounted, not sent.
    pub mount_from: BTreeMap<String, String>,
    /// Blobs above this size go in chunks of it.
    pub chunk_size: u64,
    /// Uploads at once; 0: the configured default.
    pub max_concurrent_uploads: usize,
}

/// containerd's content label naming the repository of registry `domain`
/// a blob was pulled from.
pub fn source_label(domain: &str) -> String {
    format!("containerd.io/distribution.source.{domain}")
}

/// The default chunk size: big enough that most layers go in one request.
pub const DEFAULT_CHUNK_SIZE: u64 = 32 << 20;

/// What a push did.
#[derive(Debug, Default)]
pub struct Pushed {
    /// The manifest or index the tag now names.
    pub target: crate::pull::Descriptor,
    pub uploaded: u32,
    pub bytes_uploaded: u64,
    pub existing: u32,
    pub mounted: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{image}: {what} {digest} is not in the content store: {hint}")]
    Missing {
        image: String,
        what: String,
        digest: String,
        hint: String,
    },
    #[error("{image}: {detail}")]
    Content { image: String, detail: String },
    #[error("registry {registry} refused to let this push to {repository} ({detail}): log in (`hullctl login {registry}`) as a user with push access")]
    Unauthorized {
        registry: String,
        repository: String,
        detail: String,
    },
    #[error("pushing to {registry}: {detail}")]
    Registry {
        registry: String,
        detail: String,
        transient: bool,
    },
}

/// The manifests (children first) and blobs of one push.
pub struct Plan {
    /// The document the tag will name.
    pub target: crate::pull::Descriptor,
    /// Manifests and the index, children first, with their bytes.
    manifests: Vec<(crate::pull::Descriptor, Vec<u8>)>,
    /// Config and layer blobs, each once.
    blobs: Vec<manifest::Descriptor>,
}

impl Plan {
    /// The config and layer blobs to send.
    pub fn blob_digests(&self) -> Vec<String> {
        self.blobs.iter().map(|b| b.digest.clone()).collect()
    }
}

/// Work out what pushing `target` of `image` needs, and check that all of
/// it is in `store`.
pub fn plan(
    store: &dyn ContentStore,
    image: &str,
    target: &crate::pull::Descriptor,
    platform: Option<&Platform>,
) -> Result<Plan, PushError> {
    let read = |d: &crate::pull::Descriptor, what: &str| read_document(store, image, d, what);
    let root = read(target, "the image's manifest")?;
    let mut manifests = Vec::new();
    let mut blobs = Vec::new();
    let mut seen = BTreeSet::new();
    let children = match Document::parse(&root, &target.media_type) {
        Ok(Document::Index { manifests: m, .. }) => match platform {
            Some(p) => {
                let chosen = p.select(&m).ok_or_else(|| PushError::Content {
                    image: image.into(),
                    detail: format!("the index has no manifest for platform {p}"),
                })?;
                let desc = describe(chosen);
                let bytes = read(&desc, &format!("the manifest for {p}"))?;
                collect_blobs(image, &bytes, &desc, &mut blobs, &mut seen)?;
                return finish(store, image, desc.clone(), vec![(desc, bytes)], blobs);
            }
            None => m,
        },
        Ok(Document::Manifest { .. }) => {
            collect_blobs(image, &root, target, &mut blobs, &mut seen)?;
            Vec::new()
        }
        Err(e) => {
            return Err(PushError::Content {
                image: image.into(),
                detail: e.to_string(),
            })
        }
    };
    for child in &children {
        let desc = describe(child);
        let what = match &child.platform {
            Some(p) => format!(
                "the manifest for {}",
                Platform::new(&p.os, &p.architecture, p.variant.as_deref())
            ),
            None => "a manifest of the index".into(),
        };
        let bytes = read(&desc, &what)?;
        collect_blobs(image, &bytes, &desc, &mut blobs, &mut seen)?;
        manifests.push((desc, bytes));
    }
    manifests.push((target.clone(), root));
    finish(store, image, target.clone(), manifests, blobs)
}

fn describe(d: &manifest::Descriptor) -> crate::pull::Descriptor {
    crate::pull::Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
    }
}

/// Check every blob is here (naming the first missing one) and make the plan.
fn finish(
    store: &dyn ContentStore,
    image: &str,
    target: crate::pull::Descriptor,
    manifests: Vec<(crate::pull::Descriptor, Vec<u8>)>,
    blobs: Vec<manifest::Descriptor>,
) -> Result<Plan, PushError> {
    for b in &blobs {
        let present = b
            .digest
            .parse::<Digest>()
            .is_ok_and(|d| store.info(&d).is_ok_and(|i| i.size == b.size));
        if !present {
            let what = if b.media_type.contains("config") {
                "config"
            } else {
                "layer"
            };
            return Err(missing(image, what, &b.digest));
        }
    }
    Ok(Plan {
        target,
        manifests,
        blobs,
    })
}

fn missing(image: &str, what: &str, digest: &str) -> PushError {
    PushError::Missing {
        image: image.into(),
        what: what.into(),
        digest: digest.into(),
        hint: "push one platform with --platform, or get all of the image first (hullctl images import, or a pull of the platform it lacks)".into(),
    }
}

/// A manifest or index from the store, at most [`manifest::MAX_SIZE`].
fn read_document(
    store: &dyn ContentStore,
    image: &str,
    d: &crate::pull::Descriptor,
    what: &str,
) -> Result<Vec<u8>, PushError> {
    use std::io::Read;
    let digest: Digest = d.digest.parse().map_err(|e| PushError::Content {
        image: image.into(),
        detail: format!("{what}: {e}"),
    })?;
    let file = store
        .open(&digest)
        .map_err(|_| missing(image, what, &d.digest))?;
    let mut bytes = Vec::new();
    file.take(manifest::MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PushError::Content {
            image: image.into(),
            detail: format!("reading {what} {}: {e}", d.digest),
        })?;
    if bytes.len() as u64 > manifest::MAX_SIZE {
        return Err(PushError::Content {
            image: image.into(),
            detail: format!("{what} {} is larger than 4 MiB", d.digest),
        });
    }
    Ok(bytes)
}

/// Add the config and layers of the manifest `bytes` to `out`.
fn collect_blobs(
    image: &str,
    bytes: &[u8],
    desc: &crate::pull::Descriptor,
    out: &mut Vec<manifest::Descriptor>,
    seen: &mut BTreeSet<String>,
) -> Result<(), PushError> {
    match Document::parse(bytes, &desc.media_type) {
        Ok(Document::Manifest { config, layers, .. }) => {
            for b in std::iter::once(config).chain(layers) {
                if !manifest::is_foreign_layer(&b.media_type) && seen.insert(b.digest.clone()) {
                    out.push(b);
                }
            }
            Ok(())
        }
        Ok(Document::Index { .. }) => Err(PushError::Content {
            image: image.into(),
            detail: format!(
                "{} is an index inside an index, which hull does not push",
                desc.digest
            ),
        }),
        Err(e) => Err(PushError::Content {
            image: image.into(),
            detail: format!("manifest {}: {e}", desc.digest),
        }),
    }
}

/// Pushes from one content store.
pub struct Pusher {
    store: Arc<dyn ContentStore + Send + Sync>,
    config: RegistryConfig,
}

/// One push's connection to its repository.
struct Target {
    client: registry::Client,
    repo: String,
    scope: String,
    mount_from: BTreeMap<String, String>,
    chunk_size: u64,
    retries: u32,
}

/// How one blob got to the registry.
enum Sent {
    Existing,
    Mounted,
    Uploaded(u64),
}

impl Pusher {
    pub fn new(store: Arc<dyn ContentStore + Send + Sync>, config: RegistryConfig) -> Pusher {
        Pusher { store, config }
    }

    /// Push `plan` to `remote` (its tag, or its digest).
    pub async fn push(
        &self,
        plan: Plan,
        remote: &Reference,
        opts: &PushOptions,
        events: &Events,
    ) -> Result<Pushed, PushError> {
        let host = remote.domain.clone();
        let repo = remote.path.clone();
        let err = |e| registry_error(&host, &repo, e);
        let client = self.client(&host, opts).map_err(err)?;
        let sources: BTreeSet<&str> = opts
            .mount_from
            .values()
            .map(String::as_str)
            .filter(|s| *s != repo)
            .collect();
        let scope = registry::push_scope(&repo, &sources.into_iter().collect::<Vec<_>>());
        client.ping(&scope).await.map_err(err)?;
        let target = Arc::new(Target {
            client,
            repo: repo.clone(),
            scope,
            mount_from: opts.mount_from.clone(),
            chunk_size: opts.chunk_size.max(1),
            retries: self.config.retries,
        });
        let mut pushed = self.push_blobs(&target, &plan.blobs, opts, events).await?;
        self.push_manifests(&target, &plan, remote, events).await?;
        pushed.target = plan.target;
        Ok(pushed)
    }

    /// A client for the first host that takes pushes for `domain`: the
    /// registry itself, or the first of its hosts.toml hosts with the
    /// "push" capability.
    fn client(
        &self,
        domain: &str,
        opts: &PushOptions,
    ) -> Result<registry::Client, registry::Error> {
        let protocol = |detail: String| registry::Error::Protocol { detail };
        let endpoints = self
            .config
            .push_endpoints(domain)
            .map_err(|e| protocol(e.to_string()))?;
        let endpoint = endpoints.first().ok_or_else(|| {
            protocol(format!(
                "no host of {domain} has the push capability in its hosts.toml: add \"push\" to the capabilities of the host to push to"
            ))
        })?;
        let creds = crate::pull::lookup_credentials(&opts.credentials, &endpoint.host)
            .or_else(|| crate::pull::lookup_credentials(&opts.credentials, domain))
            .cloned();
        registry::Client::new(&endpoint.host, &self.config.settings(endpoint), creds)
    }

    async fn push_blobs(
        &self,
        target: &Arc<Target>,
        blobs: &[manifest::Descriptor],
        opts: &PushOptions,
        events: &Events,
    ) -> Result<Pushed, PushError> {
        let concurrency = match opts.max_concurrent_uploads {
            0 => self.config.max_concurrent_downloads.max(1),
            n => n,
        };
        for b in blobs {
            events(Event::Blob(progress(b, BlobState::Waiting, 0)));
        }
        let mut queue = blobs.iter().cloned();
        let mut tasks = tokio::task::JoinSet::new();
        let mut pushed = Pushed::default();
        loop {
            while tasks.len() < concurrency {
                let Some(b) = queue.next() else { break };
                let (store, target, events) = (self.store.clone(), target.clone(), events.clone());
                tasks.spawn(async move { target.send_blob(store, &b, &events).await });
            }
            match tasks.join_next().await {
                None => return Ok(pushed),
                Some(Ok(Ok(Sent::Existing))) => pushed.existing += 1,
                Some(Ok(Ok(Sent::Mounted))) => pushed.mounted += 1,
                Some(Ok(Ok(Sent::Uploaded(n)))) => {
                    pushed.uploaded += 1;
                    pushed.bytes_uploaded += n;
                }
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => {
                    return Err(PushError::Registry {
                        registry: target.client.host().into(),
                        detail: format!("an upload task ended abnormally ({e}); this is a hulld bug, please report it"),
                        transient: false,
                    })
                }
            }
        }
    }

    async fn push_manifests(
        &self,
        target: &Target,
        plan: &Plan,
        remote: &Reference,
        events: &Events,
    ) -> Result<(), PushError> {
        let last = plan.manifests.len() - 1;
        for (i, (desc, bytes)) in plan.manifests.iter().enumerate() {
            let reference = match (&remote.tag, i == last) {
                (Some(tag), true) => tag.clone(),
                _ => desc.digest.clone(),
            };
            let d = manifest::Descriptor {
                media_type: desc.media_type.clone(),
                digest: desc.digest.clone(),
                size: desc.size,
                platform: None,
            };
            events(Event::Blob(progress(&d, BlobState::Uploading, 0)));
            target
                .client
                .put_manifest(
                    &target.repo,
                    &reference,
                    &desc.media_type,
                    bytes.clone().into(),
                    &target.scope,
                )
                .await
                .map_err(|e| registry_error(target.client.host(), &target.repo, e))?;
            events(Event::Blob(progress(&d, BlobState::Done, desc.size)));
        }
        Ok(())
    }
}

impl Target {
    fn error(&self, e: registry::Error) -> PushError {
        registry_error(self.client.host(), &self.repo, e)
    }

    /// Get one blob to the registry, with retries after transient failures.
    async fn send_blob(
        &self,
        store: Arc<dyn ContentStore + Send + Sync>,
        b: &manifest::Descriptor,
        events: &Events,
    ) -> Result<Sent, PushError> {
        let exists = self
            .client
            .blob_exists(&self.repo, &b.digest, &self.scope)
            .await
            .map_err(|e| self.error(e))?;
        if exists {
            events(Event::Blob(progress(b, BlobState::Exists, b.size)));
            return Ok(Sent::Existing);
        }
        let digest: Digest = b.digest.parse().map_err(|e| PushError::Content {
            image: self.repo.clone(),
            detail: format!("blob {}: {e}", b.digest),
        })?;
        let file = Arc::new(store.open(&digest).map_err(|e| PushError::Content {
            image: self.repo.clone(),
            detail: format!("opening blob {}: {e}", b.digest),
        })?);
        let mut attempt = 0;
        let mut mount = self
            .mount_from
            .get(&b.digest)
            .map(String::as_str)
            .filter(|from| *from != self.repo);
        loop {
            match self.upload(b, &file, mount, events).await {
                Ok(sent) => return Ok(sent),
                Err(e) if e.transient() && attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!(
                        "pushing blob {} to {}: {e}; starting over (attempt {attempt})",
                        b.digest,
                        self.client.host()
                    );
                    mount = None;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(self.error(e)),
            }
        }
    }

    /// One upload session: mount, monolithic, or chunks with resume.
    async fn upload(
        &self,
        b: &manifest::Descriptor,
        file: &Arc<std::fs::File>,
        mount: Option<&str>,
        events: &Events,
    ) -> Result<Sent, registry::Error> {
        let session = match self
            .client
            .start_upload(&self.repo, &b.digest, mount, &self.scope)
            .await?
        {
            UploadStart::Mounted => {
                events(Event::Blob(progress(b, BlobState::Mounted, b.size)));
                return Ok(Sent::Mounted);
            }
            UploadStart::Session(url) => url,
        };
        events(Event::Blob(progress(b, BlobState::Uploading, 0)));
        let range = |offset: u64, len: u64| FileRange {
            file: file.clone(),
            offset,
            len,
        };
        if b.size <= self.chunk_size {
            self.client
                .finish_upload(&session, &b.digest, Some(&range(0, b.size)), &self.scope)
                .await?;
        } else {
            let session = self.send_chunks(b, session, &range, events).await?;
            self.client
                .finish_upload(&session, &b.digest, None, &self.scope)
                .await?;
        }
        events(Event::Blob(progress(b, BlobState::Done, b.size)));
        Ok(Sent::Uploaded(b.size))
    }

    /// PATCH the blob in chunks; after a failed chunk, ask the session how
    /// much it holds and go on from there (at most `retries` times). A
    /// session the registry dropped meanwhile (docker-registry drops one
    /// that got part of a chunk) is an interruption: the caller starts
    /// the blob over in a new one.
    async fn send_chunks(
        &self,
        b: &manifest::Descriptor,
        mut session: reqwest::Url,
        range: &(dyn Fn(u64, u64) -> FileRange + Sync),
        events: &Events,
    ) -> Result<reqwest::Url, registry::Error> {
        let mut offset = 0;
        let mut resumed = 0;
        while offset < b.size {
            let len = self.chunk_size.min(b.size - offset);
            let sent = self
                .client
                .upload_chunk(&session, &range(offset, len), &self.scope)
                .await;
            match sent {
                Ok(next) => {
                    session = next;
                    offset += len;
                    events(Event::Blob(progress(b, BlobState::Uploading, offset)));
                }
                Err(e) if e.transient() && resumed < self.retries => {
                    resumed += 1;
                    (session, offset) = self.resume_point(b, &session, offset, len, e).await?;
                    events(Event::Blob(progress(b, BlobState::Resuming, offset)));
                }
                Err(e) if resumed > 0 => return Err(dropped_session(e)),
                Err(e) => return Err(e),
            }
        }
        Ok(session)
    }

    /// Where to go on after a failed chunk at `offset`: what the session
    /// holds, if it still exists and holds a whole number of our chunks'
    /// worth (no more than was sent).
    async fn resume_point(
        &self,
        b: &manifest::Descriptor,
        session: &reqwest::Url,
        offset: u64,
        len: u64,
        failure: registry::Error,
    ) -> Result<(reqwest::Url, u64), registry::Error> {
        let (next, held) = match self.client.upload_status(session, &self.scope).await {
            Ok(status) => status,
            Err(e) => return Err(dropped_session(e)),
        };
        // "0-0" means nothing as well as one byte; chunks are never one
        // byte, so it is nothing here.
        let held = if held == 1 && offset == 0 { 0 } else { held };
        if held < offset || held > offset + len {
            return Err(failure);
        }
        tracing::info!(
            "upload of {} interrupted ({failure}); the registry holds {held} bytes, going on from there",
            b.digest
        );
        Ok((next, held))
    }
}

/// An upload session that did not survive an interruption.
fn dropped_session(e: registry::Error) -> registry::Error {
    registry::Error::Interrupted {
        detail: format!("the registry dropped the upload session after an interruption ({e})"),
    }
}

impl PushError {
    pub fn transient(&self) -> bool {
        matches!(
            self,
            PushError::Registry {
                transient: true,
                ..
            }
        )
    }
}

fn registry_error(host: &str, repo: &str, e: registry::Error) -> PushError {
    match e {
        registry::Error::Unauthorized { detail } => PushError::Unauthorized {
            registry: host.into(),
            repository: repo.into(),
            detail,
        },
        e => PushError::Registry {
            registry: host.into(),
            transient: e.transient(),
            detail: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn put(store: &hull_content::LocalStore, bytes: &[u8]) -> String {
        let digest = Digest::of(bytes);
        let mut w = store.writer("t", None, None).unwrap();
        w.write_all(bytes).unwrap();
        w.commit(bytes.len() as u64, &digest).unwrap();
        digest.to_string()
    }

    fn desc(media_type: &str, bytes: &[u8]) -> serde_json::Value {
        serde_json::json!({"mediaType": media_type, "digest": Digest::of(bytes).to_string(), "size": bytes.len()})
    }

    #[test]
    fn plans_children_first_and_names_what_is_missing() {
        let tmp = tempfile::Builder::new()
            .prefix("hull-push-plan-")
            .tempdir()
            .unwrap();
        let store = hull_content::LocalStore::open(tmp.path().join("content")).unwrap();
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let layer = b"layer bytes";
        let absent = b"the arm64 layer";
        let manifest = |l: &[u8]| {
            serde_json::to_vec(
                &serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST,
                "config": desc("application/vnd.oci.image.config.v1+json", config),
                "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", l)]}),
            )
            .unwrap()
        };
        let (amd, arm) = (manifest(layer), manifest(absent));
        let entry = |m: &[u8], arch: &str| {
            let mut d = desc(manifest::OCI_MANIFEST, m);
            d["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
            d
        };
        let index = serde_json::to_vec(
            &serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX,
            "manifests": [entry(&amd, "amd64"), entry(&arm, "arm64")]}),
        )
        .unwrap();
        for b in [&config[..], layer, &amd, &arm, &index] {
            put(&store, b);
        }
        let target = crate::pull::Descriptor {
            media_type: manifest::OCI_INDEX.into(),
            digest: Digest::of(&index).to_string(),
            size: index.len() as u64,
        };
        let err = plan(&store, "img", &target, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&Digest::of(absent).to_string()) && err.contains("layer"),
            "{err}"
        );
        let amd64 = Platform::new("linux", "amd64", None);
        let one = plan(&store, "img", &target, Some(&amd64)).unwrap();
        assert_eq!(one.target.digest, Digest::of(&amd).to_string());
        assert_eq!(one.manifests.len(), 1);
        assert_eq!(one.blobs.len(), 2);

        put(&store, absent);
        let all = plan(&store, "img", &target, None).unwrap();
        let order: Vec<&str> = all
            .manifests
            .iter()
            .map(|(d, _)| d.digest.as_str())
            .collect();
        assert_eq!(
            order.last(),
            Some(&target.digest.as_str()),
            "the index goes last"
        );
        assert_eq!(all.blobs.len(), 3, "the shared config is pushed once");
    }
}
