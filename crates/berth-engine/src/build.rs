//! Image builds: the engine's [`Executor`] for berth-build's solver, the build cache index
//! and `builder prune`.
//!
//! The solver decides what each Dockerfile step does; this module does it with the engine's
//! own parts:
//! - RUN gets an rw layer on its parent image, mounted under `exec-root/build/<id>/rootfs`,
//!   an OCI bundle made from a [`SpecOptions`] (the step's env, user, workdir, network and
//!   `--mount`s), and a `berth-shim` driving crun exactly as `docker start` does; its output
//!   is read from a shim attach stream and forwarded as build progress. The container never
//!   enters the container table: it is the builder's, not the user's.
//! - COPY, ADD and WORKDIR write into a mounted rw layer directly (berth-build's context
//!   module does the file work, confined to the root).
//! - Each filesystem step is committed with `commit_rw_layer`; metadata-only steps become a
//!   config-only image over the parent's layers (`create_image` with a new config blob).
//! - The cache index is the redb table `engine_build_cache`: cache key → image id, with the
//!   step text and timestamps for `system df`. Cached images are ordinary (untagged) images;
//!   `builder prune` drops the index and the images only it kept.

use crate::{util, Engine, Error, Result};
use berth_build::context::{self, CopyOptions, DiskTree};
use berth_build::index::ContextIndex;
use berth_build::solver::{
    self, BuildRequest, CopySource, CopyStep, Executor, FsOp, ImageState, MountSource, RunNetwork,
    RunStep,
};
use berth_image::config::{ContainerConfig, ImageConfigFile};
use berth_image::{LayerSource, Reference};
use berth_runtime::shim::{ShimClient, ShimConfig};
use berth_runtime::spec::{Mount as SpecMount, NetworkNs, SpecOptions};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;

pub use berth_build::remote::is_git_url;
pub use berth_build::solver::Progress;

/// The build cache index.
pub const BUILD_CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("engine_build_cache");

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One cache entry.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct CacheRecord {
    pub image_id: String,
    /// The step, as printed after `Step n/m :`.
    pub description: String,
    pub created: String,
    pub last_used: String,
    pub usage_count: u64,
    /// Images built earlier for the same step (newest first): a plain build uses the
    /// newest, as dockerd's classic builder does, but `--cache-from` may name a chain
    /// that holds an older one.
    #[serde(default)]
    pub older: Vec<String>,
}

/// How many earlier images a cache entry remembers.
const CACHE_OLDER_MAX: usize = 8;

/// The options of `POST /build` the engine acts on.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The Dockerfile's path inside the context (default `Dockerfile`).
    pub dockerfile: String,
    pub tags: Vec<String>,
    pub target: Option<String>,
    pub build_args: HashMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub pull: bool,
    pub network: Option<String>,
    pub platform: Option<String>,
    /// `--cache-from`: limits cache hits to these images and their ancestors (names that
    /// do not resolve are skipped, so only unknown names means no cache at all).
    pub cache_from: Vec<String>,
    /// `--add-host` (`extrahosts`): `name:ip` entries for RUN's `/etc/hosts`.
    pub extra_hosts: Vec<String>,
    /// `remote`: a git URL (`#ref:subdir` allowed) to fetch the context from; the
    /// request body is then not read.
    pub remote: Option<String>,
}

/// What a finished build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    pub id: String,
    /// Familiar names of the tags applied (`x:latest`).
    pub tags: Vec<String>,
}

impl Engine {
    /// Builds an image from a tar context (plain or gzip), streaming the classic builder's
    /// progress text; tags the result.
    pub async fn build_image(
        &self,
        context: impl Read + Send + 'static,
        opts: BuildOptions,
        progress: &dyn Progress,
    ) -> Result<BuildResult> {
        let mut refs = Vec::new();
        for t in &opts.tags {
            let r = Reference::parse_named(t)
                .map_err(|e| Error::InvalidArgument(format!("invalid tag {t:?}: {e}")))?;
            refs.push(r);
        }
        let dir = self
            .config()
            .data_root
            .join("builder")
            .join(format!("ctx-{}", &util::new_id()[..16]));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let res = self.build_in(context, &dir, &opts, progress).await;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(dir.with_extension("remote"));
        let id = res?;
        let mut tags = Vec::new();
        for r in refs {
            let (id2, r2) = (id.clone(), r.clone());
            self.blocking(move |e| Ok(e.images().tag(&id2, &r2)?))
                .await?;
            tags.push(r.familiar());
        }
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "name".to_string(),
            tags.first().cloned().unwrap_or_default(),
        );
        self.events().emit("image", "build", &id, attrs);
        Ok(BuildResult { id, tags })
    }

    async fn build_in(
        &self,
        context: impl Read + Send + 'static,
        dir: &Path,
        opts: &BuildOptions,
        progress: &dyn Progress,
    ) -> Result<String> {
        let d = dir.to_path_buf();
        let df_name = if opts.dockerfile.is_empty() {
            "Dockerfile".to_string()
        } else {
            opts.dockerfile.clone()
        };
        let name = df_name.clone();
        let remote = opts.remote.clone();
        // The context is read once into an index (hashed as it streams in); nothing is
        // unpacked unless a step needs files on disk (see berth_build::index).
        let (index, dockerfile) = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut index = match remote {
                Some(url) => berth_build::remote::git_context(&url, &d)
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?,
                None => ContextIndex::read(context, &d)
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?,
            };
            index
                .apply_ignore(&name)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
            let dockerfile = index.read_dockerfile(&name).map_err(|e| match e {
                context::ContextError::Io { source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Error::InvalidArgument(format!("Cannot locate specified Dockerfile: {name}"))
                }
                e => Error::InvalidArgument(e.to_string()),
            })?;
            Ok((index, dockerfile))
        })
        .await
        .map_err(|e| Error::Internal(format!("build context task: {e}")))??;
        if let Some(p) = opts.platform.as_deref().filter(|p| !p.is_empty()) {
            check_platform(p).map_err(Error::InvalidArgument)?;
        }
        let req = BuildRequest {
            dockerfile,
            build_args: opts.build_args.clone(),
            target: opts.target.clone().filter(|t| !t.is_empty()),
            no_cache: opts.no_cache,
            pull: opts.pull,
            labels: opts.labels.clone(),
            network: opts.network.clone(),
            platform: opts.platform.clone().filter(|p| !p.is_empty()),
        };
        let exec = EngineExecutor {
            engine: self.clone(),
            context: std::sync::Arc::new(index),
            context_dir: std::sync::Arc::new(ContextDir {
                path: dir.join("context"),
                ready: std::sync::OnceLock::new(),
            }),
            remote: std::sync::Arc::new(RemoteFiles::new(dir.with_extension("remote"))),
            network: opts.network.clone(),
            cache_sources: (!opts.cache_from.is_empty())
                .then(|| self.cache_sources(&opts.cache_from)),
            extra_hosts: opts.extra_hosts.clone(),
        };
        let out = solver::build(&exec, &req, progress)
            .await
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        Ok(out.image_id)
    }

    /// The build cache for `system df`: Docker's `BuildCache` objects.
    pub fn build_cache_usage(&self) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for (key, rec) in self.cache_records()? {
            let size = self.step_size(&rec.image_id).unwrap_or(0);
            out.push(serde_json::json!({
                "ID": key.trim_start_matches("sha256:").chars().take(25).collect::<String>(),
                "Parent": "",
                "Type": "regular",
                "Description": rec.description,
                "InUse": false,
                "Shared": false,
                "Size": size,
                "CreatedAt": rec.created,
                "LastUsedAt": rec.last_used,
                "UsageCount": rec.usage_count,
            }));
        }
        Ok(out)
    }

    /// `builder prune`: forgets the cache index and deletes the images only it kept (not
    /// tagged, not used by a container). Returns the deleted cache ids and bytes freed.
    pub async fn prune_build_cache(&self) -> Result<(Vec<String>, u64)> {
        let in_use: HashSet<String> = self
            .all_handles()
            .iter()
            .map(|h| h.snapshot().image)
            .collect();
        self.blocking(move |e| {
            let records = e.cache_records()?;
            let mut deleted = Vec::new();
            let mut reclaimed = 0u64;
            let db = e.inner.store.database();
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(BUILD_CACHE)?;
                for (key, _) in &records {
                    t.remove(key.as_str())?;
                }
            }
            tx.commit()?;
            // Newest first, so an image is deleted before the one it was built on.
            let mut ids: Vec<(String, String, String)> = records
                .into_iter()
                .flat_map(|(k, r)| {
                    let created = r.created.clone();
                    std::iter::once(r.image_id)
                        .chain(r.older)
                        .map(move |id| (created.clone(), k.clone(), id))
                })
                .collect();
            ids.sort();
            ids.reverse();
            let mut seen = HashSet::new();
            let mut seen_keys = HashSet::new();
            for (_, key, id) in ids {
                if seen_keys.insert(key.clone()) {
                    deleted.push(key.trim_start_matches("sha256:").chars().take(25).collect());
                }
                if !seen.insert(id.clone()) || in_use.contains(&id) {
                    continue;
                }
                let Ok(img) = e.images().get(&id) else {
                    continue;
                };
                if !img.repo_tags.is_empty() {
                    continue;
                }
                let size = e.step_size(&id).unwrap_or(0);
                if e.images().delete(&id).is_ok() {
                    reclaimed += size;
                }
            }
            Ok((deleted, reclaimed))
        })
        .await
    }

    fn cache_records(&self) -> Result<Vec<(String, CacheRecord)>> {
        let db = self.inner.store.database();
        let tx = db.begin_read()?;
        let t = match tx.open_table(BUILD_CACHE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            if let Ok(rec) = serde_json::from_slice::<CacheRecord>(v.value()) {
                out.push((k.value().to_string(), rec));
            }
        }
        Ok(out)
    }

    /// The ids of the `--cache-from` images and of every image below them.
    fn cache_sources(&self, names: &[String]) -> std::collections::HashSet<String> {
        let mut out = std::collections::HashSet::new();
        for name in names {
            let mut next = self.images().get(name).ok();
            while let Some(img) = next {
                if !out.insert(img.id.clone()) || img.parent.is_empty() {
                    break;
                }
                next = self.images().get(&img.parent).ok();
            }
        }
        out
    }

    fn cache_get(&self, key: &str) -> Result<Option<CacheRecord>> {
        let db = self.inner.store.database();
        let tx = db.begin_read()?;
        let t = match tx.open_table(BUILD_CACHE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(t.get(key)?
            .and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    /// Bytes the step that made `id` added: its top layer, or 0 for a config-only step.
    fn step_size(&self, id: &str) -> Result<u64> {
        let img = self.images().get(id)?;
        if img
            .config
            .history
            .last()
            .is_some_and(|h| h.empty_layer.unwrap_or(false))
        {
            return Ok(0);
        }
        let rec = self.images().image_record(id)?;
        Ok(rec.layers.last().map(|l| l.size).unwrap_or(0))
    }
}

/// The engine's side of a build.
struct EngineExecutor {
    engine: Engine,
    /// The context, as read from the client's tar.
    context: std::sync::Arc<ContextIndex>,
    /// The context on disk, written on first use by a `RUN --mount=type=bind`.
    context_dir: std::sync::Arc<ContextDir>,
    /// ADD's remote files, fetched once per build.
    remote: std::sync::Arc<RemoteFiles>,
    /// `--network` of the build (a network name for RUN; `None` is the default bridge).
    network: Option<String>,
    /// With `--cache-from`: the only images a cache hit may be (the given images and their
    /// ancestors), as in dockerd's classic builder; `None` without it (any local hit).
    cache_sources: Option<std::collections::HashSet<String>>,
    /// `--add-host` entries (`name:ip`) for RUN's `/etc/hosts`.
    extra_hosts: Vec<String>,
}

/// The build context written out to a directory, once, for the RUN steps that bind it.
struct ContextDir {
    path: PathBuf,
    ready: std::sync::OnceLock<std::result::Result<(), String>>,
}

impl ContextDir {
    fn get(&self, index: &ContextIndex) -> std::result::Result<PathBuf, String> {
        self.ready
            .get_or_init(|| {
                std::fs::create_dir_all(&self.path)
                    .map_err(|e| format!("create {}: {e}", self.path.display()))?;
                index.materialize(&self.path).map_err(msg)
            })
            .clone()
            .map(|()| self.path.clone())
    }
}

/// A file ADD fetched from an http(s) URL.
#[derive(Clone, Debug)]
struct Fetched {
    /// A directory holding only the file, so the context's copy rules apply to it.
    dir: PathBuf,
    name: String,
    /// `sha256:<hex>` of the bytes.
    digest: String,
}

/// The remote files of one build, by URL. The classic builder downloads a URL for every
/// build (its cache key is the content, not the URL); the file is kept for the step that
/// copies it and removed with the build.
struct RemoteFiles {
    dir: PathBuf,
    files: tokio::sync::Mutex<HashMap<String, Fetched>>,
}

/// The name ADD gives a downloaded file: the last segment of the URL's path (docker's
/// rule), percent-escapes kept as sent.
fn url_file_name(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let path = path.split_once('/').map(|(_, p)| p).unwrap_or("");
    let name = path.rsplit('/').next().unwrap_or("");
    (!name.is_empty() && name != "." && name != "..").then(|| name.to_string())
}

/// Parses `--checksum`: only `sha256:<64 hex>` (what docker accepts for http sources).
fn parse_checksum(c: &str) -> std::result::Result<String, String> {
    match c.split_once(':') {
        Some(("sha256", hex)) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
        }
        Some(("sha256", _)) => Err(format!("invalid checksum digest format: {c}")),
        Some((alg, _)) => Err(format!("unsupported digest algorithm: {alg}")),
        None => Err(format!("invalid checksum digest format: {c}")),
    }
}

impl RemoteFiles {
    fn new(dir: PathBuf) -> RemoteFiles {
        RemoteFiles {
            dir,
            files: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The file at `url`, downloaded on first use (mode 0600 and the Last-Modified time as
    /// its mtime, like the classic builder), verified against `checksum` if given.
    async fn fetch(
        &self,
        url: &str,
        checksum: Option<&str>,
    ) -> std::result::Result<Fetched, String> {
        let want = checksum.map(parse_checksum).transpose()?;
        let mut files = self.files.lock().await;
        let f = match files.get(url) {
            Some(f) => f.clone(),
            None => {
                let f = self.download(url, files.len()).await?;
                files.insert(url.to_string(), f.clone());
                f
            }
        };
        if let Some(want) = want {
            if want != f.digest {
                return Err(format!("digest mismatch {}: {want}", f.digest));
            }
        }
        Ok(f)
    }

    async fn download(&self, url: &str, n: usize) -> std::result::Result<Fetched, String> {
        use std::io::Write;
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let mut resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("failed to GET {url}: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(format!(
                "failed to GET {url} with status {status}: {}",
                body.trim()
            ));
        }
        let name = url_file_name(url)
            .or_else(|| {
                resp.headers()
                    .get(reqwest::header::CONTENT_DISPOSITION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split("filename=").nth(1))
                    .map(|n| n.trim_matches(['"', ' ', ';']).to_string())
                    .filter(|n| !n.is_empty() && !n.contains('/'))
            })
            .ok_or_else(|| format!("cannot determine filename from url: {url}"))?;
        let modified = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .map(std::time::SystemTime::from);
        let dir = self.dir.join(n.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let path = dir.join(&name);
        let mut out = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| format!("create {}: {e}", path.display()))?
        };
        let mut hash = Sha256::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("failed to GET {url}: {e}"))?
        {
            hash.update(&chunk);
            out.write_all(&chunk)
                .map_err(|e| format!("write {}: {e}", path.display()))?;
        }
        // The umask must not decide the mode docker documents (0600).
        use std::os::unix::fs::PermissionsExt;
        out.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        if let Some(t) = modified {
            let _ = out.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t));
        }
        Ok(Fetched {
            dir,
            name,
            digest: format!("sha256:{}", hex::encode(hash.finalize())),
        })
    }
}

/// `--platform`: this engine runs linux/amd64 images only, so anything else is refused
/// up front rather than pulled and then unable to run.
fn check_platform(p: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = p.split('/').collect();
    let known_os = ["linux", "windows", "darwin", "freebsd"];
    if parts.len() < 2 || parts.len() > 3 || !known_os.contains(&parts[0].to_lowercase().as_str()) {
        return Err(format!(
            "failed to parse platform {p}: \"{p}\": unknown operating system or architecture: invalid argument"
        ));
    }
    let arch = parts[1].to_lowercase();
    if parts[0].eq_ignore_ascii_case("linux")
        && (arch == "amd64" || arch == "x86_64" || arch == "x86-64")
    {
        return Ok(());
    }
    Err(format!(
        "platform {p} is not supported by this berthd: it builds and runs linux/amd64 only"
    ))
}

fn is_remote(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn state_of(img: berth_image::Image) -> ImageState {
    ImageState {
        id: Some(img.id),
        config: img.config,
    }
}

/// A temporary rw layer mounted for one step; removed on drop unless committed.
struct StepLayer {
    engine: Engine,
    key: String,
    mount: PathBuf,
}

impl StepLayer {
    fn create(engine: &Engine, parent: Option<&str>, dir: &Path) -> Result<StepLayer> {
        let key = format!("build-{}", &util::new_id()[..24]);
        engine.images().create_rw_layer(&key, parent)?;
        let layer = StepLayer {
            engine: engine.clone(),
            key,
            mount: dir.to_path_buf(),
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        // Volatile: a step's layer is read once by its commit (or thrown away), so its
        // unmount need not sync the upper file system (a syncfs of the whole data root,
        // tens of ms on a busy disk, once per step).
        engine.images().mount_rw_layer_volatile(&layer.key, dir)?;
        Ok(layer)
    }

    fn unmount(&self) -> Result<()> {
        Ok(self.engine.images().unmount_rw_layer(&self.mount)?)
    }

    fn commit(&self, config: ContainerConfig, created_by: String) -> Result<ImageState> {
        self.unmount()?;
        let img = self.engine.images().commit_rw_layer(
            &self.key,
            berth_image::CommitOptions {
                config: Some(config),
                created_by: Some(created_by),
                ..Default::default()
            },
        )?;
        Ok(state_of(img))
    }
}

impl Drop for StepLayer {
    fn drop(&mut self) {
        let _ = self.engine.images().unmount_rw_layer(&self.mount);
        let _ = std::fs::remove_dir(&self.mount);
        // Unmounted now, deleted in the background: a committed step's upper dir holds
        // every file it wrote (one unlink each, ~1 ms apiece on a busy disk), and nothing
        // after the commit reads it. Its key is unique, so nothing can reuse it meanwhile.
        let (engine, key) = (self.engine.clone(), std::mem::take(&mut self.key));
        let spawned = std::thread::Builder::new()
            .name("build-layer-rm".into())
            .spawn(move || {
                if let Err(e) = engine.images().remove_rw_layer(&key) {
                    tracing::warn!(layer = %key, "remove build step layer: {e}");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("build step layer removal thread: {e}");
        }
    }
}

fn msg(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl EngineExecutor {
    /// Pulls a base image through the engine's registry client, its progress as text lines
    /// in the build output (the classic builder streams the pull there too).
    async fn pull_base(
        &self,
        name: &str,
        platform: Option<&str>,
        progress: &dyn Progress,
    ) -> std::result::Result<berth_image::Image, String> {
        let prepared = self
            .engine
            .prepare_pull(name, None, platform, None)
            .await
            .map_err(msg)?;
        let sink = |p: crate::distribution::Progress| {
            // Byte counters would flood a text stream; statuses are what a log needs.
            if p.progress.is_some() || p.status.is_empty() {
                return;
            }
            match &p.id {
                Some(id) => progress.stream(&format!("{id}: {}\n", p.status)),
                None => progress.stream(&format!("{}\n", p.status)),
            }
        };
        prepared.run(&sink).await.map_err(msg)
    }

    fn work_dir(&self, id: &str) -> PathBuf {
        self.engine.config().exec_root.join("build").join(id)
    }

    /// Mounts a source image (COPY --from, RUN --mount=from=) read for one step.
    fn source_layer(&self, id: &Option<String>, dir: &Path) -> Result<Option<StepLayer>> {
        match id {
            Some(id) => Ok(Some(StepLayer::create(&self.engine, Some(id), dir)?)),
            None => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
                Ok(None)
            }
        }
    }

    fn do_copy(&self, rootfs: &Path, c: &CopyStep, scratch: &Path) -> Result<()> {
        let owner = match &c.chown {
            Some(u) => {
                let r = berth_runtime::user::resolve_user(rootfs, u)
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
                Some((r.uid, r.gid))
            }
            None => None,
        };
        let opts = CopyOptions {
            owner,
            keep_owner: matches!(c.source, CopySource::Image(_)),
            chmod: c.chmod,
            excludes: c.excludes.clone(),
            parents: c.parents,
            unpack_archives: c.add,
        };
        if let Some(url) = c.sources.iter().find(|s| s.starts_with("git@")) {
            return Err(Error::InvalidArgument(format!(
                "ADD from a git repository is not supported by this berthd: {url}"
            )));
        }
        if !c.contents.is_empty() {
            context::write_contents(rootfs, &c.contents, &c.dest, &opts)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        }
        // Several sources make the destination a directory, whichever kind they are.
        let dest = if c.sources.len() > 1 && !c.dest.ends_with('/') {
            format!("{}/", c.dest)
        } else {
            c.dest.clone()
        };
        let (remote, local): (Vec<String>, Vec<String>) =
            c.sources.iter().cloned().partition(|s| is_remote(s));
        if !remote.is_empty() {
            // Fetched by `content_hash`, which the solver calls before every COPY/ADD.
            let files = self.remote.files.blocking_lock();
            let remote_opts = CopyOptions {
                unpack_archives: false,
                keep_owner: false,
                ..opts.clone()
            };
            for url in &remote {
                let f = files
                    .get(url)
                    .ok_or_else(|| Error::Internal(format!("remote file {url} was not fetched")))?;
                context::copy_sources(
                    &DiskTree::new(&f.dir),
                    std::slice::from_ref(&f.name),
                    rootfs,
                    &dest,
                    &remote_opts,
                )
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
            }
        }
        if local.is_empty() {
            return Ok(());
        }
        let _src_layer;
        let copied = match &c.source {
            CopySource::Context => {
                context::copy_sources(&*self.context, &local, rootfs, &dest, &opts)
            }
            CopySource::Image(id) => {
                _src_layer = self.source_layer(id, scratch)?;
                context::copy_sources(&DiskTree::new(scratch), &local, rootfs, &dest, &opts)
            }
        };
        copied.map_err(|e| {
            let text = e.to_string();
            Error::InvalidArgument(
                if text.starts_with("file not found") || text.starts_with("no source") {
                    format!("COPY failed: {text}")
                } else {
                    text
                },
            )
        })
    }

    async fn run_inner(
        &self,
        parent: &ImageState,
        step: &RunStep,
        progress: &dyn Progress,
        work: &Path,
    ) -> std::result::Result<ImageState, std::result::Result<i64, String>> {
        let cfg = self.engine.config().clone();
        let rootfs = work.join("rootfs");
        use berth_build::dockerfile::instructions::MountType;
        if step
            .mounts
            .iter()
            .any(|m| matches!(m.mount.typ, MountType::Secret | MountType::Ssh))
        {
            // dockerd's classic builder refuses every RUN flag with this text; berth runs
            // cache, bind and tmpfs mounts but, like it, has no secret or ssh forwarding
            // (`docker build --secret` is BuildKit's).
            return Err(Err(
                "the --mount option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled".into(),
            ));
        }
        let id = format!("build-{}", &step.container_id[..24]);
        // The step's layer and its network endpoint do not depend on each other: made
        // concurrently (the endpoint is a namespace, a veth and firewall rules, often the
        // longer of the two).
        let (layer, net) = tokio::join!(
            async {
                let (e, p, r) = (self.engine.clone(), parent.id.clone(), rootfs.clone());
                tokio::task::spawn_blocking(move || StepLayer::create(&e, p.as_deref(), &r))
                    .await
                    .map_err(msg)?
                    .map_err(msg)
            },
            async {
                match step.network {
                    RunNetwork::Default => Some(
                        BuildNet::attach(&self.engine, &id, self.network.as_deref())
                            .await
                            .map_err(msg),
                    ),
                    _ => None,
                }
            }
        );
        let mut net = NetGuard {
            engine: self.engine.clone(),
            net: net.transpose().map_err(Err)?,
        };
        let layer = layer.map_err(Err)?;
        let mut sources = Vec::new();
        let mut mounts = Vec::new();
        for (i, m) in step.mounts.iter().enumerate() {
            let mount = &m.mount;
            let target = mount
                .target
                .clone()
                .ok_or_else(|| Err("mount target is required".to_string()))?;
            match mount.typ {
                MountType::Cache => {
                    let id = mount.cache_id.clone().unwrap_or_else(|| target.clone());
                    let hash = hex::encode(Sha256::digest(id.as_bytes()));
                    let dir = cfg.data_root.join("buildcache").join(&hash[..32]);
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir).map_err(|e| Err(msg(e)))?;
                        let mode = mount.mode.unwrap_or(0o755);
                        use std::os::unix::fs::PermissionsExt;
                        let _ =
                            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode));
                        let _ = std::os::unix::fs::chown(&dir, mount.uid, mount.gid);
                    }
                    mounts.push(bind(&dir, &target, false));
                }
                MountType::Tmpfs => {
                    let mut options = vec!["nosuid".to_string(), "nodev".into()];
                    if let Some(s) = mount.size_limit.filter(|s| *s > 0) {
                        options.push(format!("size={s}"));
                    }
                    mounts.push(SpecMount {
                        destination: target,
                        source: "tmpfs".into(),
                        typ: "tmpfs".into(),
                        options,
                    });
                }
                MountType::Bind => {
                    let root = match &m.source {
                        MountSource::Context => {
                            let (dir, idx) = (self.context_dir.clone(), self.context.clone());
                            tokio::task::spawn_blocking(move || dir.get(&idx))
                                .await
                                .map_err(|e| Err(msg(e)))?
                                .map_err(Err)?
                        }
                        MountSource::Image(id) => {
                            let dir = work.join(format!("src{i}"));
                            let (e, id2, d2) = (self.engine.clone(), id.clone(), dir.clone());
                            let exec = EngineExecutor {
                                engine: e,
                                context: self.context.clone(),
                                context_dir: self.context_dir.clone(),
                                remote: self.remote.clone(),
                                network: self.network.clone(),
                                cache_sources: self.cache_sources.clone(),
                                extra_hosts: self.extra_hosts.clone(),
                            };
                            let l =
                                tokio::task::spawn_blocking(move || exec.source_layer(&id2, &d2))
                                    .await
                                    .map_err(|e| Err(msg(e)))?
                                    .map_err(|e| Err(msg(e)))?;
                            sources.push(l);
                            dir
                        }
                    };
                    let src = context::resolve(&root, mount.source.as_deref().unwrap_or("/"))
                        .map_err(|e| Err(msg(e)))?;
                    mounts.push(bind(&src, &target, mount.read_only));
                }
                // Refused before the loop.
                MountType::Secret | MountType::Ssh => {}
            }
        }
        let user = berth_runtime::user::resolve_user(&rootfs, &step.user)
            .map_err(|e| Err(format!("unable to find user {}: {e}", step.user)))?;
        // Like dockerd, make sure the working directory exists.
        context::mkdir_all(&rootfs, &step.workdir, &CopyOptions::default())
            .map_err(|e| Err(msg(e)))?;
        let mut env = step.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!(
                "HOME={}",
                if user.home.is_empty() {
                    "/"
                } else {
                    &user.home
                }
            ));
        }
        let host_net = step.network == RunNetwork::Host;
        if step.network != RunNetwork::None {
            // The host's resolver and hosts files, read-only, with `--add-host` entries
            // appended and, on a user-defined network, the embedded DNS as the resolver
            // (so RUN finds containers by name and alias there, as with dockerd). (dockerd
            // drops loopback nameservers for a bridge, which cannot reach them; berth does
            // not yet.)
            let user_net = self
                .network
                .as_deref()
                .and_then(|n| self.engine.network_manager().get(n))
                .is_some_and(|n| n.has_dns());
            let files = step_etc_files(work, &self.extra_hosts, user_net && !host_net)
                .map_err(|e| Err(msg(e)))?;
            for (src, dst) in files {
                mounts.push(bind(&src, dst, true));
            }
        }
        let opts = SpecOptions {
            rootfs: rootfs.clone(),
            args: step.args.clone(),
            env,
            cwd: step.workdir.clone(),
            user,
            hostname: step.container_id[..12].to_string(),
            mounts,
            network: match (&net.net, host_net) {
                (Some(n), _) => NetworkNs::Path(n.netns.clone()),
                (None, true) => NetworkNs::Host,
                (None, false) => NetworkNs::New,
            },
            shm_size: Some(cfg.default_shm_size as u64),
            cgroups_path: format!("/{}/{}", cfg.cgroup_parent, id),
            ..Default::default()
        };
        let spec = berth_runtime::spec::generate(&opts).map_err(|e| Err(msg(e)))?;
        let state_dir = work.join("state");
        berth_runtime::spec::write_bundle(&state_dir, &spec).map_err(|e| Err(msg(e)))?;
        let shim_cfg = ShimConfig {
            id: id.clone(),
            bundle: state_dir.clone(),
            state_dir: state_dir.clone(),
            runtime: cfg.runtime.clone().into(),
            runtime_root: cfg.runtime_root(),
            // The shim always keeps a json log; the build's copy lives and dies with the
            // step's work dir (the output itself goes to the progress stream).
            log_path: work.join("run.log"),
            log_max_size: None,
            log_max_files: 1,
            terminal: false,
            open_stdin: false,
            stdin_once: false,
            spec_facts: Some(berth_runtime::shim::SpecFacts::of(&spec)),
        };
        let spawned = self
            .engine
            .spawn_shim(shim_cfg)
            .await
            .map_err(|e| Err(msg(e)))?;
        let mut _events = None;
        let result = match spawned {
            Err(e) => Err(Err(crate::container::start::docker_start_error(
                &e.to_string(),
            ))),
            Ok(_) => {
                let ev = StepEvents::new(
                    &self.engine,
                    &step.container_id,
                    parent.id.as_deref().unwrap_or(""),
                );
                ev.emit("create", None);
                ev.emit("attach", None);
                let r = self.drive(&state_dir, progress, &ev).await;
                _events = Some(ev);
                r
            }
        };
        let _ = berth_runtime::cgroups::remove(&opts.cgroups_path);
        drop(sources);
        match result {
            Ok(0) => {}
            Ok(code) => {
                net.detach().await;
                return Err(Ok(code));
            }
            Err(e) => {
                net.detach().await;
                return Err(e);
            }
        }
        // The endpoint goes while the layer is committed: neither needs the other.
        let (config, created_by) = (step.config.clone(), step.created_by.clone());
        let (committed, ()) = tokio::join!(
            tokio::task::spawn_blocking(move || layer.commit(config, created_by)),
            net.detach()
        );
        committed.map_err(|e| Err(msg(e)))?.map_err(|e| Err(msg(e)))
    }

    /// Attaches, starts, forwards output until the process exits; its exit code.
    async fn drive(
        &self,
        state_dir: &Path,
        progress: &dyn Progress,
        events: &StepEvents,
    ) -> std::result::Result<i64, std::result::Result<i64, String>> {
        let client = ShimClient::connect(state_dir)
            .await
            .map_err(|e| Err(format!("connect to build shim: {e}")))?;
        let res = async {
            let mut stream = client
                .attach(false, true, true)
                .await
                .map_err(|e| format!("attach to build container: {e}"))?;
            client
                .start()
                .await
                .map_err(|e| crate::container::start::docker_start_error(&e.to_string()))?;
            events.emit("start", None);
            // Docker's multiplexed frames: [stream, 0, 0, 0, len u32 BE] then the payload.
            // Like dockerd's classic builder, stderr text is wrapped in red (`ESC[91m` ..
            // `ESC[0m`), which the CLI shows and docker-py's tests look for.
            let emit = |fd: u8, text: &str| {
                if fd == 2 {
                    progress.stream(&format!("\x1b[91m{text}\x1b[0m"));
                } else {
                    progress.stream(text);
                }
            };
            let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
            loop {
                let mut head = [0u8; 8];
                if stream.read_exact(&mut head).await.is_err() {
                    break;
                }
                let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
                let mut data = vec![0u8; len];
                if stream.read_exact(&mut data).await.is_err() {
                    break;
                }
                let fd = if head[0] == 2 { 2 } else { 1 };
                let buf = &mut pending[usize::from(fd - 1)];
                buf.extend_from_slice(&data);
                // Forward whole UTF-8 text; keep an incomplete trailing sequence for later.
                let valid = match std::str::from_utf8(buf) {
                    Ok(_) => buf.len(),
                    Err(e) if e.error_len().is_none() => e.valid_up_to(),
                    Err(_) => buf.len(),
                };
                if valid > 0 {
                    emit(fd, &String::from_utf8_lossy(&buf[..valid]));
                    buf.drain(..valid);
                }
            }
            for (i, buf) in pending.iter().enumerate() {
                if !buf.is_empty() {
                    emit(i as u8 + 1, &String::from_utf8_lossy(buf));
                }
            }
            let info = client
                .wait()
                .await
                .map_err(|e| format!("wait for build container: {e}"))?;
            events.emit("die", Some(info.exit_code));
            Ok::<i64, String>(info.exit_code)
        }
        .await;
        if res.is_err() {
            let _ = client.kill(9, true).await;
            let _ = client.wait().await;
        }
        let _ = client.shutdown().await;
        res.map_err(Err)
    }
}

/// The events of a RUN step's intermediate container, as dockerd's classic builder emits
/// them for its (real, briefly listed) containers: create, attach, start, die with the
/// exit code, and destroy when the step is done (the "Removing intermediate container"
/// moment). berth's step containers never enter the container table, so `docker events`
/// would otherwise not show them; the name is reserved like a container's meanwhile.
struct StepEvents {
    engine: Engine,
    id: String,
    name: String,
    image: String,
}

impl StepEvents {
    fn new(engine: &Engine, id: &str, image: &str) -> StepEvents {
        StepEvents {
            engine: engine.clone(),
            id: id.to_string(),
            name: engine.inner.names.generate(id),
            image: image.to_string(),
        }
    }

    fn emit(&self, action: &str, exit_code: Option<i64>) {
        let mut attrs = BTreeMap::new();
        attrs.insert("image".to_string(), self.image.clone());
        attrs.insert(
            "name".to_string(),
            self.name.trim_start_matches('/').to_string(),
        );
        if let Some(c) = exit_code {
            attrs.insert("exitCode".to_string(), c.to_string());
        }
        self.engine
            .events()
            .emit("container", action, &self.id, attrs);
    }
}

impl Drop for StepEvents {
    fn drop(&mut self) {
        self.emit("destroy", None);
        self.engine.inner.names.release(&self.name);
    }
}

/// A RUN step's place on a network: its own namespace with one endpoint on the build's
/// network (the default bridge unless `--network` names another), like the intermediate
/// containers of dockerd's classic builder, so RUN reaches the registry and containers on
/// it. Released by [`BuildNet::detach`].
struct BuildNet {
    id: String,
    network: String,
    netns: PathBuf,
}

/// A RUN step's endpoint, released on every path: [`NetGuard::detach`] where the step
/// can wait for it, else (an early error return) from `Drop` on a spawned task.
struct NetGuard {
    engine: Engine,
    net: Option<BuildNet>,
}

impl NetGuard {
    async fn detach(&mut self) {
        if let Some(n) = self.net.take() {
            n.detach(&self.engine).await;
        }
    }
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        if let Some(n) = self.net.take() {
            let engine = self.engine.clone();
            tokio::spawn(async move { n.detach(&engine).await });
        }
    }
}

impl BuildNet {
    async fn attach(engine: &Engine, id: &str, network: Option<&str>) -> Result<BuildNet> {
        let mgr = engine.network_manager();
        let name = network.unwrap_or("bridge");
        let cfg = mgr
            .get(name)
            .ok_or_else(|| Error::NotFound(format!("network {name} not found")))?;
        let netns = mgr.create_netns(id).await?;
        let net = BuildNet {
            id: id.to_string(),
            network: cfg.id.clone(),
            netns: netns.clone(),
        };
        let req = berth_network::EndpointRequest {
            network: cfg.id.clone(),
            endpoint_id: id.to_string(),
            netns,
            ifname: None,
            ipv4: None,
            ipv6: None,
            dns_servers: Vec::new(),
            aliases: Vec::new(),
            dns_names: Vec::new(),
            port_bindings: Vec::new(),
            mac: None,
        };
        if let Err(e) = mgr.connect(req).await {
            net.detach(engine).await;
            return Err(e.into());
        }
        Ok(net)
    }

    async fn detach(self, engine: &Engine) {
        let mgr = engine.network_manager();
        if let Err(e) = mgr.disconnect(&self.network, &self.id).await {
            tracing::debug!(step = %self.id, "build network disconnect: {e}");
        }
        if let Err(e) = mgr.delete_netns(&self.id).await {
            tracing::warn!(step = %self.id, "build netns delete: {e}");
        }
    }
}

/// A RUN step's `/etc/hosts` and `/etc/resolv.conf`, written under `work`: the host's,
/// plus `extra_hosts` (`name:ip`) and, for a user-defined network, the embedded DNS.
fn step_etc_files(
    work: &Path,
    extra_hosts: &[String],
    embedded_dns: bool,
) -> Result<Vec<(PathBuf, &'static str)>> {
    let mut out = Vec::new();
    let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    if !hosts.is_empty() && !hosts.ends_with('\n') {
        hosts.push('\n');
    }
    for h in extra_hosts {
        let (name, ip) = h
            .split_once(':')
            .or_else(|| h.split_once('='))
            .ok_or_else(|| Error::InvalidArgument(format!("invalid extra host {h:?}")))?;
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    let path = work.join("hosts");
    std::fs::write(&path, hosts).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    out.push((path, "/etc/hosts"));
    let base = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = if embedded_dns {
        crate::network::embedded_resolv_conf(&base)
    } else {
        base
    };
    let path = work.join("resolv.conf");
    std::fs::write(&path, resolv).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    out.push((path, "/etc/resolv.conf"));
    Ok(out)
}

fn bind(src: &Path, dst: &str, ro: bool) -> SpecMount {
    SpecMount {
        destination: dst.into(),
        source: src.to_string_lossy().into_owned(),
        typ: "bind".into(),
        options: vec![
            "rbind".into(),
            "rprivate".into(),
            if ro { "ro".into() } else { "rw".into() },
        ],
    }
}

impl Executor for EngineExecutor {
    async fn resolve_image(
        &self,
        name: &str,
        platform: Option<&str>,
        pull: bool,
        progress: &dyn Progress,
    ) -> std::result::Result<ImageState, String> {
        if let Some(p) = platform {
            check_platform(p)?;
        }
        let n = name.to_string();
        let local = self
            .engine
            .blocking(move |e| {
                e.images().get(&n).map(Some).or_else(|err| {
                    if err.kind() == berth_image::ErrorKind::NotFound {
                        Ok(None)
                    } else {
                        Err(Error::from(err))
                    }
                })
            })
            .await
            .map_err(msg)?;
        match local {
            // `--pull` re-resolves through the registry even when the image is here, and
            // fails when the registry cannot be reached, as dockerd does.
            Some(img) if !pull => Ok(state_of(img)),
            _ => self.pull_base(name, platform, progress).await.map(state_of),
        }
    }
    async fn load_image(&self, id: &str) -> std::result::Result<ImageState, String> {
        let n = id.to_string();
        self.engine
            .blocking(move |e| Ok(e.images().get(&n)?))
            .await
            .map(state_of)
            .map_err(msg)
    }

    async fn cache_lookup(&self, key: &str) -> Option<String> {
        let k = key.to_string();
        let sources = self.cache_sources.clone();
        self.engine
            .blocking(move |e| {
                let Some(mut rec) = e.cache_get(&k)? else {
                    return Ok(None);
                };
                let hit = std::iter::once(&rec.image_id)
                    .chain(rec.older.iter())
                    .find(|id| {
                        sources.as_ref().is_none_or(|s| s.contains(*id))
                            && e.images().get(id).is_ok()
                    })
                    .cloned();
                let Some(hit) = hit else {
                    return Ok(None);
                };
                rec.last_used = util::now_rfc3339();
                rec.usage_count += 1;
                e.inner.store.put(BUILD_CACHE, &k, &rec)?;
                Ok(Some(hit))
            })
            .await
            .ok()
            .flatten()
    }

    async fn cache_record(
        &self,
        key: &str,
        image_id: &str,
        description: &str,
    ) -> std::result::Result<(), String> {
        let now = util::now_rfc3339();
        let mut rec = CacheRecord {
            image_id: image_id.to_string(),
            description: description.to_string(),
            created: now.clone(),
            last_used: now,
            usage_count: 0,
            older: Vec::new(),
        };
        let k = key.to_string();
        self.engine
            .blocking(move |e| {
                // Keep the images this step made before (those still stored), newest first.
                if let Some(prev) = e.cache_get(&k)? {
                    rec.older = std::iter::once(prev.image_id)
                        .chain(prev.older)
                        .filter(|id| *id != rec.image_id && e.images().get(id).is_ok())
                        .take(CACHE_OLDER_MAX)
                        .collect();
                }
                e.inner.store.put(BUILD_CACHE, &k, &rec)
            })
            .await
            .map_err(msg)
    }

    async fn commit_config(
        &self,
        parent: &ImageState,
        mut config: ImageConfigFile,
    ) -> std::result::Result<ImageState, String> {
        config.created = Some(util::now_rfc3339());
        let parent_id = parent.id.clone();
        self.engine
            .blocking(move |e| {
                let layers: Vec<LayerSource> = match &parent_id {
                    Some(id) => e
                        .images()
                        .image_record(id)?
                        .layers
                        .into_iter()
                        .map(|l| LayerSource {
                            blob: l.blob,
                            media_type: Some(l.media_type),
                        })
                        .collect(),
                    None => Vec::new(),
                };
                let bytes = serde_json::to_vec(&config)
                    .map_err(|err| Error::Internal(format!("encode image config: {err}")))?;
                let digest = e
                    .images()
                    .content()
                    .write_blob(&bytes)
                    .map_err(|err| Error::Internal(format!("store image config: {err}")))?;
                let img = e.images().create_image(&digest, &layers, &[], &[])?;
                if let Some(parent) = &parent_id {
                    e.images().set_parent(&img.id, parent)?;
                }
                Ok(e.images().get(&img.id)?)
            })
            .await
            .map(state_of)
            .map_err(msg)
    }

    async fn run(
        &self,
        parent: &ImageState,
        step: RunStep,
        progress: &dyn Progress,
    ) -> std::result::Result<ImageState, std::result::Result<i64, String>> {
        let work = self.work_dir(&step.container_id[..24]);
        let res = self.run_inner(parent, &step, progress, &work).await;
        let w = work.clone();
        let _ = tokio::task::spawn_blocking(move || remove_work_dir(&w)).await;
        res
    }

    async fn fs(
        &self,
        parent: &ImageState,
        op: FsOp,
        config: ContainerConfig,
        created_by: String,
    ) -> std::result::Result<ImageState, String> {
        let work = self.work_dir(&util::new_id()[..24]);
        let exec = EngineExecutor {
            engine: self.engine.clone(),
            context: self.context.clone(),
            context_dir: self.context_dir.clone(),
            remote: self.remote.clone(),
            network: self.network.clone(),
            cache_sources: self.cache_sources.clone(),
            extra_hosts: self.extra_hosts.clone(),
        };
        let parent_id = parent.id.clone();
        let w = work.clone();
        let res = tokio::task::spawn_blocking(move || -> Result<ImageState> {
            let rootfs = w.join("rootfs");
            let layer = StepLayer::create(&exec.engine, parent_id.as_deref(), &rootfs)?;
            match &op {
                FsOp::Copy(c) => exec.do_copy(&rootfs, c, &w.join("src"))?,
                FsOp::Mkdir { path, user } => {
                    let owner = if user.is_empty() {
                        None
                    } else {
                        let r = berth_runtime::user::resolve_user(&rootfs, user)
                            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
                        Some((r.uid, r.gid))
                    };
                    context::mkdir_all(
                        &rootfs,
                        path,
                        &CopyOptions {
                            owner,
                            ..Default::default()
                        },
                    )
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
                }
            }
            layer.commit(config, created_by)
        })
        .await
        .map_err(msg)
        .and_then(|r| r.map_err(msg));
        let _ = tokio::task::spawn_blocking(move || remove_work_dir(&work)).await;
        res
    }

    async fn content_hash(&self, step: &CopyStep) -> std::result::Result<String, String> {
        match &step.source {
            CopySource::Image(id) => {
                let mut h = Sha256::new();
                h.update(id.as_deref().unwrap_or("scratch").as_bytes());
                for s in &step.sources {
                    h.update([0]);
                    h.update(s.as_bytes());
                }
                Ok(format!("sha256:{}", hex::encode(h.finalize())))
            }
            CopySource::Context => {
                let index = self.context.clone();
                let (remote_urls, sources): (Vec<String>, Vec<String>) =
                    step.sources.iter().cloned().partition(|s| is_remote(s));
                if step.checksum.is_some() && (!sources.is_empty() || remote_urls.is_empty()) {
                    return Err("checksum can't be specified for non-HTTP(S) sources".into());
                }
                // The key covers each remote file's name and content, never its URL alone:
                // a changed file at the same URL must miss the cache, as in docker.
                let mut remote = Vec::new();
                for url in &remote_urls {
                    let f = self.remote.fetch(url, step.checksum.as_deref()).await?;
                    remote.push(format!("{}:{}", f.name, f.digest));
                }
                tokio::task::spawn_blocking(move || {
                    let mut hash = context::hash_sources(&*index, &sources).map_err(|e| {
                        let t = e.to_string();
                        if t.starts_with("file not found") || t.starts_with("no source") {
                            format!("COPY failed: {t}")
                        } else {
                            t
                        }
                    })?;
                    for r in remote {
                        hash.push_str(&r);
                    }
                    Ok(hash)
                })
                .await
                .map_err(msg)?
            }
        }
    }
}

/// Unmounts whatever a step left mounted under its work dir, then removes it.
fn remove_work_dir(dir: &Path) {
    let prefix = dir.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = nix::mount::umount2(t, nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names_checksums_platforms() {
        assert_eq!(
            url_file_name("http://127.0.0.1:9/a/b/f.tar.gz?x=1").as_deref(),
            Some("f.tar.gz")
        );
        assert_eq!(url_file_name("https://example.com/"), None);
        assert_eq!(url_file_name("https://example.com"), None);
        let hex = "A".repeat(64);
        assert_eq!(
            parse_checksum(&format!("sha256:{hex}")),
            Ok(format!("sha256:{}", "a".repeat(64)))
        );
        assert!(parse_checksum("sha256:abc").is_err());
        assert!(parse_checksum("md5:abc")
            .expect_err("md5")
            .contains("unsupported digest algorithm"));
        assert!(check_platform("linux/amd64").is_ok());
        assert!(check_platform("linux/x86_64").is_ok());
        assert!(check_platform("linux/arm64")
            .expect_err("arm64")
            .contains("linux/amd64 only"));
        assert!(check_platform("nonsense")
            .expect_err("bad")
            .contains("failed to parse platform"));
    }

    #[test]
    fn bind_mount_options() {
        let m = bind(Path::new("/a"), "/b", true);
        assert_eq!(m.destination, "/b");
        assert!(m.options.contains(&"ro".to_string()));
        assert!(bind(Path::new("/a"), "/b", false)
            .options
            .contains(&"rw".to_string()));
    }
}
