//! hull-content: the manager's content-addressable store. Blobs are named by
//! their sha256 digest and become visible only once complete and verified;
//! interrupted writes resume where they stopped.

pub mod digest;
pub mod store;

pub use digest::{Digest, InvalidDigest};
pub use store::{ContentStore, Error, Info, LocalStore, Status, Writer};
