//! containerd.services.snapshots.v1 over hulld's snapshotters. Snapshots
//! made under a lease (`containerd-lease`) belong to it, so the collector
//! keeps them while the client works (ctr unpacks this way).

use super::{
    blocking, filters::Filters, labels_in, labels_out, lease, mask_paths, meta_status, namespace,
    Shared,
};
use crate::snapshotters::snapshot_status;
use hull_api::snapshots::snapshots_server::Snapshots;
use hull_api::snapshots::*;
use hull_api::types::Mount;
use hull_metadata::LeaseResource;
use std::pin::Pin;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

pub struct Service(pub Shared);

pub fn mounts_out(mounts: Vec<hull_snapshots::Mount>) -> Vec<Mount> {
    mounts
        .into_iter()
        .map(|m| Mount {
            r#type: m.kind,
            source: m.source,
            target: m.target,
            options: m.options,
        })
        .collect()
}

fn nanos(t: u64) -> Option<prost_types::Timestamp> {
    (t > 0).then_some(prost_types::Timestamp {
        seconds: (t / 1_000_000_000) as i64,
        nanos: (t % 1_000_000_000) as i32,
    })
}

fn kind_out(k: hull_snapshots::Kind) -> Kind {
    match k {
        hull_snapshots::Kind::View => Kind::View,
        hull_snapshots::Kind::Active => Kind::Active,
        hull_snapshots::Kind::Committed => Kind::Committed,
    }
}

pub fn info_out(i: hull_snapshots::Info) -> Info {
    Info {
        name: i.name,
        parent: i.parent.unwrap_or_default(),
        kind: kind_out(i.kind) as i32,
        created_at: nanos(i.created),
        updated_at: nanos(i.updated),
        labels: labels_out(i.labels),
    }
}

fn key_required(key: &str) -> Result<(), Status> {
    if key.is_empty() {
        return Err(Status::invalid_argument("a snapshot key is required"));
    }
    Ok(())
}

impl Service {
    /// Add snapshot `key` of `snapshotter` to the request's lease, if any.
    fn lease_it(
        &self,
        ns: &str,
        lease: &Option<String>,
        snapshotter: &str,
        key: &str,
    ) -> Result<(), Status> {
        if let Some(lease) = lease {
            self.0
                .meta
                .add_lease_typed(
                    ns,
                    lease,
                    &LeaseResource {
                        kind: format!("snapshots/{snapshotter}"),
                        id: key.to_string(),
                    },
                )
                .map_err(meta_status)?;
        }
        Ok(())
    }

    async fn create(
        &self,
        ns: String,
        lease: Option<String>,
        new: NewSnapshot,
    ) -> Result<Vec<Mount>, Status> {
        key_required(&new.key)?;
        let sn = self.0.snapshotters.get(&new.snapshotter)?;
        let this = Service(self.0.clone());
        blocking(move || {
            this.0.meta.create_namespace(&ns).map_err(meta_status)?;
            let parent = (!new.parent.is_empty()).then_some(new.parent.as_str());
            let labels = labels_in(new.labels);
            // In the lease first, so no collection between the two steps
            // can take the new snapshot.
            this.lease_it(&ns, &lease, sn.name(), &new.key)?;
            let mounts = if new.view {
                sn.view(&ns, &new.key, parent, labels)
            } else {
                sn.prepare(&ns, &new.key, parent, labels)
            }
            .map_err(snapshot_status)?;
            Ok(mounts_out(mounts))
        })
        .await
    }
}

/// A Prepare or View request.
struct NewSnapshot {
    snapshotter: String,
    key: String,
    parent: String,
    labels: std::collections::HashMap<String, String>,
    view: bool,
}

type ServerStream<T> = Pin<Box<ReceiverStream<Result<T, Status>>>>;

#[tonic::async_trait]
impl Snapshots for Service {
    async fn prepare(
        &self,
        req: Request<PrepareSnapshotRequest>,
    ) -> Result<Response<PrepareSnapshotResponse>, Status> {
        let (ns, lease) = (namespace(&req)?, lease(&req));
        let r = req.into_inner();
        let new = NewSnapshot {
            snapshotter: r.snapshotter,
            key: r.key,
            parent: r.parent,
            labels: r.labels,
            view: false,
        };
        let mounts = self.create(ns, lease, new).await?;
        Ok(Response::new(PrepareSnapshotResponse { mounts }))
    }

    async fn view(
        &self,
        req: Request<ViewSnapshotRequest>,
    ) -> Result<Response<ViewSnapshotResponse>, Status> {
        let (ns, lease) = (namespace(&req)?, lease(&req));
        let r = req.into_inner();
        let new = NewSnapshot {
            snapshotter: r.snapshotter,
            key: r.key,
            parent: r.parent,
            labels: r.labels,
            view: true,
        };
        let mounts = self.create(ns, lease, new).await?;
        Ok(Response::new(ViewSnapshotResponse { mounts }))
    }

    async fn mounts(
        &self,
        req: Request<MountsRequest>,
    ) -> Result<Response<MountsResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        key_required(&r.key)?;
        let sn = self.0.snapshotters.get(&r.snapshotter)?;
        let mounts = blocking(move || sn.mounts(&ns, &r.key).map_err(snapshot_status)).await?;
        Ok(Response::new(MountsResponse {
            mounts: mounts_out(mounts),
        }))
    }

    async fn commit(&self, req: Request<CommitSnapshotRequest>) -> Result<Response<()>, Status> {
        let (ns, lease) = (namespace(&req)?, lease(&req));
        let r = req.into_inner();
        key_required(&r.key)?;
        key_required(&r.name)?;
        let sn = self.0.snapshotters.get(&r.snapshotter)?;
        let this = Service(self.0.clone());
        blocking(move || {
            this.lease_it(&ns, &lease, sn.name(), &r.name)?;
            sn.commit(&ns, &r.name, &r.key, labels_in(r.labels))
                .map_err(snapshot_status)
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn remove(&self, req: Request<RemoveSnapshotRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        key_required(&r.key)?;
        let sn = self.0.snapshotters.get(&r.snapshotter)?;
        blocking(move || sn.remove(&ns, &r.key).map_err(snapshot_status)).await?;
        Ok(Response::new(()))
    }

    async fn stat(
        &self,
        req: Request<StatSnapshotRequest>,
    ) -> Result<Response<StatSnapshotResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        key_required(&r.key)?;
        let sn = self.0.snapshotters.get(&r.snapshotter)?;
        let info = blocking(move || sn.stat(&ns, &r.key).map_err(snapshot_status)).await?;
        Ok(Response::new(StatSnapshotResponse {
            info: Some(info_out(info)),
        }))
    }

    async fn update(
        &self,
        req: Request<UpdateSnapshotRequest>,
    ) -> Result<Response<UpdateSnapshotResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let info = r
            .info
            .ok_or_else(|| Status::invalid_argument("missing info"))?;
        key_required(&info.name)?;
        let sn = self.0.snapshotters.get(&r.snapshotter)?;
        let paths = mask_paths(r.update_mask);
        let updated = blocking(move || {
            let current = sn.stat(&ns, &info.name).map_err(snapshot_status)?;
            let wanted = hull_snapshots::Info {
                labels: labels_in(info.labels),
                ..current
            };
            sn.update(&ns, wanted, &paths).map_err(snapshot_status)
        })
        .await?;
        Ok(Response::new(UpdateSnapshotResponse {
            info: Some(info_out(updated)),
        }))
    }

    type ListStream = ServerStream<ListSnapshotsResponse>;

    async fn list(
        &self,
        req: Request<ListSnapshotsRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let filters = Filters::parse(&r.filters)?;
        let sn = self.0.snapshotters.get(&r.snapshotter)?;
        let infos = blocking(move || sn.walk(&ns).map_err(snapshot_status)).await?;
        let infos: Vec<Info> = infos
            .into_iter()
            .filter(|i| {
                let parent = i.parent.clone().unwrap_or_default();
                let kind = format!("{:?}", i.kind).to_lowercase();
                filters.matches(|p| {
                    super::filters::lookup(
                        p,
                        &[("name", &i.name), ("parent", &parent), ("kind", &kind)],
                        &i.labels,
                    )
                })
            })
            .map(info_out)
            .collect();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            for batch in infos.chunks(100) {
                let msg = ListSnapshotsResponse {
                    info: batch.to_vec(),
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn usage(&self, req: Request<UsageRequest>) -> Result<Response<UsageResponse>, Status> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        key_required(&r.key)?;
        let sn = self.0.snapshotters.get(&r.snapshotter)?;
        let usage = blocking(move || sn.usage(&ns, &r.key).map_err(snapshot_status)).await?;
        Ok(Response::new(UsageResponse {
            size: usage.size as i64,
            inodes: usage.inodes as i64,
        }))
    }

    async fn cleanup(&self, req: Request<CleanupRequest>) -> Result<Response<()>, Status> {
        let sn = self.0.snapshotters.get(&req.into_inner().snapshotter)?;
        blocking(move || sn.cleanup().map(drop).map_err(snapshot_status)).await?;
        Ok(Response::new(()))
    }
}
