//! `berth compose`: docker compose v2's command tree over berth-compose.
//!
//! This module only parses flags, loads the project and prints; the loader and the runner
//! live in the berth-compose crate. `exec` and `run` reuse the CLI's own `exec` and
//! `start --attach` paths so that TTY, stdin and exit codes behave exactly like
//! `berth exec` / `berth run`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_client::Client;
use berth_compose::runner::{
    self, BuildOptions, Ctr, DownOptions, Hooks, Progress, RunError, Runner, UpOptions,
};
use berth_compose::{config, spec, LoadOptions, Project};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::cli::{ExecArgs, StartArgs};
use crate::error::{CliError, CliResult};

/// Flags before the compose subcommand.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Compose configuration files
    #[arg(short = 'f', long = "file")]
    pub file: Vec<PathBuf>,
    /// Project name
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Specify an alternate working directory
    #[arg(long = "project-directory")]
    pub project_directory: Option<PathBuf>,
    /// Specify an alternate environment file
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Specify a profile to enable
    #[arg(long = "profile")]
    pub profile: Vec<String>,
    /// Set type of progress output (auto, tty, plain, quiet)
    #[arg(long = "progress")]
    pub progress: Option<String>,
    /// Control when to print ANSI control characters ("never"|"always"|"auto")
    #[arg(long = "ansi", default_value = "auto")]
    pub ansi: String,
    #[command(subcommand)]
    pub command: ComposeCmd,
}

#[derive(Debug, Args)]
pub struct Services {
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long)]
    pub build: bool,
    #[arg(long = "no-build")]
    pub no_build: bool,
    #[arg(long)]
    pub wait: bool,
    #[arg(long = "force-recreate")]
    pub force_recreate: bool,
    #[arg(long = "no-recreate")]
    pub no_recreate: bool,
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// SERVICE=NUM
    #[arg(long)]
    pub scale: Vec<String>,
    #[arg(long = "abort-on-container-exit")]
    pub abort_on_container_exit: bool,
    #[arg(long = "exit-code-from")]
    pub exit_code_from: Option<String>,
    #[arg(long = "no-deps")]
    pub no_deps: bool,
    #[arg(long = "no-start")]
    pub no_start: bool,
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
    #[arg(long)]
    pub pull: Option<String>,
    #[arg(long = "quiet-pull")]
    pub quiet_pull: bool,
    /// Maximum duration in seconds to wait for the project to be running|healthy
    #[arg(long = "wait-timeout")]
    pub wait_timeout: Option<u64>,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[arg(short = 'v', long)]
    pub volumes: bool,
    #[arg(long)]
    pub rmi: Option<String>,
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(long)]
    pub services: bool,
    #[arg(long)]
    pub format: Option<String>,
    pub service_names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[arg(short = 'f', long)]
    pub follow: bool,
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    #[arg(long = "no-log-prefix")]
    pub no_log_prefix: bool,
    #[arg(long = "no-color")]
    pub no_color: bool,
    #[arg(short = 't', long)]
    pub timestamps: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[arg(long)]
    pub services: bool,
    #[arg(long)]
    pub volumes: bool,
    #[arg(long)]
    pub networks: bool,
    #[arg(long)]
    pub profiles: bool,
    #[arg(long)]
    pub images: bool,
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(long, default_value = "yaml")]
    pub format: String,
    #[arg(long = "no-consistency")]
    pub no_consistency: bool,
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    pub service_names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ComposeExecArgs {
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(long)]
    pub index: Option<u32>,
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    #[arg(long)]
    pub privileged: bool,
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// SERVICE COMMAND [ARGS...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub service_and_cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ComposeRunArgs {
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long)]
    pub rm: bool,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(long = "no-deps")]
    pub no_deps: bool,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Run command with all service's ports enabled and mapped to the host
    #[arg(long = "service-ports")]
    pub service_ports: bool,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Assign a label to the container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// SERVICE [COMMAND] [ARGS...]
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub service_and_cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TimeoutServices {
    #[arg(short = 't', long)]
    pub timeout: Option<i64>,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[arg(short = 's', long, default_value = "SIGKILL")]
    pub signal: String,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(short = 's', long)]
    pub stop: bool,
    #[arg(short = 'v', long)]
    pub volumes: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    #[arg(long)]
    pub index: Option<u32>,
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    pub service: String,
    pub private_port: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[arg(short = 'a', long)]
    pub all: bool,
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[arg(long)]
    pub json: bool,
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Set build-time variables for services
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    pub services: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ComposeCmd {
    /// Create and start containers
    Up(UpArgs),
    /// Stop and remove containers, networks
    Down(DownArgs),
    /// List containers
    Ps(PsArgs),
    /// View output from containers
    Logs(LogsArgs),
    /// Build or rebuild services
    Build(BuildArgs),
    /// Pull service images
    Pull(Services),
    /// Push service images
    Push(Services),
    /// Parse, resolve and render compose file in canonical format
    Config(ConfigArgs),
    /// Execute a command in a running container
    Exec(ComposeExecArgs),
    /// Run a one-off command on a service
    Run(ComposeRunArgs),
    /// Start services
    Start(Services),
    /// Stop services
    Stop(TimeoutServices),
    /// Restart service containers
    Restart(TimeoutServices),
    /// Force stop service containers
    Kill(KillArgs),
    /// Removes stopped service containers
    Rm(RmArgs),
    /// Pause services
    Pause(Services),
    /// Unpause services
    Unpause(Services),
    /// Display the running processes
    Top(Services),
    /// List images used by the created containers
    Images(Services),
    /// Print the public port for a port binding
    Port(PortArgs),
    /// List running compose projects
    Ls(LsArgs),
    /// Creates containers for a service
    Create(UpArgs),
    /// Receive real time events from containers
    Events(EventsArgs),
    /// Block until containers of all (or specified) services stop
    Wait(Services),
    /// Show the Docker Compose version information
    Version,
}

impl From<RunError> for CliError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Exit(c) => CliError::Exit(c),
            other => CliError::Msg(other.to_string()),
        }
    }
}

fn load(a: &ComposeArgs, services: &[String], no_consistency: bool) -> CliResult<Project> {
    load_project(a, services, no_consistency).map_err(|e| CliError::Msg(e.to_string()))
}

fn load_project(
    a: &ComposeArgs,
    services: &[String],
    no_consistency: bool,
) -> Result<Project, berth_compose::LoadError> {
    let mut o = LoadOptions::from_process();
    o.files = a.file.clone();
    o.project_name = a.project_name.clone();
    o.project_directory = a.project_directory.clone();
    o.env_files = a.env_file.clone();
    o.profiles = a.profile.clone();
    o.services = services.to_vec();
    o.no_consistency = no_consistency;
    let p = berth_compose::load(&o)?;
    for w in &p.warnings {
        eprintln!("WARN[0000] {w}");
    }
    Ok(p)
}

/// Load the project for commands that may also run without compose files (`down`, `ps`
/// with `-p`): then the project is just the name.
fn load_or_name(a: &ComposeArgs) -> CliResult<Project> {
    match load(a, &[], false) {
        Ok(p) => Ok(p),
        Err(e) => match &a.project_name {
            Some(n) => Ok(Project {
                name: n.clone(),
                working_dir: std::env::current_dir().unwrap_or_default(),
                config_files: Vec::new(),
                environment: BTreeMap::new(),
                model: serde_json::Map::new(),
                disabled: Vec::new(),
                warnings: Vec::new(),
            }),
            None => Err(e),
        },
    }
}

/// The CLI's side of the runner: docker's `.dockerignore`-aware context walker and the
/// stored registry credentials.
fn hooks() -> Hooks {
    Hooks {
        context_tar: |dir, dockerfile| {
            crate::commands::image::context_tar(dir, dockerfile).map_err(|e| e.to_string())
        },
        registry_auth: crate::commands::image::registry_auth,
    }
}

fn runner<'a>(c: &'a Client, p: &'a Project, prog: Progress) -> Runner<'a> {
    Runner::new(c, p, prog).with_hooks(hooks())
}

fn progress(a: &ComposeArgs) -> Progress {
    let tty = match a.progress.as_deref() {
        Some("plain") | Some("quiet") => false,
        Some("tty") => true,
        // `--ansi always` colors (and redraws) even when stderr is not a terminal, as
        // docker compose's does.
        _ => match a.ansi.as_str() {
            "always" => true,
            "never" => false,
            _ => crate::stdio::is_tty(2),
        },
    };
    Progress {
        tty,
        quiet: a.progress.as_deref() == Some("quiet"),
    }
}

/// Run one `berth compose` command.
pub async fn run(host: Option<&str>, a: ComposeArgs) -> CliResult {
    match &a.command {
        ComposeCmd::Config(c) => return config_cmd(&a, c),
        ComposeCmd::Version => {
            println!(
                "Docker Compose version v{} (berth {})",
                spec::COMPOSE_VERSION,
                env!("CARGO_PKG_VERSION")
            );
            return Ok(());
        }
        _ => {}
    }
    let client = Client::from_env(host).await?;
    let c = &client;
    let prog = progress(&a);
    match &a.command {
        ComposeCmd::Up(u) | ComposeCmd::Create(u) => {
            let create_only = matches!(a.command, ComposeCmd::Create(_));
            let p = load(&a, &u.services, false)?;
            let r = runner(c, &p, prog);
            prog.title(if create_only { "Creating" } else { "Running" });
            let mut scale = BTreeMap::new();
            for s in &u.scale {
                let (k, v) = s.split_once('=').ok_or_else(|| {
                    CliError::Msg(format!("invalid --scale value {s:?}: expected SERVICE=NUM"))
                })?;
                let n: u32 = v.parse().map_err(|_| {
                    CliError::Msg(format!("invalid --scale value {s:?}: expected SERVICE=NUM"))
                })?;
                scale.insert(k.to_string(), n);
            }
            let o = UpOptions {
                services: u.services.clone(),
                detach: u.detach,
                build: u.build,
                no_build: u.no_build,
                wait: u.wait,
                force_recreate: u.force_recreate,
                no_recreate: u.no_recreate,
                remove_orphans: u.remove_orphans,
                scale,
                abort_on_container_exit: u.abort_on_container_exit,
                exit_code_from: u.exit_code_from.clone(),
                no_deps: u.no_deps,
                no_start: u.no_start || create_only,
                timeout: u.timeout,
                pull: u.pull.clone(),
                wait_timeout: u.wait_timeout.map(std::time::Duration::from_secs),
            };
            match r.up(&o).await? {
                0 => Ok(()),
                code => Err(CliError::Exit(code)),
            }
        }
        ComposeCmd::Down(d) => {
            let p = load_or_name(&a)?;
            let r = runner(c, &p, prog);
            r.down(&DownOptions {
                volumes: d.volumes,
                rmi: d.rmi.clone(),
                remove_orphans: d.remove_orphans,
                timeout: d.timeout,
            })
            .await?;
            Ok(())
        }
        ComposeCmd::Ps(ps) => {
            let p = load_or_name(&a)?;
            let r = runner(c, &p, prog);
            if ps.services {
                for s in p.services().keys() {
                    println!("{s}");
                }
                return Ok(());
            }
            let ctrs = r.ps(&ps.service_names, ps.all).await?;
            print_ps(&ctrs, ps);
            Ok(())
        }
        ComposeCmd::Logs(l) => {
            let p = load_or_name(&a)?;
            let mut prog = prog;
            if l.no_color {
                prog.tty = false;
            }
            let r = runner(c, &p, prog);
            r.logs(&l.services, l.follow, Some(l.tail.clone()), l.no_log_prefix)
                .await?;
            Ok(())
        }
        ComposeCmd::Build(b) => {
            let p = load(&a, &b.services, false)?;
            let mut prog = prog;
            prog.quiet |= b.quiet;
            prog.title("Building");
            let mut r = runner(c, &p, prog);
            r.build = BuildOptions {
                no_cache: b.no_cache,
                pull: b.pull,
                args: b.build_arg.clone(),
            };
            let names: Vec<String> = if b.services.is_empty() {
                p.services().keys().cloned().collect()
            } else {
                b.services.clone()
            };
            for s in names {
                r.build_service(&s).await?;
            }
            Ok(())
        }
        ComposeCmd::Pull(s) => {
            let p = load(&a, &s.services, false)?;
            prog.title("Pulling");
            let r = runner(c, &p, prog);
            for (name, svc) in p.services() {
                if !s.services.is_empty() && !s.services.contains(name) {
                    continue;
                }
                let Some(image) = svc.get("image").and_then(Value::as_str) else {
                    continue;
                };
                r.pull_image(name, image).await?;
            }
            Ok(())
        }
        ComposeCmd::Push(s) => {
            let p = load(&a, &s.services, false)?;
            prog.title("Pushing");
            let r = runner(c, &p, prog);
            for (name, svc) in p.services() {
                if !s.services.is_empty() && !s.services.contains(name) {
                    continue;
                }
                // compose v2 pushes what it builds, under the service's `image` name.
                if svc.get("build").is_none() || svc.get("image").is_none() {
                    continue;
                }
                r.push_image(name, &spec::image_name(&p, name, svc)).await?;
            }
            Ok(())
        }
        ComposeCmd::Exec(e) => {
            let p = load_or_name(&a)?;
            let r = runner(c, &p, prog);
            let service = &e.service_and_cmd[0];
            let ctr = r.find(service, e.index.unwrap_or(1)).await?;
            let tty = !e.no_tty && crate::stdio::is_tty(0) && crate::stdio::is_tty(1);
            let mut container_and_cmd = vec![ctr.id.clone()];
            container_and_cmd.extend(e.service_and_cmd[1..].iter().cloned());
            crate::commands::container::exec(
                c,
                ExecArgs {
                    detach: e.detach,
                    detach_keys: None,
                    env: e.env.clone(),
                    env_file: Vec::new(),
                    interactive: tty,
                    privileged: e.privileged,
                    tty,
                    user: e.user.clone(),
                    workdir: e.workdir.clone(),
                    container_and_cmd,
                },
            )
            .await
        }
        ComposeCmd::Run(ra) => compose_run(c, &a, ra, prog).await,
        ComposeCmd::Start(s) => lifecycle(c, &a, prog, "start", &s.services, None, None).await,
        ComposeCmd::Stop(s) => lifecycle(c, &a, prog, "stop", &s.services, s.timeout, None).await,
        ComposeCmd::Restart(s) => {
            lifecycle(c, &a, prog, "restart", &s.services, s.timeout, None).await
        }
        ComposeCmd::Kill(k) => {
            lifecycle(c, &a, prog, "kill", &k.services, None, Some(&k.signal)).await
        }
        ComposeCmd::Pause(s) => lifecycle(c, &a, prog, "pause", &s.services, None, None).await,
        ComposeCmd::Unpause(s) => lifecycle(c, &a, prog, "unpause", &s.services, None, None).await,
        ComposeCmd::Rm(rm) => {
            let p = load_or_name(&a)?;
            let r = runner(c, &p, prog);
            r.rm(&rm.services, rm.stop, rm.volumes).await?;
            Ok(())
        }
        ComposeCmd::Top(s) => {
            let p = load_or_name(&a)?;
            let r = runner(c, &p, prog);
            for ctr in r.ps(&s.services, false).await? {
                let v = c.get_json(&format!("/containers/{}/top", ctr.id)).await?;
                println!("{}", ctr.name);
                let mut text = String::new();
                if let Some(t) = v["Titles"].as_array() {
                    let t: Vec<&str> = t.iter().filter_map(Value::as_str).collect();
                    text.push_str(&t.join("\t"));
                    text.push('\n');
                }
                for row in v["Processes"].as_array().cloned().unwrap_or_default() {
                    let cells: Vec<String> = row
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|x| x.as_str().unwrap_or("").to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    text.push_str(&cells.join("\t"));
                    text.push('\n');
                }
                println!("{}", crate::format::tabwriter::align(&text));
            }
            Ok(())
        }
        ComposeCmd::Images(s) => {
            let p = load_or_name(&a)?;
            let r = runner(c, &p, prog);
            let mut text = String::from("CONTAINER\tREPOSITORY\tTAG\tIMAGE ID\tSIZE\n");
            for ctr in r.ps(&s.services, true).await? {
                let image = ctr.raw["Image"].as_str().unwrap_or("").to_string();
                let (repo, tag) = runner::split_tag(&image);
                let info = c.image_inspect(&image).await.unwrap_or(Value::Null);
                let id = info["Id"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("sha256:");
                let size = info["Size"].as_f64().unwrap_or(0.0);
                text.push_str(&format!(
                    "{}\t{repo}\t{tag}\t{}\t{}\n",
                    ctr.name,
                    &id[..id.len().min(12)],
                    crate::format::humanize::human_size(size)
                ));
            }
            print!("{}", crate::format::tabwriter::align(&text));
            Ok(())
        }
        ComposeCmd::Port(pa) => {
            let p = load_or_name(&a)?;
            let r = runner(c, &p, prog);
            let ctr = r.find(&pa.service, pa.index.unwrap_or(1)).await?;
            let key = if pa.private_port.contains('/') {
                pa.private_port.clone()
            } else {
                format!("{}/{}", pa.private_port, pa.protocol)
            };
            let v = c.container_inspect(&ctr.id, false).await?;
            let b = &v["NetworkSettings"]["Ports"][&key][0];
            if b.is_null() {
                return Err(CliError::Msg(format!(
                    "no port {key} for container {}",
                    ctr.name
                )));
            }
            let ip = b["HostIp"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("0.0.0.0");
            println!("{ip}:{}", b["HostPort"].as_str().unwrap_or(""));
            Ok(())
        }
        ComposeCmd::Ls(l) => ls(c, l).await,
        ComposeCmd::Events(e) => {
            let p = load_or_name(&a)?;
            let filters =
                json!({"label": [format!("{}={}", spec::PROJECT, p.name)], "type": ["container"]});
            let mut st = c.events(&filters, None, None).await?;
            while let Some(ev) = st.next().await {
                let ev = ev?;
                let attrs = &ev["Actor"]["Attributes"];
                let service = attrs[spec::SERVICE].as_str().unwrap_or("");
                if !e.services.is_empty() && !e.services.iter().any(|s| s == service) {
                    continue;
                }
                let nanos = ev["timeNano"]
                    .as_i64()
                    .unwrap_or_else(|| ev["time"].as_i64().unwrap_or(0) * 1_000_000_000);
                let when = chrono::DateTime::from_timestamp(
                    nanos.div_euclid(1_000_000_000),
                    nanos.rem_euclid(1_000_000_000) as u32,
                )
                .unwrap_or_default();
                let action = ev["Action"].as_str().unwrap_or("");
                let id = ev["Actor"]["ID"].as_str().unwrap_or("");
                if e.json {
                    // compose v2's shape: Go's time.Time (RFC 3339, nanoseconds).
                    println!(
                        "{}",
                        json!({
                            "action": action,
                            "attributes": attrs,
                            "id": id,
                            "service": service,
                            "time": when.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                            "type": "container",
                        })
                    );
                } else {
                    let mut list: Vec<String> = attrs
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                                .collect()
                        })
                        .unwrap_or_default();
                    list.sort();
                    println!(
                        "{} container {action} {id} ({})",
                        when.format("%Y-%m-%d %H:%M:%S%.6f"),
                        list.join(", ")
                    );
                }
            }
            Ok(())
        }
        ComposeCmd::Wait(s) => {
            let p = load_or_name(&a)?;
            let r = runner(c, &p, prog);
            let mut last = 0;
            for ctr in r.ps(&s.services, false).await? {
                last = c.container_wait(&ctr.id, "not-running").await?;
                println!("{last}");
            }
            match last {
                0 => Ok(()),
                n => Err(CliError::Exit(n as i32)),
            }
        }
        ComposeCmd::Config(_) | ComposeCmd::Version => Ok(()),
    }
}

async fn lifecycle(
    c: &Client,
    a: &ComposeArgs,
    prog: Progress,
    verb: &str,
    services: &[String],
    timeout: Option<i64>,
    signal: Option<&str>,
) -> CliResult {
    // Services named on the command line count even when their profile is off.
    let p = match load(a, services, false) {
        Ok(p) => p,
        Err(_) => load_or_name(a)?,
    };
    let r = runner(c, &p, prog);
    r.lifecycle(verb, services, timeout, signal).await?;
    Ok(())
}

fn config_cmd(a: &ComposeArgs, c: &ConfigArgs) -> CliResult {
    let p = match load_project(a, &c.service_names, c.no_consistency) {
        Ok(p) => p,
        // A model whose references dangle (the spec's full example depends on services it
        // never defines) is still worth printing; validation alone (`-q`) fails on it, as do
        // the commands that would act on it.
        Err(e @ berth_compose::LoadError::Reference(_)) if !c.quiet => {
            eprintln!("WARN[0000] {e} (printed without the consistency check)");
            load(a, &c.service_names, true)?
        }
        Err(e) => return Err(CliError::Msg(e.to_string())),
    };
    if c.quiet {
        return Ok(());
    }
    let mut out: String;
    let list =
        |kind: &str| -> String { p.section(kind).keys().map(|k| format!("{k}\n")).collect() };
    if c.services {
        out = p.services().keys().map(|k| format!("{k}\n")).collect();
    } else if c.volumes {
        out = list("volumes");
    } else if c.networks {
        out = list("networks");
    } else if c.images {
        out = p
            .services()
            .iter()
            .map(|(n, s)| format!("{}\n", spec::image_name(&p, n, s)))
            .collect();
    } else if c.profiles {
        let mut profiles: Vec<String> = p
            .services()
            .values()
            .filter_map(|s| s.get("profiles").and_then(Value::as_array))
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        profiles.sort();
        profiles.dedup();
        out = profiles.iter().map(|p| format!("{p}\n")).collect();
    } else if c.format == "json" {
        out = config::to_json(&p).map_err(|e| CliError::Msg(e.to_string()))?;
        out.push('\n');
    } else {
        out = config::to_yaml(&p).map_err(|e| CliError::Msg(e.to_string()))?;
    }
    match &c.output {
        Some(path) => std::fs::write(path, out).map_err(|source| CliError::Io {
            path: path.display().to_string(),
            source,
        }),
        None => {
            print!("{out}");
            Ok(())
        }
    }
}

fn print_ps(ctrs: &[Ctr], a: &PsArgs) {
    if a.quiet {
        for c in ctrs {
            println!("{}", c.id);
        }
        return;
    }
    if a.format.as_deref() == Some("json") {
        for c in ctrs {
            let r = &c.raw;
            println!(
                "{}",
                json!({
                    "ID": c.id, "Name": c.name, "Image": r["Image"], "Command": r["Command"],
                    "Project": r["Labels"][spec::PROJECT], "Service": c.service,
                    "Created": r["Created"], "State": c.state, "Status": r["Status"],
                    "Health": "", "ExitCode": 0, "Publishers": r["Ports"],
                })
            );
        }
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut text = String::from("NAME\tIMAGE\tCOMMAND\tSERVICE\tCREATED\tSTATUS\tPORTS\n");
    for c in ctrs {
        let row = crate::commands::container::container_row(&c.raw, true, now);
        let ports = c.raw["Ports"].as_array().cloned().unwrap_or_default();
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            c.name,
            c.raw["Image"].as_str().unwrap_or(""),
            row["Command"].as_str().unwrap_or(""),
            c.service,
            row["RunningFor"].as_str().unwrap_or(""),
            c.raw["Status"].as_str().unwrap_or(""),
            crate::commands::container::displayable_ports(&ports),
        ));
    }
    print!("{}", crate::format::tabwriter::align_with(&text, 0, 3));
}

async fn ls(c: &Client, l: &LsArgs) -> CliResult {
    let list = c
        .container_list(true, None, false, &json!({"label": [spec::PROJECT]}))
        .await?;
    let mut projects: BTreeMap<String, (BTreeMap<String, usize>, String)> = BTreeMap::new();
    for ct in &list {
        let name = ct["Labels"][spec::PROJECT]
            .as_str()
            .unwrap_or("")
            .to_string();
        let files = ct["Labels"][spec::CONFIG_FILES]
            .as_str()
            .unwrap_or("")
            .to_string();
        let state = ct["State"].as_str().unwrap_or("").to_string();
        let e = projects.entry(name).or_default();
        *e.0.entry(state).or_default() += 1;
        e.1 = files;
    }
    let rows: Vec<(String, String, String)> = projects
        .into_iter()
        .filter(|(_, (st, _))| l.all || st.contains_key("running"))
        .map(|(n, (st, files))| {
            let status: Vec<String> = st.iter().map(|(s, k)| format!("{s}({k})")).collect();
            (n, status.join(", "), files)
        })
        .collect();
    if l.quiet {
        for r in rows {
            println!("{}", r.0);
        }
        return Ok(());
    }
    if l.format == "json" {
        let v: Vec<Value> = rows
            .iter()
            .map(|(n, s, f)| json!({"Name": n, "Status": s, "ConfigFiles": f}))
            .collect();
        println!("{}", Value::Array(v));
        return Ok(());
    }
    let mut text = String::from("NAME\tSTATUS\tCONFIG FILES\n");
    for (n, s, f) in rows {
        text.push_str(&format!("{n}\t{s}\t{f}\n"));
    }
    print!("{}", crate::format::tabwriter::align_with(&text, 0, 3));
    Ok(())
}

async fn compose_run(
    c: &Client,
    a: &ComposeArgs,
    ra: &ComposeRunArgs,
    prog: Progress,
) -> CliResult {
    let service = ra.service_and_cmd[0].clone();
    let p = load(a, std::slice::from_ref(&service), false)?;
    let r = runner(c, &p, prog);
    let mut svc = p
        .service(&service)
        .cloned()
        .ok_or_else(|| CliError::Msg(format!("no such service: {service}")))?;
    // Dependencies are brought up first, detached, like `up -d DEPS`.
    let deps = spec::dependencies(&svc);
    if !ra.no_deps && !deps.is_empty() {
        r.up(&UpOptions {
            services: deps,
            detach: true,
            ..UpOptions::default()
        })
        .await?;
        // `up` waited for the conditions among the dependencies; the one-off's own
        // (`service_healthy` and the like) are waited for here.
        r.wait_dependencies(&service).await?;
    }
    // With --no-deps (or no dependencies) nothing above made the project's networks and
    // volumes; the one-off needs them all the same.
    r.ensure_networks().await?;
    r.ensure_volumes().await?;
    let tty = !ra.no_tty && !ra.detach && crate::stdio::is_tty(0) && crate::stdio::is_tty(1);
    if let Some(m) = svc.as_object_mut() {
        if ra.service_and_cmd.len() > 1 {
            m.insert("command".into(), json!(ra.service_and_cmd[1..].to_vec()));
        }
        if let Some(ep) = &ra.entrypoint {
            let words = berth_compose::normalize::shell_split(ep, "entrypoint")
                .map_err(|e| CliError::Msg(e.to_string()))?;
            m.insert("entrypoint".into(), json!(words));
        }
        // One-off containers publish no ports unless --service-ports; -p adds bindings.
        if !ra.service_ports {
            m.remove("ports");
        }
        if !ra.publish.is_empty() {
            let mut ports = m
                .get("ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for spec in &ra.publish {
                let parsed = berth_compose::normalize::parse_port(spec, "--publish")
                    .map_err(|e| CliError::Msg(e.to_string()))?;
                ports.extend(parsed);
            }
            m.insert("ports".into(), Value::Array(ports));
        }
        if !ra.volume.is_empty() {
            let mut vols = m
                .get("volumes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for spec in &ra.volume {
                let parsed =
                    berth_compose::normalize::parse_volume(spec, &p.working_dir, "--volume")
                        .map_err(|e| CliError::Msg(e.to_string()))?;
                vols.push(parsed);
            }
            m.insert("volumes".into(), Value::Array(vols));
        }
        if !ra.label.is_empty() {
            let labels = m.entry("labels").or_insert_with(|| json!({}));
            for l in &ra.label {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                labels[k] = json!(v);
            }
        }
        m.remove("container_name");
        let env = m.entry("environment").or_insert_with(|| json!({}));
        for e in &ra.env {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            env[k] = json!(v);
        }
        if let Some(u) = &ra.user {
            m.insert("user".into(), json!(u));
        }
        if let Some(w) = &ra.workdir {
            m.insert("working_dir".into(), json!(w));
        }
        m.insert("tty".into(), json!(tty));
        m.insert("stdin_open".into(), json!(!ra.detach));
    }
    let mut body =
        spec::create_body(&p, &service, &svc, 1, true).map_err(|e| CliError::Msg(e.to_string()))?;
    if ra.rm {
        body["HostConfig"]["AutoRemove"] = json!(true);
    }
    if !ra.detach {
        body["AttachStdin"] = json!(true);
        body["AttachStdout"] = json!(true);
        body["AttachStderr"] = json!(true);
        body["StdinOnce"] = json!(true);
    }
    let suffix: String = {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{:012x}", n & 0xffff_ffff_ffff)
    };
    let name = ra
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{service}-run-{suffix}", p.name));
    // compose v2 marks one-off containers with their slug.
    body["Labels"]["com.docker.compose.slug"] = json!(format!("{suffix:0<64}"));
    let id = c.container_create(Some(&name), None, &body).await?;
    r.inject_files(&id, &name, &service, &svc).await?;
    for (net, ep) in spec::endpoints(&p, &service, &svc).into_iter().skip(1) {
        c.network_connect(&net, &json!({"Container": id, "EndpointConfig": ep}))
            .await?;
    }
    if ra.detach {
        c.container_start(&id).await?;
        println!("{name}");
        return Ok(());
    }
    crate::commands::container::start(
        c,
        StartArgs {
            attach: true,
            interactive: crate::stdio::is_tty(0) || !tty,
            detach_keys: None,
            containers: vec![id],
        },
    )
    .await
}
