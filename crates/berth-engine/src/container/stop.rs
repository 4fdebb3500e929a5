//! `stop`, `kill`, `restart`, `pause`, `unpause`: signals and freezer through the shim.

use super::state::Status;
use super::ContainerHandle;
use crate::{Engine, Error, Result};
use berth_runtime::shim::ShimClient;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Parses "SIGTERM", "TERM", "15", "sigkill" into a signal number.
pub fn parse_signal(s: &str) -> Result<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::InvalidArgument(format!("Invalid signal: {s}")));
    }
    let up = t.to_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        _ => {
            if let Some(rest) = name.strip_prefix("RTMIN+") {
                34 + rest
                    .parse::<i32>()
                    .map_err(|_| Error::InvalidArgument(format!("Invalid signal: {s}")))?
            } else {
                return Err(Error::InvalidArgument(format!("Invalid signal: {s}")));
            }
        }
    };
    Ok(n)
}

impl Engine {
    async fn shim(&self, h: &ContainerHandle) -> Result<ShimClient> {
        ShimClient::connect(&self.config().container_state_dir(&h.id))
            .await
            .map_err(|e| Error::Internal(format!("connect to shim of {}: {e}", h.id)))
    }

    /// Waits until the exit generation passes `gen` or the timeout elapses.
    async fn wait_exit_after(h: &ContainerHandle, gen: u64, timeout: Option<Duration>) -> bool {
        let mut rx = h.exits.subscribe();
        let fut = rx.wait_for(|e| e.generation > gen);
        match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.is_ok(),
            None => fut.await.is_ok(),
        }
    }

    pub async fn stop_container(
        &self,
        name: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let h = self.lookup(name)?;
        let _op = h.op.lock().await;
        self.stop_locked(&h, signal, timeout).await
    }

    pub(crate) async fn stop_locked(
        &self,
        h: &Arc<ContainerHandle>,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        // Read the exit generation before the state: an exit recorded in between then still
        // counts as "after", so the waits below cannot miss it.
        let gen = h.exits.borrow().generation;
        let c = h.snapshot();
        if c.state.status() == Status::Restarting {
            h.update(|r| {
                r.manually_stopped = true;
                r.state.status = Some(Status::Exited);
            });
            self.persist_off(h).await?;
            return Ok(());
        }
        if !c.state.status().can_kill() {
            return Err(Error::NotModified("container already stopped".into()));
        }
        let sig = parse_signal(
            signal
                .filter(|s| !s.is_empty())
                .or(c.config.stop_signal.as_deref())
                .unwrap_or("SIGTERM"),
        )?;
        let secs = timeout.or(c.config.stop_timeout).unwrap_or(10);
        h.update(|r| r.manually_stopped = true);
        self.persist_off(h).await?;
        let client = match self.shim(h).await {
            Ok(c) => c,
            // No shim: the process already exited and the monitor is recording it.
            Err(e) => {
                if Self::wait_exit_after(h, gen, Some(Duration::from_secs(5))).await {
                    self.emit_container(h, "stop", BTreeMap::new());
                    return Ok(());
                }
                return Err(e);
            }
        };
        if c.state.status() == Status::Paused {
            // A frozen process cannot handle its stop signal: thaw it first, as dockerd does.
            let _ = client.resume().await;
        }
        let _ = client.kill(sig, false).await;
        self.emit_container(h, "kill", sig_attr(sig));
        let graceful = if secs < 0 {
            None
        } else {
            Some(Duration::from_secs(secs as u64))
        };
        if !Self::wait_exit_after(h, gen, graceful).await {
            let _ = client.kill(9, true).await;
            self.emit_container(h, "kill", sig_attr(9));
            if !Self::wait_exit_after(h, gen, Some(Duration::from_secs(30))).await {
                return Err(Error::Internal(format!(
                    "container {} did not exit after SIGKILL",
                    h.id
                )));
            }
        }
        self.emit_container(h, "stop", BTreeMap::new());
        Ok(())
    }

    pub async fn kill_container(&self, name: &str, signal: Option<&str>) -> Result<()> {
        // dockerd's kill route wraps every error, "No such container" included.
        let h = self.lookup(name).map_err(|e| match e {
            Error::NotFound(m) => Error::NotFound(format!("Cannot kill container: {name}: {m}")),
            e => e,
        })?;
        let sig = parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("SIGKILL"))?;
        let _op = h.op.lock().await;
        let gen = h.exits.borrow().generation;
        let c = h.snapshot();
        if !c.state.status().can_kill() {
            return Err(Error::Conflict(format!(
                "Cannot kill container: {name}: Container {} is not running",
                c.id
            )));
        }
        if sig == 9 || sig == 15 || sig == 2 {
            h.update(|r| r.manually_stopped = true);
            self.persist_off(&h).await?;
        }
        let client = match self.shim(&h).await {
            Ok(c) => c,
            Err(e) => {
                if Self::wait_exit_after(&h, gen, Some(Duration::from_secs(5))).await {
                    return Err(Error::Conflict(format!(
                        "Cannot kill container: {name}: Container {} is not running",
                        c.id
                    )));
                }
                return Err(e);
            }
        };
        client
            .kill(sig, sig == 9)
            .await
            .map_err(|e| Error::Internal(format!("Cannot kill container: {name}: {e}")))?;
        self.emit_container(&h, "kill", sig_attr(sig));
        if sig == 9 {
            // docker kill returns once a SIGKILLed container is gone.
            Self::wait_exit_after(&h, gen, Some(Duration::from_secs(10))).await;
        }
        Ok(())
    }

    pub async fn restart_container(
        &self,
        name: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let h = self.lookup(name)?;
        let _op = h.op.lock().await;
        match self.stop_locked(&h, signal, timeout).await {
            Ok(()) | Err(Error::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        self.start_locked(&h).await?;
        self.emit_container(&h, "restart", BTreeMap::new());
        Ok(())
    }

    pub async fn pause_container(&self, name: &str) -> Result<()> {
        let h = self.lookup(name)?;
        let _op = h.op.lock().await;
        match h.status() {
            Status::Running => {}
            Status::Paused => {
                return Err(Error::Conflict(format!(
                    "Container {} is already paused",
                    h.id
                )))
            }
            _ => {
                return Err(Error::Conflict(format!(
                    "Container {} is not running",
                    h.id
                )))
            }
        }
        self.shim(&h)
            .await?
            .pause()
            .await
            .map_err(|e| Error::Internal(format!("cannot pause container {}: {e}", h.id)))?;
        h.update(|r| r.state.status = Some(Status::Paused));
        self.persist(&h)?;
        self.emit_container(&h, "pause", BTreeMap::new());
        Ok(())
    }

    pub async fn unpause_container(&self, name: &str) -> Result<()> {
        let h = self.lookup(name)?;
        let _op = h.op.lock().await;
        if h.status() != Status::Paused {
            return Err(Error::Conflict(format!("Container {} is not paused", h.id)));
        }
        self.shim(&h)
            .await?
            .resume()
            .await
            .map_err(|e| Error::Internal(format!("cannot unpause container {}: {e}", h.id)))?;
        h.update(|r| r.state.status = Some(Status::Running));
        self.persist(&h)?;
        self.emit_container(&h, "unpause", BTreeMap::new());
        Ok(())
    }

    pub async fn resize_container(&self, name: &str, h_: u16, w: u16) -> Result<()> {
        let h = self.lookup(name)?;
        if !h.status().can_kill() {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                h.id
            )));
        }
        self.shim(&h)
            .await?
            .resize(h_, w)
            .await
            .map_err(|e| Error::Internal(format!("resize: {e}")))
    }
}

fn sig_attr(sig: i32) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("signal".into(), sig.to_string());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM").expect("valid"), 15);
        assert_eq!(parse_signal("kill").expect("valid"), 9);
        assert_eq!(parse_signal("10").expect("valid"), 10);
        assert_eq!(parse_signal("SIGRTMIN+3").expect("valid"), 37);
        assert!(parse_signal("SIGBOGUS").is_err());
        assert!(parse_signal("0").is_err());
    }
}
