//! Canonical forms: every short syntax of a compose file is rewritten into the long form
//! that `docker compose config` prints, so that merging, hashing and the runner each deal
//! with one shape only.
//!
//! Per service: `build` string → `{context, dockerfile}`; `command`/`entrypoint` strings →
//! argument lists (shell words); `environment`, `labels`, `annotations`, `sysctls` lists →
//! maps; `ports` → `{mode, host_ip, target, published, protocol}` (ranges expanded);
//! `volumes` → `{type, source, target, read_only, bind|volume}` with bind sources made
//! absolute against the base directory; `depends_on` list → map with `condition` and
//! `required`; `networks` list → map; `env_file` → `{path, required}` entries; `tmpfs`,
//! `dns`, `expose` → lists of strings; `mem_limit` & co. → bytes; `healthcheck` durations →
//! Go duration strings; `secrets`/`configs` → `{source, target?}`. Relative paths are
//! resolved against the directory given by the caller, which is the project directory for
//! `-f` files and the file's own directory for `extends.file` and `include`.

use std::path::{Component, Path, PathBuf};

use serde_json::{json, Map, Value};

/// Normalization failures name the offending field path and value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NormalizeError {
    #[error("{path}: invalid port specification {value:?}")]
    Port { path: String, value: String },
    #[error("{path}: invalid volume specification {value:?}")]
    Volume { path: String, value: String },
    #[error("{path}: invalid size {value:?}")]
    Size { path: String, value: String },
    #[error("{path}: invalid duration {value:?}")]
    Duration { path: String, value: String },
    #[error("{path}: unbalanced quotes in {value:?}")]
    Quotes { path: String, value: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl NormalizeError {
    /// The key path the error is about (`services.web.ports.0`).
    pub fn path(&self) -> &str {
        match self {
            NormalizeError::Port { path, .. }
            | NormalizeError::Volume { path, .. }
            | NormalizeError::Size { path, .. }
            | NormalizeError::Duration { path, .. }
            | NormalizeError::Quotes { path, .. }
            | NormalizeError::Invalid { path, .. } => path,
        }
    }
}

type R<T> = Result<T, NormalizeError>;

/// Lexically clean `p` (no `.` parts, `..` folded) as Go's `filepath.Clean`.
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// `~`-expansion and resolution of `p` against `base`.
pub fn resolve_path(base: &Path, p: &str) -> String {
    let expanded = if p == "~" || p.starts_with("~/") {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_string());
        format!("{home}{}", &p[1..])
    } else {
        p.to_string()
    };
    let pb = Path::new(&expanded);
    let full = if pb.is_absolute() {
        pb.to_path_buf()
    } else {
        base.join(pb)
    };
    clean(&full).display().to_string()
}

/// Split a shell-form command into words (POSIX quoting, as compose's shellwords).
pub fn shell_split(s: &str, path: &str) -> R<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match it.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => {
                            return Err(NormalizeError::Quotes {
                                path: path.to_string(),
                                value: s.to_string(),
                            })
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match it.next() {
                        Some('"') => break,
                        Some('\\') => match it.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => {
                                return Err(NormalizeError::Quotes {
                                    path: path.to_string(),
                                    value: s.to_string(),
                                })
                            }
                        },
                        Some(x) => cur.push(x),
                        None => {
                            return Err(NormalizeError::Quotes {
                                path: path.to_string(),
                                value: s.to_string(),
                            })
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = it.next() {
                    if x != '\n' {
                        cur.push(x);
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// A scalar as the string compose would see (`1` → "1", `true` → "true").
pub fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => i.to_string(),
            None => n.to_string(),
        }),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `list_or_dict`: `["A=1", "B"]` or `{A: 1, B: null}` → map of string or null.
/// `sep` is `=` (environment, labels) or `:`/`=` (extra_hosts).
pub fn list_or_dict(v: &Value, allow_null: bool) -> Map<String, Value> {
    let mut out = Map::new();
    match v {
        Value::Array(items) => {
            for it in items {
                let Some(s) = scalar_string(it) else { continue };
                match s.split_once('=') {
                    Some((k, val)) => {
                        out.insert(k.to_string(), Value::String(val.to_string()));
                    }
                    None => {
                        out.insert(
                            s.clone(),
                            if allow_null {
                                Value::Null
                            } else {
                                Value::String(String::new())
                            },
                        );
                    }
                }
            }
        }
        Value::Object(m) => {
            for (k, val) in m {
                let nv = match scalar_string(val) {
                    Some(s) => Value::String(s),
                    None if allow_null => Value::Null,
                    None => Value::String(String::new()),
                };
                out.insert(k.clone(), nv);
            }
        }
        _ => {}
    }
    out
}

/// Bytes from `512m`, `1g`, `1024`, `1.5GB` (docker's units, powers of 1024).
pub fn parse_bytes(v: &Value, path: &str) -> R<i64> {
    let bad = || NormalizeError::Size {
        path: path.to_string(),
        value: scalar_string(v).unwrap_or_default(),
    };
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    if let Some(f) = v.as_f64() {
        return Ok(f as i64);
    }
    let s = v.as_str().ok_or_else(bad)?.trim().to_ascii_lowercase();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    Ok((n * mult) as i64)
}

/// Nanoseconds from a Go duration (`1m30s`, `500ms`, `1.5h`) or a number of seconds.
pub fn parse_duration(v: &Value, path: &str) -> R<i64> {
    let bad = || NormalizeError::Duration {
        path: path.to_string(),
        value: scalar_string(v).unwrap_or_default(),
    };
    if let Some(i) = v.as_i64() {
        return Ok(i * 1_000_000_000);
    }
    let s = v.as_str().ok_or_else(bad)?.trim();
    if s == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(split);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let ulen = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(ulen);
        let mult = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = next;
    }
    Ok(total as i64)
}

/// Go's `time.Duration.String()`.
pub fn duration_string(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000_000_000 {
        let (v, u) = if ns < 1_000 {
            (ns as f64, "ns")
        } else if ns < 1_000_000 {
            (ns as f64 / 1e3, "µs")
        } else {
            (ns as f64 / 1e6, "ms")
        };
        return format!("{}{u}", trim_float(v));
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s = (ns % 60_000_000_000) as f64 / 1e9;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_float(s)));
    out
}

fn trim_float(f: f64) -> String {
    let s = format!("{f:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn port_range(s: &str) -> Option<(u32, u32)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => {
            let p = s.parse().ok()?;
            Some((p, p))
        }
    }
}

/// One short-syntax port (`[IP:][HOST:]CONTAINER[/PROTO]`) → long-form entries.
pub fn parse_port(spec: &str, path: &str) -> R<Vec<Value>> {
    let bad = || NormalizeError::Port {
        path: path.to_string(),
        value: spec.to_string(),
    };
    let (body, proto) = match spec.rsplit_once('/') {
        Some((b, p)) => (b, p.to_string()),
        None => (spec, "tcp".to_string()),
    };
    // IPv6 host addresses come in brackets.
    let (ip, rest) = if let Some(r) = body.strip_prefix('[') {
        let (ip, r) = r.split_once(']').ok_or_else(bad)?;
        (Some(ip.to_string()), r.strip_prefix(':').ok_or_else(bad)?)
    } else {
        let parts: Vec<&str> = body.split(':').collect();
        match parts.len() {
            1 | 2 => (None, body),
            3 => (Some(parts[0].to_string()), &body[parts[0].len() + 1..]),
            _ => return Err(bad()),
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (Some(h), c),
        None => (None, rest),
    };
    let (c0, c1) = port_range(container).ok_or_else(bad)?;
    let host = host.filter(|h| !h.is_empty());
    let mut out = Vec::new();
    let mk = |target: u32, published: Option<String>| {
        let mut m = Map::new();
        m.insert("mode".into(), json!("ingress"));
        if let Some(ip) = ip.as_ref().filter(|i| !i.is_empty()) {
            m.insert("host_ip".into(), json!(ip));
        }
        m.insert("target".into(), json!(target));
        if let Some(p) = published {
            m.insert("published".into(), json!(p));
        }
        m.insert("protocol".into(), json!(proto));
        Value::Object(m)
    };
    match host {
        None => {
            for p in c0..=c1 {
                out.push(mk(p, None));
            }
        }
        Some(h) => {
            let (h0, h1) = port_range(h).ok_or_else(bad)?;
            if c0 == c1 {
                let published = if h0 == h1 {
                    h0.to_string()
                } else {
                    format!("{h0}-{h1}")
                };
                out.push(mk(c0, Some(published)));
            } else if h1 - h0 == c1 - c0 {
                for (i, p) in (c0..=c1).enumerate() {
                    out.push(mk(p, Some((h0 + i as u32).to_string())));
                }
            } else {
                return Err(bad());
            }
        }
    }
    Ok(out)
}

fn is_path_like(s: &str) -> bool {
    s.starts_with('.') || s.starts_with('/') || s.starts_with('~')
}

/// One short-syntax volume (`[SRC:]DST[:MODE]`) → long form.
pub fn parse_volume(spec: &str, base: &Path, path: &str) -> R<Value> {
    let bad = || NormalizeError::Volume {
        path: path.to_string(),
        value: spec.to_string(),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [d] => (None, *d, None),
        [s, d] => (Some(*s), *d, None),
        [s, d, m] => (Some(*s), *d, Some(*m)),
        _ => return Err(bad()),
    };
    if dst.is_empty() {
        return Err(bad());
    }
    let mut m = Map::new();
    let mut bind = Map::new();
    let mut vol = Map::new();
    let mut read_only = false;
    for opt in mode.unwrap_or("").split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => read_only = true,
            "rw" => {}
            "z" | "Z" => {
                bind.insert("selinux".into(), json!(opt));
            }
            "nocopy" => {
                vol.insert("nocopy".into(), json!(true));
            }
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                bind.insert("propagation".into(), json!(opt));
            }
            _ => return Err(bad()),
        }
    }
    match src {
        None => {
            m.insert("type".into(), json!("volume"));
            m.insert("target".into(), json!(dst));
            m.insert("volume".into(), Value::Object(vol));
        }
        Some(s) if is_path_like(s) => {
            m.insert("type".into(), json!("bind"));
            m.insert("source".into(), json!(resolve_path(base, s)));
            m.insert("target".into(), json!(dst));
            bind.insert("create_host_path".into(), json!(true));
            m.insert("bind".into(), Value::Object(bind));
        }
        Some(s) => {
            m.insert("type".into(), json!("volume"));
            m.insert("source".into(), json!(s));
            m.insert("target".into(), json!(dst));
            m.insert("volume".into(), Value::Object(vol));
        }
    }
    if read_only {
        m.insert("read_only".into(), json!(true));
    }
    Ok(Value::Object(m))
}

fn string_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(scalar_string)
            .map(Value::String)
            .collect(),
        Value::Null => Vec::new(),
        other => scalar_string(other)
            .map(|s| vec![Value::String(s)])
            .unwrap_or_default(),
    }
}

fn octal_mode(v: &mut Value) {
    // `mode: 0440` is octal in compose (YAML 1.1 habit); our parser keeps it a string.
    if let Some(s) = v.as_str() {
        let parsed = if s.len() > 1 && s.starts_with('0') {
            i64::from_str_radix(s.trim_start_matches("0o"), 8).ok()
        } else {
            s.parse().ok()
        };
        if let Some(n) = parsed {
            *v = json!(n);
        }
    }
}

fn file_refs(v: &Value) -> Vec<Value> {
    let items = match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    items
        .into_iter()
        .map(|it| match it {
            Value::String(s) => json!({ "source": s }),
            Value::Object(mut m) => {
                if let Some(mode) = m.get_mut("mode") {
                    octal_mode(mode);
                }
                Value::Object(m)
            }
            other => other,
        })
        .collect()
}

/// Normalize one service in place. `base` resolves relative paths.
pub fn service(name: &str, svc: &mut Map<String, Value>, base: &Path) -> R<()> {
    let p = |k: &str| format!("services.{name}.{k}");
    if let Some(b) = svc.get_mut("build") {
        let mut m = match b.take() {
            Value::String(ctx) => {
                let mut m = Map::new();
                m.insert("context".into(), json!(ctx));
                m
            }
            Value::Object(m) => m,
            other => {
                *b = other;
                return Err(NormalizeError::Invalid {
                    path: p("build"),
                    message: "must be a string or a mapping".into(),
                });
            }
        };
        let ctx = m
            .get("context")
            .and_then(Value::as_str)
            .unwrap_or(".")
            .to_string();
        // Remote contexts (git, http) stay as written.
        let ctx = if ctx.contains("://") || ctx.starts_with("git@") {
            ctx
        } else {
            resolve_path(base, &ctx)
        };
        m.insert("context".into(), json!(ctx));
        if !m.contains_key("dockerfile_inline") {
            m.entry("dockerfile").or_insert(json!("Dockerfile"));
        }
        for k in ["args", "labels"] {
            if let Some(v) = m.get(k) {
                let nm = list_or_dict(v, k == "args");
                m.insert(k.into(), Value::Object(nm));
            }
        }
        if let Some(Value::Object(ac)) = m.get_mut("additional_contexts") {
            for v in ac.values_mut() {
                if let Some(s) = v.as_str() {
                    if !s.contains("://") && !s.contains(':') {
                        *v = json!(resolve_path(base, s));
                    }
                }
            }
        }
        *b = Value::Object(m);
    }
    for k in ["command", "entrypoint"] {
        if let Some(Value::String(s)) = svc.get(k) {
            let words = shell_split(s, &p(k))?;
            svc.insert(k.into(), json!(words));
        }
    }
    if let Some(v) = svc.get("environment") {
        let m = list_or_dict(v, true);
        svc.insert("environment".into(), Value::Object(m));
    }
    for k in ["labels", "annotations", "sysctls"] {
        if let Some(v) = svc.get(k) {
            let m = list_or_dict(v, false);
            svc.insert(k.into(), Value::Object(m));
        }
    }
    if let Some(v) = svc.get("extra_hosts") {
        // Engine API form `host:ip`; the map form and `host=ip` are accepted.
        let list: Vec<Value> = match v {
            Value::Object(m) => m
                .iter()
                .flat_map(|(h, ips)| {
                    string_list(ips)
                        .into_iter()
                        .map(move |ip| json!(format!("{h}:{}", ip.as_str().unwrap_or(""))))
                })
                .collect(),
            other => string_list(other)
                .into_iter()
                .map(|e| {
                    let s = e.as_str().unwrap_or("").to_string();
                    match s.split_once('=') {
                        Some((h, ip)) => json!(format!("{h}:{ip}")),
                        None => json!(s),
                    }
                })
                .collect(),
        };
        svc.insert("extra_hosts".into(), Value::Array(list));
    }
    for k in [
        "dns",
        "dns_search",
        "dns_opt",
        "tmpfs",
        "expose",
        "cap_add",
        "cap_drop",
        "security_opt",
        "volumes_from",
        "profiles",
        "group_add",
        "links",
        "external_links",
    ] {
        if let Some(v) = svc.get(k) {
            let l = string_list(v);
            svc.insert(k.into(), Value::Array(l));
        }
    }
    if let Some(v) = svc.get("env_file") {
        let items = match v {
            Value::Array(a) => a.clone(),
            Value::Null => Vec::new(),
            other => vec![other.clone()],
        };
        let mut out = Vec::new();
        for it in items {
            let (path, required) = match &it {
                Value::String(s) => (s.clone(), true),
                Value::Object(m) => (
                    m.get("path")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    m.get("required").and_then(Value::as_bool).unwrap_or(true),
                ),
                _ => continue,
            };
            out.push(json!({"path": resolve_path(base, &path), "required": required}));
        }
        svc.insert("env_file".into(), Value::Array(out));
    }
    if let Some(Value::Array(ports)) = svc.get("ports") {
        let mut out = Vec::new();
        for (i, it) in ports.iter().enumerate() {
            let ip = format!("{}.{i}", p("ports"));
            match it {
                Value::Number(n) => {
                    out.extend(parse_port(&n.to_string(), &ip)?);
                }
                Value::String(s) => out.extend(parse_port(s, &ip)?),
                Value::Object(m) => {
                    let mut m = m.clone();
                    if let Some(t) = m.get("target").and_then(scalar_string) {
                        let t: u32 = t.parse().map_err(|_| NormalizeError::Port {
                            path: ip.clone(),
                            value: t.clone(),
                        })?;
                        m.insert("target".into(), json!(t));
                    }
                    if let Some(pb) = m.get("published").and_then(scalar_string) {
                        m.insert("published".into(), json!(pb));
                    }
                    m.entry("mode").or_insert(json!("ingress"));
                    m.entry("protocol").or_insert(json!("tcp"));
                    out.push(Value::Object(m));
                }
                _ => {}
            }
        }
        svc.insert("ports".into(), Value::Array(out));
    }
    if let Some(Value::Array(vols)) = svc.get("volumes") {
        let mut out = Vec::new();
        for (i, it) in vols.iter().enumerate() {
            let vp = format!("{}.{i}", p("volumes"));
            match it {
                Value::String(s) => out.push(parse_volume(s, base, &vp)?),
                Value::Object(m) => {
                    let mut m = m.clone();
                    if m.get("type").and_then(Value::as_str) == Some("bind") {
                        if let Some(s) = m.get("source").and_then(Value::as_str) {
                            let abs = resolve_path(base, s);
                            m.insert("source".into(), json!(abs));
                        }
                        m.entry("bind").or_insert(json!({"create_host_path": true}));
                    }
                    out.push(Value::Object(m));
                }
                _ => {}
            }
        }
        svc.insert("volumes".into(), Value::Array(out));
    }
    if let Some(v) = svc.get("depends_on") {
        let mut out = Map::new();
        match v {
            Value::Array(a) => {
                for d in a.iter().filter_map(Value::as_str) {
                    out.insert(
                        d.to_string(),
                        json!({"condition": "service_started", "required": true}),
                    );
                }
            }
            Value::Object(m) => {
                for (d, opts) in m {
                    let mut o = opts.as_object().cloned().unwrap_or_default();
                    o.entry("condition").or_insert(json!("service_started"));
                    o.entry("required").or_insert(json!(true));
                    out.insert(d.clone(), Value::Object(o));
                }
            }
            _ => {}
        }
        svc.insert("depends_on".into(), Value::Object(out));
    }
    if let Some(Value::Array(a)) = svc.get("networks") {
        let m: Map<String, Value> = a
            .iter()
            .filter_map(Value::as_str)
            .map(|n| (n.to_string(), Value::Null))
            .collect();
        svc.insert("networks".into(), Value::Object(m));
    }
    for k in ["secrets", "configs"] {
        if let Some(v) = svc.get(k) {
            let l = file_refs(v);
            svc.insert(k.into(), Value::Array(l));
        }
    }
    for k in ["mem_limit", "mem_reservation", "memswap_limit", "shm_size"] {
        if let Some(v) = svc.get(k) {
            let b = parse_bytes(v, &p(k))?;
            svc.insert(k.into(), json!(b));
        }
    }
    if let Some(v) = svc.get("cpus") {
        if let Some(f) = scalar_string(v).and_then(|s| s.parse::<f64>().ok()) {
            svc.insert("cpus".into(), json!(f));
        }
    }
    if let Some(v) = svc.get("stop_grace_period") {
        let ns = parse_duration(v, &p("stop_grace_period"))?;
        svc.insert("stop_grace_period".into(), json!(duration_string(ns)));
    }
    if let Some(Value::Object(h)) = svc.get_mut("healthcheck") {
        if let Some(Value::String(t)) = h.get("test") {
            let t = t.clone();
            h.insert("test".into(), json!(["CMD-SHELL", t]));
        }
        for k in ["interval", "timeout", "start_period", "start_interval"] {
            if let Some(v) = h.get(k) {
                let ns = parse_duration(v, &format!("services.{name}.healthcheck.{k}"))?;
                h.insert(k.into(), json!(duration_string(ns)));
            }
        }
    }
    if let Some(v) = svc.get("scale").and_then(scalar_string) {
        if let Ok(n) = v.parse::<i64>() {
            svc.insert("scale".into(), json!(n));
        }
    }
    if let Some(Value::Object(d)) = svc.get_mut("deploy") {
        if let Some(r) = d.get("replicas").and_then(scalar_string) {
            if let Ok(n) = r.parse::<i64>() {
                d.insert("replicas".into(), json!(n));
            }
        }
        if let Some(l) = d.get("labels") {
            let m = list_or_dict(l, false);
            d.insert("labels".into(), Value::Object(m));
        }
    }
    for k in ["privileged", "read_only", "tty", "stdin_open", "init"] {
        if let Some(Value::String(s)) = svc.get(k) {
            let b = matches!(s.as_str(), "true" | "True" | "TRUE" | "1" | "yes");
            svc.insert(k.into(), json!(b));
        }
    }
    Ok(())
}

/// Normalize top-level `networks`, `volumes`, `secrets`, `configs` definitions (paths only;
/// names are assigned once the project name is known).
pub fn resources(doc: &mut Map<String, Value>, base: &Path) {
    for kind in ["networks", "volumes", "secrets", "configs"] {
        let Some(Value::Object(m)) = doc.get_mut(kind) else {
            continue;
        };
        for (_, def) in m.iter_mut() {
            if def.is_null() {
                *def = json!({});
            }
            let Some(d) = def.as_object_mut() else {
                continue;
            };
            if let Some(f) = d.get("file").and_then(Value::as_str) {
                let abs = resolve_path(base, f);
                d.insert("file".into(), json!(abs));
            }
            if let Some(l) = d.get("labels") {
                let lm = list_or_dict(l, false);
                d.insert("labels".into(), Value::Object(lm));
            }
            // Legacy `external: {name: x}`.
            if let Some(Value::Object(ext)) = d.get("external").cloned() {
                if let Some(n) = ext.get("name") {
                    d.insert("name".into(), n.clone());
                }
                d.insert("external".into(), json!(true));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        let one = |s: &str| parse_port(s, "p").expect(s);
        assert_eq!(
            one("80")[0],
            json!({"mode": "ingress", "target": 80, "protocol": "tcp"})
        );
        assert_eq!(
            one("127.0.0.1:8080:80/udp")[0],
            json!({"mode": "ingress", "host_ip": "127.0.0.1", "target": 80, "published": "8080", "protocol": "udp"})
        );
        assert_eq!(one("3000-3002").len(), 3);
        let r = one("9090-9091:8080-8081");
        assert_eq!(r[1]["published"], "9091");
        assert_eq!(r[1]["target"], 8081);
        assert_eq!(one("5000-5010:80")[0]["published"], "5000-5010");
        assert_eq!(one("[::1]:6001:6001")[0]["host_ip"], "::1");
        assert!(parse_port("a:b", "p").is_err());
        assert!(parse_port("1-3:1-2", "p").is_err());
    }

    #[test]
    fn volumes() {
        let base = Path::new("/proj");
        assert_eq!(
            parse_volume("./data:/srv:ro", base, "v").expect("bind"),
            json!({"type": "bind", "source": "/proj/data", "target": "/srv", "read_only": true, "bind": {"create_host_path": true}})
        );
        assert_eq!(
            parse_volume("db:/var/lib/db", base, "v").expect("volume"),
            json!({"type": "volume", "source": "db", "target": "/var/lib/db", "volume": {}})
        );
        assert_eq!(
            parse_volume("/cache", base, "v").expect("anon"),
            json!({"type": "volume", "target": "/cache", "volume": {}})
        );
        assert!(parse_volume("a:b:c:d", base, "v").is_err());
        assert!(parse_volume("a:/b:bogus", base, "v").is_err());
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration(&json!("1m30s"), "d"), Ok(90_000_000_000));
        assert_eq!(duration_string(90_000_000_000), "1m30s");
        assert_eq!(duration_string(10_000_000_000), "10s");
        assert_eq!(duration_string(500_000_000), "500ms");
        assert_eq!(duration_string(3_600_000_000_000), "1h0m0s");
        assert_eq!(parse_duration(&json!(5), "d"), Ok(5_000_000_000));
        assert!(parse_duration(&json!("5x"), "d").is_err());
        assert_eq!(parse_bytes(&json!("512m"), "m"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_bytes(&json!("1gb"), "m"), Ok(1 << 30));
        assert_eq!(parse_bytes(&json!(1000), "m"), Ok(1000));
        assert!(parse_bytes(&json!("lots"), "m").is_err());
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_split(r#"sh -c "echo 'hi there'" a\ b"#, "c").expect("splits"),
            vec!["sh", "-c", "echo 'hi there'", "a b"]
        );
        assert!(shell_split("echo 'open", "c").is_err());
    }

    #[test]
    fn service_short_forms() {
        let mut svc = json!({
            "build": ".",
            "command": "echo hi",
            "environment": ["A=1", "B"],
            "labels": {"n": 1},
            "depends_on": ["db"],
            "networks": ["front"],
            "healthcheck": {"test": "true", "interval": "90s"},
            "mem_limit": "1g",
            "extra_hosts": ["h=1.2.3.4"],
        });
        service("w", svc.as_object_mut().expect("map"), Path::new("/p")).expect("normalizes");
        assert_eq!(
            svc["build"],
            json!({"context": "/p", "dockerfile": "Dockerfile"})
        );
        assert_eq!(svc["command"], json!(["echo", "hi"]));
        assert_eq!(svc["environment"], json!({"A": "1", "B": null}));
        assert_eq!(svc["labels"], json!({"n": "1"}));
        assert_eq!(
            svc["depends_on"]["db"],
            json!({"condition": "service_started", "required": true})
        );
        assert_eq!(svc["networks"], json!({"front": null}));
        assert_eq!(svc["healthcheck"]["test"], json!(["CMD-SHELL", "true"]));
        assert_eq!(svc["healthcheck"]["interval"], "1m30s");
        assert_eq!(svc["mem_limit"], 1 << 30);
        assert_eq!(svc["extra_hosts"], json!(["h:1.2.3.4"]));
    }
}
