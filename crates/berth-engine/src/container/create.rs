//! `create`: validate the request, merge the image's config, reserve the name, make the rw
//! layer and the per-container files, then store the record in state `created`.
//!
//! Every step that leaves something behind is undone if a later step fails, so a failed
//! create leaves no name reservation, snapshot or directory.

use super::state::Status;
use super::{Container, ContainerHandle, ContainerState};
use crate::models::{CreateBody, HostConfig};
use crate::{names, util, Engine, Error, Result};
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct CreateResult {
    pub id: String,
    pub warnings: Vec<String>,
}

impl Engine {
    pub async fn create_container(
        &self,
        name: Option<&str>,
        body: CreateBody,
    ) -> Result<CreateResult> {
        let t0 = std::time::Instant::now();
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            names::validate(n)?;
        }
        let mut hc = body.host_config.clone().unwrap_or_default();
        let warnings = validate_host_config(&mut hc, self.config())?;
        if body.config.image.is_empty() {
            return Err(Error::InvalidArgument(
                "config.Image: image name is required".into(),
            ));
        }
        let image_name = body.config.image.clone();
        let image = {
            let n = image_name.clone();
            self.blocking(move |e| e.images().get(&n).map_err(|err| not_found_image(err, &n)))
                .await?
        };
        let id = util::new_id();
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => self.inner.names.reserve(n, &id)?,
            None => self.inner.names.generate(&id),
        };
        let res = match self
            .prepare_container_network(&id, &body.config, &hc, body.networking_config.as_ref())
            .await
        {
            Ok(()) => self.create_inner(&id, &name, body, hc, &image).await,
            Err(e) => Err(e),
        };
        if res.is_err() {
            self.inner.names.release(&name);
            let key = id.clone();
            let _ = self
                .blocking(move |e| Ok(e.images().remove_rw_layer(&key)?))
                .await;
            let _ = std::fs::remove_dir_all(self.config().container_data_dir(&id));
            let _ = std::fs::remove_dir_all(self.config().container_etc_dir(&id));
        }
        res?;
        let mut attrs = BTreeMap::new();
        attrs.insert("image".into(), image_name);
        attrs.insert("name".into(), name.trim_start_matches('/').to_string());
        self.events().emit("container", "create", &id, attrs);
        tracing::debug!(id = %id, elapsed = ?t0.elapsed(), "create: recorded");
        Ok(CreateResult { id, warnings })
    }

    async fn create_inner(
        &self,
        id: &str,
        name: &str,
        body: CreateBody,
        hc: HostConfig,
        image: &berth_image::Image,
    ) -> Result<()> {
        let mut config = body.config;
        merge_image_config(&mut config, &image.config.config);
        if config.hostname.is_empty() {
            config.hostname = if hc.network_mode == "host" {
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| id[..12].to_string())
            } else {
                id[..12].to_string()
            };
        }
        let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
        argv.extend(config.cmd.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err(Error::InvalidArgument("No command specified".into()));
        }
        let key = id.to_string();
        let img_id = image.id.clone();
        self.blocking(move |e| {
            e.images().create_rw_layer(&key, Some(&img_id))?;
            Ok(())
        })
        .await?;
        let data_dir = self.config().container_data_dir(id);
        let etc_dir = self.config().container_etc_dir(id);
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| Error::io(format!("create {}", data_dir.display()), e))?;
        let mount_points = {
            let (hc, config) = (hc.clone(), config.clone());
            self.blocking(move |e| e.resolve_mounts(&hc, &config))
                .await?
        };
        let anonymous: Vec<String> = mount_points
            .iter()
            .filter(|m| m.anonymous)
            .map(|m| m.name.clone())
            .collect();
        let rec = Container {
            id: id.to_string(),
            name: name.to_string(),
            created: util::now_rfc3339(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config: hc,
            image: image.id.clone(),
            state: ContainerState {
                status: Some(Status::Created),
                ..Default::default()
            },
            restart_count: 0,
            manually_stopped: false,
            log_path: data_dir.join(format!("{id}-json.log")),
            hostname_path: etc_dir.join("hostname"),
            hosts_path: etc_dir.join("hosts"),
            resolv_conf_path: etc_dir.join("resolv.conf"),
            cgroups_path: format!("/{}/{}", self.config().cgroup_parent, id),
            mount_points,
        };
        // Off the async workers: the commit waits for the disk.
        let rec = self
            .blocking(move |e| {
                super::spec::write_etc_files(&rec, e.config())
                    .and_then(|()| e.inner.store.put(crate::store::CONTAINERS, &rec.id, &rec))?;
                Ok(rec)
            })
            .await;
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                self.discard_volumes(&anonymous);
                return Err(e);
            }
        };
        self.inner
            .containers
            .write()
            .expect("container table lock poisoned")
            .insert(id.to_string(), Arc::new(ContainerHandle::new(rec)));
        Ok(())
    }
}

fn not_found_image(err: berth_image::Error, name: &str) -> Error {
    if err.kind() == berth_image::ErrorKind::NotFound {
        let shown = berth_image::Reference::parse(name)
            .map(|r| r.familiar())
            .unwrap_or_else(|_| name.to_string());
        Error::NotFound(format!("No such image: {shown}"))
    } else {
        Error::from(err)
    }
}

/// Docker's create-time rules: the image supplies what the request leaves out.
pub fn merge_image_config(
    c: &mut crate::models::ContainerConfig,
    img: &berth_image::ContainerConfig,
) {
    // Env: image first, request overrides by key.
    let mut env: Vec<String> = img.env.clone().unwrap_or_default();
    for kv in c.env.clone().unwrap_or_default() {
        let key = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    c.env = Some(env);
    // An entrypoint given at create time discards the image's Cmd.
    if c.entrypoint.is_none() {
        c.entrypoint = img.entrypoint.clone();
        if c.cmd.as_ref().is_none_or(|v| v.is_empty()) {
            c.cmd = img.cmd.clone();
        }
    } else if c
        .entrypoint
        .as_ref()
        .is_some_and(|e| e.len() == 1 && e[0].is_empty())
    {
        c.entrypoint = None;
    }
    if c.working_dir.is_empty() {
        c.working_dir = img.working_dir.clone().unwrap_or_default();
    }
    if c.user.is_empty() {
        c.user = img.user.clone().unwrap_or_default();
    }
    if c.stop_signal.is_none() {
        c.stop_signal = img.stop_signal.clone();
    }
    if c.healthcheck.is_none() {
        if let Some(h) = &img.healthcheck {
            c.healthcheck = serde_json::from_value(h.clone()).ok();
        }
    }
    let mut labels = img.labels.clone().unwrap_or_default();
    labels.extend(c.labels.clone().unwrap_or_default());
    c.labels = Some(labels);
    if let Some(ports) = &img.exposed_ports {
        let mut p = ports.clone();
        p.extend(c.exposed_ports.clone().unwrap_or_default());
        c.exposed_ports = Some(p);
    }
    if let Some(v) = &img.volumes {
        let mut vols = v.clone();
        vols.extend(c.volumes.clone().unwrap_or_default());
        c.volumes = Some(vols);
    }
    if c.on_build.is_none() {
        c.on_build = img.on_build.clone();
    }
    if c.shell.is_none() {
        c.shell = img.shell.clone();
    }
}

/// Fills Docker's defaults into a HostConfig and rejects what dockerd rejects.
pub fn validate_host_config(hc: &mut HostConfig, cfg: &crate::EngineConfig) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    // Stored as dockerd stores them, so inspect shows the same: a PidsLimit <= 0 is null
    // (unlimited, API >= 1.41), swappiness -1 is unset, and an unprivileged container lists
    // the masked and read-only paths the runtime spec gives it.
    if hc.pids_limit.is_some_and(|p| p <= 0) {
        hc.pids_limit = None;
    }
    if hc.memory_swappiness == Some(-1) {
        hc.memory_swappiness = None;
    }
    if !hc.privileged {
        let owned = |l: &[&str]| Some(l.iter().map(|p| p.to_string()).collect());
        if hc.masked_paths.is_none() {
            hc.masked_paths = owned(berth_runtime::spec::DEFAULT_MASKED_PATHS);
        }
        if hc.readonly_paths.is_none() {
            hc.readonly_paths = owned(berth_runtime::spec::DEFAULT_READONLY_PATHS);
        }
    }
    if hc.network_mode.is_empty() || hc.network_mode == "default" {
        hc.network_mode = "bridge".into();
    }
    if hc.log_config.typ.is_empty() {
        hc.log_config.typ = "json-file".into();
    }
    match hc.log_config.typ.as_str() {
        "json-file" | "local" | "none" => {}
        other => {
            return Err(Error::InvalidArgument(format!(
                "logger: no log driver named '{other}' is registered"
            )))
        }
    }
    if hc.shm_size == 0 {
        hc.shm_size = cfg.default_shm_size;
    } else if hc.shm_size < 0 {
        return Err(Error::InvalidArgument(
            "SHM size can not be less than 0".into(),
        ));
    }
    if hc.ipc_mode.is_empty() {
        hc.ipc_mode = "private".into();
    }
    if hc.cgroupns_mode.is_empty() {
        hc.cgroupns_mode = match berth_runtime::cgroups::detect() {
            berth_runtime::cgroups::CgroupMode::V2 => "private".into(),
            _ => "host".into(),
        };
    }
    if hc.runtime.is_empty() {
        hc.runtime = "runc".into();
    } else if hc.runtime != "runc"
        && hc.runtime != "crun"
        && !cfg.runtimes.contains_key(&hc.runtime)
    {
        return Err(Error::InvalidArgument(format!(
            "unknown or invalid runtime name: {}",
            hc.runtime
        )));
    }
    validate_restart_policy(hc)?;
    validate_resources(hc)?;
    berth_runtime::spec::capabilities(
        hc.cap_add.as_deref().unwrap_or_default(),
        hc.cap_drop.as_deref().unwrap_or_default(),
        false,
    )
    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    for opt in hc.security_opt.iter().flatten() {
        let ok = opt == "no-new-privileges"
            || opt.starts_with("no-new-privileges=")
            || opt.starts_with("no-new-privileges:")
            || opt.starts_with("seccomp=")
            || opt.starts_with("seccomp:")
            || opt.starts_with("apparmor=")
            || opt.starts_with("label=")
            || opt.starts_with("label:");
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "invalid --security-opt 2: {opt:?}"
            )));
        }
    }
    // User-defined networks (and whether they exist) are checked by the network service.
    if hc.network_mode == "container:" {
        return Err(Error::InvalidArgument(
            "invalid container format container:<name|id>".into(),
        ));
    }
    if hc.network_mode == "host" && hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) {
        warnings.push("Published ports are discarded when using host network mode".to_string());
    }
    Ok(warnings)
}

pub fn validate_restart_policy(hc: &HostConfig) -> Result<()> {
    let rp = &hc.restart_policy;
    match rp.name.as_str() {
        "" | "no" | "always" | "unless-stopped" => {
            if rp.maximum_retry_count != 0 {
                return Err(Error::InvalidArgument(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'".into(),
                ));
            }
        }
        "on-failure" => {
            if rp.maximum_retry_count < 0 {
                return Err(Error::InvalidArgument(
                    "invalid restart policy: maximum retry count can't be negative".into(),
                ));
            }
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )))
        }
    }
    if hc.auto_remove && !matches!(rp.name.as_str(), "" | "no") {
        return Err(Error::InvalidArgument(
            "can't create 'AutoRemove' container with restart policy".into(),
        ));
    }
    Ok(())
}

pub fn validate_resources(hc: &HostConfig) -> Result<()> {
    if hc.memory != 0 && hc.memory < 6 * 1024 * 1024 {
        return Err(Error::InvalidArgument(
            "Minimum memory limit allowed is 6MB".into(),
        ));
    }
    if hc.memory_swap > 0 && hc.memory == 0 {
        return Err(Error::InvalidArgument(
            "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
        ));
    }
    if hc.memory > 0 && hc.memory_swap > 0 && hc.memory_swap < hc.memory {
        return Err(Error::InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        ));
    }
    if hc.nano_cpus != 0 && (hc.cpu_quota != 0 || hc.cpu_period != 0) {
        return Err(Error::InvalidArgument(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
        ));
    }
    if hc.nano_cpus != 0 {
        // Only when asked: std reads mountinfo and the cgroup's quota files for this.
        let ncpu = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as i64;
        if hc.nano_cpus < 0 || hc.nano_cpus > ncpu * 1_000_000_000 {
            return Err(Error::InvalidArgument(format!(
                "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            )));
        }
    }
    if hc.cpu_period != 0 && !(1000..=1_000_000).contains(&hc.cpu_period) {
        return Err(Error::InvalidArgument(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
                .into(),
        ));
    }
    if hc.cpu_quota != 0 && hc.cpu_quota > 0 && hc.cpu_quota < 1000 {
        return Err(Error::InvalidArgument(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)".into(),
        ));
    }
    if hc.cpu_shares < 0 {
        return Err(Error::InvalidArgument(
            "invalid CPU shares: must be >= 0".into(),
        ));
    }
    if let Some(uls) = &hc.ulimits {
        for u in uls {
            if u.soft > u.hard {
                return Err(Error::InvalidArgument(format!(
                    "ulimit {}: soft limit {} must be less than or equal to hard limit {}",
                    u.name, u.soft, u.hard
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ContainerConfig;

    #[test]
    fn entrypoint_drops_image_cmd() {
        let img = berth_image::ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            entrypoint: None,
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            ..Default::default()
        };
        let mut c = ContainerConfig {
            entrypoint: Some(vec!["echo".into()]),
            env: Some(vec!["A=2".into()]),
            ..Default::default()
        };
        merge_image_config(&mut c, &img);
        assert_eq!(c.cmd, None);
        assert_eq!(c.env, Some(vec!["PATH=/bin".into(), "A=2".into()]));
        let mut c = ContainerConfig::default();
        merge_image_config(&mut c, &img);
        assert_eq!(c.cmd, Some(vec!["sh".into()]));
    }

    #[test]
    fn restart_policy_rules() {
        let mut hc = HostConfig::default();
        hc.restart_policy.name = "sometimes".into();
        assert!(validate_restart_policy(&hc).is_err());
        hc.restart_policy.name = "on-failure".into();
        hc.restart_policy.maximum_retry_count = 3;
        assert!(validate_restart_policy(&hc).is_ok());
        hc.auto_remove = true;
        assert!(validate_restart_policy(&hc).is_err());
    }

    #[test]
    fn resource_rules() {
        let mut hc = HostConfig {
            memory: 1024,
            ..Default::default()
        };
        assert!(validate_resources(&hc).is_err());
        hc.memory = 64 << 20;
        hc.memory_swap = 32 << 20;
        assert!(validate_resources(&hc).is_err());
        hc.memory_swap = 0;
        hc.nano_cpus = 500_000_000;
        hc.cpu_quota = 5000;
        assert!(validate_resources(&hc).is_err());
    }
}
