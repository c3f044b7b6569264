use super::{blocking, meta_status, namespace, now, Shared};
use hull_api::leases::leases_server::Leases;
use hull_api::leases::*;
use std::sync::atomic::{AtomicU64, Ordering};
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

/// A lease id unique within this daemon's life and across restarts.
pub fn new_lease_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        now(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn to_api(l: hull_metadata::Lease) -> Lease {
    Lease {
        id: l.id,
        resources: l.resources.into_iter().collect(),
        expires_at: l.expires,
    }
}

#[tonic::async_trait]
impl Leases for Service {
    async fn create(&self, req: Request<CreateLeaseRequest>) -> Result<Response<Lease>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let lease = hull_metadata::Lease {
            id: if r.id.is_empty() {
                new_lease_id("lease")
            } else {
                r.id
            },
            resources: Default::default(),
            expires: match r.expire_seconds {
                0 => 0,
                s => now() + s,
            },
        };
        let d = self.0.clone();
        let l = lease.clone();
        blocking(move || {
            d.meta.create_namespace(&ns).map_err(meta_status)?;
            d.meta.put_lease(&ns, &l).map_err(meta_status)
        })
        .await?;
        Ok(Response::new(to_api(lease)))
    }

    async fn list(
        &self,
        req: Request<ListLeasesRequest>,
    ) -> Result<Response<ListLeasesResponse>, Status> {
        let ns = namespace(&req)?;
        let leases = self.0.meta.leases(&ns).map_err(meta_status)?;
        Ok(Response::new(ListLeasesResponse {
            leases: leases.into_iter().map(to_api).collect(),
        }))
    }

    async fn delete(
        &self,
        req: Request<DeleteLeaseRequest>,
    ) -> Result<Response<DeleteLeaseResponse>, Status> {
        let ns = namespace(&req)?;
        let id = req.into_inner().id;
        let d = self.0.clone();
        blocking(move || {
            d.meta.delete_lease(&ns, &id).map_err(meta_status)?;
            d.gc_after(&format!("removing lease {id}"));
            Ok(())
        })
        .await?;
        Ok(Response::new(DeleteLeaseResponse {}))
    }

    async fn add_resource(
        &self,
        req: Request<AddResourceRequest>,
    ) -> Result<Response<AddResourceResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let d = self.0.clone();
        blocking(move || {
            d.meta
                .add_lease_resource(&ns, &r.id, &r.digest)
                .map_err(meta_status)
        })
        .await?;
        Ok(Response::new(AddResourceResponse {}))
    }
}
