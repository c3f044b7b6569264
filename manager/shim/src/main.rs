//! `containerd-shim-hull-v2`: containerd's runtime `io.containerd.hull.v2`.
//!
//! One shim process per container speaks containerd's shim v2 task API
//! (`containerd.task.v2.Task`, and the identical `v3` of containerd 2) over
//! ttrpc on a unix socket, and drives the `hull` runtime by exec, as
//! containerd's runc shim drives runc. containerd 1.6 uses it unchanged:
//! `ctr run --runtime io.containerd.hull.v2 ...` with this binary on the
//! PATH.
//!
//! Built on `containerd-shim-protos` (the API types, the sync ttrpc server
//! and client) and nothing else of containerd's Rust crates. The
//! `containerd-shim` framework crate (0.12) does not fit: it registers the
//! task service only under the v3 name and answers `start` in containerd
//! 2's JSON/bootstrap formats, which containerd 1.6 would take for a socket
//! address, and it brings cgroups-rs, oci-spec, signal-hook, time and
//! tempfile along. Measured idle with one sleeping container (release,
//! opt-level s, VmRSS): 1.9 MiB static-pie, 2.8 MiB dynamically linked
//! (the difference is glibc's shared pages), against 12.8 MiB for
//! containerd's runc shim; the threads are listed in [`server`].
//!
//! Process model: `start` re-executes the binary detached with the socket
//! as fd 3 ([`bootstrap`]); the server ([`server`]) is the subreaper and
//! only reaper of everything it starts; requests ([`task`],
//! [`lifecycle`]) run `hull` ([`runtime`]) and wait for its exit through
//! the reaper's record ([`state`]); stdio is copied by the main loop
//! ([`stdio`], [`iocopy`], [`logfile`]); events go to containerd from one
//! publisher thread ([`events`]).

mod args;
mod bootstrap;
mod error;
mod events;
mod iocopy;
mod lifecycle;
mod log;
mod logfile;
mod metrics;
mod mounts;
mod oom;
mod options;
mod runtime;
mod server;
mod state;
mod stdio;
mod task;

use std::io::Write;

use args::Action;

fn main() {
    let flags = match args::parse(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd-shim-hull-v2: {e}");
            std::process::exit(2);
        }
    };
    let code = match flags.action {
        Action::Version => {
            println!(
                "containerd-shim-hull-v2 {} (runtime io.containerd.hull.v2)",
                env!("CARGO_PKG_VERSION")
            );
            0
        }
        Action::Start => match bootstrap::start(&flags) {
            Ok(address) => {
                print!("{address}");
                0
            }
            Err(e) => {
                eprintln!("containerd-shim-hull-v2 start: {e}");
                1
            }
        },
        Action::Delete => match bootstrap::delete(&flags) {
            Ok(bytes) => {
                let _ = std::io::stdout().write_all(&bytes);
                0
            }
            Err(e) => {
                eprintln!("containerd-shim-hull-v2 delete: {e}");
                1
            }
        },
        Action::Serve => server::serve(&flags),
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}
