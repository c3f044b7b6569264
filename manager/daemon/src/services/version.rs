//! containerd.services.version.v1

use hull_api::version::version_server::Version;
use hull_api::version::VersionResponse;
use tonic::{Request, Response, Status};

pub struct Service;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit, when the build passed one in (HULL_REVISION).
pub const REVISION: &str = match option_env!("HULL_REVISION") {
    Some(r) => r,
    None => "unknown",
};

#[tonic::async_trait]
impl Version for Service {
    async fn version(&self, _req: Request<()>) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: VERSION.into(),
            revision: REVISION.into(),
        }))
    }
}
