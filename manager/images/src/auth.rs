//! Registry credentials in Docker's client config (`~/.docker/config.json`,
//! or `$DOCKER_CONFIG/config.json`), the file docker, podman, nerdctl and
//! skopeo share: `{"auths": {"<host>": {"auth": base64("user:password")}}}`.
//! Credential helpers (`credsStore`) are not run; entries they manage have
//! no `auth` and are ignored.

use crate::pull::Credentials;
use base64::Engine as _;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

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
}

fn load(path: &Path) -> Result<serde_json::Value, AuthConfigError> {
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

/// All usable credentials in the file, by registry host. A missing file
/// means none.
pub fn read(path: &Path) -> Result<Credentials, AuthConfigError> {
    let config = load(path)?;
    let mut out = Credentials::new();
    let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
        return Ok(out);
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
        if let Some(pair) = decoded.or_else(plain) {
            out.insert(host_of(key).to_string(), pair);
        }
    }
    Ok(out)
}

/// Store credentials for `host`, keeping everything else in the file. The
/// file is replaced atomically and readable by its owner only.
pub fn store(path: &Path, host: &str, username: &str, secret: &str) -> Result<(), AuthConfigError> {
    let mut config = load(path)?;
    if !config.is_object() {
        config = serde_json::json!({});
    }
    let key = if host == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        host
    };
    let auths = config
        .as_object_mut()
        .expect("checked above")
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    auths.as_object_mut().expect("checked above").insert(
        key.to_string(),
        serde_json::json!({ "auth": B64.encode(format!("{username}:{secret}")) }),
    );
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
    let text = serde_json::to_vec_pretty(&config).expect("JSON values serialise");
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(werr)?;
    fs::rename(&tmp, path).map_err(werr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_style_entries_and_stores_without_losing_others() {
        let dir = std::env::temp_dir().join(format!("hull-auth-test-{}", std::process::id()));
        let path = dir.join("config.json");
        assert!(
            read(&path).unwrap().is_empty(),
            "a missing file has no credentials"
        );
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTE6cDE="},
                "http://reg.lan:5000/v2/":{"username":"u2","password":"p:2"},
                "helper.io":{}},"credsStore":"desktop","detachKeys":"ctrl-q"}"#,
        )
        .unwrap();
        let creds = read(&path).unwrap();
        assert_eq!(creds["index.docker.io"], ("u1".into(), "p1".into()));
        assert_eq!(creds["reg.lan:5000"], ("u2".into(), "p:2".into()));
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
        fs::remove_dir_all(&dir).unwrap();
    }
}
