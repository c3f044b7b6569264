//! Serving the API on the unix socket until SIGTERM/SIGINT.

use crate::daemon::Daemon;
use crate::lock::RootLock;
use crate::services;
use hull_api::content::content_server::ContentServer;
use hull_api::images::images_server::ImagesServer;
use hull_api::introspection::introspection_server::IntrospectionServer;
use hull_api::leases::leases_server::LeasesServer;
use hull_api::namespaces::namespaces_server::NamespacesServer;
use hull_api::transfer::transfer_server::TransferServer;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_stream::wrappers::UnixListenerStream;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Bind the socket: 0660, owned by the configured group. A socket file
/// already there is removed only if nothing answers on it: the root lock
/// does not cover a daemon on another root that uses the same address.
fn listen(address: &Path, gid: u32) -> Result<UnixListener, Error> {
    if let Some(dir) = address.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    remove_stale_socket(address)?;
    let listener = UnixListener::bind(address)
        .map_err(|e| format!("listening on {}: {e}", address.display()))?;
    std::fs::set_permissions(address, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("chmod {}: {e}", address.display()))?;
    std::os::unix::fs::chown(address, None, Some(gid))
        .map_err(|e| format!("chown {} to gid {gid}: {e}", address.display()))?;
    Ok(listener)
}

fn remove_stale_socket(address: &Path) -> Result<(), Error> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(address) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("checking {}: {e}", address.display()).into()),
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "{} exists and is not a socket: remove it or choose another grpc.address",
            address.display()
        )
        .into());
    }
    match std::os::unix::net::UnixStream::connect(address) {
        Ok(_) => Err(format!(
            "another daemon is serving on {}: stop it, or give this one its own --address",
            address.display()
        )
        .into()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(address)
                .map_err(|e| format!("removing stale socket {}: {e}", address.display()).into())
        }
        Err(e) => Err(format!("checking socket {}: {e}", address.display()).into()),
    }
}

/// The root holds every image's content and the metadata DB: readable by
/// root only (0700), or also by `root_gid`'s members (0750) if set.
fn secure_root(root: &Path, gid: u32) -> Result<(), Error> {
    let mode = if gid == 0 { 0o700 } else { 0o750 };
    std::os::unix::fs::chown(root, None, Some(gid))
        .map_err(|e| format!("chown {} to gid {gid}: {e}", root.display()))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", root.display()).into())
}

async fn shutdown_signal() {
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

pub async fn run(config: crate::config::Config) -> Result<(), Error> {
    let _lock = RootLock::acquire(&config.root, &config.state)?;
    secure_root(&config.root, config.root_gid)?;
    let address = config.grpc.address.clone();
    let gid = config.grpc.gid;
    let daemon = Arc::new(tokio::task::spawn_blocking(move || Daemon::open(config)).await??);
    // Leases of pulls that a killed daemon left behind may have expired.
    let d = daemon.clone();
    tokio::task::spawn_blocking(move || d.gc_after("start-up")).await?;
    let listener = listen(&address, gid)?;
    tracing::info!(
        "hulld {} serving on {} (root {})",
        services::introspection::VERSION,
        address.display(),
        daemon.config.root.display()
    );
    tonic::transport::Server::builder()
        .add_service(NamespacesServer::new(services::namespaces::Service(
            daemon.clone(),
        )))
        .add_service(ContentServer::new(services::content::Service(
            daemon.clone(),
        )))
        .add_service(ImagesServer::new(services::images::Service(daemon.clone())))
        .add_service(LeasesServer::new(services::leases::Service(daemon.clone())))
        .add_service(TransferServer::new(services::transfer::Service(
            daemon.clone(),
        )))
        .add_service(IntrospectionServer::new(services::introspection::Service(
            daemon.clone(),
        )))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown_signal())
        .await?;
    let _ = std::fs::remove_file(&address);
    tracing::info!("hulld stopped");
    Ok(())
}
