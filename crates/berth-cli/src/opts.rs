//! `docker run` / `docker create` flags into the Engine API's `ContainerCreate` body.
//!
//! Each parser mirrors the docker CLI function of the same role (`nat.ParsePortSpecs`,
//! `opts.ParseEnvFile`, `units.RAMInBytes`, `opts.ParseRestartPolicy`, `ulimit.Parse`, the
//! `--mount` CSV reader) so that the daemon receives exactly what docker would send for the
//! same command line. Pure functions over strings and files: unit-tested without a daemon.

use serde_json::{json, Map, Value};

use crate::cli::RunArgs;
use crate::format::humanize::{parse_go_duration, ram_in_bytes, UnitsError};

/// A flag value that docker would reject.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptsError {
    #[error("invalid argument {value:?} for \"{flag}\" flag: {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// A validation error docker reports as `docker: MESSAGE` (exit 125).
    #[error("{0}")]
    Conflict(String),
    /// An error docker prints bare and exits 1 with.
    #[error("{0}")]
    Plain(String),
    #[error("open {path}: {reason}")]
    File { path: String, reason: String },
    #[error(transparent)]
    Units(#[from] UnitsError),
}

type R<T> = Result<T, OptsError>;

fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> OptsError {
    OptsError::Invalid {
        flag,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// What `run` needs besides the body.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub body: Value,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub image: String,
}

/// `KEY=VAL` stays; a bare `KEY` takes the local value when set, else stays bare
/// (`opts.ValidateEnv`).
pub fn env_value(s: &str) -> String {
    if s.contains('=') {
        return s.to_string();
    }
    match std::env::var(s) {
        Ok(v) => format!("{s}={v}"),
        Err(_) => s.to_string(),
    }
}

/// `opts.ParseEnvFile`: skip blanks and `#` comments, trim leading space, keep `K=V`, take
/// bare names from the local environment (dropping unset ones); whitespace in a name is an
/// error.
pub fn parse_env_file(path: &str) -> R<Vec<String>> {
    let text = std::fs::read(path).map_err(|e| OptsError::File {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    let text = String::from_utf8_lossy(&text);
    parse_env_lines(&text, path)
}

fn parse_env_lines(text: &str, path: &str) -> R<Vec<String>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        let line = if i == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            line
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, val) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if name.is_empty() {
            return Err(OptsError::File {
                path: path.to_string(),
                reason: format!("no variable name on line '{line}'"),
            });
        }
        if name.contains(char::is_whitespace) {
            return Err(OptsError::File {
                path: path.to_string(),
                reason: format!("variable '{name}' contains whitespaces"),
            });
        }
        match val {
            Some(v) => out.push(format!("{name}={v}")),
            None => {
                if let Ok(v) = std::env::var(name) {
                    out.push(format!("{name}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// Labels from `--label-file` then `-l`: `k=v` or `k` (empty value).
pub fn parse_labels(files: &[String], labels: &[String]) -> R<Map<String, Value>> {
    let mut all = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| OptsError::File {
            path: f.clone(),
            reason: e.to_string(),
        })?;
        for l in text.lines() {
            let l = l.trim();
            if !l.is_empty() && !l.starts_with('#') {
                all.push(l.to_string());
            }
        }
    }
    all.extend(labels.iter().cloned());
    let mut m = Map::new();
    for l in all {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(m)
}

/// `--restart`: `name[:max-retries]`. Like docker's `ParseRestartPolicy` only the shape is
/// checked here; the daemon validates the policy name and where a count is allowed.
pub fn parse_restart(s: &str) -> R<Value> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    if name.is_empty() && count.is_some() {
        return Err(OptsError::Conflict(
            "invalid restart policy format: no policy provided before colon".to_string(),
        ));
    }
    let name = if name.is_empty() { "no" } else { name };
    let max: i64 = match count {
        None | Some("") => 0,
        Some(c) => c.parse().map_err(|_| {
            OptsError::Conflict(
                "invalid restart policy format: maximum retry count must be an integer".to_string(),
            )
        })?,
    };
    Ok(json!({"Name": name, "MaximumRetryCount": max}))
}

/// `--ulimit name=soft[:hard]`.
pub fn parse_ulimit(s: &str) -> R<Value> {
    let bad = |r: &str| invalid("--ulimit", s, r.to_string());
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| bad(&format!("invalid ulimit argument: {s}")))?;
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (a, b),
        None => (vals, vals),
    };
    let p = |v: &str| -> R<i64> {
        v.parse::<i64>()
            .map_err(|_| bad(&format!("strconv.ParseInt: parsing {v:?}: invalid syntax")))
    };
    let (soft, hard) = (p(soft)?, p(hard)?);
    if soft > hard && hard != -1 {
        return Err(bad(&format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )));
    }
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `--cpus 1.5` into NanoCPUs (exact decimal arithmetic, as docker's `big.Rat`).
pub fn parse_cpus(s: &str) -> R<i64> {
    let bad = || {
        invalid(
            "--cpus",
            s,
            format!("failed to parse {s} as a rational number"),
        )
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > 9 {
        return Err(invalid("--cpus", s, "value is too precise"));
    }
    let i: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let f: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    Ok(i * 1_000_000_000 + f)
}

/// Split `[ip:]rest` of a port spec, honouring `[ipv6]`.
fn split_ip(spec: &str) -> (String, String) {
    if let Some(r) = spec.strip_prefix('[') {
        if let Some(end) = r.find(']') {
            let ip = r[..end].to_string();
            let rest = r[end + 1..].trim_start_matches(':').to_string();
            return (ip, rest);
        }
    }
    (String::new(), spec.to_string())
}

fn port_range(s: &str) -> R<(u32, u32)> {
    let bad = || OptsError::Conflict(format!("invalid containerPort: {s}"));
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u32 = a.parse().map_err(|_| bad())?;
    let b: u32 = b.parse().map_err(|_| bad())?;
    if a > 65535 || b > 65535 || b < a {
        return Err(bad());
    }
    Ok((a, b))
}

/// `-p`: `[ip:][hostPort:]containerPort[/proto]`, ports may be ranges. Returns the exposed
/// port keys and bindings in order.
pub fn parse_publish(spec: &str) -> R<Vec<(String, String, String)>> {
    let (proto_less, proto) = match spec.rsplit_once('/') {
        Some((a, p)) => (a, p.to_string()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(OptsError::Conflict(format!("invalid proto: {proto}")));
    }
    let (bracket_ip, rest) = split_ip(proto_less);
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match (bracket_ip.is_empty(), parts.as_slice()) {
        (true, [c]) => (String::new(), String::new(), c.to_string()),
        (true, [h, c]) => (String::new(), h.to_string(), c.to_string()),
        (true, [ip, h, c]) => (ip.to_string(), h.to_string(), c.to_string()),
        (false, [c]) => (bracket_ip.clone(), String::new(), c.to_string()),
        (false, [h, c]) => (bracket_ip.clone(), h.to_string(), c.to_string()),
        _ => return Err(invalid("-p, --publish", spec, "invalid port format")),
    };
    if ctr.is_empty() {
        return Err(invalid("-p, --publish", spec, "no port specified"));
    }
    let (c0, c1) = port_range(&ctr)?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(port_range(&host)?)
    };
    let mut out = Vec::new();
    let n = c1 - c0;
    for i in 0..=n {
        let key = format!("{}/{proto}", c0 + i);
        let hp = match host_range {
            None => String::new(),
            Some((h0, h1)) if h1 - h0 == n => (h0 + i).to_string(),
            Some((h0, h1)) if n == 0 => {
                if h0 == h1 {
                    h0.to_string()
                } else {
                    format!("{h0}-{h1}")
                }
            }
            Some(_) => {
                return Err(invalid(
                    "-p, --publish",
                    spec,
                    "port ranges don't match in size",
                ))
            }
        };
        out.push((key, ip.clone(), hp));
    }
    Ok(out)
}

/// `./x`, `../x` and `.` made absolute against the cwd and cleaned lexically (Go's
/// `filepath.Abs`); anything else as given.
fn abs_if_dotted(p: &str) -> String {
    if !p.starts_with('.') {
        return p.to_string();
    }
    let Ok(cwd) = std::env::current_dir() else {
        return p.to_string();
    };
    let mut out: Vec<String> = Vec::new();
    for part in cwd.to_string_lossy().split('/').chain(p.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_string()),
        }
    }
    format!("/{}", out.join("/"))
}

/// `--mount type=...,source=...,target=...` into an API `Mount`.
pub fn parse_mount(spec: &str) -> R<Value> {
    let bad = |r: &str| invalid("--mount", spec, r.to_string());
    let mut m = Map::new();
    let mut kind = "volume".to_string();
    let mut bind_opts = Map::new();
    let mut vol_opts = Map::new();
    let mut vol_labels = Map::new();
    let mut driver_opts = Map::new();
    let mut tmpfs_opts = Map::new();
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_lowercase(), Some(v.trim().to_string())),
            None => (field.trim().to_lowercase(), None),
        };
        let truthy = |v: &Option<String>| -> R<bool> {
            match v.as_deref() {
                None | Some("1") | Some("true") => Ok(true),
                Some("0") | Some("false") => Ok(false),
                Some(o) => Err(bad(&format!("invalid value for {k}: {o}"))),
            }
        };
        match k.as_str() {
            "readonly" | "ro" => {
                m.insert("ReadOnly".into(), Value::Bool(truthy(&v)?));
            }
            "volume-nocopy" => {
                vol_opts.insert("NoCopy".into(), Value::Bool(truthy(&v)?));
            }
            "bind-nonrecursive" if v.is_none() => {
                bind_opts.insert("NonRecursive".into(), Value::Bool(true));
            }
            _ => {
                let v = v.ok_or_else(|| {
                    bad(&format!("invalid field '{field}' must be a key=value pair"))
                })?;
                match k.as_str() {
                    "type" => kind = v,
                    "source" | "src" => {
                        // docker's CLI resolves `./dir` and `../dir` against its own cwd.
                        m.insert("Source".into(), Value::String(abs_if_dotted(&v)));
                    }
                    "target" | "dst" | "destination" => {
                        m.insert("Target".into(), Value::String(v));
                    }
                    "consistency" => {
                        m.insert("Consistency".into(), Value::String(v));
                    }
                    "bind-propagation" => {
                        bind_opts.insert("Propagation".into(), Value::String(v));
                    }
                    "bind-nonrecursive" => {
                        bind_opts.insert("NonRecursive".into(), Value::Bool(truthy(&Some(v))?));
                    }
                    "bind-recursive" => {
                        let key = match v.as_str() {
                            // Read-only binds are recursively read-only where the kernel
                            // allows it: the daemon's default.
                            "enabled" => None,
                            "disabled" => Some("NonRecursive"),
                            "writable" => Some("ReadOnlyNonRecursive"),
                            "readonly" => Some("ReadOnlyForceRecursive"),
                            _ => {
                                return Err(bad(&format!(
                                    "invalid value for {k}: {v} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
                                )))
                            }
                        };
                        if let Some(key) = key {
                            bind_opts.insert(key.into(), Value::Bool(true));
                        }
                    }
                    "volume-subpath" => {
                        vol_opts.insert("Subpath".into(), Value::String(v));
                    }
                    "volume-driver" => {
                        driver_opts.insert("Name".into(), Value::String(v));
                    }
                    "volume-label" => {
                        let (a, b) = v.split_once('=').unwrap_or((v.as_str(), ""));
                        vol_labels.insert(a.into(), Value::String(b.into()));
                    }
                    "volume-opt" => {
                        let (a, b) = v.split_once('=').unwrap_or((v.as_str(), ""));
                        let opts = driver_opts
                            .entry("Options")
                            .or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(o) = opts {
                            o.insert(a.into(), Value::String(b.into()));
                        }
                    }
                    "tmpfs-size" => {
                        tmpfs_opts.insert("SizeBytes".into(), json!(ram_in_bytes(&v)?));
                    }
                    "tmpfs-mode" => {
                        let mode = u32::from_str_radix(&v, 8)
                            .map_err(|_| bad(&format!("invalid value for tmpfs-mode: {v}")))?;
                        tmpfs_opts.insert("Mode".into(), json!(mode));
                    }
                    _ => return Err(bad(&format!("unexpected key '{k}' in '{field}'"))),
                }
            }
        }
    }
    if !m.contains_key("Target") {
        return Err(bad("target is required"));
    }
    // docker's validateMountOptions: options of another mount type are an error, not
    // silently dropped.
    let volume_opts_given =
        !vol_opts.is_empty() || !vol_labels.is_empty() || !driver_opts.is_empty();
    for (given, family, typ) in [
        (volume_opts_given, "volume", "volume"),
        (!bind_opts.is_empty(), "bind", "bind"),
        (!tmpfs_opts.is_empty(), "tmpfs", "tmpfs"),
    ] {
        if given && kind != typ {
            return Err(bad(&format!(
                "cannot mix '{family}-*' options with mount type '{kind}'"
            )));
        }
    }
    let read_only = m.get("ReadOnly").and_then(Value::as_bool).unwrap_or(false);
    if bind_opts.contains_key("ReadOnlyNonRecursive") && !read_only {
        return Err(bad(
            "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction",
        ));
    }
    if bind_opts.contains_key("ReadOnlyForceRecursive") {
        if !read_only {
            return Err(bad(
                "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction",
            ));
        }
        if bind_opts.get("Propagation").and_then(Value::as_str) != Some("rprivate") {
            return Err(bad("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction"));
        }
    }
    match kind.as_str() {
        "bind" => {
            if !m.contains_key("Source") {
                return Err(bad("source is required when specifying bind mount"));
            }
            if !bind_opts.is_empty() {
                m.insert("BindOptions".into(), Value::Object(bind_opts));
            }
        }
        "volume" => {
            if !vol_labels.is_empty() {
                vol_opts.insert("Labels".into(), Value::Object(vol_labels));
            }
            // docker's CLI sends an empty DriverConfig with any volume option.
            if !driver_opts.is_empty() || !vol_opts.is_empty() {
                vol_opts.insert("DriverConfig".into(), Value::Object(driver_opts));
            }
            if !vol_opts.is_empty() {
                m.insert("VolumeOptions".into(), Value::Object(vol_opts));
            }
        }
        "tmpfs" => {
            if m.contains_key("Source") {
                return Err(bad("source is not supported for tmpfs mounts"));
            }
            if !tmpfs_opts.is_empty() {
                m.insert("TmpfsOptions".into(), Value::Object(tmpfs_opts));
            }
        }
        "image" | "npipe" | "cluster" => {}
        other => return Err(bad(&format!("invalid mount type {other:?}"))),
    }
    m.insert("Type".into(), Value::String(kind));
    Ok(Value::Object(m))
}

fn parse_device(s: &str) -> R<Value> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, perms) = match parts.as_slice() {
        [a] => (*a, *a, "rwm"),
        [a, b] if b.chars().all(|c| "rwm".contains(c)) && !b.starts_with('/') => (*a, *a, *b),
        [a, b] => (*a, *b, "rwm"),
        [a, b, c] => (*a, *b, *c),
        _ => return Err(invalid("--device", s, "invalid device specification")),
    };
    Ok(json!({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}))
}

/// `--security-opt seccomp=FILE` is sent as the file's compacted JSON, as docker does.
fn security_opt(s: &str) -> R<String> {
    let (k, v) = match s.split_once(['=', ':']) {
        Some(kv) => kv,
        None => return Ok(s.to_string()),
    };
    if k == "seccomp" && v != "unconfined" && v != "builtin" {
        let text = std::fs::read(v).map_err(|e| OptsError::File {
            path: v.to_string(),
            reason: format!("opening seccomp profile failed: {e}"),
        })?;
        let parsed: Value = serde_json::from_slice(&text).map_err(|e| OptsError::File {
            path: v.to_string(),
            reason: format!("compacting json for seccomp profile failed: {e}"),
        })?;
        return Ok(format!("seccomp={parsed}"));
    }
    Ok(s.to_string())
}

fn dur(flag: &'static str, v: &Option<String>) -> R<Option<i64>> {
    match v {
        None => Ok(None),
        Some(s) => {
            let d = parse_go_duration(s).map_err(|e| invalid(flag, s, e.to_string()))?;
            if d < 0 {
                return Err(OptsError::Conflict(format!("{flag} cannot be negative")));
            }
            Ok(Some(d))
        }
    }
}

fn size(flag: &'static str, v: &Option<String>) -> R<Option<i64>> {
    v.as_deref()
        .map(|x| ram_in_bytes(x).map_err(|e| invalid(flag, x, e.to_string())))
        .transpose()
}

/// Which streams `run` attaches: `-a` values (validated), or all of stdout/stderr plus stdin
/// with `-i`; none when detached.
pub fn attach_streams(a: &RunArgs) -> R<(bool, bool, bool)> {
    if a.detach {
        if !a.attach.is_empty() {
            return Err(OptsError::Plain(
                "conflicting options: cannot specify both --attach and --detach".to_string(),
            ));
        }
        return Ok((false, false, false));
    }
    if a.attach.is_empty() {
        return Ok((a.interactive, true, true));
    }
    let (mut i, mut o, mut e) = (false, false, false);
    for s in &a.attach {
        match s.to_lowercase().as_str() {
            "stdin" => i = true,
            "stdout" => o = true,
            "stderr" => e = true,
            _ => {
                return Err(invalid(
                    "-a, --attach",
                    s,
                    "valid streams are STDIN, STDOUT and STDERR",
                ))
            }
        }
    }
    Ok((i, o, e))
}

/// Build the create request from `run`/`create` flags.
pub fn build_create(a: &RunArgs) -> R<CreateRequest> {
    let image = a.image_and_cmd[0].clone();
    let cmd: Vec<String> = a.image_and_cmd[1..].to_vec();
    let (att_in, att_out, att_err) = attach_streams(a)?;

    if a.rm && a.restart != "no" && !a.restart.is_empty() {
        return Err(OptsError::Conflict(
            "conflicting options: cannot specify both --restart and --rm".to_string(),
        ));
    }

    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(parse_env_file(f)?);
    }
    env.extend(a.env.iter().map(|e| env_value(e)));

    let labels = parse_labels(&a.label_file, &a.label)?;

    let mut exposed = Map::new();
    let mut bindings = Map::new();
    for p in &a.publish {
        for (key, ip, hp) in parse_publish(p)? {
            exposed.insert(key.clone(), json!({}));
            let list = bindings.entry(key).or_insert_with(|| json!([]));
            if let Value::Array(l) = list {
                l.push(json!({"HostIp": ip, "HostPort": hp}));
            }
        }
    }
    for e in &a.expose {
        let (ports, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        let (p0, p1) = port_range(ports)
            .map_err(|_| invalid("--expose", e, "invalid range format for --expose"))?;
        for p in p0..=p1 {
            exposed.insert(format!("{p}/{proto}"), json!({}));
        }
    }

    let mut binds = Vec::new();
    let mut volumes = Map::new();
    for v in &a.volume {
        // `/path` alone is an anonymous volume; anything with a source is a bind/named.
        let parts: Vec<&str> = v.split(':').collect();
        if parts.len() == 1 {
            if !v.starts_with('/') {
                return Err(invalid("-v, --volume", v, "invalid volume specification"));
            }
            volumes.insert(v.clone(), json!({}));
        } else if parts.len() > 3 || parts[1].is_empty() || !parts[1].starts_with('/') {
            return Err(invalid(
                "-v, --volume",
                v,
                format!("invalid volume specification: '{v}'"),
            ));
        } else if parts[0].starts_with('.') {
            // As docker's CLI: a host part starting with `.` is a path relative to the
            // client's cwd, made absolute before it goes to the daemon.
            let (host, rest) = v.split_once(':').expect("has a colon");
            binds.push(format!("{}:{rest}", abs_if_dotted(host)));
        } else {
            binds.push(v.clone());
        }
    }
    let mounts = a
        .mount
        .iter()
        .map(|m| parse_mount(m))
        .collect::<R<Vec<_>>>()?;
    let mut tmpfs = Map::new();
    for t in &a.tmpfs {
        let (p, o) = t.split_once(':').unwrap_or((t.as_str(), ""));
        tmpfs.insert(p.to_string(), Value::String(o.to_string()));
    }
    let mut sysctls = Map::new();
    for s in &a.sysctl {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| invalid("--sysctl", s, format!("sysctl '{s}' is not allowed")))?;
        sysctls.insert(k.to_string(), Value::String(v.to_string()));
    }
    let ulimits = a
        .ulimit
        .iter()
        .map(|u| parse_ulimit(u))
        .collect::<R<Vec<_>>>()?;
    let security = a
        .security_opt
        .iter()
        .map(|s| security_opt(s))
        .collect::<R<Vec<_>>>()?;
    let devices = a
        .device
        .iter()
        .map(|d| parse_device(d))
        .collect::<R<Vec<_>>>()?;
    let extra_hosts: Vec<String> = a
        .add_host
        .iter()
        .map(|h| match h.split_once('=') {
            Some((n, ip)) if !h.contains(':') || n.len() < h.find(':').unwrap_or(0) => {
                format!("{n}:{ip}")
            }
            _ => h.clone(),
        })
        .collect();

    let memory = size("-m, --memory", &a.memory)?;
    let memory_swap = match a.memory_swap.as_deref() {
        Some("-1") => Some(-1),
        _ => size("--memory-swap", &a.memory_swap)?,
    };
    let nano_cpus = a.cpus.as_deref().map(parse_cpus).transpose()?;
    let shm = size("--shm-size", &a.shm_size)?;

    let health_flags = a.health_cmd.is_some()
        || a.health_interval.is_some()
        || a.health_timeout.is_some()
        || a.health_start_period.is_some()
        || a.health_start_interval.is_some()
        || a.health_retries.is_some();
    let healthcheck = if a.no_healthcheck {
        if health_flags {
            return Err(OptsError::Conflict(
                "--no-healthcheck conflicts with --health-* options".to_string(),
            ));
        }
        Some(json!({"Test": ["NONE"]}))
    } else if health_flags {
        let mut h = Map::new();
        if let Some(c) = &a.health_cmd {
            h.insert("Test".into(), json!(["CMD-SHELL", c]));
        }
        for (k, flag, v) in [
            ("Interval", "--health-interval", &a.health_interval),
            ("Timeout", "--health-timeout", &a.health_timeout),
            (
                "StartPeriod",
                "--health-start-period",
                &a.health_start_period,
            ),
            (
                "StartInterval",
                "--health-start-interval",
                &a.health_start_interval,
            ),
        ] {
            if let Some(d) = dur(flag, v)? {
                h.insert(k.into(), json!(d));
            }
        }
        if let Some(r) = a.health_retries {
            if r < 0 {
                return Err(OptsError::Conflict(
                    "--health-retries cannot be negative".to_string(),
                ));
            }
            h.insert("Retries".into(), json!(r));
        }
        Some(Value::Object(h))
    } else {
        None
    };

    let network = a.network.clone().unwrap_or_else(|| "default".to_string());

    let mut hc = Map::new();
    let put = |m: &mut Map<String, Value>, k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put(&mut hc, "Binds", json!(binds));
    put(&mut hc, "NetworkMode", json!(network));
    put(&mut hc, "PortBindings", Value::Object(bindings));
    put(&mut hc, "RestartPolicy", parse_restart(&a.restart)?);
    put(&mut hc, "AutoRemove", json!(a.rm));
    put(&mut hc, "VolumesFrom", json!(a.volumes_from));
    put(&mut hc, "CapAdd", json!(a.cap_add));
    put(&mut hc, "CapDrop", json!(a.cap_drop));
    put(&mut hc, "Dns", json!(a.dns));
    put(&mut hc, "DnsOptions", json!(a.dns_option));
    put(&mut hc, "DnsSearch", json!(a.dns_search));
    put(&mut hc, "ExtraHosts", json!(extra_hosts));
    put(&mut hc, "GroupAdd", json!(a.group_add));
    put(&mut hc, "Links", json!(a.link));
    put(&mut hc, "Privileged", json!(a.privileged));
    put(&mut hc, "PublishAllPorts", json!(a.publish_all));
    put(&mut hc, "ReadonlyRootfs", json!(a.read_only));
    put(&mut hc, "SecurityOpt", json!(security));
    put(&mut hc, "Devices", json!(devices));
    put(&mut hc, "Ulimits", json!(ulimits));
    put(&mut hc, "Mounts", json!(mounts));
    if !tmpfs.is_empty() {
        put(&mut hc, "Tmpfs", Value::Object(tmpfs));
    }
    if !sysctls.is_empty() {
        put(&mut hc, "Sysctls", Value::Object(sysctls));
    }
    if let Some(s) = shm {
        put(&mut hc, "ShmSize", json!(s));
    }
    if a.init {
        put(&mut hc, "Init", json!(true));
    }
    put(&mut hc, "Memory", json!(memory.unwrap_or(0)));
    if let Some(s) = memory_swap {
        put(&mut hc, "MemorySwap", json!(s));
    }
    put(
        &mut hc,
        "MemoryReservation",
        json!(size("--memory-reservation", &a.memory_reservation)?.unwrap_or(0)),
    );
    if a.memory_swappiness != -1 {
        put(&mut hc, "MemorySwappiness", json!(a.memory_swappiness));
    }
    if a.oom_kill_disable {
        put(&mut hc, "OomKillDisable", json!(true));
    }
    if let Some(o) = a.oom_score_adj {
        put(&mut hc, "OomScoreAdj", json!(o));
    }
    put(&mut hc, "NanoCpus", json!(nano_cpus.unwrap_or(0)));
    put(&mut hc, "CpuShares", json!(a.cpu_shares.unwrap_or(0)));
    put(&mut hc, "CpuPeriod", json!(a.cpu_period.unwrap_or(0)));
    put(&mut hc, "CpuQuota", json!(a.cpu_quota.unwrap_or(0)));
    put(
        &mut hc,
        "CpusetCpus",
        json!(a.cpuset_cpus.clone().unwrap_or_default()),
    );
    put(
        &mut hc,
        "CpusetMems",
        json!(a.cpuset_mems.clone().unwrap_or_default()),
    );
    if let Some(p) = a.pids_limit {
        put(&mut hc, "PidsLimit", json!(p));
    }
    for (k, v) in [
        ("PidMode", &a.pid),
        ("IpcMode", &a.ipc),
        ("UTSMode", &a.uts),
        ("UsernsMode", &a.userns),
        ("CgroupnsMode", &a.cgroupns),
        ("CgroupParent", &a.cgroup_parent),
        ("Runtime", &a.runtime),
        ("VolumeDriver", &a.volume_driver),
    ] {
        if let Some(v) = v {
            put(&mut hc, k, json!(v));
        }
    }
    if a.log_driver.is_some() || !a.log_opt.is_empty() {
        let mut cfg = Map::new();
        for o in &a.log_opt {
            let (k, v) = o.split_once('=').unwrap_or((o.as_str(), ""));
            cfg.insert(k.into(), json!(v));
        }
        put(
            &mut hc,
            "LogConfig",
            json!({"Type": a.log_driver.clone().unwrap_or_default(), "Config": cfg}),
        );
    }
    if !a.storage_opt.is_empty() {
        let mut so = Map::new();
        for o in &a.storage_opt {
            let (k, v) = o.split_once('=').unwrap_or((o.as_str(), ""));
            so.insert(k.into(), json!(v));
        }
        put(&mut hc, "StorageOpt", Value::Object(so));
    }
    if !a.annotation.is_empty() {
        let mut an = Map::new();
        for o in &a.annotation {
            let (k, v) = o.split_once('=').unwrap_or((o.as_str(), ""));
            an.insert(k.into(), json!(v));
        }
        put(&mut hc, "Annotations", Value::Object(an));
    }

    let mut body = Map::new();
    put(
        &mut body,
        "Hostname",
        json!(a.hostname.clone().unwrap_or_default()),
    );
    put(
        &mut body,
        "Domainname",
        json!(a.domainname.clone().unwrap_or_default()),
    );
    put(&mut body, "User", json!(a.user.clone().unwrap_or_default()));
    put(&mut body, "AttachStdin", json!(att_in));
    put(&mut body, "AttachStdout", json!(att_out));
    put(&mut body, "AttachStderr", json!(att_err));
    if !exposed.is_empty() {
        put(&mut body, "ExposedPorts", Value::Object(exposed));
    }
    put(&mut body, "Tty", json!(a.tty));
    put(&mut body, "OpenStdin", json!(a.interactive));
    put(&mut body, "StdinOnce", json!(att_in));
    put(&mut body, "Env", json!(env));
    if !cmd.is_empty() {
        put(&mut body, "Cmd", json!(cmd));
    }
    if let Some(h) = healthcheck {
        put(&mut body, "Healthcheck", h);
    }
    put(&mut body, "Image", json!(image));
    if !volumes.is_empty() {
        put(&mut body, "Volumes", Value::Object(volumes));
    }
    put(
        &mut body,
        "WorkingDir",
        json!(a.workdir.clone().unwrap_or_default()),
    );
    if let Some(e) = &a.entrypoint {
        // `--entrypoint ""` resets the image's entrypoint: docker sends `[""]`.
        put(&mut body, "Entrypoint", json!([e]));
    }
    put(&mut body, "Labels", Value::Object(labels));
    if let Some(s) = &a.stop_signal {
        put(&mut body, "StopSignal", json!(s));
    }
    if let Some(t) = a.stop_timeout {
        put(&mut body, "StopTimeout", json!(t));
    }
    if let Some(m) = &a.mac_address {
        put(&mut body, "MacAddress", json!(m));
    }
    put(&mut body, "HostConfig", Value::Object(hc));
    let user_net = !matches!(network.as_str(), "default" | "bridge" | "host" | "none")
        && !network.starts_with("container:");
    if user_net || !a.network_alias.is_empty() || a.ip.is_some() {
        let mut ep = Map::new();
        if !a.network_alias.is_empty() {
            put(&mut ep, "Aliases", json!(a.network_alias));
        }
        if let Some(ip) = &a.ip {
            put(&mut ep, "IPAMConfig", json!({"IPv4Address": ip}));
        }
        if let Some(m) = &a.mac_address {
            put(&mut ep, "MacAddress", json!(m));
        }
        let mut eps = Map::new();
        eps.insert(network.clone(), Value::Object(ep));
        put(
            &mut body,
            "NetworkingConfig",
            json!({"EndpointsConfig": eps}),
        );
    }

    Ok(CreateRequest {
        body: Value::Object(body),
        name: a.name.clone(),
        platform: a.platform.clone(),
        image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Cmd};
    use clap::Parser;

    fn run_args(argv: &[&str]) -> RunArgs {
        let mut full = vec!["berth", "run"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full)
            .expect("valid command line")
            .command
        {
            Some(Cmd::Run(a)) => a,
            other => panic!("not a run command: {other:?}"),
        }
    }

    fn body(argv: &[&str]) -> Value {
        build_create(&run_args(argv)).expect("valid flags").body
    }

    #[test]
    fn image_and_command_stop_flag_parsing() {
        let a = run_args(&["-d", "--name", "x", "busybox", "ls", "-l", "-d"]);
        assert!(a.detach);
        assert_eq!(a.image_and_cmd, vec!["busybox", "ls", "-l", "-d"]);
        let b = body(&["busybox", "sh", "-c", "echo hi"]);
        assert_eq!(b["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(b["Image"], "busybox");
        assert!(body(&["busybox"]).get("Cmd").is_none());
    }

    #[test]
    fn hostname_short_flag() {
        let b = body(&["-h", "myhost", "busybox"]);
        assert_eq!(b["Hostname"], "myhost");
    }

    #[test]
    fn publish_ports() {
        let b = body(&[
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1:53:53/udp",
            "-p",
            "9000",
            "busybox",
        ]);
        assert_eq!(
            b["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "9000/tcp": {}})
        );
        assert_eq!(
            b["HostConfig"]["PortBindings"],
            json!({
                "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "53"}],
                "9000/tcp": [{"HostIp": "", "HostPort": ""}]
            })
        );
        let r = parse_publish("8000-8001:80-81").expect("valid range");
        assert_eq!(
            r,
            vec![
                ("80/tcp".to_string(), String::new(), "8000".to_string()),
                ("81/tcp".to_string(), String::new(), "8001".to_string())
            ]
        );
        assert_eq!(
            parse_publish("[::1]:80:80").expect("valid v6")[0],
            ("80/tcp".to_string(), "::1".to_string(), "80".to_string())
        );
        assert!(parse_publish("80/xyz").is_err());
        assert!(parse_publish("abc").is_err());
        assert!(parse_publish("8000-8002:80-81").is_err());
    }

    #[test]
    fn volumes_and_mounts() {
        let b = body(&[
            "-v",
            "data:/srv",
            "-v",
            "/host:/ctr:ro",
            "-v",
            "/anon",
            "--mount",
            "type=bind,src=/a,dst=/b,readonly",
            "--tmpfs",
            "/run:rw,size=64m",
            "busybox",
        ]);
        assert_eq!(
            b["HostConfig"]["Binds"],
            json!(["data:/srv", "/host:/ctr:ro"])
        );
        assert_eq!(b["Volumes"], json!({"/anon": {}}));
        assert_eq!(
            b["HostConfig"]["Mounts"],
            json!([{"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true}])
        );
        assert_eq!(b["HostConfig"]["Tmpfs"], json!({"/run": "rw,size=64m"}));
        let m = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770").expect("valid");
        assert_eq!(
            m["TmpfsOptions"],
            json!({"SizeBytes": 1048576, "Mode": 1016})
        );
        assert!(parse_mount("type=bind,target=/x").is_err());
        assert!(parse_mount("src=/x").is_err());
    }

    #[test]
    fn mount_flag_as_docker_cli() {
        let m = parse_mount("type=bind,src=/a,dst=/b,bind-recursive=disabled").expect("valid");
        assert_eq!(m["BindOptions"], json!({"NonRecursive": true}));
        let m =
            parse_mount("type=bind,src=/a,dst=/b,readonly,bind-recursive=writable").expect("valid");
        assert_eq!(m["BindOptions"], json!({"ReadOnlyNonRecursive": true}));
        let m = parse_mount(
            "type=bind,src=/a,dst=/b,readonly,bind-recursive=readonly,bind-propagation=rprivate",
        )
        .expect("valid");
        assert_eq!(
            m["BindOptions"],
            json!({"ReadOnlyForceRecursive": true, "Propagation": "rprivate"})
        );
        let err = |spec: &str| parse_mount(spec).expect_err(spec).to_string();
        assert!(
            err("type=bind,src=/a,dst=/b,readonly,bind-recursive=readonly")
                .contains("requires 'bind-propagation=rprivate'"),
            "needs rprivate"
        );
        assert!(err("type=bind,src=/a,dst=/b,bind-recursive=writable")
            .contains("option 'bind-recursive=writable' requires 'readonly'"));
        assert!(err("type=bind,src=/a,dst=/b,bind-recursive=sometimes")
            .contains("invalid value for bind-recursive: sometimes"));
        assert!(err("type=tmpfs,dst=/b,bind-propagation=rshared")
            .contains("cannot mix 'bind-*' options with mount type 'tmpfs'"));
        assert!(err("type=bind,src=/a,dst=/b,volume-nocopy")
            .contains("cannot mix 'volume-*' options with mount type 'bind'"));
        assert!(err("type=volume,dst=/b,tmpfs-size=1m")
            .contains("cannot mix 'tmpfs-*' options with mount type 'volume'"));
        // The CLI sends an empty DriverConfig with any volume option, as docker's does.
        let m = parse_mount("type=volume,src=v,dst=/b,volume-nocopy").expect("valid");
        assert_eq!(
            m["VolumeOptions"],
            json!({"NoCopy": true, "DriverConfig": {}})
        );
        // Relative sources are resolved against the cwd.
        let cwd = std::env::current_dir().expect("cwd");
        let m = parse_mount("type=bind,src=./x/../y,dst=/b").expect("valid");
        assert_eq!(m["Source"], json!(cwd.join("y").to_string_lossy()));
        let b = body(&["-v", "./data:/d:ro", "-v", "named:/n", "busybox"]);
        assert_eq!(
            b["HostConfig"]["Binds"],
            json!([format!("{}:/d:ro", cwd.join("data").display()), "named:/n"])
        );
    }

    #[test]
    fn resources() {
        let b = body(&[
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "nproc=10",
            "--cpus",
            "1.5",
            "-m",
            "512m",
            "--memory-swap",
            "-1",
            "--shm-size",
            "64m",
            "--pids-limit",
            "100",
            "--cpu-shares",
            "512",
            "busybox",
        ]);
        let hc = &b["HostConfig"];
        assert_eq!(
            hc["Ulimits"],
            json!([
                {"Name": "nofile", "Soft": 1024, "Hard": 2048},
                {"Name": "nproc", "Soft": 10, "Hard": 10}
            ])
        );
        assert_eq!(hc["NanoCpus"], 1_500_000_000);
        assert_eq!(hc["Memory"], 536_870_912);
        assert_eq!(hc["MemorySwap"], -1);
        assert_eq!(hc["ShmSize"], 67_108_864);
        assert_eq!(hc["PidsLimit"], 100);
        assert_eq!(hc["CpuShares"], 512);
        assert_eq!(parse_cpus("0.001"), Ok(1_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert!(parse_cpus("abc").is_err());
        assert!(parse_ulimit("nofile=20:10").is_err());
        assert!(parse_ulimit("nofile").is_err());
    }

    #[test]
    fn restart_policies() {
        assert_eq!(
            parse_restart("on-failure:3"),
            Ok(json!({"Name": "on-failure", "MaximumRetryCount": 3}))
        );
        assert_eq!(
            parse_restart("always"),
            Ok(json!({"Name": "always", "MaximumRetryCount": 0}))
        );
        // Policy names and where counts are allowed are the daemon's to judge, as in docker.
        assert_eq!(
            parse_restart("sometimes"),
            Ok(json!({"Name": "sometimes", "MaximumRetryCount": 0}))
        );
        assert!(parse_restart("on-failure:x").is_err());
        assert!(parse_restart(":3").is_err());
        let b = body(&["--restart", "unless-stopped", "busybox"]);
        assert_eq!(b["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
        let err = build_create(&run_args(&["--rm", "--restart", "always", "busybox"]));
        assert!(matches!(err, Err(OptsError::Conflict(_))));
    }

    #[test]
    fn env_and_env_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("env");
        std::fs::write(
            &f,
            "# comment\n\nA=1\n  B=two words\nC=\nBERTH_SURELY_UNSET_VAR\n",
        )
        .expect("write env file");
        let fs = f.to_str().expect("utf-8 path");
        let b = body(&["--env-file", fs, "-e", "D=4", "busybox"]);
        assert_eq!(b["Env"], json!(["A=1", "B=two words", "C=", "D=4"]));
        assert!(parse_env_lines("BAD NAME=1\n", "f").is_err());
    }

    #[test]
    fn labels_health_attach_entrypoint() {
        let b = body(&[
            "-l",
            "a=1",
            "-l",
            "b",
            "--health-cmd",
            "true",
            "--health-interval",
            "5s",
            "--health-retries",
            "3",
            "--entrypoint",
            "",
            "-i",
            "busybox",
        ]);
        assert_eq!(b["Labels"], json!({"a": "1", "b": ""}));
        assert_eq!(
            b["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000i64, "Retries": 3})
        );
        assert_eq!(b["Entrypoint"], json!([""]));
        assert_eq!(b["AttachStdin"], true);
        assert_eq!(b["OpenStdin"], true);
        assert_eq!(b["StdinOnce"], true);
        let d = body(&["-d", "busybox"]);
        assert_eq!(d["AttachStdout"], false);
        assert_eq!(
            body(&["--no-healthcheck", "busybox"])["Healthcheck"],
            json!({"Test": ["NONE"]})
        );
        assert!(build_create(&run_args(&["-d", "-a", "stdout", "busybox"])).is_err());
        assert!(build_create(&run_args(&["-a", "bogus", "busybox"])).is_err());
    }

    #[test]
    fn networks() {
        let b = body(&["busybox"]);
        assert_eq!(b["HostConfig"]["NetworkMode"], "default");
        assert!(b.get("NetworkingConfig").is_none());
        let b = body(&["--network", "mynet", "--network-alias", "web", "busybox"]);
        assert_eq!(
            b["NetworkingConfig"],
            json!({"EndpointsConfig": {"mynet": {"Aliases": ["web"]}}})
        );
    }
}
