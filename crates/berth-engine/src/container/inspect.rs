//! `inspect`: the container as Docker's `ContainerInspectResponse`.

use super::state::Status;
use super::Container;
use crate::{util, Engine, Result};
use serde_json::{json, Value};

impl Engine {
    pub async fn inspect_container(&self, name: &str, size: bool) -> Result<Value> {
        let h = self.lookup(name)?;
        let c = h.snapshot();
        let mut v = inspect_json(&c, self.config());
        v["NetworkSettings"] = self.container_network_settings(&c);
        let key = c.id.clone();
        if let Ok(rw) = self.blocking(move |e| Ok(e.images().rw_layer(&key)?)).await {
            v["GraphDriver"]["Data"]["UpperDir"] = json!(rw.upper);
            v["GraphDriver"]["Data"]["WorkDir"] = json!(rw.work);
        }
        if size {
            let key = c.id.clone();
            let rw = self
                .blocking(move |e| Ok(e.images().rw_layer_size(&key).unwrap_or(0)))
                .await?;
            v["SizeRw"] = json!(rw);
            let img = c.image.clone();
            let root = self
                .blocking(move |e| Ok(e.images().get(&img).map(|i| i.size).unwrap_or(0)))
                .await?;
            v["SizeRootFs"] = json!(rw + root);
        }
        Ok(v)
    }
}

pub fn inspect_json(c: &Container, cfg: &crate::EngineConfig) -> Value {
    let st = c.state.status();
    let rootfs = cfg.container_state_dir(&c.id).join("rootfs");
    let mut hc = serde_json::to_value(&c.host_config).unwrap_or(Value::Null);
    if hc["PortBindings"].is_null() {
        hc["PortBindings"] = json!({});
    }
    let network_mode = c.host_config.network_mode.clone();
    json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": {
            "Status": st.as_str(),
            "Running": matches!(st, Status::Running | Status::Paused),
            "Paused": st == Status::Paused,
            "Restarting": st == Status::Restarting,
            "OOMKilled": c.state.oom_killed,
            "Dead": st == Status::Dead,
            "Pid": c.state.pid,
            "ExitCode": c.state.exit_code,
            "Error": c.state.error,
            "StartedAt": c.state.started_at.clone().unwrap_or_else(|| util::ZERO_TIME.into()),
            "FinishedAt": c.state.finished_at.clone().unwrap_or_else(|| util::ZERO_TIME.into()),
            "Health": c.state.health,
        },
        "Image": c.image,
        "ResolvConfPath": c.resolv_conf_path,
        "HostnamePath": c.hostname_path,
        "HostsPath": c.hosts_path,
        "LogPath": if c.host_config.log_config.typ == "json-file" { json!(c.log_path) } else { json!("") },
        "Name": c.name,
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": hc,
        "GraphDriver": {
            "Data": {
                "MergedDir": rootfs,
            },
            "Name": "overlay2"
        },
        "Mounts": super::mounts::mounts_json(&c.mount_points),
        "Config": c.config,
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": "",
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": {},
            "SecondaryIPAddresses": Value::Null,
            "SecondaryIPv6Addresses": Value::Null,
            "EndpointID": "",
            "Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "MacAddress": "",
            "Networks": {
                network_mode.clone(): {
                    "IPAMConfig": Value::Null,
                    "Links": Value::Null,
                    "Aliases": Value::Null,
                    "MacAddress": "",
                    "DriverOpts": Value::Null,
                    "NetworkID": "",
                    "EndpointID": "",
                    "Gateway": "",
                    "IPAddress": "",
                    "IPPrefixLen": 0,
                    "IPv6Gateway": "",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "DNSNames": Value::Null
                }
            }
        }
    })
}
