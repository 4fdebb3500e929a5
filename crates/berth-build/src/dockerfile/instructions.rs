//! Typed instructions: a syntax node becomes an [`Instruction`] with validated flags and
//! arguments, and [`expand_instruction`] applies variable expansion to it.
//!
//! Validation and messages follow BuildKit's `instructions` package, so a Dockerfile that
//! BuildKit rejects is rejected here with the same words (`unknown instruction: FOO`,
//! `unknown flag: --foo`, `FROM requires either one or three arguments` ...), prefixed with
//! `Dockerfile:LINE`.
//!
//! Expansion is applied exactly where BuildKit applies it: ADD, COPY (not `--from`, which
//! must not contain variables), ENV, EXPOSE (split into words), FROM (image and platform, with
//! the global ARGs), LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG defaults and the options
//! of `RUN --mount`. RUN, CMD and ENTRYPOINT command lines, SHELL, HEALTHCHECK, MAINTAINER and
//! ONBUILD are left as written (the shell or the child image expands them).
//!
//! `RUN --mount` values may contain variables; a mount whose text contains `$` is therefore
//! only fully validated when it is expanded ([`MountFlag::mount`] is `None` until then),
//! exactly the point at which BuildKit validates it.

use std::collections::HashMap;
use std::time::Duration;

use super::duration::{parse_go_duration, parse_ram_in_bytes};
use super::parser::{self, chomp_heredoc_content, parse_heredoc, Node, ParseError};
use crate::shell::{EmptyEnv, Env, Lex, ShellError};

/// A typed instruction that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstructionError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("Dockerfile:{line}: unknown instruction: {name}")]
    UnknownInstruction { line: usize, name: String },
    #[error("Dockerfile:{line}: unknown flag: {flag}")]
    UnknownFlag { line: usize, flag: String },
    #[error("Dockerfile:{line}: {message}")]
    Invalid { line: usize, message: String },
    #[error("Dockerfile:{line}: {source}")]
    Expand { line: usize, source: ShellError },
}

impl InstructionError {
    /// The Dockerfile line the error belongs to.
    pub fn line(&self) -> usize {
        match self {
            InstructionError::Parse(e) => e.line(),
            InstructionError::UnknownInstruction { line, .. }
            | InstructionError::UnknownFlag { line, .. }
            | InstructionError::Invalid { line, .. }
            | InstructionError::Expand { line, .. } => *line,
        }
    }
}

/// A parsed, validated instruction with its source position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub kind: InstructionKind,
    /// The instruction name as written.
    pub name: String,
    /// The logical source line.
    pub original: String,
    pub start_line: usize,
    pub end_line: usize,
    /// The Dockerfile's escape token, used when the instruction is expanded.
    pub escape_token: char,
    /// Comment lines directly above the instruction.
    pub comments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    From(From),
    Run(Run),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Env(Vec<KeyValue>),
    Arg(Vec<ArgDef>),
    Label(Vec<KeyValue>),
    Expose(Vec<String>),
    User(String),
    Workdir(String),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
    Onbuild(Onbuild),
    Copy(Copy),
    Add(Add),
    Maintainer(String),
}

/// `FROM [--platform=p] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    pub image: String,
    /// Lower-cased stage name.
    pub stage_name: Option<String>,
    pub platform: Option<String>,
}

/// A command line of RUN, CMD or ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// Exec form: the JSON array. Shell form: one string, to be run by the SHELL.
    pub args: Vec<String>,
    /// True for the shell form.
    pub prepend_shell: bool,
    /// Heredoc bodies (RUN only).
    pub files: Vec<InlineFile>,
}

/// A heredoc attached to RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    pub name: String,
    pub data: String,
    pub chomp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub command: CommandLine,
    pub mounts: Vec<MountFlag>,
    pub network: NetworkMode,
    pub security: Security,
    /// `--device` values, as written.
    pub devices: Vec<String>,
}

/// One `--mount=` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountFlag {
    /// The flag value as written.
    pub raw: String,
    /// The parsed mount; `None` while the value holds variables that are not expanded yet.
    pub mount: Option<Mount>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

/// A parsed `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub typ: MountType,
    pub from: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: bool,
    pub size_limit: Option<i64>,
    pub cache_id: Option<String>,
    pub sharing: Option<CacheSharing>,
    pub required: bool,
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Sandbox,
    Insecure,
}

/// An ENV or LABEL pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// The legacy `ENV key value` form (no `=`).
    pub legacy: bool,
}

/// `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    pub key: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    Cmd(HealthcheckCmd),
}

/// `HEALTHCHECK [flags] CMD ...`; durations of zero mean "inherit the default".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckCmd {
    /// `["CMD", args...]` (exec form) or `["CMD-SHELL", "command"]`.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

/// `ONBUILD <instruction>`: the trigger is stored as text, as in an image config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onbuild {
    /// The trigger instruction text (with heredoc bodies appended), as BuildKit stores it.
    pub expression: String,
    /// The trigger's syntax node.
    pub trigger: Node,
}

/// A heredoc used as a COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceContent {
    /// The file name (the heredoc delimiter).
    pub path: String,
    pub data: String,
    /// Whether the body undergoes variable expansion.
    pub expand: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub sources: Vec<String>,
    pub contents: Vec<SourceContent>,
    pub dest: String,
    /// `--from`: a stage name, a stage index or an image.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    pub sources: Vec<String>,
    pub contents: Vec<SourceContent>,
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub keep_git_dir: Option<bool>,
    pub checksum: Option<String>,
    pub unpack: Option<bool>,
    pub excludes: Vec<String>,
}

/// Parses a Dockerfile into typed instructions.
pub fn parse_instructions(src: &str) -> Result<Vec<Instruction>, InstructionError> {
    let df = parser::parse(src)?;
    df.children
        .iter()
        .map(|n| parse_instruction(n, df.escape_token))
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Bool,
    String,
    Strings,
}

/// BuildKit's `BFlags`: declared flags, parsed from the node's flag words.
struct Flags<'a> {
    line: usize,
    args: &'a [String],
    decl: Vec<(&'static str, FlagKind)>,
    values: HashMap<&'static str, Vec<String>>,
}

impl<'a> Flags<'a> {
    fn new(node: &'a Node) -> Self {
        Flags {
            line: node.start_line,
            args: &node.flags,
            decl: Vec::new(),
            values: HashMap::new(),
        }
    }
    fn add(&mut self, name: &'static str, kind: FlagKind) -> &mut Self {
        self.decl.push((name, kind));
        self
    }
    fn invalid(&self, message: String) -> InstructionError {
        InstructionError::Invalid {
            line: self.line,
            message,
        }
    }
    fn parse(&mut self) -> Result<(), InstructionError> {
        for a in self.args {
            if a == "--" {
                return Ok(());
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(self.invalid(format!("arg should start with -- : {a}")));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(decl_name, kind)) = self.decl.iter().find(|(n, _)| *n == name) else {
                return Err(InstructionError::UnknownFlag {
                    line: self.line,
                    flag: format!("--{name}"),
                });
            };
            if self.values.contains_key(decl_name) && kind != FlagKind::Strings {
                return Err(self.invalid(format!("duplicate flag specified: --{name}")));
            }
            let v = match kind {
                FlagKind::Bool => match value {
                    Some("") => {
                        return Err(self.invalid(format!("missing a value on flag: --{name}")))
                    }
                    None => "true".to_owned(),
                    Some(v) => match v.to_lowercase().as_str() {
                        "true" => "true".to_owned(),
                        "false" => "false".to_owned(),
                        _ => {
                            return Err(self.invalid(format!(
                                "expecting boolean value for flag --{name}, not: {v}"
                            )))
                        }
                    },
                },
                FlagKind::String | FlagKind::Strings => match value {
                    None => return Err(self.invalid(format!("missing a value on flag: --{name}"))),
                    Some(v) => v.to_owned(),
                },
            };
            self.values.entry(decl_name).or_default().push(v);
        }
        Ok(())
    }
    fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }
    fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }
    fn bool_opt(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }
    fn bool(&self, name: &str) -> bool {
        self.bool_opt(name).unwrap_or(false)
    }
}

/// Converts one syntax node to a typed instruction.
pub fn parse_instruction(node: &Node, escape_token: char) -> Result<Instruction, InstructionError> {
    let line = node.start_line;
    let invalid = |message: String| InstructionError::Invalid { line, message };
    let args = node.arg_strings();
    let mut flags = Flags::new(node);
    let upper = node.value.to_ascii_uppercase();
    let kind = match upper.as_str() {
        "ENV" | "LABEL" => {
            flags.parse()?;
            let pairs = parse_kvps(&args, &upper).map_err(invalid)?;
            if upper == "ENV" {
                InstructionKind::Env(pairs)
            } else {
                InstructionKind::Label(pairs)
            }
        }
        "MAINTAINER" => {
            one_arg(&args, "MAINTAINER").map_err(invalid)?;
            flags.parse()?;
            InstructionKind::Maintainer(args[0].clone())
        }
        "FROM" => {
            let stage_name = match args.len() {
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let name = args[2].to_lowercase();
                    if !valid_stage_name(&name) {
                        return Err(invalid(format!(
                            "invalid name for build stage: {}, name can't start with a number or contain symbols",
                            crate::goquote::quote(&args[2])
                        )));
                    }
                    Some(name)
                }
                1 => None,
                _ => {
                    return Err(invalid(
                        "FROM requires either one or three arguments".to_owned(),
                    ))
                }
            };
            flags.add("platform", FlagKind::String).parse()?;
            InstructionKind::From(From {
                image: args[0].clone(),
                stage_name,
                platform: flags.string("platform").filter(|p| !p.is_empty()),
            })
        }
        "ONBUILD" => {
            if args.is_empty() {
                return Err(invalid(at_least_one("ONBUILD")));
            }
            flags.parse()?;
            let trigger = node
                .child()
                .cloned()
                .ok_or_else(|| invalid(at_least_one("ONBUILD")))?;
            let trigger_name = args[0].trim().to_ascii_uppercase();
            match trigger_name.as_str() {
                "ONBUILD" => {
                    return Err(invalid(
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_owned(),
                    ))
                }
                "MAINTAINER" | "FROM" => {
                    return Err(invalid(format!(
                        "{trigger_name} isn't allowed as an ONBUILD trigger"
                    )))
                }
                _ => {}
            }
            let mut expression = strip_onbuild_prefix(&node.original).to_owned();
            for h in &node.heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            InstructionKind::Onbuild(Onbuild {
                expression,
                trigger,
            })
        }
        "WORKDIR" | "USER" => {
            one_arg(&args, &upper).map_err(invalid)?;
            flags.parse()?;
            if upper == "WORKDIR" {
                InstructionKind::Workdir(args[0].clone())
            } else {
                InstructionKind::User(args[0].clone())
            }
        }
        "RUN" => {
            flags
                .add("mount", FlagKind::Strings)
                .add("network", FlagKind::String)
                .add("security", FlagKind::String)
                .add("device", FlagKind::Strings)
                .parse()?;
            let network = match flags.string("network").as_deref() {
                None | Some("default") => NetworkMode::Default,
                Some("none") => NetworkMode::None,
                Some("host") => NetworkMode::Host,
                Some(other) => {
                    return Err(invalid(format!(
                        "invalid network mode {}",
                        crate::goquote::quote(other)
                    )))
                }
            };
            let security = match flags.string("security").as_deref() {
                None | Some("sandbox") => Security::Sandbox,
                Some("insecure") => Security::Insecure,
                Some(other) => {
                    return Err(invalid(format!(
                        "security {} is not valid",
                        crate::goquote::quote(other)
                    )))
                }
            };
            let mut mounts = Vec::new();
            for raw in flags.strings("mount") {
                let mount = if raw.contains('$') {
                    check_mount_from(&raw).map_err(invalid)?;
                    None
                } else {
                    Some(parse_mount(&raw).map_err(invalid)?)
                };
                mounts.push(MountFlag { raw, mount });
            }
            InstructionKind::Run(Run {
                command: command_line(node, &args),
                mounts,
                network,
                security,
                devices: flags.strings("device"),
            })
        }
        "CMD" => {
            flags.parse()?;
            InstructionKind::Cmd(command_line(node, &args))
        }
        "ENTRYPOINT" => {
            flags.parse()?;
            InstructionKind::Entrypoint(command_line(node, &args))
        }
        "HEALTHCHECK" => parse_healthcheck(node, &args, &mut flags)?,
        "EXPOSE" => {
            if args.is_empty() {
                return Err(invalid(at_least_one("EXPOSE")));
            }
            flags.parse()?;
            let mut ports = args.clone();
            ports.sort();
            InstructionKind::Expose(ports)
        }
        "VOLUME" => {
            if args.is_empty() {
                return Err(invalid(at_least_one("VOLUME")));
            }
            flags.parse()?;
            let mut vols = Vec::new();
            for v in &args {
                let v = v.trim();
                if v.is_empty() {
                    return Err(invalid(
                        "VOLUME specified can not be an empty string".to_owned(),
                    ));
                }
                vols.push(v.to_owned());
            }
            InstructionKind::Volume(vols)
        }
        "STOPSIGNAL" => {
            one_arg(&args, "STOPSIGNAL").map_err(invalid)?;
            flags.parse()?;
            InstructionKind::StopSignal(args[0].clone())
        }
        "ARG" => {
            if args.is_empty() {
                return Err(invalid(at_least_one("ARG")));
            }
            flags.parse()?;
            let mut defs = Vec::new();
            for a in &args {
                let def = match a.split_once('=') {
                    Some(("", _)) => return Err(invalid("ARG names can not be blank".to_owned())),
                    Some((k, v)) => ArgDef {
                        key: k.to_owned(),
                        default: Some(v.to_owned()),
                    },
                    None => ArgDef {
                        key: a.clone(),
                        default: None,
                    },
                };
                defs.push(def);
            }
            InstructionKind::Arg(defs)
        }
        "SHELL" => {
            flags.parse()?;
            if args.is_empty() {
                return Err(invalid(at_least_one("SHELL")));
            }
            if !node.json {
                return Err(invalid(format!(
                    "SHELL requires the arguments to be in JSON form: {}",
                    node.original.trim()
                )));
            }
            InstructionKind::Shell(args.clone())
        }
        "COPY" => {
            if args.len() < 2 {
                return Err(invalid(no_destination("COPY")));
            }
            flags
                .add("chown", FlagKind::String)
                .add("from", FlagKind::String)
                .add("chmod", FlagKind::String)
                .add("link", FlagKind::Bool)
                .add("exclude", FlagKind::Strings)
                .add("parents", FlagKind::Bool)
                .parse()?;
            let (sources, contents, dest) =
                sources_and_dest(node, &args, "COPY").map_err(invalid)?;
            InstructionKind::Copy(Copy {
                sources,
                contents,
                dest,
                from: non_empty(flags.string("from")),
                chown: non_empty(flags.string("chown")),
                chmod: non_empty(flags.string("chmod")),
                link: flags.bool("link"),
                parents: flags.bool("parents"),
                excludes: flags.strings("exclude"),
            })
        }
        "ADD" => {
            if args.len() < 2 {
                return Err(invalid(no_destination("ADD")));
            }
            flags
                .add("chown", FlagKind::String)
                .add("chmod", FlagKind::String)
                .add("link", FlagKind::Bool)
                .add("keep-git-dir", FlagKind::Bool)
                .add("checksum", FlagKind::String)
                .add("unpack", FlagKind::Bool)
                .add("exclude", FlagKind::Strings)
                .parse()?;
            let (sources, contents, dest) =
                sources_and_dest(node, &args, "ADD").map_err(invalid)?;
            InstructionKind::Add(Add {
                sources,
                contents,
                dest,
                chown: non_empty(flags.string("chown")),
                chmod: non_empty(flags.string("chmod")),
                link: flags.bool("link"),
                keep_git_dir: flags.bool_opt("keep-git-dir"),
                checksum: non_empty(flags.string("checksum")),
                unpack: flags.bool_opt("unpack"),
                excludes: flags.strings("exclude"),
            })
        }
        _ => {
            return Err(InstructionError::UnknownInstruction {
                line,
                name: node.value.clone(),
            })
        }
    };
    Ok(Instruction {
        kind,
        name: node.value.clone(),
        original: node.original.clone(),
        start_line: node.start_line,
        end_line: node.end_line,
        escape_token,
        comments: node.prev_comment.clone(),
    })
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn no_destination(cmd: &str) -> String {
    format!("{cmd} requires at least two arguments, but only one was provided. Destination could not be determined")
}

fn one_arg(args: &[String], cmd: &str) -> Result<(), String> {
    if args.len() != 1 {
        return Err(format!("{cmd} requires exactly one argument"));
    }
    Ok(())
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
}

/// Removes a leading `ONBUILD` (any case) and the whitespace after it.
fn strip_onbuild_prefix(original: &str) -> &str {
    let s = original.trim_start();
    match (s.get(..7), s.get(7..)) {
        (Some(head), Some(rest)) if head.eq_ignore_ascii_case("onbuild") => rest.trim_start(),
        _ => original,
    }
}

fn parse_kvps(args: &[String], cmd: &str) -> Result<Vec<KeyValue>, String> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if !args.chunks_exact(3).remainder().is_empty() {
        return Err(format!("Bad input to {cmd}, too many arguments"));
    }
    let mut out = Vec::new();
    for c in args.chunks(3) {
        if c[0].is_empty() {
            return Err(format!("{cmd} names can not be blank"));
        }
        out.push(KeyValue {
            key: c[0].clone(),
            value: c[1].clone(),
            legacy: c[2].is_empty(),
        });
    }
    Ok(out)
}

fn command_line(node: &Node, args: &[String]) -> CommandLine {
    let args = if args.is_empty() {
        Vec::new()
    } else if node.json {
        args.to_vec()
    } else {
        vec![args.join(" ")]
    };
    CommandLine {
        args,
        prepend_shell: !node.json,
        files: node
            .heredocs
            .iter()
            .map(|h| InlineFile {
                name: h.name.clone(),
                data: h.content.clone(),
                chomp: h.chomp,
            })
            .collect(),
    }
}

type SourcesAndDest = (Vec<String>, Vec<SourceContent>, String);

fn sources_and_dest(node: &Node, args: &[String], cmd: &str) -> Result<SourcesAndDest, String> {
    let (dest, srcs) = args.split_last().expect("caller checked two arguments");
    if matches!(parse_heredoc(dest), Ok(Some(_))) {
        return Err(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut contents = Vec::new();
    for src in srcs {
        match parse_heredoc(src) {
            Ok(Some(h)) => {
                let body = node
                    .heredocs
                    .iter()
                    .find(|d| d.name == h.name)
                    .map(|d| d.content.clone())
                    .unwrap_or_default();
                let data = if h.chomp {
                    chomp_heredoc_content(&body)
                } else {
                    body
                };
                contents.push(SourceContent {
                    path: h.name,
                    data,
                    expand: h.expand,
                });
            }
            _ => sources.push(src.clone()),
        }
    }
    Ok((sources, contents, dest.clone()))
}

fn duration_flag(flags: &Flags<'_>, name: &str) -> Result<Duration, InstructionError> {
    let Some(v) = flags.string(name).filter(|v| !v.is_empty()) else {
        return Ok(Duration::ZERO);
    };
    let ns = parse_go_duration(&v).map_err(|e| flags.invalid(e.to_string()))?;
    if ns == 0 {
        return Ok(Duration::ZERO);
    }
    if ns < 1_000_000 {
        return Err(flags.invalid(format!("Interval \"{name}\" cannot be less than 1ms")));
    }
    Ok(Duration::from_nanos(ns as u64))
}

fn parse_healthcheck(
    node: &Node,
    args: &[String],
    flags: &mut Flags<'_>,
) -> Result<InstructionKind, InstructionError> {
    if args.is_empty() {
        return Err(flags.invalid(at_least_one("HEALTHCHECK")));
    }
    let typ = args[0].to_ascii_uppercase();
    let rest = &args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err(flags.invalid("HEALTHCHECK NONE takes no arguments".to_owned()));
        }
        flags.parse()?;
        return Ok(InstructionKind::Healthcheck(Healthcheck::None));
    }
    flags
        .add("interval", FlagKind::String)
        .add("timeout", FlagKind::String)
        .add("start-period", FlagKind::String)
        .add("start-interval", FlagKind::String)
        .add("retries", FlagKind::String)
        .parse()?;
    if typ != "CMD" {
        return Err(flags.invalid(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            crate::goquote::quote(&typ)
        )));
    }
    let cmd = command_line(node, rest).args;
    if cmd.is_empty() {
        return Err(flags.invalid("Missing command after HEALTHCHECK CMD".to_owned()));
    }
    let head = if node.json { "CMD" } else { "CMD-SHELL" };
    let mut test = vec![head.to_owned()];
    test.extend(cmd);
    let retries = match flags.string("retries").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| {
                flags.invalid(format!(
                    "strconv.ParseInt: parsing {}: invalid syntax",
                    crate::goquote::quote(&v)
                ))
            })?;
            if n < 0 {
                return Err(flags.invalid(format!("--retries cannot be negative ({n})")));
            }
            u32::try_from(n).map_err(|_| {
                flags.invalid(format!(
                    "strconv.ParseInt: parsing {}: value out of range",
                    crate::goquote::quote(&v)
                ))
            })?
        }
    };
    Ok(InstructionKind::Healthcheck(Healthcheck::Cmd(
        HealthcheckCmd {
            test,
            interval: duration_flag(flags, "interval")?,
            timeout: duration_flag(flags, "timeout")?,
            start_period: duration_flag(flags, "start-period")?,
            start_interval: duration_flag(flags, "start-interval")?,
            retries,
        },
    )))
}

/// Splits one CSV record (the `--mount` value) like Go's encoding/csv.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    loop {
        let mut field = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(
                            "failed to parse csv mounts: extraneous or missing \" in quoted-field"
                                .to_owned(),
                        )
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        field.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
            match chars.get(i) {
                None | Some(',') => {}
                Some(_) => {
                    return Err(
                        "failed to parse csv mounts: extraneous or missing \" in quoted-field"
                            .to_owned(),
                    )
                }
            }
        } else {
            while let Some(&c) = chars.get(i) {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(
                        "failed to parse csv mounts: bare \" in non-quoted-field".to_owned()
                    );
                }
                field.push(c);
                i += 1;
            }
        }
        out.push(field);
        if chars.get(i) == Some(&',') {
            i += 1;
            continue;
        }
        return Ok(out);
    }
}

fn go_parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The check BuildKit makes on a mount before expansion: `from` cannot use variables.
fn check_mount_from(raw: &str) -> Result<(), String> {
    for field in csv_fields(raw)? {
        if let Some((k, v)) = field.split_once('=') {
            if k.eq_ignore_ascii_case("from") {
                if let Some(idx) = v.find('$') {
                    if idx != v.len() - 1 {
                        return Err(
                            "'from' doesn't support variable expansion, define alias stage instead"
                                .to_owned(),
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// Parses and validates one `--mount` value (already expanded).
pub fn parse_mount(raw: &str) -> Result<Mount, String> {
    check_mount_from(raw)?;
    let mut m = Mount {
        typ: MountType::Bind,
        from: None,
        source: None,
        target: None,
        read_only: false,
        size_limit: None,
        cache_id: None,
        sharing: None,
        required: false,
        env: None,
        mode: None,
        uid: None,
        gid: None,
    };
    let mut ro_auto = true;
    let secret_like = |m: &Mount| matches!(m.typ, MountType::Secret | MountType::Ssh);
    for field in csv_fields(raw)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v.to_owned())),
            None => (field.to_lowercase(), None),
        };
        let type_name = mount_type_name(m.typ);
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                }
                "required" if secret_like(&m) => m.required = true,
                "required" => {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{type_name}'"
                    ))
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let bad_value = || format!("invalid value for {key}: {value}");
        match key.as_str() {
            "type" => {
                m.typ = match value.to_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        return Err(format!(
                            "unsupported mount type {}",
                            crate::goquote::quote(&value)
                        ))
                    }
                }
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.read_only = go_parse_bool(&value).ok_or_else(bad_value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !go_parse_bool(&value).ok_or_else(bad_value)?;
                ro_auto = false;
            }
            "required" if secret_like(&m) => {
                m.required = go_parse_bool(&value).ok_or_else(bad_value)?;
            }
            "size" if m.typ == MountType::Tmpfs => {
                m.size_limit = Some(parse_ram_in_bytes(&value).map_err(|_| bad_value())?);
            }
            "required" | "size" => {
                return Err(format!(
                    "unexpected key '{key}' for mount type '{type_name}'"
                ))
            }
            "id" => m.cache_id = Some(value),
            "sharing" => {
                m.sharing = Some(match value.to_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => {
                        return Err(format!(
                            "unsupported sharing value {}",
                            crate::goquote::quote(&value)
                        ))
                    }
                })
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| format!("invalid value {value} for mode"))?,
                )
            }
            "uid" => {
                m.uid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for uid"))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for gid"))?,
                )
            }
            "env" => m.env = Some(value),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    let type_name = mount_type_name(m.typ);
    if !matches!(m.typ, MountType::Secret | MountType::Ssh | MountType::Cache) {
        for (set, what) in [
            (m.mode.is_some(), "mode"),
            (m.uid.is_some(), "uid"),
            (m.gid.is_some(), "gid"),
        ] {
            if set {
                return Err(format!(
                    "{what} not allowed for \"{type_name}\" type mounts"
                ));
            }
        }
    }
    if ro_auto {
        m.read_only = !matches!(m.typ, MountType::Cache | MountType::Tmpfs);
    }
    if m.typ == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".to_owned());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".to_owned());
        }
        if m.source.is_none() && m.target.is_none() && m.cache_id.is_none() {
            return Err("invalid secret mount. one of source, target required".to_owned());
        }
        if m.source.is_some() && m.cache_id.is_some() {
            return Err("both source and id can't be set".to_owned());
        }
    }
    if m.sharing.is_some() && m.typ != MountType::Cache {
        return Err(format!("invalid cache sharing set for {type_name} mount"));
    }
    Ok(m)
}

fn mount_type_name(t: MountType) -> &'static str {
    match t {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    }
}

/// Applies variable expansion to an instruction, as BuildKit does when it dispatches it.
///
/// `env` is what the instruction can see: for FROM the global (pre-FROM) ARGs and build args,
/// for every other instruction the stage's ENV and ARG values.
pub fn expand_instruction(
    inst: &Instruction,
    env: &(impl Env + ?Sized),
) -> Result<Instruction, InstructionError> {
    let line = inst.start_line;
    let lex = Lex::new(inst.escape_token);
    let word = |w: &str| {
        lex.process_word(w, env)
            .map_err(|source| InstructionError::Expand { line, source })
    };
    let opt = |w: &Option<String>| w.as_deref().map(word).transpose();
    let many = |ws: &[String]| ws.iter().map(|w| word(w)).collect::<Result<Vec<_>, _>>();
    // Heredoc bodies keep their quotes: only `$` and escapes are processed.
    let mut raw_lex = Lex::new('\\');
    raw_lex.skip_process_quotes = true;
    let contents = |cs: &[SourceContent]| {
        cs.iter()
            .map(|c| {
                let data = if c.expand {
                    raw_lex
                        .process_word(&c.data, env)
                        .map_err(|source| InstructionError::Expand { line, source })?
                } else {
                    c.data.clone()
                };
                Ok(SourceContent { data, ..c.clone() })
            })
            .collect::<Result<Vec<_>, InstructionError>>()
    };
    let kvps = |kvs: &[KeyValue]| {
        kvs.iter()
            .map(|kv| {
                Ok(KeyValue {
                    key: word(&kv.key)?,
                    value: word(&kv.value)?,
                    legacy: kv.legacy,
                })
            })
            .collect::<Result<Vec<_>, InstructionError>>()
    };
    let kind = match &inst.kind {
        InstructionKind::From(f) => InstructionKind::From(From {
            image: word(&f.image)?,
            stage_name: f.stage_name.clone(),
            platform: opt(&f.platform)?,
        }),
        InstructionKind::Env(kvs) => InstructionKind::Env(kvps(kvs)?),
        InstructionKind::Label(kvs) => InstructionKind::Label(kvps(kvs)?),
        InstructionKind::Workdir(p) => InstructionKind::Workdir(word(p)?),
        InstructionKind::User(u) => InstructionKind::User(word(u)?),
        InstructionKind::StopSignal(s) => InstructionKind::StopSignal(word(s)?),
        InstructionKind::Volume(v) => InstructionKind::Volume(many(v)?),
        InstructionKind::Expose(ports) => {
            let mut out = Vec::new();
            for p in ports {
                out.extend(
                    lex.process_words(p, env)
                        .map_err(|source| InstructionError::Expand { line, source })?,
                );
            }
            InstructionKind::Expose(out)
        }
        InstructionKind::Arg(defs) => InstructionKind::Arg(
            defs.iter()
                .map(|d| {
                    Ok(ArgDef {
                        key: d.key.clone(),
                        default: opt(&d.default)?,
                    })
                })
                .collect::<Result<Vec<_>, InstructionError>>()?,
        ),
        InstructionKind::Copy(c) => {
            if let Some(from) = &c.from {
                let same = lex
                    .process_word(from, &EmptyEnv)
                    .map(|r| r == *from)
                    .unwrap_or(false);
                if !same {
                    return Err(InstructionError::Invalid {
                        line,
                        message: "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround".to_owned(),
                    });
                }
            }
            InstructionKind::Copy(Copy {
                sources: many(&c.sources)?,
                contents: contents(&c.contents)?,
                dest: word(&c.dest)?,
                chown: opt(&c.chown)?,
                chmod: opt(&c.chmod)?,
                ..c.clone()
            })
        }
        InstructionKind::Add(a) => InstructionKind::Add(Add {
            sources: many(&a.sources)?,
            contents: contents(&a.contents)?,
            dest: word(&a.dest)?,
            chown: opt(&a.chown)?,
            chmod: opt(&a.chmod)?,
            checksum: opt(&a.checksum)?,
            ..a.clone()
        }),
        InstructionKind::Run(r) => {
            let mut mounts = Vec::new();
            for mf in &r.mounts {
                let fields = csv_fields(&mf.raw)
                    .map_err(|message| InstructionError::Invalid { line, message })?;
                // Only values are expanded, never keys (BuildKit's expander sees `value`).
                let mut expanded = Vec::new();
                for f in fields {
                    match f.split_once('=') {
                        Some((k, v)) => expanded.push(format!("{k}={}", word(v)?)),
                        None => expanded.push(f),
                    }
                }
                let text = expanded
                    .iter()
                    .map(|f| {
                        if f.contains([',', '"']) {
                            format!("\"{}\"", f.replace('"', "\"\""))
                        } else {
                            f.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                let mount = parse_mount(&text)
                    .map_err(|message| InstructionError::Invalid { line, message })?;
                mounts.push(MountFlag {
                    raw: mf.raw.clone(),
                    mount: Some(mount),
                });
            }
            InstructionKind::Run(Run {
                mounts,
                ..r.clone()
            })
        }
        other => other.clone(),
    };
    Ok(Instruction {
        kind,
        ..inst.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Result<Instruction, InstructionError> {
        let all = parse_instructions(&format!("FROM scratch\n{src}\n"))?;
        Ok(all.into_iter().nth(1).expect("second instruction"))
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_instruction_and_flag() {
        let e = one("FOO bar").expect_err("unknown instruction");
        assert_eq!(e.to_string(), "Dockerfile:2: unknown instruction: FOO");
        let e = one("COPY --nope=1 a b").expect_err("unknown flag");
        assert_eq!(e.to_string(), "Dockerfile:2: unknown flag: --nope");
        let e = one("RUN --mount=type=cache,target=/x --bogus true").expect_err("unknown flag");
        assert_eq!(e.line(), 2);
        assert!(e.to_string().contains("--bogus"));
    }

    #[test]
    fn from_forms() {
        let i =
            parse_instructions("FROM --platform=linux/amd64 busybox AS Build\n").expect("parses");
        assert_eq!(
            i[0].kind,
            InstructionKind::From(From {
                image: "busybox".into(),
                stage_name: Some("build".into()),
                platform: Some("linux/amd64".into()),
            })
        );
        assert!(parse_instructions("FROM a b\n").is_err());
        let e = parse_instructions("FROM a AS 1x\n").expect_err("bad name");
        assert!(e
            .to_string()
            .contains("invalid name for build stage: \"1x\""));
    }

    #[test]
    fn run_mounts_network_security() {
        let i = one("RUN --mount=type=cache,target=/root/.cache,id=c,sharing=locked,uid=1000 --mount=type=secret,id=tok,required --mount=type=tmpfs,target=/t,size=64m --network=none --security=insecure make").expect("parses");
        let InstructionKind::Run(r) = i.kind else {
            panic!("not run")
        };
        assert_eq!(r.network, NetworkMode::None);
        assert_eq!(r.security, Security::Insecure);
        let m0 = r.mounts[0].mount.as_ref().expect("parsed");
        assert_eq!(m0.typ, MountType::Cache);
        assert_eq!(m0.sharing, Some(CacheSharing::Locked));
        assert_eq!(m0.uid, Some(1000));
        assert!(!m0.read_only);
        let m1 = r.mounts[1].mount.as_ref().expect("parsed");
        assert!(m1.required && m1.read_only);
        let m2 = r.mounts[2].mount.as_ref().expect("parsed");
        assert_eq!(m2.size_limit, Some(64 << 20));
        assert_eq!(r.command.args, vec!["make".to_string()]);
        assert!(r.command.prepend_shell);

        assert!(one("RUN --mount=type=bind,uid=1 true").is_err());
        assert!(one("RUN --mount=type=nope true").is_err());
        assert!(one("RUN --network=bridge true").is_err());
        assert!(one("RUN --mount=type=secret true").is_err());
        let e = one("RUN --mount=from=$X,target=/a true").expect_err("from var");
        assert!(e.to_string().contains("doesn't support variable expansion"));
    }

    #[test]
    fn run_mount_expansion() {
        let i = one("RUN --mount=type=cache,target=$DIR,uid=$ID true").expect("parses");
        let InstructionKind::Run(r) = &i.kind else {
            panic!("not run")
        };
        assert!(r.mounts[0].mount.is_none());
        let e = expand_instruction(&i, &env(&[("DIR", "/c"), ("ID", "7")])).expect("expands");
        let InstructionKind::Run(r) = e.kind else {
            panic!("not run")
        };
        let m = r.mounts[0].mount.as_ref().expect("parsed after expansion");
        assert_eq!(m.target.as_deref(), Some("/c"));
        assert_eq!(m.uid, Some(7));
    }

    #[test]
    fn healthcheck() {
        let i = one("HEALTHCHECK --interval=1m30s --retries=3 CMD curl -f http://x/").expect("ok");
        let InstructionKind::Healthcheck(Healthcheck::Cmd(h)) = i.kind else {
            panic!("not healthcheck")
        };
        assert_eq!(
            h.test,
            vec!["CMD-SHELL".to_string(), "curl -f http://x/".into()]
        );
        assert_eq!(h.interval, Duration::from_secs(90));
        assert_eq!(h.retries, 3);
        let i = one("HEALTHCHECK CMD [\"a\", \"b\"]").expect("ok");
        let InstructionKind::Healthcheck(Healthcheck::Cmd(h)) = i.kind else {
            panic!("not healthcheck")
        };
        assert_eq!(h.test, vec!["CMD".to_string(), "a".into(), "b".into()]);
        assert_eq!(
            one("HEALTHCHECK NONE").expect("ok").kind,
            InstructionKind::Healthcheck(Healthcheck::None)
        );
        assert!(one("HEALTHCHECK NONE x").is_err());
        assert!(one("HEALTHCHECK CONNECT TCP 7000").is_err());
        assert!(one("HEALTHCHECK CMD").is_err());
        assert!(one("HEALTHCHECK --interval=5 CMD x").is_err());
        assert!(one("HEALTHCHECK --interval=1us CMD x").is_err());
        assert!(one("HEALTHCHECK --retries=-1 CMD x").is_err());
    }

    #[test]
    fn copy_add_flags_and_heredoc() {
        let all = parse_instructions(
            "FROM x\nCOPY --from=build --chown=1:1 --chmod=755 --link --parents --exclude=*.md --exclude=*.txt a b /d/\nADD --checksum=sha256:abc --keep-git-dir=false https://x/y.git /src\nCOPY <<-EOF /etc/conf\n\tk=$V\n\tEOF\n",
        )
        .expect("parses");
        let InstructionKind::Copy(c) = &all[1].kind else {
            panic!("not copy")
        };
        assert_eq!(c.from.as_deref(), Some("build"));
        assert!(c.link && c.parents);
        assert_eq!(c.excludes, vec!["*.md".to_string(), "*.txt".into()]);
        assert_eq!(c.sources, vec!["a".to_string(), "b".into()]);
        let InstructionKind::Add(a) = &all[2].kind else {
            panic!("not add")
        };
        assert_eq!(a.keep_git_dir, Some(false));
        assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
        let InstructionKind::Copy(c) = &all[3].kind else {
            panic!("not copy")
        };
        assert_eq!(c.contents[0].data, "k=$V\n");
        assert!(c.sources.is_empty());
        let e = expand_instruction(&all[3], &env(&[("V", "1")])).expect("expands");
        let InstructionKind::Copy(c) = e.kind else {
            panic!("not copy")
        };
        assert_eq!(c.contents[0].data, "k=1\n");

        assert!(one("COPY --checksum=x a b").is_err());
        assert!(one("ADD --from=x a b").is_err());
        assert!(one("COPY a").is_err());
        assert!(one("COPY a <<EOF\nx\nEOF").is_err());
    }

    #[test]
    fn onbuild_rules() {
        let i = one("ONBUILD RUN echo hi").expect("ok");
        let InstructionKind::Onbuild(o) = i.kind else {
            panic!("not onbuild")
        };
        assert_eq!(o.expression, "RUN echo hi");
        assert!(one("ONBUILD ONBUILD RUN x").is_err());
        assert!(one("ONBUILD FROM x").is_err());
        assert!(one("ONBUILD MAINTAINER x").is_err());
    }

    #[test]
    fn env_arg_label_shell_misc() {
        let i = one("ARG A B=2 C=").expect("ok");
        assert_eq!(
            i.kind,
            InstructionKind::Arg(vec![
                ArgDef {
                    key: "A".into(),
                    default: None
                },
                ArgDef {
                    key: "B".into(),
                    default: Some("2".into())
                },
                ArgDef {
                    key: "C".into(),
                    default: Some(String::new())
                },
            ])
        );
        assert!(one("ARG =x").is_err());
        assert!(one("SHELL /bin/sh -c").is_err());
        assert_eq!(
            one("SHELL [\"/bin/bash\", \"-c\"]").expect("ok").kind,
            InstructionKind::Shell(vec!["/bin/bash".into(), "-c".into()])
        );
        assert_eq!(
            one("VOLUME [\"/a\", \"/b\"]").expect("ok").kind,
            InstructionKind::Volume(vec!["/a".into(), "/b".into()])
        );
        assert!(one("USER").is_err());
        assert!(one("ENV --x=1 a=b").is_err());
    }

    #[test]
    fn expansion_scope() {
        let e = env(&[("V", "val"), ("P", "80 443")]);
        let exp = |src: &str| {
            expand_instruction(&one(src).expect("parses"), &e)
                .expect("expands")
                .kind
        };
        assert_eq!(exp("WORKDIR /$V"), InstructionKind::Workdir("/val".into()));
        assert_eq!(exp("USER ${V}"), InstructionKind::User("val".into()));
        assert_eq!(
            exp("EXPOSE $P"),
            InstructionKind::Expose(vec!["80".into(), "443".into()])
        );
        assert_eq!(
            exp("ENV A=\"$V x\""),
            InstructionKind::Env(vec![KeyValue {
                key: "A".into(),
                value: "val x".into(),
                legacy: false
            }])
        );
        // Not expanded: RUN/CMD/ENTRYPOINT shell form.
        let InstructionKind::Run(r) = exp("RUN echo $V") else {
            panic!("not run")
        };
        assert_eq!(r.command.args, vec!["echo $V".to_string()]);
        let InstructionKind::Cmd(c) = exp("CMD echo $V") else {
            panic!("not cmd")
        };
        assert_eq!(c.args, vec!["echo $V".to_string()]);
        // COPY --from must not hold variables.
        let i = one("COPY --from=$V a b").expect("parses");
        assert!(expand_instruction(&i, &e).is_err());
        // Escape token of the Dockerfile is honoured.
        let all = parse_instructions("# escape=`\nFROM x\nWORKDIR C:\\`$V\n").expect("parses");
        let w = expand_instruction(&all[1], &e).expect("expands");
        assert_eq!(w.kind, InstructionKind::Workdir("C:\\$V".into()));
    }
}
