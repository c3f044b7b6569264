//! `file://` stdio: a detached container's stdout and stderr appended to one
//! file, rotated at a size limit (`PATH` → `PATH.1` → ... → `PATH.N`, the
//! oldest dropped). The URI's query sets the limits:
//! `file:///var/log/c.log?max-size=10485760&max-files=3` (defaults below;
//! `max-size=0` never rotates, `max-files=0` truncates in place).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
pub const DEFAULT_MAX_FILES: u32 = 3;

pub struct RotatingLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
}

/// A parsed `file://` URI.
#[derive(Debug, PartialEq, Eq)]
pub struct FileUri {
    pub path: PathBuf,
    pub max_size: u64,
    pub max_files: u32,
}

/// Parses `file:///abs/path[?max-size=N&max-files=N]`. Percent-escapes in
/// the path are decoded, as Go's url.Parse does for containerd.
pub fn parse_uri(uri: &str) -> Result<FileUri> {
    let bad = |why: &str| {
        Error::InvalidArgument(format!(
            "log URI {uri:?}: {why} (expected file:///ABSOLUTE/PATH[?max-size=BYTES&max-files=N])"
        ))
    };
    let rest = uri
        .strip_prefix("file://")
        .ok_or_else(|| bad("not file://"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_decode(path).ok_or_else(|| bad("bad %-escape in the path"))?;
    if !path.starts_with('/') || path.ends_with('/') {
        return Err(bad("the path must be an absolute file path"));
    }
    let mut parsed = FileUri {
        path: PathBuf::from(path),
        max_size: DEFAULT_MAX_SIZE,
        max_files: DEFAULT_MAX_FILES,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "max-size" => {
                parsed.max_size = v
                    .parse()
                    .map_err(|_| bad("max-size is not a number of bytes"))?
            }
            "max-files" => {
                parsed.max_files = v.parse().map_err(|_| bad("max-files is not a number"))?
            }
            _ => return Err(bad(&format!("unknown parameter {k:?}"))),
        }
    }
    Ok(parsed)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl RotatingLog {
    pub fn open(uri: &FileUri) -> Result<RotatingLog> {
        if let Some(dir) = uri.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Internal(format!("creating log directory {}: {e}", dir.display()))
            })?;
        }
        let file = open_append(&uri.path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingLog {
            path: uri.path.clone(),
            file,
            size,
            max_size: uri.max_size,
            max_files: uri.max_files,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files == 0 {
            self.file.set_len(0)?;
        } else {
            for n in (1..self.max_files).rev() {
                let from = numbered(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, numbered(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
            self.file = open_append(&self.path).map_err(io::Error::other)?;
        }
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.max_size > 0 && self.size > 0 && self.size + buf.len() as u64 > self.max_size {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::Internal(format!("opening log file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_with_limits_and_escapes() {
        let u = parse_uri("file:///var/log/my%20c.log?max-size=100&max-files=2").unwrap();
        assert_eq!(u.path, PathBuf::from("/var/log/my c.log"));
        assert_eq!((u.max_size, u.max_files), (100, 2));
        let d = parse_uri("file:///x").unwrap();
        assert_eq!(
            (d.max_size, d.max_files),
            (DEFAULT_MAX_SIZE, DEFAULT_MAX_FILES)
        );
        assert!(parse_uri("file://relative").is_err());
        assert!(parse_uri("file:///x?colour=red")
            .unwrap_err()
            .to_string()
            .contains("colour"));
    }

    #[test]
    fn rotates_and_keeps_n_files() {
        let dir = std::env::temp_dir().join(format!("hull-shim-logtest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("c.log");
        let uri = FileUri {
            path: path.clone(),
            max_size: 10,
            max_files: 2,
        };
        let mut log = RotatingLog::open(&uri).unwrap();
        for chunk in ["aaaaaaaa\n", "bbbbbbbb\n", "cccccccc\n", "dddddddd\n"] {
            log.write_all(chunk.as_bytes()).unwrap();
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(path.clone()), "dddddddd\n");
        assert_eq!(read(numbered(&path, 1)), "cccccccc\n");
        assert_eq!(read(numbered(&path, 2)), "bbbbbbbb\n");
        assert!(!numbered(&path, 3).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
