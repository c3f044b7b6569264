//! `--log FILE` and `--log-format text|json`: the error lines that users and
//! containerd (which shows the last `"level":"error"` line's msg) read.

use std::fs;
use std::path::Path;

use hull_integration::{is_hull, Output, Runtime, Value};

const ID: &str = "no-such-container";

/// `RUNTIME [log_flags...] state ID` for a container that does not exist; it must exit 1.
#[track_caller]
fn failing_state(rt: &Runtime, log_flags: &[&str]) -> Output {
    let out = rt.cmd(&[log_flags, &["state", ID]].concat());
    assert_eq!(out.code(), 1, "{out}");
    out
}

/// The error message must name the container (runc 1.1 says only "container does not exist").
#[track_caller]
fn assert_mentions_id(msg: &str) {
    if is_hull() {
        assert!(
            msg.contains(ID),
            "error message does not name {ID:?}: {msg:?}"
        );
    } else {
        assert!(msg.contains("does not exist"), "{msg:?}");
    }
}

/// Asserts `t` is an RFC 3339 timestamp: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
#[track_caller]
fn assert_rfc3339(t: &str) {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = (|| {
        let (date, rest) = t.split_once('T')?;
        let d: Vec<&str> = date.split('-').collect();
        let date_ok = d.len() == 3
            && d.iter()
                .zip([4, 2, 2])
                .all(|(p, n)| p.len() == n && digits(p));
        let (clock, zone) = match rest.strip_suffix('Z') {
            Some(clock) => (clock, "Z"),
            None => rest.split_at(rest.rfind(['+', '-'])?),
        };
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
        let h: Vec<&str> = hms.split(':').collect();
        let clock_ok = h.len() == 3 && h.iter().all(|p| p.len() == 2 && digits(p)) && digits(frac);
        let zone_ok = zone == "Z"
            || (zone.len() == 6 && digits(&zone[1..3]) && &zone[3..4] == ":" && digits(&zone[4..]));
        Some(date_ok && clock_ok && zone_ok)
    })();
    assert_eq!(ok, Some(true), "not an RFC 3339 time: {t:?}");
}

/// Splits `time="T" level=L msg="M"` (logrus text format) into (T, L, M).
#[track_caller]
fn parse_text_line(line: &str) -> (String, String, String) {
    let parsed = (|| {
        let rest = line.strip_prefix("time=\"")?;
        let (time, rest) = rest.split_once("\" level=")?;
        let (level, msg) = rest.split_once(" msg=")?;
        // The message is a quoted string with Go (here: JSON-compatible) escapes.
        let msg: String = serde_json::from_str(msg).ok()?;
        Some((time.to_owned(), level.to_owned(), msg))
    })();
    parsed.unwrap_or_else(|| panic!("not a `time=\"..\" level=.. msg=\"..\"` line: {line:?}"))
}

/// The non-empty lines of a log file.
fn log_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("log file {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn json_log_file_gets_one_error_line() {
    let Some(rt) = Runtime::new("log-json") else {
        return;
    };
    let log = rt.dir("log").join("runtime.log");
    let log_str = log.to_str().unwrap();
    let out = failing_state(&rt, &["--log", log_str, "--log-format", "json"]);

    let lines = log_lines(&log);
    assert_eq!(lines.len(), 1, "expected one log line: {lines:?}\n{out}");
    let entry: Value = serde_json::from_str(&lines[0])
        .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {:?}", lines[0]));
    let mut keys: Vec<&str> = entry
        .as_object()
        .expect("log line is a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["level", "msg", "time"], "{entry}");
    assert_eq!(entry["level"], "error", "{entry}");
    assert_mentions_id(entry["msg"].as_str().expect("msg is a string"));
    assert_rfc3339(entry["time"].as_str().expect("time is a string"));
    // The log went to the file, not to stderr.
    assert!(!out.stderr.contains("level="), "{out}");
}

#[test]
fn error_on_stderr_without_log_file() {
    let Some(rt) = Runtime::new("log-stderr") else {
        return;
    };
    let out = failing_state(&rt, &[]);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "expected a one-line error:\n{out}");
    let (time, level, msg) = parse_text_line(lines[0]);
    assert_rfc3339(&time);
    assert_eq!(level, "error", "{out}");
    assert_mentions_id(&msg);
    assert!(out.stdout.is_empty(), "{out}");
}

#[test]
fn text_log_file() {
    let Some(rt) = Runtime::new("log-text") else {
        return;
    };
    let log = rt.dir("log").join("runtime.log");
    let out = failing_state(
        &rt,
        &["--log", log.to_str().unwrap(), "--log-format", "text"],
    );
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 1, "expected one log line: {lines:?}\n{out}");
    let (time, level, msg) = parse_text_line(&lines[0]);
    assert_rfc3339(&time);
    assert_eq!(level, "error");
    assert_mentions_id(&msg);
}
