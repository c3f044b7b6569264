//! hull-network: what a container needs to be on a network, as containerd
//! and nerdctl do it:
//! - [`netns`]: a network namespace per container, pinned by a bind mount
//!   under hulld's state dir, so the runtime joins it by path;
//! - [`config`]: CNI network lists (`*.conflist`, `*.conf`) from a config
//!   dir, validated, and the default bridge network written when none is;
//! - [`cni`]: the CNI protocol (spec 1.0.0, and the 0.4.0 plugins Debian
//!   ships): ADD/CHECK/DEL down a plugin chain with `prevResult`, runtime
//!   config (`portMappings`, `ips`, `mac`, `bandwidth`, `dns`) passed to the
//!   plugins that declare the capability, and each ADD's result cached per
//!   container so that DEL gets what ADD returned, also after a crash and
//!   after the network's file is gone;
//! - [`ports`]: `-p [hostIP:]hostPort:containerPort[/proto]`;
//! - [`capability`]: bandwidth limits and DNS settings for the runtime
//!   config.
//!
//! The plugins are the real binaries (Debian's containernetworking-plugins:
//! bridge, host-local, portmap, firewall, tuning, bandwidth); nothing of them is
//! re-implemented. The CNI types are ours, small and serde-based: the
//! crates on crates.io for CNI are for writing plugins (they read a plugin's
//! stdin and environment), not for driving them as a runtime.

pub mod cni;

/// Container labels between `hullctl run` and hulld.
pub mod labels {
    /// The container's name (`--name`), for messages.
    pub const NAME: &str = "hull/name";
    /// The network a container joins: a CNI network's name, `none` or `host`.
    pub const NETWORK: &str = "hull/network";
    /// Published ports, a JSON list of CNI `portMappings` entries.
    pub const PORTS: &str = "hull/ports";
    /// The address asked for (`--ip`).
    pub const IP: &str = "hull/ip";
    /// The MAC address asked for (`--mac-address`).
    pub const MAC: &str = "hull/mac";
    /// Set by hulld once attached: the container's addresses, comma-separated.
    pub const IPS: &str = "hull/network.ips";
    /// Bandwidth limits asked for, a JSON [`crate::capability::Bandwidth`].
    pub const BANDWIDTH: &str = "hull/bandwidth";
    /// DNS settings asked for, a JSON [`crate::capability::Dns`].
    pub const DNS: &str = "hull/dns";

    /// Whether a [`NETWORK`] value names a CNI network (`none` and `host`
    /// are no CNI networks).
    pub fn on_cni(network: &str) -> bool {
        !matches!(network, "none" | "host" | "")
    }
}
pub mod capability;
pub mod config;
pub mod netns;
pub mod ports;

pub use capability::{Bandwidth, Dns};
pub use cni::{Attachment, Cni, CniError};
pub use config::{ConfigError, NetworkList};
pub use ports::PortMapping;
