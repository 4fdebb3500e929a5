//! Exit monitoring, restart policies and live restore.
//!
//! One task per running container waits on its shim. When the process exits the task
//! records the status, tears down what start set up, publishes the exit to waiters and
//! applies the restart policy or `--rm`. After a berthd restart, [`Engine::restore`] finds
//! each shim again (live restore) or, when the shim is gone, reads the exit status it left.

use super::state::Status;
use super::{Container, ContainerHandle};
use crate::{util, Engine, Result};
use berth_runtime::shim::{ExitInfo, ShimClient};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

impl Engine {
    pub(crate) fn spawn_monitor(&self, h: Arc<ContainerHandle>, client: ShimClient) {
        let engine = self.clone();
        tokio::spawn(async move {
            let state_dir = engine.config().container_state_dir(&h.id);
            let info = match client.wait().await {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(id = %h.id, "lost the shim: {e}");
                    berth_runtime::shim::read_exit_file(&state_dir).unwrap_or(ExitInfo {
                        exit_code: 255,
                        exited_at: util::now_rfc3339(),
                        oom_killed: false,
                    })
                }
            };
            engine.handle_exit(&h, info).await;
        });
    }

    pub(crate) async fn handle_exit(&self, h: &Arc<ContainerHandle>, info: ExitInfo) {
        let state_dir = self.config().container_state_dir(&h.id);
        let t0 = std::time::Instant::now();
        // The three teardowns touch disjoint things (the runtime's state and cgroup, the
        // host-side rootfs mount, the netns and endpoints) and each takes milliseconds, so
        // they run together: `docker run --rm` and restarts wait for all of them.
        let shim = async {
            if let Ok(c) = ShimClient::connect(&state_dir).await {
                let _ = c.shutdown().await;
            }
            tracing::debug!(id = %h.id, elapsed = ?t0.elapsed(), "exit: shim done");
        };
        let target = state_dir.join("rootfs");
        let unmount = async {
            if let Err(e) = self
                .blocking(move |e| Ok(e.images().unmount_rw_layer(&target)?))
                .await
            {
                tracing::warn!(id = %h.id, "unmount rootfs: {e}");
            }
            tracing::debug!(id = %h.id, elapsed = ?t0.elapsed(), "exit: rootfs unmounted");
        };
        let network = async {
            self.teardown_container_network(&h.id).await;
            tracing::debug!(id = %h.id, elapsed = ?t0.elapsed(), "exit: network released");
        };
        tokio::join!(shim, unmount, network);
        tracing::debug!(id = %h.id, elapsed = ?t0.elapsed(), "exit: shim, rootfs and network released");
        let _ = std::fs::remove_dir_all(&state_dir);
        self.release_mounts(&h.snapshot());
        let cg = h.snapshot().cgroups_path;
        let _ = berth_runtime::cgroups::remove(&cg);
        let (restart, auto_remove) = h.update(|r| {
            r.state.status = Some(Status::Exited);
            r.state.pid = 0;
            r.state.exit_code = info.exit_code;
            r.state.oom_killed = info.oom_killed;
            r.state.finished_at = Some(info.exited_at.clone());
            if let Some(hl) = r.state.health.as_mut() {
                hl.status = "unhealthy".into();
            }
            let restart = should_restart(r, info.exit_code);
            if restart {
                r.state.status = Some(Status::Restarting);
            }
            (restart, r.host_config.auto_remove)
        });
        // Waiters (`stop`, `wait`, `run`) learn of the exit before its commit: the state
        // they read is in memory already, and what a crash before the commit leaves is the
        // same either way (the record says running, the runtime state is gone, and restore
        // records an exit). `stop` then answers without waiting for the disk.
        if info.oom_killed {
            self.emit_container(h, "oom", BTreeMap::new());
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("exitCode".to_string(), info.exit_code.to_string());
        self.emit_container(h, "die", attrs);
        h.exits.send_modify(|e| {
            e.generation += 1;
            e.exit_code = info.exit_code;
            e.error = None;
        });
        // An auto-remove container's record is about to go: its removal persists
        // `Removing` first, and a crash before that leaves `Running`, which restore turns
        // into this same exit and removal. One metadata commit fewer on `run --rm`.
        if restart || !auto_remove {
            if let Err(e) = self.persist_off(h).await {
                tracing::error!(id = %h.id, "persist exit: {e}");
            }
        }
        tracing::debug!(id = %h.id, elapsed = ?t0.elapsed(), "exit: recorded");
        if restart {
            let engine = self.clone();
            let h = h.clone();
            tokio::spawn(async move {
                let count = h.snapshot().restart_count;
                // Docker's backoff: 100ms doubling, capped at one minute.
                let delay = Duration::from_millis(100u64 << count.clamp(0, 9) as u64)
                    .min(Duration::from_secs(60));
                tokio::time::sleep(delay).await;
                let _op = h.op.lock().await;
                if h.status() != Status::Restarting || h.snapshot().manually_stopped {
                    return;
                }
                h.update(|r| r.restart_count += 1);
                if let Err(e) = engine.start_locked(&h).await {
                    tracing::warn!(id = %h.id, "restart failed: {e}");
                    h.update(|r| r.state.status = Some(Status::Exited));
                    let _ = engine.persist(&h);
                }
            });
        } else if auto_remove {
            let engine = self.clone();
            let id = h.id.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.remove_container(&id, true, true).await {
                    tracing::warn!(id = %id, "auto-remove: {e}");
                }
            });
        }
    }

    /// Loads containers from the store and reconciles them with the shims still running.
    pub(crate) async fn restore(&self) -> Result<()> {
        let records: Vec<(String, Container)> = self.inner.store.all(crate::store::CONTAINERS)?;
        for (_, rec) in records {
            let _ = self.inner.names.reserve(&rec.name, &rec.id);
            let h = Arc::new(ContainerHandle::new(rec));
            self.inner
                .containers
                .write()
                .expect("container table lock poisoned")
                .insert(h.id.clone(), h.clone());
            let status = h.status();
            let state_dir = self.config().container_state_dir(&h.id);
            match status {
                Status::Running | Status::Paused | Status::Restarting => {
                    if self.reattach_shim(&h, &state_dir, true).await {
                        continue;
                    }
                    let info =
                        berth_runtime::shim::read_exit_file(&state_dir).unwrap_or(ExitInfo {
                            exit_code: 255,
                            exited_at: util::now_rfc3339(),
                            oom_killed: false,
                        });
                    self.handle_exit(&h, info).await;
                }
                Status::Removing => {
                    let id = h.id.clone();
                    let _ = self.remove_container(&id, true, false).await;
                }
                // dockerd removes stopped auto-remove containers at start-up: the removal
                // that should have followed their exit never ran.
                Status::Exited if h.snapshot().host_config.auto_remove => {
                    let id = h.id.clone();
                    let _ = self.remove_container(&id, true, true).await;
                }
                _ => {
                    if self.reattach_shim(&h, &state_dir, false).await {
                        continue;
                    }
                    // A start that was not recorded, and whose container exited while
                    // berthd was down: its shim left the exit behind.
                    if let Some(info) = berth_runtime::shim::read_exit_file(&state_dir) {
                        self.handle_exit(&h, info).await;
                        continue;
                    }
                    // No process: make sure nothing of an earlier run is left mounted.
                    let rootfs = state_dir.join("rootfs");
                    let _ = self
                        .blocking(move |e| Ok(e.images().unmount_rw_layer(&rootfs)?))
                        .await;
                    let _ = std::fs::remove_dir_all(&state_dir);
                }
            }
        }
        // Endpoints, namespaces and ports of containers that did not survive go; DNS and
        // port reservations of those that did come back.
        if let Err(e) = self.reconcile_networks().await {
            tracing::warn!("network reconcile: {e}");
        }
        Ok(())
    }

    /// Reconnects restore to the shim serving `state_dir`, if one is there, and monitors
    /// the container again; false when there is none to take over.
    ///
    /// `recorded_running`: the record says the container runs. When it does not, the
    /// shim belongs to a start that berthd did not live to record (killed between the
    /// shim's start and the `running` commit): a shim whose container was started is
    /// adopted, the record corrected; one whose start never came (`Created`) is stopped,
    /// and the caller cleans up as for any container without a process. Before, restore
    /// took such a container for one that never ran and left its process orphaned.
    async fn reattach_shim(
        &self,
        h: &Arc<ContainerHandle>,
        state_dir: &std::path::Path,
        recorded_running: bool,
    ) -> bool {
        use berth_runtime::shim::ShimStatus;
        if !berth_runtime::shim::shim_alive(state_dir) {
            return false;
        }
        let client = match ShimClient::connect(state_dir).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(id = %h.id, "shim unreachable: {e}");
                return false;
            }
        };
        let st = client.state().await.ok();
        if !recorded_running {
            match st.as_ref().map(|s| s.status) {
                Some(ShimStatus::Running | ShimStatus::Paused | ShimStatus::Stopped) => {
                    tracing::info!(id = %h.id, "adopting a container whose start was not recorded");
                }
                _ => {
                    let _ = client.kill(9, true).await;
                    let _ = client.shutdown().await;
                    return false;
                }
            }
        }
        if let Some(st) = st {
            let paused = st.status == ShimStatus::Paused;
            h.update(|r| {
                r.state.pid = st.pid as i64;
                r.state.status = Some(if paused {
                    Status::Paused
                } else {
                    Status::Running
                });
                if r.state.started_at.is_none() {
                    r.state.started_at = Some(util::now_rfc3339());
                }
            });
        }
        if !recorded_running {
            if let Err(e) = self.persist_off(h).await {
                tracing::warn!(id = %h.id, "persist adopted container: {e}");
            }
        }
        self.reacquire_mounts(&h.snapshot());
        self.spawn_monitor(h.clone(), client);
        self.resume_health(h.clone());
        true
    }
}

/// Docker's restart rules. `manually_stopped` covers stop/kill by the user.
pub fn should_restart(c: &Container, exit_code: i64) -> bool {
    if c.manually_stopped {
        return false;
    }
    let rp = &c.host_config.restart_policy;
    match rp.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            exit_code != 0
                && (rp.maximum_retry_count == 0 || c.restart_count < rp.maximum_retry_count)
        }
        _ => false,
    }
}
