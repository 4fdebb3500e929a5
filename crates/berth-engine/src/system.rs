//! `info`, `version`, `container prune`, `system df`.

use crate::filters::Filters;
use crate::{Engine, Result};
use serde_json::{json, Value};

pub const API_VERSION: &str = "1.50";
pub const MIN_API_VERSION: &str = "1.24";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Engine {
    pub fn version(&self) -> Value {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        json!({
            "Platform": {"Name": "berth"},
            "Components": [{"Name": "Engine", "Version": VERSION, "Details": {
                "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux", "Arch": "amd64", "KernelVersion": kernel}}],
            "Version": VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": kernel,
            "BuildTime": "",
        })
    }

    pub fn info(&self) -> Value {
        let handles = self.all_handles();
        let mut running = 0;
        let mut paused = 0;
        let mut stopped = 0;
        for h in &handles {
            match h.status() {
                crate::container::state::Status::Running
                | crate::container::state::Status::Restarting => running += 1,
                crate::container::state::Status::Paused => paused += 1,
                _ => stopped += 1,
            }
        }
        let images = self.images().list().map(|v| v.len()).unwrap_or(0);
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|k| k.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024;
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cg = berth_runtime::cgroups::detect();
        let cfg = self.config();
        json!({
            "ID": hostname,
            "Containers": handles.len(),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": stopped,
            "Images": images,
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Authorization": Value::Null, "Log": ["json-file", "none"]},
            "MemoryLimit": true,
            "SwapLimit": true,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "CPUSet": true,
            "PidsLimit": true,
            "IPv4Forwarding": true,
            "Debug": cfg.debug,
            "NFd": std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
            "OomKillDisable": false,
            "NGoroutines": 0,
            "SystemTime": crate::util::now_rfc3339(),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": match cg { berth_runtime::cgroups::CgroupMode::V2 => "2", _ => "1" },
            "NEventsListener": 0,
            "KernelVersion": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "OperatingSystem": os_name(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": "x86_64",
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
            "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "MemTotal": mem,
            "DockerRootDir": cfg.data_root,
            "Name": hostname,
            "Labels": [],
            "ExperimentalBuild": false,
            "ServerVersion": VERSION,
            "Runtimes": {"runc": {"path": cfg.runtime}, "crun": {"path": "crun"}},
            "DefaultRuntime": "runc",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": Value::Null},
            "LiveRestoreEnabled": true,
            "Isolation": "",
            "InitBinary": "docker-init",
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Warnings": Value::Null,
        })
    }

    pub async fn prune_containers(&self, filters: &Filters) -> Result<Value> {
        filters.validate(&["label", "label!", "until"])?;
        let until = filters
            .get("until")
            .first()
            .map(|u| parse_until(u))
            .transpose()?;
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for h in self.all_handles() {
            let c = h.snapshot();
            if !c.state.status().can_remove_without_force() {
                continue;
            }
            if !filters.match_labels("label", c.config.labels.as_ref()) {
                continue;
            }
            if filters.has("label!")
                && filters.get("label!").iter().any(|l| {
                    let (k, v) = l
                        .split_once('=')
                        .map(|(k, v)| (k, Some(v)))
                        .unwrap_or((l.as_str(), None));
                    c.config
                        .labels
                        .as_ref()
                        .and_then(|m| m.get(k))
                        .is_some_and(|have| v.is_none_or(|v| v == have))
                })
            {
                continue;
            }
            if let Some(u) = until {
                if crate::util::parse_time(&c.created)
                    .map(|t| t.timestamp())
                    .unwrap_or(0)
                    >= u
                {
                    continue;
                }
            }
            let key = c.id.clone();
            reclaimed += self
                .blocking(move |e| Ok(e.images().rw_layer_size(&key).unwrap_or(0)))
                .await?;
            if self.remove_container(&c.id, false, false).await.is_ok() {
                deleted.push(c.id.clone());
            }
        }
        Ok(
            json!({"ContainersDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed}),
        )
    }
}

/// `until=` as unix seconds, RFC 3339, or a Go duration ago ("10m", "24h").
pub fn parse_until(s: &str) -> Result<i64> {
    if let Ok(n) = s.parse::<f64>() {
        return Ok(n as i64);
    }
    if let Some(t) = crate::util::parse_time(s) {
        return Ok(t.timestamp());
    }
    let (num, unit) = s.split_at(s.find(|c: char| c.is_alphabetic()).unwrap_or(s.len()));
    let n: f64 = num
        .parse()
        .map_err(|_| crate::Error::InvalidArgument(format!("invalid filter 'until={s}'")))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(crate::Error::InvalidArgument(format!(
                "invalid filter 'until={s}'"
            )))
        }
    };
    Ok(chrono::Utc::now().timestamp() - secs as i64)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("PRETTY_NAME=")).map(|l| {
                l.trim_start_matches("PRETTY_NAME=")
                    .trim_matches('"')
                    .to_string()
            })
        })
        .unwrap_or_else(|| "Linux".into())
}
