//! The command tree: docker 28's commands, flags, short forms and defaults, as clap derive
//! types. Parsing only; the `commands` modules act on these values.
//!
//! `run` and `create` stop option parsing at the image (everything after it is the
//! command), so their image and command share one trailing positional. They also give `-h`
//! to `--hostname`, as docker does, so their help flag is long-only.

use clap::{ArgAction, Args, Parser, Subcommand};

/// Top-level options, before the command.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    about = "A self-sufficient runtime for containers",
    disable_version_flag = true
)]
pub struct Cli {
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host")]
    pub host: Option<String>,
    /// Set the logging level ("debug", "info", "warn", "error", "fatal")
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    pub log_level: String,
    /// Enable debug mode
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// Location of client config files
    #[arg(long)]
    pub config: Option<String>,
    /// Name of the context to use to connect to the daemon
    #[arg(short = 'c', long)]
    pub context: Option<String>,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Create a new container
    Create(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Pause all processes within one or more containers
    Pause(Containers),
    /// Unpause all processes within one or more containers
    Unpause(Containers),
    /// Block until one or more containers stop, then print their exit codes
    Wait(Containers),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
    /// List containers
    Ps(PsArgs),
    /// Return low-level information on Docker objects
    Inspect(InspectArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// List images
    Images(ImagesArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Authenticate to a registry
    Login(LoginArgs),
    /// Build an image from a Dockerfile
    Build(BuildArgs),
    /// Display system-wide information
    Info(FormatOnly),
    /// Show the Docker version information
    Version(FormatOnly),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Manage Docker
    #[command(subcommand)]
    System(SystemCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Define and run multi-container applications
    Compose(crate::compose::ComposeArgs),
}

#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    #[command(visible_aliases = ["list", "ps"])]
    Ls(PsArgs),
    Inspect(ContainerInspectArgs),
    Prune(PruneArgs),
    Run(RunArgs),
    Create(RunArgs),
    Start(StartArgs),
    Stop(StopArgs),
    Kill(KillArgs),
    Restart(StopArgs),
    Pause(Containers),
    Unpause(Containers),
    Wait(Containers),
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    Rename(RenameArgs),
    Update(UpdateArgs),
    Logs(LogsArgs),
    Exec(ExecArgs),
    Attach(AttachArgs),
    Top(TopArgs),
    Port(PortArgs),
    Stats(StatsArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    Inspect(ImageInspectArgs),
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    Prune(ImagePruneArgs),
    History(HistoryArgs),
    Tag(TagArgs),
    Import(ImportArgs),
    Save(SaveArgs),
    Load(LoadArgs),
    Pull(PullArgs),
    Push(PushArgs),
    Build(BuildArgs),
}

#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    Prune(SystemPruneArgs),
    Info(FormatOnly),
    Df(DfArgs),
    Events(EventsArgs),
}

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    #[command(visible_alias = "list")]
    Ls(NetLsArgs),
    Create(NetCreateArgs),
    #[command(visible_alias = "remove")]
    Rm(NamesForce),
    Inspect(FormatNames),
    Connect(NetConnectArgs),
    Disconnect(NetDisconnectArgs),
    Prune(PruneArgs),
}

#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    #[command(visible_alias = "list")]
    Ls(VolLsArgs),
    Create(VolCreateArgs),
    #[command(visible_alias = "remove")]
    Rm(NamesForce),
    Inspect(FormatNames),
    Prune(VolPruneArgs),
}

/// Every flag of `docker run` / `docker create` that berth acts on.
#[derive(Debug, Args, Default, Clone)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    #[arg(long, action = ArgAction::Help, help = "Print usage")]
    pub help: Option<bool>,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(long)]
    pub rm: bool,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(long)]
    pub entrypoint: Option<String>,
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    #[arg(long = "label-file")]
    pub label_file: Vec<String>,
    #[arg(long, default_value = "no")]
    pub restart: String,
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swappiness", default_value_t = -1, allow_negative_numbers = true)]
    pub memory_swappiness: i64,
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    #[arg(long = "oom-score-adj", allow_negative_numbers = true)]
    pub oom_score_adj: Option<i64>,
    #[arg(long)]
    pub cpus: Option<String>,
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub ulimit: Vec<String>,
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    #[arg(long)]
    pub sysctl: Vec<String>,
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    #[arg(long)]
    pub privileged: bool,
    #[arg(long = "read-only")]
    pub read_only: bool,
    #[arg(long)]
    pub init: bool,
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    #[arg(long)]
    pub domainname: Option<String>,
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    #[arg(long = "network", visible_alias = "net")]
    pub network: Option<String>,
    #[arg(long = "network-alias")]
    pub network_alias: Vec<String>,
    #[arg(long)]
    pub ip: Option<String>,
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    #[arg(long)]
    pub expose: Vec<String>,
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    #[arg(long)]
    pub mount: Vec<String>,
    #[arg(long)]
    pub tmpfs: Vec<String>,
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    #[arg(long = "volume-driver")]
    pub volume_driver: Option<String>,
    #[arg(long)]
    pub dns: Vec<String>,
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    #[arg(long = "health-start-interval")]
    pub health_start_interval: Option<String>,
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    #[arg(long)]
    pub platform: Option<String>,
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(long = "sig-proxy", default_value = "true", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    #[arg(long)]
    pub pull: Option<String>,
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(long)]
    pub runtime: Option<String>,
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    #[arg(long)]
    pub pid: Option<String>,
    #[arg(long)]
    pub ipc: Option<String>,
    #[arg(long)]
    pub uts: Option<String>,
    #[arg(long)]
    pub userns: Option<String>,
    #[arg(long)]
    pub cgroupns: Option<String>,
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    #[arg(long)]
    pub device: Vec<String>,
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    #[arg(long)]
    pub cidfile: Option<String>,
    #[arg(long)]
    pub link: Vec<String>,
    #[arg(long = "storage-opt")]
    pub storage_opt: Vec<String>,
    #[arg(long)]
    pub annotation: Vec<String>,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(required = true, trailing_var_arg = true, value_name = "IMAGE")]
    pub image_and_cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[arg(short = 'a', long)]
    pub attach: bool,
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(
        short = 't',
        long = "timeout",
        visible_alias = "time",
        allow_negative_numbers = true
    )]
    pub timeout: Option<i64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Containers {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(short = 'v', long)]
    pub volumes: bool,
    #[arg(short = 'l', long)]
    pub link: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[arg(long)]
    pub cpus: Option<String>,
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    #[arg(long)]
    pub format: Option<String>,
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_negative_numbers = true)]
    pub last: i64,
    #[arg(short = 'l', long)]
    pub latest: bool,
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(short = 's', long)]
    pub size: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(short = 's', long)]
    pub size: bool,
    #[arg(long = "type")]
    pub kind: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ContainerInspectArgs {
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(short = 's', long)]
    pub size: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImageInspectArgs {
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(long)]
    pub platform: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[arg(long)]
    pub details: bool,
    #[arg(short = 'f', long)]
    pub follow: bool,
    #[arg(long)]
    pub since: Option<String>,
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    #[arg(short = 't', long)]
    pub timestamps: bool,
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(long)]
    pub privileged: bool,
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, value_name = "CONTAINER")]
    pub container_and_cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    #[arg(long = "sig-proxy", default_value = "true", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    pub container: String,
    pub private_port: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(long)]
    pub format: Option<String>,
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(long)]
    pub digests: bool,
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    #[arg(long)]
    pub format: Option<String>,
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(long)]
    pub tree: bool,
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    #[arg(long)]
    pub platform: Option<String>,
    /// file|URL|- [REPOSITORY[:TAG]]
    pub source: String,
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    #[arg(long)]
    pub platform: Option<String>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[arg(short = 'i', long)]
    pub input: Option<String>,
    #[arg(long)]
    pub platform: Option<String>,
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[arg(long)]
    pub format: Option<String>,
    #[arg(short = 'H', long, default_value = "true", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub image: String,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    #[arg(long)]
    pub platform: Option<String>,
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub image: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub image: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[arg(short = 't', long)]
    pub tag: Vec<String>,
    #[arg(short = 'f', long)]
    pub file: Option<String>,
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    #[arg(long)]
    pub pull: bool,
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long)]
    pub label: Vec<String>,
    #[arg(long)]
    pub platform: Option<String>,
    #[arg(long)]
    pub network: Option<String>,
    #[arg(long = "iidfile")]
    pub iidfile: Option<String>,
    #[arg(long, default_value = "true", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub rm: bool,
    #[arg(long = "force-rm")]
    pub force_rm: bool,
    pub context: String,
}

#[derive(Debug, Args)]
pub struct FormatOnly {
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImagePruneArgs {
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(long)]
    pub volumes: bool,
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DfArgs {
    #[arg(long)]
    pub format: Option<String>,
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    #[arg(long)]
    pub format: Option<String>,
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Debug, Args)]
pub struct NetLsArgs {
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    #[arg(long)]
    pub format: Option<String>,
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct NetCreateArgs {
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    #[arg(long)]
    pub subnet: Vec<String>,
    #[arg(long)]
    pub gateway: Vec<String>,
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    #[arg(long)]
    pub internal: bool,
    #[arg(long)]
    pub attachable: bool,
    #[arg(long)]
    pub ipv6: bool,
    #[arg(long)]
    pub label: Vec<String>,
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct NetConnectArgs {
    #[arg(long)]
    pub alias: Vec<String>,
    #[arg(long)]
    pub ip: Option<String>,
    pub network: String,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct NetDisconnectArgs {
    #[arg(short = 'f', long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct NamesForce {
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct FormatNames {
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VolLsArgs {
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    #[arg(long)]
    pub format: Option<String>,
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct VolCreateArgs {
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    #[arg(long)]
    pub label: Vec<String>,
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    #[arg(long = "name")]
    pub name_flag: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct VolPruneArgs {
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}
