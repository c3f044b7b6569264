//! containerd.services.leases.v1

use super::{
    blocking, filters::Filters, labels_in, labels_out, meta_status, namespace, now, timestamp,
    Shared,
};
use hull_api::leases::leases_server::Leases;
use hull_api::leases::*;
use hull_metadata::LeaseResource;
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
        created_at: timestamp(l.created),
        labels: labels_out(l.labels),
    }
}

fn resource(r: Option<Resource>) -> Result<LeaseResource, Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("missing resource"))?;
    Ok(LeaseResource {
        kind: r.r#type,
        id: r.id,
    })
}

#[tonic::async_trait]
impl Leases for Service {
    async fn create(
        &self,
        req: Request<CreateRequest>,
    ) -> Result<Response<CreateResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let id = if r.id.is_empty() {
            new_lease_id("lease")
        } else {
            r.id
        };
        let lease = hull_metadata::Lease::new(&id, labels_in(r.labels)).map_err(meta_status)?;
        let d = self.0.clone();
        let l = lease.clone();
        blocking(move || {
            d.meta.create_namespace(&ns).map_err(meta_status)?;
            d.meta.create_lease(&ns, &l).map_err(meta_status)
        })
        .await?;
        Ok(Response::new(CreateResponse {
            lease: Some(to_api(lease)),
        }))
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let ns = namespace(&req)?;
        let filters = Filters::parse(&req.into_inner().filters)?;
        let leases = self.0.meta.leases(&ns).map_err(meta_status)?;
        Ok(Response::new(ListResponse {
            leases: leases
                .into_iter()
                .filter(|l| {
                    filters.matches(|p| super::filters::lookup(p, &[("id", &l.id)], &l.labels))
                })
                .map(to_api)
                .collect(),
        }))
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let id = req.into_inner().id;
        let d = self.0.clone();
        blocking(move || {
            d.meta.delete_lease(&ns, &id).map_err(meta_status)?;
            d.gc_after(&format!("removing lease {id}"));
            Ok(())
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn add_resource(&self, req: Request<AddResourceRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let res = resource(r.resource)?;
        let d = self.0.clone();
        blocking(move || {
            d.meta
                .add_lease_typed(&ns, &r.id, &res)
                .map_err(meta_status)
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn delete_resource(
        &self,
        req: Request<DeleteResourceRequest>,
    ) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let res = resource(r.resource)?;
        let d = self.0.clone();
        blocking(move || {
            d.meta
                .delete_lease_typed(&ns, &r.id, &res)
                .map_err(meta_status)
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn list_resources(
        &self,
        req: Request<ListResourcesRequest>,
    ) -> Result<Response<ListResourcesResponse>, Status> {
        let ns = namespace(&req)?;
        let lease = self
            .0
            .meta
            .lease(&ns, &req.into_inner().id)
            .map_err(meta_status)?;
        Ok(Response::new(ListResourcesResponse {
            resources: lease
                .typed_resources()
                .into_iter()
                .map(|r| Resource {
                    id: r.id,
                    r#type: r.kind,
                })
                .collect(),
        }))
    }
}
