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

/// Bind the socket: 0660, owned by the configured group. The root lock is
/// held, so a socket file already there is a dead daemon's.
fn listen(address: &Path, gid: u32) -> Result<UnixListener, Error> {
    if let Some(dir) = address.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    match std::fs::remove_file(address) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing stale socket {}: {e}", address.display()).into()),
    }
    let listener = UnixListener::bind(address)
        .map_err(|e| format!("listening on {}: {e}", address.display()))?;
    std::fs::set_permissions(address, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("chmod {}: {e}", address.display()))?;
    std::os::unix::fs::chown(address, None, Some(gid))
        .map_err(|e| format!("chown {} to gid {gid}: {e}", address.display()))?;
    Ok(listener)
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
    let address = config.grpc.address.clone();
    let gid = config.grpc.gid;
    let daemon = Arc::new(tokio::task::spawn_blocking(move || Daemon::open(config)).await??);
    // Leases of pulls that a killed daemon left behind may have expired.
    let d = daemon.clone();
    tokio::task::spawn_blocking(move || d.gc()).await??;
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
