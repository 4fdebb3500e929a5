//! `start`: mount the rootfs, write the OCI bundle, spawn the shim, connect early attaches,
//! then let the process run.
//!
//! The shim creates the container (`crun create`) before it answers, so attach streams are
//! connected while the process is still held at its exec barrier; only then does `start`
//! release it. A failure at any step unwinds the steps before it (rootfs unmounted, bundle
//! removed, cgroup gone) and records Docker's exit code (127 missing binary, 126 not
//! executable) on the container, as dockerd does.

use super::state::Status;
use super::ContainerHandle;
use crate::{util, Engine, Error, Result};
use berth_runtime::shim::{ShimClient, ShimConfig, ShimError};
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::sync::Arc;

/// The engine's spare shim and what it was made for.
#[derive(Debug)]
pub(crate) struct SpareSlot {
    shim: berth_runtime::shim::SpareShim,
    runtime: std::path::PathBuf,
    sealed: Option<Arc<berth_runtime::sealed::SealedBinary>>,
}

/// Stops a [`Engine::warm_cgroup_migration`] loop when dropped.
pub(crate) struct WarmGuard(Arc<std::sync::atomic::AtomicBool>);

impl Drop for WarmGuard {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Engine {
    /// Spawns a shim on a blocking thread, or hands the container to the spare shim when
    /// there is one for its runtime. A shim gets the sealed copy of its runtime binary
    /// (berth_runtime::sealed) when one can be made, which saves the runtime re-executing
    /// itself on every call; otherwise it runs the runtime by its path.
    pub(crate) async fn spawn_shim(
        &self,
        shim_cfg: ShimConfig,
    ) -> std::result::Result<std::result::Result<u32, ShimError>, tokio::task::JoinError> {
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let sealed = engine.sealed_runtime(&shim_cfg.runtime);
            if let Some(spare) = engine.take_spare(&shim_cfg.runtime, sealed.as_ref()) {
                match spare.launch(&shim_cfg) {
                    Ok(res) => return res,
                    Err(berth_runtime::shim::SpareGone) => {
                        tracing::debug!("spare shim gone; spawning one");
                    }
                }
            }
            berth_runtime::shim::spawn_shim_with(
                &engine.config().shim_binary,
                &shim_cfg,
                sealed.as_deref().map(|s| s.as_fd()),
            )
        })
        .await
    }

    fn sealed_runtime(
        &self,
        runtime: &std::path::Path,
    ) -> Option<Arc<berth_runtime::sealed::SealedBinary>> {
        match self.inner.sealed.get(runtime) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!("running the runtime by its path: {e}");
                None
            }
        }
    }

    /// The spare shim, if it holds this very sealed copy of `runtime` (a copy remade
    /// after an upgrade of the binary retires spares holding the old one).
    fn take_spare(
        &self,
        runtime: &std::path::Path,
        sealed: Option<&Arc<berth_runtime::sealed::SealedBinary>>,
    ) -> Option<berth_runtime::shim::SpareShim> {
        let mut slot = self.inner.spare_shim.lock().expect("spare shim lock");
        let s = slot.take()?;
        let same = s.runtime.as_path() == runtime
            && match (&s.sealed, sealed) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
        // A spare that does not fit is dropped: EOF on its socket makes it exit.
        same.then_some(s.shim)
    }

    /// Starts a spare shim for `runtime` in the background unless one is waiting. Called
    /// once a start is done, so the spare's exec does not compete with the start's own.
    pub(crate) fn refill_spare_shim(&self, runtime: std::path::PathBuf) {
        if std::env::var_os("BERTH_NO_SPARE_SHIM").is_some() {
            return;
        }
        if self
            .inner
            .spare_shim
            .lock()
            .expect("spare shim lock")
            .is_some()
        {
            return;
        }
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let sealed = engine.sealed_runtime(&runtime);
            let cfg = engine.config();
            let spawned = berth_runtime::shim::SpareShim::spawn(
                &cfg.shim_binary,
                &cfg.exec_root,
                sealed.as_deref().map(|s| s.as_fd()),
            );
            match spawned {
                Ok(shim) => {
                    let mut slot = engine.inner.spare_shim.lock().expect("spare shim lock");
                    if slot.is_none() {
                        *slot = Some(SpareSlot {
                            shim,
                            runtime,
                            sealed,
                        });
                    }
                }
                Err(e) => tracing::debug!("spare shim: {e}"),
            }
        });
    }

    pub async fn start_container(&self, name: &str) -> Result<()> {
        let h = self.lookup(name)?;
        let _op = h.op.lock().await;
        match h.status() {
            Status::Running | Status::Paused => {
                return Err(Error::NotModified("container already started".into()))
            }
            Status::Removing | Status::Dead => {
                return Err(Error::Conflict(format!(
                    "cannot start container {}: container is marked for removal",
                    h.id
                )))
            }
            _ => {}
        }
        self.start_locked(&h).await
    }

    /// Starts a container whose `op` lock the caller holds.
    /// Keep the kernel's cgroup migration lock warm on a spare thread until the guard is
    /// dropped (at most `max`), so the runtime's move of the process about to start does not
    /// wait out a grace period (see `berth_runtime::cgroups::MigrationWarmer`).
    pub(crate) fn warm_cgroup_migration(&self, max: std::time::Duration) -> WarmGuard {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (engine, stop) = (self.clone(), stop.clone());
            rt.spawn_blocking(move || engine.inner.migration_warmer.keep_warm(&stop, max));
        }
        WarmGuard(stop)
    }

    pub(crate) async fn start_locked(&self, h: &Arc<ContainerHandle>) -> Result<()> {
        let _warm = self.warm_cgroup_migration(std::time::Duration::from_secs(2));
        let c = h.snapshot();
        let cfg = self.config().clone();
        let state_dir = cfg.container_state_dir(&c.id);
        // A bundle from an earlier run of this container is stale: its shim is gone.
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| Error::io(format!("create {}", state_dir.display()), e))?;
        super::spec::ensure_etc_files(&c, &cfg)?;
        let rootfs = state_dir.join("rootfs");
        // Set once volume refs are taken, so a failure drops exactly those.
        let prepared = std::sync::atomic::AtomicBool::new(false);
        let started = self
            .spawn_and_start(h, &c, &rootfs, &prepared)
            .await
            .inspect_err(|_| {
                if prepared.load(std::sync::atomic::Ordering::Acquire) {
                    self.release_mounts(&c)
                }
            });
        match started {
            Ok(()) => Ok(()),
            Err(err) => {
                self.teardown_container_network(&h.id).await;
                let target = rootfs.clone();
                let _ = self
                    .blocking(move |e| Ok(e.images().unmount_rw_layer(&target)?))
                    .await;
                let _ = std::fs::remove_dir_all(&state_dir);
                let msg = err.to_string();
                let code = exit_code_for_start_error(&msg);
                h.update(|r| {
                    r.state.status = Some(if r.state.started_at.is_some() {
                        Status::Exited
                    } else {
                        Status::Created
                    });
                    r.state.exit_code = code;
                    r.state.error = msg.clone();
                    r.state.pid = 0;
                });
                self.persist(h)?;
                for p in h.pending_attaches.lock().expect("attach lock").drain(..) {
                    let _ = p.reply.send(Err(Error::Conflict(msg.clone())));
                }
                // dockerd removes an AutoRemove container whose start failed; `docker run
                // --rm` waits for exactly that before it reports the error.
                if h.snapshot().host_config.auto_remove {
                    let engine = self.clone();
                    let id = h.id.clone();
                    tokio::spawn(async move {
                        if let Err(e) = engine.remove_container(&id, true, true).await {
                            tracing::warn!(id = %id, "auto-remove after failed start: {e}");
                        }
                    });
                }
                Err(err)
            }
        }
    }

    async fn spawn_and_start(
        &self,
        h: &Arc<ContainerHandle>,
        c: &super::Container,
        rootfs: &std::path::Path,
        prepared: &std::sync::atomic::AtomicBool,
    ) -> Result<()> {
        let cfg = self.config().clone();
        let state_dir = cfg.container_state_dir(&c.id);
        let t0 = std::time::Instant::now();
        // The namespace first; its endpoints, ports, hosts and resolv.conf (veths: a
        // couple of milliseconds in the kernel) then go in while blocking threads mount the
        // rootfs, take the volumes (copy-up reads the image's files) and write the bundle
        // (the user is looked up in the mounted rootfs; the network part needs only the
        // namespace's path). All of it is done before the shim.
        let (network, attach) = self.prepare_container_netns(c).await?;
        let endpoints = async {
            if let Some(netns) = attach {
                self.attach_container_network(c, netns).await?;
            }
            tracing::debug!(id = %c.id, elapsed = ?t0.elapsed(), "start: network ready");
            Ok::<(), Error>(())
        };
        let bundle = async {
            {
                let (key, target) = (c.id.clone(), rootfs.to_path_buf());
                let volatile = c.host_config.auto_remove;
                self.blocking(move |e| {
                    if volatile {
                        e.images().mount_rw_layer_volatile(&key, &target)?;
                    } else {
                        e.images().mount_rw_layer(&key, &target)?;
                    }
                    Ok(())
                })
                .await?;
            }
            // Volume refs, copy-up and bind sources; the caller drops the refs on failure.
            {
                let (hh, target) = (h.clone(), rootfs.to_path_buf());
                self.blocking(move |e| e.prepare_mounts(&hh, &target))
                    .await?;
                prepared.store(true, std::sync::atomic::Ordering::Release);
            }
            tracing::debug!(id = %c.id, elapsed = ?t0.elapsed(), "start: rootfs ready");
            let (c, rootfs) = (c.clone(), rootfs.to_path_buf());
            self.blocking(move |e| e.write_start_bundle(&c, &rootfs, network))
                .await
        };
        let (attached, written) = tokio::join!(endpoints, bundle);
        attached?;
        let (shim_cfg, seccomp) = written?;
        tracing::debug!(id = %c.id, elapsed = ?t0.elapsed(), "start: bundle written");
        let runtime = shim_cfg.runtime.clone();
        self.spawn_shim(shim_cfg)
            .await
            .map_err(|e| Error::Internal(format!("spawn shim: {e}")))?
            .map_err(|e| Error::InvalidArgument(docker_start_error(&e.to_string())))?;
        if let berth_runtime::seccomp_cache::Prepared::Miss(entry) = seccomp {
            let (root, id) = (cfg.runtime_root(), c.id.clone());
            // Off the critical path; a failed fill only means the next create compiles again.
            tokio::task::spawn_blocking(move || {
                if let Err(e) = berth_runtime::seccomp_cache::SeccompCache::fill(&entry, &root, &id)
                {
                    tracing::debug!(id = %id, "seccomp cache: {e}");
                }
            });
        }
        let client = ShimClient::connect(&state_dir)
            .await
            .map_err(|e| Error::Internal(format!("connect to shim: {e}")))?;
        let pending: Vec<_> = h
            .pending_attaches
            .lock()
            .expect("attach lock")
            .drain(..)
            .collect();
        for p in pending {
            let stream = client
                .attach(p.stdin, p.stdout, p.stderr)
                .await
                .map_err(|e| Error::Internal(format!("attach: {e}")));
            let _ = p.reply.send(stream);
        }
        tracing::debug!(id = %c.id, elapsed = ?t0.elapsed(), "start: shim created the container");
        if let Err(e) = client.start().await {
            let _ = client.kill(9, true).await;
            let _ = client.shutdown().await;
            return Err(Error::InvalidArgument(e.to_string()));
        }
        // The shim wrote the runtime's pid file before it answered: no `state` round trip.
        let pid = std::fs::read_to_string(state_dir.join("init.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i64>().ok())
            .unwrap_or(0);
        tracing::debug!(id = %c.id, elapsed = ?t0.elapsed(), "start: running");
        h.update(|r| {
            r.state.status = Some(Status::Running);
            r.state.pid = pid;
            r.state.exit_code = 0;
            r.state.error.clear();
            r.state.oom_killed = false;
            r.state.started_at = Some(util::now_rfc3339());
            r.manually_stopped = false;
        });
        self.emit_container(h, "start", BTreeMap::new());
        self.refill_spare_shim(runtime);
        // The exit monitor first: a short-lived process may be gone already, and its
        // teardown can run while this commit waits for the disk (`persist` keeps the
        // newer exit state if that lands first).
        self.spawn_monitor(h.clone(), client);
        self.spawn_health(h.clone());
        self.persist_off(h).await
    }

    /// The runtime bundle (`config.json`) of a start and the shim's configuration, for a
    /// container joining `network`; runs on a blocking thread.
    fn write_start_bundle(
        &self,
        c: &super::Container,
        rootfs: &std::path::Path,
        network: berth_runtime::spec::NetworkNs,
    ) -> Result<(ShimConfig, berth_runtime::seccomp_cache::Prepared)> {
        let cfg = self.config();
        let state_dir = cfg.container_state_dir(&c.id);
        let mut opts = super::spec::spec_options(c, cfg, rootfs)?;
        self.apply_link_env(c, &mut opts.env);
        opts.network = network;
        let mut spec = berth_runtime::spec::generate(&opts)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let runtime = match c.host_config.runtime.as_str() {
            "runc" | "" => cfg.runtime.clone(),
            name => cfg
                .runtimes
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_string()),
        };
        // A precompiled seccomp filter saves crun half of its create time (see seccomp_cache).
        let seccomp = berth_runtime::seccomp_cache::SeccompCache::new(cfg.seccomp_cache_dir())
            .prepare(&mut spec, std::path::Path::new(&runtime));
        berth_runtime::spec::write_bundle(&state_dir, &spec)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let log_opts = super::logs::effective_log_opts(
            &c.host_config.log_config.typ,
            &c.host_config.log_config.config,
            &cfg.log_opts,
        );
        let shim_cfg = ShimConfig {
            id: c.id.clone(),
            bundle: state_dir.clone(),
            state_dir: state_dir.clone(),
            runtime: runtime.into(),
            runtime_root: cfg.runtime_root(),
            log_path: if c.host_config.log_config.typ == "none" {
                std::path::PathBuf::new()
            } else {
                c.log_path.clone()
            },
            log_max_size: log_opts.get("max-size").and_then(|s| parse_size(s)),
            log_max_files: log_opts
                .get("max-file")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1),
            terminal: c.config.tty,
            open_stdin: c.config.open_stdin,
            stdin_once: c.config.stdin_once,
            spec_facts: Some(berth_runtime::shim::SpecFacts::of(&spec)),
        };
        Ok((shim_cfg, seccomp))
    }

    pub(crate) fn emit_container(
        &self,
        h: &ContainerHandle,
        action: &str,
        mut extra: BTreeMap<String, String>,
    ) {
        let c = h.snapshot();
        extra.insert("image".into(), c.config.image.clone());
        extra.insert("name".into(), c.bare_name().to_string());
        for (k, v) in c.config.labels.iter().flatten() {
            extra.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self.events().emit("container", action, &c.id, extra);
    }
}

/// Rewrites the runtime's complaint about a missing or unusable binary into dockerd's words
/// (which the docker CLI matches to pick exit code 127 or 126), keeping the runtime's own
/// text at the end.
pub fn docker_start_error(runtime_msg: &str) -> String {
    let prefix = "failed to create task for container: OCI runtime create failed: unable to start container process: error during container init";
    if let Some(detail) = missing_binary_detail(runtime_msg) {
        return format!("{prefix}: {detail}: unknown ({runtime_msg})");
    }
    if not_executable(runtime_msg) {
        return format!("{prefix}: exec: permission denied: unknown ({runtime_msg})");
    }
    format!("{prefix}: {runtime_msg}")
}

/// A command that exists but cannot be executed: runc (and so dockerd) says EACCES, crun
/// says `open executable: Operation not permitted` for a directory. dockerd's "permission
/// denied" makes the docker CLI exit 126.
pub fn not_executable(runtime_msg: &str) -> bool {
    let m = runtime_msg.to_lowercase();
    m.contains("permission denied") || m.contains("open executable: operation not permitted")
}

/// crun reports a missing binary as "executable file `X` not found"; runc (and so dockerd)
/// says `exec: "X": executable file not found in $PATH` or, for a path, `stat X: no such
/// file or directory`. The docker CLI picks exit code 127 from the latter wording.
pub fn missing_binary_detail(runtime_msg: &str) -> Option<String> {
    let rest = runtime_msg.split("executable file `").nth(1)?;
    let (bin, _) = rest.split_once('`')?;
    Some(if bin.contains('/') {
        format!("exec: \"{bin}\": stat {bin}: no such file or directory")
    } else {
        format!("exec: \"{bin}\": executable file not found in $PATH")
    })
}

/// Docker's mapping of runtime start errors to exit codes.
pub fn exit_code_for_start_error(msg: &str) -> i64 {
    let m = msg.to_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        127
    } else if m.contains("permission denied") {
        126
    } else {
        128
    }
}

/// Docker's size strings: "10m", "1g", "512k", "100" (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_lowercase();
    let (num, mult) = match s.trim_end_matches('b').chars().last()? {
        'k' => (&s[..s.trim_end_matches('b').len() - 1], 1024u64),
        'm' => (&s[..s.trim_end_matches('b').len() - 1], 1024 * 1024),
        'g' => (&s[..s.trim_end_matches('b').len() - 1], 1024 * 1024 * 1024),
        _ => (s.trim_end_matches('b'), 1),
    };
    num.parse::<f64>().ok().map(|n| (n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn start_error_wording() {
        let m = docker_start_error("crun create failed: executable file `/nope` not found in $PATH: No such file or directory");
        assert!(
            m.contains("exec: \"/nope\": stat /nope: no such file or directory"),
            "{m}"
        );
        assert_eq!(exit_code_for_start_error(&m), 127);
        let m = docker_start_error("crun create failed: executable file `nope` not found in $PATH: No such file or directory");
        assert!(
            m.contains("exec: \"nope\": executable file not found in $PATH"),
            "{m}"
        );
    }

    #[test]
    fn start_error_codes() {
        assert_eq!(
            exit_code_for_start_error("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(exit_code_for_start_error("open /x: permission denied"), 126);
        assert_eq!(exit_code_for_start_error("something else"), 128);
        let m = docker_start_error("crun create failed: open executable: Operation not permitted");
        assert!(m.contains("permission denied"), "{m}");
        assert_eq!(exit_code_for_start_error(&m), 126);
        let m = docker_start_error("crun create failed: open executable: Operation not permitted");
        assert!(m.contains("permission denied"), "{m}");
        assert_eq!(exit_code_for_start_error(&m), 126);
    }
}
