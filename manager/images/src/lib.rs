//! hull-images: what the manager knows about images. So far: image
//! references as users type them, normalised the way docker and containerd
//! do (`busybox` is `docker.io/library/busybox:latest`).

pub mod reference;

pub use reference::{InvalidReference, Reference};
