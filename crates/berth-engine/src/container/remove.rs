//! `rm`: refuse running containers unless forced, then release everything the container
//! holds (rw layer, files, name) and publish `removed` to waiters.

use super::state::Status;
use crate::{Engine, Error, Result};
use std::collections::BTreeMap;

impl Engine {
    pub async fn remove_container(&self, name: &str, force: bool, volumes: bool) -> Result<()> {
        let h = self.lookup(name)?;
        let _op = h.op.lock().await;
        let status = h.status();
        if !status.can_remove_without_force() && status != Status::Removing {
            if !force {
                let state = if status == Status::Paused {
                    "paused"
                } else {
                    status.as_str()
                };
                return Err(Error::Conflict(format!(
                    "cannot remove container \"{}\": container is {state}: stop the container before removing or force remove",
                    h.snapshot().name
                )));
            }
            h.update(|r| r.manually_stopped = true);
            if status == Status::Restarting {
                h.update(|r| r.state.status = Some(Status::Exited));
            } else {
                match self.stop_locked(&h, Some("SIGKILL"), Some(0)).await {
                    Ok(()) | Err(Error::NotModified(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let t0 = std::time::Instant::now();
        h.update(|r| r.state.status = Some(Status::Removing));
        // `Removing` on disk makes the next start finish a removal a crash interrupted. An
        // auto-remove container that ever ran needs no such mark: restore removes it from any
        // state it may be left in (running, exited), so `run --rm` saves that commit.
        if !(h.snapshot().host_config.auto_remove && status != Status::Created) {
            self.persist_off(&h).await?;
        }
        tracing::debug!(id = %h.id, elapsed = ?t0.elapsed(), "remove: marked");
        let c = h.snapshot();
        // The network first: it needs the async runtime, and nothing below depends on it.
        self.forget_container_network(&c.id).await;
        // The rest in one trip to a blocking thread (each trip is a thread wake-up on the
        // path of `run --rm`), the record last, so a crash in between leaves a record that
        // restore removes again.
        let state_dir = self.config().container_state_dir(&c.id);
        let etc_dir = self.config().container_etc_dir(&c.id);
        let data_dir = self.config().container_data_dir(&c.id);
        let (key, rec) = (c.id.clone(), h.clone());
        // As with the `Removing` mark above: an auto-remove container that ran is removed
        // again by restore from whatever record a crash leaves, so `run --rm` need not wait
        // for this commit to reach the disk.
        let lazily = c.host_config.auto_remove && status != Status::Created;
        let trash = self
            .blocking(move |e| {
                e.images().unmount_rw_layer(&state_dir.join("rootfs"))?;
                let layer = e.images().detach_rw_layer(&key)?;
                let _ = std::fs::remove_dir_all(&state_dir);
                let _ = std::fs::remove_dir_all(&etc_dir);
                // The data dir holds the log, which can be big: out of the way with one
                // rename, its files deleted in the background like the rw layer's
                // (leftovers go at start-up).
                let data = data_dir.with_file_name(format!(".tmp-rm-{key}"));
                let data = match std::fs::rename(&data_dir, &data) {
                    Ok(()) => Some(data),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(err) => {
                        return Err(Error::io(format!("remove {}", data_dir.display()), err))
                    }
                };
                e.delete_record(&rec, lazily)?;
                Ok([layer, data])
            })
            .await?;
        // Out of the store already; deleting their files can take a while (tens of ms for a
        // small layer on a busy disk) and nobody needs to wait for it.
        let id = h.id.clone();
        tokio::task::spawn_blocking(move || {
            for dir in trash.into_iter().flatten() {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(id = %id, "delete {}: {e}", dir.display());
                }
            }
        });
        tracing::debug!(id = %h.id, elapsed = ?t0.elapsed(), "remove: record deleted");
        self.inner
            .containers
            .write()
            .expect("container table lock poisoned")
            .remove(&c.id);
        self.inner.names.release(&c.name);
        self.drop_execs_of(&c.id);
        if volumes {
            let rec = c.clone();
            self.blocking(move |e| {
                e.remove_anonymous_volumes(&rec);
                Ok(())
            })
            .await?;
        }
        self.emit_container(&h, "destroy", BTreeMap::new());
        h.exits.send_modify(|e| e.removed = true);
        Ok(())
    }
}
