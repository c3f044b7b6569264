//! hull-api: the gRPC API of hulld: containerd's own services
//! (`containerd.services.*.v1`, so containerd's clients such as `ctr` work
//! unchanged) and hull's own small services: `hull.services.transfer.v1`
//! (daemon-side pulls with progress) and `hull.services.gc.v1` (collect on
//! demand).
//!
//! As in containerd, the namespace a request acts in travels in the
//! [`NAMESPACE_HEADER`] metadata entry (without it: [`DEFAULT_NAMESPACE`]),
//! and a lease in [`LEASE_HEADER`].

pub mod metrics;

pub const NAMESPACE_HEADER: &str = "containerd-namespace";
pub const LEASE_HEADER: &str = "containerd-lease";
pub const DEFAULT_NAMESPACE: &str = "default";
/// Where hulld listens unless configured otherwise.
pub const DEFAULT_ADDRESS: &str = "/run/hull/hulld.sock";

/// The generated code, nested as the proto packages are (cross-package
/// references in it are relative paths).
pub mod containerd {
    pub mod types {
        tonic::include_proto!("containerd.types");
    }
    pub mod v1 {
        pub mod types {
            tonic::include_proto!("containerd.v1.types");
        }
    }
    pub mod events {
        tonic::include_proto!("containerd.events");
    }
    pub mod services {
        macro_rules! service {
            ($name:ident, $package:literal) => {
                pub mod $name {
                    pub mod v1 {
                        tonic::include_proto!($package);
                    }
                }
            };
        }
        service!(namespaces, "containerd.services.namespaces.v1");
        service!(content, "containerd.services.content.v1");
        service!(images, "containerd.services.images.v1");
        service!(leases, "containerd.services.leases.v1");
        service!(snapshots, "containerd.services.snapshots.v1");
        service!(diff, "containerd.services.diff.v1");
        service!(introspection, "containerd.services.introspection.v1");
        service!(version, "containerd.services.version.v1");
        service!(containers, "containerd.services.containers.v1");
        service!(tasks, "containerd.services.tasks.v1");
        service!(events, "containerd.services.events.v1");
    }
}

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

pub mod hull {
    pub mod services {
        pub mod transfer {
            pub mod v1 {
                tonic::include_proto!("hull.services.transfer.v1");
            }
        }
        pub mod gc {
            pub mod v1 {
                tonic::include_proto!("hull.services.gc.v1");
            }
        }
        pub mod networks {
            pub mod v1 {
                tonic::include_proto!("hull.services.networks.v1");
            }
        }
    }
}

pub use containerd::services::containers::v1 as containers;
pub use containerd::services::content::v1 as content;
pub use containerd::services::diff::v1 as diff;
pub use containerd::services::events::v1 as events;
pub use containerd::services::images::v1 as images;
pub use containerd::services::introspection::v1 as introspection;
pub use containerd::services::leases::v1 as leases;
pub use containerd::services::namespaces::v1 as namespaces;
pub use containerd::services::snapshots::v1 as snapshots;
pub use containerd::services::tasks::v1 as tasks;
pub use containerd::services::version::v1 as version;
pub use containerd::types;
pub use hull::services::gc::v1 as gc;
pub use hull::services::networks::v1 as networks;
pub use hull::services::transfer::v1 as transfer;
