//! The runner: compose commands over the Engine API.
//!
//! State lives in the daemon only, as with docker compose: a project's containers,
//! networks and volumes are found again by their `com.docker.compose.project` label, a
//! container's service and replica by `.service` and `.container-number`. `up` converges:
//! networks and volumes first, then per service (in dependency order) images, then
//! containers (kept when their `config-hash` label matches, recreated when it does not,
//! created or removed to reach the replica count), then starts them in dependency order,
//! waiting for each dependency's condition (`service_started`, `service_healthy` by polling
//! the container's `State.Health`, `service_completed_successfully` by waiting for its
//! exit). Stops go in reverse dependency order.
//!
//! Progress goes to stderr through [`crate::progress`]: compose's plain lines, or its
//! redrawn `[+] Running n/m` board on a terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use berth_client::{Client, LogsOptions};
use serde_json::{json, Value};

use crate::loader::Project;
use crate::spec::{self, SpecError};

/// Runner failures.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{}", render_client(.0))]
    Client(#[from] berth_client::Error),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{0}")]
    Msg(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Exit with this status and print nothing more.
    #[error("exit status {0}")]
    Exit(i32),
}

fn render_client(e: &berth_client::Error) -> String {
    match e {
        berth_client::Error::Api { .. } => format!("Error response from daemon: {e}"),
        other => other.to_string(),
    }
}

pub type Result<T> = std::result::Result<T, RunError>;

pub use crate::progress::Progress;

/// Options of `up` (and `create`, with `no_start`).
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub services: Vec<String>,
    pub detach: bool,
    pub build: bool,
    pub no_build: bool,
    pub wait: bool,
    pub force_recreate: bool,
    pub no_recreate: bool,
    pub remove_orphans: bool,
    pub scale: BTreeMap<String, u32>,
    pub abort_on_container_exit: bool,
    pub exit_code_from: Option<String>,
    pub no_deps: bool,
    pub no_start: bool,
    pub timeout: Option<i64>,
    pub pull: Option<String>,
    /// `--wait-timeout`: give up waiting for running/healthy after this long.
    pub wait_timeout: Option<Duration>,
}

/// Options of `build` (and of the builds `up --build` runs).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub no_cache: bool,
    /// Always try to pull newer base images.
    pub pull: bool,
    /// `--build-arg KEY=VAL` (or `KEY` from the environment): over the file's `args`.
    pub args: Vec<String>,
}

/// What the runner needs from its host program: the CLI supplies docker's
/// `.dockerignore`-aware context tar and the stored registry credentials, so the compose
/// crate neither duplicates the CLI's context walker nor reads ~/.docker itself.
#[derive(Debug, Clone, Copy)]
pub struct Hooks {
    /// Tar of build context `dir` whose Dockerfile is `dockerfile` (relative).
    pub context_tar:
        fn(dir: &std::path::Path, dockerfile: &str) -> std::result::Result<Vec<u8>, String>,
    /// The `X-Registry-Auth` header value for registry `server`.
    pub registry_auth: fn(server: &str) -> String,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            context_tar: plain_context_tar,
            registry_auth: |_| "e30=".to_string(),
        }
    }
}

/// The whole directory as a tar, nothing left out (for hosts without a better walker).
pub fn plain_context_tar(
    dir: &std::path::Path,
    _dockerfile: &str,
) -> std::result::Result<Vec<u8>, String> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir)
        .and_then(|()| tar.into_inner())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// The registry part of an image reference, docker's way (`https://index.docker.io/v1/`
/// for Docker Hub).
pub fn registry_of(image: &str) -> String {
    image
        .split('/')
        .next()
        .filter(|r| {
            image.contains('/') && (r.contains('.') || r.contains(':') || *r == "localhost")
        })
        .unwrap_or("https://index.docker.io/v1/")
        .to_string()
}

/// Options of `down`.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    pub volumes: bool,
    pub rmi: Option<String>,
    pub remove_orphans: bool,
    pub timeout: Option<i64>,
}

/// One compose project bound to a daemon connection.
pub struct Runner<'a> {
    pub client: &'a Client,
    pub project: &'a Project,
    pub progress: Progress,
    pub hooks: Hooks,
    /// Build options for builds that `up` triggers.
    pub build: BuildOptions,
}

/// A container of the project as `GET /containers/json` lists it.
#[derive(Debug, Clone)]
pub struct Ctr {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub state: String,
    pub hash: String,
    pub oneoff: bool,
    pub raw: Value,
}

impl Ctr {
    fn from(v: &Value) -> Ctr {
        let label = |k: &str| v["Labels"][k].as_str().unwrap_or("").to_string();
        Ctr {
            id: v["Id"].as_str().unwrap_or("").to_string(),
            name: v["Names"][0]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('/')
                .to_string(),
            service: label(spec::SERVICE),
            number: label(spec::NUMBER).parse().unwrap_or(0),
            state: v["State"].as_str().unwrap_or("").to_string(),
            hash: label(spec::CONFIG_HASH),
            oneoff: label(spec::ONEOFF) == "True",
            raw: v.clone(),
        }
    }

    /// The image ID the container was created from (`com.docker.compose.image`).
    pub fn image_id(&self) -> &str {
        self.raw["Labels"][spec::IMAGE].as_str().unwrap_or("")
    }

    /// `web-1`, compose's log prefix.
    pub fn short(&self) -> String {
        format!("{}-{}", self.service, self.number)
    }
}

impl<'a> Runner<'a> {
    pub fn new(client: &'a Client, project: &'a Project, progress: Progress) -> Self {
        Runner {
            client,
            project,
            progress,
            hooks: Hooks::default(),
            build: BuildOptions::default(),
        }
    }

    /// The same runner with the host program's hooks.
    pub fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// The project's containers (one-off `run` containers only when `oneoff`).
    pub async fn containers(&self, all: bool, oneoff: bool) -> Result<Vec<Ctr>> {
        let filters = json!({"label": [format!("{}={}", spec::PROJECT, self.project.name)]});
        let list = self
            .client
            .container_list(all, None, false, &filters)
            .await?;
        let mut out: Vec<Ctr> = list
            .iter()
            .map(Ctr::from)
            .filter(|c| oneoff || !c.oneoff)
            .collect();
        out.sort_by(|a, b| a.service.cmp(&b.service).then(a.number.cmp(&b.number)));
        Ok(out)
    }

    /// Containers of `services` (all services when empty).
    pub async fn service_containers(&self, services: &[String], all: bool) -> Result<Vec<Ctr>> {
        self.check_services(services)?;
        Ok(self
            .containers(all, false)
            .await?
            .into_iter()
            .filter(|c| services.is_empty() || services.contains(&c.service))
            .collect())
    }

    fn check_services(&self, services: &[String]) -> Result<()> {
        for s in services {
            if self.project.service(s).is_none() {
                return Err(RunError::Msg(format!("no such service: {s}")));
            }
        }
        Ok(())
    }

    /// `services` plus their dependencies (unless `no_deps`), in start order.
    pub fn start_order(&self, services: &[String], no_deps: bool) -> Result<Vec<String>> {
        self.check_services(services)?;
        let all: Vec<String> = self.project.services().keys().cloned().collect();
        let wanted: BTreeSet<String> = if services.is_empty() {
            all.iter().cloned().collect()
        } else if no_deps {
            services.iter().cloned().collect()
        } else {
            let mut set = BTreeSet::new();
            let mut stack: Vec<String> = services.to_vec();
            while let Some(s) = stack.pop() {
                if set.insert(s.clone()) {
                    if let Some(svc) = self.project.service(&s) {
                        stack.extend(
                            spec::dependencies(svc)
                                .into_iter()
                                .filter(|d| self.project.service(d).is_some()),
                        );
                    }
                }
            }
            set
        };
        let mut order = Vec::new();
        let mut state: BTreeMap<String, u8> = BTreeMap::new();
        // `path` is the chain being visited, so a cycle can be named the way compose-go
        // names it: `dependency cycle detected: a -> b -> a`.
        fn visit(
            r: &Runner<'_>,
            s: &str,
            wanted: &BTreeSet<String>,
            state: &mut BTreeMap<String, u8>,
            order: &mut Vec<String>,
            path: &mut Vec<String>,
        ) -> Result<()> {
            match state.get(s) {
                Some(2) => return Ok(()),
                Some(1) => {
                    let from = path.iter().position(|p| p == s).unwrap_or(0);
                    let mut cycle = path[from..].to_vec();
                    cycle.push(s.to_string());
                    return Err(RunError::Msg(format!(
                        "dependency cycle detected: {}",
                        cycle.join(" -> ")
                    )));
                }
                _ => {}
            }
            state.insert(s.to_string(), 1);
            path.push(s.to_string());
            if let Some(svc) = r.project.service(s) {
                for d in spec::dependencies(svc) {
                    if wanted.contains(&d) {
                        visit(r, &d, wanted, state, order, path)?;
                    }
                }
            }
            path.pop();
            state.insert(s.to_string(), 2);
            order.push(s.to_string());
            Ok(())
        }
        for s in &wanted {
            visit(self, s, &wanted, &mut state, &mut order, &mut Vec::new())?;
        }
        Ok(order)
    }

    /// Create the project's networks that do not exist yet (external ones must exist).
    pub async fn ensure_networks(&self) -> Result<()> {
        for (key, def) in self.project.section("networks") {
            let name = spec::network_name(self.project, &key);
            let external = def
                .get("external")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            match self.client.network_inspect(&name).await {
                Ok(_) => continue,
                Err(e) if e.is_not_found() => {
                    if external {
                        return Err(RunError::Msg(format!(
                            "network {name} declared as external, but could not be found"
                        )));
                    }
                }
                Err(e) => return Err(e.into()),
            }
            self.progress.event("Network", &name, "Creating");
            self.client
                .network_create(&spec::network_body(self.project, &key, &def))
                .await?;
            self.progress.event("Network", &name, "Created");
        }
        Ok(())
    }

    /// Create the project's volumes that do not exist yet (external ones must exist).
    pub async fn ensure_volumes(&self) -> Result<()> {
        for (key, def) in self.project.section("volumes") {
            let name = spec::volume_name(self.project, &key);
            let external = def
                .get("external")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            match self.client.volume_inspect(&name).await {
                Ok(_) => continue,
                Err(e) if e.is_not_found() => {
                    if external {
                        return Err(RunError::Msg(format!(
                            "external volume \"{name}\" not found"
                        )));
                    }
                }
                Err(e) => return Err(e.into()),
            }
            self.progress
                .event("Volume", &format!("\"{name}\""), "Creating");
            self.client
                .volume_create(&spec::volume_body(self.project, &key, &def))
                .await?;
            self.progress
                .event("Volume", &format!("\"{name}\""), "Created");
        }
        Ok(())
    }

    /// Make sure the service's image exists, following the pull policy (`--pull` over the
    /// service's `pull_policy`, default `missing`): build it (`build:`) or pull it. Returns
    /// the image ID, which goes into the `com.docker.compose.image` label so that a rebuilt
    /// or newly pulled image recreates the containers (compose v2 compares it the same way).
    async fn ensure_image(
        &self,
        name: &str,
        force_build: bool,
        no_build: bool,
        pull: Option<&str>,
    ) -> Result<String> {
        let svc = self.project.service(name).cloned().unwrap_or_default();
        let image = spec::image_name(self.project, name, &svc);
        let policy = pull
            .or_else(|| svc.get("pull_policy").and_then(Value::as_str))
            .unwrap_or("missing")
            .to_string();
        let present = self.image_id(&image).await?.is_some();
        let can_build = svc.get("build").is_some() && !no_build;
        let explicit_image = svc.get("image").is_some();
        match pull_action(&policy, present, can_build, explicit_image, force_build)? {
            ImageAction::Build => self.build_service(name).await?,
            ImageAction::Pull => {
                let pulled = self.pull_image(name, &image).await;
                match pulled {
                    Ok(()) => {}
                    // `pull_policy: always` with a build section falls back to building.
                    Err(_) if can_build => self.build_service(name).await?,
                    Err(e) => return Err(e),
                }
            }
            ImageAction::Keep => {}
            ImageAction::Missing => {
                return Err(RunError::Msg(format!(
                    "image {image:?} of service {name:?} is not present and the pull policy is {policy:?}"
                )))
            }
        }
        self.image_id(&image)
            .await?
            .ok_or_else(|| RunError::Msg(format!("no such image: {image} (service {name:?})")))
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>> {
        match self.client.image_inspect(image).await {
            Ok(v) => Ok(Some(v["Id"].as_str().unwrap_or("").to_string())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Pull a service's image with the stored credentials of its registry.
    pub async fn pull_image(&self, service: &str, image: &str) -> Result<()> {
        self.progress.event("", service, "Pulling");
        let (repo, tag) = split_tag(image);
        let auth = (self.hooks.registry_auth)(&registry_of(&repo));
        let mut s = self
            .client
            .image_pull(&repo, Some(&tag), None, Some(&auth))
            .await?;
        while let Some(m) = s.next().await {
            let m = m?;
            if let Some(e) = m.get("error").and_then(Value::as_str) {
                self.progress.event("", service, "Error");
                return Err(RunError::Msg(format!("{service} Error {e}")));
            }
        }
        self.progress.event("", service, "Pulled");
        Ok(())
    }

    /// Push a service's image with the stored credentials of its registry
    /// (`X-Registry-Auth`, as `docker push` sends them).
    pub async fn push_image(&self, service: &str, image: &str) -> Result<()> {
        let (repo, tag) = split_tag(image);
        let auth = (self.hooks.registry_auth)(&registry_of(&repo));
        self.progress.event("", service, "Pushing");
        let path = berth_client::with_query(
            &format!("/images/{repo}/push"),
            &berth_client::query(&[("tag", tag.as_str())]),
        );
        let resp = self
            .client
            .request(
                http::Method::POST,
                &path,
                berth_client::empty_body(),
                &[("x-registry-auth", &auth)],
            )
            .await?;
        let mut st = resp.json_stream();
        while let Some(m) = st.next().await {
            let m = m?;
            if let Some(e) = m.get("error").and_then(Value::as_str) {
                self.progress.event("", service, "Error");
                return Err(RunError::Msg(format!("{service} Error {e}")));
            }
        }
        self.progress.event("", service, "Pushed");
        Ok(())
    }

    /// `POST /build` with the service's context as a tar stream (`.dockerignore` applied by
    /// the host's context walker) and the runner's [`BuildOptions`].
    pub async fn build_service(&self, name: &str) -> Result<()> {
        let svc = self.project.service(name).cloned().unwrap_or_default();
        let Some(build) = svc.get("build") else {
            return Ok(());
        };
        let image = spec::image_name(self.project, name, &svc);
        let ctx = build["context"].as_str().unwrap_or(".").to_string();
        self.progress.event("Service", name, "Building");
        let mut dockerfile = build["dockerfile"]
            .as_str()
            .unwrap_or("Dockerfile")
            .to_string();
        // An absolute `dockerfile` inside the context is sent relative to it.
        if let Ok(rel) = std::path::Path::new(&dockerfile).strip_prefix(&ctx) {
            dockerfile = rel.display().to_string();
        }
        let mut data = (self.hooks.context_tar)(std::path::Path::new(&ctx), &dockerfile)
            .map_err(RunError::Msg)?;
        if let Some(inline) = build.get("dockerfile_inline").and_then(Value::as_str) {
            dockerfile = ".berth-compose.Dockerfile".to_string();
            data = with_file(&data, &dockerfile, inline.as_bytes()).map_err(|source| {
                RunError::Io {
                    path: ctx.clone(),
                    source,
                }
            })?;
        }
        let q = build_query(self.project, name, &svc, &image, &dockerfile, &self.build);
        let qs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let path = berth_client::with_query("/build", &berth_client::query(&qs));
        let resp = self
            .client
            .request(
                http::Method::POST,
                &path,
                berth_client::bytes_body(data),
                &[("content-type", "application/x-tar")],
            )
            .await?;
        let mut s = resp.json_stream();
        let mut log = String::new();
        while let Some(m) = s.next().await {
            let m = m?;
            if let Some(line) = m.get("stream").and_then(Value::as_str) {
                if self.progress.tty {
                    // The board is redrawn in place: keep the build log for errors.
                    log.push_str(line);
                } else if !self.progress.quiet {
                    let _ = write!(std::io::stderr(), "{line}");
                }
            }
            if let Some(e) = m.get("error").and_then(Value::as_str) {
                self.progress.event("Service", name, "Error");
                if self.progress.tty {
                    self.progress.finish();
                    let _ = write!(std::io::stderr(), "{log}");
                }
                return Err(RunError::Msg(format!("failed to solve: {e}")));
            }
        }
        self.progress.event("Service", name, "Built");
        Ok(())
    }

    async fn create_container(
        &self,
        name: &str,
        svc: &Value,
        number: u32,
        image_id: &str,
    ) -> Result<Ctr> {
        let cname = spec::container_name(self.project, name, svc, number);
        self.progress.event("Container", &cname, "Creating");
        let mut body = spec::create_body(self.project, name, svc, number, false)?;
        if !image_id.is_empty() {
            body["Labels"][spec::IMAGE] = json!(image_id);
        }
        let id = self
            .client
            .container_create(Some(&cname), None, &body)
            .await?;
        self.inject_files(&id, &cname, name, svc).await?;
        // Further networks are connected before the first start.
        for (net, ep) in spec::endpoints(self.project, name, svc).into_iter().skip(1) {
            if svc.get("network_mode").is_some() {
                break;
            }
            self.client
                .network_connect(&net, &json!({"Container": id, "EndpointConfig": ep}))
                .await?;
        }
        self.progress.event("Container", &cname, "Created");
        let v = self.client.container_inspect(&id, false).await?;
        Ok(Ctr {
            id,
            name: cname,
            service: name.to_string(),
            number,
            state: v["State"]["Status"]
                .as_str()
                .unwrap_or("created")
                .to_string(),
            hash: spec::config_hash(svc),
            oneoff: false,
            raw: v,
        })
    }

    /// Write the service's `environment:`/`content:` secrets and configs into created
    /// container `id` (file-based ones are bind mounts, see [`spec::secret_files`]).
    pub async fn inject_files(&self, id: &str, cname: &str, name: &str, svc: &Value) -> Result<()> {
        let (_, injected) = spec::secret_files(self.project, name, svc)?;
        if injected.is_empty() {
            return Ok(());
        }
        let data = spec::injected_tar(&injected).map_err(|source| RunError::Io {
            path: format!("secrets of {cname}"),
            source,
        })?;
        self.client
            .request(
                http::Method::PUT,
                &format!("/containers/{id}/archive?path=%2F"),
                berth_client::bytes_body(data),
                &[("content-type", "application/x-tar")],
            )
            .await?;
        Ok(())
    }

    async fn remove_container(&self, c: &Ctr, timeout: Option<i64>, volumes: bool) -> Result<()> {
        if c.state == "running" || c.state == "paused" || c.state == "restarting" {
            self.progress.event("Container", &c.name, "Stopping");
            self.client.container_stop(&c.id, timeout, None).await?;
            self.progress.event("Container", &c.name, "Stopped");
        }
        self.progress.event("Container", &c.name, "Removing");
        match self.client.container_remove(&c.id, true, volumes).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        self.progress.event("Container", &c.name, "Removed");
        Ok(())
    }

    fn orphans<'c>(&self, existing: &'c [Ctr]) -> Vec<&'c Ctr> {
        existing
            .iter()
            .filter(|c| {
                self.project.service(&c.service).is_none()
                    && !self.project.disabled.contains(&c.service)
            })
            .collect()
    }

    /// `up` / `create`: converge and (unless `no_start`) start; returns the exit status.
    pub async fn up(&self, o: &UpOptions) -> Result<i32> {
        let order = self.start_order(&o.services, o.no_deps)?;
        let existing = self.containers(true, false).await?;
        let orphans = self.orphans(&existing);
        if !orphans.is_empty() {
            if o.remove_orphans {
                for c in orphans {
                    self.remove_container(c, o.timeout, false).await?;
                }
            } else {
                let names: Vec<&str> = orphans.iter().map(|c| c.name.as_str()).collect();
                eprintln!("WARN[0000] Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.", names.join(" "));
            }
        }
        self.ensure_networks().await?;
        self.ensure_volumes().await?;
        let mut image_ids: BTreeMap<String, String> = BTreeMap::new();
        for s in &order {
            let id = self
                .ensure_image(s, o.build, o.no_build, o.pull.as_deref())
                .await?;
            image_ids.insert(s.clone(), id);
        }
        let mut plan: Vec<(String, Vec<Ctr>)> = Vec::new();
        // Services whose containers were replaced in this run: a container that shares one
        // of their namespaces (`network_mode: service:x`) would keep the old, now dead one,
        // so it is recreated too, as compose v2 does.
        let mut recreated: BTreeSet<String> = BTreeSet::new();
        for s in &order {
            let svc = self.project.service(s).cloned().unwrap_or_default();
            let joins_recreated = ["network_mode", "ipc", "pid"].iter().any(|k| {
                svc.get(*k)
                    .and_then(Value::as_str)
                    .and_then(|m| m.strip_prefix("service:"))
                    .is_some_and(|x| recreated.contains(x))
            });
            let want = o
                .scale
                .get(s)
                .copied()
                .unwrap_or_else(|| spec::replicas(&svc));
            let hash = spec::config_hash(&svc);
            let image_id = image_ids.get(s).cloned().unwrap_or_default();
            let mine: Vec<&Ctr> = existing.iter().filter(|c| &c.service == s).collect();
            // Scale down: highest numbers go first.
            for c in mine.iter().filter(|c| c.number > want || c.number == 0) {
                self.remove_container(c, o.timeout, false).await?;
            }
            let mut ctrs = Vec::new();
            for n in 1..=want {
                match mine.iter().find(|c| c.number == n) {
                    Some(c)
                        if (c.hash != hash
                            || c.image_id() != image_id
                            || o.force_recreate
                            || joins_recreated)
                            && !o.no_recreate =>
                    {
                        recreated.insert(s.clone());
                        self.progress.event("Container", &c.name, "Recreate");
                        self.remove_container(c, o.timeout, false).await?;
                        let nc = self.create_container(s, &svc, n, &image_id).await?;
                        self.progress.event("Container", &nc.name, "Recreated");
                        ctrs.push(nc);
                    }
                    Some(c) => {
                        if c.state == "running" {
                            self.progress.event("Container", &c.name, "Running");
                        }
                        ctrs.push((*c).clone());
                    }
                    None => ctrs.push(self.create_container(s, &svc, n, &image_id).await?),
                }
            }
            plan.push((s.clone(), ctrs));
        }
        if o.no_start {
            return Ok(0);
        }
        for (s, ctrs) in &plan {
            self.wait_dependencies(s).await?;
            for c in ctrs {
                if c.state == "running" {
                    continue;
                }
                self.progress.event("Container", &c.name, "Starting");
                if let Err(e) = self.client.container_start(&c.id).await {
                    // Say which container failed, as compose does; the error follows.
                    self.progress.event("Container", &c.name, "Error");
                    self.progress.finish();
                    return Err(e.into());
                }
                self.progress.event("Container", &c.name, "Started");
            }
        }
        let all: Vec<Ctr> = plan.into_iter().flat_map(|(_, c)| c).collect();
        if o.wait {
            let waits = async {
                for c in &all {
                    self.progress.event("Container", &c.name, "Waiting");
                    self.wait_condition(c, "service_healthy_or_running").await?;
                    self.progress.event("Container", &c.name, "Healthy");
                }
                Ok::<(), RunError>(())
            };
            match o.wait_timeout {
                Some(t) => tokio::time::timeout(t, waits).await.map_err(|_| {
                    RunError::Msg(format!(
                        "application not healthy after {}s",
                        t.as_secs_f64()
                    ))
                })??,
                None => waits.await?,
            }
            self.progress.finish();
            return Ok(0);
        }
        self.progress.finish();
        if o.detach {
            return Ok(0);
        }
        self.attached(&all, o).await
    }

    /// Wait until every dependency of `service` meets its condition (`service_healthy`,
    /// `service_completed_successfully`); every command that starts containers (up, start,
    /// restart, run) calls this before starting the service's own.
    pub async fn wait_dependencies(&self, service: &str) -> Result<()> {
        let Some(deps) = self
            .project
            .service(service)
            .and_then(|s| s.get("depends_on"))
            .and_then(Value::as_object)
            .cloned()
        else {
            return Ok(());
        };
        for (d, opts) in deps {
            let cond = opts["condition"]
                .as_str()
                .unwrap_or("service_started")
                .to_string();
            if cond == "service_started" {
                continue;
            }
            let required = opts["required"].as_bool().unwrap_or(true);
            let ctrs = self
                .service_containers(std::slice::from_ref(&d), true)
                .await
                .unwrap_or_default();
            for c in ctrs {
                let r = self.wait_condition(&c, &cond).await;
                match r {
                    Ok(()) => {
                        let st = if cond == "service_healthy" {
                            "Healthy"
                        } else {
                            "Exited"
                        };
                        self.progress.event("Container", &c.name, st);
                    }
                    Err(e) if required => return Err(e),
                    Err(e) => eprintln!("WARN[0000] optional dependency {d:?} failed: {e}"),
                }
            }
        }
        Ok(())
    }

    async fn wait_condition(&self, c: &Ctr, cond: &str) -> Result<()> {
        if cond == "service_completed_successfully" {
            let code = self.client.container_wait(&c.id, "not-running").await?;
            if code != 0 {
                return Err(RunError::Msg(format!(
                    "service {:?} didn't complete successfully: exit {code}",
                    c.service
                )));
            }
            return Ok(());
        }
        self.progress.event("Container", &c.name, "Waiting");
        loop {
            let v = self.client.container_inspect(&c.id, false).await?;
            let health = v["State"]["Health"]["Status"].as_str();
            let running = v["State"]["Running"].as_bool().unwrap_or(false);
            match health {
                Some("healthy") => return Ok(()),
                Some("unhealthy") => {
                    return Err(RunError::Msg(format!(
                        "dependency failed to start: container {} is unhealthy",
                        c.name
                    )))
                }
                None if cond == "service_healthy" => {
                    return Err(RunError::Msg(format!(
                        "container {} has no healthcheck configured",
                        c.name
                    )))
                }
                None if running => return Ok(()),
                _ => {}
            }
            if !running && v["State"]["Status"].as_str() == Some("exited") {
                return Err(RunError::Msg(format!(
                    "dependency failed to start: container {} exited ({})",
                    c.name,
                    v["State"]["ExitCode"].as_i64().unwrap_or(0)
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Attached `up`: stream every container's logs with compose's prefixes until they
    /// all exit (or the first does, with `--abort-on-container-exit`), or Ctrl-C.
    async fn attached(&self, all: &[Ctr], o: &UpOptions) -> Result<i32> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Option<i64>)>();
        let width = all.iter().map(|c| c.short().len()).max().unwrap_or(0);
        for (i, c) in all.iter().enumerate() {
            let prefix = self.prefix(&c.short(), width, i);
            self.spawn_log_pump(c, prefix, true, None, tx.clone());
        }
        drop(tx);
        let mut exit_code = 0;
        let mut finished = 0;
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some((id, code)) = msg else { break };
                    let Some(code) = code else { continue };
                    finished += 1;
                    let c = all.iter().find(|c| c.id == id);
                    if let Some(c) = c {
                        println!("{} exited with code {code}", c.short());
                        if o.exit_code_from.as_deref() == Some(c.service.as_str()) {
                            exit_code = code as i32;
                        }
                    }
                    if o.abort_on_container_exit || o.exit_code_from.is_some() {
                        if o.exit_code_from.is_none() {
                            exit_code = code as i32;
                        }
                        eprintln!("Aborting on container exit...");
                        self.stop_all(all, o.timeout).await;
                        break;
                    }
                    if finished == all.len() {
                        break;
                    }
                }
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
                    self.stop_all(all, o.timeout).await;
                    exit_code = 130;
                    break;
                }
            }
        }
        if let Some(s) = &o.exit_code_from {
            if let Some(c) = all.iter().find(|c| &c.service == s) {
                let v = self.client.container_inspect(&c.id, false).await?;
                exit_code = v["State"]["ExitCode"].as_i64().unwrap_or(0) as i32;
            }
        }
        Ok(exit_code)
    }

    async fn stop_all(&self, all: &[Ctr], timeout: Option<i64>) {
        for c in all.iter().rev() {
            self.progress.event("Container", &c.name, "Stopping");
            let _ = self.client.container_stop(&c.id, timeout, None).await;
            self.progress.event("Container", &c.name, "Stopped");
        }
    }

    fn prefix(&self, short: &str, width: usize, i: usize) -> String {
        const COLORS: &[u8] = &[36, 33, 32, 35, 34, 96, 93, 92, 95, 94];
        let padded = format!("{short:<width$}  | ");
        if self.progress.tty {
            format!("\x1b[{}m{padded}\x1b[0m", COLORS[i % COLORS.len()])
        } else {
            padded
        }
    }

    /// Stream one container's logs as prefixed lines to stdout; when the stream ends
    /// (the container stopped), report its exit code on `tx`.
    fn spawn_log_pump(
        &self,
        c: &Ctr,
        prefix: String,
        follow: bool,
        tail: Option<String>,
        tx: tokio::sync::mpsc::UnboundedSender<(String, Option<i64>)>,
    ) -> tokio::task::JoinHandle<()> {
        let client = self.client.clone();
        let id = c.id.clone();
        tokio::spawn(async move {
            let opts = LogsOptions {
                follow,
                tail,
                ..LogsOptions::default()
            };
            if let Ok(mut resp) = client.container_logs(&id, &opts).await {
                let multiplexed = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("multiplexed"));
                let mut demux = berth_client::frame::Demuxer::new();
                let mut pending = Vec::new();
                while let Some(Ok(chunk)) = resp.chunk().await {
                    if multiplexed {
                        demux.push(&chunk);
                        while let Ok(Some((_, payload))) = demux.next_frame() {
                            pending.extend_from_slice(&payload);
                        }
                    } else {
                        pending.extend_from_slice(&chunk);
                    }
                    // A chunk (or a frame: berthd sends a run of lines as one) holds many
                    // lines: print them all, then drop them from `pending` at once.
                    let mut start = 0;
                    {
                        let mut out = std::io::stdout().lock();
                        while let Some(i) = pending[start..].iter().position(|b| *b == b'\n') {
                            let text = String::from_utf8_lossy(&pending[start..=start + i]);
                            let _ = write!(out, "{prefix}{}", text.trim_end_matches('\r'));
                            start += i + 1;
                        }
                        let _ = out.flush();
                    }
                    pending.drain(..start);
                }
                if !pending.is_empty() {
                    println!("{prefix}{}", String::from_utf8_lossy(&pending));
                }
            }
            let code = if follow {
                client.container_wait(&id, "not-running").await.ok()
            } else {
                None
            };
            let _ = tx.send((id, code.or(Some(0)).filter(|_| follow)));
        })
    }

    /// `logs`.
    pub async fn logs(
        &self,
        services: &[String],
        follow: bool,
        tail: Option<String>,
        no_prefix: bool,
    ) -> Result<()> {
        let ctrs = self.service_containers(services, true).await?;
        let width = ctrs.iter().map(|c| c.short().len()).max().unwrap_or(0);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut handles = Vec::new();
        for (i, c) in ctrs.iter().enumerate() {
            let prefix = if no_prefix {
                String::new()
            } else {
                self.prefix(&c.short(), width, i)
            };
            handles.push(self.spawn_log_pump(c, prefix, follow, tail.clone(), tx.clone()));
        }
        drop(tx);
        while rx.recv().await.is_some() {}
        for h in handles {
            let _ = h.await;
        }
        Ok(())
    }

    /// `down`.
    pub async fn down(&self, o: &DownOptions) -> Result<()> {
        let existing = self.containers(true, true).await?;
        let order = self.start_order(&[], false)?;
        // Reverse dependency order; orphans and one-off containers first.
        let mut ordered: Vec<&Ctr> = existing
            .iter()
            .filter(|c| !order.contains(&c.service) || c.oneoff)
            .filter(|c| c.oneoff || o.remove_orphans || self.project.disabled.contains(&c.service))
            .collect();
        for s in order.iter().rev() {
            ordered.extend(existing.iter().filter(|c| &c.service == s && !c.oneoff));
        }
        let orphans = self.orphans(&existing);
        if !o.remove_orphans && orphans.iter().any(|c| !c.oneoff) {
            let names: Vec<&str> = orphans.iter().map(|c| c.name.as_str()).collect();
            eprintln!("WARN[0000] Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.", names.join(" "));
        }
        for c in ordered {
            self.remove_container(c, o.timeout, false).await?;
        }
        for (key, def) in self.project.section("networks") {
            if def
                .get("external")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                continue;
            }
            let name = spec::network_name(self.project, &key);
            if self.client.network_inspect(&name).await.is_err() {
                continue;
            }
            self.progress.event("Network", &name, "Removing");
            match self.client.network_remove(&name).await {
                Ok(()) => self.progress.event("Network", &name, "Removed"),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        if o.volumes {
            for (key, def) in self.project.section("volumes") {
                if def
                    .get("external")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                {
                    continue;
                }
                let name = spec::volume_name(self.project, &key);
                if self.client.volume_inspect(&name).await.is_err() {
                    continue;
                }
                self.progress.event("Volume", &name, "Removing");
                self.client.volume_remove(&name, true).await?;
                self.progress.event("Volume", &name, "Removed");
            }
        }
        if let Some(mode) = &o.rmi {
            for (name, svc) in self.project.services() {
                let built = svc.get("image").is_none();
                if mode == "local" && !built {
                    continue;
                }
                let image = spec::image_name(self.project, name, svc);
                if self.client.image_remove(&image, false, false).await.is_ok() {
                    self.progress.event("Image", &image, "Removed");
                }
            }
        }
        Ok(())
    }

    /// `stop` / `start` / `restart` / `kill` / `pause` / `unpause` over services.
    pub async fn lifecycle(
        &self,
        verb: &str,
        services: &[String],
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let mut services = services.to_vec();
        if verb == "restart" && !services.is_empty() {
            services = self.with_restart_dependents(&services);
        }
        // `start web` starts what web depends on too, as docker compose does (its project
        // is loaded with the named services' dependencies); the other verbs act on exactly
        // the services named.
        let mut order = self.start_order(&services, verb != "start")?;
        let reverse = matches!(verb, "stop" | "kill" | "pause");
        if reverse {
            order.reverse();
        }
        let ctrs = self.containers(true, false).await?;
        for s in order {
            if verb == "start" || verb == "restart" {
                self.wait_dependencies(&s).await?;
            }
            for c in ctrs.iter().filter(|c| c.service == s) {
                let (ing, ed) = match verb {
                    "stop" => ("Stopping", "Stopped"),
                    "start" => ("Starting", "Started"),
                    "restart" => ("Restarting", "Started"),
                    "kill" => ("Killing", "Killed"),
                    "pause" => ("Pausing", "Paused"),
                    _ => ("Unpausing", "Unpaused"),
                };
                let skip = match verb {
                    "stop" | "kill" | "pause" => c.state != "running",
                    "start" => c.state == "running",
                    "unpause" => c.state != "paused",
                    _ => false,
                };
                if skip {
                    continue;
                }
                self.progress.event("Container", &c.name, ing);
                match verb {
                    "stop" => self.client.container_stop(&c.id, timeout, None).await?,
                    "start" => self.client.container_start(&c.id).await?,
                    "restart" => self.client.container_restart(&c.id, timeout, None).await?,
                    "kill" => self.client.container_kill(&c.id, signal).await?,
                    "pause" => self.client.container_pause(&c.id, true).await?,
                    _ => self.client.container_pause(&c.id, false).await?,
                }
                self.progress.event("Container", &c.name, ed);
            }
        }
        Ok(())
    }

    /// `services` plus, transitively, the services that declare `depends_on: {x: {restart:
    /// true}}` on one of them: compose restarts those along with their dependency.
    pub fn with_restart_dependents(&self, services: &[String]) -> Vec<String> {
        let mut out: Vec<String> = services.to_vec();
        let mut i = 0;
        while i < out.len() {
            let dep = out[i].clone();
            for (name, svc) in self.project.services() {
                let restarts = svc
                    .get("depends_on")
                    .and_then(|d| d.get(&dep))
                    .and_then(|o| o.get("restart"))
                    .and_then(Value::as_bool)
                    == Some(true);
                if restarts && !out.contains(name) {
                    out.push(name.clone());
                }
            }
            i += 1;
        }
        out
    }

    /// `rm`: stopped containers of the services (all with `stop`).
    pub async fn rm(&self, services: &[String], stop: bool, volumes: bool) -> Result<()> {
        let ctrs = self.service_containers(services, true).await?;
        let victims: Vec<&Ctr> = ctrs
            .iter()
            .filter(|c| stop || c.state != "running")
            .collect();
        if victims.is_empty() {
            eprintln!("No stopped containers");
            return Ok(());
        }
        for c in victims {
            self.remove_container(c, None, volumes).await?;
        }
        Ok(())
    }

    /// The first running container of `service` (or replica `index`).
    pub async fn find(&self, service: &str, index: u32) -> Result<Ctr> {
        let ctrs = self
            .service_containers(&[service.to_string()], false)
            .await?;
        ctrs.into_iter()
            .find(|c| c.number == index)
            .ok_or_else(|| RunError::Msg(format!("service {service:?} is not running")))
    }

    /// `ps` rows: NAME IMAGE COMMAND SERVICE CREATED STATUS PORTS.
    pub async fn ps(&self, services: &[String], all: bool) -> Result<Vec<Ctr>> {
        self.service_containers(services, all).await
    }
}

/// What `ensure_image` does for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageAction {
    Build,
    Pull,
    Keep,
    Missing,
}

/// Compose's image decision: `policy` is `--pull` or `pull_policy` (`missing`,
/// `if_not_present`, `always`, `never`, `build`; `daily`/`weekly`/`every_*` act as
/// `missing` because berth keeps no pull timestamps).
pub fn pull_action(
    policy: &str,
    present: bool,
    can_build: bool,
    explicit_image: bool,
    force_build: bool,
) -> Result<ImageAction> {
    if can_build && (force_build || policy == "build") {
        return Ok(ImageAction::Build);
    }
    match policy {
        "always" if explicit_image => return Ok(ImageAction::Pull),
        "always" | "missing" | "if_not_present" | "never" | "build" => {}
        p if p == "daily" || p == "weekly" || p.starts_with("every_") || p == "refresh" => {}
        other => {
            return Err(RunError::Msg(format!(
                "invalid pull policy {other:?}: expected always, missing, never or build"
            )))
        }
    }
    Ok(if present {
        ImageAction::Keep
    } else if can_build {
        ImageAction::Build
    } else if policy == "never" {
        ImageAction::Missing
    } else {
        ImageAction::Pull
    })
}

/// Query parameters of `POST /build` for a service.
pub fn build_query(
    project: &Project,
    name: &str,
    svc: &Value,
    image: &str,
    dockerfile: &str,
    o: &BuildOptions,
) -> Vec<(&'static str, String)> {
    let build = &svc["build"];
    let mut q: Vec<(&str, String)> = vec![
        ("t", image.to_string()),
        ("dockerfile", dockerfile.to_string()),
    ];
    if let Some(tags) = build.get("tags").and_then(Value::as_array) {
        q.extend(
            tags.iter()
                .filter_map(Value::as_str)
                .map(|t| ("t", t.to_string())),
        );
    }
    if let Some(t) = build.get("target").and_then(Value::as_str) {
        q.push(("target", t.to_string()));
    }
    // File args, a null value taken from the environment, then --build-arg over them.
    let mut args = serde_json::Map::new();
    if let Some(a) = build.get("args").and_then(Value::as_object) {
        for (k, v) in a {
            match v {
                Value::Null => {
                    if let Some(e) = project.environment.get(k) {
                        args.insert(k.clone(), json!(e));
                    }
                }
                Value::String(s) => {
                    args.insert(k.clone(), json!(s));
                }
                other => {
                    args.insert(k.clone(), json!(other.to_string()));
                }
            }
        }
    }
    for a in &o.args {
        match a.split_once('=') {
            Some((k, v)) => {
                args.insert(k.to_string(), json!(v));
            }
            None => {
                if let Some(e) = project.environment.get(a) {
                    args.insert(a.clone(), json!(e));
                }
            }
        }
    }
    if !args.is_empty() {
        q.push(("buildargs", Value::Object(args).to_string()));
    }
    // compose v2 labels the images it builds with the project, service and its version.
    let mut labels = build
        .get("labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(spec::PROJECT.into(), json!(project.name));
    labels.insert(spec::SERVICE.into(), json!(name));
    labels.insert(spec::VERSION.into(), json!(spec::COMPOSE_VERSION));
    q.push(("labels", Value::Object(labels).to_string()));
    if let Some(n) = build.get("network").and_then(Value::as_str) {
        q.push(("networkmode", n.to_string()));
    }
    if let Some(p) = build
        .get("platforms")
        .and_then(|p| p[0].as_str())
        .or_else(|| svc.get("platform").and_then(Value::as_str))
    {
        q.push(("platform", p.to_string()));
    }
    if let Some(h) = build.get("extra_hosts") {
        let hosts: Vec<String> = match h {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or("")))
                .collect(),
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        if !hosts.is_empty() {
            q.push(("extrahosts", hosts.join(",")));
        }
    }
    if let Some(cf) = build.get("cache_from").and_then(Value::as_array) {
        let list: Vec<&str> = cf.iter().filter_map(Value::as_str).collect();
        q.push(("cachefrom", json!(list).to_string()));
    }
    if o.no_cache || build.get("no_cache").and_then(Value::as_bool) == Some(true) {
        q.push(("nocache", "1".to_string()));
    }
    if o.pull || build.get("pull").and_then(Value::as_bool) == Some(true) {
        q.push(("pull", "1".to_string()));
    }
    q
}

/// `data` (a tar) with one more regular file appended.
fn with_file(data: &[u8], name: &str, content: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(data);
    for entry in archive.entries()? {
        let mut entry = entry?;
        // Through append_data/append_link so that long (GNU) names survive the copy.
        let mut header = entry.header().clone();
        let path = entry.path()?.into_owned();
        match entry.link_name()? {
            Some(target)
                if header.entry_type().is_symlink() || header.entry_type().is_hard_link() =>
            {
                let target = target.into_owned();
                out.append_link(&mut header, &path, &target)?;
            }
            _ => out.append_data(&mut header, &path, &mut entry)?,
        }
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    out.append_data(&mut h, name, content)?;
    out.into_inner()
}

/// `repo:tag` split that leaves registry ports alone; the tag defaults to `latest`.
pub fn split_tag(image: &str) -> (String, String) {
    if let Some((r, d)) = image.split_once('@') {
        return (r.to_string(), d.to_string());
    }
    match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies() {
        use ImageAction::*;
        let act = |p, present, build, image| {
            pull_action(p, present, build, image, false).expect("policy")
        };
        assert_eq!(act("missing", true, false, true), Keep);
        assert_eq!(act("missing", false, false, true), Pull);
        assert_eq!(act("missing", false, true, false), Build);
        assert_eq!(act("always", true, false, true), Pull);
        assert_eq!(act("always", true, true, false), Keep);
        assert_eq!(act("never", false, false, true), Missing);
        assert_eq!(act("never", true, false, true), Keep);
        assert_eq!(act("build", true, true, true), Build);
        assert_eq!(act("daily", false, false, true), Pull);
        assert_eq!(
            pull_action("missing", true, true, false, true).expect("ok"),
            Build
        );
        assert!(pull_action("sometimes", true, false, true, false).is_err());
    }

    #[test]
    fn registries() {
        assert_eq!(registry_of("busybox"), "https://index.docker.io/v1/");
        assert_eq!(
            registry_of("library/busybox"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(registry_of("localhost:5000/a"), "localhost:5000");
        assert_eq!(registry_of("reg.example/a/b"), "reg.example");
    }

    #[test]
    fn build_query_merges_args_labels_and_flags() {
        let t = tempfile::tempdir().expect("tmp");
        std::fs::write(
            t.path().join("compose.yaml"),
            "services:\n  app:\n    build:\n      context: .\n      target: dev\n      args: {A: '1', FROM_ENV: null}\n      labels: {x: y}\n",
        )
        .expect("write");
        let mut o = crate::LoadOptions {
            cwd: t.path().to_path_buf(),
            project_name: Some("p".into()),
            ..crate::LoadOptions::default()
        };
        o.os_env.insert("FROM_ENV".into(), "e".into());
        let p = crate::load(&o).expect("load");
        let svc = p.service("app").expect("app").clone();
        let bo = BuildOptions {
            no_cache: true,
            pull: true,
            args: vec!["A=2".into()],
        };
        let q = build_query(&p, "app", &svc, "p-app", "Dockerfile", &bo);
        let get = |k: &str| q.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("t").as_deref(), Some("p-app"));
        assert_eq!(get("target").as_deref(), Some("dev"));
        assert_eq!(get("nocache").as_deref(), Some("1"));
        assert_eq!(get("pull").as_deref(), Some("1"));
        let args: Value = serde_json::from_str(&get("buildargs").expect("args")).expect("json");
        assert_eq!(args, json!({"A": "2", "FROM_ENV": "e"}));
        let labels: Value = serde_json::from_str(&get("labels").expect("labels")).expect("json");
        assert_eq!(labels["x"], "y");
        assert_eq!(labels[spec::PROJECT], "p");
        assert_eq!(labels[spec::SERVICE], "app");
    }

    #[test]
    fn tags() {
        assert_eq!(split_tag("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(split_tag("a:1"), ("a".into(), "1".into()));
        assert_eq!(
            split_tag("reg:5000/a"),
            ("reg:5000/a".into(), "latest".into())
        );
    }
}
