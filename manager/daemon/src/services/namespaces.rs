use super::{blocking, meta_status, Shared};
use hull_api::namespaces::namespaces_server::Namespaces;
use hull_api::namespaces::*;
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

#[tonic::async_trait]
impl Namespaces for Service {
    async fn list(
        &self,
        _req: Request<ListNamespacesRequest>,
    ) -> Result<Response<ListNamespacesResponse>, Status> {
        let names = self.0.meta.namespaces().map_err(meta_status)?;
        Ok(Response::new(ListNamespacesResponse {
            namespaces: names.into_iter().map(|name| Namespace { name }).collect(),
        }))
    }

    async fn create(
        &self,
        req: Request<CreateNamespaceRequest>,
    ) -> Result<Response<Namespace>, Status> {
        let name = req.into_inner().name;
        let d = self.0.clone();
        let n = name.clone();
        blocking(move || d.meta.create_namespace(&n).map_err(meta_status)).await?;
        Ok(Response::new(Namespace { name }))
    }

    async fn delete(
        &self,
        req: Request<DeleteNamespaceRequest>,
    ) -> Result<Response<DeleteNamespaceResponse>, Status> {
        let name = req.into_inner().name;
        let d = self.0.clone();
        blocking(move || {
            for digest in d.meta.delete_namespace(&name).map_err(meta_status)? {
                d.delete_blob(&digest);
            }
            Ok(())
        })
        .await?;
        Ok(Response::new(DeleteNamespaceResponse {}))
    }
}
