//! The build solver: it walks a [`Plan`] and turns every instruction into a cache-keyed step
//! that an [`Executor`] carries out.
//!
//! # Division of labour
//!
//! The solver decides *what* happens and in which order; it knows Dockerfile semantics and
//! nothing of containers, mounts or stores. The executor (the engine implements it) decides
//! *how*: it resolves images, runs commands in containers, writes files into layers, commits
//! images and keeps the cache index. That cut keeps all the rules of the classic builder
//! (how ENTRYPOINT resets an inherited CMD, how `RUN <<EOF` becomes a script, what a step's
//! cache key covers, what the progress text looks like) testable with a fake executor, and
//! keeps the engine's side free of Dockerfile knowledge.
//!
//! # How a build runs
//!
//! 1. The Dockerfile is parsed and planned ([`crate::plan`]); `--label`s become one more
//!    LABEL instruction at the end of the target stage, as the classic builder does.
//! 2. Only the stages the target needs are built, level by level: the stages of one level do
//!    not depend on each other and run concurrently (their futures are joined; the executor's
//!    blocking work runs on its own threads). A stage that would fail but is not needed is
//!    never started.
//! 3. Step numbers are assigned up front over the required stages in build order, so they
//!    read `Step 3/9` as in the classic builder even when stages run concurrently. Each
//!    stage's progress text is buffered until every stage before it in that order has
//!    finished, so the output is the same text a sequential build prints.
//! 4. Each step's cache key is [`cache_key`] of the parent key, the expanded instruction,
//!    the build args in scope and, for COPY/ADD, a content hash of the sources (from the
//!    executor, which can read the context and other stages' images). A stage's first key
//!    is derived from its base image id (or the key of the stage it builds on). On a hit the
//!    cached image is reused and ` ---> Using cache` printed; `--no-cache` skips lookups but
//!    still records new entries.
//! 5. Metadata instructions (ENV, LABEL, CMD, ...) produce a config-only image with an
//!    `empty_layer` history entry; RUN, COPY, ADD and WORKDIR produce a layer.
//! 6. ONBUILD triggers of a base image run right after its FROM, before the stage's own
//!    instructions, and are cleared from the resulting config.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;

use berth_image::config::{ContainerConfig, History, ImageConfigFile};

use crate::dockerfile::instructions::{
    CommandLine, Healthcheck, Instruction, InstructionError, InstructionKind, Mount, NetworkMode,
    SourceContent,
};
use crate::dockerfile::parse_instructions;
use crate::plan::{base_cache_key, cache_key, plan_stages, Plan, PlanError, Source, StageBase};

/// A build that failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Instruction(#[from] InstructionError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A RUN whose command exited non-zero (the classic builder's wording).
    #[error("Dockerfile:{line}: The command '{command}' returned a non-zero code: {code}")]
    Command {
        line: usize,
        command: String,
        code: i64,
    },
    /// An executor failure in a step, with its Dockerfile line.
    #[error("Dockerfile:{line}: {message}")]
    Step { line: usize, message: String },
    /// An executor failure outside any step.
    #[error("{0}")]
    Executor(String),
    #[error("Dockerfile:{line}: invalid --chmod value {value:?}")]
    Chmod { line: usize, value: String },
}

/// What a build was asked to do (the classic `POST /build` options the solver needs).
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The Dockerfile text.
    pub dockerfile: String,
    pub build_args: HashMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    /// `--label`s for the final image.
    pub labels: BTreeMap<String, String>,
    /// `--network` for RUN steps without their own `--network` flag.
    pub network: Option<String>,
    pub platform: Option<String>,
}

/// An image as the solver tracks it: `id` is `None` for a scratch stage before its first
/// commit.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageState {
    pub id: Option<String>,
    pub config: ImageConfigFile,
}

/// The network of a RUN step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNetwork {
    /// The engine's default for builds.
    Default,
    None,
    Host,
}

/// Where a `RUN --mount` with `from=` (or a bind of the context) reads from.
#[derive(Debug, Clone, PartialEq)]
pub enum MountSource {
    Context,
    /// An image by id; `None` is an empty (scratch) filesystem.
    Image(Option<String>),
}

/// One `RUN --mount`, with its source resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMount {
    pub mount: Mount,
    pub source: MountSource,
}

/// A RUN step for the executor.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStep {
    /// The intermediate container's id (64 hex), as printed in ` ---> Running in`.
    pub container_id: String,
    pub args: Vec<String>,
    /// `KEY=value`: the image's env, ENV values and the ARGs in scope.
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub network: RunNetwork,
    pub mounts: Vec<RunMount>,
    /// The config of the image the step produces.
    pub config: ContainerConfig,
    /// History `created_by`.
    pub created_by: String,
}

/// Where COPY reads from.
#[derive(Debug, Clone, PartialEq)]
pub enum CopySource {
    Context,
    /// An image by id; `None` is an empty (scratch) filesystem.
    Image(Option<String>),
}

/// A filesystem step other than RUN.
#[derive(Debug, Clone, PartialEq)]
pub enum FsOp {
    Copy(Box<CopyStep>),
    /// WORKDIR: create the directory (owned by the stage's USER).
    Mkdir {
        path: String,
        user: String,
    },
}

/// COPY or ADD.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyStep {
    pub source: CopySource,
    pub sources: Vec<String>,
    /// Heredoc sources: (name, data).
    pub contents: Vec<(String, String)>,
    /// Absolute destination (trailing `/` kept: it means a directory).
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<u32>,
    pub excludes: Vec<String>,
    pub parents: bool,
    /// ADD: unpack local archives, allow URLs.
    pub add: bool,
    pub checksum: Option<String>,
}

/// Progress text sink (the classic builder's `stream` messages).
pub trait Progress: Send + Sync {
    fn stream(&self, text: &str);
}

/// What the engine provides to run a build. Errors are messages; the solver adds the
/// Dockerfile line.
pub trait Executor: Send + Sync {
    /// A base image by name (FROM, COPY --from=image, RUN --mount=from=image).
    fn resolve_image(
        &self,
        name: &str,
        platform: Option<&str>,
        pull: bool,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<ImageState, String>> + Send;
    /// An image by id (for cache hits).
    fn load_image(&self, id: &str) -> impl Future<Output = Result<ImageState, String>> + Send;
    /// The image id cached under `key`, if it still exists.
    fn cache_lookup(&self, key: &str) -> impl Future<Output = Option<String>> + Send;
    /// Records `key` → `image_id`.
    fn cache_record(
        &self,
        key: &str,
        image_id: &str,
        description: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Stores a config-only image: `config` keeps the parent's layers (its rootfs).
    fn commit_config(
        &self,
        parent: &ImageState,
        config: ImageConfigFile,
    ) -> impl Future<Output = Result<ImageState, String>> + Send;
    /// Runs a command on top of `parent` and commits the result. A non-zero exit is
    /// `Err(Ok(code))`; other failures `Err(Err(message))`.
    fn run(
        &self,
        parent: &ImageState,
        step: RunStep,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<ImageState, Result<i64, String>>> + Send;
    /// A COPY/ADD/WORKDIR on top of `parent`, committed with `config`.
    fn fs(
        &self,
        parent: &ImageState,
        op: FsOp,
        config: ContainerConfig,
        created_by: String,
    ) -> impl Future<Output = Result<ImageState, String>> + Send;
    /// The content hash of a COPY/ADD's sources (never timestamps).
    fn content_hash(&self, step: &CopyStep) -> impl Future<Output = Result<String, String>> + Send;
}

/// The result of a build.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOutcome {
    /// `sha256:...`.
    pub image_id: String,
    pub config: ImageConfigFile,
}

#[derive(Debug, Clone)]
struct StageResult {
    image: ImageState,
    key: String,
}

/// Orders the progress text of concurrently built stages (see the module docs).
struct Mux<'a> {
    inner: &'a dyn Progress,
    state: Mutex<MuxState>,
}

struct MuxState {
    current: usize,
    buffers: Vec<String>,
    done: Vec<bool>,
}

impl<'a> Mux<'a> {
    fn new(inner: &'a dyn Progress, n: usize) -> Mux<'a> {
        Mux {
            inner,
            state: Mutex::new(MuxState {
                current: 0,
                buffers: vec![String::new(); n],
                done: vec![false; n],
            }),
        }
    }

    fn write(&self, pos: usize, text: &str) {
        let mut s = self.state.lock().expect("progress lock poisoned");
        if s.current == pos {
            self.inner.stream(text);
        } else {
            s.buffers[pos].push_str(text);
        }
    }

    fn finish(&self, pos: usize) {
        let mut s = self.state.lock().expect("progress lock poisoned");
        s.done[pos] = true;
        while s.current < s.done.len() && s.done[s.current] {
            s.current += 1;
            if s.current < s.buffers.len() {
                let cur = s.current;
                let text = std::mem::take(&mut s.buffers[cur]);
                if !text.is_empty() {
                    self.inner.stream(&text);
                }
            }
        }
    }
}

struct StageProgress<'a> {
    mux: &'a Mux<'a>,
    pos: usize,
}

impl Progress for StageProgress<'_> {
    fn stream(&self, text: &str) {
        self.mux.write(self.pos, text);
    }
}

/// The 12-character form of an id, as the classic builder prints it.
pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

fn new_container_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// An empty image config for `FROM scratch`.
pub fn scratch_config(platform: Option<&str>) -> ImageConfigFile {
    let host_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut parts = platform.unwrap_or("").split('/');
    let os = parts.next().filter(|s| !s.is_empty()).unwrap_or("linux");
    let arch = parts.next().unwrap_or(host_arch);
    ImageConfigFile {
        os: os.to_owned(),
        architecture: arch.to_owned(),
        variant: parts.next().map(str::to_owned),
        ..ImageConfigFile::default()
    }
}

/// Runs a build with `exec`, writing the classic builder's progress text to `progress`.
/// Does not print the final `Successfully built` lines (the caller tags first).
pub async fn build<E: Executor>(
    exec: &E,
    req: &BuildRequest,
    progress: &dyn Progress,
) -> Result<BuildOutcome, BuildError> {
    let instructions = parse_instructions(&req.dockerfile)?;
    let mut plan = plan_stages(instructions, &req.build_args)?;
    let target = plan.target_index(req.target.as_deref())?;
    if !req.labels.is_empty() {
        let mut line = String::from("LABEL");
        for (k, v) in &req.labels {
            line.push_str(&format!(" {}={}", quote(k), quote(v)));
        }
        let mut extra = parse_instructions(&format!("FROM scratch\n{line}\n"))?;
        let mut label = extra.remove(1);
        let last_line = plan.stages[target]
            .instructions
            .last()
            .map(|i| i.end_line)
            .unwrap_or(plan.stages[target].from.end_line);
        label.start_line = last_line + 1;
        label.end_line = last_line + 1;
        plan.stages[target].instructions.push(label);
    }
    let order = plan.required_stages(req.target.as_deref())?;
    let levels = plan.parallel_levels(req.target.as_deref())?;
    let total: usize = order
        .iter()
        .map(|&i| plan.stages[i].instructions.len() + 1)
        .sum();
    let mut first_step = vec![0usize; plan.stages.len()];
    let mut position = vec![0usize; plan.stages.len()];
    let mut n = 1;
    for (pos, &i) in order.iter().enumerate() {
        first_step[i] = n;
        position[i] = pos;
        n += plan.stages[i].instructions.len() + 1;
    }
    let mux = Mux::new(progress, order.len());
    let (mux, first_step, position) = (&mux, &first_step, &position);
    let mut results: Vec<Option<StageResult>> = vec![None; plan.stages.len()];
    for level in levels {
        let futures = level.iter().map(|&i| {
            let ctx = StageCtx {
                exec,
                req,
                plan: &plan,
                results: &results,
                total,
                progress: StageProgress {
                    mux,
                    pos: position[i],
                },
            };
            async move {
                let r = ctx.build_stage(i, first_step[i]).await;
                mux.finish(position[i]);
                (i, r)
            }
        });
        let done = futures_util::future::join_all(futures).await;
        let mut first_err = None;
        for (i, r) in done {
            match r {
                Ok(res) => results[i] = Some(res),
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    let res = results[target]
        .take()
        .ok_or_else(|| BuildError::Executor("target stage was not built".into()))?;
    let image = match res.image.id {
        Some(_) => res.image,
        // `FROM scratch` and nothing else: still an image (no layers).
        None => exec
            .commit_config(&res.image, res.image.config.clone())
            .await
            .map_err(BuildError::Executor)?,
    };
    Ok(BuildOutcome {
        image_id: image.id.clone().expect("committed images have ids"),
        config: image.config,
    })
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

struct StageCtx<'a, E: Executor> {
    exec: &'a E,
    req: &'a BuildRequest,
    plan: &'a Plan,
    results: &'a [Option<StageResult>],
    total: usize,
    progress: StageProgress<'a>,
}

/// Per-stage mutable state while its steps run.
struct StageState {
    image: ImageState,
    key: String,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
}

impl<E: Executor> StageCtx<'_, E> {
    fn say(&self, text: &str) {
        self.progress.stream(text);
    }

    async fn build_stage(&self, index: usize, first: usize) -> Result<StageResult, BuildError> {
        let stage = &self.plan.stages[index];
        let from_line = stage.from.start_line;
        self.say(&format!(
            "Step {first}/{} : {}\n",
            self.total,
            stage.from.original.trim()
        ));
        let platform = stage.platform.as_deref().or(self.req.platform.as_deref());
        let (image, key) = match &stage.base {
            StageBase::Scratch => (
                ImageState {
                    id: None,
                    config: scratch_config(platform),
                },
                base_cache_key("scratch", platform),
            ),
            StageBase::Image(name) => {
                let img = self
                    .exec
                    .resolve_image(name, platform, self.req.pull, &self.progress)
                    .await
                    .map_err(|message| BuildError::Step {
                        line: from_line,
                        message,
                    })?;
                let key = base_cache_key(img.id.as_deref().unwrap_or("scratch"), platform);
                (img, key)
            }
            StageBase::Stage(j) => {
                let r = self.results[*j]
                    .as_ref()
                    .ok_or_else(|| BuildError::Executor(format!("stage {j} was not built")))?;
                (r.image.clone(), r.key.clone())
            }
        };
        if let Some(id) = &image.id {
            self.say(&format!(" ---> {}\n", short_id(id)));
        }
        let mut st = StageState {
            image,
            key,
            cmd_set: false,
        };
        let triggers = st.image.config.config.on_build.clone().unwrap_or_default();
        if !triggers.is_empty() {
            self.say(&format!(
                "# Executing {} build trigger{}\n",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ));
            st.image.config.config.on_build = None;
            for t in &triggers {
                let mut insts = parse_instructions(&format!("FROM scratch\n{t}\n"))?;
                let mut inst = insts.remove(1);
                inst.start_line = from_line;
                inst.end_line = from_line;
                if matches!(
                    inst.kind,
                    InstructionKind::Onbuild(_)
                        | InstructionKind::From(_)
                        | InstructionKind::Maintainer(_)
                ) {
                    return Err(BuildError::Step {
                        line: from_line,
                        message: format!("{} isn't allowed as an ONBUILD trigger", inst.name),
                    });
                }
                let env = env_pairs(&st.image.config.config);
                let expanded = crate::dockerfile::expand_instruction(&inst, &env)?;
                self.run_step(&mut st, &expanded, &[], &env, None).await?;
            }
        }
        let env = env_pairs(&st.image.config.config);
        let steps = self.plan.expand_stage(index, &env)?;
        for (n, step) in steps.iter().enumerate() {
            let inst = &step.instruction;
            self.say(&format!(
                "Step {}/{} : {}\n",
                first + 1 + n,
                self.total,
                step_text(&stage.instructions[step.index])
            ));
            self.run_step(&mut st, inst, &step.args, &step.env, Some(step.index))
                .await?;
        }
        Ok(StageResult {
            image: st.image,
            key: st.key,
        })
    }

    async fn run_step(
        &self,
        st: &mut StageState,
        inst: &Instruction,
        args: &[(String, String)],
        env: &[(String, String)],
        index: Option<usize>,
    ) -> Result<(), BuildError> {
        let line = inst.start_line;
        let step_err = |message: String| BuildError::Step { line, message };
        let mut copy = None;
        let content_hash = match &inst.kind {
            InstructionKind::Copy(_) | InstructionKind::Add(_) => {
                let c = self.copy_step(st, inst, index).await?;
                let h = self.exec.content_hash(&c).await.map_err(step_err)?;
                copy = Some(c);
                Some(h)
            }
            _ => None,
        };
        let key = cache_key(&st.key, inst, args, content_hash.as_deref());
        let description = step_text(inst);
        if !self.req.no_cache {
            if let Some(id) = self.exec.cache_lookup(&key).await {
                if let Ok(img) = self.exec.load_image(&id).await {
                    self.say(&format!(" ---> Using cache\n ---> {}\n", short_id(&id)));
                    if matches!(inst.kind, InstructionKind::Cmd(_)) {
                        st.cmd_set = true;
                    }
                    st.image = img;
                    st.key = key;
                    return Ok(());
                }
            }
        }
        let mut config = st.image.config.config.clone();
        let workdir = config.working_dir.clone().unwrap_or_default();
        let user = config.user.clone().unwrap_or_default();
        let image = match &inst.kind {
            InstructionKind::Run(r) => {
                let cid = new_container_id();
                self.say(&format!(" ---> Running in {}\n", short_id(&cid)));
                let shell = shell_of(&config);
                let argv = run_args(&r.command, &shell);
                let mut mounts = Vec::new();
                for m in &r.mounts {
                    let Some(mount) = m.mount.clone() else {
                        return Err(step_err(format!("invalid mount {}", m.raw)));
                    };
                    let source = match &mount.from {
                        None => MountSource::Context,
                        Some(from) => MountSource::Image(self.source_image(from, line).await?.id),
                    };
                    mounts.push(RunMount { mount, source });
                }
                let network = match r.network {
                    NetworkMode::None => RunNetwork::None,
                    NetworkMode::Host => RunNetwork::Host,
                    NetworkMode::Default => match self.req.network.as_deref() {
                        Some("none") => RunNetwork::None,
                        Some("host") => RunNetwork::Host,
                        _ => RunNetwork::Default,
                    },
                };
                let mut created_by = String::new();
                if !args.is_empty() {
                    created_by.push_str(&format!("|{}", args.len()));
                    for (k, v) in args {
                        created_by.push_str(&format!(" {k}={v}"));
                    }
                    created_by.push(' ');
                }
                created_by.push_str(&argv.join(" "));
                let step = RunStep {
                    container_id: cid.clone(),
                    args: argv.clone(),
                    env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    user,
                    workdir: if workdir.is_empty() {
                        "/".into()
                    } else {
                        workdir
                    },
                    network,
                    mounts,
                    config: config.clone(),
                    created_by,
                };
                let res = self.exec.run(&st.image, step, &self.progress).await;
                let img = match res {
                    Ok(img) => img,
                    Err(Ok(code)) => {
                        return Err(BuildError::Command {
                            line,
                            command: argv.join(" "),
                            code,
                        })
                    }
                    Err(Err(message)) => return Err(step_err(message)),
                };
                self.say(&format!(
                    " ---> Removed intermediate container {}\n",
                    short_id(&cid)
                ));
                img
            }
            InstructionKind::Copy(_) | InstructionKind::Add(_) => {
                let c = copy.expect("computed above for COPY/ADD");
                let created_by = format!(
                    "/bin/sh -c #(nop) {} {} in {} ",
                    inst.name.to_uppercase(),
                    content_hash.as_deref().unwrap_or(""),
                    c.dest
                );
                self.exec
                    .fs(&st.image, FsOp::Copy(Box::new(c)), config, created_by)
                    .await
                    .map_err(step_err)?
            }
            InstructionKind::Workdir(w) => {
                let path = resolve_workdir(&workdir, w);
                config.working_dir = Some(path.clone());
                let cid = new_container_id();
                self.say(&format!(" ---> Running in {}\n", short_id(&cid)));
                let img = self
                    .exec
                    .fs(
                        &st.image,
                        FsOp::Mkdir { path, user },
                        config,
                        format!("/bin/sh -c #(nop) WORKDIR {w}"),
                    )
                    .await
                    .map_err(step_err)?;
                self.say(&format!(
                    " ---> Removed intermediate container {}\n",
                    short_id(&cid)
                ));
                img
            }
            kind => {
                let cid = new_container_id();
                self.say(&format!(" ---> Running in {}\n", short_id(&cid)));
                let mut file = st.image.config.clone();
                apply_metadata(&mut file, kind, &mut st.cmd_set);
                file.history.push(History {
                    created: Some(now_rfc3339()),
                    created_by: Some(format!("/bin/sh -c #(nop)  {}", step_text(inst))),
                    author: None,
                    comment: None,
                    empty_layer: Some(true),
                });
                let img = self
                    .exec
                    .commit_config(&st.image, file)
                    .await
                    .map_err(step_err)?;
                self.say(&format!(
                    " ---> Removed intermediate container {}\n",
                    short_id(&cid)
                ));
                img
            }
        };
        let id = image
            .id
            .clone()
            .ok_or_else(|| step_err("the executor returned an image without id".into()))?;
        self.say(&format!(" ---> {}\n", short_id(&id)));
        self.exec
            .cache_record(&key, &id, &description)
            .await
            .map_err(step_err)?;
        st.image = image;
        st.key = key;
        Ok(())
    }

    /// The image a `--from` names: a stage (by name or index) or an image reference.
    async fn source_image(&self, from: &str, line: usize) -> Result<ImageState, BuildError> {
        let names: Vec<Option<String>> = self.plan.stages.iter().map(|s| s.name.clone()).collect();
        let src = if let Ok(i) = from.parse::<usize>() {
            Source::Stage(i)
        } else {
            let lower = from.to_lowercase();
            match names
                .iter()
                .position(|n| n.as_deref() == Some(lower.as_str()))
            {
                Some(i) => Source::Stage(i),
                None => Source::Image(from.to_owned()),
            }
        };
        match src {
            Source::Stage(i) => self
                .results
                .get(i)
                .and_then(|r| r.as_ref())
                .map(|r| r.image.clone())
                .ok_or_else(|| BuildError::Step {
                    line,
                    message: format!("stage {from} is not built before it is used"),
                }),
            Source::Image(name) => self
                .exec
                .resolve_image(&name, None, self.req.pull, &self.progress)
                .await
                .map_err(|message| BuildError::Step { line, message }),
        }
    }

    async fn copy_step(
        &self,
        st: &StageState,
        inst: &Instruction,
        _index: Option<usize>,
    ) -> Result<CopyStep, BuildError> {
        let line = inst.start_line;
        let workdir = st
            .image
            .config
            .config
            .working_dir
            .clone()
            .unwrap_or_default();
        let chmod = |c: &Option<String>| {
            c.as_deref()
                .map(|v| {
                    crate::context::parse_chmod(v).map_err(|_| BuildError::Chmod {
                        line,
                        value: v.to_owned(),
                    })
                })
                .transpose()
        };
        let contents = |cs: &[SourceContent]| {
            cs.iter()
                .map(|c| (c.path.clone(), c.data.clone()))
                .collect::<Vec<_>>()
        };
        Ok(match &inst.kind {
            InstructionKind::Copy(c) => CopyStep {
                source: match &c.from {
                    None => CopySource::Context,
                    Some(f) => CopySource::Image(self.source_image(f, line).await?.id),
                },
                sources: c.sources.clone(),
                contents: contents(&c.contents),
                dest: crate::context::dest_path(&c.dest, &workdir),
                chown: c.chown.clone(),
                chmod: chmod(&c.chmod)?,
                excludes: c.excludes.clone(),
                parents: c.parents,
                add: false,
                checksum: None,
            },
            InstructionKind::Add(a) => CopyStep {
                source: CopySource::Context,
                sources: a.sources.clone(),
                contents: contents(&a.contents),
                dest: crate::context::dest_path(&a.dest, &workdir),
                chown: a.chown.clone(),
                chmod: chmod(&a.chmod)?,
                excludes: a.excludes.clone(),
                parents: false,
                add: a.unpack.unwrap_or(true),
                checksum: a.checksum.clone(),
            },
            _ => unreachable!("copy_step is only called for COPY and ADD"),
        })
    }
}

/// The text after `Step n/m : `: the instruction as written, on one line.
fn step_text(inst: &Instruction) -> String {
    inst.original.trim().to_owned()
}

fn env_pairs(c: &ContainerConfig) -> Vec<(String, String)> {
    c.env
        .iter()
        .flatten()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

fn shell_of(c: &ContainerConfig) -> Vec<String> {
    c.shell
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// The argv of a RUN, CMD or ENTRYPOINT: exec form as written; shell form through the
/// SHELL. RUN heredocs follow BuildKit: a lone `<<EOF` runs its body as the script (a
/// shebang picks the interpreter); heredocs in a longer command are appended to it, so the
/// shell sees a complete here-document.
pub fn run_args(cmd: &CommandLine, shell: &[String]) -> Vec<String> {
    if !cmd.prepend_shell {
        return cmd.args.clone();
    }
    let text = cmd.args.join(" ");
    let mut argv = shell.to_vec();
    if cmd.files.is_empty() {
        argv.push(text);
        return argv;
    }
    let heredoc_only = cmd.files.len() == 1
        && crate::dockerfile::parser::parse_heredoc(text.trim())
            .ok()
            .flatten()
            .is_some();
    if heredoc_only {
        let f = &cmd.files[0];
        let data = if f.chomp {
            crate::dockerfile::parser::chomp_heredoc_content(&f.data)
        } else {
            f.data.clone()
        };
        if let Some(first) = data.lines().next() {
            if let Some(interp) = first.strip_prefix("#!") {
                // Run the script with its interpreter, the body on stdin-free `-c`-less form:
                // `interp -c` is not portable, so hand the body as a file-less argument via sh.
                let mut words: Vec<String> = interp.split_whitespace().map(str::to_owned).collect();
                if !words.is_empty() {
                    words.push("-c".into());
                    words.push(data.clone());
                    return words;
                }
            }
        }
        argv.push(data);
        return argv;
    }
    let mut script = text;
    for f in &cmd.files {
        script.push('\n');
        script.push_str(&f.data);
        script.push_str(&f.name);
    }
    argv.push(script);
    argv
}

fn resolve_workdir(current: &str, w: &str) -> String {
    let joined = if w.starts_with('/') {
        w.to_owned()
    } else {
        format!("{}/{w}", if current.is_empty() { "/" } else { current })
    };
    crate::dockerignore::clean_path(&joined)
}

fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Applies a metadata-only instruction to an image config.
pub fn apply_metadata(file: &mut ImageConfigFile, kind: &InstructionKind, cmd_set: &mut bool) {
    let c = &mut file.config;
    let shell = shell_of(c);
    match kind {
        InstructionKind::Env(kvs) => {
            let env = c.env.get_or_insert_with(Vec::new);
            for kv in kvs {
                env.retain(|e| e.split('=').next() != Some(kv.key.as_str()));
                env.push(format!("{}={}", kv.key, kv.value));
            }
        }
        InstructionKind::Label(kvs) => {
            let labels = c.labels.get_or_insert_with(BTreeMap::new);
            for kv in kvs {
                labels.insert(kv.key.clone(), kv.value.clone());
            }
        }
        InstructionKind::Cmd(cmd) => {
            c.cmd = Some(run_args(cmd, &shell));
            *cmd_set = true;
        }
        InstructionKind::Entrypoint(cmd) => {
            c.entrypoint = Some(run_args(cmd, &shell));
            // An ENTRYPOINT resets a CMD inherited from the base image.
            if !*cmd_set {
                c.cmd = None;
            }
        }
        InstructionKind::Expose(ports) => {
            let p = c.exposed_ports.get_or_insert_with(BTreeMap::new);
            for port in ports {
                let key = if port.contains('/') {
                    port.to_lowercase()
                } else {
                    format!("{port}/tcp")
                };
                p.insert(key, serde_json::json!({}));
            }
        }
        InstructionKind::User(u) => c.user = Some(u.clone()),
        InstructionKind::Volume(vs) => {
            let v = c.volumes.get_or_insert_with(BTreeMap::new);
            for vol in vs {
                v.insert(vol.clone(), serde_json::json!({}));
            }
        }
        InstructionKind::StopSignal(s) => c.stop_signal = Some(s.clone()),
        InstructionKind::Healthcheck(h) => {
            c.healthcheck = Some(match h {
                Healthcheck::None => serde_json::json!({"Test": ["NONE"]}),
                Healthcheck::Cmd(hc) => {
                    let mut v = serde_json::json!({"Test": hc.test});
                    for (name, d) in [
                        ("Interval", hc.interval),
                        ("Timeout", hc.timeout),
                        ("StartPeriod", hc.start_period),
                        ("StartInterval", hc.start_interval),
                    ] {
                        if !d.is_zero() {
                            v[name] = serde_json::json!(d.as_nanos() as u64);
                        }
                    }
                    if hc.retries != 0 {
                        v["Retries"] = serde_json::json!(hc.retries);
                    }
                    v
                }
            })
        }
        InstructionKind::Shell(s) => c.shell = Some(s.clone()),
        InstructionKind::Onbuild(o) => c
            .on_build
            .get_or_insert_with(Vec::new)
            .push(o.expression.clone()),
        InstructionKind::Maintainer(m) => file.author = Some(m.clone()),
        InstructionKind::Arg(_)
        | InstructionKind::From(_)
        | InstructionKind::Run(_)
        | InstructionKind::Copy(_)
        | InstructionKind::Add(_)
        | InstructionKind::Workdir(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A recording executor: images are counters, RUN `fail N` exits N, RUN `slow` sleeps.
    #[derive(Default)]
    struct Fake {
        next: AtomicUsize,
        cache: Mutex<HashMap<String, String>>,
        images: Mutex<HashMap<String, ImageState>>,
        calls: Mutex<Vec<String>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        hash: Mutex<String>,
        bases: Mutex<HashMap<String, ImageState>>,
    }

    impl Fake {
        fn store(&self, mut config: ImageConfigFile) -> ImageState {
            let n = self.next.fetch_add(1, Ordering::SeqCst);
            let id = format!("sha256:{n:064x}");
            config.created = None;
            let img = ImageState {
                id: Some(id.clone()),
                config,
            };
            self.images.lock().expect("lock").insert(id, img.clone());
            img
        }
        fn log(&self, s: String) {
            self.calls.lock().expect("lock").push(s);
        }
    }

    impl Executor for Fake {
        async fn resolve_image(
            &self,
            name: &str,
            _platform: Option<&str>,
            _pull: bool,
            _progress: &dyn Progress,
        ) -> Result<ImageState, String> {
            self.log(format!("resolve {name}"));
            if name == "missing" {
                return Err("No such image: missing".into());
            }
            let mut cfg = scratch_config(None);
            cfg.config.env = Some(vec!["PATH=/bin".into()]);
            if name == "withtrigger" {
                cfg.config.on_build = Some(vec!["ENV TRIGGERED=yes".into()]);
            }
            if let Some(img) = self.bases.lock().expect("lock").get(name) {
                return Ok(img.clone());
            }
            let img = self.store(cfg);
            self.bases
                .lock()
                .expect("lock")
                .insert(name.into(), img.clone());
            Ok(img)
        }
        async fn load_image(&self, id: &str) -> Result<ImageState, String> {
            self.images
                .lock()
                .expect("lock")
                .get(id)
                .cloned()
                .ok_or_else(|| format!("no image {id}"))
        }
        async fn cache_lookup(&self, key: &str) -> Option<String> {
            self.cache.lock().expect("lock").get(key).cloned()
        }
        async fn cache_record(&self, key: &str, id: &str, _d: &str) -> Result<(), String> {
            self.cache
                .lock()
                .expect("lock")
                .insert(key.into(), id.into());
            Ok(())
        }
        async fn commit_config(
            &self,
            _parent: &ImageState,
            config: ImageConfigFile,
        ) -> Result<ImageState, String> {
            self.log("config".into());
            Ok(self.store(config))
        }
        async fn run(
            &self,
            parent: &ImageState,
            step: RunStep,
            progress: &dyn Progress,
        ) -> Result<ImageState, Result<i64, String>> {
            let cmd = step.args.last().cloned().unwrap_or_default();
            self.log(format!("run {cmd}"));
            if let Some(code) = cmd.strip_prefix("fail ") {
                return Err(Ok(code.parse().expect("code")));
            }
            if cmd == "slow" {
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
            progress.stream(&format!("out: {cmd}\n"));
            let mut cfg = parent.config.clone();
            cfg.config = step.config;
            Ok(self.store(cfg))
        }
        async fn fs(
            &self,
            parent: &ImageState,
            op: FsOp,
            config: ContainerConfig,
            _created_by: String,
        ) -> Result<ImageState, String> {
            self.log(match &op {
                FsOp::Copy(c) => format!("copy {:?} {}", c.sources, c.dest),
                FsOp::Mkdir { path, .. } => format!("mkdir {path}"),
            });
            let mut cfg = parent.config.clone();
            cfg.config = config;
            Ok(self.store(cfg))
        }
        async fn content_hash(&self, _step: &CopyStep) -> Result<String, String> {
            Ok(self.hash.lock().expect("lock").clone())
        }
    }

    #[derive(Default)]
    struct Out(Mutex<String>);
    impl Progress for Out {
        fn stream(&self, text: &str) {
            self.0.lock().expect("lock").push_str(text);
        }
    }

    fn req(df: &str) -> BuildRequest {
        BuildRequest {
            dockerfile: df.into(),
            ..Default::default()
        }
    }

    async fn run_build(f: &Fake, r: &BuildRequest) -> (Result<BuildOutcome, BuildError>, String) {
        let out = Out::default();
        let res = build(f, r, &out).await;
        (res, out.0.into_inner().expect("lock"))
    }

    #[tokio::test]
    async fn steps_output_and_cache() {
        let f = Fake::default();
        let df = "FROM base\nENV A=1\nWORKDIR app\nCOPY x .\nRUN echo $A\nCMD [\"sh\"]\n";
        let (res, out) = run_build(&f, &req(df)).await;
        let res = res.expect("builds");
        assert!(out.starts_with("Step 1/6 : FROM base\n ---> "), "{out}");
        assert!(
            out.contains("Step 2/6 : ENV A=1\n ---> Running in "),
            "{out}"
        );
        assert!(
            out.contains("Step 5/6 : RUN echo $A\n ---> Running in "),
            "{out}"
        );
        assert!(out.contains("out: echo $A\n ---> Removed intermediate container "));
        assert!(!out.contains("Using cache"));
        assert_eq!(res.config.config.working_dir.as_deref(), Some("/app"));
        assert_eq!(res.config.config.cmd, Some(vec!["sh".to_string()]));
        assert!(res
            .config
            .config
            .env
            .as_ref()
            .expect("env")
            .contains(&"A=1".to_string()));
        assert!(f
            .calls
            .lock()
            .expect("lock")
            .contains(&"copy [\"x\"] /app/".to_string()));

        // Same inputs: every step is a cache hit and the same image comes out.
        let (again, out) = run_build(&f, &req(df)).await;
        assert_eq!(again.expect("builds").image_id, res.image_id);
        assert_eq!(out.matches(" ---> Using cache\n").count(), 5, "{out}");

        // The COPY source content changes: COPY and everything after it rebuild.
        *f.hash.lock().expect("lock") = "sha256:other".into();
        let (_, out) = run_build(&f, &req(df)).await;
        assert_eq!(out.matches("Using cache").count(), 2, "{out}");

        // --no-cache: nothing is reused.
        let mut r = req(df);
        r.no_cache = true;
        let (_, out) = run_build(&f, &r).await;
        assert!(!out.contains("Using cache"));
    }

    #[tokio::test]
    async fn target_prunes_unneeded_stages() {
        let f = Fake::default();
        let df = "FROM base AS broken\nRUN fail 1\nFROM base AS good\nRUN echo good\nFROM good\nRUN echo final\n";
        let mut r = req(df);
        r.target = Some("good".into());
        let (res, out) = run_build(&f, &r).await;
        res.expect("the broken stage is not needed");
        assert!(out.contains("Step 2/2 : RUN echo good"), "{out}");
        assert!(!f
            .calls
            .lock()
            .expect("lock")
            .iter()
            .any(|c| c.contains("fail")));
        // Building the last stage does not need `broken` either.
        let (res, _) = run_build(&f, &req(df)).await;
        res.expect("builds without the broken stage");
        // Targeting it fails with the classic wording and the line.
        r.target = Some("broken".into());
        let (res, _) = run_build(&f, &r).await;
        let e = res.expect_err("fails").to_string();
        assert_eq!(
            e,
            "Dockerfile:2: The command '/bin/sh -c fail 1' returned a non-zero code: 1"
        );
    }

    #[tokio::test]
    async fn independent_stages_run_concurrently_with_ordered_output() {
        let f = Fake::default();
        let df = "FROM base AS a\nRUN slow\nFROM base AS b\nRUN slow\nFROM base\nCOPY --from=a /x /x\nCOPY --from=b /y /y\n";
        let (res, out) = run_build(&f, &req(df)).await;
        res.expect("builds");
        assert_eq!(
            f.max_in_flight.load(Ordering::SeqCst),
            2,
            "both stages ran at once"
        );
        let s2 = out.find("Step 2/7 : RUN slow").expect("step 2");
        let s3 = out.find("Step 3/7 : FROM base AS b").expect("step 3");
        let s5 = out.find("Step 5/7 : FROM base").expect("step 5");
        assert!(s2 < s3 && s3 < s5, "output in step order: {out}");
    }

    #[tokio::test]
    async fn onbuild_labels_and_errors() {
        let f = Fake::default();
        let mut r = req("FROM withtrigger\nENTRYPOINT [\"/bin/app\"]\n");
        r.labels.insert("k".into(), "v w".into());
        let (res, out) = run_build(&f, &r).await;
        let res = res.expect("builds");
        assert!(out.contains("# Executing 1 build trigger\n"), "{out}");
        assert!(out.contains("Step 3/3 : LABEL \"k\"=\"v w\""), "{out}");
        let c = &res.config.config;
        assert!(c
            .env
            .as_ref()
            .expect("env")
            .contains(&"TRIGGERED=yes".to_string()));
        assert_eq!(c.on_build, None, "triggers do not propagate");
        assert_eq!(c.labels.as_ref().expect("labels")["k"], "v w");
        assert_eq!(c.cmd, None, "ENTRYPOINT resets the inherited CMD");

        let (res, _) = run_build(&f, &req("FROM base\nFOO bar\n")).await;
        assert_eq!(
            res.expect_err("parse error").to_string(),
            "Dockerfile:2: unknown instruction: FOO"
        );
        let (res, _) = run_build(&f, &req("FROM missing\n")).await;
        assert_eq!(
            res.expect_err("no image").to_string(),
            "Dockerfile:1: No such image: missing"
        );
    }

    #[test]
    fn heredoc_run_args() {
        let sh = vec!["/bin/sh".to_string(), "-c".to_string()];
        let insts = parse_instructions(
            "FROM x\nRUN <<EOF\necho a\necho b\nEOF\nRUN cat <<EOF > /f\nhello\nEOF\n",
        )
        .expect("parses");
        let InstructionKind::Run(r) = &insts[1].kind else {
            panic!("run")
        };
        assert_eq!(
            run_args(&r.command, &sh),
            vec!["/bin/sh", "-c", "echo a\necho b\n"]
        );
        let InstructionKind::Run(r) = &insts[2].kind else {
            panic!("run")
        };
        assert_eq!(
            run_args(&r.command, &sh),
            vec!["/bin/sh", "-c", "cat <<EOF > /f\nhello\nEOF"]
        );
    }
}
