//! hull's command line: runc's commands, flags and defaults.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "hull",
    version,
    about = "hull: an OCI container runtime, command-line compatible with runc",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Directory for the containers' state [default: /run/hull, or
    /// $XDG_RUNTIME_DIR/hull when not run as root]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Append log lines to FILE instead of stderr
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log format
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Also log debug messages
    #[arg(long)]
    pub debug: bool,
    /// Use the systemd cgroup driver (cgroupsPath slice:prefix:name); not implemented yet: fails clearly
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (accepted for compatibility)
    #[arg(long, value_name = "VALUE")]
    pub rootless: Option<String>,
    /// CRIU binary for checkpoint and restore (default: criu in PATH)
    #[arg(long, value_name = "PATH")]
    pub criu: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container (its process waits for `start`)
    Create(CreateArgs),
    /// Start the process of a created container
    Start { id: String },
    /// Create and start a container
    Run(RunArgs),
    /// Print the state of a container as JSON
    State { id: String },
    /// Send a signal to the container's init process (default SIGTERM)
    Kill {
        /// Send the signal to every process of the container
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and its state
    Delete {
        /// Kill the container first if it is running
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List containers
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        /// Print only container ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json
    Spec {
        /// Directory to write config.json to
        #[arg(short, long, value_name = "DIR")]
        bundle: Option<PathBuf>,
        /// A spec for running without root (user namespace, no network namespace)
        #[arg(long)]
        rootless: bool,
    },
    /// List the processes of a container
    Ps {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        id: String,
        /// Arguments for ps(1) (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run a new process in a running container
    Exec(ExecArgs),
    /// Print what this runtime supports, as JSON
    Features,
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Change the resource limits of a running container
    Update(UpdateArgs),
    /// Checkpoint a running container with CRIU
    Checkpoint(CheckpointArgs),
    /// Restore a container from a CRIU checkpoint
    Restore(RestoreArgs),
    /// Print resource statistics and OOM events of a container as JSON lines
    Events {
        /// Print statistics once and exit
        #[arg(long)]
        stats: bool,
        /// How often to print statistics (e.g. 5s, 500ms, 1m)
        #[arg(long, default_value = "5s", value_name = "DURATION")]
        interval: String,
        id: String,
    },
}

/// CRIU options shared by checkpoint and restore (runc's flags).
#[derive(Args, Debug, Clone)]
pub struct CriuArgs {
    /// Directory of the CRIU images (default: ./checkpoint)
    #[arg(long, value_name = "DIR")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's work files and logs (default: the image path)
    #[arg(long, value_name = "DIR")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long)]
    pub shell_job: bool,
    /// Handle file locks
    #[arg(long)]
    pub file_locks: bool,
    /// Use userfaultfd to lazily restore memory pages
    #[arg(long)]
    pub lazy_pages: bool,
    /// cgroups mode: soft (CRIU's default), full or strict
    #[arg(long, value_name = "MODE")]
    pub manage_cgroups_mode: Option<String>,
    /// Create a namespace, but do not restore its properties (network)
    #[arg(long, value_name = "NS")]
    pub empty_ns: Vec<String>,
    /// Enable auto deduplication of memory images
    #[arg(long)]
    pub auto_dedup: bool,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path of the previous images, for an incremental dump
    #[arg(long, value_name = "DIR")]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint
    #[arg(long)]
    pub leave_running: bool,
    /// FD CRIU writes \0 to once lazy pages are ready (-1: none)
    #[arg(long, default_value_t = -1, value_name = "FD", allow_hyphen_values = true)]
    pub status_fd: i32,
    /// ADDRESS:PORT of the page server
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub page_server: Option<String>,
    /// Dump memory only and leave the container running
    #[arg(long)]
    pub pre_dump: bool,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// AF_UNIX socket that receives the PTY master
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Bundle directory (holding config.json)
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// Return after restoring instead of waiting for the container
    #[arg(short, long)]
    pub detach: bool,
    /// Write the restored init's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Do not become a subreaper for the restored processes
    #[arg(long)]
    pub no_subreaper: bool,
    /// Use MS_MOVE and chroot instead of pivot_root
    #[arg(long)]
    pub no_pivot: bool,
    /// LSM profile for the restored processes: TYPE:NAME
    #[arg(long, value_name = "TYPE:NAME")]
    pub lsm_profile: Option<String>,
    /// LSM mount context for the restore
    #[arg(long, value_name = "CONTEXT")]
    pub lsm_mount_context: Option<String>,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// LinuxResources JSON (runtime-spec linux.resources) from FILE, or - for stdin
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Block IO weight (10-1000)
    #[arg(long, value_name = "WEIGHT")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds
    #[arg(long, value_name = "US")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds (-1 for none)
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(long, value_name = "SHARES")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period in microseconds
    #[arg(long, value_name = "US")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use (e.g. 0-2,4)
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with k/m/g suffix; -1 for none)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for unlimited swap)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Kernel memory limit (ignored: kernels dropped it)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Kernel TCP memory limit (ignored: kernels dropped it)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Maximum number of processes (-1 or 0 for none)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported)
    #[arg(long, value_name = "SCHEMA")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported)
    #[arg(long, value_name = "SCHEMA")]
    pub mem_bw_schema: Option<String>,
    pub id: String,
}

impl Command {
    /// For commands that start a process in a container: how many fds after
    /// stdio it is to receive (`--preserve-fds`).
    pub fn preserved_fds(&self) -> Option<i32> {
        match self {
            Command::Create(a) => Some(a.preserve_fds),
            Command::Run(a) => Some(a.create.preserve_fds),
            Command::Exec(a) => Some(a.preserve_fds),
            _ => None,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Bundle directory (holding config.json)
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// AF_UNIX socket that receives the PTY master of a terminal container
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the init process's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root (for a rootfs on a ramdisk)
    #[arg(long)]
    pub no_pivot: bool,
    /// Keep the caller's session keyring
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N more fds (from 3) to the container
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: i32,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return after starting instead of waiting for the container
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// AF_UNIX socket that receives the PTY master (with -t)
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Allocate a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// User to run as: UID[:GID]
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Additional group ids
    #[arg(short = 'g', long, value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Process JSON file (runtime-spec "process") instead of arguments
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return after starting the process
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Add a capability (bounding, effective, permitted), e.g. CAP_NET_ADMIN
    #[arg(short, long, value_name = "CAP")]
    pub cap: Vec<String>,
    /// Pass N more fds (from 3) to the process
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: i32,
    /// SELinux label (needs SELinux on the host)
    #[arg(long, value_name = "LABEL")]
    pub process_label: Option<String>,
    /// AppArmor profile (needs AppArmor on the host)
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// Exec even if the container is paused
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run the process in an existing sub-cgroup of the container: [CONTROLLER[,CONTROLLER]:]PATH (repeatable)
    #[arg(long, value_name = "[CONTROLLER:]PATH")]
    pub cgroup: Vec<String>,
    pub id: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

impl Cli {
    /// --root, or the default runc uses: a user's own runtime directory
    /// when hull runs unprivileged (rootless), /run/hull otherwise.
    pub fn state_root(&self) -> PathBuf {
        if let Some(root) = &self.root {
            return root.clone();
        }
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(dir) if !nix::unistd::geteuid().is_root() && !dir.is_empty() => {
                PathBuf::from(dir).join("hull")
            }
            _ => PathBuf::from("/run/hull"),
        }
    }
}
