//! Container commands: run, create, start, stop, restart, kill, pause, unpause, wait, rm,
//! update, ps, logs, exec, attach, top, port, stats.
//!
//! `run` follows the docker CLI's order exactly: create (pull on "No such image" and retry),
//! attach (hijacked) before start so no output is lost, register the wait before start so a
//! container that exits at once is still seen, start, stream, then exit with the container's
//! status. Start failures map to 125/126/127 like docker's `runStartContainerErr`.

use std::time::Duration;

use berth_client::{AttachOptions, Client, LogsOptions};
use serde_json::{json, Map, Value};

use super::{ellipsis, for_each, go_quote, go_time_string, now_secs, out, truncate_id};
use crate::cli::{
    AttachArgs, Containers, ExecArgs, KillArgs, LogsArgs, PortArgs, PsArgs, RmArgs, RunArgs,
    StartArgs, StatsArgs, StopArgs, TopArgs, UpdateArgs,
};
use crate::error::{start_error_status, CliError, CliResult};
use crate::format::humanize::{bytes_size, human_duration, human_size_prec, ram_in_bytes};
use crate::format::template::LABELS_KEY;
use crate::format::{tabwriter, Format};
use crate::opts::{build_create, parse_cpus, parse_restart, CreateRequest};
use crate::stdio::{pump, spawn_resize_loop, RawMode, Streams};

/// Split an image reference into (repository, tag or digest) as `POST /images/create` wants.
pub fn split_reference(r: &str) -> (String, String) {
    if let Some((repo, digest)) = r.split_once('@') {
        return (repo.to_string(), digest.to_string());
    }
    let last_slash = r.rfind('/').map(|i| i + 1).unwrap_or(0);
    match r[last_slash..].rfind(':') {
        Some(i) => (
            r[..last_slash + i].to_string(),
            r[last_slash + i + 1..].to_string(),
        ),
        None => (r.to_string(), "latest".to_string()),
    }
}

/// The reference with `:latest` added when it names no tag or digest (for messages).
pub fn normalize_reference(r: &str) -> String {
    let (repo, tag) = split_reference(r);
    if r.contains('@') {
        format!("{repo}@{tag}")
    } else {
        format!("{repo}:{tag}")
    }
}

/// Pull `image`, printing docker's plain progress lines to stderr (`run`) or stdout (`pull`).
pub async fn pull_image(
    c: &Client,
    image: &str,
    platform: Option<&str>,
    to_stderr: bool,
    quiet: bool,
) -> CliResult {
    let (repo, tag) = split_reference(image);
    // credentials from `berth login`/`docker login`, sent as docker does
    let registry = repo
        .split('/')
        .next()
        .filter(|r| repo.contains('/') && (r.contains('.') || r.contains(':') || *r == "localhost"))
        .unwrap_or("https://index.docker.io/v1/");
    let auth = super::image::registry_auth(registry);
    let mut s = c
        .image_pull(&repo, Some(&tag), platform, Some(&auth))
        .await?;
    while let Some(m) = s.next().await {
        let m = m?;
        if let Some(line) = super::image::progress_line(&m)? {
            if quiet {
                continue;
            }
            if to_stderr {
                eprint!("{line}");
            } else {
                out(&line);
            }
        }
    }
    Ok(())
}

fn is_no_such_image(e: &berth_client::Error) -> bool {
    matches!(e, berth_client::Error::Api { status: 404, message } if message.contains("No such image"))
}

/// Create, pulling the image first when the daemon does not have it (`--pull missing`).
async fn create_container(
    c: &Client,
    req: &CreateRequest,
    pull: &str,
    quiet: bool,
) -> CliResult<String> {
    let path = {
        let mut q = Vec::new();
        if let Some(n) = req.name.as_deref() {
            q.push(("name", n));
        }
        if let Some(p) = req.platform.as_deref() {
            q.push(("platform", p));
        }
        berth_client::with_query("/containers/create", &berth_client::query(&q))
    };
    if pull == "always" {
        pull_image(c, &req.image, req.platform.as_deref(), true, quiet).await?;
    }
    let resp = match c.post_json(&path, Some(&req.body)).await {
        Ok(v) => v,
        Err(e) if is_no_such_image(&e) && pull != "never" => {
            eprintln!(
                "Unable to find image '{}' locally",
                normalize_reference(&req.image)
            );
            pull_image(c, &req.image, req.platform.as_deref(), true, quiet).await?;
            c.post_json(&path, Some(&req.body)).await?
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(ws) = resp.get("Warnings").and_then(Value::as_array) {
        for w in ws.iter().filter_map(Value::as_str) {
            eprintln!("WARNING: {w}");
        }
    }
    Ok(resp
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

fn write_cidfile(path: &Option<String>, id: &str) -> CliResult {
    if let Some(p) = path {
        if std::path::Path::new(p).exists() {
            return Err(CliError::Msg(format!(
                "container ID file found, make sure the other container isn't running or delete {p}"
            )));
        }
        std::fs::write(p, id).map_err(|source| CliError::Io {
            path: p.clone(),
            source,
        })?;
    }
    Ok(())
}

/// `berth create`.
pub async fn create(c: &Client, a: RunArgs) -> CliResult {
    let req = build_create(&a)?;
    let id = create_container(c, &req, a.pull.as_deref().unwrap_or("missing"), a.quiet).await?;
    write_cidfile(&a.cidfile, &id)?;
    println!("{id}");
    Ok(())
}

/// Forward SIGINT/SIGTERM/... to the container while attached without a TTY (`--sig-proxy`).
fn spawn_sig_proxy(c: &Client, id: &str) {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, name) in [
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::hangup(), "SIGHUP"),
        (SignalKind::quit(), "SIGQUIT"),
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::user_defined2(), "SIGUSR2"),
    ] {
        let Ok(mut s) = signal(kind) else { continue };
        let (c, id) = (c.clone(), id.to_string());
        tokio::task::spawn_local(async move {
            while s.recv().await.is_some() {
                let _ = c.container_kill(&id, Some(name)).await;
            }
        });
    }
}

/// `berth run`.
pub async fn run(c: &Client, a: RunArgs) -> CliResult {
    let req = build_create(&a)?;
    let id = create_container(c, &req, a.pull.as_deref().unwrap_or("missing"), a.quiet).await?;
    write_cidfile(&a.cidfile, &id)?;
    if a.detach {
        if let Err(e) = c.container_start(&id).await {
            return Err(e.into());
        }
        println!("{id}");
        return Ok(());
    }
    let stdin = req.body["AttachStdin"].as_bool().unwrap_or(false);
    let stdout = req.body["AttachStdout"].as_bool().unwrap_or(false);
    let stderr = req.body["AttachStderr"].as_bool().unwrap_or(false);
    let attach_opts = AttachOptions {
        stdin,
        stdout,
        stderr,
        logs: false,
        detach_keys: a.detach_keys.clone(),
    };
    // Attach and register the wait at the same time, both before start.
    let condition = if a.rm { "removed" } else { "next-exit" };
    let attach_fut = async {
        if stdin || stdout || stderr {
            c.container_attach(&id, &attach_opts).await.map(Some)
        } else {
            Ok(None)
        }
    };
    let (wait_tx, wait_rx) = tokio::sync::oneshot::channel();
    let (hdr_tx, hdr_rx) = tokio::sync::oneshot::channel::<()>();
    {
        let (c, id) = (c.clone(), id.clone());
        tokio::task::spawn_local(async move {
            let r = c.container_wait_begin(&id, condition).await;
            let _ = hdr_tx.send(());
            let r = match r {
                Ok(resp) => berth_client::wait_exit_code(resp).await,
                Err(e) => Err(e),
            };
            let _ = wait_tx.send(r);
        });
    }
    let hijacked = attach_fut.await?;
    // The daemon answers the wait's headers once it is registered; do not hang on a daemon
    // that only answers at exit.
    let _ = tokio::time::timeout(Duration::from_secs(2), hdr_rx).await;

    let raw = if a.tty && stdin {
        RawMode::enter(0)
    } else {
        None
    };
    if let Err(e) = c.container_start(&id).await {
        drop(raw);
        let status = start_error_status(&e.to_string());
        eprintln!(
            "{}: {}\n\nRun '{} run --help' for more information",
            crate::PROG,
            CliError::from(e).render(),
            crate::PROG
        );
        return Err(CliError::Exit(status));
    }
    if a.tty {
        let (c2, id2) = (c.clone(), id.clone());
        spawn_resize_loop(move |h, w| {
            let (c, id) = (c2.clone(), id2.clone());
            async move {
                let _ = c.container_resize(&id, h, w).await;
            }
        });
    } else if a.sig_proxy {
        spawn_sig_proxy(c, &id);
    }
    if let Some(h) = hijacked {
        let streams = Streams {
            stdin,
            stdout,
            stderr,
            tty: a.tty,
        };
        let r = pump(h, streams).await;
        if let Err(e) = r {
            drop(raw);
            return Err(CliError::Msg(format!(
                "error reading container output: {e}"
            )));
        }
    }
    drop(raw);
    match wait_rx.await {
        Ok(Ok(code)) => Err(if code == 0 {
            return Ok(());
        } else {
            CliError::Exit(code as i32)
        }),
        Ok(Err(e)) => {
            eprintln!("{}: {}", crate::PROG, CliError::from(e).render());
            Err(CliError::Exit(125))
        }
        Err(_) => Err(CliError::Exit(125)),
    }
}

/// `berth start`.
pub async fn start(c: &Client, a: StartArgs) -> CliResult {
    if !(a.attach || a.interactive) {
        return for_each(&a.containers, |n| async move {
            c.container_start(&n).await.map_err(Into::into)
        })
        .await;
    }
    if a.containers.len() > 1 {
        return Err(CliError::Msg(
            "you cannot start and attach multiple containers at once".to_string(),
        ));
    }
    let name = &a.containers[0];
    let info = c.container_inspect(name, false).await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let open_stdin = info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let stdin = a.interactive && open_stdin;
    let h = c
        .container_attach(
            name,
            &AttachOptions {
                stdin,
                stdout: true,
                stderr: true,
                logs: false,
                detach_keys: a.detach_keys.clone(),
            },
        )
        .await?;
    let waiter = {
        let (c, n) = (c.clone(), name.clone());
        tokio::task::spawn_local(async move { c.container_wait(&n, "next-exit").await })
    };
    let raw = if tty && stdin {
        RawMode::enter(0)
    } else {
        None
    };
    c.container_start(name).await?;
    if tty {
        let (c2, n2) = (c.clone(), name.clone());
        spawn_resize_loop(move |h, w| {
            let (c, n) = (c2.clone(), n2.clone());
            async move {
                let _ = c.container_resize(&n, h, w).await;
            }
        });
    }
    let r = pump(
        h,
        Streams {
            stdin,
            stdout: true,
            stderr: true,
            tty,
        },
    )
    .await;
    drop(raw);
    r.map_err(|e| CliError::Msg(format!("error reading container output: {e}")))?;
    match waiter.await {
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(code)) => Err(CliError::Exit(code as i32)),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Ok(()),
    }
}

/// `berth stop` / `berth restart`.
pub async fn stop(c: &Client, a: StopArgs, restart: bool) -> CliResult {
    let (t, s) = (a.timeout, a.signal.clone());
    for_each(&a.containers, |n| {
        let s = s.clone();
        async move {
            if restart {
                c.container_restart(&n, t, s.as_deref()).await?;
            } else {
                c.container_stop(&n, t, s.as_deref()).await?;
            }
            Ok(())
        }
    })
    .await
}

/// `berth kill`.
pub async fn kill(c: &Client, a: KillArgs) -> CliResult {
    let s = a.signal.clone();
    for_each(&a.containers, |n| {
        let s = s.clone();
        async move { Ok(c.container_kill(&n, s.as_deref()).await?) }
    })
    .await
}

/// `berth pause` / `berth unpause`.
pub async fn pause(c: &Client, a: Containers, p: bool) -> CliResult {
    for_each(&a.containers, |n| async move {
        Ok(c.container_pause(&n, p).await?)
    })
    .await
}

/// `berth wait`: print each exit code.
pub async fn wait(c: &Client, a: Containers) -> CliResult {
    let mut errs = Vec::new();
    for n in &a.containers {
        match c.container_wait(n, "not-running").await {
            Ok(code) => println!("{code}"),
            Err(e) => errs.push(CliError::from(e).render()),
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(CliError::Many(errs))
    }
}

/// `berth rm`.
pub async fn rm(c: &Client, a: RmArgs) -> CliResult {
    let (f, v) = (a.force, a.volumes);
    let mut errs = Vec::new();
    for n in &a.containers {
        match c.container_remove(n, f, v).await {
            Ok(()) => println!("{n}"),
            // `rm -f` of a container that is already gone reports it but does not fail.
            Err(e) if f && e.is_not_found() => eprintln!("{}", CliError::from(e).render()),
            Err(e) => errs.push(CliError::from(e).render()),
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(CliError::Many(errs))
    }
}

/// `berth update`.
pub async fn update(c: &Client, a: UpdateArgs) -> CliResult {
    let mut b = Map::new();
    if let Some(v) = &a.cpus {
        b.insert("NanoCpus".into(), json!(parse_cpus(v)?));
    }
    for (k, v) in [
        ("CpuShares", a.cpu_shares),
        ("CpuQuota", a.cpu_quota),
        ("CpuPeriod", a.cpu_period),
        ("PidsLimit", a.pids_limit),
    ] {
        if let Some(v) = v {
            b.insert(k.into(), json!(v));
        }
    }
    for (k, v) in [
        ("CpusetCpus", &a.cpuset_cpus),
        ("CpusetMems", &a.cpuset_mems),
    ] {
        if let Some(v) = v {
            b.insert(k.into(), json!(v));
        }
    }
    for (k, v) in [
        ("Memory", &a.memory),
        ("MemoryReservation", &a.memory_reservation),
    ] {
        if let Some(v) = v {
            b.insert(
                k.into(),
                json!(ram_in_bytes(v).map_err(crate::opts::OptsError::from)?),
            );
        }
    }
    if let Some(v) = &a.memory_swap {
        let n = if v == "-1" {
            -1
        } else {
            ram_in_bytes(v).map_err(crate::opts::OptsError::from)?
        };
        b.insert("MemorySwap".into(), json!(n));
    }
    if let Some(r) = &a.restart {
        b.insert("RestartPolicy".into(), parse_restart(r)?);
    }
    let body = Value::Object(b);
    for_each(&a.containers, |n| {
        let body = body.clone();
        async move {
            let r = c.container_update(&n, &body).await?;
            if let Some(ws) = r.get("Warnings").and_then(Value::as_array) {
                for w in ws.iter().filter_map(Value::as_str) {
                    eprintln!("WARNING: {w}");
                }
            }
            Ok(())
        }
    })
    .await
}

/// docker's `DisplayablePorts`: consecutive ports with the same IP and protocol collapse
/// into ranges; entries are sorted and joined with ", ".
pub fn displayable_ports(ports: &[Value]) -> String {
    #[derive(Clone)]
    struct P {
        ip: String,
        private: u64,
        public: u64,
        proto: String,
    }
    let mut ps: Vec<P> = ports
        .iter()
        .map(|p| P {
            ip: p["IP"].as_str().unwrap_or_default().to_string(),
            private: p["PrivatePort"].as_u64().unwrap_or(0),
            public: p["PublicPort"].as_u64().unwrap_or(0),
            proto: p["Type"].as_str().unwrap_or("tcp").to_string(),
        })
        .collect();
    // Group key order as docker: by (ip, proto) group, ports ascending.
    ps.sort_by(|a, b| {
        (a.public == 0, &a.ip, &a.proto, a.private, a.public).cmp(&(
            b.public == 0,
            &b.ip,
            &b.proto,
            b.private,
            b.public,
        ))
    });
    let fmt_one = |p: &P, first_pub: u64, first_priv: u64| -> String {
        let priv_s = if first_priv == p.private {
            p.private.to_string()
        } else {
            format!("{first_priv}-{}", p.private)
        };
        if p.public == 0 {
            return format!("{priv_s}/{}", p.proto);
        }
        let pub_s = if first_pub == p.public {
            p.public.to_string()
        } else {
            format!("{first_pub}-{}", p.public)
        };
        let ip = if p.ip.contains(':') {
            format!("[{}]", p.ip)
        } else {
            p.ip.clone()
        };
        format!("{ip}:{pub_s}->{priv_s}/{}", p.proto)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < ps.len() {
        let start = i;
        while i + 1 < ps.len() {
            let (a, b) = (&ps[i], &ps[i + 1]);
            let same = a.ip == b.ip && a.proto == b.proto && (a.public == 0) == (b.public == 0);
            let consecutive =
                b.private == a.private + 1 && (a.public == 0 || b.public == a.public + 1);
            if same && consecutive {
                i += 1;
            } else {
                break;
            }
        }
        out.push(fmt_one(&ps[i], ps[start].public, ps[start].private));
        i += 1;
    }
    out.join(", ")
}

/// The object docker's `containerContext` exposes to `--format` for one `ps` row.
pub fn container_row(c: &Value, trunc: bool, now: f64) -> Value {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let id = s(&c["Id"]);
    let mut names: Vec<String> = c["Names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|n| n.trim_start_matches('/').to_string())
                .collect()
        })
        .unwrap_or_default();
    if trunc {
        if let Some(n) = names.iter().find(|n| !n.contains('/')) {
            names = vec![n.clone()];
        }
    }
    let mut image = s(&c["Image"]);
    if trunc && image.starts_with("sha256:") {
        image = truncate_id(&image);
    }
    let command = s(&c["Command"]);
    let command = go_quote(&if trunc {
        ellipsis(&command, 20)
    } else {
        command
    });
    let created = c["Created"].as_i64().unwrap_or(0);
    let labels_map = c["Labels"].as_object().cloned().unwrap_or_default();
    let mut labels: Vec<String> = labels_map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    labels.sort();
    let mounts: Vec<String> = c["Mounts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let n = m["Name"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| m["Source"].as_str().unwrap_or_default());
                    if trunc {
                        ellipsis(n, 15)
                    } else {
                        n.to_string()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let local_volumes = c["Mounts"]
        .as_array()
        .map(|a| a.iter().filter(|m| m["Driver"] == "local").count())
        .unwrap_or(0);
    let mut networks: Vec<String> = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    let size = {
        let rw = human_size_prec(c["SizeRw"].as_i64().unwrap_or(0) as f64, 3);
        let root = c["SizeRootFs"].as_i64().unwrap_or(0);
        if root > 0 {
            format!("{rw} (virtual {})", human_size_prec(root as f64, 3))
        } else {
            rw
        }
    };
    let platform = c["ImageManifestDescriptor"]["platform"].clone();
    let ports = c["Ports"].as_array().cloned().unwrap_or_default();
    json!({
        "ID": if trunc { truncate_id(&id) } else { id },
        "Image": image,
        "Command": command,
        "CreatedAt": go_time_string(created),
        "RunningFor": format!("{} ago", human_duration(now - created as f64)),
        "Ports": displayable_ports(&ports),
        "State": s(&c["State"]),
        "Status": s(&c["Status"]),
        "Size": size,
        "Names": names.join(","),
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": networks.join(","),
        "Platform": platform,
        "LocalVolumes": local_volumes.to_string(),
        LABELS_KEY: Value::Object(labels_map),
    })
}

/// Column titles of `ps`.
pub fn ps_header() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
        "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
        "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
    })
}

/// Default `ps` table.
pub const PS_TABLE: &str =
    "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// `berth ps`.
pub async fn ps(c: &Client, a: PsArgs) -> CliResult {
    let filters = super::filters(&a.filter)?;
    let limit = if a.latest {
        Some(1)
    } else if a.last > 0 {
        Some(a.last)
    } else {
        None
    };
    let all = a.all || limit.is_some();
    let mut table = PS_TABLE.to_string();
    if a.size {
        table.push_str("\t{{.Size}}");
    }
    let user = if a.quiet {
        Some("{{.ID}}".to_string())
    } else {
        a.format.clone()
    };
    let size = a.size || user.as_deref().is_some_and(|f| f.contains(".Size"));
    let list = c.container_list(all, limit, size, &filters).await?;
    let fmt = Format::new(user.as_deref(), &table)?;
    let now = now_secs();
    let rows: Vec<Value> = list
        .iter()
        .map(|x| container_row(x, !a.no_trunc, now))
        .collect();
    out(&fmt.render(&ps_header(), &rows)?);
    Ok(())
}

/// Copy a log or attach body to stdout/stderr.
async fn copy_body(mut resp: berth_client::Response, multiplexed: bool) -> CliResult {
    let mut sink = crate::stdio::OutputSink::new(multiplexed);
    while let Some(chunk) = resp.chunk().await {
        let chunk = chunk?;
        sink.feed(&chunk)
            .map_err(|e| CliError::Msg(format!("error reading logs: {e}")))?;
    }
    Ok(())
}

/// `berth logs`.
pub async fn logs(c: &Client, a: LogsArgs) -> CliResult {
    let resp = c
        .container_logs(
            &a.container,
            &LogsOptions {
                follow: a.follow,
                timestamps: a.timestamps,
                details: a.details,
                tail: Some(a.tail.clone()),
                since: a.since.clone(),
                until: a.until.clone(),
            },
        )
        .await?;
    // A multiplexed content type is sure (berthd, dockerd since API 1.42); anything else
    // may be a TTY's raw stream or an older API's multiplexed one labelled raw, which only
    // the container's TTY setting tells apart.
    let multiplexed = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("multiplexed"));
    let multiplexed = multiplexed || {
        let info = c.container_inspect(&a.container, false).await?;
        !info["Config"]["Tty"].as_bool().unwrap_or(false)
    };
    copy_body(resp, multiplexed).await
}

/// `berth exec`.
pub async fn exec(c: &Client, a: ExecArgs) -> CliResult {
    let container = a.container_and_cmd[0].clone();
    let cmd = a.container_and_cmd[1..].to_vec();
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(crate::opts::parse_env_file(f)?);
    }
    env.extend(a.env.iter().map(|e| crate::opts::env_value(e)));
    let attach_in = a.interactive && !a.detach;
    let mut body = json!({
        "User": a.user.clone().unwrap_or_default(),
        "Privileged": a.privileged,
        "Tty": a.tty,
        "AttachStdin": attach_in,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Env": env,
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "Cmd": cmd,
    });
    if let Some(k) = &a.detach_keys {
        body["DetachKeys"] = json!(k);
    }
    let exec_id = c.exec_create(&container, &body).await?;
    if a.detach {
        c.exec_start_detached(&exec_id).await?;
        return Ok(());
    }
    let h = c.exec_start_attached(&exec_id, a.tty).await?;
    let raw = if a.tty && attach_in {
        RawMode::enter(0)
    } else {
        None
    };
    if a.tty {
        let (c2, e2) = (c.clone(), exec_id.clone());
        spawn_resize_loop(move |h, w| {
            let (c, e) = (c2.clone(), e2.clone());
            async move {
                let _ = c.exec_resize(&e, h, w).await;
            }
        });
    }
    let r = pump(
        h,
        Streams {
            stdin: attach_in,
            stdout: true,
            stderr: true,
            tty: a.tty,
        },
    )
    .await;
    drop(raw);
    r.map_err(|e| CliError::Msg(format!("error reading exec output: {e}")))?;
    // The stream can end a moment before the daemon records the exit status: poll briefly
    // while it still reports the process as running.
    let mut info = c.exec_inspect(&exec_id).await?;
    for _ in 0..100 {
        if !info["Running"].as_bool().unwrap_or(false) && !info["ExitCode"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        info = c.exec_inspect(&exec_id).await?;
    }
    match info["ExitCode"].as_i64().unwrap_or(0) {
        0 => Ok(()),
        code => Err(CliError::Exit(code as i32)),
    }
}

/// `berth attach`.
pub async fn attach(c: &Client, a: AttachArgs) -> CliResult {
    let info = c.container_inspect(&a.container, false).await?;
    if !info["State"]["Running"].as_bool().unwrap_or(false) {
        return Err(CliError::Msg(
            "You cannot attach to a stopped container, start it first".to_string(),
        ));
    }
    if info["State"]["Paused"].as_bool().unwrap_or(false) {
        return Err(CliError::Msg(
            "You cannot attach to a paused container, unpause it first".to_string(),
        ));
    }
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !a.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let h = c
        .container_attach(
            &a.container,
            &AttachOptions {
                stdin,
                stdout: true,
                stderr: true,
                logs: false,
                detach_keys: a.detach_keys.clone(),
            },
        )
        .await?;
    let raw = if tty && stdin {
        RawMode::enter(0)
    } else {
        None
    };
    if tty {
        let (c2, n2) = (c.clone(), a.container.clone());
        spawn_resize_loop(move |h, w| {
            let (c, n) = (c2.clone(), n2.clone());
            async move {
                let _ = c.container_resize(&n, h, w).await;
            }
        });
    } else if a.sig_proxy {
        spawn_sig_proxy(c, &a.container);
    }
    let r = pump(
        h,
        Streams {
            stdin,
            stdout: true,
            stderr: true,
            tty,
        },
    )
    .await;
    drop(raw);
    r.map_err(|e| CliError::Msg(format!("error reading container output: {e}")))?;
    let info = c.container_inspect(&a.container, false).await?;
    if info["State"]["Running"].as_bool().unwrap_or(false) {
        return Ok(());
    }
    match info["State"]["ExitCode"].as_i64().unwrap_or(0) {
        0 => Ok(()),
        code => Err(CliError::Exit(code as i32)),
    }
}

/// `berth top`.
pub async fn top(c: &Client, a: TopArgs) -> CliResult {
    let args = a.ps_args.join(" ");
    let path = if args.is_empty() {
        format!("/containers/{}/top", a.container)
    } else {
        format!(
            "/containers/{}/top?{}",
            a.container,
            berth_client::query(&[("ps_args", &args)])
        )
    };
    let v = c.get_json(&path).await?;
    let mut text = String::new();
    let titles: Vec<String> = v["Titles"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    text.push_str(&titles.join("\t"));
    text.push('\n');
    for p in v["Processes"].as_array().cloned().unwrap_or_default() {
        let row: Vec<String> = p
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    out(&tabwriter::align_with(&text, 20, 3));
    Ok(())
}

/// `berth port`.
pub async fn port(c: &Client, a: PortArgs) -> CliResult {
    let info = c.container_inspect(&a.container, false).await?;
    let ports = info["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let host_of = |b: &Value| {
        let ip = b["HostIp"].as_str().unwrap_or_default();
        let port = b["HostPort"].as_str().unwrap_or_default();
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    if let Some(p) = &a.private_port {
        let key = if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        };
        match ports.get(&key).and_then(Value::as_array) {
            Some(bs) if !bs.is_empty() => {
                for b in bs {
                    println!("{}", host_of(b));
                }
                Ok(())
            }
            _ => Err(CliError::Msg(format!(
                "Error: No public port '{key}' published for {}",
                a.container
            ))),
        }
    } else {
        let mut keys: Vec<&String> = ports.keys().collect();
        keys.sort_by_key(|k| {
            let (n, proto) = k.split_once('/').unwrap_or((k.as_str(), ""));
            (n.parse::<u32>().unwrap_or(0), proto.to_string())
        });
        for k in keys {
            for b in ports[k].as_array().cloned().unwrap_or_default() {
                println!("{k} -> {}", host_of(&b));
            }
        }
        Ok(())
    }
}

fn stats_row(name: &str, id: &str, s: &Value, trunc: bool) -> Value {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let cpu_delta = f(&s["cpu_stats"]["cpu_usage"]["total_usage"])
        - f(&s["precpu_stats"]["cpu_usage"]["total_usage"]);
    let sys_delta =
        f(&s["cpu_stats"]["system_cpu_usage"]) - f(&s["precpu_stats"]["system_cpu_usage"]);
    let online = s["cpu_stats"]["online_cpus"]
        .as_f64()
        .or_else(|| {
            s["cpu_stats"]["cpu_usage"]["percpu_usage"]
                .as_array()
                .map(|a| a.len() as f64)
        })
        .unwrap_or(1.0);
    let cpu = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * online * 100.0
    } else {
        0.0
    };
    // docker subtracts the page cache: total_inactive_file (v1) or inactive_file (v2).
    let stats = &s["memory_stats"]["stats"];
    let cache = stats["total_inactive_file"]
        .as_f64()
        .or_else(|| stats["inactive_file"].as_f64())
        .unwrap_or(0.0);
    let usage = (f(&s["memory_stats"]["usage"]) - cache).max(0.0);
    let limit = f(&s["memory_stats"]["limit"]);
    let mem_pct = if limit > 0.0 {
        usage / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    if let Some(n) = s["networks"].as_object() {
        for v in n.values() {
            rx += f(&v["rx_bytes"]);
            tx += f(&v["tx_bytes"]);
        }
    }
    let (mut br, mut bw) = (0.0, 0.0);
    for e in s["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        match e["op"].as_str().unwrap_or_default().to_lowercase().as_str() {
            "read" => br += f(&e["value"]),
            "write" => bw += f(&e["value"]),
            _ => {}
        }
    }
    let pids = s["pids_stats"]["current"].as_u64().unwrap_or(0);
    json!({
        "Container": name,
        "Name": name.trim_start_matches('/'),
        "ID": if trunc { truncate_id(id) } else { id.to_string() },
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", bytes_size(usage), bytes_size(limit)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": format!("{} / {}", human_size_prec(rx, 3), human_size_prec(tx, 3)),
        "BlockIO": format!("{} / {}", human_size_prec(br, 3), human_size_prec(bw, 3)),
        "PIDs": pids.to_string(),
    })
}

/// `berth stats`.
pub async fn stats(c: &Client, a: StatsArgs) -> CliResult {
    let table = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
    let header = json!({
        "Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    });
    let fmt = Format::new(a.format.as_deref(), table)?;
    let targets: Vec<(String, String)> = if a.containers.is_empty() {
        c.container_list(a.all, None, false, &json!({}))
            .await?
            .iter()
            .map(|x| {
                (
                    x["Id"].as_str().unwrap_or_default().to_string(),
                    x["Names"][0].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    } else {
        a.containers
            .iter()
            .map(|n| (n.clone(), n.clone()))
            .collect()
    };
    loop {
        let mut rows = Vec::new();
        for (id, name) in &targets {
            let s = c
                .get_json(&format!("/containers/{id}/stats?stream=false"))
                .await?;
            let real_id = s["id"].as_str().unwrap_or(id).to_string();
            let real_name = s["name"].as_str().unwrap_or(name).to_string();
            rows.push(stats_row(&real_name, &real_id, &s, !a.no_trunc));
        }
        let text = fmt.render(&header, &rows)?;
        if a.no_stream {
            out(&text);
            return Ok(());
        }
        out(&format!("\x1b[2J\x1b[H{text}"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            split_reference("busybox"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            split_reference("busybox:1.36"),
            ("busybox".into(), "1.36".into())
        );
        assert_eq!(
            split_reference("localhost:5000/a/b"),
            ("localhost:5000/a/b".into(), "latest".into())
        );
        assert_eq!(
            split_reference("localhost:5000/a:v1"),
            ("localhost:5000/a".into(), "v1".into())
        );
        assert_eq!(
            split_reference("a@sha256:abc"),
            ("a".into(), "sha256:abc".into())
        );
        assert_eq!(normalize_reference("busybox"), "busybox:latest");
    }

    #[test]
    fn ports_display() {
        let ports = vec![
            json!({"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}),
            json!({"IP": "0.0.0.0", "PrivatePort": 81, "PublicPort": 8081, "Type": "tcp"}),
            json!({"PrivatePort": 53, "Type": "udp"}),
            json!({"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}),
        ];
        assert_eq!(
            displayable_ports(&ports),
            "0.0.0.0:8080-8081->80-81/tcp, [::]:8080->80/tcp, 53/udp"
        );
        assert_eq!(displayable_ports(&[]), "");
    }

    #[test]
    fn ps_table_golden() {
        let now = 1_700_000_100.0;
        let c = json!({
            "Id": "4f1e9c2b7a3d5e6f00112233445566778899aabbccddeeff0011223344556677",
            "Names": ["/web"],
            "Image": "busybox",
            "Command": "sh -c 'while true; do echo hi; sleep 1; done'",
            "Created": 1_700_000_000,
            "State": "running",
            "Status": "Up 3 seconds",
            "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
            "Labels": {"a": "1"},
        });
        let c2 = json!({
            "Id": "aa00000000000000000000000000000000000000000000000000000000000000",
            "Names": ["/quirky_name"], "Image": "sha256:bbbbbbbbbbbbbbbbbbbbbbbb",
            "Command": "true", "Created": 1_699_000_000, "State": "exited",
            "Status": "Exited (0) 5 seconds ago", "Ports": [],
        });
        let rows = vec![container_row(&c, true, now), container_row(&c2, true, now)];
        let fmt = Format::new(None, PS_TABLE).expect("default format parses");
        let got = fmt.render(&ps_header(), &rows).expect("renders");
        let want = "\
CONTAINER ID   IMAGE          COMMAND                  CREATED              STATUS                     PORTS                  NAMES
4f1e9c2b7a3d   busybox        \"sh -c 'while true; …\"   About a minute ago   Up 3 seconds               0.0.0.0:8080->80/tcp   web
aa0000000000   bbbbbbbbbbbb   \"true\"                   11 days ago          Exited (0) 5 seconds ago                          quirky_name
";
        assert_eq!(got, want);
        let f =
            Format::new(Some("{{.Names}} {{.Label \"a\"}} {{.State}}"), PS_TABLE).expect("parses");
        assert_eq!(
            f.render(&ps_header(), &rows[..1]).expect("renders"),
            "web 1 running\n"
        );
    }

    #[test]
    fn stats_math() {
        let s = json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 200}, "system_cpu_usage": 1000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 500},
            "memory_stats": {"usage": 1048576 + 4096, "limit": 2097152, "stats": {"inactive_file": 4096}},
            "pids_stats": {"current": 3},
        });
        let r = stats_row("/web", "0123456789abcdef", &s, true);
        assert_eq!(r["CPUPerc"], "40.00%");
        assert_eq!(r["MemUsage"], "1MiB / 2MiB");
        assert_eq!(r["MemPerc"], "50.00%");
        assert_eq!(r["PIDs"], "3");
        assert_eq!(r["Name"], "web");
    }
}
