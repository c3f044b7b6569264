//! A client for the registry HTTP API (OCI distribution spec, Docker
//! registry v2): the auth dance (anonymous, basic, bearer tokens from
//! `WWW-Authenticate`), manifests, and blob bodies with Range.
//!
//! Ours, over reqwest, rather than the `oci-client` crate: oci-client reads
//! every response it buffers (manifests, token responses, error bodies) to
//! the end without a bound and offers no hook to cap it, so a registry that
//! streams a never-ending manifest drives the daemon out of memory; it has
//! no rule against trickling bodies either. Here every buffered document has
//! a cap ([`crate::manifest::MAX_SIZE`] for manifests, [`TOKEN_LIMIT`],
//! [`ERROR_LIMIT`]) checked against Content-Length and again while reading,
//! and every body follows a minimum-progress rule ([`body::Progress`]).

pub mod body;
mod challenge;
mod tls;
mod upload;

pub use upload::{push_scope, FileRange, UploadStart};

use body::{size_text, Body, Progress};
use challenge::Challenge;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RANGE};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token responses are a few KiB; more is not a token server.
pub const TOKEN_LIMIT: u64 = 1 << 20;
/// Error bodies only feed a message: read this much, drop the rest.
pub const ERROR_LIMIT: usize = 64 << 10;
/// Redirects followed per request (blob storage backends redirect once).
const MAX_REDIRECTS: usize = 10;
/// How long a registry may take to answer with a status line and headers.
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// The user name that marks an identity token (docker's convention).
pub const IDENTITY_TOKEN_USER: &str = "<token>";
/// Who asks, in an OAuth2 token request (the token spec wants a client id).
const TOKEN_CLIENT_ID: &str = "hull";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found ({detail})")]
    NotFound { detail: String },
    #[error("access denied ({detail})")]
    Unauthorized { detail: String },
    /// No answer, or a 5xx / 429: worth another try.
    #[error("{detail}")]
    Unreachable { detail: String },
    #[error("{detail}")]
    Tls { detail: String },
    #[error("{what} is larger than {}, the most hull accepts (as containerd)", size_text(*limit))]
    TooLarge { what: String, limit: u64 },
    #[error("{what} is too slow: {bytes} bytes in the last {}s, less than the {} required (pull.min_progress_bytes / pull.min_progress_seconds)", rule.window.as_secs(), size_text(rule.min_bytes))]
    TooSlow {
        what: String,
        bytes: u64,
        rule: Progress,
    },
    #[error("transfer interrupted: {detail}")]
    Interrupted { detail: String },
    #[error("the registry redirects in a loop ({detail})")]
    RedirectLoop { detail: String },
    #[error("{detail}")]
    Protocol { detail: String },
}

impl Error {
    /// Worth another try: the network or the server, not the request.
    pub fn transient(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. } | Error::TooSlow { .. } | Error::Interrupted { .. }
        )
    }
}

/// How to reach one registry host.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// PEM certificates trusted besides the system's roots.
    pub extra_roots: Vec<Vec<u8>>,
    /// PEM: a client certificate (chain) and its private key, sent to
    /// registries that require mutual TLS (certs.d `client`).
    pub client_identity: Option<Vec<u8>>,
    /// Accept any server certificate and name (certs.d `skip_verify`):
    /// for tests only, as anyone on the path can then read and alter the
    /// traffic.
    pub skip_verify: bool,
    /// Sent with every request, token requests included (hosts.toml
    /// `[header]`); a name may repeat.
    pub headers: Vec<(String, String)>,
    pub progress: Progress,
}

/// A manifest or index as the registry sent it.
#[derive(Debug)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    /// The Content-Type header (may be empty).
    pub media_type: String,
    /// sha256 of `bytes` (checked against the requested digest, if any).
    pub digest: String,
}

/// A blob response: the body, and whether the registry honoured the Range.
pub struct BlobBody {
    pub body: Body,
    /// 206: the body starts at the requested offset; 200: at byte 0.
    pub partial: bool,
}

/// One registry host with one set of credentials. Cheap to share: tokens
/// and connections are reused across requests and pulls.
pub struct Client {
    http: reqwest::Client,
    /// The TLS configuration `http` uses, kept to diagnose failures.
    tls: std::sync::Arc<rustls::ClientConfig>,
    base: Url,
    host: String,
    credentials: Option<(String, String)>,
    progress: Progress,
    /// What the registry's last 401 asked for.
    challenge: Mutex<Option<Challenge>>,
    /// Bearer tokens by scope, with when they stop being used.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl Client {
    pub fn new(
        host: &str,
        settings: &Settings,
        credentials: Option<(String, String)>,
    ) -> Result<Client, Error> {
        let tls = tls::client_config(&tls::Options {
            extra_roots: &settings.extra_roots,
            client_identity: settings.client_identity.as_deref(),
            skip_verify: settings.skip_verify,
        })?;
        let http = http_client(settings, tls.clone())?;
        let scheme = if settings.plain_http { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{host}/")).map_err(|e| Error::Protocol {
            detail: format!("registry address {host:?}: {e}"),
        })?;
        Ok(Client {
            http,
            tls,
            base,
            host: host.to_string(),
            credentials,
            progress: settings.progress,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// `GET /v2/` with the credentials for `scope`: where an unreachable
    /// registry or rejected credentials show up first.
    pub async fn ping(&self, scope: &str) -> Result<(), Error> {
        let response = self
            .send(Method::GET, "v2/", None, scope, HeaderMap::new())
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        if response.status() == StatusCode::UNAUTHORIZED && self.credentials.is_some() {
            return Err(Error::Unauthorized {
                detail: "the registry rejected the username or password".into(),
            });
        }
        Err(self.status_error(response, "the registry's API root").await)
    }

    /// A manifest or index of `repo` by tag or digest, at most
    /// [`crate::manifest::MAX_SIZE`] bytes; `ns` is the upstream registry
    /// when this host is a mirror.
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
        ns: Option<&str>,
        accept: &[&str],
    ) -> Result<Manifest, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, header_value(&accept.join(", "))?);
        let path = format!("v2/{repo}/manifests/{reference}");
        let response = self
            .send(Method::GET, &path, ns, &pull_scope(repo), headers)
            .await?;
        let what = format!("manifest {repo}:{reference}");
        if !response.status().is_success() {
            return Err(self.status_error(response, &what).await);
        }
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_default();
        let bytes = Body::new(response, self.progress, &what)
            .read_to_end(crate::manifest::MAX_SIZE)
            .await?;
        let digest = hull_content::Digest::of(&bytes).to_string();
        if reference.contains(':') && reference != digest {
            return Err(Error::Protocol {
                detail: format!("{what}: the registry sent content with digest {digest}"),
            });
        }
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// A blob of `repo`, from byte `range` on if given (ask a Range even
    /// from 0: registries then answer 206 with the length they send).
    pub async fn blob(
        &self,
        repo: &str,
        digest: &str,
        range: Option<u64>,
        ns: Option<&str>,
    ) -> Result<BlobBody, Error> {
        let mut headers = HeaderMap::new();
        if let Some(offset) = range {
            headers.insert(RANGE, header_value(&format!("bytes={offset}-"))?);
        }
        let path = format!("v2/{repo}/blobs/{digest}");
        let response = self
            .send(Method::GET, &path, ns, &pull_scope(repo), headers)
            .await?;
        let what = format!("blob {digest}");
        let partial = match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let start = response
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                if start != range {
                    return Err(Error::Protocol {
                        detail: format!(
                            "{what}: asked for bytes from {}, the registry sent a range starting at {start:?}",
                            range.unwrap_or(0)
                        ),
                    });
                }
                true
            }
            s if s.is_success() => false,
            _ => return Err(self.status_error(response, &what).await),
        };
        Ok(BlobBody {
            body: Body::new(response, self.progress, what),
            partial,
        })
    }

    /// Send a request with the credentials `scope` needs, answering one
    /// 401 challenge (basic, or a bearer token fetched for the scope).
    async fn send(
        &self,
        method: Method,
        path: &str,
        ns: Option<&str>,
        scope: &str,
        headers: HeaderMap,
    ) -> Result<reqwest::Response, Error> {
        let mut url = self.url(path)?;
        if let Some(ns) = ns {
            url.query_pairs_mut().append_pair("ns", ns);
        }
        self.send_url(method, url, scope, headers, None).await
    }

    /// `path` below the registry's base URL.
    fn url(&self, path: &str) -> Result<Url, Error> {
        self.base.join(path).map_err(|e| Error::Protocol {
            detail: format!("bad request path {path:?}: {e}"),
        })
    }

    /// [`Client::send`] to a whole URL (an upload session's Location), with
    /// a body: held in memory, so it can be sent again after a challenge.
    async fn send_url(
        &self,
        method: Method,
        url: Url,
        scope: &str,
        headers: HeaderMap,
        body: Option<bytes::Bytes>,
    ) -> Result<reqwest::Response, Error> {
        let path = url.path().to_string();
        let mut challenged = false;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            if let Some(auth) = self.authorization(scope) {
                request = request.header(AUTHORIZATION, auth);
            }
            let response = match tokio::time::timeout(HEAD_TIMEOUT, request.send()).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Err(self.request_error(&e, &url).await),
                Err(_) => {
                    return Err(Error::Unreachable {
                        detail: format!(
                            "no answer to {method} {path} within {}s",
                            HEAD_TIMEOUT.as_secs()
                        ),
                    })
                }
            };
            if response.status() != StatusCode::UNAUTHORIZED || challenged {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse);
            let Some(challenge) = challenge else {
                return Ok(response);
            };
            challenged = true;
            self.answer(&challenge, scope).await?;
            *self.challenge.lock().expect("challenge lock") = Some(challenge);
        }
    }

    /// The Authorization header for `scope`, from what the registry asked.
    fn authorization(&self, scope: &str) -> Option<String> {
        match self.challenge.lock().expect("challenge lock").as_ref()? {
            Challenge::Basic => self.basic(),
            Challenge::Bearer { .. } => {
                let tokens = self.tokens.lock().expect("token lock");
                let (token, until) = tokens.get(scope)?;
                (Instant::now() < *until).then(|| format!("Bearer {token}"))
            }
        }
    }

    fn basic(&self) -> Option<String> {
        use base64::Engine as _;
        let (user, secret) = self.credentials.as_ref()?;
        let pair = format!("{user}:{secret}");
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    /// Get what `challenge` asks for: credentials for basic auth, a token
    /// for bearer auth.
    async fn answer(&self, challenge: &Challenge, scope: &str) -> Result<(), Error> {
        let Challenge::Bearer {
            realm,
            service,
            scope: asked,
        } = challenge
        else {
            return match self.credentials {
                Some(_) => Ok(()),
                None => Err(Error::Unauthorized {
                    detail: "the registry wants a username and password".into(),
                }),
            };
        };
        let scope = if scope.is_empty() {
            asked.clone().unwrap_or_default()
        } else {
            scope.to_string()
        };
        let token = self.fetch_token(realm, service.as_deref(), &scope).await?;
        self.tokens.lock().expect("token lock").insert(scope, token);
        Ok(())
    }

    /// The secret, when the credentials are an identity token: docker's
    /// `<token>` user name, which `docker login` and credential helpers
    /// give for registries that hand out OAuth2 refresh tokens.
    fn identity_token(&self) -> Option<&str> {
        match &self.credentials {
            Some((user, secret)) if user == IDENTITY_TOKEN_USER => Some(secret),
            _ => None,
        }
    }

    /// The request for a token: an identity token is exchanged by the
    /// OAuth2 refresh-token grant (a form POST, as docker and containerd
    /// do); otherwise a GET, basic-auth with our credentials if we have
    /// any, anonymous if not (Docker's token auth).
    fn token_request(
        &self,
        mut url: Url,
        service: Option<&str>,
        scope: &str,
    ) -> reqwest::RequestBuilder {
        if let Some(refresh) = self.identity_token() {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", TOKEN_CLIENT_ID),
                ("scope", scope),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            return self.http.post(url).form(&form);
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            // One `scope` parameter per scope (a push that mounts from
            // another repository needs two), as the token spec has it.
            for one in scope.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", one);
            }
        }
        let request = self.http.get(url);
        match self.basic() {
            Some(auth) => request.header(AUTHORIZATION, auth),
            None => request,
        }
    }

    /// A token from the token server for `scope`, with when to stop using
    /// it.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Instant), Error> {
        let url = Url::parse(realm).map_err(|e| Error::Protocol {
            detail: format!("the registry names a bad token server {realm:?}: {e}"),
        })?;
        let request = self.token_request(url.clone(), service, scope);
        let response = match tokio::time::timeout(HEAD_TIMEOUT, request.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.request_error(&e, &url).await),
            Err(_) => {
                return Err(Error::Unreachable {
                    detail: format!("the token server {realm} did not answer"),
                })
            }
        };
        let what = format!("the token response of {realm}");
        // OAuth2 answers a refresh token it does not take with 400
        // (`invalid_grant`, RFC 6749 5.2); token servers of the docker kind
        // answer bad credentials with 401.
        let refused = match response.status() {
            s if s.is_success() => false,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => true,
            StatusCode::BAD_REQUEST if self.identity_token().is_some() => true,
            _ => return Err(self.status_error(response, &what).await),
        };
        if refused {
            let rejected = match self.identity_token() {
                Some(_) => "identity token (log in again to get a new one)",
                None => "credentials",
            };
            return Err(Error::Unauthorized {
                detail: format!("the token server {realm} rejected the {rejected}"),
            });
        }
        let body = Body::new(response, self.progress, &what)
            .read_to_end(TOKEN_LIMIT)
            .await?;
        #[derive(Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
            detail: format!("{what} is not a token: {e}"),
        })?;
        let token = if parsed.token.is_empty() {
            parsed.access_token
        } else {
            parsed.token
        };
        if token.is_empty() {
            return Err(Error::Protocol {
                detail: format!("{what} holds no token"),
            });
        }
        // Spec default lifetime is 60 s; stop using a token a little early.
        let lifetime = parsed.expires_in.unwrap_or(60).clamp(10, 3600);
        Ok((
            token,
            Instant::now() + Duration::from_secs(lifetime.saturating_sub(5)),
        ))
    }

    /// A non-success answer as an error: the status and the registry's own
    /// error codes (from a bounded read of the body).
    async fn status_error(&self, response: reqwest::Response, what: &str) -> Error {
        let status = response.status();
        let body = Body::new(response, self.progress, what)
            .read_prefix(ERROR_LIMIT)
            .await;
        #[derive(Deserialize)]
        struct Envelope {
            errors: Vec<RegistryError>,
        }
        #[derive(Deserialize)]
        struct RegistryError {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let errors = serde_json::from_slice::<Envelope>(&body)
            .map(|e| e.errors)
            .unwrap_or_default();
        let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
        let detail = if errors.is_empty() {
            let text = String::from_utf8_lossy(&body);
            let text: String = text.trim().chars().take(200).collect();
            if text.is_empty() {
                format!("{what}: HTTP {status}")
            } else {
                format!("{what}: HTTP {status}: {text}")
            }
        } else {
            let list: Vec<String> = errors
                .iter()
                .take(5)
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.code,
                        e.message.chars().take(200).collect::<String>()
                    )
                })
                .collect();
            format!("{what}: {}", list.join("; "))
        };
        let any = |wanted: &[&str]| codes.iter().any(|c| wanted.contains(c));
        if status == StatusCode::NOT_FOUND
            || any(&["MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"])
        {
            Error::NotFound { detail }
        } else if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
            || any(&["UNAUTHORIZED", "DENIED"])
        {
            Error::Unauthorized { detail }
        } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Error::Unreachable {
                detail: format!("server error {detail}"),
            }
        } else {
            Error::Protocol { detail }
        }
    }
}

/// The HTTP client for `settings`, speaking TLS as `tls` says, with the
/// headers asked for.
fn http_client(
    settings: &Settings,
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> Result<reqwest::Client, Error> {
    let mut headers = HeaderMap::new();
    for (name, value) in &settings.headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
            Error::Protocol {
                detail: format!("header name {name:?}: {e}"),
            }
        })?;
        headers.append(name, header_value(value)?);
    }
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .user_agent(concat!("hull/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured((*tls).clone())
        .default_headers(headers)
        .build()
        .map_err(|e| Error::Tls {
            detail: format!("setting up TLS: {}", error_chain(&e)),
        })
}

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

fn header_value(s: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(s).map_err(|e| Error::Protocol {
        detail: format!("header value {s:?}: {e}"),
    })
}

/// `bytes 100-199/1000` → 100.
fn content_range_start(v: &str) -> Option<u64> {
    let range = v.trim().strip_prefix("bytes")?.trim();
    range.split('-').next()?.trim().parse().ok()
}

impl Client {
    /// A request to `url` that got no usable answer; TLS failures and
    /// redirect loops are told apart, since their fixes differ. A
    /// connection that closed after its handshake (not one that never
    /// connected, nor a timeout) is asked why
    /// ([`tls::diagnose`]): it may be a TLS 1.3 alert hyper did not pass on.
    async fn request_error(&self, e: &reqwest::Error, url: &Url) -> Error {
        let detail = error_chain(e);
        if e.is_redirect() {
            return Error::RedirectLoop {
                detail: format!("more than {MAX_REDIRECTS} redirects: {detail}"),
            };
        }
        if tls_failure(&detail) {
            return Error::Tls { detail };
        }
        if url.scheme() == "https" && !e.is_timeout() && !e.is_connect() {
            if let Some(why) = tls::diagnose(self.tls.clone(), url).await {
                return Error::Tls {
                    detail: format!("{detail}; a new connection says: {why}"),
                };
            }
        }
        Error::Unreachable { detail }
    }
}

/// rustls's words for a failed handshake: our check of the server's
/// certificate, a plain-HTTP answer to TLS ("InvalidContentType"), or the
/// server's alert (e.g. "BadCertificate" when it requires a client
/// certificate we did not send).
fn tls_failure(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    ["certificate", "invalidcontenttype", "fatal alert"]
        .iter()
        .any(|w| lower.contains(w))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_starts() {
        assert_eq!(content_range_start("bytes 100-199/1000"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/1"), Some(0));
        assert_eq!(content_range_start("items 1-2/3"), None);
    }
}
