//! Registry credentials where the docker CLI keeps them, so that one
//! `docker login` (or `hullctl login`) serves docker, podman, nerdctl,
//! skopeo and hullctl alike. The client config (`~/.docker/config.json`, or
//! `$DOCKER_CONFIG/config.json`) holds them either itself,
//! `{"auths": {"<host>": {"auth": base64("user:password")}}}`, or, when
//! `credHelpers["<host>"]` or else `credsStore` names a helper, in a
//! credential store reached through `docker-credential-<name>` (see
//! `auth/helper.rs`): then the file only has an empty `auths` entry for the host,
//! so the secret is never written to a plain file.
//!
//! This runs in hullctl, as the user: hulld never reads a user's file or
//! runs a user's program, it gets one registry's credentials per request.
//!
//! A username of `<token>` is docker's way of storing an identity token
//! (e.g. from a registry's OAuth login), in a helper or as an entry's
//! `identitytoken`: it is returned as username `<token>` and the token as
//! the secret, which the registry client exchanges for access tokens with
//! the OAuth2 refresh-token grant.

mod helper;

use crate::pull::Credentials;
use crate::registry::IDENTITY_TOKEN_USER;
use base64::Engine as _;
use helper::Helper;
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Docker Hub's server name in config files and to helpers.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// The config file the current user's tools use.
pub fn default_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// `https://index.docker.io/v1/` → `index.docker.io`, `http://h:5000/v2/` → `h:5000`.
fn host_of(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// The names one registry host goes by in config files.
fn aliases(host: &str) -> Vec<&str> {
    match canonical(host) {
        "docker.io" => vec!["docker.io", "index.docker.io", "registry-1.docker.io"],
        _ => vec![host],
    }
}

/// Docker Hub's names all mean `docker.io`.
fn canonical(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        _ => host,
    }
}

/// The server name helpers and `auths` keys use for `host`.
fn server_of(host: &str) -> &str {
    match canonical(host) {
        "docker.io" => DOCKER_HUB_SERVER,
        _ => host,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid JSON ({source}): fix or remove it", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{program} is not on PATH, but credsStore/credHelpers in {} names it: \
         install it, or remove that setting to keep credentials in the file",
        path.display()
    )]
    HelperMissing { program: String, path: PathBuf },
    #[error(
        "credsStore/credHelpers in {} names the credential helper {name:?}, which is not a \
         program name: fix it",
        path.display()
    )]
    HelperName { name: String, path: PathBuf },
    #[error("credential helper `{program} {action}` for {host} failed: {detail}")]
    Helper {
        program: String,
        action: &'static str,
        host: String,
        detail: String,
    },
}

fn load(path: &Path) -> Result<Value, AuthConfigError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| AuthConfigError::Parse {
            path: path.into(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(source) => Err(AuthConfigError::Read {
            path: path.into(),
            source,
        }),
    }
}

/// Replace the file atomically (write, then rename), readable by its owner
/// only.
fn save(path: &Path, config: &Value) -> Result<(), AuthConfigError> {
    let werr = |source| AuthConfigError::Write {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(werr)?;
    }
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(werr)?;
    let text = serde_json::to_vec_pretty(config).expect("JSON values serialise");
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .and_then(|_| fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
        .map_err(werr)
}

/// The usable credentials in the file's `auths`, by registry host (entries
/// kept by a helper are empty there and left out). A missing file means
/// none. For one registry, [`lookup`] also asks the helpers.
pub fn read(path: &Path) -> Result<Credentials, AuthConfigError> {
    Ok(file_credentials(&load(path)?))
}

fn file_credentials(config: &Value) -> Credentials {
    let mut out = Credentials::new();
    let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
        return out;
    };
    for (key, entry) in auths {
        let decoded = entry
            .get("auth")
            .and_then(|a| a.as_str())
            .and_then(|a| B64.decode(a.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            });
        let plain = || {
            let u = entry.get("username")?.as_str()?;
            let p = entry.get("password")?.as_str()?;
            Some((u.to_string(), p.to_string()))
        };
        // What `docker login` stores for a registry that gave it an
        // identity token; it stands in for the password.
        let identity = || {
            let token = entry.get("identitytoken")?.as_str()?;
            (!token.is_empty()).then(|| (IDENTITY_TOKEN_USER.to_string(), token.to_string()))
        };
        if let Some(pair) = identity().or(decoded).or_else(plain) {
            out.insert(host_of(key).to_string(), pair);
        }
    }
    out
}

/// The name of the helper that keeps `host`'s credentials, as docker picks
/// it: `credHelpers[host]` (where `""` means the file), else `credsStore`.
fn helper_name(config: &Value, host: &str) -> Option<String> {
    let names = aliases(host);
    let per_host = config
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| h.iter().find(|(k, _)| names.contains(&host_of(k))))
        .map(|(_, name)| name);
    per_host
        .or_else(|| config.get("credsStore"))
        .and_then(|name| name.as_str())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
}

fn find_helper(
    config: &Value,
    path: &Path,
    host: &str,
    path_env: Option<&OsStr>,
) -> Result<Option<Helper>, AuthConfigError> {
    helper_name(config, host)
        .map(|name| Helper::find(&name, path, path_env))
        .transpose()
}

/// The program (`docker-credential-<name>`) that keeps `host`'s
/// credentials, if a helper does.
pub fn helper(path: &Path, host: &str) -> Result<Option<String>, AuthConfigError> {
    let name = helper_name(&load(path)?, canonical(host));
    Ok(name.map(|n| format!("docker-credential-{n}")))
}

/// The credentials for one registry `host` (`docker.io` for Docker Hub):
/// from its credential helper if the file names one, else from `auths`.
/// `None` when there are none.
pub fn lookup(path: &Path, host: &str) -> Result<Option<(String, String)>, AuthConfigError> {
    lookup_with(path, host, std::env::var_os("PATH").as_deref())
}

/// [`lookup`], with helpers searched for in `path_env` (a PATH value).
fn lookup_with(
    path: &Path,
    host: &str,
    path_env: Option<&OsStr>,
) -> Result<Option<(String, String)>, AuthConfigError> {
    let host = canonical(host);
    let config = load(path)?;
    match find_helper(&config, path, host, path_env)? {
        Some(helper) => helper.get(host, server_of(host)),
        None => Ok(crate::pull::lookup_credentials(&file_credentials(&config), host).cloned()),
    }
}

/// Store credentials for `host`, keeping everything else in the file: in
/// its credential helper if the file names one (the file then only gets an
/// empty `auths` entry, as docker writes), else in the file. The file is
/// replaced atomically and readable by its owner only.
pub fn store(path: &Path, host: &str, username: &str, secret: &str) -> Result<(), AuthConfigError> {
    store_with(
        path,
        host,
        username,
        secret,
        std::env::var_os("PATH").as_deref(),
    )
}

fn store_with(
    path: &Path,
    host: &str,
    username: &str,
    secret: &str,
    path_env: Option<&OsStr>,
) -> Result<(), AuthConfigError> {
    let host = canonical(host);
    let mut config = load(path)?;
    if !config.is_object() {
        config = serde_json::json!({});
    }
    let entry = match find_helper(&config, path, host, path_env)? {
        Some(helper) => {
            helper.store(host, server_of(host), username, secret)?;
            serde_json::json!({})
        }
        None => serde_json::json!({ "auth": B64.encode(format!("{username}:{secret}")) }),
    };
    let auths = auths_mut(&mut config);
    // One entry per registry: no stale secret under another of its names.
    let names = aliases(host);
    auths.retain(|key, _| !names.contains(&host_of(key)));
    auths.insert(server_of(host).to_string(), entry);
    save(path, &config)
}

/// The file's `auths` object, made one if it is missing or not an object.
fn auths_mut(config: &mut Value) -> &mut serde_json::Map<String, Value> {
    let auths = config
        .as_object_mut()
        .expect("an object")
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    auths.as_object_mut().expect("checked above")
}

/// Remove `host`'s credentials: from its credential helper if the file
/// names one, and its `auths` entries (under any of its names) from the
/// file. Whether there was anything to remove.
pub fn erase(path: &Path, host: &str) -> Result<bool, AuthConfigError> {
    erase_with(path, host, std::env::var_os("PATH").as_deref())
}

fn erase_with(path: &Path, host: &str, path_env: Option<&OsStr>) -> Result<bool, AuthConfigError> {
    let host = canonical(host);
    let mut config = load(path)?;
    let in_helper = match find_helper(&config, path, host, path_env)? {
        Some(helper) => helper.erase(host, server_of(host))?,
        None => false,
    };
    let Some(auths) = config.get_mut("auths").and_then(|a| a.as_object_mut()) else {
        return Ok(in_helper);
    };
    let before = auths.len();
    let names = aliases(host);
    auths.retain(|key, _| !names.contains(&host_of(key)));
    if auths.len() == before {
        return Ok(in_helper);
    }
    save(path, &config)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_style_entries_and_stores_without_losing_others() {
        let tmp = tempfile::Builder::new()
            .prefix("hull-auth-test-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().join("docker");
        let path = dir.join("config.json");
        assert!(
            read(&path).unwrap().is_empty(),
            "a missing file has no credentials"
        );
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTE6cDE="},
                "id.lan":{"auth":"dTpw","identitytoken":"refresh-me"},
                "http://reg.lan:5000/v2/":{"username":"u2","password":"p:2"},
                "helper.io":{}},"credHelpers":{"helper.io":"desktop"},"detachKeys":"ctrl-q"}"#,
        )
        .unwrap();
        let creds = read(&path).unwrap();
        assert_eq!(creds["index.docker.io"], ("u1".into(), "p1".into()));
        assert_eq!(creds["reg.lan:5000"], ("u2".into(), "p:2".into()));
        assert_eq!(creds["id.lan"], ("<token>".into(), "refresh-me".into()));
        assert!(!creds.contains_key("helper.io"));

        store(&path, "127.0.0.1:5000", "hull", "pa:ss").unwrap();
        store(&path, "docker.io", "u3", "p3").unwrap();
        let creds = read(&path).unwrap();
        assert_eq!(creds["127.0.0.1:5000"], ("hull".into(), "pa:ss".into()));
        assert_eq!(creds["index.docker.io"], ("u3".into(), "p3".into()));
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("detachKeys"),
            "other settings are kept: {text}"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        fs::write(&path, "{oops").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }

    /// A credential store kept in files next to the script, one JSON record
    /// per server, speaking the helper protocol (shared with the
    /// integration tests).
    const STORE_SCRIPT: &str = include_str!("../../../hack/registry/docker-credential-test");

    /// A scratch dir for one test, with `config.json` holding `config` and
    /// the helper scripts `docker-credential-<name>` for `helpers`.
    fn scratch(test: &str, config: &str, helpers: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::Builder::new()
            .prefix(&format!("hull-auth-{test}-"))
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        for (name, script) in helpers {
            let file = dir.join(format!("docker-credential-{name}"));
            fs::write(&file, script).unwrap();
            fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = dir.join("config.json");
        fs::write(&path, config).unwrap();
        (tmp, path)
    }

    fn pair(u: &str, s: &str) -> Option<(String, String)> {
        Some((u.into(), s.into()))
    }

    /// The helper's stored records, concatenated.
    fn helper_store(dir: &Path, name: &str) -> String {
        let store = dir.join(format!("docker-credential-{name}.store"));
        let mut records: Vec<String> = fs::read_dir(store)
            .into_iter()
            .flatten()
            .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        records.sort();
        records.join("\n")
    }

    #[test]
    fn creds_store_keeps_secrets_out_of_the_file() {
        let (dir, path) = scratch(
            "store",
            r#"{"credsStore":"hulltest","auths":{"reg.lan:5000":{"auth":"b2xkOnB3"}}}"#,
            &[("hulltest", STORE_SCRIPT)],
        );
        let env = Some(dir.path().as_os_str());
        let lookup = |host| lookup_with(&path, host, env).unwrap();
        assert_eq!(lookup("reg.lan:5000"), None, "the helper's not found");

        store_with(&path, "reg.lan:5000", "hull", "s3cret", env).unwrap();
        store_with(&path, "docker.io", "<token>", "id-token", env).unwrap();
        assert_eq!(lookup("reg.lan:5000"), pair("hull", "s3cret"));
        assert_eq!(lookup("docker.io"), pair("<token>", "id-token"));
        assert_eq!(lookup("index.docker.io"), pair("<token>", "id-token"));
        let kept = helper_store(dir.path(), "hulltest");
        assert!(
            kept.contains("s3cret") && kept.contains(DOCKER_HUB_SERVER),
            "{kept}"
        );

        let text = fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("s3cret") && !text.contains("id-token"),
            "{text}"
        );
        assert!(!text.contains("b2xkOnB3"), "the old secret is gone: {text}");
        let config: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(config["auths"]["reg.lan:5000"], serde_json::json!({}));
        assert_eq!(config["auths"][DOCKER_HUB_SERVER], serde_json::json!({}));
        assert_eq!(config["credsStore"], "hulltest");

        assert!(erase_with(&path, "reg.lan:5000", env).unwrap());
        assert_eq!(lookup("reg.lan:5000"), None);
        assert!(!fs::read_to_string(&path).unwrap().contains("reg.lan"));
        assert!(
            !erase_with(&path, "reg.lan:5000", env).unwrap(),
            "nothing left"
        );
        assert_eq!(lookup("docker.io"), pair("<token>", "id-token"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn cred_helpers_take_precedence_over_creds_store() {
        let (dir, path) = scratch(
            "precedence",
            r#"{"credsStore":"hulltest",
                "credHelpers":{"https://reg.lan:5000":"hullother","plain.lan":""}}"#,
            &[("hulltest", STORE_SCRIPT), ("hullother", STORE_SCRIPT)],
        );
        let env = Some(dir.path().as_os_str());
        store_with(&path, "reg.lan:5000", "a", "secret-a", env).unwrap();
        store_with(&path, "other.lan", "b", "secret-b", env).unwrap();
        store_with(&path, "plain.lan", "c", "secret-c", env).unwrap();
        let (test, other) = (
            helper_store(dir.path(), "hulltest"),
            helper_store(dir.path(), "hullother"),
        );
        assert!(
            other.contains("secret-a") && !other.contains("secret-b"),
            "{other}"
        );
        assert!(
            test.contains("secret-b") && !test.contains("secret-a"),
            "{test}"
        );
        assert!(!test.contains("secret-c") && !other.contains("secret-c"));
        assert_eq!(
            read(&path).unwrap()["plain.lan"],
            ("c".into(), "secret-c".into())
        );

        assert_eq!(
            lookup_with(&path, "reg.lan:5000", env).unwrap(),
            pair("a", "secret-a")
        );
        assert_eq!(
            lookup_with(&path, "other.lan", env).unwrap(),
            pair("b", "secret-b")
        );
        assert_eq!(
            lookup_with(&path, "plain.lan", env).unwrap(),
            pair("c", "secret-c")
        );
        let helper_of = |host| helper(&path, host).unwrap();
        assert_eq!(
            helper_of("reg.lan:5000").as_deref(),
            Some("docker-credential-hullother")
        );
        assert_eq!(
            helper_of("docker.io").as_deref(),
            Some("docker-credential-hulltest")
        );
        assert_eq!(helper_of("plain.lan"), None);
    }

    #[test]
    fn missing_and_failing_helpers_are_clear_errors() {
        let broken = "#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n";
        let (dir, path) = scratch(
            "errors",
            r#"{"credsStore":"nothere","credHelpers":{"reg.lan":"hullbroken","bad.lan":"../x"}}"#,
            &[("hullbroken", broken)],
        );
        let env = Some(dir.path().as_os_str());
        let err = lookup_with(&path, "docker.io", env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("docker-credential-nothere is not on PATH")
                && err.contains(&path.display().to_string()),
            "{err}"
        );
        let err = store_with(&path, "other.lan", "u", "never-written", env).unwrap_err();
        assert!(err.to_string().contains("not on PATH"), "{err}");
        assert!(!fs::read_to_string(&path).unwrap().contains("never-written"));

        let err = lookup_with(&path, "reg.lan", env).unwrap_err().to_string();
        for part in [
            "docker-credential-hullbroken get",
            "reg.lan",
            "exit status: 3",
            "keychain locked",
        ] {
            assert!(err.contains(part), "{part:?} in {err}");
        }
        let err = erase_with(&path, "bad.lan", env).unwrap_err().to_string();
        assert!(
            err.contains("\"../x\"") && err.contains("not a program name"),
            "{err}"
        );
    }
}
