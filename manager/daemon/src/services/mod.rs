//! The gRPC services, one module each, over the shared [`Daemon`]:
//! containerd's own (`containerd.services.*.v1`) and hull's transfer.

pub mod archive;
pub mod containers;
pub mod content;
pub mod diff;
pub mod events;
pub mod filters;
pub mod gc;
pub mod images;
pub mod introspection;
pub mod leases;
pub mod namespaces;
pub mod networks;
pub mod push;
pub mod snapshots;
pub mod tasks;
pub mod transfer;
pub mod version;

use crate::daemon::Daemon;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tonic::{Code, Request, Status};

pub type Shared = Arc<Daemon>;

/// The namespace a request acts in: its `containerd-namespace` header,
/// else `default`. Checked with containerd's rule.
pub fn namespace<T>(req: &Request<T>) -> Result<String, Status> {
    let ns = match req.metadata().get(hull_api::NAMESPACE_HEADER) {
        None => return Ok(hull_api::DEFAULT_NAMESPACE.to_string()),
        Some(v) => v
            .to_str()
            .map_err(|_| Status::invalid_argument("the containerd-namespace header is not text"))?,
    };
    hull_metadata::check_namespace(ns).map_err(meta_status)?;
    Ok(ns.to_string())
}

/// The lease a request works under (`containerd-lease` header), if any:
/// what it creates is added to the lease.
pub fn lease<T>(req: &Request<T>) -> Option<String> {
    req.metadata()
        .get(hull_api::LEASE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
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

/// A request's `os/arch[/variant]`; empty: the daemon's platform.
pub fn platform_or_host(text: &str) -> Result<hull_images::Platform, Status> {
    if text.is_empty() {
        return Ok(hull_images::Platform::host());
    }
    text.parse()
        .map_err(|e: hull_images::platform::InvalidPlatform| {
            Status::invalid_argument(e.to_string())
        })
}

pub fn meta_status(e: hull_metadata::Error) -> Status {
    use hull_metadata::Error as E;
    let code = match e {
        E::InvalidNamespace(_) | E::InvalidArgument(_) => Code::InvalidArgument,
        E::NoNamespace(_) | E::NotFound { .. } => Code::NotFound,
        E::AlreadyExists { .. } => Code::AlreadyExists,
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
        hull_content::Error::SizeMismatch { .. } | hull_content::Error::DigestMismatch { .. } => {
            Code::FailedPrecondition
        }
        hull_content::Error::Io { ref source, .. }
            if matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT)
            ) =>
        {
            Code::ResourceExhausted
        }
        _ => Code::Internal,
    };
    status(code, e.to_string())
}

pub fn now() -> u64 {
    hull_metadata::now()
}

/// Seconds since the epoch as a protobuf timestamp (`None` for 0: unknown).
pub fn timestamp(secs: u64) -> Option<prost_types::Timestamp> {
    (secs > 0).then_some(prost_types::Timestamp {
        seconds: secs as i64,
        nanos: 0,
    })
}

pub fn labels_in(m: HashMap<String, String>) -> BTreeMap<String, String> {
    m.into_iter().collect()
}

pub fn labels_out(m: BTreeMap<String, String>) -> HashMap<String, String> {
    m.into_iter().collect()
}

/// The paths of an update's field mask.
pub fn mask_paths(mask: Option<prost_types::FieldMask>) -> Vec<String> {
    mask.map(|m| m.paths).unwrap_or_default()
}

/// Run blocking work (DB commits, fsyncs, file reads) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
}
