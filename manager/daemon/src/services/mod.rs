//! The gRPC services, one module each, over the shared [`Daemon`].

pub mod content;
pub mod images;
pub mod introspection;
pub mod leases;
pub mod namespaces;
pub mod transfer;

use crate::daemon::Daemon;
use std::sync::Arc;
use tonic::{Request, Status};

pub type Shared = Arc<Daemon>;

/// The namespace a request acts in: its `hull-namespace` header, else
/// `default`.
pub fn namespace<T>(req: &Request<T>) -> Result<String, Status> {
    match req.metadata().get(hull_api::NAMESPACE_HEADER) {
        None => Ok(hull_api::DEFAULT_NAMESPACE.to_string()),
        Some(v) => v
            .to_str()
            .map(str::to_string)
            .map_err(|_| Status::invalid_argument("the hull-namespace header is not text")),
    }
}

pub fn meta_status(e: hull_metadata::Error) -> Status {
    use hull_metadata::Error as E;
    let msg = e.to_string();
    match e {
        E::InvalidNamespace(_) => Status::invalid_argument(msg),
        E::NoNamespace(_) | E::NotFound { .. } => Status::not_found(msg),
        E::NamespaceNotEmpty(_) => Status::failed_precondition(msg),
        E::Db(_) => Status::internal(msg),
    }
}

pub fn content_status(e: hull_content::Error) -> Status {
    let msg = e.to_string();
    match e {
        hull_content::Error::NotFound(_) | hull_content::Error::NoIngest(_) => {
            Status::not_found(msg)
        }
        hull_content::Error::Locked(_) => Status::unavailable(msg),
        _ => Status::internal(msg),
    }
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
