//! berthd: parse dockerd-style flags and daemon.json, open the engine, serve the API.

use anyhow::{bail, Context, Result};
use berth_engine::{Engine, EngineConfig};
use clap::Parser;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "berthd", version, about = "berth container engine daemon")]
struct Args {
    /// Daemon socket(s) to connect to (unix:///path, tcp://127.0.0.1:port)
    #[arg(short = 'H', long = "host")]
    hosts: Vec<String>,
    /// Root directory of persistent state
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Root directory for execution state files
    #[arg(long)]
    exec_root: Option<PathBuf>,
    /// Path to use for the daemon PID file
    #[arg(short = 'p', long)]
    pidfile: Option<PathBuf>,
    /// Daemon configuration file
    #[arg(long, default_value = "/etc/berth/daemon.json")]
    config_file: PathBuf,
    /// Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")
    #[arg(short = 'l', long)]
    log_level: Option<String>,
    /// Enable debug mode
    #[arg(short = 'D', long)]
    debug: bool,
    /// Default OCI runtime for containers
    #[arg(long)]
    default_runtime: Option<String>,
    /// Parent cgroup for all containers
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// Attach containers to a network bridge (the default bridge's Linux name)
    #[arg(short = 'b', long)]
    bridge: Option<String>,
    /// Specify the default bridge's IP address with prefix (e.g. 10.99.0.1/24)
    #[arg(long)]
    bip: Option<String>,
}

/// The daemon.json keys that apply to berth (same names as dockerd's). Keys dockerd knows
/// that berth does not act on yet are accepted (so one daemon.json serves both) but unread.
#[allow(dead_code)]
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct DaemonJson {
    hosts: Option<Vec<String>>,
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    /// berth's own key: false keeps the exec root on whatever file system it is on.
    exec_root_tmpfs: Option<bool>,
    pidfile: Option<PathBuf>,
    log_level: Option<String>,
    debug: Option<bool>,
    default_runtime: Option<String>,
    runtimes: Option<BTreeMap<String, RuntimeEntry>>,
    log_driver: Option<String>,
    log_opts: Option<BTreeMap<String, String>>,
    default_ulimits: Option<BTreeMap<String, UlimitEntry>>,
    default_shm_size: Option<String>,
    dns: Option<Vec<String>>,
    cgroup_parent: Option<String>,
    live_restore: Option<bool>,
    storage_driver: Option<String>,
    // Networking keys are read by the networking layer; accepted here so one file serves both.
    bridge: Option<String>,
    bip: Option<String>,
    default_address_pools: Option<serde_json::Value>,
    iptables: Option<bool>,
    ip_forward: Option<bool>,
    userland_proxy: Option<bool>,
    insecure_registries: Option<Vec<String>>,
    registry_mirrors: Option<Vec<String>>,
    max_concurrent_downloads: Option<i64>,
    max_concurrent_uploads: Option<i64>,
    features: Option<BTreeMap<String, bool>>,
}

#[derive(Deserialize, Debug)]
struct RuntimeEntry {
    path: String,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct UlimitEntry {
    name: String,
    soft: i64,
    hard: i64,
}

fn load_daemon_json(path: &PathBuf, explicit: bool) -> Result<DaemonJson> {
    match std::fs::read_to_string(path) {
        Ok(s) => serde_json::from_str(&s).with_context(|| {
            format!(
                "unable to configure the daemon with file {}",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Ok(DaemonJson::default())
        }
        Err(e) => Err(e).with_context(|| format!("read config file {}", path.display())),
    }
}

fn write_pidfile(path: &PathBuf) -> Result<()> {
    if let Ok(old) = std::fs::read_to_string(path) {
        if let Ok(pid) = old.trim().parse::<i32>() {
            if pid != std::process::id() as i32
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim() == "berthd")
                    .unwrap_or(false)
            {
                bail!(
                    "pid file found, ensure berthd is not running or delete {}",
                    path.display()
                );
            }
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, format!("{}", std::process::id()))
        .with_context(|| format!("write pid file {}", path.display()))
}

fn parse_size(s: &str) -> Option<i64> {
    let l = s.to_lowercase();
    let (n, m) = match l.chars().last()? {
        'k' => (&l[..l.len() - 1], 1024),
        'm' => (&l[..l.len() - 1], 1024 * 1024),
        'g' => (&l[..l.len() - 1], 1024 * 1024 * 1024),
        _ => (l.as_str(), 1),
    };
    n.parse::<i64>().ok().map(|v| v * m)
}

/// berth's nft table for a default bridge: `berth` for `berth0`, else one per bridge so
/// daemons with their own bridges (tests, side-by-side installs) never share rules.
fn nft_table_for(bridge: &str) -> String {
    if bridge == "berth0" {
        return "berth".into();
    }
    let safe: String = bridge
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("berth_{safe}")
}

/// daemon.json `default-address-pools`: `[{"base": "10.10.0.0/16", "size": 24}, ...]`.
fn parse_pools(v: &serde_json::Value) -> Result<Vec<(String, u8)>> {
    #[derive(Deserialize)]
    struct PoolEntry {
        base: String,
        size: u8,
    }
    let pools: Vec<PoolEntry> = serde_json::from_value(v.clone())
        .context("invalid default-address-pools: want [{\"base\": CIDR, \"size\": N}]")?;
    Ok(pools.into_iter().map(|p| (p.base, p.size)).collect())
}

fn main() -> Result<()> {
    limit_malloc_arenas();
    let args = Args::parse();
    let explicit_cfg = std::env::args().any(|a| a.starts_with("--config-file"));
    let dj = load_daemon_json(&args.config_file, explicit_cfg)?;
    let debug = args.debug || dj.debug.unwrap_or(false);
    let level = args
        .log_level
        .clone()
        .or(dj.log_level.clone())
        .unwrap_or_else(|| if debug { "debug".into() } else { "info".into() });
    let level = if level == "fatal" {
        "error".to_string()
    } else {
        level
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&level))
        .with_writer(std::io::stderr)
        .init();

    let data_root = args
        .data_root
        .clone()
        .or(dj.data_root.clone())
        .unwrap_or_else(|| "/var/lib/berth".into());
    let exec_root = args
        .exec_root
        .clone()
        .or(dj.exec_root.clone())
        .unwrap_or_else(|| "/run/berth".into());
    let pidfile = args
        .pidfile
        .clone()
        .or(dj.pidfile.clone())
        .unwrap_or_else(|| exec_root.join("berthd.pid"));
    let mut hosts = if args.hosts.is_empty() {
        dj.hosts.clone().unwrap_or_default()
    } else {
        args.hosts.clone()
    };
    if hosts.is_empty() {
        hosts.push("unix:///run/berth.sock".into());
    }

    if let Err(e) = berth_runtime::cgroups::check_runtime_compat() {
        bail!("{e}");
    }

    if dj.exec_root_tmpfs.unwrap_or(true) {
        // Before anything is written there (see berth_runtime::execroot for why).
        match berth_runtime::execroot::prepare(&exec_root)? {
            berth_runtime::execroot::Outcome::Mounted => {
                tracing::info!(path = %exec_root.display(), "exec root: mounted a tmpfs")
            }
            berth_runtime::execroot::Outcome::OnDisk(why) => {
                tracing::info!(path = %exec_root.display(), "exec root stays on disk: {why}")
            }
            berth_runtime::execroot::Outcome::InMemory => {}
        }
    }
    let mut cfg = EngineConfig::new(data_root, exec_root);
    cfg.debug = debug;
    if let Some(rt) = dj.runtimes {
        cfg.runtimes = rt.into_iter().map(|(k, v)| (k, v.path)).collect();
    }
    if let Some(r) = args.default_runtime.or(dj.default_runtime) {
        cfg.runtime = cfg.runtimes.get(&r).cloned().unwrap_or(r);
    }
    if let Some(p) = args.cgroup_parent.or(dj.cgroup_parent) {
        cfg.cgroup_parent = p.trim_matches('/').to_string();
    }
    if let Some(o) = dj.log_opts {
        cfg.log_opts = o;
    }
    if let Some(u) = dj.default_ulimits {
        cfg.default_ulimits = u
            .into_values()
            .map(|u| berth_engine::models::Ulimit {
                name: u.name,
                soft: u.soft,
                hard: u.hard,
            })
            .collect();
    }
    if let Some(s) = dj.default_shm_size {
        cfg.default_shm_size =
            parse_size(&s).with_context(|| format!("invalid default-shm-size {s:?}"))?;
    }
    if let Some(b) = args.bridge.or(dj.bridge) {
        if b.is_empty() || b.len() > 15 {
            bail!("invalid bridge name {b:?}: 1 to 15 characters");
        }
        cfg.nft_table = nft_table_for(&b);
        cfg.bridge = b;
    }
    cfg.bip = args.bip.or(dj.bip);
    if let Some(i) = dj.iptables {
        cfg.iptables = i;
    }
    if let Some(pools) = dj.default_address_pools {
        cfg.default_address_pools = parse_pools(&pools)?;
    }
    if let Some(d) = dj.dns {
        cfg.dns = d;
    }
    if let Some(r) = dj.insecure_registries {
        cfg.insecure_registries = r;
    }
    if let Some(m) = dj.registry_mirrors {
        cfg.registry_mirrors = m;
    }
    // dockerd refuses negative values and reads 0 as its default
    if let Some(n) = dj.max_concurrent_downloads {
        cfg.max_concurrent_downloads =
            usize::try_from(n).with_context(|| format!("invalid max concurrent downloads: {n}"))?;
    }
    if let Some(n) = dj.max_concurrent_uploads {
        cfg.max_concurrent_uploads =
            usize::try_from(n).with_context(|| format!("invalid max concurrent uploads: {n}"))?;
    }
    write_pidfile(&pidfile)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()?;
    let res = rt.block_on(run(cfg, hosts, pidfile.clone()));
    let _ = std::fs::remove_file(&pidfile);
    res
}

/// Caps glibc's malloc at two arenas unless `MALLOC_ARENA_MAX` says otherwise.
///
/// glibc gives each thread that allocates an arena of its own, up to eight per core, and
/// keeps their pages. The blocking pool's short-lived threads had left berthd with nine
/// arenas after a few container starts, 0.9 MiB more resident than with two (measured
/// idle after ten `run --rm`). Two match the two runtime workers; blocking threads share
/// them, and on this daemon's short critical sections that costs no measurable time.
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable; it runs before any other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
}

async fn run(cfg: EngineConfig, hosts: Vec<String>, _pidfile: PathBuf) -> Result<()> {
    let engine = Engine::open(cfg).await.context("open engine")?;
    let mut sockets = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for h in &hosts {
        if let Some(path) = h.strip_prefix("unix://") {
            let path = PathBuf::from(path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let _ = std::fs::remove_file(&path);
            let l = tokio::net::UnixListener::bind(&path)
                .with_context(|| format!("listen on {}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
            tracing::info!("API listen on {}", path.display());
            sockets.push(path);
            tasks.spawn(berth_api::serve_unix(l, engine.clone()));
        } else if let Some(addr) = h.strip_prefix("tcp://") {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen on tcp://{addr}"))?;
            tracing::info!("API listen on tcp://{addr}");
            tasks.spawn(berth_api::serve_tcp(l, engine.clone()));
        } else {
            bail!("invalid host {h:?}: use unix:///path or tcp://host:port");
        }
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down, containers keep running"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down, containers keep running"),
        r = tasks.join_next() => {
            if let Some(Ok(Err(e))) = r { tracing::error!("listener failed: {e}"); }
        }
    }
    // With no container left running, the bridges and the firewall table go too.
    engine.shutdown_network().await;
    for s in sockets {
        let _ = std::fs::remove_file(s);
    }
    Ok(())
}
