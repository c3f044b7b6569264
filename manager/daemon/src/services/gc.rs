//! hull.services.gc.v1: garbage collection on demand.

use super::{blocking, meta_status, Shared};
use hull_api::gc::gc_server::Gc;
use hull_api::gc::*;
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

#[tonic::async_trait]
impl Gc for Service {
    async fn collect(
        &self,
        _req: Request<CollectRequest>,
    ) -> Result<Response<CollectResponse>, Status> {
        let d = self.0.clone();
        let report = blocking(move || d.gc().map_err(meta_status)).await?;
        Ok(Response::new(CollectResponse {
            removed: report.removed,
            bytes: report.bytes,
            snapshots: report.snapshots,
        }))
    }
}
