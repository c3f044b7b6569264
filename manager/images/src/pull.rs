//! Pulling images from registries into the content store.
//!
//! The registry protocol (HTTP, the anonymous / basic / bearer-token auth
//! dance from `WWW-Authenticate`, mirrors with `?ns=`, Range requests) is
//! the `oci-client` crate's. Three things it does not do the way a pull into
//! a content store needs, so they are ours:
//! - manifests are fetched raw ([`Client::pull_manifest_raw`]) and parsed in
//!   [`crate::manifest`]: the exact bytes must be stored under their digest,
//!   schema 1 must be refused clearly, and platform matching must know
//!   variants (oci-client's resolver ignores them);
//! - blobs stream straight into a content-store ingest that hashes while it
//!   writes (one SHA-256 pass; oci-client's verifying stream would be a
//!   second), asked for with a Range from the ingest's offset so an
//!   interrupted download (dropped connection, killed daemon) resumes;
//! - retries with backoff on 5xx, resets and truncated bodies.
//!
//! Order of visibility: every blob is committed (size and digest verified)
//! and reported with [`Event::Committed`] as it lands; the caller writes the
//! image record only after [`Puller::pull`] returns, i.e. when all of it is
//! there.

use crate::manifest::{self, Document};
use crate::platform::Platform;
use crate::reference::Reference;
use futures_util::StreamExt;
use hull_content::{ContentStore, Digest};
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where and how to reach registries (from hulld's config).
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Registries reached over plain HTTP besides localhost / 127.0.0.1 / [::1].
    pub insecure: Vec<String>,
    /// Registry domain → mirror hosts, tried in order before the registry.
    pub mirrors: BTreeMap<String, Vec<String>>,
    pub max_concurrent_downloads: usize,
    /// Further attempts per blob after a transient failure.
    pub retries: u32,
    /// PEM certificates trusted besides the system's roots (private CAs).
    pub extra_roots: Vec<Vec<u8>>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure: Vec::new(),
            mirrors: BTreeMap::new(),
            max_concurrent_downloads: 3,
            retries: 3,
            extra_roots: Vec::new(),
        }
    }
}

impl RegistryConfig {
    /// HTTP for loopback and listed registries, HTTPS (rustls) otherwise.
    pub fn is_insecure(&self, host: &str) -> bool {
        let name = match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        matches!(name, "localhost" | "127.0.0.1" | "[::1]")
            || self.insecure.iter().any(|i| i == host || i == name)
    }

    /// A client speaking to `host` (one per pull: tokens are per-pull too).
    pub fn client(&self, host: &str) -> Client {
        ensure_crypto_provider();
        let protocol = if self.is_insecure(host) {
            ClientProtocol::HttpsExcept(vec![host.to_string()])
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("hull/", env!("CARGO_PKG_VERSION")),
            extra_root_certificates: self
                .extra_roots
                .iter()
                .map(|pem| oci_client::client::Certificate {
                    encoding: oci_client::client::CertificateEncoding::Pem,
                    data: pem.clone(),
                })
                .collect(),
            ..ClientConfig::default()
        })
    }
}

/// Username and secret (password or token) for one registry host.
pub type Credentials = BTreeMap<String, (String, String)>;

pub struct PullOptions {
    pub platform: Platform,
    pub credentials: Credentials,
    /// 0: the configured default.
    pub max_concurrent_downloads: usize,
}

/// What a pull reports while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The reference resolved to this manifest or index.
    Resolved(Descriptor),
    Blob(BlobProgress),
    /// A blob is in the store, verified (new or already there).
    Committed(Descriptor),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobState {
    Waiting,
    Downloading,
    Resuming,
    Done,
    Exists,
    Skipped,
}

impl BlobState {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobState::Waiting => "waiting",
            BlobState::Downloading => "downloading",
            BlobState::Resuming => "resuming",
            BlobState::Done => "done",
            BlobState::Exists => "exists",
            BlobState::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobProgress {
    pub digest: String,
    pub media_type: String,
    pub state: BlobState,
    pub offset: u64,
    pub total: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Debug)]
pub struct Pulled {
    pub target: Descriptor,
    /// Every blob of the image that is now in the store.
    pub blobs: Vec<Descriptor>,
    pub bytes_fetched: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(
        "{reference}: not found at registry {registry} ({detail}): check the name and the tag"
    )]
    NotFound {
        reference: String,
        registry: String,
        detail: String,
    },
    #[error("registry {registry} refused access to {reference} ({detail}): log in with `hullctl login {registry}`")]
    Unauthorized {
        reference: String,
        registry: String,
        detail: String,
    },
    #[error(
        "cannot reach registry {registry}: {detail}: is it running, and is the address right?"
    )]
    Unreachable { registry: String, detail: String },
    #[error("TLS with registry {registry} failed ({detail}): if it uses a private CA, add the CA's PEM file to registry.ca_files in hulld's config; if it speaks plain HTTP, list it in registry.insecure")]
    Tls { registry: String, detail: String },
    #[error("{reference}: {source}")]
    Manifest {
        reference: String,
        source: manifest::ManifestError,
    },
    #[error("{reference}: the index has no image for platform {platform} (it has: {available}): choose one with --platform")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{reference}: blob {digest}: {detail}")]
    Blob {
        reference: String,
        digest: String,
        detail: String,
    },
    #[error("no space left on the device of the content store ({source}): free space (`hullctl images rm`, `hullctl content gc`) and pull again (completed layers are kept)")]
    NoSpace { source: hull_content::Error },
    #[error("content store: {0}")]
    Store(hull_content::Error),
    #[error("registry {registry}: {detail}")]
    Registry { registry: String, detail: String },
}

impl PullError {
    /// Worth another try: the network or the server, not the request.
    fn transient(&self) -> bool {
        matches!(self, PullError::Unreachable { .. })
            || matches!(self, PullError::Blob { detail, .. } if detail.starts_with(TRANSIENT))
    }

    fn from_store(e: hull_content::Error) -> PullError {
        let enospc = matches!(&e, hull_content::Error::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)));
        if enospc {
            PullError::NoSpace { source: e }
        } else {
            PullError::Store(e)
        }
    }
}

/// Prefix of blob errors that a retry may cure.
const TRANSIENT: &str = "transfer interrupted";

/// One endpoint to try: a mirror or the registry itself.
struct Endpoint {
    host: String,
    mirror: bool,
}

/// An endpoint host and the credentials used there.
type ClientKey = (String, Option<(String, String)>);

/// Pulls into one content store.
pub struct Puller {
    store: Arc<dyn ContentStore + Send + Sync>,
    config: RegistryConfig,
    /// One HTTP client per endpoint and credentials, kept across pulls:
    /// building one (TLS roots) costs more than a small pull, and a kept
    /// one reuses connections and tokens.
    clients: std::sync::Mutex<BTreeMap<ClientKey, Client>>,
}

/// The callback for [`Event`]s (called from the pull's tasks).
pub type Events = Arc<dyn Fn(Event) + Send + Sync>;

impl Puller {
    pub fn new(store: Arc<dyn ContentStore + Send + Sync>, config: RegistryConfig) -> Puller {
        Puller {
            store,
            config,
            clients: Default::default(),
        }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    fn endpoints(&self, domain: &str) -> Vec<Endpoint> {
        let mirrors = self.config.mirrors.get(domain).into_iter().flatten();
        mirrors
            .map(|m| Endpoint {
                host: m.clone(),
                mirror: true,
            })
            .chain(std::iter::once(Endpoint {
                host: domain.to_string(),
                mirror: false,
            }))
            .collect()
    }

    /// Pull `reference`: mirrors first (any failure there falls back to the
    /// next endpoint), then the registry.
    pub async fn pull(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        events: &Events,
    ) -> Result<Pulled, PullError> {
        let endpoints = self.endpoints(&reference.domain);
        let last = endpoints.len() - 1;
        for (i, endpoint) in endpoints.into_iter().enumerate() {
            match self.pull_from(&endpoint, reference, opts, events).await {
                Err(e) if endpoint.mirror && i < last => {
                    tracing::warn!(
                        "mirror {} failed for {reference}: {e}; trying the next endpoint",
                        endpoint.host
                    );
                }
                result => return result,
            }
        }
        unreachable!("the registry itself is always the last endpoint")
    }

    async fn pull_from(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        opts: &PullOptions,
        events: &Events,
    ) -> Result<Pulled, PullError> {
        let concurrency = match opts.max_concurrent_downloads {
            0 => self.config.max_concurrent_downloads,
            n => n,
        };
        let creds = lookup_credentials(&opts.credentials, &endpoint.host).cloned();
        let client = self
            .clients
            .lock()
            .expect("client cache lock")
            .entry((endpoint.host.clone(), creds))
            .or_insert_with(|| self.config.client(&endpoint.host))
            .clone();
        let remote = Remote::new(client, endpoint, reference, opts, self.config.retries);
        remote.authenticate().await?;

        let (root_bytes, root_digest) = remote.manifest(&reference.object()).await?;
        let root = remote.parse(&root_bytes)?;
        let target = Descriptor {
            media_type: root.media_type().to_string(),
            digest: root_digest,
            size: root_bytes.len() as u64,
        };
        events(Event::Resolved(target.clone()));
        let mut blobs = Vec::new();

        let (manifest_desc, manifest) = match root {
            Document::Index { manifests, .. } => {
                let chosen =
                    opts.platform
                        .select(&manifests)
                        .ok_or_else(|| PullError::NoPlatform {
                            reference: reference.to_string(),
                            platform: opts.platform.to_string(),
                            available: available_platforms(&manifests),
                        })?;
                let (bytes, digest) = remote.manifest(&chosen.digest).await?;
                if bytes.len() as u64 != chosen.size {
                    return Err(remote.blob_error(
                        &chosen.digest,
                        format!(
                            "manifest has {} bytes, the index says {}",
                            bytes.len(),
                            chosen.size
                        ),
                    ));
                }
                let doc = remote.parse(&bytes)?;
                let desc = Descriptor {
                    media_type: doc.media_type().to_string(),
                    digest,
                    size: bytes.len() as u64,
                };
                (Some((desc, bytes)), doc)
            }
            doc => (None, doc),
        };
        let Document::Manifest { config, layers, .. } = manifest else {
            return Err(PullError::Manifest {
                reference: reference.to_string(),
                source: manifest::ManifestError::Unsupported("nested index".into()),
            });
        };

        // Config and layers first: manifests are committed last, so a
        // manifest in the store means its blobs are there too.
        let wanted: Vec<manifest::Descriptor> = std::iter::once(config).chain(layers).collect();
        for d in &wanted {
            let state = if manifest::is_foreign_layer(&d.media_type) {
                BlobState::Skipped
            } else {
                BlobState::Waiting
            };
            events(Event::Blob(progress(d, state, 0)));
        }
        // One task per blob, so that hashing and writing of concurrent
        // downloads use every core.
        let remote = Arc::new(remote);
        let mut queue = wanted
            .into_iter()
            .filter(|d| !manifest::is_foreign_layer(&d.media_type));
        let mut tasks = tokio::task::JoinSet::new();
        let mut fetched: Vec<(Descriptor, u64)> = Vec::new();
        let mut started = Vec::new();
        loop {
            while tasks.len() < concurrency.max(1) {
                let Some(d) = queue.next() else { break };
                started.push(d.digest.clone());
                tasks.spawn(fetch_blob(
                    self.store.clone(),
                    self.config.retries,
                    remote.clone(),
                    d,
                    events.clone(),
                ));
            }
            match tasks.join_next().await {
                None => break,
                Some(Ok(Ok(done))) => fetched.push(done),
                // Dropping the set aborts the other downloads; their
                // ingests stay for the next pull to resume.
                Some(Ok(Err(e @ PullError::NoSpace { .. }))) => {
                    // On a full disk the other partial downloads only hold
                    // the space the user needs back: stop and drop them.
                    tasks.shutdown().await;
                    for digest in &started {
                        if !fetched.iter().any(|(d, _)| &d.digest == digest) {
                            let _ = self.store.abort(&ingest_ref(digest));
                        }
                    }
                    return Err(e);
                }
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => {
                    return Err(PullError::Registry {
                        registry: remote.host.clone(),
                        detail: format!("a download task of {} ended abnormally ({e}); this is a hulld bug, please report it", remote.reference),
                    })
                }
            }
        }
        let bytes_fetched = fetched.iter().map(|(_, n)| n).sum();
        blobs.extend(fetched.into_iter().map(|(d, _)| d));

        // The manifest, then the index (if any): each only after what it
        // references is in the store.
        if let Some((desc, bytes)) = manifest_desc {
            self.store_bytes(&remote, &desc, &bytes, events).await?;
            blobs.push(desc);
        }
        self.store_bytes(&remote, &target, &root_bytes, events)
            .await?;
        blobs.push(target.clone());
        Ok(Pulled {
            target,
            blobs,
            bytes_fetched,
        })
    }

    /// Commit a manifest or index we already hold in memory.
    async fn store_bytes(
        &self,
        remote: &Remote,
        desc: &Descriptor,
        bytes: &[u8],
        events: &Events,
    ) -> Result<(), PullError> {
        let digest: Digest = desc
            .digest
            .parse()
            .map_err(|e| remote.blob_error(&desc.digest, format!("{e}")))?;
        if self.store.info(&digest).is_err() {
            let store = self.store.clone();
            let bytes = bytes.to_vec();
            let reference = ingest_ref(&desc.digest);
            let size = desc.size;
            tokio::task::spawn_blocking(move || {
                let mut w = store.writer(&reference, Some(size), Some(&digest))?;
                w.restart()?;
                w.write_all(&bytes)
                    .map_err(|source| hull_content::Error::Io {
                        what: "writing",
                        path: reference.clone().into(),
                        source,
                    })?;
                w.commit(size, &digest)
            })
            .await
            .expect("content store writer panicked")
            .map_err(PullError::from_store)?;
        }
        events(Event::Committed(desc.clone()));
        Ok(())
    }
}

/// Download one blob into its ingest, resuming and retrying; returns
/// the descriptor and the bytes that came over the network.
async fn fetch_blob(
    store: Arc<dyn ContentStore + Send + Sync>,
    retries: u32,
    remote: Arc<Remote>,
    d: manifest::Descriptor,
    events: Events,
) -> Result<(Descriptor, u64), PullError> {
    let d = &d;
    let desc = Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
    };
    let digest: Digest = d
        .digest
        .parse()
        .map_err(|e| remote.blob_error(&d.digest, format!("{e}")))?;
    let reference = ingest_ref(&d.digest);
    let mut fetched = 0;
    let mut attempt = 0;
    loop {
        if store.info(&digest).is_ok() {
            events(Event::Blob(progress(d, BlobState::Exists, d.size)));
            events(Event::Committed(desc.clone()));
            return Ok((desc, fetched));
        }
        let mut writer = match store.writer(&reference, Some(d.size), Some(&digest)) {
            Ok(w) => w,
            // Another pull is fetching the same blob: wait for it.
            Err(hull_content::Error::Locked(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(PullError::from_store(e)),
        };
        let before = writer.offset();
        let result = remote.download(d, &mut writer, &events).await;
        fetched += writer.offset().saturating_sub(before);
        match result {
            Ok(()) => {
                let size = d.size;
                let committed = tokio::task::spawn_blocking({
                    let digest = digest.clone();
                    move || writer.commit(size, &digest)
                })
                .await
                .expect("content store commit panicked");
                return match committed {
                    Ok(_) => {
                        events(Event::Blob(progress(d, BlobState::Done, d.size)));
                        events(Event::Committed(desc.clone()));
                        Ok((desc, fetched))
                    }
                    Err(e @ hull_content::Error::DigestMismatch { .. }) => Err(remote
                        .blob_error(&d.digest, format!("the registry sent wrong content: {e}"))),
                    Err(e) => Err(PullError::from_store(e)),
                };
            }
            Err(e @ PullError::NoSpace { .. }) => {
                // A partial download is no use on a full disk, and its
                // bytes are what the next pull (of anything) needs.
                drop(writer);
                let _ = store.abort(&reference);
                return Err(e);
            }
            Err(e) if e.transient() && attempt < retries => {
                attempt += 1;
                tracing::warn!("{e}; retrying (attempt {attempt})");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Exponential: 400 ms, 800 ms, 1.6 s, ... capped at 6.4 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 << attempt.min(5))
}

fn ingest_ref(digest: &str) -> String {
    format!("pull-{digest}")
}

fn progress(d: &manifest::Descriptor, state: BlobState, offset: u64) -> BlobProgress {
    BlobProgress {
        digest: d.digest.clone(),
        media_type: d.media_type.clone(),
        state,
        offset,
        total: d.size,
    }
}

fn available_platforms(manifests: &[manifest::Descriptor]) -> String {
    let list: Vec<String> = manifests
        .iter()
        .filter_map(|m| m.platform.as_ref())
        .map(|p| Platform::new(&p.os, &p.architecture, p.variant.as_deref()).to_string())
        .collect();
    if list.is_empty() {
        "no platform entries".into()
    } else {
        list.join(", ")
    }
}

/// One repository on one endpoint, with its authenticated client.
struct Remote {
    client: Client,
    image: oci_client::Reference,
    auth: RegistryAuth,
    /// The host requests go to (a mirror or the registry).
    host: String,
    reference: String,
    /// Further attempts after a transient failure (5xx, reset).
    retries: u32,
}

impl Remote {
    fn new(
        client: Client,
        endpoint: &Endpoint,
        reference: &Reference,
        opts: &PullOptions,
        retries: u32,
    ) -> Remote {
        let mut image = oci_client::Reference::with_tag(
            reference.domain.clone(),
            reference.path.clone(),
            reference.object(),
        );
        if endpoint.mirror {
            image.set_mirror_registry(endpoint.host.clone());
        }
        let auth = lookup_credentials(&opts.credentials, &endpoint.host)
            .map(|(u, s)| RegistryAuth::Basic(u.clone(), s.clone()))
            .unwrap_or(RegistryAuth::Anonymous);
        Remote {
            client,
            image,
            auth,
            host: endpoint.host.clone(),
            reference: reference.to_string(),
            retries,
        }
    }

    fn blob_error(&self, digest: &str, detail: String) -> PullError {
        PullError::Blob {
            reference: self.reference.clone(),
            digest: digest.to_string(),
            detail,
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<Document, PullError> {
        Document::parse(bytes, "").map_err(|source| PullError::Manifest {
            reference: self.reference.clone(),
            source,
        })
    }

    /// Ping the registry and get a token if it wants one: also where an
    /// unreachable registry or rejected credentials show up first.
    async fn authenticate(&self) -> Result<(), PullError> {
        self.client
            .auth(&self.image, &self.auth, RegistryOperation::Pull)
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }

    async fn manifest(&self, object: &str) -> Result<(Vec<u8>, String), PullError> {
        let image = if object.contains(':') {
            self.image.clone_with_digest(object.to_string())
        } else {
            self.image.clone()
        };
        let mut attempt = 0;
        loop {
            match self
                .client
                .pull_manifest_raw(&image, &self.auth, manifest::ACCEPT)
                .await
                .map_err(|e| self.error(e))
            {
                Ok((bytes, digest)) => return Ok((bytes.to_vec(), digest)),
                Err(e @ PullError::Unreachable { .. }) if attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!("{e}; retrying (attempt {attempt})");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Stream the rest of a blob into `writer` (from its offset).
    async fn download(
        &self,
        d: &manifest::Descriptor,
        writer: &mut hull_content::Writer,
        events: &Events,
    ) -> Result<(), PullError> {
        let offset = writer.offset();
        if offset > d.size {
            writer.restart().map_err(PullError::from_store)?;
        }
        let offset = writer.offset();
        let digest = d.digest.as_str();
        let interrupted =
            |e: &dyn std::fmt::Display| self.blob_error(digest, format!("{TRANSIENT}: {e}"));
        let mut stream = if d.size == 0 || offset == d.size {
            // Nothing to ask a range of (a Range past the end is a 416).
            if offset == d.size && d.size > 0 {
                return Ok(());
            }
            self.client
                .pull_blob_stream(&self.image, digest)
                .await
                .map_err(|e| self.blob_fetch_error(digest, e))?
                .stream
        } else {
            // Asking with a Range even from 0 makes registries answer 206,
            // which oci-client passes through without hashing it a second
            // time (the ingest verifies).
            match self
                .client
                .pull_blob_stream_partial(&self.image, digest, offset, None)
                .await
                .map_err(|e| self.blob_fetch_error(digest, e))?
            {
                BlobResponse::Partial(s) => s.stream,
                BlobResponse::Full(s) => {
                    writer.restart().map_err(PullError::from_store)?;
                    s.stream
                }
            }
        };
        let state = if writer.offset() > 0 {
            BlobState::Resuming
        } else {
            BlobState::Downloading
        };
        events(Event::Blob(progress(d, state, writer.offset())));
        let mut last_report = Instant::now();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| interrupted(&e))?;
            if writer.offset() + chunk.len() as u64 > d.size {
                return Err(self.blob_error(
                    digest,
                    format!(
                        "the registry sent more than the {} bytes the manifest lists",
                        d.size
                    ),
                ));
            }
            writer.write_all(&chunk).map_err(|source| {
                PullError::from_store(hull_content::Error::Io {
                    what: "writing the ingest of",
                    path: digest.into(),
                    source,
                })
            })?;
            if last_report.elapsed() >= Duration::from_millis(100) {
                last_report = Instant::now();
                events(Event::Blob(progress(
                    d,
                    BlobState::Downloading,
                    writer.offset(),
                )));
            }
        }
        if writer.offset() < d.size {
            return Err(interrupted(&format_args!(
                "body ended after {} of {} bytes",
                writer.offset(),
                d.size
            )));
        }
        Ok(())
    }

    fn blob_fetch_error(&self, digest: &str, e: OciDistributionError) -> PullError {
        match self.error(e) {
            PullError::Registry { detail, .. } => self.blob_error(digest, detail),
            PullError::Unreachable { detail, .. } => {
                self.blob_error(digest, format!("{TRANSIENT}: {detail}"))
            }
            other => other,
        }
    }

    /// Turn oci-client's errors into ones that say what to do.
    fn error(&self, e: OciDistributionError) -> PullError {
        let registry = self.host.clone();
        let reference = self.reference.clone();
        let unauthorized = |detail: String| PullError::Unauthorized {
            reference: reference.clone(),
            registry: registry.clone(),
            detail,
        };
        let not_found = |detail: String| PullError::NotFound {
            reference: reference.clone(),
            registry: registry.clone(),
            detail,
        };
        match e {
            OciDistributionError::UnauthorizedError { .. } => {
                unauthorized("401 unauthorized".into())
            }
            OciDistributionError::AuthenticationFailure(why) => {
                unauthorized(format!("credentials rejected: {}", why.trim()))
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let detail = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                    )
                }) {
                    not_found(detail)
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    unauthorized(detail)
                } else {
                    PullError::Registry { registry, detail }
                }
            }
            OciDistributionError::ServerError { code, message, .. } => match code {
                404 => not_found(format!("404 {}", message.trim())),
                401 | 403 => unauthorized(format!("{code} {}", message.trim())),
                c if c >= 500 => PullError::Unreachable {
                    registry,
                    detail: format!("server error {c} {}", message.trim()),
                },
                _ => PullError::Registry {
                    registry,
                    detail: format!("HTTP {code}: {}", message.trim()),
                },
            },
            OciDistributionError::RequestError(e) => unreachable_error(&registry, &e),
            other => PullError::Registry {
                registry,
                detail: other.to_string(),
            },
        }
    }
}

/// rustls needs one process-wide crypto provider; we build with ring only
/// (aws-lc-rs would add a C/cmake build), so install it before any client.
fn ensure_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Check `username`/`secret` against `host` (for `hullctl login`): a basic
/// auth registry must accept them on `/v2/`; a token registry's token
/// server must issue a token for them.
pub async fn check_credentials(
    config: &RegistryConfig,
    host: &str,
    username: &str,
    secret: &str,
) -> Result<(), PullError> {
    ensure_crypto_provider();
    let scheme = if config.is_insecure(host) {
        "http"
    } else {
        "https"
    };
    let unreachable = |e: reqwest::Error| unreachable_error(host, &e);
    let mut roots = Vec::new();
    for pem in &config.extra_roots {
        roots.extend(reqwest::Certificate::from_pem_bundle(pem).map_err(unreachable)?);
    }
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .tls_certs_merge(roots)
        .build()
        .map_err(unreachable)?;
    let response = http
        .get(format!("{scheme}://{host}/v2/"))
        .basic_auth(username, Some(secret))
        .send()
        .await
        .map_err(unreachable)?;
    let rejected = |detail: String| PullError::Unauthorized {
        reference: format!("user {username:?}"),
        registry: host.to_string(),
        detail,
    };
    match response.status().as_u16() {
        200..=299 => Ok(()),
        401 => {
            let challenge = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !challenge.to_ascii_lowercase().starts_with("bearer") {
                return Err(rejected(
                    "the registry rejected the username or password".into(),
                ));
            }
            let endpoint = Endpoint {
                host: host.to_string(),
                mirror: false,
            };
            let probe: Reference =
                format!("{host}/hull-login-check")
                    .parse()
                    .map_err(|e| PullError::Registry {
                        registry: host.to_string(),
                        detail: format!("{e}"),
                    })?;
            let creds: Credentials =
                [(host.to_string(), (username.to_string(), secret.to_string()))].into();
            let opts = PullOptions {
                platform: Platform::host(),
                credentials: creds,
                max_concurrent_downloads: 1,
            };
            Remote::new(config.client(host), &endpoint, &probe, &opts, 0)
                .authenticate()
                .await
        }
        code => Err(PullError::Registry {
            registry: host.to_string(),
            detail: format!("GET /v2/ answered HTTP {code}"),
        }),
    }
}

/// A request that did not get an answer; TLS failures say how to fix them.
fn unreachable_error(registry: &str, e: &reqwest::Error) -> PullError {
    let detail = error_chain(e);
    if detail.contains("certificate") || detail.contains("InvalidContentType") {
        PullError::Tls {
            registry: registry.to_string(),
            detail,
        }
    } else {
        PullError::Unreachable {
            registry: registry.to_string(),
            detail,
        }
    }
}

/// reqwest's Display stops at "error sending request"; the cause (e.g.
/// "Connection refused") is further down the source chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Credentials for `host`; Docker Hub's are stored under its legacy names.
pub fn lookup_credentials<'a>(creds: &'a Credentials, host: &str) -> Option<&'a (String, String)> {
    let aliases: &[&str] = if host == "docker.io" {
        &["docker.io", "index.docker.io", "registry-1.docker.io"]
    } else {
        &[host]
    };
    aliases.iter().find_map(|h| creds.get(*h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_listed_registries() {
        let config = RegistryConfig {
            insecure: vec!["registry.lan:5000".into(), "build-cache".into()],
            ..RegistryConfig::default()
        };
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:41234",
            "[::1]:5000",
            "registry.lan:5000",
            "build-cache:80",
        ] {
            assert!(config.is_insecure(host), "{host}");
        }
        for host in [
            "docker.io",
            "registry.lan:5001",
            "127.0.0.2:5000",
            "localhost.evil.com",
        ] {
            assert!(!config.is_insecure(host), "{host}");
        }
    }

    #[test]
    fn mirrors_come_before_the_registry() {
        let config = RegistryConfig {
            mirrors: [(
                "docker.io".to_string(),
                vec!["127.0.0.1:5001".to_string(), "mirror.lan".to_string()],
            )]
            .into(),
            ..RegistryConfig::default()
        };
        let store = Arc::new(
            hull_content::LocalStore::open(
                std::env::temp_dir().join(format!("hull-pull-test-{}", std::process::id())),
            )
            .unwrap(),
        );
        let puller = Puller::new(store, config);
        let hosts: Vec<(String, bool)> = puller
            .endpoints("docker.io")
            .into_iter()
            .map(|e| (e.host, e.mirror))
            .collect();
        assert_eq!(
            hosts,
            [
                ("127.0.0.1:5001".into(), true),
                ("mirror.lan".into(), true),
                ("docker.io".into(), false)
            ]
        );
        assert_eq!(puller.endpoints("quay.io").len(), 1);
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("hull-pull-test-{}", std::process::id())),
        );
    }

    #[test]
    fn docker_hub_credentials_under_any_of_its_names() {
        let creds: Credentials = [(
            "index.docker.io".to_string(),
            ("u".to_string(), "p".to_string()),
        )]
        .into();
        assert!(lookup_credentials(&creds, "docker.io").is_some());
        assert!(lookup_credentials(&creds, "quay.io").is_none());
    }
}
