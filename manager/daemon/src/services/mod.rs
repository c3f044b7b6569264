//! The gRPC services, one module each, over the shared [`Daemon`].

pub mod content;
pub mod images;
pub mod introspection;
pub mod leases;
pub mod namespaces;
pub mod transfer;

use crate::daemon::Daemon;
use std::sync::Arc;
use tonic::{Code, Request, Status};

pub type Shared = Arc<Daemon>;

/// The namespace a request acts in: its `hull-namespace` header, else
/// `default`.
pub fn namespace<T>(req: &Request<T>) -> Result<String, Status> {
    let ns = match req.metadata().get(hull_api::NAMESPACE_HEADER) {
        None => return Ok(hull_api::DEFAULT_NAMESPACE.to_string()),
        Some(v) => v
            .to_str()
            .map_err(|_| Status::invalid_argument("the hull-namespace header is not text"))?,
    };
    hull_metadata::check_namespace(ns).map_err(meta_status)?;
    Ok(ns.to_string())
}

/// Status messages travel in an HTTP/2 header: a message built from what a
/// registry sent (an index's platforms, an error body) must not exceed what
/// clients accept (16 KiB for the whole header list), so it is cut here.
const MAX_STATUS_MESSAGE: usize = 4096;

/// A status with `message` bounded to [`MAX_STATUS_MESSAGE`] bytes.
pub fn status(code: Code, mut message: String) -> Status {
    if message.len() > MAX_STATUS_MESSAGE {
        let mut end = MAX_STATUS_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let cut = message.len() - end;
        message.truncate(end);
        message.push_str(&format!("… ({cut} more bytes)"));
    }
    Status::new(code, message)
}

pub fn meta_status(e: hull_metadata::Error) -> Status {
    use hull_metadata::Error as E;
    let code = match e {
        E::InvalidNamespace(_) => Code::InvalidArgument,
        E::NoNamespace(_) | E::NotFound { .. } => Code::NotFound,
        E::NamespaceNotEmpty(_) | E::Gc(_) => Code::FailedPrecondition,
        E::NoSpace(_) => Code::ResourceExhausted,
        E::Io(_) | E::Poisoned => Code::Unavailable,
        E::Db(_) => Code::Internal,
    };
    status(code, e.to_string())
}

pub fn content_status(e: hull_content::Error) -> Status {
    let code = match e {
        hull_content::Error::NotFound(_) | hull_content::Error::NoIngest(_) => Code::NotFound,
        hull_content::Error::Locked(_) => Code::Unavailable,
        _ => Code::Internal,
    };
    status(code, e.to_string())
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Run blocking work (DB commits, fsyncs, file reads) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
}
