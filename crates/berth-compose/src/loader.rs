//! Loading a compose project: finding the files, the environment, the project name, and
//! turning YAML into one normalized model.
//!
//! The pipeline follows compose-go's: for each file (the `-f` files, else the first of
//! `compose.yaml`, `compose.yml`, `docker-compose.yml`, `docker-compose.yaml` found in the
//! current directory or a parent, plus its `*.override.*` companion) parse the YAML (anchors,
//! aliases and `<<` merge keys are applied by serde-saphyr), interpolate variables, validate
//! against the schema, expand `include`, normalize short syntaxes (relative paths against
//! the project directory), resolve `extends`; then merge the files in order, select the
//! services by profile, fold `env_file` into `environment`, give networks and volumes their
//! project-scoped names, and check references (depends_on, networks, volumes, secrets).
//! Before each file (or an extending service, or an included file) is merged onto what
//! came before, the paths it tagged `!reset` or `!override` are deleted from that base
//! ([`crate::yaml`]), which is all the two tags need.
//!
//! The interpolation environment is the process environment over the `.env` file (or the
//! `--env-file`s): the process wins, as in docker compose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::dotenv::{self, DotenvError};
use crate::interpolate::{InterpolateError, Interpolator};
use crate::merge::merge_map;
use crate::normalize::{self, NormalizeError};
use crate::schema::{self, SchemaError};
use crate::yaml::{self, MergeTag, Parsed, YamlError};

/// Errors of loading a project.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no configuration file provided: not found")]
    NoConfig,
    #[error("open {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// `location` is `file:line:col` when the parser knows the position.
    #[error("yaml: {location}: {message}")]
    Yaml { location: String, message: String },
    #[error("{path}: {source}")]
    Interpolate {
        path: String,
        source: InterpolateError,
    },
    #[error("validating {path}: {source}")]
    Schema { path: String, source: SchemaError },
    #[error("{0}")]
    Normalize(#[from] NormalizeError),
    /// A normalization error with the file (and line, when found) it comes from.
    #[error("{location}: {source}")]
    NormalizeAt {
        location: String,
        source: NormalizeError,
    },
    #[error("{0}")]
    Dotenv(#[from] DotenvError),
    #[error("{path}: top-level object must be a mapping")]
    NotMapping { path: String },
    #[error("cannot extend service {service:?} in {path}: service not found")]
    ExtendsMissing { service: String, path: String },
    #[error("circular reference with extends in service {service:?}")]
    ExtendsCycle { service: String },
    #[error("imported compose file {path} defines conflicting {kind} {name:?}")]
    IncludeConflict {
        path: String,
        kind: String,
        name: String,
    },
    #[error("{name:?} is not a valid project name: it must contain only characters from [a-z0-9_-] and start with [a-z0-9]")]
    ProjectName { name: String },
    #[error("{0}: invalid compose project")]
    Reference(String),
    #[error("env file {path} not found: {source}")]
    EnvFile {
        path: String,
        source: std::io::Error,
    },
}

/// What the command line and environment say about the project.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f` files, in order (relative to `cwd`).
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--project-directory`.
    pub project_directory: Option<PathBuf>,
    /// `--env-file` (replaces `.env`).
    pub env_files: Vec<PathBuf>,
    /// `--profile`.
    pub profiles: Vec<String>,
    /// Services named on the command line: enabled whatever their profiles.
    pub services: Vec<String>,
    /// The directory to search from; the process cwd when empty.
    pub cwd: PathBuf,
    /// The process environment.
    pub os_env: BTreeMap<String, String>,
    /// `--no-consistency`: skip the checks that references (depends_on, networks,
    /// volumes, secrets) are defined.
    pub no_consistency: bool,
}

impl LoadOptions {
    /// Options for the process: its cwd and environment.
    pub fn from_process() -> LoadOptions {
        LoadOptions {
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            os_env: std::env::vars().collect(),
            ..LoadOptions::default()
        }
    }
}

/// A loaded, normalized project.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub working_dir: PathBuf,
    pub config_files: Vec<PathBuf>,
    /// The interpolation environment (process over `.env`).
    pub environment: BTreeMap<String, String>,
    /// `{name, services, networks, volumes, secrets, configs}` in canonical form.
    pub model: Map<String, Value>,
    /// Names of services left out by profiles.
    pub disabled: Vec<String>,
    /// Warnings to print on stderr (unset variables, obsolete `version`).
    pub warnings: Vec<String>,
}

const CANDIDATES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

fn override_of(file: &Path) -> Option<PathBuf> {
    let name = file.file_name()?.to_str()?;
    let (stem, _) = name.rsplit_once('.')?;
    let dir = file.parent()?;
    ["yaml", "yml"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.override.{ext}")))
        .find(|p| p.is_file())
}

/// Find the compose file in `cwd` or the nearest parent, plus its override file.
pub fn discover(cwd: &Path) -> Option<Vec<PathBuf>> {
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        for c in CANDIDATES {
            let p = d.join(c);
            if p.is_file() {
                let mut files = vec![p.clone()];
                files.extend(override_of(&p));
                return Some(files);
            }
        }
        dir = d.parent();
    }
    None
}

/// Docker compose's name normalization: lower-case, only `[a-z0-9_-]`, no leading `_`/`-`.
pub fn normalize_project_name(s: &str) -> String {
    let lower: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lower.trim_start_matches(['_', '-']).to_string()
}

fn valid_project_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn parse_yaml(text: &str, path: &Path) -> Result<Parsed, LoadError> {
    let mut p = yaml::parse(text).map_err(|e| {
        let YamlError::Syntax {
            line,
            column,
            message,
        } = e;
        let location = match (line, column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", path.display()),
            (Some(l), None) => format!("{}:{l}", path.display()),
            _ => path.display().to_string(),
        };
        LoadError::Yaml { location, message }
    })?;
    if p.value.is_null() {
        p.value = json!({});
    }
    Ok(p)
}

/// Compose file format 1 (docker-compose 1.x): services at the top level, no `version`
/// and no `services` key. It is read as if under `services:`, with `net` renamed to
/// `network_mode`, as docker-compose 1.29 did.
fn upgrade_v1(v: Value) -> Value {
    let Value::Object(m) = &v else { return v };
    const TOP: &[&str] = &[
        "version", "services", "networks", "volumes", "secrets", "configs", "name", "include",
        "models",
    ];
    let looks_v1 = !m.is_empty()
        && m.keys()
            .all(|k| !TOP.contains(&k.as_str()) && !k.starts_with("x-"))
        && m.values().all(Value::is_object);
    if !looks_v1 {
        return v;
    }
    let mut services = Map::new();
    for (name, svc) in m {
        let mut svc = svc.clone();
        if let Some(o) = svc.as_object_mut() {
            if let Some(net) = o.remove("net") {
                o.insert("network_mode".into(), net);
            }
        }
        services.insert(name.clone(), svc);
    }
    json!({ "services": services })
}

fn abs(cwd: &Path, p: &Path) -> PathBuf {
    normalize::clean(&if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    })
}

struct Ctx {
    env: BTreeMap<String, String>,
    unset: Vec<String>,
    /// `(file, service)` pairs being extended, to detect cycles.
    extending: Vec<(PathBuf, String)>,
    /// The `!reset`/`!override` paths of each file read, applied where it is merged.
    tags: BTreeMap<PathBuf, Vec<(Vec<String>, MergeTag)>>,
}

impl Ctx {
    /// Read one file and bring it to normalized form with `base` for relative paths.
    fn load_file(
        &mut self,
        path: &Path,
        base: &Path,
        extends: bool,
    ) -> Result<Map<String, Value>, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.load_text(&text, path, base, extends)
    }

    /// `extends` false leaves `extends` fields unresolved (for a file being extended from,
    /// where only the one service is resolved, so that a file may extend itself).
    fn load_text(
        &mut self,
        text: &str,
        path: &Path,
        base: &Path,
        extends: bool,
    ) -> Result<Map<String, Value>, LoadError> {
        let Parsed { value: mut v, tags } = parse_yaml(text, path)?;
        self.tags.insert(path.to_path_buf(), tags);
        let mut interp = Interpolator::new(&self.env);
        interp
            .value(&mut v, "")
            .map_err(|source| LoadError::Interpolate {
                path: path.display().to_string(),
                source,
            })?;
        for u in interp.unset {
            if !self.unset.contains(&u) {
                self.unset.push(u);
            }
        }
        let v = upgrade_v1(v);
        schema::validate(&v).map_err(|source| {
            let line = schema::locate_line(text, &source.path, &source.message);
            LoadError::Schema {
                path: match line {
                    Some(l) => format!("{}:{l}", path.display()),
                    None => path.display().to_string(),
                },
                source,
            }
        })?;
        let Value::Object(mut doc) = v else {
            return Err(LoadError::NotMapping {
                path: path.display().to_string(),
            });
        };
        doc.retain(|k, _| !k.starts_with("x-"));
        if let Some(Value::Object(services)) = doc.get_mut("services") {
            for (name, svc) in services.iter_mut() {
                if svc.is_null() {
                    *svc = json!({});
                }
                if let Some(m) = svc.as_object_mut() {
                    normalize::service(name, m, base).map_err(|source| {
                        let line = schema::locate_line(text, source.path(), "");
                        LoadError::NormalizeAt {
                            location: match line {
                                Some(l) => format!("{}:{l}", path.display()),
                                None => path.display().to_string(),
                            },
                            source,
                        }
                    })?;
                }
            }
        }
        normalize::resources(&mut doc, base);
        if extends {
            self.resolve_extends(&mut doc, path, base)?;
        }
        if let Some(Value::Array(includes)) = doc.remove("include") {
            for inc in includes {
                self.include(&mut doc, &inc, base)?;
            }
        }
        Ok(doc)
    }

    fn include(
        &mut self,
        doc: &mut Map<String, Value>,
        inc: &Value,
        base: &Path,
    ) -> Result<(), LoadError> {
        let (paths, dir, env_files): (Vec<String>, Option<String>, Vec<String>) = match inc {
            Value::String(s) => (vec![s.clone()], None, Vec::new()),
            Value::Object(m) => {
                let list = |k: &str| -> Vec<String> {
                    match m.get(k) {
                        Some(Value::String(s)) => vec![s.clone()],
                        Some(Value::Array(a)) => a
                            .iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect(),
                        _ => Vec::new(),
                    }
                };
                (
                    list("path"),
                    m.get("project_directory")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    list("env_file"),
                )
            }
            _ => return Ok(()),
        };
        let Some(first) = paths.first() else {
            return Ok(());
        };
        let first = abs(base, Path::new(first));
        let inc_dir = match dir {
            Some(d) => abs(base, Path::new(&d)),
            None => first
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| base.to_path_buf()),
        };
        // The included project sees its own `.env` (or env_file) under the process env.
        let saved = self.env.clone();
        let env_paths: Vec<PathBuf> = if env_files.is_empty() {
            let d = inc_dir.join(".env");
            if d.is_file() {
                vec![d]
            } else {
                Vec::new()
            }
        } else {
            env_files.iter().map(|e| abs(base, Path::new(e))).collect()
        };
        for ep in env_paths {
            for (k, v) in dotenv::read(&ep, &saved)? {
                self.env.entry(k).or_insert(v);
            }
        }
        let mut merged = Map::new();
        for p in &paths {
            let file = abs(base, Path::new(p));
            let d = self.load_file(&file, &inc_dir, true)?;
            self.clear_tagged(&mut merged, &file, &[]);
            merge_map(&mut merged, d);
        }
        self.env = saved;
        for kind in ["services", "networks", "volumes", "secrets", "configs"] {
            let Some(Value::Object(incoming)) = merged.remove(kind) else {
                continue;
            };
            let target = doc
                .entry(kind)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("resource sections are mappings after validation");
            for (name, def) in incoming {
                if let Some(existing) = target.get(&name) {
                    if existing != &def {
                        return Err(LoadError::IncludeConflict {
                            path: first.display().to_string(),
                            kind: kind.trim_end_matches('s').to_string(),
                            name,
                        });
                    }
                }
                target.insert(name, def);
            }
        }
        Ok(())
    }

    fn resolve_extends(
        &mut self,
        doc: &mut Map<String, Value>,
        path: &Path,
        base: &Path,
    ) -> Result<(), LoadError> {
        let Some(Value::Object(services)) = doc.get("services").cloned() else {
            return Ok(());
        };
        let mut resolved = services.clone();
        for name in services.keys() {
            let svc = self.extend_one(&services, name, path, base)?;
            resolved.insert(name.clone(), svc);
        }
        doc.insert("services".into(), Value::Object(resolved));
        Ok(())
    }

    /// The service `name` of `services` (from `path`) with its `extends` chain applied.
    fn extend_one(
        &mut self,
        services: &Map<String, Value>,
        name: &str,
        path: &Path,
        base: &Path,
    ) -> Result<Value, LoadError> {
        let svc = services
            .get(name)
            .cloned()
            .ok_or_else(|| LoadError::ExtendsMissing {
                service: name.to_string(),
                path: path.display().to_string(),
            })?;
        let Some(ext) = svc.get("extends").cloned() else {
            return Ok(svc);
        };
        let key = (path.to_path_buf(), name.to_string());
        if self.extending.contains(&key) {
            return Err(LoadError::ExtendsCycle {
                service: name.to_string(),
            });
        }
        self.extending.push(key);
        let (target, file) = match &ext {
            Value::String(s) => (s.clone(), None),
            Value::Object(m) => (
                m.get("service")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                m.get("file").and_then(Value::as_str).map(str::to_string),
            ),
            _ => (String::new(), None),
        };
        let mut parent = match file {
            None => self.extend_one(services, &target, path, base)?,
            Some(f) => {
                let fpath = abs(base, Path::new(&f));
                let fdir = fpath
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| base.to_path_buf());
                let other = self.load_file(&fpath, &fdir, false)?;
                let osvcs = other
                    .get("services")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                self.extend_one(&osvcs, &target, &fpath, &fdir)?
            }
        };
        self.extending.pop();
        let mut child = svc;
        if let Some(m) = child.as_object_mut() {
            m.remove("extends");
        }
        if let (Some(p), Value::Object(c)) = (parent.as_object_mut(), child) {
            p.remove("extends");
            self.clear_tagged(p, path, &["services", name]);
            merge_map(p, c);
        }
        Ok(parent)
    }

    /// Before `file` (or its service under `prefix`) is merged onto `base`, remove from
    /// `base` what the file tagged `!reset` or `!override`.
    fn clear_tagged(&self, base: &mut Map<String, Value>, file: &Path, prefix: &[&str]) {
        if let Some(tags) = self.tags.get(file) {
            yaml::clear_tagged(base, &yaml::tags_under(tags, prefix));
        }
    }
}

/// Load a project as docker compose does.
pub fn load(opts: &LoadOptions) -> Result<Project, LoadError> {
    let cwd = if opts.cwd.as_os_str().is_empty() {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
    } else {
        opts.cwd.clone()
    };
    let files: Vec<PathBuf> = if !opts.files.is_empty() {
        opts.files.iter().map(|f| abs(&cwd, f)).collect()
    } else if let Some(list) = opts.os_env.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        let sep = opts
            .os_env
            .get("COMPOSE_PATH_SEPARATOR")
            .map(String::as_str)
            .unwrap_or(":");
        list.split(sep).map(|f| abs(&cwd, Path::new(f))).collect()
    } else {
        discover(&cwd).ok_or(LoadError::NoConfig)?
    };
    let working_dir = match &opts.project_directory {
        Some(d) => abs(&cwd, d),
        None => files[0]
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cwd.clone()),
    };

    let mut env = opts.os_env.clone();
    let env_files: Vec<PathBuf> = if opts.env_files.is_empty() {
        let d = working_dir.join(".env");
        if d.is_file() {
            vec![d]
        } else {
            Vec::new()
        }
    } else {
        opts.env_files.iter().map(|e| abs(&cwd, e)).collect()
    };
    // Later env files override earlier ones; the process environment wins over them all.
    let mut from_files: BTreeMap<String, String> = BTreeMap::new();
    for ef in &env_files {
        from_files.extend(dotenv::read(ef, &opts.os_env)?);
    }
    for (k, v) in from_files {
        env.entry(k).or_insert(v);
    }

    let mut texts = Vec::new();
    for f in &files {
        let t = std::fs::read_to_string(f).map_err(|source| LoadError::Read {
            path: f.display().to_string(),
            source,
        })?;
        texts.push(t);
    }

    // The project name is needed for interpolation (`${COMPOSE_PROJECT_NAME}`), so it is
    // decided from the raw `name:` fields before the files are interpolated.
    let name = if let Some(n) = &opts.project_name {
        n.clone()
    } else if let Some(n) = env.get("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()) {
        n.clone()
    } else {
        let mut from_file = None;
        for (t, f) in texts.iter().zip(&files) {
            let raw = parse_yaml(t, f)?.value;
            if let Some(n) = raw.get("name").and_then(Value::as_str) {
                let mut i = Interpolator::new(&env);
                from_file = Some(
                    i.string(n, "name")
                        .map_err(|source| LoadError::Interpolate {
                            path: f.display().to_string(),
                            source,
                        })?,
                );
            }
        }
        match from_file {
            Some(n) => n,
            None => normalize_project_name(
                &working_dir
                    .file_name()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default(),
            ),
        }
    };
    if !valid_project_name(&name) {
        return Err(LoadError::ProjectName { name });
    }
    env.insert("COMPOSE_PROJECT_NAME".into(), name.clone());

    let mut ctx = Ctx {
        env,
        unset: Vec::new(),
        extending: Vec::new(),
        tags: BTreeMap::new(),
    };
    let mut model = Map::new();
    let mut warnings = Vec::new();
    for (t, f) in texts.iter().zip(&files) {
        let mut doc = ctx.load_text(t, f, &working_dir, true)?;
        if doc.remove("version").is_some() {
            warnings.push(format!(
                "{}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
                f.display()
            ));
        }
        doc.remove("name");
        ctx.clear_tagged(&mut model, f, &[]);
        merge_map(&mut model, doc);
    }
    let env = ctx.env;
    for u in &ctx.unset {
        warnings.insert(
            0,
            format!("The \"{u}\" variable is not set. Defaulting to a blank string."),
        );
    }

    let mut profiles: Vec<String> = opts.profiles.clone();
    if let Some(p) = env.get("COMPOSE_PROFILES") {
        profiles.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    let mut services = match model.remove("services") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let disabled = select_profiles(&mut services, &profiles, &opts.services);
    finish_services(&mut services, &env)?;
    model.insert("name".into(), json!(name));
    model.insert("services".into(), Value::Object(services));
    finish_resources(&mut model, &name)?;
    if !opts.no_consistency {
        check_references(&model)?;
    }

    Ok(Project {
        name,
        working_dir,
        config_files: files,
        environment: env,
        model,
        disabled,
        warnings,
    })
}

/// Keep the services whose profiles are enabled (or that have none, or that are named),
/// plus everything they depend on; return the names left out.
fn select_profiles(
    services: &mut Map<String, Value>,
    profiles: &[String],
    named: &[String],
) -> Vec<String> {
    let all = profiles.iter().any(|p| p == "*");
    let mut keep: BTreeSet<String> = services
        .iter()
        .filter(|(name, svc)| {
            let ps: Vec<&str> = svc
                .get("profiles")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            ps.is_empty()
                || all
                || ps.iter().any(|p| profiles.iter().any(|q| q == p))
                || named.iter().any(|n| n == *name)
        })
        .map(|(n, _)| n.clone())
        .collect();
    // Dependencies of selected services come along.
    let mut queue: Vec<String> = keep.iter().cloned().collect();
    while let Some(n) = queue.pop() {
        if let Some(Value::Object(deps)) = services.get(&n).and_then(|s| s.get("depends_on")) {
            for d in deps.keys() {
                if services.contains_key(d) && keep.insert(d.clone()) {
                    queue.push(d.clone());
                }
            }
        }
    }
    let disabled: Vec<String> = services
        .keys()
        .filter(|k| !keep.contains(*k))
        .cloned()
        .collect();
    services.retain(|k, _| keep.contains(k));
    disabled
}

fn finish_services(
    services: &mut Map<String, Value>,
    env: &BTreeMap<String, String>,
) -> Result<(), LoadError> {
    for (_, svc) in services.iter_mut() {
        let Some(s) = svc.as_object_mut() else {
            continue;
        };
        // env_file values first, then `environment` on top.
        let mut environment = Map::new();
        if let Some(Value::Array(files)) = s.remove("env_file") {
            for f in files {
                let path = f.get("path").and_then(Value::as_str).unwrap_or("");
                let required = f.get("required").and_then(Value::as_bool).unwrap_or(true);
                let p = Path::new(path);
                if !p.is_file() {
                    if required {
                        return Err(LoadError::EnvFile {
                            path: path.to_string(),
                            source: std::io::Error::from(std::io::ErrorKind::NotFound),
                        });
                    }
                    continue;
                }
                for (k, v) in dotenv::read(p, env)? {
                    environment.insert(k, json!(v));
                }
            }
        }
        if let Some(Value::Object(e)) = s.remove("environment") {
            for (k, v) in e {
                // `KEY` without a value takes it from the environment when set there.
                // and an env_file value is kept over an unresolved one.
                match v {
                    Value::Null => match env.get(&k) {
                        Some(x) => {
                            environment.insert(k, json!(x));
                        }
                        None => {
                            environment.entry(k).or_insert(Value::Null);
                        }
                    },
                    other => {
                        environment.insert(k, other);
                    }
                }
            }
        }
        if !environment.is_empty() {
            s.insert("environment".into(), Value::Object(environment));
        }
        add_implied_dependencies(s);
        if s.get("networks").is_none() && s.get("network_mode").is_none() {
            s.insert("networks".into(), json!({"default": null}));
        }
        if let Some(n) = s.remove("scale") {
            let d = s.entry("deploy").or_insert_with(|| json!({}));
            if let Some(dm) = d.as_object_mut() {
                dm.entry("replicas").or_insert(n);
            }
        }
    }
    Ok(())
}

/// docker compose (compose-go's normalize) makes a service depend on the services whose
/// namespaces (`network_mode`, `ipc`, `pid`, `uts`, `cgroup`: `service:x`), volumes
/// (`volumes_from`) or name (`links`) it uses: `x` must exist first, and a restart of `x`
/// restarts it. Without this, `network_mode: service:web` could be created before `web`.
fn add_implied_dependencies(s: &mut Map<String, Value>) {
    let mut implied: Vec<String> = Vec::new();
    for k in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
        if let Some(n) = s
            .get(k)
            .and_then(Value::as_str)
            .and_then(|v| v.strip_prefix("service:"))
        {
            implied.push(n.to_string());
        }
    }
    for (k, skip_prefix) in [("links", None), ("volumes_from", Some("container:"))] {
        let Some(Value::Array(items)) = s.get(k) else {
            continue;
        };
        for item in items.iter().filter_map(Value::as_str) {
            if skip_prefix.is_some_and(|p| item.starts_with(p)) {
                continue;
            }
            if let Some(n) = item.split(':').next().filter(|n| !n.is_empty()) {
                implied.push(n.to_string());
            }
        }
    }
    if implied.is_empty() {
        return;
    }
    let deps = s.entry("depends_on").or_insert_with(|| json!({}));
    if let Some(m) = deps.as_object_mut() {
        for n in implied {
            m.entry(n).or_insert_with(
                || json!({"condition": "service_started", "required": true, "restart": true}),
            );
        }
    }
}

fn finish_resources(model: &mut Map<String, Value>, project: &str) -> Result<(), LoadError> {
    let uses_default = model
        .get("services")
        .and_then(Value::as_object)
        .is_some_and(|s| {
            s.values().any(|svc| {
                svc.get("networks")
                    .and_then(Value::as_object)
                    .is_some_and(|n| n.contains_key("default"))
            })
        });
    if uses_default {
        let nets = model.entry("networks").or_insert_with(|| json!({}));
        if let Some(n) = nets.as_object_mut() {
            n.entry("default").or_insert_with(|| json!({}));
        }
    }
    for kind in ["networks", "volumes", "secrets", "configs"] {
        let Some(Value::Object(m)) = model.get_mut(kind) else {
            continue;
        };
        for (key, def) in m.iter_mut() {
            if def.is_null() {
                *def = json!({});
            }
            let Some(d) = def.as_object_mut() else {
                continue;
            };
            if d.get("name").and_then(Value::as_str).is_none() {
                let external = d.get("external").and_then(Value::as_bool).unwrap_or(false);
                let n = if external {
                    key.clone()
                } else {
                    format!("{project}_{key}")
                };
                d.insert("name".into(), json!(n));
            }
        }
        if m.is_empty() {
            model.remove(kind);
        }
    }
    Ok(())
}

fn check_references(model: &Map<String, Value>) -> Result<(), LoadError> {
    let empty = Map::new();
    let section = |k: &str| model.get(k).and_then(Value::as_object).unwrap_or(&empty);
    let services = section("services");
    for (name, svc) in services {
        if let Some(Value::Object(deps)) = svc.get("depends_on") {
            for (d, opts) in deps {
                let required = opts
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                if !services.contains_key(d) && required {
                    return Err(LoadError::Reference(format!(
                        "service {name:?} depends on undefined service {d:?}"
                    )));
                }
            }
        }
        if let Some(Value::Object(nets)) = svc.get("networks") {
            for n in nets.keys() {
                if !section("networks").contains_key(n) {
                    return Err(LoadError::Reference(format!(
                        "service {name:?} refers to undefined network {n}"
                    )));
                }
            }
        }
        if let Some(Value::Array(vols)) = svc.get("volumes") {
            for v in vols {
                if v.get("type").and_then(Value::as_str) != Some("volume") {
                    continue;
                }
                if let Some(src) = v.get("source").and_then(Value::as_str) {
                    if !section("volumes").contains_key(src) {
                        return Err(LoadError::Reference(format!(
                            "service {name:?} refers to undefined volume {src}"
                        )));
                    }
                }
            }
        }
        for kind in ["secrets", "configs"] {
            if let Some(Value::Array(refs)) = svc.get(kind) {
                for r in refs {
                    if let Some(src) = r.get("source").and_then(Value::as_str) {
                        if !section(kind).contains_key(src) {
                            return Err(LoadError::Reference(format!(
                                "service {name:?} refers to undefined {} {src}",
                                kind.trim_end_matches('s')
                            )));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

impl Project {
    /// The services mapping.
    pub fn services(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.model
            .get("services")
            .and_then(Value::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    /// One service by name.
    pub fn service(&self, name: &str) -> Option<&Value> {
        self.services().get(name)
    }

    /// A top-level section (`networks`, `volumes`, ...) as a map, empty when absent.
    pub fn section(&self, kind: &str) -> Map<String, Value> {
        self.model
            .get(kind)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// The model as `docker compose config` prints it, in its key order.
    pub fn ordered(&self) -> Vec<(&str, &Value)> {
        [
            "name", "services", "networks", "volumes", "secrets", "configs",
        ]
        .iter()
        .filter_map(|k| self.model.get(*k).map(|v| (*k, v)))
        .collect()
    }
}
