//! `berth-registry`: parse arguments, call the library, print.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use berth_registry::config::{AuthMode, TlsConfig};
use berth_registry::gc::{self, GcOptions};
use berth_registry::registry::{Registry, RegistryOptions};
use berth_registry::storage::FsStorage;
use berth_registry::Config;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth-registry",
    version,
    about = "OCI Distribution v1.1 registry server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry API.
    Serve {
        /// Listen address (default 127.0.0.1:5000).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// Storage root (default ./registry-data).
        #[arg(long)]
        root: Option<PathBuf>,
        /// TOML configuration file; flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// htpasswd file (bcrypt) enabling authentication.
        #[arg(long)]
        htpasswd: Option<PathBuf>,
        /// Use Docker's bearer-token flow instead of basic auth.
        #[arg(long)]
        token_auth: bool,
        /// Refuse every write with 405 UNSUPPORTED.
        #[arg(long)]
        read_only: bool,
    },
    /// Collect garbage in a storage root. While a server runs on it, prefer its
    /// `POST /admin/gc`: only that one is fully synchronised with pushes.
    Gc {
        #[arg(long)]
        root: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also delete manifests that no tag reaches.
        #[arg(long)]
        delete_untagged: bool,
        /// Only report.
        #[arg(long)]
        dry_run: bool,
        /// Spare blobs modified less than this many seconds ago.
        #[arg(long, default_value_t = 600)]
        grace_secs: u64,
    },
}

fn load(config: Option<&PathBuf>) -> Result<Config, String> {
    match config {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve {
            addr,
            root,
            config,
            tls_cert,
            tls_key,
            htpasswd,
            token_auth,
            read_only,
        } => {
            let mut cfg = load(config.as_ref())?;
            if let Some(a) = addr {
                cfg.addr = a;
            }
            if let Some(r) = root {
                cfg.root = r;
            }
            if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                cfg.tls = Some(TlsConfig { cert, key });
            }
            if let Some(h) = htpasswd {
                cfg.auth.htpasswd = Some(h);
            }
            if token_auth {
                cfg.auth.mode = AuthMode::Token;
            }
            cfg.read_only |= read_only;
            cfg.validate().map_err(|e| e.to_string())?;
            let listener = tokio::net::TcpListener::bind(cfg.addr)
                .await
                .map_err(|e| format!("binding {}: {e}", cfg.addr))?;
            let scheme = if cfg.tls.is_some() { "https" } else { "http" };
            eprintln!(
                "berth-registry listening on {scheme}://{} (root {})",
                listener.local_addr().map_err(|e| e.to_string())?,
                cfg.root.display()
            );
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            berth_registry::serve_with_shutdown(listener, cfg, shutdown)
                .await
                .map_err(|e| e.to_string())
        }
        Command::Gc {
            root,
            config,
            delete_untagged,
            dry_run,
            grace_secs,
        } => {
            let mut cfg = load(config.as_ref())?;
            if let Some(r) = root {
                cfg.root = r;
            }
            let storage = FsStorage::open(&cfg.root).map_err(|e| e.to_string())?;
            let reg = Registry::new(Arc::new(storage), RegistryOptions::default());
            let opts = GcOptions {
                delete_untagged,
                dry_run,
                grace: Duration::from_secs(grace_secs),
            };
            let report = gc::collect(&reg, &opts).await.map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-registry: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-registry: {e}");
            ExitCode::FAILURE
        }
    }
}
