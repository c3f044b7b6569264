//! Pulling images from registries into the content store, over our
//! registry client ([`crate::registry`]):
//! - manifests are fetched raw and parsed in [`crate::manifest`]: the exact
//!   bytes are stored under their digest, schema 1 is refused clearly, and
//!   platform matching knows variants;
//! - blobs stream straight into a content-store ingest that hashes while it
//!   writes (one SHA-256 pass), asked for with a Range from the ingest's
//!   offset so an interrupted download (dropped connection, killed daemon)
//!   resumes;
//! - retries with backoff on 5xx, resets, truncated and too slow bodies.
//!
//! Order of visibility: every blob is committed (size and digest verified)
//! and reported with [`Event::Committed`] as it lands; the caller writes the
//! image record only after [`Puller::pull`] returns, i.e. when all of it is
//! there.

use crate::manifest::{self, Document};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{self, body::Progress};
use hull_content::{ContentStore, Digest};
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
    /// The minimum-progress rule for every response body.
    pub progress: Progress,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure: Vec::new(),
            mirrors: BTreeMap::new(),
            max_concurrent_downloads: 3,
            retries: 3,
            extra_roots: Vec::new(),
            progress: Progress::default(),
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

    /// A client speaking to `host` with `credentials`.
    pub fn client(
        &self,
        host: &str,
        credentials: Option<(String, String)>,
    ) -> Result<registry::Client, registry::Error> {
        let settings = registry::Settings {
            plain_http: self.is_insecure(host),
            extra_roots: self.extra_roots.clone(),
            progress: self.progress,
        };
        registry::Client::new(host, &settings, credentials)
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
    /// Queued, or waiting for another pull that is downloading the same
    /// blob (the offset then is that download's).
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

/// What a failed blob download means for its partial data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobFailure {
    /// The network or the server: retry, resuming from the data so far.
    Transient,
    /// The registry sent wrong data: drop what was written.
    BadData,
    /// Anything else: keep the data, do not retry.
    Fatal,
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
    /// A document over its size limit: refused, never retried.
    #[error("{reference}: {detail}")]
    TooLarge { reference: String, detail: String },
    #[error("{reference}: the index has no image for platform {platform} ({available}): choose one with --platform")]
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
        failure: BlobFailure,
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
            || matches!(
                self,
                PullError::Blob {
                    failure: BlobFailure::Transient,
                    ..
                }
            )
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

    /// A registry client's error, in the words of a pull of `reference`
    /// from `registry`.
    fn from_registry(registry: &str, reference: &str, e: registry::Error) -> PullError {
        let (registry, reference) = (registry.to_string(), reference.to_string());
        let detail = e.to_string();
        match e {
            registry::Error::NotFound { detail } => PullError::NotFound {
                reference,
                registry,
                detail,
            },
            registry::Error::Unauthorized { detail } => PullError::Unauthorized {
                reference,
                registry,
                detail,
            },
            registry::Error::Unreachable { detail } => PullError::Unreachable { registry, detail },
            registry::Error::Tls { detail } => PullError::Tls { registry, detail },
            registry::Error::TooLarge { .. } => PullError::TooLarge { reference, detail },
            registry::Error::TooSlow { .. }
            | registry::Error::Interrupted { .. }
            | registry::Error::RedirectLoop { .. }
            | registry::Error::Protocol { .. } => PullError::Registry { registry, detail },
        }
    }
}

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
    clients: std::sync::Mutex<BTreeMap<ClientKey, Arc<registry::Client>>>,
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

    /// The kept client for `host` and the credentials the pull has for it.
    fn client(&self, host: &str, opts: &PullOptions) -> Result<Arc<registry::Client>, PullError> {
        let creds = lookup_credentials(&opts.credentials, host).cloned();
        let mut clients = self.clients.lock().expect("client cache lock");
        let key = (host.to_string(), creds.clone());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = Arc::new(
            self.config
                .client(host, creds)
                .map_err(|e| PullError::from_registry(host, host, e))?,
        );
        clients.insert(key, client.clone());
        Ok(client)
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
        let client = self.client(&endpoint.host, opts)?;
        let remote = Remote::new(client, endpoint, reference, self.config.retries);
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
                        BlobFailure::Fatal,
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
        // downloads use every core. Dropping the set (the pull failed, or
        // the client went away and the caller dropped this future) aborts
        // the downloads; their ingests stay for the next pull to resume.
        let remote = Arc::new(remote);
        let mut queue = wanted
            .into_iter()
            .filter(|d| !manifest::is_foreign_layer(&d.media_type));
        let mut tasks = tokio::task::JoinSet::new();
        let mut fetched: Vec<(Descriptor, u64)> = Vec::new();
        let mut started = Vec::new();
        let fetcher = Arc::new(BlobFetcher {
            store: self.store.clone(),
            retries: self.config.retries,
            // A download of the same blob by another pull is waited for as
            // long as it makes progress; its own rule ends it otherwise.
            stall: self.config.progress.window * 2,
            remote: remote.clone(),
            events: events.clone(),
        });
        loop {
            while tasks.len() < concurrency.max(1) {
                let Some(d) = queue.next() else { break };
                started.push(d.digest.clone());
                tasks.spawn(fetcher.clone().fetch(d));
            }
            match tasks.join_next().await {
                None => break,
                Some(Ok(Ok(done))) => fetched.push(done),
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
            .map_err(|e| remote.blob_error(&desc.digest, format!("{e}"), BlobFailure::Fatal))?;
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

/// What every blob download of one pull shares.
struct BlobFetcher {
    store: Arc<dyn ContentStore + Send + Sync>,
    retries: u32,
    /// How long another pull's download of the same blob may go without
    /// progress before this one gives up waiting for it.
    stall: Duration,
    remote: Arc<Remote>,
    events: Events,
}

impl BlobFetcher {
    /// Download one blob into its ingest, resuming and retrying; returns
    /// the descriptor and the bytes that came over the network.
    async fn fetch(
        self: Arc<Self>,
        d: manifest::Descriptor,
    ) -> Result<(Descriptor, u64), PullError> {
        let (remote, events) = (&self.remote, &self.events);
        let d = &d;
        let desc = Descriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size,
        };
        let digest: Digest = d
            .digest
            .parse()
            .map_err(|e| remote.blob_error(&d.digest, format!("{e}"), BlobFailure::Fatal))?;
        let reference = ingest_ref(&d.digest);
        let mut fetched = 0;
        let mut attempt = 0;
        let mut other = OtherDownload::new();
        loop {
            if let Ok(info) = self.store.info(&digest) {
                if info.size != d.size {
                    return Err(remote.blob_error(
                        &d.digest,
                        format!(
                            "the manifest lists it with {} bytes, but the blob in the store has {}: the manifest is wrong",
                            d.size, info.size
                        ),
                        BlobFailure::Fatal,
                    ));
                }
                events(Event::Blob(progress(d, BlobState::Exists, d.size)));
                events(Event::Committed(desc.clone()));
                return Ok((desc, fetched));
            }
            let mut writer = match self.store.writer(&reference, Some(d.size), Some(&digest)) {
                Ok(w) => w,
                Err(hull_content::Error::Locked(_)) => {
                    // Another pull is fetching the same blob: wait for it
                    // while it makes progress (shown as ours).
                    let offset = self.store.status(&reference).map(|s| s.offset).unwrap_or(0);
                    if other.advanced(offset) {
                        events(Event::Blob(progress(d, BlobState::Waiting, offset)));
                    } else if other.stalled_for() > self.stall {
                        return Err(remote.blob_error(
                            &d.digest,
                            format!(
                                "another pull has been downloading it without progress for {}s: try again later",
                                other.stalled_for().as_secs()
                            ),
                            BlobFailure::Fatal,
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => return Err(PullError::from_store(e)),
            };
            let before = writer.offset();
            let result = remote.download(d, &mut writer, events).await;
            fetched += writer.offset().saturating_sub(before);
            match result {
                Ok(()) => return self.commit(d, desc, digest, writer, fetched).await,
                Err(
                    e @ (PullError::NoSpace { .. }
                    | PullError::Blob {
                        failure: BlobFailure::BadData,
                        ..
                    }),
                ) => {
                    // A partial download is no use on a full disk (its
                    // bytes are what the next pull needs), nor when the
                    // registry sent wrong data.
                    drop(writer);
                    let _ = self.store.abort(&reference);
                    return Err(e);
                }
                Err(e) if e.transient() && attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!("{e}; retrying (attempt {attempt})");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Verify and publish a complete download.
    async fn commit(
        &self,
        d: &manifest::Descriptor,
        desc: Descriptor,
        digest: Digest,
        writer: hull_content::Writer,
        fetched: u64,
    ) -> Result<(Descriptor, u64), PullError> {
        let size = d.size;
        let committed = tokio::task::spawn_blocking(move || writer.commit(size, &digest))
            .await
            .expect("content store commit panicked");
        match committed {
            Ok(_) => {
                (self.events)(Event::Blob(progress(d, BlobState::Done, d.size)));
                (self.events)(Event::Committed(desc.clone()));
                Ok((desc, fetched))
            }
            // The store has dropped the data already.
            Err(e @ hull_content::Error::DigestMismatch { .. }) => Err(self.remote.blob_error(
                &d.digest,
                format!("the registry sent wrong content: {e}"),
                BlobFailure::BadData,
            )),
            Err(e) => Err(PullError::from_store(e)),
        }
    }
}

/// Progress of a download of the same blob by another pull, as seen
/// through its ingest's size.
struct OtherDownload {
    offset: Option<u64>,
    since: Instant,
}

impl OtherDownload {
    fn new() -> OtherDownload {
        OtherDownload {
            offset: None,
            since: Instant::now(),
        }
    }

    /// Whether the other download got further since the last look.
    fn advanced(&mut self, offset: u64) -> bool {
        if self.offset == Some(offset) {
            return false;
        }
        self.offset = Some(offset);
        self.since = Instant::now();
        true
    }

    fn stalled_for(&self) -> Duration {
        self.since.elapsed()
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

/// "N available, e.g. linux/arm64, linux/s390x": an index may list any
/// number of platforms, and the message goes into a gRPC status.
fn available_platforms(manifests: &[manifest::Descriptor]) -> String {
    const SHOWN: usize = 5;
    let mut distinct: Vec<String> = Vec::new();
    let mut total = 0;
    for p in manifests.iter().filter_map(|m| m.platform.as_ref()) {
        total += 1;
        let name = Platform::new(&p.os, &p.architecture, p.variant.as_deref()).to_string();
        if distinct.len() < SHOWN && !distinct.contains(&name) {
            distinct.push(name);
        }
    }
    match total {
        0 => "it lists no platforms".into(),
        n if n <= SHOWN => format!("it has: {}", distinct.join(", ")),
        n => format!("{n} available, e.g. {}", distinct.join(", ")),
    }
}

/// One repository on one endpoint, with its authenticated client.
struct Remote {
    client: Arc<registry::Client>,
    /// The repository path (`library/busybox`).
    repo: String,
    /// The registry a mirror stands in for (`?ns=` on every request).
    ns: Option<String>,
    /// The host requests go to (a mirror or the registry).
    host: String,
    reference: String,
    /// Further attempts after a transient failure (5xx, reset).
    retries: u32,
}

impl Remote {
    fn new(
        client: Arc<registry::Client>,
        endpoint: &Endpoint,
        reference: &Reference,
        retries: u32,
    ) -> Remote {
        Remote {
            client,
            repo: reference.path.clone(),
            ns: endpoint.mirror.then(|| reference.domain.clone()),
            host: endpoint.host.clone(),
            reference: reference.to_string(),
            retries,
        }
    }

    fn blob_error(&self, digest: &str, detail: String, failure: BlobFailure) -> PullError {
        PullError::Blob {
            reference: self.reference.clone(),
            digest: digest.to_string(),
            detail,
            failure,
        }
    }

    fn error(&self, e: registry::Error) -> PullError {
        PullError::from_registry(&self.host, &self.reference, e)
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
            .ping(&format!("repository:{}:pull", self.repo))
            .await
            .map_err(|e| self.error(e))
    }

    async fn manifest(&self, object: &str) -> Result<(Vec<u8>, String), PullError> {
        let mut attempt = 0;
        loop {
            match self
                .client
                .manifest(&self.repo, object, self.ns.as_deref(), manifest::ACCEPT)
                .await
            {
                Ok(m) => return Ok((m.bytes, m.digest)),
                Err(e) if e.transient() && attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!("{}; retrying (attempt {attempt})", self.error(e));
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(self.error(e)),
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
        if writer.offset() > d.size {
            writer.restart().map_err(PullError::from_store)?;
        }
        let offset = writer.offset();
        if offset == d.size && d.size > 0 {
            return Ok(());
        }
        let digest = d.digest.as_str();
        // An empty blob has no range to ask for (a Range past the end is
        // a 416).
        let range = (d.size > 0).then_some(offset);
        let mut blob = self
            .client
            .blob(&self.repo, digest, range, self.ns.as_deref())
            .await
            .map_err(|e| self.blob_fetch_error(digest, e))?;
        if !blob.partial {
            writer.restart().map_err(PullError::from_store)?;
        }
        let state = if writer.offset() > 0 {
            BlobState::Resuming
        } else {
            BlobState::Downloading
        };
        events(Event::Blob(progress(d, state, writer.offset())));
        let mut last_report = Instant::now();
        while let Some(chunk) = blob
            .body
            .chunk()
            .await
            .map_err(|e| self.blob_fetch_error(digest, e))?
        {
            if writer.offset() + chunk.len() as u64 > d.size {
                return Err(self.blob_error(
                    digest,
                    format!(
                        "the registry sent more than the {} bytes the manifest lists",
                        d.size
                    ),
                    BlobFailure::BadData,
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
            return Err(self.blob_error(
                digest,
                format!(
                    "transfer interrupted: body ended after {} of {} bytes",
                    writer.offset(),
                    d.size
                ),
                BlobFailure::Transient,
            ));
        }
        Ok(())
    }

    /// A blob request's failure: the network's (retried) or the answer's.
    fn blob_fetch_error(&self, digest: &str, e: registry::Error) -> PullError {
        let failure = if e.transient() {
            BlobFailure::Transient
        } else {
            BlobFailure::Fatal
        };
        match e {
            registry::Error::NotFound { .. }
            | registry::Error::Unauthorized { .. }
            | registry::Error::Tls { .. } => self.error(e),
            e => self.blob_error(digest, e.to_string(), failure),
        }
    }
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
    let who = format!("user {username:?}");
    let client = config
        .client(host, Some((username.to_string(), secret.to_string())))
        .map_err(|e| PullError::from_registry(host, &who, e))?;
    client
        .ping("")
        .await
        .map_err(|e| PullError::from_registry(host, &who, e))
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
