//! Image references: `[domain[:port]/]path[:tag][@digest]`.
//!
//! Normalisation follows docker's rules, which users and containerd expect:
//! the first component is a registry domain only if it contains a `.` or a
//! `:` or is `localhost`; otherwise the image is on `docker.io`, and a
//! single-component path there lives under `library/`. Without a tag or a
//! digest the tag is `latest`.

use hull_content::Digest;
use std::fmt;
use std::str::FromStr;

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const MAX_NAME_LEN: usize = 255;

/// A normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    pub domain: String,
    /// The repository path within the registry, e.g. `library/busybox`.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image reference {input:?}: {why}")]
pub struct InvalidReference {
    pub input: String,
    pub why: String,
}

fn invalid(input: &str, why: impl Into<String>) -> InvalidReference {
    InvalidReference {
        input: input.to_string(),
        why: why.into(),
    }
}

/// A path component: lowercase alphanumerics separated by `.`, `_`, `__`
/// or runs of `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        let sep_len = match ch {
            b'.' => 1,
            b'_' if b.get(i + 1) == Some(&b'_') => 2,
            b'_' => 1,
            b'-' => b[i..].iter().take_while(|c| **c == b'-').count(),
            _ => return false,
        };
        i += sep_len;
        if !b
            .get(i)
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

impl FromStr for Reference {
    type Err = InvalidReference;

    fn from_str(input: &str) -> Result<Reference, InvalidReference> {
        if input.is_empty() {
            return Err(invalid(input, "it is empty"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((name, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|e| invalid(input, e.to_string()))?;
                (name, Some(digest))
            }
            None => (input, None),
        };
        // A tag follows the last ':' after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(invalid(
                    input,
                    format!("tag {t:?} must be 1-128 of [A-Za-z0-9_.-], not starting with . or -"),
                ));
            }
        }
        if name.len() > MAX_NAME_LEN {
            return Err(invalid(
                input,
                format!("the name is longer than {MAX_NAME_LEN} characters"),
            ));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                if !valid_domain(first) {
                    return Err(invalid(
                        input,
                        format!("registry {first:?} is not a valid host[:port]"),
                    ));
                }
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == LEGACY_DOMAIN {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        if let Some(bad) = path.split('/').find(|c| !valid_component(c)) {
            return Err(invalid(
                input,
                format!("repository component {bad:?} must be lowercase letters and digits, separated by . _ __ or -"),
            ));
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }
}

impl Reference {
    /// `domain/path`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("127.0.0.1:5000/a/b/c:v1"), "127.0.0.1:5000/a/b/c:v1");
        assert_eq!(
            norm("registry.example.com/team/app:1.0-rc_1"),
            "registry.example.com/team/app:1.0-rc_1"
        );
        assert_eq!(
            norm(&format!("busybox@{D}")),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(
            norm(&format!("busybox:1.36@{D}")),
            format!("docker.io/library/busybox:1.36@{D}")
        );
        assert_eq!(
            norm("a__b.c-d---e"),
            "docker.io/library/a__b.c-d---e:latest"
        );
    }

    #[test]
    fn what_to_fetch() {
        let r: Reference = "localhost:5000/app".parse().unwrap();
        assert_eq!(
            (r.domain.as_str(), r.path.as_str(), r.object()),
            ("localhost:5000", "app", "latest".to_string())
        );
        let r: Reference = format!("app:v2@{D}").parse().unwrap();
        assert_eq!(r.object(), D);
    }

    #[test]
    fn bad_references_name_the_problem() {
        for (input, needle) in [
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("busybox:", "tag"),
            ("busybox:-x", "tag"),
            ("a//b", "component"),
            ("a/.b", "component"),
            ("busybox@sha256:abc", "digest"),
            ("my_host:5000x/app", "registry"),
            ("exa$mple.com/app", "registry"),
        ] {
            let e = input.parse::<Reference>().unwrap_err().to_string();
            assert!(e.contains(needle), "{input:?}: {e}");
        }
        assert!(format!("{}:t", "a".repeat(300))
            .parse::<Reference>()
            .is_err());
    }
}
