//! Command-line arguments of the container commands (docker's and
//! nerdctl's flags).

use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum ContainerCmd {
    /// Create and start a container from an image (pulled if absent)
    Run(Box<RunArgs>),
    /// Create a container without starting it
    Create(Box<RunArgs>),
    /// Start created or stopped containers
    Start(StartArgs),
    /// Stop containers: the image's stop signal, then SIGKILL after a timeout
    Stop(StopArgs),
    /// Send a signal to containers
    Kill(KillArgs),
    /// Remove containers
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Freeze the processes of containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Thaw paused containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Wait for containers to stop; print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers
    #[command(alias = "list", alias = "ls")]
    Ps(PsArgs),
    /// A container's output
    Logs(LogsArgs),
    /// Container records and state (JSON)
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// The processes of a container
    Top { container: String },
    /// CPU, memory, pids and I/O of containers
    Stats(StatsArgs),
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Attach to a running container's output (and input with -i at run)
    Attach { container: String },
    /// A container's published ports
    Port { container: String },
}

#[derive(Args, Clone, Default)]
pub struct RunArgs {
    /// Run in the background and print the container id
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Name (unique in the namespace)
    #[arg(long)]
    pub name: Option<String>,
    /// Keep stdin open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Environment variable K=V (or K: taken from hullctl's environment)
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// File of K=V lines
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// User: name|uid[:group|gid]
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory in the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Overwrite the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Memory limit (e.g. 256m)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// CPUs (e.g. 0.5)
    #[arg(long)]
    pub cpus: Option<String>,
    /// Maximum number of processes
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Mount the root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Every capability, no seccomp, all devices, /sys writable
    #[arg(long)]
    pub privileged: bool,
    #[arg(long)]
    pub hostname: Option<String>,
    /// Network: bridge (hulld's default network), a network's name, host or none
    #[arg(long, alias = "net", env = "HULLCTL_NETWORK", default_value = "bridge")]
    pub network: String,
    /// Publish a port: [hostIP:]hostPort:containerPort[/tcp|udp]
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// The container's IPv4 address on its network
    #[arg(long)]
    pub ip: Option<String>,
    /// The container's MAC address on its network, e.g. 02:42:ac:11:00:02
    #[arg(long)]
    pub mac_address: Option<String>,
    /// A DNS server for the container's resolv.conf (instead of the host's)
    #[arg(long)]
    pub dns: Vec<String>,
    /// A DNS search domain for the container's resolv.conf
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// A resolv.conf option, e.g. ndots:2
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Limit traffic to the container, in bits per second (10M, 512k); the
    /// network needs a plugin with the bandwidth capability
    #[arg(long)]
    pub ingress_bandwidth: Option<String>,
    /// Limit traffic from the container, in bits per second (10M, 512k)
    #[arg(long)]
    pub egress_bandwidth: Option<String>,
    /// An extra /etc/hosts entry, HOST:IP
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Bind mount HOST:CONTAINER[:ro]
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// tmpfs at PATH[:OPTIONS]
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Restart policy: no, always, on-failure
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Snapshotter for the root filesystem
    #[arg(long, default_value = "overlayfs")]
    pub snapshotter: String,
    /// Cgroup the container's cgroup goes below (as PARENT/NAMESPACE/ID)
    #[arg(long, env = "HULLCTL_CGROUP_PARENT", default_value = "hull")]
    pub cgroup_parent: String,
    /// The image, then the command and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub image_and_args: Vec<String>,
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach to the output and wait (exit status of the container)
    #[arg(short = 'a', long)]
    pub attach: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL
    #[arg(short = 't', long, default_value_t = 10)]
    pub time: u64,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal name or number
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Kill and remove running containers too
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct PsArgs {
    /// Also stopped and created containers
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Ids only
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct LogsArgs {
    /// Keep following new output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines
    #[arg(long = "tail", short = 'n')]
    pub tail: Option<usize>,
    /// Prefix each line with when it was written
    #[arg(short = 't', long)]
    pub timestamps: bool,
    pub container: String,
}

#[derive(Args)]
pub struct StatsArgs {
    /// One sample, then exit
    #[arg(long)]
    pub no_stream: bool,
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct ExecArgs {
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// The container, then the command and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub container_and_args: Vec<String>,
}
