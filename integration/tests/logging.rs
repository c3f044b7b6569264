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

/// The messages of the `level=debug` lines of text-format log output
/// (runc adds fields after msg in debug mode: only msg is read).
fn text_debug_messages(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains(" level=debug "))
        .map(|l| {
            let quoted = l
                .split_once(" msg=")
                .unwrap_or_else(|| panic!("debug line without msg: {l:?}"))
                .1;
            serde_json::Deserializer::from_str(quoted)
                .into_iter::<String>()
                .next()
                .and_then(Result::ok)
                .unwrap_or_else(|| panic!("msg is not a quoted string: {l:?}"))
        })
        .collect()
}

/// The messages of the `"level":"debug"` lines of a JSON log file; every
/// line is a JSON object with level, msg and time.
fn json_debug_messages(path: &Path) -> Vec<String> {
    log_lines(path)
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l:?}"))
        })
        .inspect(|v| {
            assert!(v["msg"].is_string() && v["level"].is_string(), "{v}");
            assert_rfc3339(v["time"].as_str().unwrap_or_default());
        })
        .filter(|v| v["level"] == "debug")
        .map(|v| v["msg"].as_str().unwrap().to_owned())
        .collect()
}

#[track_caller]
fn assert_some_mention(messages: &[String], words: &[&str]) {
    for word in words {
        assert!(
            messages.iter().any(|m| m.contains(word)),
            "no debug line mentions {word:?}:\n{}",
            messages.join("\n")
        );
    }
}

/// `--debug exec` says which namespaces the process joins, in runc's text
/// format on stderr and in its JSON format in a log file.
#[test]
fn debug_lines_for_exec() {
    let Some(rt) = Runtime::new("log-debug-exec") else {
        return;
    };
    let mut bundle = rt.bundle();
    let id = rt.start_sleeper(&mut bundle);
    let out = rt.cmd(&["--debug", "exec", &id, "true"]);
    out.ok();
    let messages = text_debug_messages(&out.stderr);
    assert_some_mention(&messages, &["namespace"]);

    let log = rt.dir("log").join("runtime.log");
    let log_str = log.to_str().unwrap();
    rt.cmd(&[
        "--debug",
        "--log",
        log_str,
        "--log-format",
        "json",
        "exec",
        &id,
        "true",
    ])
    .ok();
    assert_some_mention(&json_debug_messages(&log), &["namespace"]);
}

/// What a person debugging a failed start needs from `--debug`: the
/// namespaces, each mount, hooks, the seccomp filter, the program exec'd.
#[test]
fn debug_lines_for_create_and_start() {
    if !is_hull() {
        return hull_integration::skip("runc's debug lines are its own");
    }
    let Some(rt) = Runtime::new("log-debug-create") else {
        return;
    };
    let log = rt.dir("log").join("runtime.log");
    let log_str = log.to_str().unwrap();
    let mut bundle = rt.bundle();
    bundle
        .args(&["true"])
        .push(
            "/hooks/createRuntime",
            serde_json::json!({ "path": "/bin/true" }),
        )
        .set(
            "/linux/seccomp",
            serde_json::json!({ "defaultAction": "SCMP_ACT_ALLOW" }),
        );
    bundle.save();
    let id = rt.new_id();
    let path = bundle.path().to_str().unwrap().to_owned();
    let debug_json = ["--debug", "--log", log_str, "--log-format", "json"];
    rt.cmd(&[&debug_json[..], &["create", "--bundle", &path, &id]].concat())
        .ok();
    rt.cmd(&[&debug_json[..], &["start", &id]].concat()).ok();
    rt.wait_for_status(&id, "stopped");
    let messages = json_debug_messages(&log);
    assert_some_mention(
        &messages,
        &[
            "namespaces new: ",
            "mounting proc proc on /proc",
            "pivot_root",
            "running createRuntime hook #0: /bin/true",
            "seccomp",
            "start received",
            "exec /bin/true",
        ],
    );
}
