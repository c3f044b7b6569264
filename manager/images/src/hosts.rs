//! Per-registry hosts in containerd's `certs.d` layout (containerd 1.5+),
//! so that a directory written for containerd (or docker's certs.d) works
//! for hulld as it is: for a registry host `H`, the directory
//! `<config_path>/H/` holds either
//! - a `hosts.toml`: mirrors (`[host."https://mirror"]`, tried in file
//!   order), the upstream `server` (tried last), and for each of them the
//!   TLS material (`ca`, `client`, `skip_verify`), the operations it may do
//!   (`capabilities`) and extra request headers (`[header]`); or, without
//!   one,
//! - docker-style files: `*.crt` CA certificates, and a `*.cert` + `*.key`
//!   client certificate pair.
//!
//! `H_PORT_` is looked for before `H:PORT` (containerd's spelling for
//! filesystems without `:`), and `_default/` stands in for any host without
//! a directory of its own. Relative paths in hosts.toml are relative to its
//! directory.
//!
//! This module only reads and checks the files; what a pull or a push does
//! with the endpoints is the caller's (see [`crate::pull::RegistryConfig`]).
//! Files are read on each call, so edits apply to the next pull without a
//! daemon restart, as in containerd.

use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The file in a host directory.
pub const HOSTS_FILE: &str = "hosts.toml";
/// The host directory used for registries without one of their own.
pub const DEFAULT_HOST_DIR: &str = "_default";

/// The keys hosts.toml may have (for the unknown-key message).
const KEYS: &str = "server, capabilities, ca, client, skip_verify, header, override_path, \
                    and [host.\"<url>\"] tables";

/// What an endpoint may be asked to do. Resolving a tag to a digest is a
/// matter of trust (the answer decides what gets run); fetching by digest
/// is not (the content is verified), so a public mirror is usually given
/// `pull` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capabilities {
    /// Fetch manifests and blobs by digest.
    pub pull: bool,
    /// Resolve a tag to a manifest digest.
    pub resolve: bool,
    pub push: bool,
}

impl Capabilities {
    /// containerd's default when `capabilities` is not given.
    pub const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };
}

/// TLS settings of one endpoint (on top of the system's roots and
/// hulld's `registry.ca_files`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TlsSettings {
    /// PEM CA certificates trusted for this endpoint.
    pub ca_pems: Vec<Vec<u8>>,
    /// PEM: the client certificate (chain) followed by its private key,
    /// for registries that require mutual TLS.
    pub client_identity_pem: Option<Vec<u8>>,
    /// Accept any server certificate and name (testing only).
    pub skip_verify: bool,
}

/// One place a registry's content may be reached: a mirror or the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` requests go to.
    pub host: String,
    /// `Some(true)` for an `http://` URL, `Some(false)` for `https://`;
    /// `None` when not said (the server of a directory without `server`):
    /// the caller's default applies (hulld: plain HTTP for loopback and
    /// `registry.insecure`).
    pub plain_http: Option<bool>,
    pub capabilities: Capabilities,
    pub tls: TlsSettings,
    /// Extra headers for every request (`[header]`), by name in file order.
    pub headers: Vec<(String, String)>,
}

impl Endpoint {
    /// The registry itself, nothing configured.
    pub fn registry(host: &str) -> Endpoint {
        Endpoint {
            host: host.to_string(),
            plain_http: None,
            capabilities: Capabilities::ALL,
            tls: TlsSettings::default(),
            headers: Vec::new(),
        }
    }
}

/// How one registry host is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConfig {
    /// The `[host]` entries in file order, then the server (always last).
    pub endpoints: Vec<Endpoint>,
    /// The host directory used, if any.
    pub dir: Option<PathBuf>,
    /// The hosts.toml read, if any (without one, only the server's TLS can
    /// come from the directory).
    pub hosts_file: Option<PathBuf>,
}

impl HostConfig {
    /// The registry itself, nothing configured.
    pub fn registry_only(host: &str) -> HostConfig {
        HostConfig {
            endpoints: vec![Endpoint::registry(host)],
            dir: None,
            hosts_file: None,
        }
    }

    /// The upstream server (the last endpoint).
    pub fn server(&self) -> &Endpoint {
        self.endpoints.last().expect("a host config has a server")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error(
        "registry hosts config: reading {}: {source}: check that it exists and is readable \
         by hulld",
        path.display()
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry hosts config {}: {detail}", path.display())]
    Invalid { path: PathBuf, detail: String },
}

/// The configuration of `registry_host` (`docker.io`, `127.0.0.2:5000`)
/// under `config_path`: its own directory, else `_default/`, else the
/// registry itself with nothing configured.
pub fn load(config_path: &Path, registry_host: &str) -> Result<HostConfig, HostsError> {
    let Some(dir) = host_dir(config_path, registry_host)? else {
        return Ok(HostConfig::registry_only(registry_host));
    };
    let file = dir.join(HOSTS_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(source) => return Err(HostsError::Read { path: file, source }),
    };
    // As containerd: an empty hosts.toml counts as none.
    if text.trim().is_empty() {
        let server = docker_certs(&dir, registry_host)?;
        return Ok(HostConfig {
            endpoints: vec![server],
            dir: Some(dir),
            hosts_file: None,
        });
    }
    let endpoints = parse_hosts(&text, &file, &dir, registry_host)?;
    Ok(HostConfig {
        endpoints,
        dir: Some(dir),
        hosts_file: Some(file),
    })
}

/// The directory names tried for `host`, in order.
fn dir_names(host: &str) -> Vec<String> {
    let mut names = Vec::new();
    // A name that could leave config_path is never looked up.
    let safe = !host.is_empty() && !host.contains('/') && host != "." && host != "..";
    if safe {
        if let Some((name, port)) = host.rsplit_once(':') {
            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                names.push(format!("{name}_{port}_"));
            }
        }
        names.push(host.to_string());
    }
    names.push(DEFAULT_HOST_DIR.to_string());
    names
}

fn host_dir(config_path: &Path, host: &str) -> Result<Option<PathBuf>, HostsError> {
    for name in dir_names(host) {
        let dir = config_path.join(name);
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => return Ok(Some(dir)),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {}
            Err(source) => return Err(HostsError::Read { path: dir, source }),
        }
    }
    Ok(None)
}

/// Docker's layout: `*.crt` CAs, `NAME.cert` + `NAME.key` client pairs.
fn docker_certs(dir: &Path, registry_host: &str) -> Result<Endpoint, HostsError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .map_err(|source| HostsError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
    names.sort();
    let mut endpoint = Endpoint::registry(registry_host);
    let mut pairs = Vec::new();
    for name in &names {
        let path = dir.join(name);
        if name.ends_with(".crt") {
            endpoint.tls.ca_pems.push(read_ca(&path)?);
        } else if let Some(stem) = name.strip_suffix(".cert") {
            let key = format!("{stem}.key");
            if !names.contains(&key) {
                return Err(unpaired(&path, &key));
            }
            pairs.push((path, dir.join(key)));
        } else if let Some(stem) = name.strip_suffix(".key") {
            let cert = format!("{stem}.cert");
            if !names.contains(&cert) {
                return Err(unpaired(&path, &cert));
            }
        }
    }
    endpoint.tls.client_identity_pem = one_identity(dir, "client certificate files", pairs)?;
    Ok(endpoint)
}

fn unpaired(path: &Path, missing: &str) -> HostsError {
    HostsError::Invalid {
        path: path.to_path_buf(),
        detail: format!(
            "a client certificate needs both NAME.cert and NAME.key, and {missing} is missing \
             beside it: add it, or remove this file"
        ),
    }
}

/// hosts.toml as serde sees it: `host` tables keep their position (file
/// order is the order they are tried in); every other key is checked by
/// [`Entry::parse`].
#[derive(Deserialize)]
struct RawFile {
    server: Option<toml::Value>,
    #[serde(default)]
    host: BTreeMap<String, toml::Spanned<toml::Table>>,
    #[serde(flatten)]
    rest: toml::Table,
}

fn parse_hosts(
    text: &str,
    file: &Path,
    dir: &Path,
    registry_host: &str,
) -> Result<Vec<Endpoint>, HostsError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| HostsError::Invalid {
        path: file.to_path_buf(),
        detail: format!("{e}(containerd's hosts.toml format: see its docs/hosts.md)"),
    })?;
    let mut hosts: Vec<(String, toml::Spanned<toml::Table>)> = raw.host.into_iter().collect();
    hosts.sort_by_key(|(_, table)| table.span().start);
    let mut endpoints = Vec::new();
    for (url, table) in hosts {
        let entry = Entry {
            file,
            dir,
            table: format!("[host.{url:?}]"),
        };
        let (host, plain_http) = entry.url("the table name", &url)?;
        endpoints.push(entry.parse(host, Some(plain_http), table.into_inner())?);
    }
    let entry = Entry {
        file,
        dir,
        table: "the top level".into(),
    };
    let (host, plain_http) = match &raw.server {
        None => (registry_host.to_string(), None),
        Some(toml::Value::String(url)) => {
            let (host, plain) = entry.url("server", url)?;
            (host, Some(plain))
        }
        Some(other) => {
            return Err(entry.invalid(
                "server",
                format!("has the type {}", other.type_str()),
                "give a URL string such as \"https://registry.example.com\"",
            ))
        }
    };
    endpoints.push(entry.parse(host, plain_http, raw.rest)?);
    Ok(endpoints)
}

/// One table of hosts.toml (the top level or a `[host."…"]`), for reading
/// its keys and naming it in errors.
struct Entry<'a> {
    file: &'a Path,
    dir: &'a Path,
    table: String,
}

impl Entry<'_> {
    fn invalid(&self, key: &str, problem: impl std::fmt::Display, fix: &str) -> HostsError {
        HostsError::Invalid {
            path: self.file.to_path_buf(),
            detail: format!("`{key}` in {}: {problem}: {fix}", self.table),
        }
    }

    fn parse(
        &self,
        host: String,
        plain_http: Option<bool>,
        table: toml::Table,
    ) -> Result<Endpoint, HostsError> {
        let mut endpoint = Endpoint {
            host,
            plain_http,
            ..Endpoint::registry("")
        };
        let mut clients = Vec::new();
        for (key, value) in &table {
            match key.as_str() {
                "capabilities" => endpoint.capabilities = self.capabilities(value)?,
                "ca" => {
                    for path in self.paths("ca", value)? {
                        endpoint.tls.ca_pems.push(read_ca(&path)?);
                    }
                }
                "client" => clients = self.clients(value)?,
                "skip_verify" => endpoint.tls.skip_verify = self.boolean(key, value)?,
                "header" => endpoint.headers = self.headers(value)?,
                "override_path" if self.boolean(key, value)? => {
                    return Err(self.invalid(
                        key,
                        "is not supported by hull (the registry API is always at /v2/ of the host)",
                        "remove it, or reach the registry at a host whose /v2/ is the API",
                    ));
                }
                "override_path" => {}
                "dial_timeout" | "proxy" => {
                    return Err(self.invalid(
                        key,
                        "is a containerd key hull does not support",
                        "remove it",
                    ));
                }
                "server" | "host" => {
                    return Err(self.invalid(
                        key,
                        "belongs at the top level of the file",
                        "move it out of this table",
                    ));
                }
                _ => {
                    return Err(self.invalid(
                        key,
                        "unknown key",
                        &format!("hosts.toml keys are {KEYS}; remove or correct it"),
                    ));
                }
            }
        }
        let what = format!("`client` in {}", self.table);
        endpoint.tls.client_identity_pem = one_identity(self.file, &what, clients)?;
        Ok(endpoint)
    }

    /// `https://h:5000` → (`h:5000`, false); no scheme means https.
    fn url(&self, key: &str, text: &str) -> Result<(String, bool), HostsError> {
        const FIX: &str = "give the URL as \"https://host[:port]\" or \"http://host[:port]\"";
        let full = if text.contains("://") {
            text.to_string()
        } else {
            format!("https://{text}")
        };
        let url = reqwest::Url::parse(&full)
            .map_err(|e| self.invalid(key, format!("{text:?} is not a URL ({e})"), FIX))?;
        let plain_http = match url.scheme() {
            "https" => false,
            "http" => true,
            other => return Err(self.invalid(key, format!("{text:?} has scheme {other:?}"), FIX)),
        };
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h,
            _ => return Err(self.invalid(key, format!("{text:?} names no host"), FIX)),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.invalid(
                key,
                format!("{text:?} holds credentials"),
                "remove them and log in with `hullctl login` instead",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(self.invalid(key, format!("{text:?} has a query or fragment"), FIX));
        }
        if !matches!(url.path(), "" | "/" | "/v2" | "/v2/") {
            let problem = format!(
                "{text:?} has the path {:?}; hull reaches the registry API at /v2/ of the host \
                 and supports no other path",
                url.path()
            );
            return Err(self.invalid(key, problem, FIX));
        }
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Ok((host, plain_http))
    }

    fn boolean(&self, key: &str, value: &toml::Value) -> Result<bool, HostsError> {
        value.as_bool().ok_or_else(|| {
            self.invalid(
                key,
                format!("has the type {}", value.type_str()),
                "write true or false",
            )
        })
    }

    fn capabilities(&self, value: &toml::Value) -> Result<Capabilities, HostsError> {
        const FIX: &str =
            "list some of \"pull\", \"resolve\" and \"push\" (or remove the key for all three)";
        let list = value.as_array().ok_or_else(|| {
            self.invalid(
                "capabilities",
                format!("has the type {}", value.type_str()),
                FIX,
            )
        })?;
        if list.is_empty() {
            return Err(self.invalid("capabilities", "lists none", FIX));
        }
        let mut caps = Capabilities {
            pull: false,
            resolve: false,
            push: false,
        };
        for item in list {
            match item.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("pull") => caps.pull = true,
                Some("resolve") => caps.resolve = true,
                Some("push") => caps.push = true,
                _ => {
                    return Err(self.invalid(
                        "capabilities",
                        format!("unknown capability {item}"),
                        FIX,
                    ))
                }
            }
        }
        Ok(caps)
    }

    /// A path, relative to the host directory unless absolute.
    fn path(&self, text: &str) -> PathBuf {
        self.dir.join(text)
    }

    /// `"a.pem"` or `["a.pem", "b.pem"]`.
    fn paths(&self, key: &str, value: &toml::Value) -> Result<Vec<PathBuf>, HostsError> {
        const FIX: &str = "give a file name or a list of them";
        match value {
            toml::Value::String(s) => Ok(vec![self.path(s)]),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(self.path(s)),
                    other => Err(self.invalid(
                        key,
                        format!("holds a value of type {}", other.type_str()),
                        FIX,
                    )),
                })
                .collect(),
            other => Err(self.invalid(key, format!("has the type {}", other.type_str()), FIX)),
        }
    }

    /// `"both.pem"`, `["both.pem"]`, `[["cert.pem", "key.pem"]]`: (cert,
    /// key) file pairs; a combined file is its own key file.
    fn clients(&self, value: &toml::Value) -> Result<Vec<(PathBuf, PathBuf)>, HostsError> {
        const FIX: &str = "give a PEM file holding certificate and key, or a list of them, or \
                           a list of [\"cert.pem\", \"key.pem\"] pairs";
        let one = |item: &toml::Value| match item {
            toml::Value::String(s) => Ok((self.path(s), self.path(s))),
            toml::Value::Array(pair) => match pair.as_slice() {
                [toml::Value::String(cert), toml::Value::String(key)] if key.is_empty() => {
                    Ok((self.path(cert), self.path(cert)))
                }
                [toml::Value::String(cert), toml::Value::String(key)] => {
                    Ok((self.path(cert), self.path(key)))
                }
                _ => Err(self.invalid(
                    "client",
                    format!("holds {item}, not a pair of file names"),
                    FIX,
                )),
            },
            other => Err(self.invalid(
                "client",
                format!("holds a value of type {}", other.type_str()),
                FIX,
            )),
        };
        match value {
            toml::Value::String(_) => Ok(vec![one(value)?]),
            toml::Value::Array(items) => items.iter().map(one).collect(),
            other => Err(self.invalid("client", format!("has the type {}", other.type_str()), FIX)),
        }
    }

    /// `x-a = "v"` or `x-a = ["v1", "v2"]` (the header sent once per value).
    fn headers(&self, value: &toml::Value) -> Result<Vec<(String, String)>, HostsError> {
        const FIX: &str = "write `[header]` with `name = \"value\"` or `name = [\"v1\", \"v2\"]`";
        let table = value.as_table().ok_or_else(|| {
            self.invalid("header", format!("has the type {}", value.type_str()), FIX)
        })?;
        let mut headers = Vec::new();
        for (name, values) in table {
            let key = format!("header.{name}");
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(self.invalid(&key, "is not a valid HTTP header name", FIX));
            }
            let list = match values {
                toml::Value::String(s) => vec![s.clone()],
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| self.invalid(&key, "holds a value that is not a string", FIX))?,
                other => {
                    return Err(self.invalid(
                        &key,
                        format!("has the type {}", other.type_str()),
                        FIX,
                    ))
                }
            };
            for v in list {
                if HeaderValue::from_str(&v).is_err() {
                    return Err(self.invalid(
                        &key,
                        format!("{v:?} is not a valid header value"),
                        FIX,
                    ));
                }
                headers.push((name.clone(), v));
            }
        }
        Ok(headers)
    }
}

fn read(path: &Path) -> Result<String, HostsError> {
    std::fs::read_to_string(path).map_err(|source| HostsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A CA file: its certificates (PEM), anything else in it dropped.
fn read_ca(path: &Path) -> Result<Vec<u8>, HostsError> {
    let certs: String = pem_blocks(&read(path)?)
        .into_iter()
        .filter(|(label, _)| *label == "CERTIFICATE")
        .map(|(_, block)| block)
        .collect();
    if certs.is_empty() {
        return Err(HostsError::Invalid {
            path: path.to_path_buf(),
            detail: "holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the CA's \
                     certificate in PEM form"
                .into(),
        });
    }
    Ok(certs.into_bytes())
}

/// The one client identity of `pairs` (none if empty): hull sends one
/// client certificate per host.
fn one_identity(
    at: &Path,
    what: &str,
    pairs: Vec<(PathBuf, PathBuf)>,
) -> Result<Option<Vec<u8>>, HostsError> {
    match pairs.as_slice() {
        [] => Ok(None),
        [(cert, key)] => identity(cert, key).map(Some),
        _ => Err(HostsError::Invalid {
            path: at.to_path_buf(),
            detail: format!(
                "{what}: {} client certificates are given; hull sends one per registry host: \
                 keep the one this registry accepts",
                pairs.len()
            ),
        }),
    }
}

/// The certificates of `cert` then the private key of `key` (the same file
/// for a combined PEM), as one PEM for reqwest's `Identity::from_pem`.
fn identity(cert: &Path, key: &Path) -> Result<Vec<u8>, HostsError> {
    let invalid = |path: &Path, detail: &str| HostsError::Invalid {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let certs: String = pem_blocks(&read(cert)?)
        .into_iter()
        .filter(|(label, _)| *label == "CERTIFICATE")
        .map(|(_, block)| block)
        .collect();
    if certs.is_empty() {
        return Err(invalid(
            cert,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the client \
             certificate in PEM form",
        ));
    }
    let key_text = read(key)?;
    let keys: Vec<(&str, String)> = pem_blocks(&key_text)
        .into_iter()
        .filter(|(label, _)| label.ends_with("PRIVATE KEY"))
        .collect();
    match keys.as_slice() {
        [] => Err(invalid(
            key,
            "holds no PEM private key (-----BEGIN PRIVATE KEY-----): give the client \
             certificate's key in PEM form",
        )),
        [("ENCRYPTED PRIVATE KEY", _)] => Err(invalid(
            key,
            "holds an encrypted private key, and hulld cannot ask for its passphrase: decrypt \
             it (openssl pkey -in KEY -out KEY.plain)",
        )),
        [(_, block)] => Ok(format!("{certs}{block}").into_bytes()),
        _ => Err(invalid(
            key,
            "holds more than one private key: keep the client certificate's",
        )),
    }
}

/// The PEM blocks of `text`: (label, the block's text with its BEGIN and
/// END lines). Lines outside blocks (comments, openssl's "Bag Attributes")
/// are skipped.
fn pem_blocks(text: &str) -> Vec<(&str, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(&str, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some((label, mut block)) = current.take() {
            block.push_str(line);
            block.push('\n');
            if line
                .strip_prefix("-----END ")
                .and_then(|l| l.strip_suffix("-----"))
                == Some(label)
            {
                blocks.push((label, block));
            } else {
                current = Some((label, block));
            }
        } else if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            current = Some((label, format!("{line}\n")));
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n";

    /// A scratch certs.d, removed when dropped.
    struct CertsD(PathBuf);

    impl CertsD {
        fn new(name: &str) -> CertsD {
            let dir =
                std::env::temp_dir().join(format!("hull-hosts-test-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            CertsD(dir)
        }

        /// Write `files` (name, text) into the host directory `host`.
        fn host(&self, host: &str, files: &[(&str, &str)]) -> PathBuf {
            let dir = self.0.join(host);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, text) in files {
                std::fs::write(dir.join(name), text).unwrap();
            }
            dir
        }
    }

    impl Drop for CertsD {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn error(certs: &CertsD, host: &str) -> String {
        load(&certs.0, host).unwrap_err().to_string()
    }

    #[test]
    fn every_form_of_hosts_toml() {
        let certs = CertsD::new("forms");
        let abs_ca = certs.0.join("abs-ca.pem");
        std::fs::write(&abs_ca, CERT).unwrap();
        let toml = format!(
            r#"
server = "https://upstream.example:8443"
ca = "server-ca.pem"
client = "both.pem"
skip_verify = true

[host."https://z-mirror.example"]
capabilities = ["pull"]
ca = ["mirror-ca.pem", "{}"]
client = [["c.pem", "k.pem"]]

[host."http://a-mirror.example:5000/v2"]
capabilities = ["Pull", "resolve"]
client = ["both.pem"]
override_path = false
[host."http://a-mirror.example:5000/v2".header]
x-one = "1"
x-two = ["a", "b"]
"#,
            abs_ca.display()
        );
        let both = format!("{CERT}{KEY}");
        certs.host(
            "registry.example",
            &[
                ("hosts.toml", &toml),
                ("server-ca.pem", CERT),
                ("mirror-ca.pem", CERT),
                ("both.pem", &both),
                ("c.pem", CERT),
                ("k.pem", KEY),
            ],
        );
        let config = load(&certs.0, "registry.example").unwrap();
        let hosts: Vec<(&str, Option<bool>)> = config
            .endpoints
            .iter()
            .map(|e| (e.host.as_str(), e.plain_http))
            .collect();
        // File order (not alphabetical), the server last.
        assert_eq!(
            hosts,
            [
                ("z-mirror.example", Some(false)),
                ("a-mirror.example:5000", Some(true)),
                ("upstream.example:8443", Some(false)),
            ]
        );
        let [z, a, server] = &config.endpoints[..] else {
            unreachable!()
        };
        let only_pull = Capabilities {
            pull: true,
            resolve: false,
            push: false,
        };
        assert_eq!(z.capabilities, only_pull);
        assert_eq!(z.tls.ca_pems, [CERT.as_bytes(), CERT.as_bytes()]);
        assert_eq!(
            z.tls.client_identity_pem.as_deref(),
            Some(both.as_bytes()),
            "the pair's certificate, then its key"
        );
        assert!(!z.tls.skip_verify && z.headers.is_empty());
        assert!(a.capabilities.pull && a.capabilities.resolve && !a.capabilities.push);
        assert_eq!(a.tls.client_identity_pem.as_deref(), Some(both.as_bytes()));
        assert_eq!(
            a.headers,
            [
                ("x-one".to_string(), "1".to_string()),
                ("x-two".to_string(), "a".to_string()),
                ("x-two".to_string(), "b".to_string()),
            ]
        );
        assert_eq!(server.capabilities, Capabilities::ALL);
        assert_eq!(server.tls.ca_pems, [CERT.as_bytes()]);
        assert_eq!(
            server.tls.client_identity_pem.as_deref(),
            Some(both.as_bytes())
        );
        assert!(server.tls.skip_verify);
        assert_eq!(
            config.hosts_file,
            Some(certs.0.join("registry.example/hosts.toml"))
        );
    }

    #[test]
    fn without_server_the_registry_is_the_server_with_all_capabilities() {
        let certs = CertsD::new("noserver");
        certs.host(
            "127.0.0.2:5000",
            &[
                (
                    "hosts.toml",
                    "[host.\"mirror:5001\"]\nclient = [[\"c.pem\", \"\"]]\n",
                ),
                ("c.pem", &format!("{KEY}{CERT}")),
            ],
        );
        let config = load(&certs.0, "127.0.0.2:5000").unwrap();
        assert_eq!(config.endpoints.len(), 2);
        let mirror = &config.endpoints[0];
        assert_eq!(
            (mirror.host.as_str(), mirror.plain_http),
            ("mirror:5001", Some(false))
        );
        assert_eq!(mirror.capabilities, Capabilities::ALL);
        // A combined file: certificate first whatever the file's order.
        assert_eq!(
            mirror.tls.client_identity_pem.as_deref(),
            Some(format!("{CERT}{KEY}").as_bytes())
        );
        assert_eq!(config.server(), &Endpoint::registry("127.0.0.2:5000"));
    }

    #[test]
    fn host_directory_lookup_and_default_fallback() {
        let certs = CertsD::new("lookup");
        assert_eq!(
            load(&certs.0, "quay.io").unwrap(),
            HostConfig::registry_only("quay.io"),
            "nothing configured"
        );
        assert_eq!(
            load(&certs.0.join("missing"), "quay.io").unwrap(),
            HostConfig::registry_only("quay.io"),
            "no certs.d at all"
        );
        certs.host(
            "_default",
            &[("hosts.toml", "[host.\"https://all-mirror\"]\n")],
        );
        certs.host(
            "reg:5000",
            &[("hosts.toml", "server = \"https://colon\"\n")],
        );
        certs.host(
            "reg_5000_",
            &[("hosts.toml", "server = \"https://underscore\"\n")],
        );
        let any = load(&certs.0, "quay.io").unwrap();
        assert_eq!(any.dir, Some(certs.0.join("_default")));
        assert_eq!(any.endpoints[0].host, "all-mirror");
        assert_eq!(any.server().host, "quay.io", "_default serves any host");
        assert_eq!(
            load(&certs.0, "reg:5000").unwrap().server().host,
            "underscore"
        );
        std::fs::remove_dir_all(certs.0.join("reg_5000_")).unwrap();
        assert_eq!(load(&certs.0, "reg:5000").unwrap().server().host, "colon");
        // A name that would leave certs.d is never looked up.
        assert_eq!(
            load(&certs.0, "..").unwrap().dir,
            Some(certs.0.join("_default"))
        );
    }

    #[test]
    fn docker_style_certificate_files() {
        let certs = CertsD::new("docker");
        certs.host(
            "registry.lan",
            &[
                ("ca.crt", CERT),
                ("other.crt", CERT),
                ("client.cert", CERT),
                ("client.key", KEY),
                ("README", "ignored"),
            ],
        );
        let config = load(&certs.0, "registry.lan").unwrap();
        assert_eq!(config.hosts_file, None);
        assert_eq!(config.endpoints.len(), 1);
        let server = config.server();
        assert_eq!(
            (server.host.as_str(), server.plain_http),
            ("registry.lan", None)
        );
        assert_eq!(server.tls.ca_pems.len(), 2);
        assert_eq!(
            server.tls.client_identity_pem.as_deref(),
            Some(format!("{CERT}{KEY}").as_bytes())
        );
        // An empty hosts.toml counts as none.
        certs.host("registry.lan", &[("hosts.toml", "\n")]);
        assert_eq!(
            load(&certs.0, "registry.lan")
                .unwrap()
                .server()
                .tls
                .ca_pems
                .len(),
            2
        );

        certs.host("half.lan", &[("client.cert", CERT)]);
        let err = error(&certs, "half.lan");
        assert!(
            err.contains("client.cert") && err.contains("client.key is missing"),
            "{err}"
        );
        certs.host(
            "two.lan",
            &[
                ("a.cert", CERT),
                ("a.key", KEY),
                ("b.cert", CERT),
                ("b.key", KEY),
            ],
        );
        let err = error(&certs, "two.lan");
        assert!(err.contains("2 client certificates"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named_with_the_file() {
        let certs = CertsD::new("unknown");
        let dir = certs.host(
            "top.lan",
            &[(
                "hosts.toml",
                "server = \"https://top.lan\"\nskip_verfy = true\n",
            )],
        );
        let err = error(&certs, "top.lan");
        assert!(
            err.contains(&dir.join("hosts.toml").display().to_string())
                && err.contains("`skip_verfy` in the top level: unknown key")
                && err.contains("skip_verify"),
            "{err}"
        );
        certs.host(
            "in-host.lan",
            &[(
                "hosts.toml",
                "[host.\"https://m\"]\ncapabilites = [\"pull\"]\n",
            )],
        );
        let err = error(&certs, "in-host.lan");
        assert!(
            err.contains("`capabilites` in [host.\"https://m\"]: unknown key"),
            "{err}"
        );
        certs.host(
            "nested.lan",
            &[(
                "hosts.toml",
                "[host.\"https://m\"]\nserver = \"https://x\"\n",
            )],
        );
        let err = error(&certs, "nested.lan");
        assert!(
            err.contains("`server`") && err.contains("top level"),
            "{err}"
        );
    }

    #[test]
    fn refused_values_say_what_to_do() {
        let certs = CertsD::new("refused");
        let cases: &[(&str, &str)] = &[
            (
                "override_path = true\n",
                "`override_path` in the top level: is not supported",
            ),
            (
                "dial_timeout = \"1s\"\n",
                "`dial_timeout` in the top level: is a containerd key hull does not support",
            ),
            (
                "capabilities = [\"pull\", \"delete\"]\n",
                "unknown capability \"delete\"",
            ),
            (
                "capabilities = []\n",
                "`capabilities` in the top level: lists none",
            ),
            (
                "skip_verify = \"yes\"\n",
                "`skip_verify` in the top level: has the type string: write true or false",
            ),
            ("server = \"ftp://x\"\n", "has scheme \"ftp\""),
            (
                "server = \"https://x/some/api\"\n",
                "has the path \"/some/api\"",
            ),
            ("ca = \"nope.pem\"\n", "nope.pem"),
            ("ca = \"key.pem\"\n", "holds no PEM certificate"),
            ("client = [[\"c.pem\"]]\n", "not a pair of file names"),
            ("client = [\"c.pem\", \"c.pem\"]\n", "2 client certificates"),
            ("client = \"key.pem\"\n", "holds no PEM certificate"),
            (
                "client = [[\"c.pem\", \"enc.pem\"]]\n",
                "encrypted private key",
            ),
            (
                "[header]\n\"bad header\" = \"x\"\n",
                "not a valid HTTP header name",
            ),
            (
                "[host.\"https://m\"]\nca = 1\n",
                "`ca` in [host.\"https://m\"]: has the type integer",
            ),
            ("server = [\n", "TOML parse error"),
        ];
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nRQ==\n-----END ENCRYPTED PRIVATE KEY-----\n";
        for (i, (toml, wanted)) in cases.iter().enumerate() {
            let host = format!("case{i}.lan");
            certs.host(
                &host,
                &[
                    ("hosts.toml", toml),
                    ("key.pem", KEY),
                    ("c.pem", &format!("{CERT}{KEY}")),
                    ("enc.pem", enc),
                ],
            );
            let err = error(&certs, &host);
            assert!(
                err.contains(wanted) && err.contains(&host),
                "{toml:?}: {err}"
            );
        }
    }

    #[test]
    fn pem_blocks_skip_text_outside_blocks() {
        let text = format!("Bag Attributes\n{CERT}junk\n  {KEY}");
        let blocks = pem_blocks(&text);
        assert_eq!(
            blocks,
            [
                ("CERTIFICATE", CERT.to_string()),
                ("PRIVATE KEY", KEY.to_string())
            ]
        );
        assert!(pem_blocks("-----BEGIN CERTIFICATE-----\nunterminated\n").is_empty());
    }
}
