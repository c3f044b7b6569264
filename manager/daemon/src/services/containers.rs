//! containerd.services.containers.v1: container records.

use super::{
    blocking, filters::Filters, labels_in, labels_out, mask_paths, meta_status, namespace,
    timestamp, Shared,
};
use hull_api::containers::containers_server::Containers;
use hull_api::containers::*;
use hull_metadata::AnyRecord;
use std::pin::Pin;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

pub fn any_in(a: prost_types::Any) -> AnyRecord {
    AnyRecord {
        type_url: a.type_url,
        value: a.value,
    }
}

pub fn any_out(a: AnyRecord) -> prost_types::Any {
    prost_types::Any {
        type_url: a.type_url,
        value: a.value,
    }
}

pub fn to_api(c: hull_metadata::Container) -> Container {
    Container {
        id: c.id,
        labels: labels_out(c.labels),
        image: c.image,
        runtime: Some(container::Runtime {
            name: c.runtime.name,
            options: c.runtime.options.map(any_out),
        }),
        spec: c.spec.map(any_out),
        snapshotter: c.snapshotter,
        snapshot_key: c.snapshot_key,
        created_at: timestamp(c.created),
        updated_at: timestamp(c.updated),
        extensions: c
            .extensions
            .into_iter()
            .map(|(k, v)| (k, any_out(v)))
            .collect(),
        sandbox: c.sandbox,
    }
}

fn from_api(c: Option<Container>) -> Result<hull_metadata::Container, Status> {
    let c = c.ok_or_else(|| Status::invalid_argument("missing container"))?;
    let runtime = c.runtime.unwrap_or_default();
    Ok(hull_metadata::Container {
        id: c.id,
        labels: labels_in(c.labels),
        image: c.image,
        runtime: hull_metadata::Runtime {
            name: runtime.name,
            options: runtime.options.map(any_in),
        },
        spec: c.spec.map(any_in),
        snapshotter: c.snapshotter,
        snapshot_key: c.snapshot_key,
        created: 0,
        updated: 0,
        extensions: c
            .extensions
            .into_iter()
            .map(|(k, v)| (k, any_in(v)))
            .collect(),
        sandbox: c.sandbox,
    })
}

fn matches(filters: &Filters, c: &hull_metadata::Container) -> bool {
    let runtime = c.runtime.name.clone();
    filters.matches(|p| match p {
        [r, n] if r == "runtime" && n == "name" => Some(runtime.clone()),
        _ => super::filters::lookup(
            p,
            &[
                ("id", &c.id),
                ("image", &c.image),
                ("snapshotter", &c.snapshotter),
                ("sandbox", &c.sandbox),
            ],
            &c.labels,
        ),
    })
}

impl Service {
    fn list_matching(
        &self,
        ns: &str,
        filters: &[String],
    ) -> Result<Vec<hull_metadata::Container>, Status> {
        let filters = Filters::parse(filters)?;
        Ok(self
            .0
            .meta
            .containers(ns)
            .map_err(meta_status)?
            .into_iter()
            .filter(|c| matches(&filters, c))
            .collect())
    }
}

#[tonic::async_trait]
impl Containers for Service {
    async fn get(
        &self,
        req: Request<GetContainerRequest>,
    ) -> Result<Response<GetContainerResponse>, Status> {
        let ns = namespace(&req)?;
        let c = self
            .0
            .meta
            .container(&ns, &req.into_inner().id)
            .map_err(meta_status)?;
        Ok(Response::new(GetContainerResponse {
            container: Some(to_api(c)),
        }))
    }

    async fn list(
        &self,
        req: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        let ns = namespace(&req)?;
        let list = self.list_matching(&ns, &req.into_inner().filters)?;
        Ok(Response::new(ListContainersResponse {
            containers: list.into_iter().map(to_api).collect(),
        }))
    }

    type ListStreamStream = Pin<Box<ReceiverStream<Result<ListContainerMessage, Status>>>>;

    async fn list_stream(
        &self,
        req: Request<ListContainersRequest>,
    ) -> Result<Response<Self::ListStreamStream>, Status> {
        let ns = namespace(&req)?;
        let list = self.list_matching(&ns, &req.into_inner().filters)?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            for c in list {
                let msg = ListContainerMessage {
                    container: Some(to_api(c)),
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn create(
        &self,
        req: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        let ns = namespace(&req)?;
        let c = from_api(req.into_inner().container)?;
        let d = self.0.clone();
        let created = blocking(move || {
            d.meta.create_namespace(&ns).map_err(meta_status)?;
            let created = d.meta.create_container(&ns, &c).map_err(meta_status)?;
            d.events.publish(
                &ns,
                "/containers/create",
                crate::events::container_create(&created),
            );
            Ok(created)
        })
        .await?;
        Ok(Response::new(CreateContainerResponse {
            container: Some(to_api(created)),
        }))
    }

    async fn update(
        &self,
        req: Request<UpdateContainerRequest>,
    ) -> Result<Response<UpdateContainerResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let c = from_api(r.container)?;
        let paths = mask_paths(r.update_mask);
        let d = self.0.clone();
        let updated = blocking(move || {
            let updated = d
                .meta
                .update_container(&ns, &c, &paths)
                .map_err(meta_status)?;
            d.events.publish(
                &ns,
                "/containers/update",
                crate::events::container_update(&updated),
            );
            Ok(updated)
        })
        .await?;
        Ok(Response::new(UpdateContainerResponse {
            container: Some(to_api(updated)),
        }))
    }

    async fn delete(&self, req: Request<DeleteContainerRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let id = req.into_inner().id;
        let d = self.0.clone();
        blocking(move || {
            if d.tasks.has_task(&ns, &id) {
                return Err(Status::failed_precondition(format!(
                    "container {id} has a task: delete the task first (`ctr task rm`)"
                )));
            }
            d.meta.delete_container(&ns, &id).map_err(meta_status)?;
            // An attachment whose DEL failed earlier gets its last try.
            d.network.detach(&ns, &id);
            d.events.publish(
                &ns,
                "/containers/delete",
                crate::events::container_delete(&id),
            );
            d.gc_after(&format!("removing container {id}"));
            Ok(())
        })
        .await?;
        Ok(Response::new(()))
    }
}
