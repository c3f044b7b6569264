//! `file://` stdio: a detached container's stdout and stderr appended to one
//! file, rotated at a size limit (`PATH` → `PATH.1` → ... → `PATH.N`, the
//! oldest dropped). The URI's query sets the limits:
//! `file:///var/log/c.log?max-size=10485760&max-files=3` (defaults below;
//! `max-size=0` never rotates, `max-files=0` truncates in place).
//!
//! `format=json` (a hull extension; the default is containerd's raw bytes)
//! writes docker's json-file lines instead, one per line of output:
//! `{"log":"text\n","stream":"stdout","time":"2026-12-03T13:45:01.123456789Z"}`,
//! so that a reader can tell stdout from stderr and show when each line
//! came (`hullctl logs --timestamps`). A line longer than [`MAX_LINE`] is
//! split, the pieces without the newline, as docker does.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, Result};

pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
pub const DEFAULT_MAX_FILES: u32 = 3;
/// The longest line kept whole in `format=json` (docker's 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// How a `file://` log stores the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The bytes as they came, stdout and stderr interleaved (containerd's).
    Raw,
    /// docker's json-file lines.
    Json,
}

/// Which of the container's outputs a write comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

pub struct RotatingLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    format: Format,
    /// Per stream (stdout, stderr): the start of a line not yet ended.
    partial: [Vec<u8>; 2],
}

/// A parsed `file://` URI.
#[derive(Debug, PartialEq, Eq)]
pub struct FileUri {
    pub path: PathBuf,
    pub max_size: u64,
    pub max_files: u32,
    pub format: Format,
}

/// Parses `file:///abs/path[?max-size=N&max-files=N]`. Percent-escapes in
/// the path are decoded, as Go's url.Parse does for containerd.
pub fn parse_uri(uri: &str) -> Result<FileUri> {
    let bad = |why: &str| {
        Error::InvalidArgument(format!(
            "log URI {uri:?}: {why} (expected file:///ABSOLUTE/PATH[?max-size=BYTES&max-files=N&format=raw|json])"
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
        format: Format::Raw,
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
            "format" => {
                parsed.format = match v {
                    "raw" => Format::Raw,
                    "json" => Format::Json,
                    _ => return Err(bad("format is raw or json")),
                }
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
            format: uri.format,
            partial: Default::default(),
        })
    }

    /// Append output of `stream`: as is (raw), or each complete line as a
    /// JSON record (json), the rest kept until its line ends.
    pub fn append(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()> {
        if self.format == Format::Raw {
            return self.write_all(bytes);
        }
        let mut partial = std::mem::take(&mut self.partial[stream as usize]);
        partial.extend_from_slice(bytes);
        let mut start = 0;
        let mut result = Ok(());
        while let Some(end) = line_end(&partial[start..]) {
            result = result.and(self.record(stream, &partial[start..start + end]));
            start += end;
        }
        partial.drain(..start);
        self.partial[stream as usize] = partial;
        result
    }

    /// The stream ended: write its unfinished line, if any.
    pub fn finish(&mut self, stream: Stream) -> io::Result<()> {
        let rest = std::mem::take(&mut self.partial[stream as usize]);
        if rest.is_empty() || self.format == Format::Raw {
            return Ok(());
        }
        self.record(stream, &rest)
    }

    fn record(&mut self, stream: Stream, line: &[u8]) -> io::Result<()> {
        let record = serde_json::json!({
            "log": String::from_utf8_lossy(line),
            "stream": stream.name(),
            "time": hull_timefmt::rfc3339_nano(SystemTime::now()),
        });
        let mut text = record.to_string();
        text.push('\n');
        self.write_all(text.as_bytes())
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

/// The length of the first line of `buf` (with its newline), or of its
/// first [`MAX_LINE`] bytes; None while a shorter line is unfinished.
fn line_end(buf: &[u8]) -> Option<usize> {
    match buf.iter().position(|b| *b == b'\n') {
        Some(i) if i < MAX_LINE => Some(i + 1),
        _ if buf.len() >= MAX_LINE => Some(MAX_LINE),
        _ => None,
    }
}

/// Now, as RFC 3339 in UTC with nanoseconds (docker's log timestamps).
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
        assert_eq!(
            parse_uri("file:///x?format=json").unwrap().format,
            Format::Json
        );
        assert!(parse_uri("file:///x?format=xml").is_err());
        assert!(parse_uri("file:///x?colour=red")
            .unwrap_err()
            .to_string()
            .contains("colour"));
    }

    #[test]
    fn rotates_and_keeps_n_files() {
        let tmp = tempfile::Builder::new()
            .prefix("hull-shim-logtest-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().join("logs");
        let path = dir.join("c.log");
        let uri = FileUri {
            path: path.clone(),
            max_size: 10,
            max_files: 2,
            format: Format::Raw,
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
    }

    #[test]
    fn json_lines_per_stream_with_times() {
        let tmp = tempfile::Builder::new()
            .prefix("hull-shim-jsonlog-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().join("logs");
        let path = dir.join("c.log");
        let uri = parse_uri(&format!("file://{}?format=json", path.display())).unwrap();
        let mut log = RotatingLog::open(&uri).unwrap();
        log.append(Stream::Stdout, b"one\ntw").unwrap();
        log.append(Stream::Stderr, b"err \"quoted\"\n").unwrap();
        log.append(Stream::Stdout, b"o\nunfinished").unwrap();
        log.append(Stream::Stderr, &vec![b'x'; MAX_LINE + 5])
            .unwrap();
        log.finish(Stream::Stdout).unwrap();
        log.finish(Stream::Stderr).unwrap();
        let records: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let got: Vec<(String, usize)> = records
            .iter()
            .map(|r| {
                let log = r["log"].as_str().unwrap();
                let shown = if log.len() > 20 {
                    "x…".into()
                } else {
                    log.to_string()
                };
                (
                    format!("{}:{shown}", r["stream"].as_str().unwrap()),
                    log.len(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("stdout:one\n".to_string(), 4),
                ("stderr:err \"quoted\"\n".to_string(), 13),
                ("stdout:two\n".to_string(), 4),
                ("stderr:x…".to_string(), MAX_LINE),
                ("stdout:unfinished".to_string(), 10),
                ("stderr:xxxxx".to_string(), 5),
            ]
        );
        let time = records[0]["time"].as_str().unwrap();
        assert!(hull_timefmt::parse_rfc3339(time).is_some(), "{time}");
    }
}
