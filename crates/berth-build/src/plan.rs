//! Build planning: stages, the graph between them, what a target needs, and step cache keys.
//!
//! # How a Dockerfile becomes a plan
//!
//! 1. ARGs before the first FROM are the *global* (meta) args. Their values come from the
//!    build args when given, otherwise from their defaults, expanded with the global args
//!    defined before them. They are visible only in FROM lines (image name and `--platform`),
//!    and inside a stage only when the stage re-declares them with a bare `ARG NAME`.
//! 2. Every FROM starts a stage. Its image name is expanded with the global args; if the
//!    result names an *earlier* stage (stage names are lower-cased; the comparison is exact,
//!    as in BuildKit) the stage builds on that stage, `scratch` starts empty, anything else is
//!    an image to pull.
//! 3. `COPY --from=X` and `RUN --mount=from=X` make the stage depend on stage `X` (a name or a
//!    numeric index); a name that is no stage is an image reference.
//! 4. The target (`--target`, default the last stage) and everything it reaches are
//!    *required*; the other stages are skipped. Required stages are ordered so dependencies
//!    come first, and grouped into *levels*: all stages of a level only depend on earlier
//!    levels, so they can be built in parallel.
//!
//! [`Plan::expand_stage`] then walks one stage in order, tracking ENV and ARG scope the way
//! BuildKit's dispatcher does, and yields each instruction expanded, with the build args it
//! could see. [`cache_key`] hashes one step: the parent key, a canonical encoding of the
//! expanded instruction, the visible args (sorted) and, for COPY/ADD, a content hash of the
//! sources that the caller computes (contents, never timestamps).

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::dockerfile::instructions::{
    expand_instruction, ArgDef, CommandLine, Healthcheck, Instruction, InstructionError,
    InstructionKind, KeyValue, MountFlag, SourceContent,
};
use crate::shell::Lex;

/// A stage graph that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Instruction(#[from] InstructionError),
    #[error("Dockerfile:{line}: no build stage in current context")]
    NoStage { line: usize },
    #[error("Dockerfile:{line}: base name ({base}) should not be blank")]
    BlankBase { line: usize, base: String },
    #[error("Dockerfile:{line}: invalid stage index {index}")]
    InvalidStageIndex { line: usize, index: i64 },
    #[error("target stage {} could not be found", crate::goquote::quote(.0))]
    TargetNotFound(String),
    #[error("circular dependency detected on stage: {0}")]
    Cycle(String),
    #[error("stage index {0} is out of range")]
    NoSuchStage(usize),
    #[error("dockerfile has no stages")]
    Empty,
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageBase {
    /// `FROM scratch`: an empty filesystem.
    Scratch,
    /// An image reference, expanded.
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// Where a `COPY --from` or `RUN --mount=from=` reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stage(usize),
    Image(String),
}

/// One build stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// Lower-cased `AS` name.
    pub name: Option<String>,
    pub base: StageBase,
    /// `--platform`, expanded.
    pub platform: Option<String>,
    /// The FROM instruction.
    pub from: Instruction,
    /// The instructions after FROM, unexpanded.
    pub instructions: Vec<Instruction>,
    /// Stages and images this stage's instructions read from, per instruction index.
    pub sources: Vec<(usize, Source)>,
}

impl Stage {
    /// `name` or `stage-N`, as BuildKit shows it in progress output.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }

    /// Indices of the stages this stage depends on (base and sources), sorted, unique.
    pub fn stage_dependencies(&self) -> Vec<usize> {
        let mut deps: Vec<usize> = self
            .sources
            .iter()
            .filter_map(|(_, s)| match s {
                Source::Stage(i) => Some(*i),
                Source::Image(_) => None,
            })
            .collect();
        if let StageBase::Stage(i) = self.base {
            deps.push(i);
        }
        deps.sort_unstable();
        deps.dedup();
        deps
    }
}

/// A planned build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The ARG instructions before the first FROM.
    pub meta_args: Vec<ArgDef>,
    /// Resolved global args (those with a value), in definition order.
    pub global_args: Vec<(String, String)>,
    pub stages: Vec<Stage>,
    /// The build args given by the user (`--build-arg`).
    pub build_args: BTreeMap<String, String>,
}

/// One instruction of a stage after expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Index of the instruction in [`Stage::instructions`].
    pub index: usize,
    pub instruction: Instruction,
    /// ARG values in scope at this step (these are also in `env`; RUN sees them).
    pub args: Vec<(String, String)>,
    /// The environment after the step (base image env, ENV and ARG values).
    pub env: Vec<(String, String)>,
}

/// Builds the stage graph of parsed instructions.
pub fn plan_stages(
    instructions: Vec<Instruction>,
    build_args: &HashMap<String, String>,
) -> Result<Plan, PlanError> {
    let mut meta_args = Vec::new();
    let mut global: Vec<(String, String)> = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();

    for inst in instructions {
        match &inst.kind {
            InstructionKind::Arg(defs) if stages.is_empty() => {
                let lex = Lex::new(inst.escape_token);
                for d in defs {
                    meta_args.push(d.clone());
                    let value = match build_args.get(&d.key) {
                        Some(v) => Some(v.clone()),
                        None => match &d.default {
                            Some(def) => {
                                Some(lex.process_word(def, &global).map_err(|source| {
                                    InstructionError::Expand {
                                        line: inst.start_line,
                                        source,
                                    }
                                })?)
                            }
                            None => None,
                        },
                    };
                    if let Some(v) = value {
                        global.retain(|(k, _)| *k != d.key);
                        global.push((d.key.clone(), v));
                    }
                }
            }
            InstructionKind::From(_) => {
                let expanded = expand_instruction(&inst, &global)?;
                let InstructionKind::From(f) = &expanded.kind else {
                    unreachable!("expansion keeps the instruction kind")
                };
                if f.image.is_empty() {
                    let InstructionKind::From(orig) = &inst.kind else {
                        unreachable!("matched FROM above")
                    };
                    return Err(PlanError::BlankBase {
                        line: inst.start_line,
                        base: orig.image.clone(),
                    });
                }
                let base = if let Some(i) = stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(f.image.as_str()))
                {
                    StageBase::Stage(i)
                } else if f.image.eq_ignore_ascii_case("scratch") {
                    StageBase::Scratch
                } else {
                    StageBase::Image(f.image.clone())
                };
                stages.push(Stage {
                    index: stages.len(),
                    name: f.stage_name.clone(),
                    base,
                    platform: f.platform.clone(),
                    from: inst,
                    instructions: Vec::new(),
                    sources: Vec::new(),
                });
            }
            _ => match stages.last_mut() {
                Some(s) => s.instructions.push(inst),
                None => {
                    return Err(PlanError::NoStage {
                        line: inst.start_line,
                    })
                }
            },
        }
    }
    if stages.is_empty() {
        return Err(PlanError::Empty);
    }

    // Resolve sources after all stages exist: `--from` may name any stage.
    let names: Vec<Option<String>> = stages.iter().map(|s| s.name.clone()).collect();
    let count = stages.len();
    for stage in &mut stages {
        let mut sources = Vec::new();
        for (i, inst) in stage.instructions.iter().enumerate() {
            let mut froms: Vec<String> = Vec::new();
            match &inst.kind {
                InstructionKind::Copy(c) => froms.extend(c.from.clone()),
                InstructionKind::Run(r) => froms.extend(mount_froms(&r.mounts)),
                _ => {}
            }
            for from in froms {
                let src = resolve_source(&from, &names, count, inst.start_line)?;
                sources.push((i, src));
            }
        }
        stage.sources = sources;
    }

    let plan = Plan {
        meta_args,
        global_args: global,
        stages,
        build_args: build_args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    plan.check_cycles()?;
    Ok(plan)
}

fn mount_froms(mounts: &[MountFlag]) -> Vec<String> {
    mounts
        .iter()
        .filter_map(|m| match &m.mount {
            Some(m) => m.from.clone(),
            // Unexpanded mount: `from` is never expanded (BuildKit forbids variables there),
            // so it can be read from the raw text.
            None => m.raw.split(',').find_map(|f| {
                let (k, v) = f.split_once('=')?;
                k.eq_ignore_ascii_case("from").then(|| v.to_owned())
            }),
        })
        .filter(|f| !f.is_empty())
        .collect()
}

fn resolve_source(
    from: &str,
    names: &[Option<String>],
    count: usize,
    line: usize,
) -> Result<Source, PlanError> {
    if let Ok(index) = from.parse::<i64>() {
        if index < 0 || index as usize >= count {
            return Err(PlanError::InvalidStageIndex { line, index });
        }
        return Ok(Source::Stage(index as usize));
    }
    let lower = from.to_lowercase();
    match names
        .iter()
        .position(|n| n.as_deref() == Some(lower.as_str()))
    {
        Some(i) => Ok(Source::Stage(i)),
        None => Ok(Source::Image(from.to_owned())),
    }
}

impl Plan {
    /// Finds a stage by name (case-insensitive).
    pub fn stage_by_name(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    /// The target stage: `target` by name, or the last stage.
    pub fn target_index(&self, target: Option<&str>) -> Result<usize, PlanError> {
        match target {
            None | Some("") => Ok(self.stages.len() - 1),
            Some(t) => self
                .stage_by_name(t)
                .ok_or_else(|| PlanError::TargetNotFound(t.to_owned())),
        }
    }

    fn check_cycles(&self) -> Result<(), PlanError> {
        // 0 = unvisited, 1 = on the stack, 2 = done.
        let mut state = vec![0u8; self.stages.len()];
        fn visit(plan: &Plan, i: usize, state: &mut [u8]) -> Result<(), PlanError> {
            match state[i] {
                1 => return Err(PlanError::Cycle(plan.stages[i].display_name())),
                2 => return Ok(()),
                _ => {}
            }
            state[i] = 1;
            for d in plan.stages[i].stage_dependencies() {
                visit(plan, d, state)?;
            }
            state[i] = 2;
            Ok(())
        }
        for i in 0..self.stages.len() {
            visit(self, i, &mut state)?;
        }
        Ok(())
    }

    /// The stages the target needs, in build order (every dependency before its dependents;
    /// ties broken by Dockerfile order).
    pub fn required_stages(&self, target: Option<&str>) -> Result<Vec<usize>, PlanError> {
        let t = self.target_index(target)?;
        let mut order = Vec::new();
        let mut seen = vec![false; self.stages.len()];
        fn visit(plan: &Plan, i: usize, seen: &mut [bool], order: &mut Vec<usize>) {
            if seen[i] {
                return;
            }
            seen[i] = true;
            for d in plan.stages[i].stage_dependencies() {
                visit(plan, d, seen, order);
            }
            order.push(i);
        }
        visit(self, t, &mut seen, &mut order);
        Ok(order)
    }

    /// The required stages grouped into levels that can run in parallel: a stage's level is
    /// one more than the highest level of its dependencies.
    pub fn parallel_levels(&self, target: Option<&str>) -> Result<Vec<Vec<usize>>, PlanError> {
        let order = self.required_stages(target)?;
        let mut level = vec![0usize; self.stages.len()];
        let mut levels: Vec<Vec<usize>> = Vec::new();
        for &i in &order {
            let l = self.stages[i]
                .stage_dependencies()
                .iter()
                .map(|d| level[*d] + 1)
                .max()
                .unwrap_or(0);
            level[i] = l;
            if levels.len() <= l {
                levels.resize_with(l + 1, Vec::new);
            }
            levels[l].push(i);
        }
        for l in &mut levels {
            l.sort_unstable();
        }
        Ok(levels)
    }

    /// Expands the instructions of stage `index` in order, starting from `base_env` (the
    /// base image's `Env`, or the parent stage's final env). ARG scope follows BuildKit: a
    /// stage ARG takes the build arg if given, else its default, else the global value when
    /// the name is a global arg.
    pub fn expand_stage(
        &self,
        index: usize,
        base_env: &[(String, String)],
    ) -> Result<Vec<Step>, PlanError> {
        let stage = self
            .stages
            .get(index)
            .ok_or(PlanError::NoSuchStage(index))?;
        let mut env: Vec<(String, String)> = base_env.to_vec();
        let mut args: Vec<(String, String)> = Vec::new();
        let mut steps = Vec::new();
        let set = |list: &mut Vec<(String, String)>, k: &str, v: &str| {
            list.retain(|(key, _)| key != k);
            list.push((k.to_owned(), v.to_owned()));
        };
        for (i, inst) in stage.instructions.iter().enumerate() {
            let expanded = if let InstructionKind::Arg(defs) = &inst.kind {
                // ARG values come from build args first; defaults are expanded with the env
                // in scope, the global value is used for a bare re-declaration.
                let lex = Lex::new(inst.escape_token);
                let mut out = Vec::new();
                for d in defs {
                    let value = if let Some(v) = self.build_args.get(&d.key) {
                        Some(v.clone())
                    } else if let Some(def) = &d.default {
                        Some(lex.process_word(def, &env).map_err(|source| {
                            InstructionError::Expand {
                                line: inst.start_line,
                                source,
                            }
                        })?)
                    } else {
                        self.global_args
                            .iter()
                            .find(|(k, _)| *k == d.key)
                            .map(|(_, v)| v.clone())
                    };
                    if let Some(v) = &value {
                        set(&mut args, &d.key, v);
                        set(&mut env, &d.key, v);
                    }
                    out.push(ArgDef {
                        key: d.key.clone(),
                        default: value,
                    });
                }
                Instruction {
                    kind: InstructionKind::Arg(out),
                    ..inst.clone()
                }
            } else {
                let e = expand_instruction(inst, &env)?;
                if let InstructionKind::Env(kvs) = &e.kind {
                    for kv in kvs {
                        set(&mut env, &kv.key, &kv.value);
                    }
                }
                e
            };
            steps.push(Step {
                index: i,
                instruction: expanded,
                args: args.clone(),
                env: env.clone(),
            });
        }
        Ok(steps)
    }
}

/// A cache key: `sha256:<hex>`.
pub type CacheKey = String;

/// The key of the first step of a stage: what the stage starts from (an image's manifest
/// digest, a parent stage's final key, or `scratch`) and its platform.
pub fn base_cache_key(base: &str, platform: Option<&str>) -> CacheKey {
    let mut h = Sha256::new();
    put(&mut h, "berth-build/base/v1");
    put(&mut h, base);
    put(&mut h, platform.unwrap_or(""));
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The cache key of one step: its parent's key, the expanded instruction (canonically
/// encoded; source positions and comments do not count), the build args it can see (sorted,
/// so their declaration order does not matter) and, for COPY/ADD, a hash of the source
/// contents computed by the caller.
pub fn cache_key(
    parent: &str,
    instruction: &Instruction,
    args: &[(String, String)],
    content_hash: Option<&str>,
) -> CacheKey {
    let mut h = Sha256::new();
    put(&mut h, "berth-build/step/v1");
    put(&mut h, parent);
    encode_kind(&mut h, &instruction.kind);
    let mut sorted: Vec<&(String, String)> = args.iter().collect();
    sorted.sort();
    put(&mut h, &sorted.len().to_string());
    for (k, v) in sorted {
        put(&mut h, k);
        put(&mut h, v);
    }
    put(&mut h, content_hash.unwrap_or(""));
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Writes one length-prefixed field, so that no two field sequences encode the same bytes.
fn put(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

fn put_opt(h: &mut Sha256, s: &Option<String>) {
    match s {
        Some(s) => {
            put(h, "1");
            put(h, s);
        }
        None => put(h, "0"),
    }
}

fn put_list(h: &mut Sha256, l: &[String]) {
    put(h, &l.len().to_string());
    for s in l {
        put(h, s);
    }
}

fn put_cmd(h: &mut Sha256, c: &CommandLine) {
    put_list(h, &c.args);
    put(h, if c.prepend_shell { "shell" } else { "exec" });
    put(h, &c.files.len().to_string());
    for f in &c.files {
        put(h, &f.name);
        put(h, &f.data);
        put(h, if f.chomp { "chomp" } else { "" });
    }
}

fn put_kvs(h: &mut Sha256, kvs: &[KeyValue]) {
    put(h, &kvs.len().to_string());
    for kv in kvs {
        put(h, &kv.key);
        put(h, &kv.value);
    }
}

fn put_contents(h: &mut Sha256, cs: &[SourceContent]) {
    put(h, &cs.len().to_string());
    for c in cs {
        put(h, &c.path);
        put(h, &c.data);
    }
}

fn encode_kind(h: &mut Sha256, kind: &InstructionKind) {
    match kind {
        InstructionKind::From(f) => {
            put(h, "FROM");
            put(h, &f.image);
            put_opt(h, &f.stage_name);
            put_opt(h, &f.platform);
        }
        InstructionKind::Run(r) => {
            put(h, "RUN");
            put_cmd(h, &r.command);
            put(h, &r.mounts.len().to_string());
            for m in &r.mounts {
                put(h, &format!("{:?}", m.mount));
                put(h, &m.raw);
            }
            put(h, &format!("{:?}/{:?}", r.network, r.security));
            put_list(h, &r.devices);
        }
        InstructionKind::Cmd(c) => {
            put(h, "CMD");
            put_cmd(h, c);
        }
        InstructionKind::Entrypoint(c) => {
            put(h, "ENTRYPOINT");
            put_cmd(h, c);
        }
        InstructionKind::Env(kvs) => {
            put(h, "ENV");
            put_kvs(h, kvs);
        }
        InstructionKind::Label(kvs) => {
            put(h, "LABEL");
            put_kvs(h, kvs);
        }
        InstructionKind::Arg(defs) => {
            put(h, "ARG");
            put(h, &defs.len().to_string());
            for d in defs {
                put(h, &d.key);
                put_opt(h, &d.default);
            }
        }
        InstructionKind::Expose(p) => {
            put(h, "EXPOSE");
            put_list(h, p);
        }
        InstructionKind::User(u) => {
            put(h, "USER");
            put(h, u);
        }
        InstructionKind::Workdir(w) => {
            put(h, "WORKDIR");
            put(h, w);
        }
        InstructionKind::Volume(v) => {
            put(h, "VOLUME");
            put_list(h, v);
        }
        InstructionKind::StopSignal(s) => {
            put(h, "STOPSIGNAL");
            put(h, s);
        }
        InstructionKind::Healthcheck(hc) => {
            put(h, "HEALTHCHECK");
            match hc {
                Healthcheck::None => put(h, "NONE"),
                Healthcheck::Cmd(c) => {
                    put_list(h, &c.test);
                    for d in [c.interval, c.timeout, c.start_period, c.start_interval] {
                        put(h, &d.as_nanos().to_string());
                    }
                    put(h, &c.retries.to_string());
                }
            }
        }
        InstructionKind::Shell(s) => {
            put(h, "SHELL");
            put_list(h, s);
        }
        InstructionKind::Onbuild(o) => {
            put(h, "ONBUILD");
            put(h, &o.expression);
        }
        InstructionKind::Copy(c) => {
            put(h, "COPY");
            put_list(h, &c.sources);
            put_contents(h, &c.contents);
            put(h, &c.dest);
            put_opt(h, &c.from);
            put_opt(h, &c.chown);
            put_opt(h, &c.chmod);
            put(h, &format!("{}/{}", c.link, c.parents));
            put_list(h, &c.excludes);
        }
        InstructionKind::Add(a) => {
            put(h, "ADD");
            put_list(h, &a.sources);
            put_contents(h, &a.contents);
            put(h, &a.dest);
            put_opt(h, &a.chown);
            put_opt(h, &a.chmod);
            put_opt(h, &a.checksum);
            put(
                h,
                &format!("{}/{:?}/{:?}", a.link, a.keep_git_dir, a.unpack),
            );
            put_list(h, &a.excludes);
        }
        InstructionKind::Maintainer(m) => {
            put(h, "MAINTAINER");
            put(h, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse_instructions;

    fn plan(src: &str, args: &[(&str, &str)]) -> Result<Plan, PlanError> {
        let ba: HashMap<String, String> = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        plan_stages(parse_instructions(src)?, &ba)
    }

    const MULTI: &str = "\
ARG BASE=busybox
ARG TAG=latest
FROM ${BASE}:${TAG} AS deps
RUN echo deps
FROM golang AS build
COPY --from=deps /a /a
RUN --mount=type=cache,target=/root/.cache make
FROM scratch AS unused
COPY x y
FROM build AS test
RUN go test
FROM alpine
COPY --from=build /bin/app /app
COPY --from=0 /a /b
COPY --from=nginx:latest /etc/nginx /etc/nginx
";

    #[test]
    fn stages_and_bases() {
        let p = plan(MULTI, &[("TAG", "1.36")]).expect("plans");
        assert_eq!(p.stages.len(), 5);
        assert_eq!(p.stages[0].base, StageBase::Image("busybox:1.36".into()));
        assert_eq!(p.stages[2].base, StageBase::Scratch);
        assert_eq!(p.stages[3].base, StageBase::Stage(1));
        assert_eq!(p.stages[4].display_name(), "stage-4");
        assert_eq!(
            p.stages[4]
                .sources
                .iter()
                .map(|(_, s)| s.clone())
                .collect::<Vec<_>>(),
            vec![
                Source::Stage(1),
                Source::Stage(0),
                Source::Image("nginx:latest".into())
            ]
        );
        assert_eq!(
            p.global_args,
            vec![
                ("BASE".into(), "busybox".into()),
                ("TAG".into(), "1.36".into())
            ]
        );
    }

    #[test]
    fn target_selection_and_order() {
        let p = plan(MULTI, &[]).expect("plans");
        assert_eq!(p.required_stages(None).expect("ok"), vec![0, 1, 4]);
        assert_eq!(p.required_stages(Some("test")).expect("ok"), vec![0, 1, 3]);
        assert_eq!(p.required_stages(Some("UNUSED")).expect("ok"), vec![2]);
        assert_eq!(
            p.parallel_levels(None).expect("ok"),
            vec![vec![0], vec![1], vec![4]]
        );
        let e = p.required_stages(Some("nope")).expect_err("missing target");
        assert_eq!(e.to_string(), "target stage \"nope\" could not be found");
    }

    #[test]
    fn independent_stages_share_a_level() {
        let p = plan(
            "FROM a AS x\nRUN x\nFROM b AS y\nRUN y\nFROM c\nCOPY --from=x / /\nCOPY --from=y / /\n",
            &[],
        )
        .expect("plans");
        assert_eq!(
            p.parallel_levels(None).expect("ok"),
            vec![vec![0, 1], vec![2]]
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            plan("RUN x\nFROM a\n", &[]),
            Err(PlanError::NoStage { line: 1 })
        ));
        assert!(matches!(
            plan("FROM a\nCOPY --from=5 / /\n", &[]),
            Err(PlanError::InvalidStageIndex { index: 5, .. })
        ));
        assert!(matches!(
            plan("ARG X\nFROM $X\n", &[]),
            Err(PlanError::BlankBase { .. })
        ));
        assert!(matches!(
            plan(
                "FROM a AS x\nCOPY --from=y / /\nFROM b AS y\nCOPY --from=x / /\n",
                &[]
            ),
            Err(PlanError::Cycle(_))
        ));
        assert!(matches!(
            plan("FROM a AS x\nRUN --mount=from=x,target=/m true\n", &[]),
            Err(PlanError::Cycle(_))
        ));
    }

    #[test]
    fn arg_scope_and_expansion() {
        let p = plan(
            "ARG V=global\nARG ONLY=g\nFROM a\nRUN echo $V\nARG V\nENV E=$V-x\nARG W=${E}w\nWORKDIR /$W\nARG ONLY\n",
            &[("W", "override")],
        )
        .expect("plans");
        let steps = p
            .expand_stage(0, &[("PATH".into(), "/bin".into())])
            .expect("expands");
        // Global args are not visible before the stage re-declares them.
        assert!(steps[0].args.is_empty());
        assert_eq!(steps[1].args, vec![("V".to_string(), "global".to_string())]);
        let InstructionKind::Env(kvs) = &steps[2].instruction.kind else {
            panic!("not env")
        };
        assert_eq!(kvs[0].value, "global-x");
        assert_eq!(
            steps[4].instruction.kind,
            InstructionKind::Workdir("/override".into())
        );
        assert!(steps[5]
            .env
            .contains(&("ONLY".to_string(), "g".to_string())));
        assert!(steps[5]
            .env
            .contains(&("PATH".to_string(), "/bin".to_string())));
    }

    #[test]
    fn cache_keys() {
        let p = plan("FROM a\nRUN echo hi\nRUN echo hi\nCOPY x /y\n", &[]).expect("plans");
        let steps = p.expand_stage(0, &[]).expect("expands");
        let base = base_cache_key("sha256:abc", Some("linux/amd64"));
        assert_ne!(base, base_cache_key("sha256:abc", None));
        let k1 = cache_key(&base, &steps[0].instruction, &[], None);
        // Same instruction, same parent: same key, whatever its line.
        assert_eq!(k1, cache_key(&base, &steps[1].instruction, &[], None));
        let k2 = cache_key(&k1, &steps[1].instruction, &[], None);
        assert_ne!(k1, k2, "parent changes the key");
        let a = [
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "2".to_string()),
        ];
        let b = [
            ("B".to_string(), "2".to_string()),
            ("A".to_string(), "1".to_string()),
        ];
        assert_eq!(
            cache_key(&base, &steps[0].instruction, &a, None),
            cache_key(&base, &steps[0].instruction, &b, None)
        );
        assert_ne!(k1, cache_key(&base, &steps[0].instruction, &a, None));
        let c1 = cache_key(&base, &steps[2].instruction, &[], Some("sha256:1"));
        let c2 = cache_key(&base, &steps[2].instruction, &[], Some("sha256:2"));
        assert_ne!(c1, c2, "content hash changes the key");
        assert!(c1.starts_with("sha256:") && c1.len() == 71);
    }
}
