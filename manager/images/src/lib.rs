//! hull-images: what an image is to the manager and how it gets here:
//! references, manifests and indexes, platforms, registry credentials, and
//! the pull from a registry into the content store.

pub mod archive;
pub mod auth;
pub mod hosts;
pub mod manifest;
pub mod platform;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;

pub use platform::Platform;
pub use pull::{Puller, RegistryConfig};
pub use reference::{InvalidReference, Reference};
