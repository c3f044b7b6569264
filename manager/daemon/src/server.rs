//! Serving the API on the unix socket until SIGTERM/SIGINT.

use crate::daemon::Daemon;
use crate::lock::RootLock;
use crate::services;
use hull_api::containers::containers_server::ContainersServer;
use hull_api::content::content_server::ContentServer;
use hull_api::diff::diff_server::DiffServer;
use hull_api::events::events_server::EventsServer;
use hull_api::gc::gc_server::GcServer;
use hull_api::images::images_server::ImagesServer;
use hull_api::introspection::introspection_server::IntrospectionServer;
use hull_api::leases::leases_server::LeasesServer;
use hull_api::namespaces::namespaces_server::NamespacesServer;
use hull_api::networks::networks_server::NetworksServer;
use hull_api::snapshots::snapshots_server::SnapshotsServer;
use hull_api::tasks::tasks_server::TasksServer;
use hull_api::transfer::transfer_server::TransferServer;
use hull_api::version::version_server::VersionServer;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::service::Routes;

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
    tokio::task::spawn_blocking(move || {
        d.drop_interrupted_unpacks();
        d.gc_after("start-up");
        d.snapshotters.cleanup();
    })
    .await?;
    // Shims that outlived the last daemon: reconnect (or clean up).
    daemon.tasks.recover(&daemon.shims).await;
    // Networks of containers whose tasks ended while hulld was away.
    tokio::task::block_in_place(|| {
        daemon
            .network
            .clean_stale(&|ns, id| daemon.tasks.has_task(ns, id))
    });
    // CHECK may wait on plugins: in the background, while hulld serves.
    let checking = daemon.clone();
    tokio::task::spawn_blocking(move || {
        checking
            .network
            .check_live(&|ns, id| checking.tasks.has_task(ns, id))
    });
    crate::tasks::spawn_monitor(daemon.clone());
    crate::restart::spawn(daemon.clone());
    crate::network::spawn_release_at_exit(daemon.clone());
    let mut events = crate::events_ttrpc::serve(daemon.clone(), &daemon.shims.ttrpc_address)?;
    events
        .start()
        .await
        .map_err(|e| format!("serving shim events: {e}"))?;
    let requests = Arc::new(crate::metrics::RequestMetrics::default());
    if !daemon.config.metrics.address.is_empty() {
        crate::metrics::serve(
            &daemon.config.metrics.address,
            daemon.clone(),
            requests.clone(),
        )
        .await?;
    }
    let listener = listen(&address, gid)?;
    tracing::info!(
        "hulld {} serving on {} (root {})",
        services::version::VERSION,
        address.display(),
        daemon.config.root.display()
    );
    tonic::transport::Server::builder()
        .add_routes(routes(&daemon, requests))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown_signal())
        .await?;
    let _ = events.shutdown().await;
    let _ = std::fs::remove_file(&address);
    let _ = std::fs::remove_file(&daemon.shims.ttrpc_address);
    tracing::info!("hulld stopped");
    Ok(())
}

/// Every service hulld serves. A method it does not serve answers
/// Unimplemented naming it, so a client learns what is missing instead of
/// getting an empty error.
fn routes(daemon: &Arc<Daemon>, requests: Arc<crate::metrics::RequestMetrics>) -> Routes {
    let d = || daemon.clone();
    let mut routes = Routes::new(NamespacesServer::new(services::namespaces::Service(d())))
        .add_service(ContentServer::new(services::content::Service(d())))
        .add_service(ContainersServer::new(services::containers::Service(d())))
        .add_service(EventsServer::new(services::events::Service(d())))
        .add_service(TasksServer::new(services::tasks::Service(d())))
        .add_service(ImagesServer::new(services::images::Service(d())))
        .add_service(LeasesServer::new(services::leases::Service(d())))
        .add_service(SnapshotsServer::new(services::snapshots::Service(d())))
        .add_service(DiffServer::new(services::diff::Service(d())))
        .add_service(IntrospectionServer::new(services::introspection::Service(
            d(),
        )))
        .add_service(VersionServer::new(services::version::Service))
        .add_service(TransferServer::new(services::transfer::Service(d())))
        .add_service(GcServer::new(services::gc::Service(d())))
        .add_service(NetworksServer::new(services::networks::Service(d())));
    let router = std::mem::take(routes.axum_router_mut());
    Routes::from(
        router
            .fallback(unimplemented)
            .layer(axum::middleware::from_fn_with_state(
                requests,
                crate::metrics::record_request,
            )),
    )
}

async fn unimplemented(uri: axum::http::Uri) -> axum::response::Response {
    let method = uri.path().trim_start_matches('/');
    tracing::debug!("unimplemented method {method}");
    let status = tonic::Status::unimplemented(format!("hulld does not implement {method}"));
    let (parts, ()) = status.into_http::<()>().into_parts();
    axum::response::Response::from_parts(parts, axum::body::Body::empty())
}
