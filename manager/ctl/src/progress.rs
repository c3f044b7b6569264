//! Pull progress: a bar per blob on a terminal (like docker/nerdctl), one
//! line per state change otherwise (logs, CI).

use crate::output::{safe, short_digest, size};
use hull_api::transfer::{pull_progress::Event, BlobProgress, UnpackProgress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;

pub enum Progress {
    Bars {
        multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
    },
    Lines {
        last: HashMap<String, String>,
    },
    Quiet,
}

fn kind(media_type: &str) -> &'static str {
    if media_type.contains("config") {
        "config"
    } else if media_type.contains("manifest") || media_type.contains("index") {
        "manifest"
    } else {
        "layer"
    }
}

impl Progress {
    pub fn new(tty: bool, quiet: bool) -> Progress {
        match (quiet, tty) {
            (true, _) => Progress::Quiet,
            (false, true) => Progress::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
                bars: HashMap::new(),
            },
            (false, false) => Progress::Lines {
                last: HashMap::new(),
            },
        }
    }

    pub fn event(&mut self, event: &Event) {
        match (self, event) {
            (Progress::Quiet, _) => {}
            (Progress::Bars { multi, .. }, Event::Resolved(d)) => {
                let _ = multi.println(format!(
                    "resolved {} ({})",
                    safe(&d.digest),
                    safe(&d.media_type)
                ));
            }
            (Progress::Lines { .. }, Event::Resolved(d)) => {
                eprintln!("resolved {} ({})", safe(&d.digest), safe(&d.media_type));
            }
            (Progress::Bars { multi, bars }, Event::Blob(b)) => {
                let bar = bars.entry(b.digest.clone()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(b.total));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix} {wide_bar} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {msg}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(format!(
                        "{:<8} {}",
                        kind(&b.media_type),
                        safe(short_digest(&b.digest))
                    ));
                    bar
                });
                bar.set_position(b.offset);
                match b.state.as_str() {
                    "done" | "exists" | "skipped" => bar.finish_with_message(b.state.clone()),
                    state => bar.set_message(safe(state).into_owned()),
                }
            }
            (Progress::Lines { last }, Event::Blob(b)) => {
                if last.get(&b.digest) != Some(&b.state) {
                    last.insert(b.digest.clone(), b.state.clone());
                    eprintln!("{}", line(b));
                }
            }
            (Progress::Bars { multi, .. }, Event::Unpack(u)) => {
                if u.state != "unpacking" {
                    let _ = multi.println(unpack_line(u));
                }
            }
            (Progress::Lines { .. }, Event::Unpack(u)) => eprintln!("{}", unpack_line(u)),
            (_, Event::Done(_)) => {}
        }
    }

    pub fn finish(&mut self) {
        if let Progress::Bars { multi, .. } = self {
            let _ = multi.clear();
        }
    }
}

fn line(b: &BlobProgress) -> String {
    format!(
        "{:<8} {}  {:<11} {}/{}",
        kind(&b.media_type),
        safe(short_digest(&b.digest)),
        safe(&b.state),
        size(b.offset),
        size(b.total)
    )
}

fn unpack_line(u: &UnpackProgress) -> String {
    format!(
        "{:<8} {}  {:<11} {}",
        "unpack",
        safe(short_digest(&u.layer)),
        safe(&u.state),
        size(u.applied)
    )
}
