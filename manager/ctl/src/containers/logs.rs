//! A detached container's output, as hull-shim logs it: docker's json-file
//! lines (`{"log":"…","stream":"stdout","time":"…"}`, the shim's
//! `file://…?format=json`), each shown on the stream it came from, with
//! `--timestamps` prefixed by its time. A log in containerd's raw format
//! (no records: a container made by an older hullctl) is shown as it is.

use super::args::LogsArgs;
use super::{Ctx, Exit};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

/// One line of output, as the log holds it.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    stderr: bool,
    time: String,
    text: String,
}

#[derive(Clone, Copy)]
pub struct Show {
    pub tail: Option<usize>,
    pub follow: bool,
    pub timestamps: bool,
}

/// How the log file is written (decided by its first byte).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Records,
    Raw,
}

/// Splits `bytes` into records; returns them and how many bytes they used
/// (a last line without its newline is not complete yet). Lines that are
/// not records are shown as stdout text.
fn records(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut used = 0;
    while let Some(n) = bytes[used..].iter().position(|b| *b == b'\n') {
        let line = &bytes[used..used + n];
        used += n + 1;
        let value: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
        out.push(match value["log"].as_str() {
            Some(text) => Record {
                stderr: value["stream"] == "stderr",
                time: value["time"].as_str().unwrap_or_default().to_string(),
                text: text.to_string(),
            },
            None => Record {
                stderr: false,
                time: String::new(),
                text: format!("{}\n", String::from_utf8_lossy(line)),
            },
        });
    }
    (out, used)
}

/// The raw bytes from the start of the last `tail` lines.
fn raw_tail_start(text: &[u8], tail: usize) -> usize {
    if tail == 0 {
        return text.len();
    }
    let mut newlines = 0;
    for (i, b) in text.iter().enumerate().rev() {
        if *b == b'\n' && i + 1 != text.len() {
            newlines += 1;
            if newlines == tail {
                return i + 1;
            }
        }
    }
    0
}

fn print(records: &[Record], timestamps: bool) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for r in records {
        let sink: &mut dyn Write = if r.stderr { &mut err } else { &mut out };
        if timestamps {
            write!(sink, "{} ", hull_timefmt::nano_fixed(&r.time)).map_err(|e| e.to_string())?;
        }
        sink.write_all(r.text.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    err.flush().map_err(|e| e.to_string())
}

fn print_raw(bytes: &[u8]) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}

async fn open(path: &PathBuf, follow: bool) -> Result<Option<std::fs::File>, String> {
    match std::fs::File::open(path) {
        Ok(f) => Ok(Some(f)),
        // Not written yet: wait for it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok(f) = std::fs::File::open(path) {
                return Ok(Some(f));
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Print a log file (the last `tail` lines), and with `follow` keep
/// printing what is appended until cancelled.
pub async fn show_log(path: PathBuf, how: Show) -> Result<(), String> {
    let Some(mut file) = open(&path, how.follow).await? else {
        return Ok(());
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut kind = match bytes.first() {
        None => None,
        Some(b'{') => Some(Kind::Records),
        Some(_) => Some(Kind::Raw),
    };
    let mut pos = match kind {
        Some(Kind::Raw) => {
            let start = how.tail.map_or(0, |n| raw_tail_start(&bytes, n));
            print_raw(&bytes[start..])?;
            bytes.len()
        }
        _ => {
            let (mut all, used) = records(&bytes);
            if let Some(n) = how.tail {
                all.drain(..all.len().saturating_sub(n));
            }
            print(&all, how.timestamps)?;
            used
        }
    } as u64;
    if !how.follow {
        return Ok(());
    }
    let mut buf = vec![0u8; 65536];
    let mut pending = Vec::new();
    loop {
        file.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        pos += n as u64;
        let kind = *kind.get_or_insert(if buf[0] == b'{' {
            Kind::Records
        } else {
            Kind::Raw
        });
        if kind == Kind::Raw {
            print_raw(&buf[..n])?;
            continue;
        }
        pending.extend_from_slice(&buf[..n]);
        let (new, used) = records(&pending);
        pending.drain(..used);
        print(&new, how.timestamps)?;
    }
}

/// After the container exited: let a follower print what was written
/// before the exit (it reads every 100 ms), then stop it.
pub async fn drain(
    follow: std::pin::Pin<&mut impl std::future::Future<Output = Result<(), String>>>,
) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_millis(250), follow).await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

pub async fn logs(ctx: &Ctx<'_>, a: LogsArgs) -> Exit {
    let c = super::find(ctx.c, &a.container).await?;
    let path = super::run::log_path(ctx, &c.id);
    let how = Show {
        tail: a.tail,
        follow: a.follow,
        timestamps: a.timestamps,
    };
    if !a.follow {
        show_log(path, how).await?;
        return Ok(0);
    }
    // Follow until the container stops.
    let follow = show_log(path, how);
    tokio::pin!(follow);
    tokio::select! {
        r = &mut follow => { r?; }
        _ = super::run::wait(ctx.c, &c.id, "") => {
            drain(follow).await?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_stream_and_an_unfinished_line_waits() {
        let log = concat!(
            r#"{"log":"out\n","stream":"stdout","time":"2026-12-03T10:00:00.000000001Z"}"#,
            "\n",
            r#"{"log":"err\n","stream":"stderr","time":"2026-12-03T10:00:00.000000002Z"}"#,
            "\n",
            "not a record\n",
            r#"{"log":"half"#,
        );
        let (got, used) = records(log.as_bytes());
        assert_eq!(
            got,
            [
                Record {
                    stderr: false,
                    time: "2026-12-03T10:00:00.000000001Z".into(),
                    text: "out\n".into()
                },
                Record {
                    stderr: true,
                    time: "2026-12-03T10:00:00.000000002Z".into(),
                    text: "err\n".into()
                },
                Record {
                    stderr: false,
                    time: String::new(),
                    text: "not a record\n".into()
                },
            ]
        );
        assert_eq!(&log[used..], r#"{"log":"half"#);
    }

    #[test]
    fn raw_tail() {
        assert_eq!(raw_tail_start(b"a\nb\nc\n", 2), 2);
        assert_eq!(raw_tail_start(b"a\nb\nc\n", 5), 0);
        assert_eq!(raw_tail_start(b"a\nb\nc\n", 0), 6);
    }
}
