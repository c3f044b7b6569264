//! Entry names as the applier sees them: cleaned lexically (as Go's
//! `filepath.Clean("/" + name)`, which is what containerd's applier does)
//! and bounded.
//!
//! - `/`, `./` prefixes and empty or `.` components are dropped; `..` pops
//!   the previous component and stops at the root, so `../x`, `/x` and
//!   `a/../../x` all name `x` in the root. This confines by construction;
//!   the openat2 resolution then also confines whatever symlinks the tree
//!   holds.
//! - A name that cleans to the root itself (`./`, `/`, `..`) is skipped by
//!   the applier: the root directory belongs to the snapshot, not the layer.
//! - Limits: the whole name at most 4096 bytes (PATH_MAX), each component
//!   at most 255 (NAME_MAX), no NUL byte.

use std::fmt;

pub(crate) const PATH_MAX: usize = 4096;
pub(crate) const NAME_MAX: usize = 255;

/// A cleaned, relative, non-empty entry path: components joined by `/`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct EntryPath(Vec<u8>);

impl EntryPath {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The directory holding the entry ("" for the root) and its name.
    pub(crate) fn split(&self) -> (&[u8], &[u8]) {
        match self.0.iter().rposition(|b| *b == b'/') {
            Some(i) => (&self.0[..i], &self.0[i + 1..]),
            None => (b"", &self.0),
        }
    }

    pub(crate) fn name(&self) -> &[u8] {
        self.split().1
    }

    pub(crate) fn from_parts(dir: &[u8], name: &[u8]) -> EntryPath {
        if dir.is_empty() {
            return EntryPath(name.to_vec());
        }
        let mut v = dir.to_vec();
        v.push(b'/');
        v.extend_from_slice(name);
        EntryPath(v)
    }

    /// Every proper ancestor, nearest last: `a`, `a/b` for `a/b/c`.
    pub(crate) fn ancestors(&self) -> impl Iterator<Item = &[u8]> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(move |(i, _)| &self.0[..i])
    }
}

impl fmt::Debug for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.0))
    }
}

/// Clean `raw`; Ok(None) when it names the root itself.
pub(crate) fn clean(raw: &[u8]) -> Result<Option<EntryPath>, String> {
    if raw.len() > PATH_MAX {
        return Err(format!(
            "name is {} bytes long, over the {PATH_MAX}-byte limit",
            raw.len()
        ));
    }
    if raw.contains(&0) {
        return Err("name contains a NUL byte".into());
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c if c.len() > NAME_MAX => {
                return Err(format!(
                    "component {:?} is {} bytes long, over the {NAME_MAX}-byte limit",
                    String::from_utf8_lossy(c),
                    c.len()
                ))
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(EntryPath(parts.join(&b'/'))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Option<String> {
        clean(s.as_bytes()).unwrap().map(|p| p.to_string())
    }

    #[test]
    fn names_are_cleaned_into_the_root() {
        assert_eq!(c("a/b"), Some("a/b".into()));
        assert_eq!(c("./a//b/"), Some("a/b".into()));
        assert_eq!(c("/etc/passwd"), Some("etc/passwd".into()));
        assert_eq!(c("../../etc/passwd"), Some("etc/passwd".into()));
        assert_eq!(c("a/../../x"), Some("x".into()));
        assert_eq!(c("a/./b/../c"), Some("a/c".into()));
        assert_eq!(c("./"), None);
        assert_eq!(c(".."), None);
        assert_eq!(c("/"), None);
    }

    #[test]
    fn overlong_names_are_refused() {
        assert!(clean(&vec![b'a'; 256]).is_err());
        assert!(clean(&vec![b'a'; 255]).is_ok());
        let long = "d/".repeat(2049);
        assert!(clean(long.as_bytes()).is_err());
        assert!(clean(b"a\0b").is_err());
    }

    #[test]
    fn split_and_ancestors() {
        let p = clean(b"a/b/c").unwrap().unwrap();
        assert_eq!(p.split(), (&b"a/b"[..], &b"c"[..]));
        let a: Vec<&[u8]> = p.ancestors().collect();
        assert_eq!(a, vec![&b"a"[..], &b"a/b"[..]]);
        let top = clean(b"x").unwrap().unwrap();
        assert_eq!(top.split(), (&b""[..], &b"x"[..]));
    }
}
