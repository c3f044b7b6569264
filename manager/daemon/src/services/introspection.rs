use super::Shared;
use hull_api::introspection::introspection_server::Introspection;
use hull_api::introspection::*;
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit, when the build passed one in (HULL_REVISION).
pub const REVISION: &str = match option_env!("HULL_REVISION") {
    Some(r) => r,
    None => "unknown",
};

#[tonic::async_trait]
impl Introspection for Service {
    async fn version(
        &self,
        _req: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: VERSION.into(),
            revision: REVISION.into(),
        }))
    }

    async fn server(
        &self,
        _req: Request<ServerRequest>,
    ) -> Result<Response<ServerResponse>, Status> {
        Ok(Response::new(ServerResponse {
            pid: std::process::id(),
            root: self.0.config.root.display().to_string(),
            state: self.0.config.state.display().to_string(),
            uptime_seconds: self.0.started.elapsed().as_secs(),
        }))
    }
}
