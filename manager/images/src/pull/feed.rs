//! Reading a blob while it downloads: the unpacker reads a layer from the
//! ingest file the download appends to, so the network is read once and
//! the layer is decompressed once, while the bytes are still in the page
//! cache. The download publishes how far it got ([`Feed`]); a
//! [`FeedReader`] reads up to there and waits for more.
//!
//! A download that starts over (a registry that ignored the Range) makes
//! the reader fail with [`Restarted`]: the unpacker then applies the layer
//! again from the committed blob.

use hull_content::{ContentStore, Digest};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    /// The ingest's data file, once the download opened it.
    path: Option<PathBuf>,
    /// Bytes in it that a reader may read.
    written: u64,
    /// Bumped when the download starts over from byte 0.
    generation: u64,
    /// `Some(Ok)`: the blob is committed (read it from the store);
    /// `Some(Err)`: the download failed.
    end: Option<Result<(), String>>,
}

/// What one blob's download has made available.
#[derive(Default)]
pub struct Feed {
    state: Mutex<State>,
    changed: Condvar,
}

impl Feed {
    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
        self.changed.notify_all();
    }

    /// The download (re)opened its ingest at `path` holding `offset` bytes.
    pub fn opened(&self, path: PathBuf, offset: u64) {
        self.update(|s| {
            if s.path.is_some() && offset < s.written {
                s.generation += 1;
            }
            s.path = Some(path);
            s.written = offset;
        });
    }

    /// `n` more bytes are in the file.
    pub fn wrote(&self, n: u64) {
        self.update(|s| s.written += n);
    }

    /// The download threw its data away and starts from byte 0.
    pub fn restarted(&self) {
        self.update(|s| {
            s.generation += 1;
            s.written = 0;
        });
    }

    /// The blob is in the store (downloaded, or there already).
    pub fn committed(&self) {
        self.update(|s| s.end = Some(Ok(())));
    }

    pub fn failed(&self, why: &str) {
        self.update(|s| {
            if s.end.is_none() {
                s.end = Some(Err(why.to_string()));
            }
        });
    }

    /// Wait until the blob is committed (or its download failed).
    pub fn wait_committed(&self) -> Result<(), String> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(end) = &s.end {
                return end.clone();
            }
            s = self
                .changed
                .wait_timeout(s, Duration::from_secs(1))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The feeds of one pull, by blob digest.
#[derive(Default)]
pub struct Feeds(Mutex<FeedMap>);

#[derive(Default)]
struct FeedMap {
    feeds: HashMap<String, Arc<Feed>>,
    /// Set when the pull stopped: later feeds start failed.
    ended: Option<String>,
}

impl Feeds {
    /// End every feed that has not ended, and any asked for later.
    pub fn fail_all(&self, why: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.ended = Some(why.to_string());
        for feed in map.feeds.values() {
            feed.failed(why);
        }
    }

    pub fn get(&self, digest: &str) -> Arc<Feed> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let ended = map.ended.clone();
        map.feeds
            .entry(digest.to_string())
            .or_insert_with(|| {
                let feed = Arc::new(Feed::default());
                if let Some(why) = ended {
                    feed.failed(&why);
                }
                feed
            })
            .clone()
    }
}

/// The error a [`FeedReader`] returns when the download started over.
#[derive(Debug)]
pub struct Restarted;

impl std::fmt::Display for Restarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the download started over")
    }
}

impl std::error::Error for Restarted {}

/// Reads a blob as it arrives: from the ingest file up to what the
/// download has written, or from the store once it is committed.
pub struct FeedReader {
    feed: Arc<Feed>,
    store: Arc<dyn ContentStore + Send + Sync>,
    digest: Digest,
    file: Option<File>,
    /// Reading the committed blob: plain reads to its end.
    committed: bool,
    pos: u64,
    generation: u64,
}

impl FeedReader {
    pub fn new(
        feed: Arc<Feed>,
        store: Arc<dyn ContentStore + Send + Sync>,
        digest: Digest,
    ) -> FeedReader {
        FeedReader {
            feed,
            store,
            digest,
            file: None,
            committed: false,
            pos: 0,
            generation: 0,
        }
    }

    /// Open the committed blob or the ingest, whichever the feed offers.
    fn open(&mut self) -> io::Result<bool> {
        let s = self.feed.state.lock().unwrap_or_else(|e| e.into_inner());
        match (&s.end, &s.path) {
            (Some(Err(why)), _) => Err(io::Error::other(why.clone())),
            (Some(Ok(())), _) => {
                drop(s);
                self.file = Some(self.store.open(&self.digest).map_err(io::Error::other)?);
                self.committed = true;
                Ok(true)
            }
            (None, Some(path)) => match File::open(path) {
                Ok(f) => {
                    self.generation = s.generation;
                    self.file = Some(f);
                    Ok(true)
                }
                // Renamed into the store between our look and the open.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
            (None, None) => Ok(false),
        }
    }
}

impl Read for FeedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.file.is_none() && !self.open()? {
                self.wait();
                continue;
            }
            let file = self.file.as_mut().expect("opened above");
            if self.committed {
                return file.read(buf);
            }
            let (available, done) = {
                let s = self.feed.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.generation != self.generation {
                    return Err(io::Error::other(Restarted));
                }
                (s.written.saturating_sub(self.pos), s.end.clone())
            };
            if available > 0 {
                let want = buf.len().min(available as usize);
                let n = file.read(&mut buf[..want])?;
                self.pos += n as u64;
                return Ok(n);
            }
            match done {
                // Everything written was read, and the blob is complete.
                Some(Ok(())) => return Ok(0),
                Some(Err(why)) => return Err(io::Error::other(why)),
                None => self.wait(),
            }
        }
    }
}

impl FeedReader {
    fn wait(&self) {
        let s = self.feed.state.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .feed
            .changed
            .wait_timeout(s, Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn store(name: &str) -> (Arc<hull_content::LocalStore>, tempfile::TempDir) {
        let dir = tempfile::Builder::new()
            .prefix(&format!("hull-feed-{name}-"))
            .tempdir()
            .unwrap();
        let store = hull_content::LocalStore::open(dir.path().join("content")).unwrap();
        (Arc::new(store), dir)
    }

    #[test]
    fn a_reader_follows_the_download_to_the_committed_blob() {
        let (store, dir) = store("follow");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let digest = Digest::of(&data);
        let feed = Arc::new(Feed::default());
        let mut reader = FeedReader::new(feed.clone(), store.clone(), digest.clone());
        let writer_side = {
            let (store, feed, data, digest) =
                (store.clone(), feed.clone(), data.clone(), digest.clone());
            std::thread::spawn(move || {
                let mut w = store
                    .writer("r", Some(data.len() as u64), Some(&digest))
                    .unwrap();
                feed.opened(w.data_path(), w.offset());
                for chunk in data.chunks(7_000) {
                    w.write_all(chunk).unwrap();
                    feed.wrote(chunk.len() as u64);
                    std::thread::sleep(Duration::from_millis(1));
                }
                w.commit(data.len() as u64, &digest).unwrap();
                feed.committed();
            })
        };
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        writer_side.join().unwrap();
        assert_eq!(got, data);
        drop(dir);
    }

    #[test]
    fn a_restart_or_a_failure_is_reported() {
        let (store, dir) = store("restart");
        let feed = Arc::new(Feed::default());
        let digest = Digest::of(b"x");
        let mut w = store.writer("r", None, None).unwrap();
        w.write_all(b"abc").unwrap();
        feed.opened(w.data_path(), 3);
        let mut reader = FeedReader::new(feed.clone(), store.clone(), digest.clone());
        let mut buf = [0u8; 8];
        assert_eq!(reader.read(&mut buf).unwrap(), 3);
        feed.restarted();
        let err = reader.read(&mut buf).unwrap_err();
        assert!(err.get_ref().unwrap().is::<Restarted>(), "{err}");

        let feed = Arc::new(Feed::default());
        feed.failed("registry went away");
        let mut reader = FeedReader::new(feed, store, digest);
        let err = reader.read(&mut buf).unwrap_err();
        assert!(err.to_string().contains("registry went away"));
        drop(dir);
    }
}
