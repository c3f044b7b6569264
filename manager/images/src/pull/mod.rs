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

mod blob;
mod feed;
mod remote;
mod unpack;

pub use unpack::{chain_ids, unpack_stored, LayerUnpacker, UnpackProgress};

use crate::hosts::{self, Capabilities, HostConfig, HostsError, TlsSettings};
use crate::manifest::{self, Document};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{self, body::Progress};
use blob::BlobFetcher;
use feed::Feeds;
use hull_content::{ContentStore, Digest};
use remote::Remote;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// containerd's certs.d directory ([`crate::hosts`]): per registry
    /// host, mirrors, capabilities and TLS settings (CA, client
    /// certificate). Read at each pull; `None`: not used.
    pub config_path: Option<PathBuf>,
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
            config_path: None,
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

    /// Where `domain`'s content may be fetched, in the order to try, and
    /// how to connect to each. With a hosts.toml for `domain` under
    /// `config_path`: its hosts, then its server. Without one: `mirrors`
    /// (pull and resolve, TLS from each mirror's own certs.d directory),
    /// then the registry (TLS from docker-style files in its directory).
    /// Read now, so edits apply to the next pull without a restart.
    pub fn endpoints(&self, domain: &str) -> Result<Vec<Endpoint>, HostsError> {
        let config = self.hosts(domain)?;
        if config.hosts_file.is_some() {
            let endpoints = config.endpoints.into_iter();
            return Ok(endpoints.map(|e| self.endpoint(domain, e)).collect());
        }
        let mut endpoints = Vec::new();
        for mirror in self.mirrors.get(domain).into_iter().flatten() {
            let own = self.hosts(mirror)?.server().clone();
            let legacy = hosts::Endpoint {
                host: mirror.clone(),
                plain_http: None,
                capabilities: Capabilities {
                    push: false,
                    ..Capabilities::ALL
                },
                ..own
            };
            endpoints.push(self.endpoint(domain, legacy));
        }
        endpoints.push(self.endpoint(domain, config.server().clone()));
        Ok(endpoints)
    }

    /// Where a push to `domain` goes, in order: the endpoints with the
    /// "push" capability (without a hosts.toml, the registry only: mirrors
    /// are never pushed to).
    pub fn push_endpoints(&self, domain: &str) -> Result<Vec<Endpoint>, HostsError> {
        let endpoints = self.endpoints(domain)?.into_iter();
        Ok(endpoints.filter(|e| e.capabilities.push).collect())
    }

    /// The server `host` stands for (itself unless its hosts.toml names
    /// another `server`), with its certs.d settings.
    pub fn server(&self, host: &str) -> Result<Endpoint, HostsError> {
        let config = self.hosts(host)?;
        Ok(self.endpoint(host, config.server().clone()))
    }

    /// The client settings of [`RegistryConfig::server`]`(host)`.
    pub fn settings_for(&self, host: &str) -> Result<registry::Settings, HostsError> {
        Ok(self.settings(&self.server(host)?))
    }

    /// The client settings for `endpoint`: its TLS settings, with
    /// `registry.ca_files` trusted as well.
    pub fn settings(&self, endpoint: &Endpoint) -> registry::Settings {
        let mut extra_roots = self.extra_roots.clone();
        extra_roots.extend(endpoint.tls.ca_pems.iter().cloned());
        registry::Settings {
            plain_http: endpoint.plain_http,
            extra_roots,
            client_identity: endpoint.tls.client_identity_pem.clone(),
            skip_verify: endpoint.tls.skip_verify,
            headers: endpoint.headers.clone(),
            progress: self.progress,
        }
    }

    /// A client speaking to `host`'s server (see
    /// [`RegistryConfig::server`]) with `credentials` and its certs.d TLS
    /// settings.
    pub fn client(
        &self,
        host: &str,
        credentials: Option<(String, String)>,
    ) -> Result<registry::Client, registry::Error> {
        let server = self.server(host).map_err(|e| registry::Error::Protocol {
            detail: e.to_string(),
        })?;
        registry::Client::new(&server.host, &self.settings(&server), credentials)
    }

    fn hosts(&self, host: &str) -> Result<HostConfig, HostsError> {
        match &self.config_path {
            Some(path) => hosts::load(path, host),
            None => Ok(HostConfig::registry_only(host)),
        }
    }

    /// `e` as an endpoint of `domain`: HTTPS unless its URL says http://
    /// or, not said, [`RegistryConfig::is_insecure`].
    fn endpoint(&self, domain: &str, e: hosts::Endpoint) -> Endpoint {
        Endpoint {
            mirror: e.host != domain,
            plain_http: e.plain_http.unwrap_or_else(|| self.is_insecure(&e.host)),
            host: e.host,
            capabilities: e.capabilities,
            tls: e.tls,
            headers: e.headers,
        }
    }
}

/// Username and secret (password or token) for one registry host.
pub type Credentials = BTreeMap<String, (String, String)>;

pub struct PullOptions {
    pub platform: Platform,
    pub credentials: Credentials,
    /// 0: the configured default.
    pub max_concurrent_downloads: usize,
    /// Unpack the layers into snapshots while they download.
    pub unpacker: Option<Arc<dyn LayerUnpacker>>,
}

/// What a pull reports while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The reference resolved to this manifest or index.
    Resolved(Descriptor),
    Blob(BlobProgress),
    /// A blob is in the store, verified (new or already there).
    Committed(Descriptor),
    Unpack(UnpackProgress),
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
    /// Push: being sent to the registry.
    Uploading,
    /// Push: the registry mounted it from another of its repositories.
    Mounted,
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
            BlobState::Uploading => "uploading",
            BlobState::Mounted => "mounted",
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

#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    /// The top layer's snapshot (chain ID), when unpacked.
    pub snapshot: Option<String>,
    /// The image config (of the platform pulled).
    pub config: Descriptor,
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
    #[error("TLS with registry {registry} failed ({detail}): if it uses a private CA, put the CA's PEM file at <config_path>/{registry}/ca.crt or name it in a hosts.toml there (registry.config_path in hulld's config, default /etc/hull/certs.d), or add it to registry.ca_files; if it requires a client certificate, put client.cert and client.key there; if it speaks plain HTTP, list it in registry.insecure")]
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
    #[error("{reference}: unpacking: {detail}")]
    Unpack { reference: String, detail: String },
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

/// One endpoint to try: a mirror or the registry itself, and how to
/// connect to it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// `host[:port]`.
    pub host: String,
    /// Not the registry itself: requests name the registry in `?ns=`.
    pub mirror: bool,
    pub plain_http: bool,
    pub capabilities: Capabilities,
    pub tls: TlsSettings,
    /// Extra request headers (hosts.toml `[header]`).
    pub headers: Vec<(String, String)>,
}

/// An endpoint (all its settings: an edited hosts.toml gets a new client)
/// and the credentials used there.
type ClientKey = (Endpoint, Option<(String, String)>);

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

    /// Pull `reference` from its endpoints ([`RegistryConfig::endpoints`]):
    /// mirrors first (any failure there falls back to the next endpoint),
    /// then the registry.
    ///
    /// Capabilities, as containerd: a tag is resolved to a digest only at
    /// an endpoint with "resolve", content is fetched only from one with
    /// "pull". When every pulling endpoint may also resolve (the usual
    /// case), each is tried for the whole pull in turn; otherwise (a
    /// pull-only mirror) the tag is resolved first at the resolving
    /// endpoints, and the content then fetched by that digest.
    pub async fn pull(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        events: &Events,
    ) -> Result<Pulled, PullError> {
        let domain = &reference.domain;
        let endpoints = self
            .config
            .endpoints(domain)
            .map_err(|e| PullError::Registry {
                registry: domain.clone(),
                detail: e.to_string(),
            })?;
        let with = |want: fn(&Capabilities) -> bool| -> Vec<Endpoint> {
            let able = endpoints.iter().filter(|e| want(&e.capabilities));
            able.cloned().collect()
        };
        let split = endpoints
            .iter()
            .any(|e| e.capabilities.pull != e.capabilities.resolve);
        if reference.digest.is_some() {
            return self
                .pull_each(&with(|c| c.pull), reference, opts, events)
                .await;
        }
        if !split {
            let both = with(|c| c.pull && c.resolve);
            return self.pull_each(&both, reference, opts, events).await;
        }
        let digest = self.resolve(&with(|c| c.resolve), reference, opts).await?;
        let pinned = Reference {
            digest: Some(digest),
            ..reference.clone()
        };
        self.pull_each(&with(|c| c.pull), &pinned, opts, events)
            .await
    }

    /// Pull from the first of `endpoints` that can.
    async fn pull_each(
        &self,
        endpoints: &[Endpoint],
        reference: &Reference,
        opts: &PullOptions,
        events: &Events,
    ) -> Result<Pulled, PullError> {
        let last = endpoints.len().saturating_sub(1);
        for (i, endpoint) in endpoints.iter().enumerate() {
            match self.pull_from(endpoint, reference, opts, events).await {
                Err(e) if i < last => {
                    tracing::warn!(
                        "{} failed for {reference}: {e}; trying the next endpoint",
                        endpoint.host
                    );
                }
                result => return result,
            }
        }
        Err(no_endpoint(reference, "pull"))
    }

    /// The digest `reference`'s tag names, from the first of `endpoints`
    /// that answers.
    async fn resolve(
        &self,
        endpoints: &[Endpoint],
        reference: &Reference,
        opts: &PullOptions,
    ) -> Result<Digest, PullError> {
        let last = endpoints.len().saturating_sub(1);
        for (i, endpoint) in endpoints.iter().enumerate() {
            match self.resolve_at(endpoint, reference, opts).await {
                Err(e) if i < last => {
                    tracing::warn!(
                        "{} failed to resolve {reference}: {e}; trying the next endpoint",
                        endpoint.host
                    );
                }
                result => return result,
            }
        }
        Err(no_endpoint(reference, "resolve"))
    }

    async fn resolve_at(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        opts: &PullOptions,
    ) -> Result<Digest, PullError> {
        let client = self.client(endpoint, opts)?;
        let remote = Remote::new(client, endpoint, reference, self.config.retries);
        remote.authenticate().await?;
        let (_, digest) = remote.manifest(&reference.object()).await?;
        digest.parse().map_err(|e| PullError::Registry {
            registry: endpoint.host.clone(),
            detail: format!("{reference} resolved to {digest:?}, not a digest: {e}"),
        })
    }

    /// The kept client for `endpoint` and the credentials the pull has for
    /// it.
    fn client(
        &self,
        endpoint: &Endpoint,
        opts: &PullOptions,
    ) -> Result<Arc<registry::Client>, PullError> {
        let host = endpoint.host.as_str();
        let creds = lookup_credentials(&opts.credentials, host).cloned();
        let mut clients = self.clients.lock().expect("client cache lock");
        let key = (endpoint.clone(), creds.clone());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let settings = self.config.settings(endpoint);
        let client = Arc::new(
            registry::Client::new(host, &settings, creds)
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
        let client = self.client(endpoint, opts)?;
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

        let config_desc = Descriptor {
            media_type: config.media_type.clone(),
            digest: config.digest.clone(),
            size: config.size,
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
        let feeds = Arc::new(Feeds::default());
        // Ends the feeds if this pull stops early (failed, or dropped when
        // the client went away), so the unpacker never waits for them.
        let _feeds_guard = EndFeeds(feeds.clone());
        let unpacking = opts.unpacker.clone().map(|unpacker| {
            let job = unpack::UnpackJob {
                store: self.store.clone(),
                feeds: feeds.clone(),
                unpacker,
                config: wanted[0].clone(),
                layers: wanted[1..].to_vec(),
                events: events.clone(),
                reference: reference.to_string(),
            };
            tokio::task::spawn_blocking(move || job.run())
        });
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
            feeds: feeds.clone(),
        });
        let downloads = async {
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
            Ok(())
        }
        .await;
        if let Err(e) = downloads {
            // The unpacker stops at the first layer it cannot get; wait for
            // it to remove its half-applied snapshot before answering, so
            // the client never sees one.
            feeds.fail_all("the pull stopped");
            if let Some(task) = unpacking {
                let _ = task.await;
            }
            return Err(e);
        }
        let bytes_fetched = fetched.iter().map(|(_, n)| n).sum();
        blobs.extend(fetched.into_iter().map(|(d, _)| d));
        let snapshot = match unpacking {
            None => None,
            Some(task) => Some(task.await.map_err(|e| PullError::Unpack {
                reference: reference.to_string(),
                detail: format!(
                    "the unpack task ended abnormally ({e}); this is a hulld bug, please report it"
                ),
            })??),
        };

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
            snapshot,
            config: config_desc,
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
        // Pulls of the same image at once (e.g. many `hullctl run` of an
        // image not present yet) write the same manifest: a writer busy
        // with it finishes within moments, so wait for it and take its
        // result instead of failing.
        let deadline = tokio::time::Instant::now() + STORE_BYTES_WAIT;
        while self.store.info(&digest).is_err() {
            match self.write_bytes(desc, &digest, bytes).await {
                Ok(()) => break,
                Err(hull_content::Error::Locked(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(PullError::from_store(e)),
            }
        }
        events(Event::Committed(desc.clone()));
        Ok(())
    }

    async fn write_bytes(
        &self,
        desc: &Descriptor,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(), hull_content::Error> {
        let store = self.store.clone();
        let bytes = bytes.to_vec();
        let reference = ingest_ref(&desc.digest);
        let (size, digest) = (desc.size, digest.clone());
        let written = tokio::task::spawn_blocking(move || {
            let mut w = store.writer(&reference, Some(size), Some(&digest))?;
            w.restart()?;
            w.write_all(&bytes)
                .map_err(|source| hull_content::Error::Io {
                    what: "writing",
                    path: reference.clone().into(),
                    source,
                })?;
            w.commit(size, &digest).map(drop)
        })
        .await;
        written.unwrap_or_else(|e| {
            Err(hull_content::Error::Io {
                what: "writing (the task ended abnormally; a hulld bug)",
                path: desc.digest.clone().into(),
                source: std::io::Error::other(e.to_string()),
            })
        })
    }
}

/// No endpoint of `reference`'s registry may do `what` ("pull",
/// "resolve"): its hosts.toml leaves it to none.
fn no_endpoint(reference: &Reference, what: &str) -> PullError {
    let domain = &reference.domain;
    PullError::Registry {
        registry: domain.clone(),
        detail: format!(
            "{reference}: no host in the hosts.toml of {domain} (under registry.config_path) \
             has the capability {what:?}: add it to the capabilities of the server or of a \
             [host] table"
        ),
    }
}

/// Marks every feed of a pull failed when dropped (a no-op for the ones
/// that completed).
struct EndFeeds(Arc<Feeds>);

impl Drop for EndFeeds {
    fn drop(&mut self) {
        self.0.fail_all("the pull stopped");
    }
}

/// How long a pull waits for another one writing the same manifest.
const STORE_BYTES_WAIT: Duration = Duration::from_secs(30);

/// Exponential: 400 ms, 800 ms, 1.6 s, ... capped at 6.4 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 << attempt.min(5))
}

fn ingest_ref(digest: &str) -> String {
    format!("pull-{digest}")
}

pub(crate) fn progress(d: &manifest::Descriptor, state: BlobState, offset: u64) -> BlobProgress {
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
        let hosts: Vec<(String, bool, bool)> = config
            .endpoints("docker.io")
            .unwrap()
            .into_iter()
            .map(|e| (e.host, e.mirror, e.plain_http))
            .collect();
        assert_eq!(
            hosts,
            [
                ("127.0.0.1:5001".into(), true, true),
                ("mirror.lan".into(), true, false),
                ("docker.io".into(), false, false)
            ]
        );
        assert_eq!(config.endpoints("quay.io").unwrap().len(), 1);
        let push: Vec<String> = config
            .push_endpoints("docker.io")
            .unwrap()
            .into_iter()
            .map(|e| e.host)
            .collect();
        assert_eq!(push, ["docker.io"], "mirrors are never pushed to");
    }

    #[test]
    fn certs_d_replaces_mirrors_and_adds_tls() {
        let tmp = tempfile::Builder::new()
            .prefix("hull-pull-certs-d-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let ca = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";
        let host_dir = dir.join("reg.lan:5000");
        std::fs::create_dir_all(&host_dir).unwrap();
        std::fs::write(host_dir.join("ca.pem"), ca).unwrap();
        std::fs::write(
            host_dir.join("hosts.toml"),
            "ca = \"ca.pem\"\n[host.\"http://cache.lan\"]\ncapabilities = [\"pull\"]\n\
             [host.\"https://push.lan\"]\ncapabilities = [\"push\"]\nskip_verify = true\n",
        )
        .unwrap();
        let config = RegistryConfig {
            mirrors: [("reg.lan:5000".to_string(), vec!["old.lan".to_string()])].into(),
            extra_roots: vec![b"global".to_vec()],
            config_path: Some(dir.clone()),
            ..RegistryConfig::default()
        };
        let endpoints = config.endpoints("reg.lan:5000").unwrap();
        let hosts: Vec<(&str, bool, bool)> = endpoints
            .iter()
            .map(|e| (e.host.as_str(), e.mirror, e.plain_http))
            .collect();
        assert_eq!(
            hosts,
            [
                ("cache.lan", true, true),
                ("push.lan", true, false),
                ("reg.lan:5000", false, false)
            ],
            "hosts.toml, not registry.mirrors"
        );
        let push: Vec<String> = config
            .push_endpoints("reg.lan:5000")
            .unwrap()
            .into_iter()
            .map(|e| e.host)
            .collect();
        assert_eq!(push, ["push.lan", "reg.lan:5000"]);
        let settings = config.settings_for("reg.lan:5000").unwrap();
        assert_eq!(
            settings.extra_roots,
            [b"global".to_vec(), ca.as_bytes().to_vec()]
        );
        assert!(!settings.plain_http && !settings.skip_verify);
        assert!(config.settings(&endpoints[1]).skip_verify);
        // Without a hosts.toml the mirrors config applies, TLS from certs.d.
        std::fs::remove_file(host_dir.join("hosts.toml")).unwrap();
        std::fs::rename(host_dir.join("ca.pem"), host_dir.join("ca.crt")).unwrap();
        let endpoints = config.endpoints("reg.lan:5000").unwrap();
        assert_eq!(endpoints.len(), 2);
        assert_eq!(endpoints[0].host, "old.lan");
        assert_eq!(endpoints[1].tls.ca_pems, [ca.as_bytes()]);
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
