//! hull-api: the gRPC API between hullctl (or any client) and hulld.
//!
//! One versioned package per service (`hull.services.<name>.v1`), so a
//! service can gain a v2 without breaking clients of v1. The namespace a
//! request acts in travels in the [`NAMESPACE_HEADER`] metadata entry;
//! without it the daemon uses [`DEFAULT_NAMESPACE`].

pub const NAMESPACE_HEADER: &str = "hull-namespace";
pub const DEFAULT_NAMESPACE: &str = "default";
/// Where hulld listens unless configured otherwise.
pub const DEFAULT_ADDRESS: &str = "/run/hull/hulld.sock";

/// The generated code, nested as the proto packages are (cross-package
/// references in it are relative paths).
pub mod hull {
    pub mod services {
        pub mod namespaces {
            pub mod v1 {
                tonic::include_proto!("hull.services.namespaces.v1");
            }
        }
        pub mod content {
            pub mod v1 {
                tonic::include_proto!("hull.services.content.v1");
            }
        }
        pub mod images {
            pub mod v1 {
                tonic::include_proto!("hull.services.images.v1");
            }
        }
        pub mod leases {
            pub mod v1 {
                tonic::include_proto!("hull.services.leases.v1");
            }
        }
        pub mod transfer {
            pub mod v1 {
                tonic::include_proto!("hull.services.transfer.v1");
            }
        }
        pub mod introspection {
            pub mod v1 {
                tonic::include_proto!("hull.services.introspection.v1");
            }
        }
    }
}

pub use hull::services::content::v1 as content;
pub use hull::services::images::v1 as images;
pub use hull::services::introspection::v1 as introspection;
pub use hull::services::leases::v1 as leases;
pub use hull::services::namespaces::v1 as namespaces;
pub use hull::services::transfer::v1 as transfer;
