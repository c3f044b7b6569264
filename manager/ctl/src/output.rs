//! Human tables and sizes; JSON for scripts.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::IsTerminal;

/// Text as it may reach a terminal: control characters (escape sequences
/// that could move the cursor, retitle the window or hide output) and
/// bidirectional overrides are shown escaped. Image names, media types,
/// platforms and error messages come from hulld, and through it from
/// registries, so everything hullctl prints passes through here.
pub fn safe(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Columns padded to their widest cell, as docker/ctr print them.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| safe(c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}   ");
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialise")
    );
}

/// 1.5 MiB style sizes.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// "3 minutes ago" for a Unix time.
pub fn age(then: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(then);
    let secs = now.saturating_sub(then);
    let (n, unit) = match secs {
        0..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86399 => (secs / 3600, "hour"),
        _ => (secs / 86400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

pub fn short_digest(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_sizes_and_digests() {
        let t = table(
            &["NAME", "SIZE"],
            &[
                vec!["a".into(), "1 B".into()],
                vec!["longer".into(), "2.0 KiB".into()],
            ],
        );
        assert_eq!(t, "NAME     SIZE\na        1 B\nlonger   2.0 KiB\n");
        assert_eq!(size(1536 * 1024), "1.5 MiB");
        assert_eq!(size(12), "12 B");
        assert_eq!(short_digest("sha256:0123456789abcdef"), "0123456789ab");
        assert!(age(0).ends_with("days ago"));
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(safe("linux/amd64"), "linux/amd64");
        assert_eq!(
            safe("a\x1b[31mred\x07\u{202e}x\nnext\tcol"),
            "a\\u{1b}[31mred\\u{7}\\u{202e}x\nnext\tcol"
        );
        let t = table(&["NAME"], &[vec!["\x1b]0;title\x07".into()]]);
        assert!(!t.contains('\x1b') && t.contains("\\u{1b}]0;title"), "{t}");
    }
}
