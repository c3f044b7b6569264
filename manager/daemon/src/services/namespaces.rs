//! containerd.services.namespaces.v1

use super::{blocking, labels_in, labels_out, mask_paths, meta_status, Shared};
use hull_api::namespaces::namespaces_server::Namespaces;
use hull_api::namespaces::*;
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

fn to_api(n: hull_metadata::Namespace) -> Namespace {
    Namespace {
        name: n.name,
        labels: labels_out(n.labels),
    }
}

fn required(n: Option<Namespace>) -> Result<Namespace, Status> {
    n.ok_or_else(|| Status::invalid_argument("missing namespace"))
}

#[tonic::async_trait]
impl Namespaces for Service {
    async fn get(
        &self,
        req: Request<GetNamespaceRequest>,
    ) -> Result<Response<GetNamespaceResponse>, Status> {
        let n = self
            .0
            .meta
            .namespace(&req.into_inner().name)
            .map_err(meta_status)?;
        Ok(Response::new(GetNamespaceResponse {
            namespace: Some(to_api(n)),
        }))
    }

    async fn list(
        &self,
        req: Request<ListNamespacesRequest>,
    ) -> Result<Response<ListNamespacesResponse>, Status> {
        let filter = req.into_inner().filter;
        let filters = super::filters::Filters::parse(&[filter])?;
        let namespaces = self
            .0
            .meta
            .list_namespaces()
            .map_err(meta_status)?
            .into_iter()
            .filter(|n| {
                filters.matches(|p| super::filters::lookup(p, &[("name", &n.name)], &n.labels))
            })
            .map(to_api)
            .collect();
        Ok(Response::new(ListNamespacesResponse { namespaces }))
    }

    async fn create(
        &self,
        req: Request<CreateNamespaceRequest>,
    ) -> Result<Response<CreateNamespaceResponse>, Status> {
        let n = required(req.into_inner().namespace)?;
        let d = self.0.clone();
        let created = blocking(move || {
            d.meta
                .create_namespace_with(&n.name, &labels_in(n.labels))
                .map_err(meta_status)
        })
        .await?;
        Ok(Response::new(CreateNamespaceResponse {
            namespace: Some(to_api(created)),
        }))
    }

    async fn update(
        &self,
        req: Request<UpdateNamespaceRequest>,
    ) -> Result<Response<UpdateNamespaceResponse>, Status> {
        let r = req.into_inner();
        let n = required(r.namespace)?;
        let paths = mask_paths(r.update_mask);
        let d = self.0.clone();
        let updated = blocking(move || {
            d.meta
                .update_namespace(&n.name, &labels_in(n.labels), &paths)
                .map_err(meta_status)
        })
        .await?;
        Ok(Response::new(UpdateNamespaceResponse {
            namespace: Some(to_api(updated)),
        }))
    }

    async fn delete(&self, req: Request<DeleteNamespaceRequest>) -> Result<Response<()>, Status> {
        let name = req.into_inner().name;
        let d = self.0.clone();
        blocking(move || {
            for digest in d.meta.delete_namespace(&name).map_err(meta_status)? {
                d.delete_blob(&digest);
            }
            Ok(())
        })
        .await?;
        Ok(Response::new(()))
    }
}
