//! containerd.services.introspection.v1: which plugins (services,
//! snapshotters) this daemon has, as containerd lists its own.

use super::{filters::Filters, Shared};
use hull_api::introspection::introspection_server::Introspection;
use hull_api::introspection::*;
use hull_api::types::Platform;
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

/// (type, id) of what hulld serves.
const PLUGINS: &[(&str, &str)] = &[
    ("io.containerd.content.v1", "content"),
    ("io.containerd.metadata.v1", "redb"),
    ("io.containerd.snapshotter.v1", "overlayfs"),
    ("io.containerd.snapshotter.v1", "native"),
    ("io.containerd.differ.v1", "walking"),
    ("io.containerd.grpc.v1", "content"),
    ("io.containerd.grpc.v1", "diff"),
    ("io.containerd.grpc.v1", "images"),
    ("io.containerd.grpc.v1", "introspection"),
    ("io.containerd.grpc.v1", "leases"),
    ("io.containerd.grpc.v1", "namespaces"),
    ("io.containerd.grpc.v1", "snapshots"),
    ("io.containerd.grpc.v1", "version"),
];

fn host_platform() -> Platform {
    let p = hull_images::Platform::host();
    Platform {
        os: p.os.clone(),
        architecture: p.arch.clone(),
        variant: p.variant.clone().unwrap_or_default(),
        os_version: String::new(),
    }
}

#[tonic::async_trait]
impl Introspection for Service {
    async fn plugins(
        &self,
        req: Request<PluginsRequest>,
    ) -> Result<Response<PluginsResponse>, Status> {
        let filters = Filters::parse(&req.into_inner().filters)?;
        let plugins = PLUGINS
            .iter()
            .filter(|(t, id)| {
                filters.matches(|p| {
                    super::filters::lookup(p, &[("type", t), ("id", id)], &Default::default())
                })
            })
            .map(|(t, id)| Plugin {
                r#type: t.to_string(),
                id: id.to_string(),
                platforms: if t.contains("snapshotter") || t.contains("differ") {
                    vec![host_platform()]
                } else {
                    Vec::new()
                },
                ..Plugin::default()
            })
            .collect();
        Ok(Response::new(PluginsResponse { plugins }))
    }

    async fn server(&self, _req: Request<()>) -> Result<Response<ServerResponse>, Status> {
        Ok(Response::new(ServerResponse {
            uuid: self.0.uuid.clone(),
            pid: std::process::id() as u64,
            pidns: 0,
            deprecations: Vec::new(),
        }))
    }

    async fn plugin_info(
        &self,
        _req: Request<PluginInfoRequest>,
    ) -> Result<Response<PluginInfoResponse>, Status> {
        Err(Status::unimplemented(
            "hulld does not implement containerd.services.introspection.v1.Introspection/PluginInfo",
        ))
    }
}
