//! From the layer blob to the tar stream: choose the decompressor from the
//! media type (checked against the data's magic bytes), decompress in pure
//! Rust (flate2 on zlib-rs, ruzstd), and hash the uncompressed bytes as they
//! flow, which gives the layer's diff_id without a second pass.

use crate::ApplyError;
use sha2::{Digest, Sha256};
use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc;

/// Read size towards the decompressor: large reads keep syscalls and
/// decoder calls per byte low.
const INPUT_BUFFER: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn describe(self) -> &'static str {
        match self {
            Compression::None => "is not gzip or zstd",
            Compression::Gzip => "is gzip",
            Compression::Zstd => "is zstd",
        }
    }
}

/// What the media type says: a compression, or "look at the bytes".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Declared {
    Is(Compression),
    Sniff,
}

/// The compression a layer media type declares. OCI types end in `.tar`,
/// `.tar+gzip` or `.tar+zstd` (also the nondistributable variants); Docker's
/// end in `.tar.gzip` (`rootfs.diff.tar.gzip`, `rootfs.foreign.diff.tar.gzip`).
/// An empty type, `application/octet-stream` and a layer type with no known
/// suffix are ambiguous: the magic bytes decide. Anything else (a config, an
/// encrypted layer) is not a layer we can apply.
pub(crate) fn declared(media_type: &str) -> Result<Declared, ApplyError> {
    let t = media_type.trim();
    let is = |c| Ok(Declared::Is(c));
    if t.ends_with(".tar+gzip") || t.ends_with(".tar.gzip") || t.ends_with(".tar+gz") {
        return is(Compression::Gzip);
    }
    if t.ends_with(".tar+zstd") || t.ends_with(".tar.zstd") {
        return is(Compression::Zstd);
    }
    if t.ends_with(".tar") {
        return is(Compression::None);
    }
    let generic_layer = t.starts_with("application/vnd.oci.image.layer.")
        || t.starts_with("application/vnd.docker.image.rootfs.");
    let ambiguous = t.is_empty() || t == "application/octet-stream" || t == "application/x-tar";
    if (generic_layer || ambiguous) && !t.contains("+encrypted") {
        return Ok(Declared::Sniff);
    }
    Err(ApplyError::UnsupportedMediaType(media_type.to_string()))
}

fn sniff(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The uncompressed tar stream of `layer`, counted and hashed as it is read.
pub(crate) fn open<'a>(
    layer: impl Read + 'a,
    media_type: &str,
) -> Result<Hashing<Box<dyn Read + 'a>>, ApplyError> {
    let declared = declared(media_type)?;
    let mut input = BufReader::with_capacity(INPUT_BUFFER, layer);
    let magic = peek(&mut input).map_err(ApplyError::Read)?;
    let found = sniff(&magic);
    let compression = match declared {
        Declared::Sniff => found,
        Declared::Is(c) if c == found => c,
        Declared::Is(_) => {
            return Err(ApplyError::Mislabelled {
                media_type: media_type.to_string(),
                found: found.describe(),
            })
        }
    };
    let decoded: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(Zstd::new(input)),
    };
    Ok(Hashing::new(decoded))
}

/// The first bytes (up to 4) without consuming them: the magic numbers.
/// A pipe's first read may be shorter; a 1-3 byte prefix is then judged as
/// it is (no gzip or zstd stream is that short anyway).
fn peek<R: Read>(input: &mut BufReader<R>) -> io::Result<Vec<u8>> {
    let first = input.fill_buf()?;
    Ok(first[..first.len().min(4)].to_vec())
}

/// Buffer between the decompressor and the tar parser: tar asks for 512
/// bytes per header, which should not each become a decompressor call.
const TAR_BUFFER: usize = 1 << 20;
/// Buffers in flight: one being read by tar, the others being hashed.
const BUFFERS: usize = 3;

/// A buffered reader that hashes and counts every byte it takes from
/// `inner`. Hashing runs on its own thread, on the filled buffers, while
/// the caller unpacks from them: SHA-256 costs about a fifth of a plain
/// layer's apply time, which this takes off the unpacking thread.
pub(crate) struct Hashing<R> {
    inner: R,
    count: u64,
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    free: Vec<Vec<u8>>,
    to_hasher: Option<mpsc::Sender<(Vec<u8>, usize)>>,
    from_hasher: mpsc::Receiver<Vec<u8>>,
    hasher: Option<std::thread::JoinHandle<Sha256>>,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        let (to_hasher, work) = mpsc::channel::<(Vec<u8>, usize)>();
        let (done, from_hasher) = mpsc::channel();
        let hasher = std::thread::spawn(move || {
            let mut h = Sha256::new();
            for (buf, n) in work {
                h.update(&buf[..n]);
                // The reader may have finished; then the buffer just goes.
                let _ = done.send(buf);
            }
            h
        });
        Hashing {
            inner,
            count: 0,
            buf: vec![0; TAR_BUFFER],
            pos: 0,
            filled: 0,
            free: (1..BUFFERS).map(|_| vec![0; TAR_BUFFER]).collect(),
            to_hasher: Some(to_hasher),
            from_hasher,
            hasher: Some(hasher),
        }
    }

    /// Hand the current buffer to the hasher and take a free one.
    fn rotate(&mut self) -> io::Result<()> {
        let next = match self.free.pop() {
            Some(b) => b,
            None => self.from_hasher.recv().map_err(|_| hasher_died())?,
        };
        let full = std::mem::replace(&mut self.buf, next);
        if let Some(tx) = &self.to_hasher {
            tx.send((full, self.filled)).map_err(|_| hasher_died())?;
        }
        Ok(())
    }

    /// `sha256:<hex>` of every byte taken from the stream, and their
    /// number. The caller reads to the end first.
    pub(crate) fn finish(mut self) -> io::Result<(String, u64)> {
        if self.filled > 0 {
            self.rotate()?;
        }
        drop(self.to_hasher.take());
        let hasher = self.hasher.take().ok_or_else(hasher_died)?;
        let digest = hasher.join().map_err(|_| hasher_died())?.finalize();
        let mut hex = String::with_capacity(64);
        for b in digest {
            hex.push_str(&format!("{b:02x}"));
        }
        Ok((format!("sha256:{hex}"), self.count))
    }
}

fn hasher_died() -> io::Error {
    io::Error::other("the layer's hashing thread stopped")
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.filled {
            if self.filled > 0 {
                self.rotate()?;
            }
            let n = loop {
                match self.inner.read(&mut self.buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r?,
                }
            };
            self.count += n as u64;
            self.pos = 0;
            self.filled = n;
        }
        let n = out.len().min(self.filled - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A zstd stream of one or more frames (skippable frames are skipped):
/// ruzstd's StreamingDecoder reads a single frame, while `zstd` and pzstd
/// may write several.
struct Zstd<R: BufRead> {
    input: R,
    decoder: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> Zstd<R> {
    fn new(input: R) -> Self {
        Zstd {
            input,
            decoder: ruzstd::decoding::FrameDecoder::new(),
            in_frame: false,
        }
    }

    /// Start the next frame. Ok(false) at the end of the input.
    fn next_frame(&mut self) -> io::Result<bool> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        loop {
            if self.input.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.reset(&mut self.input) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = io::copy(
                        &mut (&mut self.input).take(u64::from(length)),
                        &mut io::sink(),
                    )?;
                    if skipped != u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "zstd: truncated skippable frame",
                        ));
                    }
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }
}

impl<R: BufRead> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::BlockDecodingStrategy;
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.next_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                self.decoder
                    .decode_blocks(&mut self.input, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.decoder.is_finished() {
                self.in_frame = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_choose_the_decompressor() {
        let d = |t| declared(t).unwrap();
        assert_eq!(
            d("application/vnd.oci.image.layer.v1.tar+gzip"),
            Declared::Is(Compression::Gzip)
        );
        assert_eq!(
            d("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Declared::Is(Compression::Gzip)
        );
        assert_eq!(
            d("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            Declared::Is(Compression::Gzip)
        );
        assert_eq!(
            d("application/vnd.oci.image.layer.v1.tar+zstd"),
            Declared::Is(Compression::Zstd)
        );
        assert_eq!(
            d("application/vnd.oci.image.layer.nondistributable.v1.tar"),
            Declared::Is(Compression::None)
        );
        assert_eq!(d(""), Declared::Sniff);
        assert_eq!(d("application/octet-stream"), Declared::Sniff);
        assert_eq!(d("application/vnd.oci.image.layer.v1.foo"), Declared::Sniff);
        assert!(declared("application/vnd.oci.image.config.v1+json").is_err());
        assert!(declared("application/vnd.oci.image.layer.v1.tar+gzip+encrypted").is_err());
    }

    #[test]
    fn magic_bytes_are_recognised() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(sniff(b"etc/"), Compression::None);
        assert_eq!(sniff(b""), Compression::None);
    }
}
