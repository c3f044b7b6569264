//! Response bodies read under two rules, so a hostile or broken registry
//! can neither exhaust hulld's memory nor hold a pull forever:
//! - documents kept in memory (manifests, tokens, error bodies) are read up
//!   to a size cap, whatever Content-Length says or whether it is there;
//! - every body must deliver at least [`Progress::min_bytes`] in each
//!   [`Progress::window`]; a trickle (one byte every 30 s never trips a read
//!   timeout) or a stall is cut off.

use super::Error;
use bytes::Bytes;
use std::time::Duration;
use tokio::time::Instant;

/// The minimum-progress rule for response bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub min_bytes: u64,
    pub window: Duration,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            min_bytes: 10 * 1024,
            window: Duration::from_secs(30),
        }
    }
}

/// A response body read chunk by chunk under the [`Progress`] rule.
pub struct Body {
    response: reqwest::Response,
    rule: Progress,
    /// What is being read, for errors ("blob sha256:…", "token from …").
    what: String,
    window_start: Instant,
    window_bytes: u64,
}

impl Body {
    pub fn new(response: reqwest::Response, rule: Progress, what: impl Into<String>) -> Body {
        Body {
            response,
            rule,
            what: what.into(),
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// The next chunk, `None` at the end of the body.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let deadline = self.window_start + self.rule.window;
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(chunk)) => {
                    if let Some(c) = &chunk {
                        self.window_bytes += c.len() as u64;
                    }
                    if Instant::now() >= deadline {
                        self.close_window()?;
                    }
                    return Ok(chunk);
                }
                Ok(Err(e)) => {
                    return Err(Error::Interrupted {
                        detail: format!("reading {}: {}", self.what, super::error_chain(&e)),
                    })
                }
                Err(_) => self.close_window()?,
            }
        }
    }

    /// End of a window: enough bytes came, or the body is too slow.
    fn close_window(&mut self) -> Result<(), Error> {
        if self.window_bytes < self.rule.min_bytes {
            return Err(Error::TooSlow {
                what: self.what.clone(),
                bytes: self.window_bytes,
                rule: self.rule,
            });
        }
        self.window_start = Instant::now();
        self.window_bytes = 0;
        Ok(())
    }

    /// The whole body, refused (not truncated) if it exceeds `limit`.
    pub async fn read_to_end(mut self, limit: u64) -> Result<Vec<u8>, Error> {
        if let Some(len) = self.response.content_length() {
            if len > limit {
                return Err(Error::TooLarge {
                    what: self.what,
                    limit,
                });
            }
        }
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(Error::TooLarge {
                    what: self.what,
                    limit,
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// At most `limit` bytes of the body, the rest dropped unread (for
    /// error bodies, which only feed a message).
    pub async fn read_prefix(mut self, limit: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < limit {
            match self.chunk().await {
                Ok(Some(chunk)) => {
                    let take = chunk.len().min(limit - out.len());
                    out.extend_from_slice(&chunk[..take]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        out
    }
}

/// Human-readable byte counts for messages ("4 MiB", "10 KiB", "512 bytes").
pub fn size_text(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}
