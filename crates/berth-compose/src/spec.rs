//! From a normalized service to Engine API request bodies: the `POST /containers/create`
//! body, the network and volume create bodies, and docker compose's labels and config hash.
//!
//! Pure functions, so the mapping is unit-tested without a daemon. The labels and the hash
//! follow docker compose v2 exactly (`com.docker.compose.*`), because `up` decides whether
//! to recreate a container by comparing `com.docker.compose.config-hash`, and `ps`/`down`
//! find a project's objects by `com.docker.compose.project`.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::loader::Project;
use crate::normalize::{parse_duration, scalar_string};

pub const PROJECT: &str = "com.docker.compose.project";
pub const SERVICE: &str = "com.docker.compose.service";
pub const NUMBER: &str = "com.docker.compose.container-number";
pub const ONEOFF: &str = "com.docker.compose.oneoff";
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const VERSION: &str = "com.docker.compose.version";
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
pub const IMAGE: &str = "com.docker.compose.image";
pub const NETWORK: &str = "com.docker.compose.network";
pub const VOLUME: &str = "com.docker.compose.volume";
/// The compose version we claim in labels (docker compose v2 line).
pub const COMPOSE_VERSION: &str = "2.29.7";

/// Request-building failures.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("service {service:?}: {message}")]
    Invalid { service: String, message: String },
}

/// docker compose's `ServiceHash`: sha256 over the service config without its build
/// section, pull policy and replica count (scaling must not recreate containers).
pub fn config_hash(service: &Value) -> String {
    let mut s = service.clone();
    if let Some(m) = s.as_object_mut() {
        m.remove("build");
        m.remove("pull_policy");
        m.remove("scale");
        if let Some(Value::Object(d)) = m.get_mut("deploy") {
            d.insert("replicas".into(), json!(1));
        }
    }
    hex::encode(Sha256::digest(
        serde_json::to_vec(&sorted(&s)).expect("a JSON value always serializes"),
    ))
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The image a service runs: `image:`, else `<project>-<service>` for a build.
pub fn image_name(project: &Project, name: &str, svc: &Value) -> String {
    svc.get("image")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}-{name}", project.name))
}

/// `<project>-<service>-<n>` unless `container_name` is set.
pub fn container_name(project: &Project, name: &str, svc: &Value, number: u32) -> String {
    svc.get("container_name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}-{name}-{number}", project.name))
}

/// The services `name` depends on (`depends_on` keys).
pub fn dependencies(svc: &Value) -> Vec<String> {
    svc.get("depends_on")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The number of containers a service wants (`deploy.replicas`, default 1).
pub fn replicas(svc: &Value) -> u32 {
    svc.get("deploy")
        .and_then(|d| d.get("replicas"))
        .and_then(Value::as_u64)
        .map(|n| n as u32)
        .unwrap_or(1)
}

/// Labels of a service container, user labels included.
pub fn container_labels(
    project: &Project,
    name: &str,
    svc: &Value,
    number: u32,
    oneoff: bool,
) -> Map<String, Value> {
    let mut l = svc
        .get("labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let deps: Vec<String> = svc
        .get("depends_on")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(d, o)| {
                    let cond = o
                        .get("condition")
                        .and_then(Value::as_str)
                        .unwrap_or("service_started");
                    let restart = o.get("restart").and_then(Value::as_bool).unwrap_or(false);
                    format!("{d}:{cond}:{restart}")
                })
                .collect()
        })
        .unwrap_or_default();
    let files: Vec<String> = project
        .config_files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    for (k, v) in [
        (PROJECT, project.name.clone()),
        (SERVICE, name.to_string()),
        (NUMBER, number.to_string()),
        (ONEOFF, if oneoff { "True" } else { "False" }.to_string()),
        (CONFIG_HASH, config_hash(svc)),
        (WORKING_DIR, project.working_dir.display().to_string()),
        (CONFIG_FILES, files.join(",")),
        (VERSION, COMPOSE_VERSION.to_string()),
        (DEPENDS_ON, deps.join(",")),
        (IMAGE, image_name(project, name, svc)),
    ] {
        l.insert(k.to_string(), json!(v));
    }
    l
}

fn str_list(v: Option<&Value>) -> Option<Value> {
    let a = v?.as_array()?;
    Some(Value::Array(
        a.iter()
            .filter_map(scalar_string)
            .map(Value::String)
            .collect(),
    ))
}

fn nanos(v: Option<&Value>, path: &str, service: &str) -> Result<Option<i64>, SpecError> {
    match v {
        None => Ok(None),
        Some(v) => parse_duration(v, path)
            .map(Some)
            .map_err(|e| SpecError::Invalid {
                service: service.to_string(),
                message: e.to_string(),
            }),
    }
}

/// The full network name of service network key `key`.
pub fn network_name(project: &Project, key: &str) -> String {
    project
        .section("networks")
        .get(key)
        .and_then(|n| n.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}_{key}", project.name))
}

/// The full volume name of top-level volume `key`.
pub fn volume_name(project: &Project, key: &str) -> String {
    project
        .section("volumes")
        .get(key)
        .and_then(|n| n.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}_{key}", project.name))
}

/// The service's networks in attach order: (full name, endpoint settings).
pub fn endpoints(project: &Project, name: &str, svc: &Value) -> Vec<(String, Value)> {
    let Some(nets) = svc.get("networks").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out: Vec<(i64, String, Value)> = nets
        .iter()
        .map(|(key, opts)| {
            let mut aliases = vec![json!(name)];
            if let Some(Value::Array(a)) = opts.get("aliases") {
                aliases.extend(a.iter().cloned());
            }
            let mut ep = json!({ "Aliases": aliases });
            let v4 = opts.get("ipv4_address").and_then(Value::as_str);
            let v6 = opts.get("ipv6_address").and_then(Value::as_str);
            if v4.is_some() || v6.is_some() {
                let mut ipam = Map::new();
                if let Some(a) = v4 {
                    ipam.insert("IPv4Address".into(), json!(a));
                }
                if let Some(a) = v6 {
                    ipam.insert("IPv6Address".into(), json!(a));
                }
                ep["IPAMConfig"] = Value::Object(ipam);
            }
            let prio = opts.get("priority").and_then(Value::as_i64).unwrap_or(0);
            (prio, network_name(project, key), ep)
        })
        .collect();
    // Highest priority first, then by name, as compose does.
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    out.into_iter().map(|(_, n, e)| (n, e)).collect()
}

/// The `POST /containers/create` body for replica `number` of service `name`; the
/// `NetworkingConfig` holds the first network only (the others are connected before
/// start, which works on every API version).
pub fn create_body(
    project: &Project,
    name: &str,
    svc: &Value,
    number: u32,
    oneoff: bool,
) -> Result<Value, SpecError> {
    let invalid = |message: String| SpecError::Invalid {
        service: name.to_string(),
        message,
    };
    let mut cfg = Map::new();
    let mut hc = Map::new();
    cfg.insert("Image".into(), json!(image_name(project, name, svc)));
    if let Some(c) = str_list(svc.get("command")) {
        cfg.insert("Cmd".into(), c);
    }
    if let Some(e) = str_list(svc.get("entrypoint")) {
        cfg.insert("Entrypoint".into(), e);
    }
    if let Some(Value::Object(env)) = svc.get("environment") {
        let list: Vec<Value> = env
            .iter()
            .filter_map(|(k, v)| scalar_string(v).map(|v| json!(format!("{k}={v}"))))
            .collect();
        cfg.insert("Env".into(), Value::Array(list));
    }
    cfg.insert(
        "Labels".into(),
        Value::Object(container_labels(project, name, svc, number, oneoff)),
    );
    for (key, api) in [
        ("user", "User"),
        ("working_dir", "WorkingDir"),
        ("domainname", "Domainname"),
        ("stop_signal", "StopSignal"),
        ("mac_address", "MacAddress"),
    ] {
        if let Some(v) = svc.get(key).and_then(scalar_string) {
            cfg.insert(api.into(), json!(v));
        }
    }
    if let Some(h) = svc.get("hostname").and_then(Value::as_str) {
        cfg.insert("Hostname".into(), json!(h));
    }
    for (key, api) in [("tty", "Tty"), ("stdin_open", "OpenStdin")] {
        if let Some(b) = svc.get(key).and_then(Value::as_bool) {
            cfg.insert(api.into(), json!(b));
        }
    }
    if let Some(g) = nanos(svc.get("stop_grace_period"), "stop_grace_period", name)? {
        cfg.insert("StopTimeout".into(), json!(g / 1_000_000_000));
    }
    if let Some(Value::Object(h)) = svc.get("healthcheck") {
        let mut out = Map::new();
        if h.get("disable").and_then(Value::as_bool) == Some(true) {
            out.insert("Test".into(), json!(["NONE"]));
        } else {
            if let Some(t) = h.get("test") {
                out.insert("Test".into(), t.clone());
            }
            for (k, api) in [
                ("interval", "Interval"),
                ("timeout", "Timeout"),
                ("start_period", "StartPeriod"),
                ("start_interval", "StartInterval"),
            ] {
                if let Some(ns) = nanos(h.get(k), k, name)? {
                    out.insert(api.into(), json!(ns));
                }
            }
            if let Some(r) = h.get("retries").and_then(Value::as_i64) {
                out.insert("Retries".into(), json!(r));
            }
        }
        cfg.insert("Healthcheck".into(), Value::Object(out));
    }

    // Ports: exposed plus published.
    let mut exposed = Map::new();
    let mut bindings: Map<String, Value> = Map::new();
    if let Some(Value::Array(ex)) = svc.get("expose") {
        for e in ex.iter().filter_map(Value::as_str) {
            let key = if e.contains('/') {
                e.to_string()
            } else {
                format!("{e}/tcp")
            };
            exposed.insert(key, json!({}));
        }
    }
    if let Some(Value::Array(ports)) = svc.get("ports") {
        for p in ports {
            let target = p.get("target").and_then(Value::as_u64).unwrap_or(0);
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("tcp");
            let key = format!("{target}/{proto}");
            exposed.insert(key.clone(), json!({}));
            let b = json!({
                "HostIp": p.get("host_ip").and_then(Value::as_str).unwrap_or(""),
                "HostPort": p.get("published").and_then(scalar_string).unwrap_or_default(),
            });
            if let Some(Value::Array(list)) = bindings.get_mut(&key) {
                list.push(b);
            } else {
                bindings.insert(key, json!([b]));
            }
        }
    }
    if !exposed.is_empty() {
        cfg.insert("ExposedPorts".into(), Value::Object(exposed));
    }
    if !bindings.is_empty() {
        hc.insert("PortBindings".into(), Value::Object(bindings));
    }

    // Mounts.
    let mut mounts = Vec::new();
    if let Some(Value::Array(vols)) = svc.get("volumes") {
        for v in vols {
            let ty = v.get("type").and_then(Value::as_str).unwrap_or("volume");
            let target = v.get("target").and_then(Value::as_str).unwrap_or("");
            let mut m = Map::new();
            m.insert("Type".into(), json!(ty));
            m.insert("Target".into(), json!(target));
            if v.get("read_only").and_then(Value::as_bool) == Some(true) {
                m.insert("ReadOnly".into(), json!(true));
            }
            match ty {
                "volume" => {
                    if let Some(src) = v.get("source").and_then(Value::as_str) {
                        m.insert("Source".into(), json!(volume_name(project, src)));
                    }
                    if v.pointer("/volume/nocopy").and_then(Value::as_bool) == Some(true) {
                        m.insert("VolumeOptions".into(), json!({"NoCopy": true}));
                    }
                }
                "bind" => {
                    let src = v.get("source").and_then(Value::as_str).unwrap_or("");
                    m.insert("Source".into(), json!(src));
                    // compose creates missing bind sources (create_host_path, default true).
                    let create = v
                        .pointer("/bind/create_host_path")
                        .and_then(Value::as_bool)
                        .unwrap_or(true);
                    let mut bo = Map::new();
                    if let Some(p) = v.pointer("/bind/propagation").and_then(Value::as_str) {
                        bo.insert("Propagation".into(), json!(p));
                    }
                    if create {
                        bo.insert("CreateMountpoint".into(), json!(true));
                    }
                    if !bo.is_empty() {
                        m.insert("BindOptions".into(), Value::Object(bo));
                    }
                }
                "tmpfs" => {
                    if let Some(size) = v.pointer("/tmpfs/size") {
                        let b = crate::normalize::parse_bytes(size, "tmpfs.size")
                            .map_err(|e| invalid(e.to_string()))?;
                        m.insert("TmpfsOptions".into(), json!({"SizeBytes": b}));
                    }
                }
                other => return Err(invalid(format!("volume type {other:?} is not supported"))),
            }
            mounts.push(Value::Object(m));
        }
    }
    let (file_mounts, _) = secret_files(project, name, svc)?;
    mounts.extend(file_mounts);
    if !mounts.is_empty() {
        hc.insert("Mounts".into(), Value::Array(mounts));
    }
    if let Some(Value::Array(t)) = svc.get("tmpfs") {
        let mut m = Map::new();
        for e in t.iter().filter_map(Value::as_str) {
            let (dst, opts) = e.split_once(':').unwrap_or((e, ""));
            m.insert(dst.to_string(), json!(opts));
        }
        hc.insert("Tmpfs".into(), Value::Object(m));
    }

    // Restart policy.
    if let Some(r) = svc.get("restart").and_then(Value::as_str) {
        let (pname, max) = match r.split_once(':') {
            Some((n, m)) => (n, m.parse::<i64>().unwrap_or(0)),
            None => (r, 0),
        };
        hc.insert(
            "RestartPolicy".into(),
            json!({"Name": if pname == "no" { "" } else { pname }, "MaximumRetryCount": max}),
        );
    }
    for (key, api) in [
        ("cap_add", "CapAdd"),
        ("cap_drop", "CapDrop"),
        ("dns", "Dns"),
        ("dns_search", "DnsSearch"),
        ("dns_opt", "DnsOptions"),
        ("extra_hosts", "ExtraHosts"),
        ("security_opt", "SecurityOpt"),
        ("group_add", "GroupAdd"),
        ("volumes_from", "VolumesFrom"),
    ] {
        if let Some(l) = str_list(svc.get(key)) {
            hc.insert(api.into(), l);
        }
    }
    for (key, api) in [
        ("privileged", "Privileged"),
        ("read_only", "ReadonlyRootfs"),
        ("init", "Init"),
    ] {
        if let Some(b) = svc.get(key).and_then(Value::as_bool) {
            hc.insert(api.into(), json!(b));
        }
    }
    for (key, api) in [
        ("mem_limit", "Memory"),
        ("mem_reservation", "MemoryReservation"),
        ("memswap_limit", "MemorySwap"),
        ("shm_size", "ShmSize"),
        ("pids_limit", "PidsLimit"),
        ("cpu_shares", "CpuShares"),
    ] {
        if let Some(n) = svc.get(key).and_then(Value::as_i64) {
            hc.insert(api.into(), json!(n));
        }
    }
    if let Some(c) = svc.get("cpus").and_then(Value::as_f64) {
        hc.insert("NanoCpus".into(), json!((c * 1e9) as i64));
    }
    for (key, api) in [
        ("pid", "PidMode"),
        ("ipc", "IpcMode"),
        ("cgroup_parent", "CgroupParent"),
    ] {
        if let Some(v) = svc.get(key).and_then(Value::as_str) {
            hc.insert(api.into(), json!(v));
        }
    }
    if let Some(Value::Object(s)) = svc.get("sysctls") {
        hc.insert("Sysctls".into(), Value::Object(s.clone()));
    }
    if let Some(Value::Object(u)) = svc.get("ulimits") {
        let list: Vec<Value> = u
            .iter()
            .map(|(n, v)| match v {
                Value::Object(o) => {
                    json!({"Name": n, "Soft": o.get("soft"), "Hard": o.get("hard")})
                }
                other => json!({"Name": n, "Soft": other, "Hard": other}),
            })
            .collect();
        hc.insert("Ulimits".into(), Value::Array(list));
    }
    if let Some(Value::Object(l)) = svc.get("logging") {
        hc.insert(
            "LogConfig".into(),
            json!({"Type": l.get("driver").cloned().unwrap_or(json!("")), "Config": l.get("options").cloned().unwrap_or(json!({}))}),
        );
    }
    if let Some(Value::Array(devs)) = svc.get("devices") {
        let list: Vec<Value> = devs
            .iter()
            .filter_map(|d| {
                let s = scalar_string(d)?;
                let parts: Vec<&str> = s.split(':').collect();
                Some(json!({
                    "PathOnHost": parts[0],
                    "PathInContainer": parts.get(1).unwrap_or(&parts[0]),
                    "CgroupPermissions": parts.get(2).unwrap_or(&"rwm"),
                }))
            })
            .collect();
        hc.insert("Devices".into(), Value::Array(list));
    }

    // Networking.
    let mut networking = json!({"EndpointsConfig": {}});
    if let Some(mode) = svc.get("network_mode").and_then(Value::as_str) {
        let mode = match mode.strip_prefix("service:") {
            // `service:x` joins the first container of service x.
            Some(other) => format!("container:{}-{other}-1", project.name),
            None => mode.to_string(),
        };
        hc.insert("NetworkMode".into(), json!(mode));
    } else if let Some((net, ep)) = endpoints(project, name, svc).into_iter().next() {
        hc.insert("NetworkMode".into(), json!(net));
        networking["EndpointsConfig"][&net] = ep;
    }
    cfg.insert("HostConfig".into(), Value::Object(hc));
    cfg.insert("NetworkingConfig".into(), networking);
    Ok(Value::Object(cfg))
}

/// A secret or config whose content does not come from a file: written into the
/// container (through `PUT /containers/{id}/archive`) before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// Absolute path in the container.
    pub target: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// The service's `secrets` and `configs`: file-based ones as read-only bind mounts at
/// `/run/secrets/<name>` (secrets; a relative `target` is taken under /run/secrets) or
/// `/<name>` (configs), as compose v2 mounts them; `environment:` and `content:` ones as
/// files to inject.
pub fn secret_files(
    project: &Project,
    name: &str,
    svc: &Value,
) -> Result<(Vec<Value>, Vec<Injected>), SpecError> {
    let invalid = |message: String| SpecError::Invalid {
        service: name.to_string(),
        message,
    };
    let mut mounts = Vec::new();
    let mut injected = Vec::new();
    for (kind, root) in [("secrets", "/run/secrets/"), ("configs", "/")] {
        let Some(Value::Array(refs)) = svc.get(kind) else {
            continue;
        };
        let defs = project.section(kind);
        for r in refs {
            let Some(source) = r.get("source").and_then(Value::as_str) else {
                continue;
            };
            let def = defs.get(source).ok_or_else(|| {
                invalid(format!("{kind} {source:?} is not defined at the top level"))
            })?;
            let target = match r.get("target").and_then(Value::as_str) {
                Some(t) if t.starts_with('/') => t.to_string(),
                Some(t) => format!("{root}{t}"),
                None => format!("{root}{source}"),
            };
            let mode = r
                .get("mode")
                .and_then(Value::as_u64)
                .map(|m| m as u32)
                .unwrap_or(0o444);
            if def.get("external").and_then(Value::as_bool) == Some(true) {
                return Err(invalid(format!(
                    "external {kind} ({source}) need a swarm; only file, environment and content ones work"
                )));
            }
            if let Some(file) = def.get("file").and_then(Value::as_str) {
                mounts.push(json!({
                    "Type": "bind",
                    "Source": file,
                    "Target": target,
                    "ReadOnly": true,
                }));
            } else if let Some(var) = def.get("environment").and_then(Value::as_str) {
                let value = project.environment.get(var).ok_or_else(|| {
                    invalid(format!(
                        "environment variable {var:?} of {kind} {source:?} is not set"
                    ))
                })?;
                injected.push(Injected {
                    target,
                    content: value.as_bytes().to_vec(),
                    mode,
                });
            } else if let Some(content) = def.get("content").and_then(Value::as_str) {
                injected.push(Injected {
                    target,
                    content: content.as_bytes().to_vec(),
                    mode,
                });
            } else {
                return Err(invalid(format!(
                    "{kind} {source:?} has neither file, environment nor content"
                )));
            }
        }
    }
    Ok((mounts, injected))
}

/// A tar (for `PUT /containers/{id}/archive?path=/`) holding the injected files and
/// their parent directories.
pub fn injected_tar(files: &[Injected]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for f in files {
        let rel = f.target.trim_start_matches('/');
        let mut parent = std::path::Path::new(rel).parent();
        let mut chain = Vec::new();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            chain.push(p.to_path_buf());
            parent = p.parent();
        }
        for d in chain.into_iter().rev() {
            if dirs.insert(d.clone()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_cksum();
                b.append_data(&mut h, &d, std::io::empty())?;
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(f.content.len() as u64);
        h.set_mode(f.mode);
        h.set_cksum();
        b.append_data(&mut h, rel, f.content.as_slice())?;
    }
    b.into_inner()
}

/// `POST /networks/create` body for top-level network `key`.
pub fn network_body(project: &Project, key: &str, def: &Value) -> Value {
    let mut labels = def
        .get("labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(NETWORK.into(), json!(key));
    labels.insert(PROJECT.into(), json!(project.name));
    labels.insert(VERSION.into(), json!(COMPOSE_VERSION));
    let mut body = json!({
        "Name": network_name(project, key),
        "Driver": def.get("driver").and_then(Value::as_str).unwrap_or("bridge"),
        "Labels": labels,
        "CheckDuplicate": true,
    });
    if let Some(o) = def.get("driver_opts") {
        body["Options"] = o.clone();
    }
    for (k, api) in [
        ("internal", "Internal"),
        ("attachable", "Attachable"),
        ("enable_ipv6", "EnableIPv6"),
    ] {
        if let Some(b) = def.get(k).and_then(Value::as_bool) {
            body[api] = json!(b);
        }
    }
    if let Some(ipam) = def.get("ipam").and_then(Value::as_object) {
        let configs: Vec<Value> = ipam
            .get("config")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|c| {
                        let mut m = Map::new();
                        for (k, api) in [
                            ("subnet", "Subnet"),
                            ("gateway", "Gateway"),
                            ("ip_range", "IPRange"),
                        ] {
                            if let Some(v) = c.get(k) {
                                m.insert(api.into(), v.clone());
                            }
                        }
                        Value::Object(m)
                    })
                    .collect()
            })
            .unwrap_or_default();
        body["IPAM"] = json!({
            "Driver": ipam.get("driver").cloned().unwrap_or(json!("default")),
            "Config": configs,
        });
    }
    body
}

/// `POST /volumes/create` body for top-level volume `key`.
pub fn volume_body(project: &Project, key: &str, def: &Value) -> Value {
    let mut labels = def
        .get("labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(VOLUME.into(), json!(key));
    labels.insert(PROJECT.into(), json!(project.name));
    labels.insert(VERSION.into(), json!(COMPOSE_VERSION));
    json!({
        "Name": volume_name(project, key),
        "Driver": def.get("driver").and_then(Value::as_str).unwrap_or("local"),
        "DriverOpts": def.get("driver_opts").cloned().unwrap_or(json!({})),
        "Labels": labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::{load, LoadOptions};

    fn project(yaml: &str) -> (tempfile::TempDir, Project) {
        let t = tempfile::tempdir().expect("tmp");
        std::fs::write(t.path().join("compose.yaml"), yaml).expect("write");
        let o = LoadOptions {
            cwd: t.path().to_path_buf(),
            project_name: Some("p".into()),
            ..LoadOptions::default()
        };
        let p = load(&o).expect("loads");
        (t, p)
    }

    #[test]
    fn secrets_and_configs_become_read_only_mounts_or_injected_files() {
        let (t, p) = project(
            "services:\n  app:\n    image: busybox\n    secrets: [token, {source: token, target: other}]\n    configs: [conf, {source: inline, target: /etc/app.conf, mode: 0600}]\nsecrets:\n  token: {file: ./token.txt}\nconfigs:\n  conf: {file: ./conf.ini}\n  inline: {content: hello}\n",
        );
        let svc = p.service("app").expect("app").clone();
        let (mounts, injected) = secret_files(&p, "app", &svc).expect("files");
        let token = t.path().join("token.txt").display().to_string();
        assert_eq!(
            mounts,
            vec![
                json!({"Type": "bind", "Source": token, "Target": "/run/secrets/token", "ReadOnly": true}),
                json!({"Type": "bind", "Source": token, "Target": "/run/secrets/other", "ReadOnly": true}),
                json!({"Type": "bind", "Source": t.path().join("conf.ini").display().to_string(), "Target": "/conf", "ReadOnly": true}),
            ]
        );
        assert_eq!(
            injected,
            vec![Injected {
                target: "/etc/app.conf".into(),
                content: b"hello".to_vec(),
                mode: 0o600
            }]
        );
        let body = create_body(&p, "app", &svc, 1, false).expect("body");
        assert_eq!(
            body["HostConfig"]["Mounts"].as_array().map(Vec::len),
            Some(3)
        );
        let tar = injected_tar(&injected).expect("tar");
        let mut a = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = a
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, vec!["etc", "etc/app.conf"]);
    }

    #[test]
    fn create_body_maps_the_service() {
        let (t, p) = project(
            "services:\n  web:\n    image: busybox\n    command: httpd -f\n    environment: {A: '1'}\n    ports: ['127.0.0.1:8080:80']\n    volumes: [data:/srv, ./conf:/etc/conf:ro]\n    restart: on-failure:3\n    healthcheck: {test: [CMD, \"true\"], interval: 2s, retries: 5}\n    depends_on: {db: {condition: service_healthy}}\n    networks: {back: {aliases: [www]}}\n    mem_limit: 64m\n    cpus: 0.5\n    init: true\n  db:\n    image: db\n    networks: [back]\nnetworks:\n  back: {}\nvolumes:\n  data: {}\n",
        );
        let svc = p.service("web").expect("web").clone();
        let b = create_body(&p, "web", &svc, 1, false).expect("body");
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Cmd"], json!(["httpd", "-f"]));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["Labels"][PROJECT], "p");
        assert_eq!(b["Labels"][SERVICE], "web");
        assert_eq!(b["Labels"][NUMBER], "1");
        assert_eq!(b["Labels"][ONEOFF], "False");
        assert_eq!(b["Labels"][DEPENDS_ON], "db:service_healthy:false");
        assert_eq!(b["Labels"][CONFIG_HASH].as_str().map(str::len), Some(64));
        assert_eq!(
            b["HostConfig"]["PortBindings"]["80/tcp"][0],
            json!({"HostIp": "127.0.0.1", "HostPort": "8080"})
        );
        assert_eq!(b["HostConfig"]["Mounts"][0]["Source"], "p_data");
        assert_eq!(
            b["HostConfig"]["Mounts"][1]["Source"],
            json!(t.path().join("conf").display().to_string())
        );
        assert_eq!(b["HostConfig"]["Mounts"][1]["ReadOnly"], true);
        assert_eq!(
            b["HostConfig"]["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(b["Healthcheck"]["Interval"], 2_000_000_000i64);
        assert_eq!(b["HostConfig"]["Memory"], 64 << 20);
        assert_eq!(b["HostConfig"]["NanoCpus"], 500_000_000);
        assert_eq!(b["HostConfig"]["NetworkMode"], "p_back");
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"]["p_back"]["Aliases"],
            json!(["web", "www"])
        );
        assert_eq!(container_name(&p, "web", &svc, 2), "p-web-2");
    }

    #[test]
    fn hash_ignores_replicas_but_not_config() {
        let a = json!({"image": "x", "deploy": {"replicas": 1}});
        let b = json!({"image": "x", "deploy": {"replicas": 5}});
        let c = json!({"image": "y", "deploy": {"replicas": 1}});
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_ne!(config_hash(&a), config_hash(&c));
    }
}
