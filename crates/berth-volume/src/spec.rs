//! Mount specifications: parsing and validation of `-v` (`HostConfig.Binds`), `--mount`
//! (the CLI's CSV form and the API's `HostConfig.Mounts` objects) and `--tmpfs`
//! (`HostConfig.Tmpfs`), into one typed [`MountSpec`].
//!
//! Everything here is pure except one `stat`: like dockerd, an API bind mount whose source
//! does not exist is refused unless `CreateMountpoint` is set, while a `-v` bind source is
//! created on demand (`bind_create_host_path`).
//!
//! Error texts follow moby's `volume/mounts` (linux parser) and docker/cli's `opts/mount.go`
//! word for word, because users and test suites (docker-py, compose) match on them. Two
//! deliberate differences from dockerd:
//! - a named volume in `-v` is checked against the local driver's name rules at parse time
//!   (dockerd only notices when it creates the volume; the message is the same);
//! - a target inside `/proc` is refused here with runc's message, rather than by the runtime
//!   at start, so `create` fails instead of `start`.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The kind of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Volume,
    Tmpfs,
}

impl MountType {
    /// Docker's spelling: `bind`, `volume`, `tmpfs`.
    pub fn as_str(&self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

impl std::fmt::Display for MountType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One mount a container asked for, whatever syntax it came in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountSpec {
    pub typ: MountType,
    /// Host path (bind, cleaned), volume name, or "" for an anonymous volume and for tmpfs.
    pub source: String,
    /// Absolute, cleaned path inside the container.
    pub target: String,
    pub read_only: bool,
    /// Binds only: `rprivate` unless the user chose another mode.
    pub propagation: Option<String>,
    /// `default|consistent|cached|delegated`: accepted and ignored on Linux, as by dockerd.
    pub consistency: Option<String>,
    /// `-v` creates a missing bind source; `--mount` refuses it unless the API's
    /// `BindOptions.CreateMountpoint` is set.
    pub bind_create_host_path: bool,
    /// Volumes only: do not copy the image's content at the target into a new volume.
    pub nocopy: bool,
    /// Labels for a volume created by this mount.
    pub volume_labels: BTreeMap<String, String>,
    /// Driver options for a volume created by this mount.
    pub volume_driver_opts: BTreeMap<String, String>,
    /// The volume driver named by the mount (None: the default, `local`).
    pub volume_driver: Option<String>,
    /// Volumes only: mount this relative path of the volume instead of its root.
    pub volume_subpath: Option<String>,
    pub tmpfs_size: Option<u64>,
    /// Permission bits (including sticky/setgid) of the tmpfs root.
    pub tmpfs_mode: Option<u32>,
    /// Other tmpfs options (flags such as `noexec`, data such as `uid=1000`), in order.
    pub tmpfs_options: Vec<String>,
    /// `enabled|disabled|writable|readonly` (None: enabled, the default).
    pub bind_recursive: Option<String>,
    /// `z` or `Z`: accepted; there is no SELinux on our hosts, so nothing is relabelled.
    pub selinux_label: Option<String>,
    /// The raw mode string of a `-v` entry (what `docker inspect` shows as `Mode`).
    pub mode: String,
}

impl MountSpec {
    fn new(typ: MountType, source: &str, target: &str) -> MountSpec {
        MountSpec {
            typ,
            source: source.to_string(),
            target: target.to_string(),
            read_only: false,
            propagation: None,
            consistency: None,
            bind_create_host_path: false,
            nocopy: false,
            volume_labels: BTreeMap::new(),
            volume_driver_opts: BTreeMap::new(),
            volume_driver: None,
            volume_subpath: None,
            tmpfs_size: None,
            tmpfs_mode: None,
            tmpfs_options: Vec::new(),
            bind_recursive: None,
            selinux_label: None,
            mode: String::new(),
        }
    }

    /// An anonymous volume: a volume mount without a name.
    pub fn is_anonymous_volume(&self) -> bool {
        self.typ == MountType::Volume && self.source.is_empty()
    }
}

/// Why a mount specification was refused. Display texts are docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("invalid volume specification: '{0}'")]
    InvalidSpec(String),
    #[error("invalid volume specification: '{spec}': {detail}")]
    InvalidSpecDetail {
        spec: String,
        detail: Box<SpecError>,
    },
    #[error("invalid mode: {0}")]
    InvalidMode(String),
    #[error("invalid mount config for type \"{typ}\": {detail}")]
    MountConfig { typ: String, detail: Box<SpecError> },
    #[error("field {0} must not be empty")]
    MissingField(&'static str),
    #[error("field {0} must not be specified")]
    ExtraField(&'static str),
    #[error("invalid specification: destination can't be '/'")]
    TargetIsRoot,
    #[error("invalid mount path: '{0}' mount path must be absolute")]
    NotAbsolute(String),
    #[error("{q} cannot be mounted because it is located inside \"/proc\"", q = go_quote(.0))]
    InsideProc(String),
    #[error("invalid propagation mode: {0}")]
    InvalidPropagation(String),
    #[error("bind mount source path does not exist: {0}")]
    BindSourceMissing(String),
    #[error("must not set ReadOnly mode when using anonymous volumes")]
    ReadOnlyAnonymous,
    #[error("must not set Subpath when using anonymous volumes")]
    AnonymousSubpath,
    #[error("subpath must be a relative path within the volume")]
    InvalidSubpath,
    #[error("mount type unknown")]
    UnknownType,
    #[error("{0} mounts are not supported")]
    UnsupportedType(String),
    #[error("create {0}: volume name is too short, names should be at least two alphanumeric characters")]
    VolumeNameTooShort(String),
    #[error(
        "create {0}: {q} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
        q = go_quote(.0)
    )]
    VolumeNameInvalid(String),
    /// `HostConfig.Tmpfs` option moby/sys/mount does not know (already rendered like Go's `%q`).
    #[error("invalid tmpfs option {0}")]
    InvalidTmpfsOption(String),
    /// `TmpfsOptions.Options` entry other than `exec`/`noexec`.
    #[error("invalid option: {0}")]
    InvalidTmpfsApiOption(String),
    #[error("invalid option array length")]
    TmpfsOptionArrayLength,
    #[error("invalid size: '{0}'")]
    InvalidSize(String),
    #[error("invalid tmpfs mode: '{0}'")]
    InvalidTmpfsMode(String),
    // --- the CLI's `--mount` flag (docker/cli opts/mount.go) ---
    #[error("invalid field '{0}' must be a key=value pair")]
    NotKeyValue(String),
    #[error("unexpected key '{key}' in '{field}'")]
    UnexpectedKey { key: String, field: String },
    #[error("invalid value for {key}: {value}")]
    InvalidValue { key: String, value: String },
    #[error(
        "invalid value for {key}: {value} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
    )]
    InvalidBindRecursive { key: String, value: String },
    #[error("type is required")]
    TypeRequired,
    #[error("target is required")]
    TargetRequired,
    #[error("cannot mix '{prefix}-*' options with mount type '{typ}'")]
    MixedOptions { prefix: &'static str, typ: String },
    /// A combination rule of the CLI; the text is docker's.
    #[error("{0}")]
    OptionRule(&'static str),
    #[error("parse error on line 1, column {column}: {reason}")]
    Csv { column: usize, reason: &'static str },
    // --- the API's JSON form ---
    #[error("unknown field {q} in {at}", q = go_quote(.field))]
    UnknownField { at: &'static str, field: String },
    #[error("invalid value for field {field}: expected {expected}")]
    FieldType {
        field: &'static str,
        expected: &'static str,
    },
}

/// Go's `%q` for the strings we print: quoted, with `"` and `\` escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------
// Paths and names
// ---------------------------------------------------------------------------------------

/// Go's `path.Clean`: lexical, `/`-separated.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Files under `/proc` that runc allows as mount targets (lxcfs-style overrides).
const PROC_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/pressure/cpu",
    "/proc/pressure/io",
    "/proc/pressure/memory",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// A mount target must be absolute, not `/`, and not inside `/proc` (bar runc's allow-list).
pub fn validate_target(t: &str) -> Result<(), SpecError> {
    if t.is_empty() {
        return Err(SpecError::MissingField("Target"));
    }
    if clean_path(&t.replace('\\', "/")) == "/" {
        return Err(SpecError::TargetIsRoot);
    }
    if !t.replace('\\', "/").starts_with('/') {
        return Err(SpecError::NotAbsolute(t.to_string()));
    }
    let clean = clean_path(t);
    if PROC_ALLOWED.contains(&clean.as_str()) {
        return Ok(());
    }
    if clean == "/proc" || clean.starts_with("/proc/") {
        return Err(SpecError::InsideProc(clean));
    }
    Ok(())
}

/// The local driver's volume name rule: `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`.
pub fn validate_volume_name(name: &str) -> Result<(), SpecError> {
    if name.chars().count() == 1 {
        return Err(SpecError::VolumeNameTooShort(name.to_string()));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok {
        return Err(SpecError::VolumeNameInvalid(name.to_string()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// -v / HostConfig.Binds
// ---------------------------------------------------------------------------------------

const PROPAGATION_MODES: &[&str] = &[
    "private", "rprivate", "slave", "rslave", "shared", "rshared",
];
const RW_MODES: &[&str] = &["rw", "ro", "ro-non-recursive", "ro-force-recursive", "rro"];
const LABEL_MODES: &[&str] = &["z", "Z"];
const COPY_MODES: &[&str] = &["nocopy"];
const CONSISTENCY_MODES: &[&str] = &["consistent", "cached", "delegated", "default"];

/// moby's `linuxValidMountMode`: every word known, at most one of each class.
fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut counts = [0usize; 5];
    for o in mode.split(',') {
        let class = if RW_MODES.contains(&o) {
            0
        } else if LABEL_MODES.contains(&o) {
            1
        } else if PROPAGATION_MODES.contains(&o) {
            2
        } else if COPY_MODES.contains(&o) {
            3
        } else if CONSISTENCY_MODES.contains(&o) {
            4
        } else {
            return false;
        };
        counts[class] += 1;
    }
    counts.iter().all(|c| *c <= 1)
}

/// Parses one `HostConfig.Binds` entry (the `-v` syntax) for the local volume driver.
pub fn parse_bind(spec: &str) -> Result<MountSpec, SpecError> {
    parse_bind_for_driver(spec, "")
}

/// Like [`parse_bind`], for containers created with `--volume-driver`: names of volumes of
/// another driver are that driver's business, so only local (or default) names are checked.
pub fn parse_bind_for_driver(spec: &str, volume_driver: &str) -> Result<MountSpec, SpecError> {
    let arr: Vec<&str> = spec.splitn(4, ':').collect();
    if arr[0].is_empty() {
        return Err(SpecError::InvalidSpec(spec.to_string()));
    }
    let (source, target, mode) = match arr.len() {
        1 => ("", arr[0], ""),
        2 => {
            // `/foo:rw` is a destination with a mode, which a volume cannot have.
            if valid_mode(arr[1]) {
                return Err(SpecError::InvalidSpec(spec.to_string()));
            }
            (arr[0], arr[1], "")
        }
        3 => (arr[0], arr[1], arr[2]),
        _ => return Err(SpecError::InvalidSpec(spec.to_string())),
    };
    if !valid_mode(mode) {
        return Err(SpecError::InvalidMode(mode.to_string()));
    }
    let typ = if source.starts_with('/') {
        MountType::Bind
    } else {
        MountType::Volume
    };
    let words: Vec<&str> = if mode.is_empty() {
        Vec::new()
    } else {
        mode.split(',').collect()
    };
    let mut m = MountSpec::new(typ, source, target);
    m.mode = mode.to_string();
    m.bind_create_host_path = typ == MountType::Bind;
    let mut has_propagation = false;
    let mut has_copy_mode = false;
    for w in &words {
        match *w {
            "ro" => m.read_only = true,
            "ro-non-recursive" => {
                m.read_only = true;
                m.bind_recursive = Some("writable".to_string());
            }
            "ro-force-recursive" | "rro" => {
                m.read_only = true;
                m.bind_recursive = Some("readonly".to_string());
            }
            "z" | "Z" => m.selinux_label = Some(w.to_string()),
            "nocopy" => {
                has_copy_mode = true;
                m.nocopy = true;
            }
            w if PROPAGATION_MODES.contains(&w) => {
                has_propagation = true;
                m.propagation = Some(w.to_string());
            }
            w if CONSISTENCY_MODES.contains(&w) => m.consistency = Some(w.to_string()),
            _ => {}
        }
    }
    if !volume_driver.is_empty() && typ == MountType::Volume {
        m.volume_driver = Some(volume_driver.to_string());
    }
    let wrap = |detail: SpecError| SpecError::InvalidSpecDetail {
        spec: spec.to_string(),
        detail: Box::new(SpecError::MountConfig {
            typ: typ.to_string(),
            detail: Box::new(detail),
        }),
    };
    validate_common(&m.target).map_err(wrap)?;
    match typ {
        MountType::Bind => {
            // A copy mode is a volume option: moby refuses VolumeOptions on a bind.
            if has_copy_mode {
                return Err(wrap(SpecError::ExtraField("VolumeOptions")));
            }
            if m.propagation.is_none() {
                m.propagation = Some("rprivate".to_string());
            }
            m.source = clean_path(&m.source);
        }
        MountType::Volume => {
            if has_propagation {
                return Err(wrap(SpecError::ExtraField("BindOptions")));
            }
            if m.read_only && m.source.is_empty() {
                return Err(wrap(SpecError::ReadOnlyAnonymous));
            }
            // Only the local driver's rules are known here.
            m.bind_recursive = None;
            if !m.source.is_empty() && (volume_driver.is_empty() || volume_driver == "local") {
                validate_volume_name(&m.source)?;
            }
        }
        MountType::Tmpfs => {}
    }
    m.target = clean_path(&m.target);
    Ok(m)
}

/// Target checks shared by every syntax, in moby's order.
fn validate_common(target: &str) -> Result<(), SpecError> {
    validate_target(target)
}

// ---------------------------------------------------------------------------------------
// HostConfig.Mounts (API JSON)
// ---------------------------------------------------------------------------------------

/// A JSON object read the way Go's `encoding/json` reads a struct: keys match fields
/// case-insensitively, `null` means absent; unlike Go, unknown keys are refused.
struct Obj<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, at: &'static str, known: &[&str]) -> Result<Option<Obj<'a>>, SpecError> {
        let map = match v {
            Value::Null => return Ok(None),
            Value::Object(m) => m,
            _ => {
                return Err(SpecError::FieldType {
                    field: at,
                    expected: "an object",
                })
            }
        };
        for k in map.keys() {
            if !known.iter().any(|f| f.eq_ignore_ascii_case(k)) {
                return Err(SpecError::UnknownField {
                    at,
                    field: k.clone(),
                });
            }
        }
        Ok(Some(Obj { map }))
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    fn str(&self, field: &'static str) -> Result<String, SpecError> {
        match self.get(field) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(SpecError::FieldType {
                field,
                expected: "a string",
            }),
        }
    }

    fn bool(&self, field: &'static str) -> Result<bool, SpecError> {
        match self.get(field) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(SpecError::FieldType {
                field,
                expected: "a boolean",
            }),
        }
    }

    fn u64(&self, field: &'static str) -> Result<u64, SpecError> {
        match self.get(field) {
            None => Ok(0),
            Some(v) => v.as_u64().ok_or(SpecError::FieldType {
                field,
                expected: "a non-negative integer",
            }),
        }
    }

    fn string_map(&self, field: &'static str) -> Result<BTreeMap<String, String>, SpecError> {
        let mut out = BTreeMap::new();
        match self.get(field) {
            None => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let s = v.as_str().ok_or(SpecError::FieldType {
                        field,
                        expected: "an object of strings",
                    })?;
                    out.insert(k.clone(), s.to_string());
                }
            }
            Some(_) => {
                return Err(SpecError::FieldType {
                    field,
                    expected: "an object of strings",
                })
            }
        }
        Ok(out)
    }

    fn obj(&self, field: &'static str, known: &[&str]) -> Result<Option<Obj<'a>>, SpecError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => Obj::new(v, field, known),
        }
    }
}

const MOUNT_FIELDS: &[&str] = &[
    "Type",
    "Source",
    "Target",
    "ReadOnly",
    "Consistency",
    "BindOptions",
    "VolumeOptions",
    "TmpfsOptions",
    "ImageOptions",
    "ClusterOptions",
];
const BIND_FIELDS: &[&str] = &[
    "Propagation",
    "NonRecursive",
    "CreateMountpoint",
    "ReadOnlyNonRecursive",
    "ReadOnlyForceRecursive",
];
const VOLUME_FIELDS: &[&str] = &["NoCopy", "Labels", "DriverConfig", "Subpath"];
const DRIVER_FIELDS: &[&str] = &["Name", "Options"];
const TMPFS_FIELDS: &[&str] = &["SizeBytes", "Mode", "Options"];

/// Parses one `HostConfig.Mounts` entry (API form) and validates it as dockerd does.
pub fn parse_mount_api(m: &Value) -> Result<MountSpec, SpecError> {
    let Some(o) = Obj::new(m, "Mount", MOUNT_FIELDS)? else {
        return Err(SpecError::FieldType {
            field: "Mount",
            expected: "an object",
        });
    };
    let typ_s = o.str("Type")?;
    let source = o.str("Source")?;
    let target = o.str("Target")?;
    let read_only = o.bool("ReadOnly")?;
    let consistency = o.str("Consistency")?;
    let bind = o.obj("BindOptions", BIND_FIELDS)?;
    let vol = o.obj("VolumeOptions", VOLUME_FIELDS)?;
    let tmpfs = o.obj("TmpfsOptions", TMPFS_FIELDS)?;
    let has_image_opts = o.get("ImageOptions").is_some();
    let has_cluster_opts = o.get("ClusterOptions").is_some();

    let cfg_err = |detail: SpecError| SpecError::MountConfig {
        typ: typ_s.clone(),
        detail: Box::new(detail),
    };
    validate_common(&target).map_err(cfg_err)?;
    let typ = match typ_s.as_str() {
        "bind" => MountType::Bind,
        "volume" => MountType::Volume,
        "tmpfs" => MountType::Tmpfs,
        "image" | "npipe" | "cluster" => {
            return Err(cfg_err(SpecError::UnsupportedType(typ_s.clone())))
        }
        _ => return Err(cfg_err(SpecError::UnknownType)),
    };
    if has_image_opts {
        return Err(cfg_err(SpecError::ExtraField("ImageOptions")));
    }
    if has_cluster_opts {
        return Err(cfg_err(SpecError::ExtraField("ClusterOptions")));
    }
    let mut spec = MountSpec::new(typ, &source, &clean_path(&target));
    spec.read_only = read_only;
    if !consistency.is_empty() {
        spec.consistency = Some(consistency);
    }
    match typ {
        MountType::Bind => {
            if source.is_empty() {
                return Err(cfg_err(SpecError::MissingField("Source")));
            }
            if vol.is_some() {
                return Err(cfg_err(SpecError::ExtraField("VolumeOptions")));
            }
            if tmpfs.is_some() {
                return Err(cfg_err(SpecError::ExtraField("TmpfsOptions")));
            }
            let mut propagation = String::new();
            if let Some(b) = &bind {
                propagation = b.str("Propagation")?;
                if !propagation.is_empty() && !PROPAGATION_MODES.contains(&propagation.as_str()) {
                    return Err(cfg_err(SpecError::InvalidPropagation(propagation)));
                }
                spec.bind_create_host_path = b.bool("CreateMountpoint")?;
                if b.bool("NonRecursive")? {
                    spec.bind_recursive = Some("disabled".to_string());
                }
                if b.bool("ReadOnlyNonRecursive")? {
                    spec.bind_recursive = Some("writable".to_string());
                }
                if b.bool("ReadOnlyForceRecursive")? {
                    spec.bind_recursive = Some("readonly".to_string());
                }
            }
            if !source.starts_with('/') {
                return Err(cfg_err(SpecError::NotAbsolute(source)));
            }
            spec.source = clean_path(&source);
            spec.propagation = Some(if propagation.is_empty() {
                "rprivate".to_string()
            } else {
                propagation
            });
            if !spec.bind_create_host_path && std::fs::symlink_metadata(&spec.source).is_err() {
                return Err(cfg_err(SpecError::BindSourceMissing(spec.source)));
            }
        }
        MountType::Volume => {
            if bind.is_some() {
                return Err(cfg_err(SpecError::ExtraField("BindOptions")));
            }
            if tmpfs.is_some() {
                return Err(cfg_err(SpecError::ExtraField("TmpfsOptions")));
            }
            if let Some(v) = &vol {
                spec.nocopy = v.bool("NoCopy")?;
                spec.volume_labels = v.string_map("Labels")?;
                let subpath = v.str("Subpath")?;
                if !subpath.is_empty() {
                    if source.is_empty() {
                        return Err(cfg_err(SpecError::AnonymousSubpath));
                    }
                    if !is_local_path(&subpath) {
                        return Err(cfg_err(SpecError::InvalidSubpath));
                    }
                    spec.volume_subpath = Some(subpath);
                }
                if let Some(d) = v.obj("DriverConfig", DRIVER_FIELDS)? {
                    let name = d.str("Name")?;
                    if !name.is_empty() {
                        spec.volume_driver = Some(name);
                    }
                    spec.volume_driver_opts = d.string_map("Options")?;
                }
            }
            if read_only && source.is_empty() {
                return Err(cfg_err(SpecError::ReadOnlyAnonymous));
            }
        }
        MountType::Tmpfs => {
            if bind.is_some() {
                return Err(cfg_err(SpecError::ExtraField("BindOptions")));
            }
            if vol.is_some() {
                return Err(cfg_err(SpecError::ExtraField("VolumeOptions")));
            }
            if !source.is_empty() {
                return Err(cfg_err(SpecError::ExtraField("Source")));
            }
            if let Some(t) = &tmpfs {
                let size = t.u64("SizeBytes")?;
                if size > 0 {
                    spec.tmpfs_size = Some(size);
                }
                let mode = t.u64("Mode")?;
                if mode > 0 {
                    spec.tmpfs_mode = Some((mode & 0o7777) as u32);
                }
                spec.tmpfs_options = tmpfs_api_options(t.get("Options")).map_err(cfg_err)?;
            }
        }
    }
    Ok(spec)
}

/// `filepath.IsLocal`: relative, non-empty, never climbing out with `..`.
fn is_local_path(p: &str) -> bool {
    if p.is_empty() || p.starts_with('/') {
        return false;
    }
    let c = clean_path(p);
    c != ".." && !c.starts_with("../")
}

/// `TmpfsOptions.Options`: `[["exec"], ["noexec"]]`; dockerd accepts only these two.
fn tmpfs_api_options(v: Option<&Value>) -> Result<Vec<String>, SpecError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let bad = SpecError::FieldType {
        field: "Options",
        expected: "an array of string arrays",
    };
    let arr = v.as_array().ok_or(bad.clone())?;
    let mut out = Vec::new();
    for opt in arr {
        let parts = opt.as_array().ok_or(bad.clone())?;
        if parts.is_empty() || parts.len() > 2 {
            return Err(SpecError::TmpfsOptionArrayLength);
        }
        let strs: Vec<&str> = parts
            .iter()
            .map(|p| p.as_str().ok_or(bad.clone()))
            .collect::<Result<_, _>>()?;
        if !matches!(strs[0], "exec" | "noexec") {
            return Err(SpecError::InvalidTmpfsApiOption(strs[0].to_string()));
        }
        out.push(strs.join("="));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// --mount (CLI CSV form)
// ---------------------------------------------------------------------------------------

/// One CSV record as Go's `encoding/csv` reads it (one line, `"` quoting, `""` escapes).
fn csv_fields(s: &str) -> Result<Vec<String>, SpecError> {
    let chars: Vec<char> = s.chars().collect();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let mut field = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(SpecError::Csv {
                            column: i + 1,
                            reason: "extraneous or missing \" in quoted-field",
                        })
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
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {
                    i += 1;
                    fields.push(field);
                }
                Some(_) => {
                    return Err(SpecError::Csv {
                        column: i + 1,
                        reason: "extraneous or missing \" in quoted-field",
                    })
                }
            }
        } else {
            loop {
                match chars.get(i) {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => {
                        i += 1;
                        fields.push(field);
                        break;
                    }
                    Some('"') => {
                        return Err(SpecError::Csv {
                            column: i + 1,
                            reason: "bare \" in non-quoted-field",
                        })
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
        }
    }
}

/// Go's `strconv.ParseBool`.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parses the CLI's `--mount` value into the API's `Mount` object, as docker/cli 28.2 does
/// (its error texts were checked against the installed docker CLI).
pub fn parse_mount_flag(s: &str) -> Result<Value, SpecError> {
    let fields = csv_fields(s)?;
    let mut typ = "volume".to_string();
    let mut source: Option<String> = None;
    let mut target = String::new();
    let mut read_only = false;
    let mut consistency: Option<String> = None;
    let mut bind: Option<Map<String, Value>> = None;
    let mut vol: Option<Map<String, Value>> = None;
    let mut driver: Option<Map<String, Value>> = None;
    let mut tmpfs: Option<Map<String, Value>> = None;
    let mut labels: Option<Map<String, Value>> = None;
    let mut driver_opts: Option<Map<String, Value>> = None;

    let bad_value = |key: &str, value: &str| SpecError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
    };
    for field in &fields {
        let (key, val, has_value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), v.to_string(), true),
            None => (field.to_ascii_lowercase(), String::new(), false),
        };
        if !has_value {
            match key.as_str() {
                "readonly" | "ro" => read_only = true,
                "volume-nocopy" => {
                    vol.get_or_insert_with(Map::new)
                        .insert("NoCopy".into(), json!(true));
                }
                "bind-nonrecursive" => {
                    bind.get_or_insert_with(Map::new)
                        .insert("NonRecursive".into(), json!(true));
                }
                _ => return Err(SpecError::NotKeyValue(field.clone())),
            }
            continue;
        }
        match key.as_str() {
            "type" => typ = val.to_ascii_lowercase(),
            "source" | "src" => {
                // The CLI resolves `.`-relative sources against its working directory.
                let mut src = val.clone();
                if !val.starts_with('/') && val.starts_with('.') {
                    if let Ok(cwd) = std::env::current_dir() {
                        src = clean_path(&format!("{}/{}", cwd.display(), val));
                    }
                }
                source = Some(src);
            }
            "target" | "dst" | "destination" => target = val,
            "readonly" | "ro" => read_only = go_bool(&val).ok_or_else(|| bad_value(&key, &val))?,
            "consistency" => consistency = Some(val.to_ascii_lowercase()),
            "bind-propagation" => {
                bind.get_or_insert_with(Map::new)
                    .insert("Propagation".into(), json!(val.to_ascii_lowercase()));
            }
            "bind-nonrecursive" => {
                let b = go_bool(&val).ok_or_else(|| bad_value(&key, &val))?;
                bind.get_or_insert_with(Map::new)
                    .insert("NonRecursive".into(), json!(b));
            }
            "bind-recursive" => {
                let b = bind.get_or_insert_with(Map::new);
                match val.as_str() {
                    "enabled" => {}
                    "disabled" => {
                        b.insert("NonRecursive".into(), json!(true));
                    }
                    "writable" => {
                        b.insert("ReadOnlyNonRecursive".into(), json!(true));
                    }
                    "readonly" => {
                        b.insert("ReadOnlyForceRecursive".into(), json!(true));
                    }
                    _ => {
                        return Err(SpecError::InvalidBindRecursive {
                            key: key.clone(),
                            value: val,
                        })
                    }
                }
            }
            "volume-subpath" => {
                vol.get_or_insert_with(Map::new)
                    .insert("Subpath".into(), json!(val));
            }
            "volume-nocopy" => {
                let b = go_bool(&val).ok_or_else(|| bad_value(&key, &val))?;
                vol.get_or_insert_with(Map::new)
                    .insert("NoCopy".into(), json!(b));
            }
            "volume-label" => {
                vol.get_or_insert_with(Map::new);
                let (k, v) = val.split_once('=').unwrap_or((val.as_str(), ""));
                if !k.is_empty() {
                    labels
                        .get_or_insert_with(Map::new)
                        .insert(k.into(), json!(v));
                }
            }
            "volume-driver" => {
                vol.get_or_insert_with(Map::new);
                driver
                    .get_or_insert_with(Map::new)
                    .insert("Name".into(), json!(val));
            }
            "volume-opt" => {
                vol.get_or_insert_with(Map::new);
                driver.get_or_insert_with(Map::new);
                let (k, v) = val.split_once('=').unwrap_or((val.as_str(), ""));
                if !k.is_empty() {
                    driver_opts
                        .get_or_insert_with(Map::new)
                        .insert(k.into(), json!(v));
                }
            }
            "tmpfs-size" => {
                let n = parse_ram_bytes(&val).map_err(|_| bad_value(&key, &val))?;
                tmpfs
                    .get_or_insert_with(Map::new)
                    .insert("SizeBytes".into(), json!(n));
            }
            "tmpfs-mode" => {
                let n = u32::from_str_radix(&val, 8).map_err(|_| bad_value(&key, &val))?;
                tmpfs
                    .get_or_insert_with(Map::new)
                    .insert("Mode".into(), json!(n));
            }
            _ => {
                return Err(SpecError::UnexpectedKey {
                    key,
                    field: field.clone(),
                })
            }
        }
    }
    if typ.is_empty() {
        return Err(SpecError::TypeRequired);
    }
    if target.is_empty() {
        return Err(SpecError::TargetRequired);
    }
    let mix = |prefix: &'static str| SpecError::MixedOptions {
        prefix,
        typ: typ.clone(),
    };
    if vol.is_some() && typ != "volume" {
        return Err(mix("volume"));
    }
    if bind.is_some() && typ != "bind" {
        return Err(mix("bind"));
    }
    if tmpfs.is_some() && typ != "tmpfs" {
        return Err(mix("tmpfs"));
    }
    if let Some(b) = &bind {
        let set = |k: &str| b.get(k).and_then(Value::as_bool).unwrap_or(false);
        if set("ReadOnlyNonRecursive") && !read_only {
            return Err(SpecError::OptionRule(
                "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction",
            ));
        }
        if set("ReadOnlyForceRecursive") {
            if !read_only {
                return Err(SpecError::OptionRule(
                    "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction",
                ));
            }
            if b.get("Propagation").and_then(Value::as_str) != Some("rprivate") {
                return Err(SpecError::OptionRule(
                    "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction",
                ));
            }
        }
    }

    let mut out = Map::new();
    out.insert("Type".into(), json!(typ));
    if let Some(s) = source.filter(|s| !s.is_empty()) {
        out.insert("Source".into(), json!(s));
    }
    out.insert("Target".into(), json!(target));
    if read_only {
        out.insert("ReadOnly".into(), json!(true));
    }
    if let Some(c) = consistency.filter(|c| !c.is_empty()) {
        out.insert("Consistency".into(), json!(c));
    }
    if let Some(b) = bind {
        out.insert("BindOptions".into(), Value::Object(b));
    }
    if let Some(mut v) = vol {
        if let Some(l) = labels {
            v.insert("Labels".into(), Value::Object(l));
        }
        if let Some(mut d) = driver {
            if let Some(o) = driver_opts {
                d.insert("Options".into(), Value::Object(o));
            }
            v.insert("DriverConfig".into(), Value::Object(d));
        }
        out.insert("VolumeOptions".into(), Value::Object(v));
    }
    if let Some(t) = tmpfs {
        out.insert("TmpfsOptions".into(), Value::Object(t));
    }
    Ok(Value::Object(out))
}

/// go-units `RAMInBytes`: `64m`, `1.5g`, `512kb`, `1GiB`; binary multiples.
pub fn parse_ram_bytes(s: &str) -> Result<u64, SpecError> {
    let err = || SpecError::InvalidSize(s.to_string());
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(num_end);
    if num.is_empty() || !num.starts_with(|c: char| c.is_ascii_digit()) || num.ends_with('.') {
        return Err(err());
    }
    let value: f64 = num.parse().map_err(|_| err())?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut chars = rest.chars();
    let mut mult: u64 = 1;
    let mut next = chars.next();
    if let Some(c) = next {
        let m = match c.to_ascii_lowercase() {
            'k' => Some(1u64 << 10),
            'm' => Some(1 << 20),
            'g' => Some(1 << 30),
            't' => Some(1 << 40),
            'p' => Some(1 << 50),
            _ => None,
        };
        if let Some(m) = m {
            mult = m;
            next = chars.next();
        }
    }
    if next.is_some_and(|c| c.eq_ignore_ascii_case(&'i')) {
        next = chars.next();
    }
    if next.is_some_and(|c| c.eq_ignore_ascii_case(&'b')) {
        next = chars.next();
    }
    if next.is_some() {
        return Err(err());
    }
    Ok((value * mult as f64) as u64)
}

// ---------------------------------------------------------------------------------------
// --tmpfs / HostConfig.Tmpfs
// ---------------------------------------------------------------------------------------

/// Mount flags moby/sys/mount recognises in an option string (they are not tmpfs data).
const MOUNT_FLAG_WORDS: &[&str] = &[
    "defaults",
    "ro",
    "rw",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "exec",
    "noexec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "bind",
    "rbind",
    "unbindable",
    "runbindable",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
];

/// tmpfs data keys moby/sys/mount lets through.
const TMPFS_DATA_KEYS: &[&str] = &[
    "size",
    "mode",
    "uid",
    "gid",
    "nr_inodes",
    "nr_blocks",
    "mpol",
    "huge",
    "inode64",
    "noswap",
];

/// Kernel-style tmpfs size: a number with an optional `k`/`m`/`g`/`t`/`p`/`e` suffix.
fn parse_kernel_size(v: &str) -> Option<u64> {
    let (num, mult) = match v.chars().last()?.to_ascii_lowercase() {
        'k' => (&v[..v.len() - 1], 1u64 << 10),
        'm' => (&v[..v.len() - 1], 1 << 20),
        'g' => (&v[..v.len() - 1], 1 << 30),
        't' => (&v[..v.len() - 1], 1 << 40),
        'p' => (&v[..v.len() - 1], 1 << 50),
        'e' => (&v[..v.len() - 1], 1 << 60),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Parses one `HostConfig.Tmpfs` entry: `dest` -> `"size=64m,mode=1777,noexec"`.
pub fn parse_tmpfs(dest: &str, opts: &str) -> Result<MountSpec, SpecError> {
    if dest.is_empty() {
        return Err(SpecError::MissingField("Target"));
    }
    validate_target(dest)?;
    let mut spec = MountSpec::new(MountType::Tmpfs, "", &clean_path(dest));
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        if MOUNT_FLAG_WORDS.contains(&o) {
            match o {
                "ro" => spec.read_only = true,
                "rw" => spec.read_only = false,
                other => spec.tmpfs_options.push(other.to_string()),
            }
            continue;
        }
        let (k, v) = match o.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (o, None),
        };
        if !TMPFS_DATA_KEYS.contains(&k) {
            // moby prints the split option with Go's %q on a []string.
            let rendered = match v {
                Some(v) => format!("[{} {}]", go_quote(k), go_quote(v)),
                None => format!("[{}]", go_quote(k)),
            };
            return Err(SpecError::InvalidTmpfsOption(rendered));
        }
        match (k, v) {
            ("size", Some(v)) if parse_kernel_size(v).is_some() => {
                spec.tmpfs_size = parse_kernel_size(v);
            }
            ("mode", Some(v)) => {
                let m = u32::from_str_radix(v, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| SpecError::InvalidTmpfsMode(v.to_string()))?;
                spec.tmpfs_mode = Some(m);
            }
            // `size=50%` and friends go to the kernel untouched.
            _ => spec.tmpfs_options.push(o.to_string()),
        }
    }
    Ok(spec)
}

/// The CLI's `--tmpfs` value: `/run` or `/run:size=64m,mode=1777`.
pub fn parse_tmpfs_flag(value: &str) -> Result<MountSpec, SpecError> {
    let (dest, opts) = value.split_once(':').unwrap_or((value, ""));
    parse_tmpfs(dest, opts)
}

/// The option list for a tmpfs mount in the OCI spec: dockerd's defaults (`noexec`,
/// `nosuid`, `nodev`) merged with the mount's own options, a later word overriding an
/// earlier opposite one and a later `key=` replacing an earlier one.
pub fn tmpfs_oci_options(spec: &MountSpec) -> Vec<String> {
    let mut all: Vec<String> = vec!["noexec".into(), "nosuid".into(), "nodev".into()];
    if spec.read_only {
        all.push("ro".into());
    }
    all.extend(spec.tmpfs_options.iter().cloned());
    if let Some(size) = spec.tmpfs_size {
        all.push(format!("size={}", format_size_suffix(size)));
    }
    if let Some(mode) = spec.tmpfs_mode {
        all.push(format!("mode={mode:o}"));
    }
    let opposite = |w: &str| -> Option<String> {
        match w {
            "ro" => return Some("rw".into()),
            "rw" => return Some("ro".into()),
            "sync" => return Some("async".into()),
            "async" => return Some("sync".into()),
            _ => {}
        }
        if let Some(rest) = w.strip_prefix("no") {
            if MOUNT_FLAG_WORDS.contains(&rest) {
                return Some(rest.to_string());
            }
        }
        let neg = format!("no{w}");
        MOUNT_FLAG_WORDS.contains(&neg.as_str()).then_some(neg)
    };
    let mut out: Vec<String> = Vec::new();
    for o in all {
        let key = o.split_once('=').map(|(k, _)| k.to_string());
        out.retain(|prev| match &key {
            Some(k) => prev.split_once('=').map(|(pk, _)| pk) != Some(k.as_str()),
            None => *prev != o && Some(prev.clone()) != opposite(&o),
        });
        out.push(o);
    }
    out
}

/// dockerd's rendering of a byte count for tmpfs: the largest of g/m/k dividing it evenly.
fn format_size_suffix(size: u64) -> String {
    for (suffix, div) in [("g", 1u64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if size.is_multiple_of(div) {
            return format!("{}{}", size / div, suffix);
        }
    }
    size.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // moby volume/mounts/linux_parser_test.go: TestLinuxParseMountRaw
    #[test]
    fn moby_valid_binds() {
        let valid = [
            "/home",
            "/home:/home",
            "/home:/something/else",
            "/with space",
            "/home:/with space",
            "relative:/absolute-path",
            "hostPath:/containerPath:ro",
            "/hostPath:/containerPath:rw",
            "/rw:/ro",
            "/hostPath:/containerPath:shared",
            "/hostPath:/containerPath:rshared",
            "/hostPath:/containerPath:slave",
            "/hostPath:/containerPath:rslave",
            "/hostPath:/containerPath:private",
            "/hostPath:/containerPath:rprivate",
            "/hostPath:/containerPath:ro,shared",
            "/hostPath:/containerPath:ro,slave",
            "/hostPath:/containerPath:ro,private",
            "/hostPath:/containerPath:ro,z,shared",
            "/hostPath:/containerPath:ro,Z,slave",
            "/hostPath:/containerPath:Z,ro,slave",
            "/hostPath:/containerPath:slave,Z,ro",
            "/hostPath:/containerPath:Z,slave,ro",
            "/hostPath:/containerPath:slave,ro,Z",
            "/hostPath:/containerPath:rslave,ro,Z",
            "/hostPath:/containerPath:ro,rshared,Z",
            "/hostPath:/containerPath:ro,Z,rprivate",
        ];
        for v in valid {
            if let Err(e) = parse_bind(v) {
                panic!("{v} should parse: {e}");
            }
        }
    }

    #[test]
    fn moby_invalid_binds() {
        let invalid = [
            ("", "invalid volume specification"),
            ("./", "mount path must be absolute"),
            ("../", "mount path must be absolute"),
            ("/:../", "mount path must be absolute"),
            ("/:path", "mount path must be absolute"),
            (":", "invalid volume specification"),
            ("/tmp:", "invalid volume specification"),
            (":test", "invalid volume specification"),
            (":/test", "invalid volume specification"),
            ("tmp:", "invalid volume specification"),
            (":test:", "invalid volume specification"),
            ("::", "invalid volume specification"),
            (":::", "invalid volume specification"),
            ("/tmp:::", "invalid volume specification"),
            (":/tmp::", "invalid volume specification"),
            ("/path:rw", "invalid volume specification"),
            ("/path:ro", "invalid volume specification"),
            ("/rw:rw", "invalid volume specification"),
            ("path:ro", "invalid volume specification"),
            ("/path:/path:sw", "invalid mode"),
            ("/path:/path:rwz", "invalid mode"),
            ("/path:/path:ro,rshared,rslave", "invalid mode"),
            ("/path:/path:ro,z,rshared,rslave", "invalid mode"),
            ("/path:shared", "invalid volume specification"),
            ("/path:slave", "invalid volume specification"),
            ("/path:private", "invalid volume specification"),
            ("name:/absolute-path:shared", "invalid volume specification"),
            (
                "name:/absolute-path:rshared",
                "invalid volume specification",
            ),
            ("name:/absolute-path:slave", "invalid volume specification"),
            ("name:/absolute-path:rslave", "invalid volume specification"),
            (
                "name:/absolute-path:private",
                "invalid volume specification",
            ),
            (
                "name:/absolute-path:rprivate",
                "invalid volume specification",
            ),
        ];
        for (spec, want) in invalid {
            match parse_bind(spec) {
                Ok(m) => panic!("{spec:?} should fail, got {m:?}"),
                Err(e) => assert!(e.to_string().contains(want), "{spec:?}: {e} lacks {want:?}"),
            }
        }
    }

    #[test]
    fn exact_docker_messages() {
        assert_eq!(
            parse_bind("/:path").unwrap_err().to_string(),
            "invalid volume specification: '/:path': invalid mount config for type \"bind\": invalid mount path: 'path' mount path must be absolute"
        );
        assert_eq!(
            parse_bind("/path:/path:sw").unwrap_err().to_string(),
            "invalid mode: sw"
        );
        assert_eq!(
            parse_bind("/a:/").unwrap_err().to_string(),
            "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"
        );
        assert_eq!(
            parse_bind("name:/x:shared").unwrap_err().to_string(),
            "invalid volume specification: 'name:/x:shared': invalid mount config for type \"volume\": field BindOptions must not be specified"
        );
        assert_eq!(
            parse_bind("./app:/app").unwrap_err().to_string(),
            "create ./app: \"./app\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
        assert_eq!(
            parse_bind(".:/app").unwrap_err().to_string(),
            "create .: volume name is too short, names should be at least two alphanumeric characters"
        );
        assert_eq!(
            parse_bind("/tmp:/proc").unwrap_err().to_string(),
            "invalid volume specification: '/tmp:/proc': invalid mount config for type \"bind\": \"/proc\" cannot be mounted because it is located inside \"/proc\""
        );
    }

    // moby TestLinuxParseMountRawSplit
    #[test]
    fn moby_split_cases() {
        let m = parse_bind("/tmp:/tmp1").unwrap();
        assert_eq!(
            (m.typ, m.source.as_str(), m.target.as_str(), m.read_only),
            (MountType::Bind, "/tmp", "/tmp1", false)
        );
        assert_eq!(m.propagation.as_deref(), Some("rprivate"));
        assert!(m.bind_create_host_path);
        assert!(parse_bind("/tmp:/tmp2:ro").unwrap().read_only);
        assert!(!parse_bind("/tmp:/tmp3:rw").unwrap().read_only);
        assert!(parse_bind("/tmp:/tmp4:foo").is_err());
        let v = parse_bind("name:/named1").unwrap();
        assert_eq!(
            (v.typ, v.source.as_str(), v.target.as_str()),
            (MountType::Volume, "name", "/named1")
        );
        let v = parse_bind_for_driver("name:/named2", "external").unwrap();
        assert_eq!(v.volume_driver.as_deref(), Some("external"));
        let v = parse_bind_for_driver("name:/named3:ro", "local").unwrap();
        assert!(v.read_only);
        // Another driver's names are its own business.
        assert!(parse_bind_for_driver("local/name:/tmp:rw", "external").is_ok());
        assert!(parse_bind("local/name:/tmp:rw").is_err());
        assert!(parse_bind("/tmp:tmp").is_err());
    }

    #[test]
    fn bind_modes() {
        let m = parse_bind("/a/../b/:/c/./d/:ro,Z,rshared").unwrap();
        assert_eq!(m.source, "/b");
        assert_eq!(m.target, "/c/d");
        assert!(m.read_only);
        assert_eq!(m.selinux_label.as_deref(), Some("Z"));
        assert_eq!(m.propagation.as_deref(), Some("rshared"));
        assert_eq!(m.mode, "ro,Z,rshared");
        let v = parse_bind("data:/srv:nocopy").unwrap();
        assert!(v.nocopy);
        assert_eq!(v.propagation, None);
        let err = parse_bind("/a:/b:nocopy").unwrap_err().to_string();
        assert!(
            err.contains("field VolumeOptions must not be specified"),
            "{err}"
        );
        let anon = parse_bind("/data").unwrap();
        assert!(anon.is_anonymous_volume());
        assert_eq!(anon.target, "/data");
        let r = parse_bind("/a:/b:rro").unwrap();
        assert_eq!(r.bind_recursive.as_deref(), Some("readonly"));
        assert!(parse_bind("/a:/b:cached").unwrap().consistency.is_some());
        assert!(parse_bind("/a:/b:1:2").is_err());
    }

    #[test]
    fn targets() {
        assert_eq!(validate_target("/"), Err(SpecError::TargetIsRoot));
        assert_eq!(validate_target("//."), Err(SpecError::TargetIsRoot));
        assert!(matches!(
            validate_target("rel"),
            Err(SpecError::NotAbsolute(_))
        ));
        assert!(matches!(
            validate_target("/proc/sys"),
            Err(SpecError::InsideProc(_))
        ));
        assert!(validate_target("/proc/meminfo").is_ok());
        assert!(validate_target("/procfoo").is_ok());
        assert!(validate_target("/data").is_ok());
        assert_eq!(
            validate_target("/proc/1/../sys").unwrap_err().to_string(),
            "\"/proc/sys\" cannot be mounted because it is located inside \"/proc\""
        );
    }

    #[test]
    fn volume_names() {
        for ok in ["ab", "a1", "my_vol.1-x", "0abc"] {
            validate_volume_name(ok).unwrap();
        }
        for bad in ["a", "_ab", ".ab", "a/b", "a b", "", "ü1"] {
            assert!(validate_volume_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clean() {
        for (i, o) in [
            ("", "."),
            ("/", "/"),
            ("a/b/../c", "a/c"),
            ("/../a", "/a"),
            ("../../a", "../../a"),
            ("a/..", "."),
            ("//a//b/", "/a/b"),
        ] {
            assert_eq!(clean_path(i), o, "{i}");
        }
    }

    #[test]
    fn api_mounts() {
        let m = parse_mount_api(&json!({"Type": "bind", "Source": "/tmp", "Target": "/x",
            "ReadOnly": true, "BindOptions": {"Propagation": "rslave", "NonRecursive": true}}))
        .unwrap();
        assert_eq!(m.typ, MountType::Bind);
        assert!(m.read_only && !m.bind_create_host_path);
        assert_eq!(m.propagation.as_deref(), Some("rslave"));
        assert_eq!(m.bind_recursive.as_deref(), Some("disabled"));

        let e = parse_mount_api(
            &json!({"Type": "bind", "Source": "/definitely/not/here/berth", "Target": "/x"}),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid mount config for type \"bind\": bind mount source path does not exist: /definitely/not/here/berth"
        );
        let ok = parse_mount_api(
            &json!({"Type": "bind", "Source": "/definitely/not/here/berth", "Target": "/x",
            "BindOptions": {"CreateMountpoint": true}}),
        )
        .unwrap();
        assert!(ok.bind_create_host_path);

        let v = parse_mount_api(
            &json!({"type": "volume", "source": "data", "target": "/srv",
            "VolumeOptions": {"NoCopy": true, "Labels": {"a": "b"},
                "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}}),
        )
        .unwrap();
        assert!(v.nocopy);
        assert_eq!(v.volume_labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(v.volume_driver.as_deref(), Some("local"));
        assert_eq!(
            v.volume_driver_opts.get("type").map(String::as_str),
            Some("tmpfs")
        );

        let e = parse_mount_api(&json!({"Type": "volume", "Target": "/srv", "ReadOnly": true}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes"
        );
        let e = parse_mount_api(&json!({"Type": "volume", "Source": "v1", "Target": "/srv",
            "BindOptions": {}}))
        .unwrap_err();
        assert!(e
            .to_string()
            .ends_with("field BindOptions must not be specified"));
        let e =
            parse_mount_api(&json!({"Type": "tmpfs", "Source": "x", "Target": "/t"})).unwrap_err();
        assert!(e
            .to_string()
            .ends_with("field Source must not be specified"));
        let e = parse_mount_api(&json!({"Type": "foo", "Target": "/t"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid mount config for type \"foo\": mount type unknown"
        );
        let e = parse_mount_api(&json!({"Type": "bind", "Source": "/tmp"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid mount config for type \"bind\": field Target must not be empty"
        );
        let e =
            parse_mount_api(&json!({"Type": "bind", "Source": "/tmp", "Target": "/x", "Bogus": 1}))
                .unwrap_err();
        assert_eq!(e.to_string(), "unknown field \"Bogus\" in Mount");
        let e = parse_mount_api(&json!({"Type": "bind", "Source": "/tmp", "Target": "/x",
            "BindOptions": {"Whatever": 1}}))
        .unwrap_err();
        assert_eq!(e.to_string(), "unknown field \"Whatever\" in BindOptions");
        let e = parse_mount_api(&json!({"Type": "volume", "Source": "v1", "Target": "/x",
            "VolumeOptions": {"Subpath": "../etc"}}))
        .unwrap_err();
        assert!(e
            .to_string()
            .ends_with("subpath must be a relative path within the volume"));

        let t = parse_mount_api(&json!({"Type": "tmpfs", "Target": "/t",
            "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o700, "Options": [["exec"]]}}))
        .unwrap();
        assert_eq!(t.tmpfs_size, Some(1 << 20));
        assert_eq!(t.tmpfs_mode, Some(0o700));
        assert_eq!(t.tmpfs_options, vec!["exec".to_string()]);
        let e = parse_mount_api(&json!({"Type": "tmpfs", "Target": "/t",
            "TmpfsOptions": {"Options": [["uid", "0"]]}}))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid mount config for type \"tmpfs\": invalid option: uid"
        );
    }

    #[test]
    fn mount_flag() {
        let v = parse_mount_flag("type=bind,source=/a,target=/b,readonly,bind-propagation=rshared")
            .unwrap();
        assert_eq!(
            v,
            json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true,
                "BindOptions": {"Propagation": "rshared"}})
        );
        // default type is volume
        let v = parse_mount_flag("src=data,dst=/srv,volume-nocopy,volume-label=a=b,volume-opt=type=tmpfs,volume-driver=local").unwrap();
        assert_eq!(
            v,
            json!({"Type": "volume", "Source": "data", "Target": "/srv",
                "VolumeOptions": {"NoCopy": true, "Labels": {"a": "b"},
                    "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}})
        );
        let spec = parse_mount_api(&v).unwrap();
        assert_eq!(spec.source, "data");
        let v = parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(
            v,
            json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 67108864, "Mode": 0o1770}})
        );
        let spec = parse_mount_api(&v).unwrap();
        assert_eq!(spec.tmpfs_mode, Some(0o1770));

        let cases = [
            ("foo=bar,target=/x", "unexpected key 'foo' in 'foo=bar'"),
            ("type=bind,target=/x,foo", "invalid field 'foo' must be a key=value pair"),
            ("type=bind,source=/a", "target is required"),
            ("type=,target=/x", "type is required"),
            ("type=bind,target=/x,readonly=maybe", "invalid value for readonly: maybe"),
            ("type=volume,target=/x,bind-propagation=shared", "cannot mix 'bind-*' options with mount type 'volume'"),
            ("type=bind,target=/x,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"),
            ("type=bind,target=/x,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'bind'"),
            ("type=tmpfs,target=/x,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
            ("type=tmpfs,target=/x,tmpfs-mode=999", "invalid value for tmpfs-mode: 999"),
            (
                "type=bind,src=/a,target=/x,bind-recursive=sometimes",
                "invalid value for bind-recursive: sometimes (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")",
            ),
            (
                "type=bind,src=/a,target=/x,bind-recursive=writable",
                "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction",
            ),
            (
                "type=bind,src=/a,target=/x,bind-recursive=readonly,ro",
                "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction",
            ),
            // docker CLI 28.2.2 has no bind-create-src yet.
            (
                "type=bind,src=/a,target=/x,bind-create-src",
                "invalid field 'bind-create-src' must be a key=value pair",
            ),
            (
                "type=bind,src=/a,target=/x,bind-create-src=1",
                "unexpected key 'bind-create-src' in 'bind-create-src=1'",
            ),
            (
                "type=volume,target=/x,volume-nocopy=maybe",
                "invalid value for volume-nocopy: maybe",
            ),
            ("type=bind,src=a\"b,target=/x", "parse error on line 1, column 16: bare \" in non-quoted-field"),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_mount_flag(input).unwrap_err().to_string(),
                want,
                "{input}"
            );
        }
        // CSV quoting keeps commas inside a field.
        let v =
            parse_mount_flag("type=volume,\"volume-opt=o=size=1m,uid=1000\",target=/x").unwrap();
        assert_eq!(
            v["VolumeOptions"]["DriverConfig"]["Options"]["o"],
            json!("size=1m,uid=1000")
        );
        // `.`-relative sources become absolute, as the CLI does.
        let v = parse_mount_flag("type=bind,src=./here,target=/x").unwrap();
        assert!(v["Source"].as_str().unwrap().starts_with('/'));
    }

    #[test]
    fn tmpfs_flag() {
        let t = parse_tmpfs_flag("/run:size=64m,mode=1777").unwrap();
        assert_eq!((t.target.as_str(), t.tmpfs_size), ("/run", Some(64 << 20)));
        let t = parse_tmpfs_flag("/cache").unwrap();
        assert_eq!(t.tmpfs_size, None);
        assert!(parse_tmpfs_flag(":size=1m").is_err());
    }

    /// Mutated inputs never panic any parser (they are fed straight from clients).
    #[test]
    fn parsers_survive_garbage() {
        let seeds = [
            "/a:/b:ro,z,rshared",
            "type=bind,src=/a,dst=/b,bind-propagation=rslave",
            "\"volume-opt=o=a,b\",target=/x",
            "size=64m,mode=1777,noexec",
            "1.5GiB",
        ];
        let alphabet: Vec<char> = ":,=/\".ü.0123456789abkmgzZ- \\".chars().collect();
        for seed in seeds {
            for round in 0..400 {
                let mut chars: Vec<char> = seed.chars().collect();
                for _ in 0..(1 + round % 5) {
                    let pos = rand::random_range(0..=chars.len());
                    let c = alphabet[rand::random_range(0..alphabet.len())];
                    match rand::random_range(0..3) {
                        0 if pos < chars.len() => {
                            chars.remove(pos);
                        }
                        1 if pos < chars.len() => chars[pos] = c,
                        _ => chars.insert(pos, c),
                    }
                }
                let s: String = chars.into_iter().collect();
                let _ = parse_bind(&s);
                let _ = parse_mount_flag(&s).map(|v| parse_mount_api(&v));
                let _ = parse_tmpfs_flag(&s);
                let _ = parse_ram_bytes(&s);
                let _ = validate_target(&s);
            }
        }
    }

    #[test]
    fn ram_bytes() {
        assert_eq!(parse_ram_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_ram_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_ram_bytes("10").unwrap(), 10);
        assert_eq!(parse_ram_bytes("512kb").unwrap(), 512 << 10);
        assert_eq!(parse_ram_bytes("1GiB").unwrap(), 1 << 30);
        for bad in ["", "m", "1x", "1.", "-1", "1mm"] {
            assert!(parse_ram_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tmpfs() {
        let t = parse_tmpfs("/run", "size=64m,mode=1777,noexec,uid=1000").unwrap();
        assert_eq!(t.typ, MountType::Tmpfs);
        assert_eq!(t.tmpfs_size, Some(64 << 20));
        assert_eq!(t.tmpfs_mode, Some(0o1777));
        assert_eq!(
            t.tmpfs_options,
            vec!["noexec".to_string(), "uid=1000".to_string()]
        );
        assert_eq!(
            tmpfs_oci_options(&t),
            // moby's MergeTmpfsOptions keeps the last occurrence, in its place.
            vec![
                "nosuid",
                "nodev",
                "noexec",
                "uid=1000",
                "size=64m",
                "mode=1777"
            ]
        );
        let t = parse_tmpfs("/run", "exec,ro").unwrap();
        assert!(t.read_only);
        assert_eq!(tmpfs_oci_options(&t), vec!["nosuid", "nodev", "ro", "exec"]);
        let t = parse_tmpfs("/run", "size=50%").unwrap();
        assert_eq!(t.tmpfs_size, None);
        assert_eq!(t.tmpfs_options, vec!["size=50%".to_string()]);
        let t = parse_tmpfs("/run", "").unwrap();
        assert_eq!(tmpfs_oci_options(&t), vec!["noexec", "nosuid", "nodev"]);
        assert_eq!(
            parse_tmpfs("/run", "foo=bar").unwrap_err().to_string(),
            "invalid tmpfs option [\"foo\" \"bar\"]"
        );
        assert_eq!(parse_tmpfs("/", "").unwrap_err(), SpecError::TargetIsRoot);
        assert!(parse_tmpfs("run", "").is_err());
        assert!(parse_tmpfs("/run", "mode=99").is_err());
        let from_api = parse_mount_api(&json!({"Type": "tmpfs", "Target": "/t",
            "TmpfsOptions": {"SizeBytes": 1536}}))
        .unwrap();
        assert_eq!(
            tmpfs_oci_options(&from_api),
            vec!["noexec", "nosuid", "nodev", "size=1536"]
        );
        assert_eq!(format_size_suffix(3 << 30), "3g");
    }
}
