//! A watcher on the tar stream, between the decompressor and the `tar`
//! crate, that follows the archive's block structure as the bytes pass and
//! stops the read at a header that would make the `tar` crate buffer without
//! bound or expand data out of nothing:
//!
//! - a GNU long name/link (`L`/`K`) or PAX (`x`/`g`) extension header is
//!   read whole into memory by the `tar` crate, so a header claiming 10 GB
//!   there would be 10 GB of RAM: we refuse extensions over a limit;
//! - a GNU sparse entry (`S`) is expanded by the `tar` crate into its full
//!   logical size of zeros (a 10 GB "file" from a few bytes): we refuse
//!   sparse entries outright (layer builders do not write them: Docker,
//!   BuildKit and Go's archive/tar never do).
//!
//! It only observes: the bytes reach the `tar` crate unchanged. To find the
//! next header it applies the same size rules as the `tar` crate (base-256
//! or octal size, overridden by a PAX `size` record of the preceding `x`
//! header), parsing headers with the `tar` crate's own `Header` type.

use std::io::{self, Read};

/// Bigger than any path the applier accepts (4096), with room for the
/// trailing NUL GNU tar writes.
pub(crate) const MAX_LONG_NAME: u64 = 64 << 10;
/// PAX records carry paths and xattrs (capabilities, ACLs): 1 MiB is far
/// above what a real layer holds for one entry.
pub(crate) const MAX_PAX: u64 = 1 << 20;

const BLOCK: u64 = 512;

enum State {
    /// Collecting the 512 bytes of a header.
    Header,
    /// Inside an entry's data and padding; the next header follows.
    Data,
    /// After the end-of-archive block: the rest passes unobserved.
    End,
}

pub(crate) struct Guard<R> {
    inner: R,
    state: State,
    header: [u8; 512],
    filled: usize,
    /// Bytes of data plus padding left before the next header.
    remaining: u64,
    /// Data bytes of a PAX `x` header still to collect, and what we have.
    pax_left: u64,
    pax: Vec<u8>,
    /// `size` from the last PAX header, for the entry it describes.
    pax_size: Option<u64>,
    failed: Option<String>,
}

impl<R: Read> Guard<R> {
    pub(crate) fn new(inner: R) -> Self {
        Guard {
            inner,
            state: State::Header,
            header: [0; 512],
            filled: 0,
            remaining: 0,
            pax_left: 0,
            pax: Vec::new(),
            pax_size: None,
            failed: None,
        }
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    fn observe(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            match self.state {
                State::End => return Ok(()),
                State::Header => {
                    let take = (512 - self.filled).min(bytes.len());
                    self.header[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
                    self.filled += take;
                    bytes = &bytes[take..];
                    if self.filled == 512 {
                        self.filled = 0;
                        self.on_header()?;
                    }
                }
                State::Data => {
                    let take = self.remaining.min(bytes.len() as u64) as usize;
                    let collect = self.pax_left.min(take as u64) as usize;
                    self.pax.extend_from_slice(&bytes[..collect]);
                    self.pax_left -= collect as u64;
                    self.remaining -= take as u64;
                    bytes = &bytes[take..];
                    if self.remaining == 0 {
                        self.end_of_data();
                    }
                }
            }
        }
        Ok(())
    }

    fn on_header(&mut self) -> Result<(), String> {
        if self.header.iter().all(|b| *b == 0) {
            self.state = State::End;
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(&self.header);
        let kind = header.entry_type();
        let name = String::from_utf8_lossy(&header.path_bytes()).into_owned();
        let mut size = header
            .entry_size()
            .map_err(|e| format!("entry {name:?}: invalid size field ({e})"))?;
        if kind.is_gnu_sparse() {
            return Err(format!(
                "entry {name:?} is a GNU sparse file, which this applier does not unpack: \
                 rebuild the layer without --sparse"
            ));
        }
        let long_name = kind.is_gnu_longname() || kind.is_gnu_longlink();
        let pax = kind.is_pax_local_extensions() || kind.is_pax_global_extensions();
        if long_name && size > MAX_LONG_NAME {
            return Err(format!(
                "a GNU long name header claims {size} bytes (limit {MAX_LONG_NAME}): \
                 the layer is corrupt or hostile"
            ));
        }
        if pax && size > MAX_PAX {
            return Err(format!(
                "a PAX header claims {size} bytes (limit {MAX_PAX}): \
                 the layer is corrupt or hostile"
            ));
        }
        if kind.is_pax_local_extensions() {
            self.pax.clear();
            self.pax_left = size;
        } else if !long_name && !pax {
            // The PAX size applies to the first real entry after it.
            if let Some(s) = self.pax_size.take() {
                size = s;
            }
        }
        self.remaining = size
            .checked_add(BLOCK - 1)
            .map(|s| s & !(BLOCK - 1))
            .ok_or_else(|| format!("entry {name:?}: size {size} overflows"))?;
        self.state = State::Data;
        if self.remaining == 0 {
            self.end_of_data();
        }
        Ok(())
    }

    fn end_of_data(&mut self) {
        self.state = State::Header;
        if self.pax_left == 0 && !self.pax.is_empty() {
            self.pax_size = pax_size(&self.pax);
            self.pax.clear();
        }
    }
}

/// The `size` record of PAX data, parsed as the `tar` crate parses it.
fn pax_size(data: &[u8]) -> Option<u64> {
    tar::PaxExtensions::new(data)
        .filter_map(|e| e.ok())
        .find(|e| e.key_bytes() == b"size")
        .and_then(|e| e.value().ok()?.parse().ok())
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(msg) = &self.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg.clone()));
        }
        let n = self.inner.read(buf)?;
        if let Err(msg) = self.observe(&buf[..n]) {
            self.failed = Some(msg.clone());
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        Ok(n)
    }
}
