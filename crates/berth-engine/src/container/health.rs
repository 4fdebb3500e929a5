//! Health checks: `Config.Healthcheck` probes run on schedule in a tokio task per running
//! container, through the engine's own exec path (so they join the container's namespaces
//! and show up as `exec_*` events, as dockerd's do).
//!
//! Docker's rules, kept here in one place ([`apply_result`]): the state starts as
//! `starting`; a passing probe makes it `healthy` and resets the failing streak; a failing
//! one increments the streak unless the container is still `starting` and within its start
//! period, and `retries` consecutive failures make it `unhealthy`. During the start period
//! probes run every `start_interval` instead of `interval`. A probe that outlives `timeout`
//! is killed and recorded with exit code -1. The log keeps the last five results, each
//! output cut at 4 KiB. Every status change emits `health_status: <status>`. The task ends
//! when the container exits (it watches the handle's exit channel) and skips its turn while
//! the container is paused. `State.Health` is persisted with the record after every
//! probe; after a berthd restart the task resumes from it ([`Engine::resume_health`]).

use super::state::Status;
use super::ContainerHandle;
use crate::exec::ExecConfig;
use crate::models::{Health, HealthConfig, HealthLog};
use crate::{util, Engine};
use berth_runtime::shim::ShimClient;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// Docker keeps this many results in `State.Health.Log`.
const MAX_LOG_ENTRIES: usize = 5;
/// And this many bytes of each probe's output.
const MAX_OUTPUT: usize = 4096;

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

/// A health check with Docker's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub cmd: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: i64,
}

fn dur(ns: Option<i64>, default: Duration) -> Duration {
    match ns {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

impl Probe {
    /// The probe to run, or `None` when there is none (absent, empty, or `NONE`).
    pub fn from_config(hc: Option<&HealthConfig>, shell: Option<&[String]>) -> Option<Probe> {
        let hc = hc?;
        let test = hc.test.as_ref()?;
        let cmd = match test.first().map(String::as_str) {
            Some("CMD") => test[1..].to_vec(),
            Some("CMD-SHELL") => {
                let mut sh: Vec<String> = shell
                    .filter(|s| !s.is_empty())
                    .map(|s| s.to_vec())
                    .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                sh.push(test[1..].join(" "));
                sh
            }
            _ => return None,
        };
        if cmd.is_empty() {
            return None;
        }
        Some(Probe {
            cmd,
            interval: dur(hc.interval, DEFAULT_INTERVAL),
            timeout: dur(hc.timeout, DEFAULT_TIMEOUT),
            start_period: dur(hc.start_period, Duration::ZERO),
            start_interval: dur(hc.start_interval, DEFAULT_START_INTERVAL),
            retries: hc.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES),
        })
    }
}

/// Folds one probe result into the health state; returns the new status if it changed.
pub fn apply_result(
    h: &mut Health,
    probe: &Probe,
    result: HealthLog,
    since_start: Duration,
) -> Option<String> {
    let old = h.status.clone();
    if result.exit_code == 0 {
        h.failing_streak = 0;
        h.status = HEALTHY.into();
    } else {
        let in_grace = h.status == STARTING && since_start < probe.start_period;
        if !in_grace {
            h.failing_streak += 1;
            if h.failing_streak >= probe.retries {
                h.status = UNHEALTHY.into();
            }
        }
    }
    h.log.push(result);
    if h.log.len() > MAX_LOG_ENTRIES {
        let drop = h.log.len() - MAX_LOG_ENTRIES;
        h.log.drain(..drop);
    }
    (h.status != old).then(|| h.status.clone())
}

/// Payloads of Docker's multiplexed frames, up to `limit` bytes.
pub fn demux(buf: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= 8 {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + len).min(rest.len());
        out.extend_from_slice(&rest[8..end]);
        rest = &rest[end..];
    }
    out.truncate(limit);
    out
}

/// How long ago a container started, from its `StartedAt`; zero when unknown.
fn running_for(started_at: Option<&str>) -> Duration {
    started_at
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .to_std()
                .ok()
        })
        .unwrap_or(Duration::ZERO)
}

impl Engine {
    /// Starts the probe task of a container that just started. Resets the health state to
    /// `starting`; a container without a health check gets none.
    pub(crate) fn spawn_health(&self, h: Arc<ContainerHandle>) {
        self.health_task(h, false);
    }

    /// Resumes the probe task of a container found running after a daemon restart. The
    /// persisted `State.Health` (status, failing streak, log) is kept, as dockerd keeps it
    /// across a live restore, and the start period counts from the container's `StartedAt`,
    /// not from the daemon's start.
    pub(crate) fn resume_health(&self, h: Arc<ContainerHandle>) {
        self.health_task(h, true);
    }

    fn health_task(&self, h: Arc<ContainerHandle>, resume: bool) {
        let c = h.snapshot();
        let Some(probe) =
            Probe::from_config(c.config.healthcheck.as_ref(), c.config.shell.as_deref())
        else {
            if c.state.health.is_some() {
                h.update(|r| r.state.health = None);
                let _ = self.persist(&h);
            }
            return;
        };
        let kept = resume
            && c.state
                .health
                .as_ref()
                .is_some_and(|hl| !hl.status.is_empty());
        if !kept {
            h.update(|r| {
                let hl = r.state.health.get_or_insert_with(Health::default);
                hl.status = STARTING.into();
                hl.failing_streak = 0;
            });
            let _ = self.persist(&h);
        }
        let running_for = if resume {
            running_for(c.state.started_at.as_deref())
        } else {
            Duration::ZERO
        };
        let engine = self.clone();
        let mut exits = h.exits.subscribe();
        exits.borrow_and_update();
        tokio::spawn(async move {
            let now = std::time::Instant::now();
            let started = now.checked_sub(running_for).unwrap_or(now);
            loop {
                let starting = h
                    .snapshot()
                    .state
                    .health
                    .as_ref()
                    .is_some_and(|hl| hl.status == STARTING);
                let wait = if starting && started.elapsed() < probe.start_period {
                    probe.start_interval
                } else {
                    probe.interval
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = exits.changed() => return,
                }
                match h.status() {
                    Status::Running => {}
                    Status::Paused => continue,
                    _ => return,
                }
                let result = engine.run_probe(&h, &probe).await;
                if exits.has_changed().unwrap_or(true) || h.status() != Status::Running {
                    return;
                }
                let changed = h.update(|r| {
                    let hl = r.state.health.get_or_insert_with(Health::default);
                    apply_result(hl, &probe, result, started.elapsed())
                });
                if let Err(e) = engine.persist(&h) {
                    tracing::warn!(id = %h.id, "persist health: {e}");
                }
                if let Some(status) = changed {
                    engine.emit_container(&h, &format!("health_status: {status}"), BTreeMap::new());
                }
            }
        });
    }

    /// Runs the probe once through exec and returns its log entry.
    async fn run_probe(&self, h: &ContainerHandle, probe: &Probe) -> HealthLog {
        let start = util::now_rfc3339();
        let fail = |code: i64, output: String| HealthLog {
            start: start.clone(),
            end: util::now_rfc3339(),
            exit_code: code,
            output,
        };
        let cfg = ExecConfig {
            attach_stdout: true,
            attach_stderr: true,
            cmd: Some(probe.cmd.clone()),
            ..Default::default()
        };
        let exec_id = match self.exec_create(&h.id, cfg) {
            Ok(id) => id,
            Err(e) => return fail(-1, e.to_string()),
        };
        let result = tokio::time::timeout(probe.timeout, self.probe_io(&exec_id)).await;
        let log = match result {
            Ok(Ok((code, out))) => HealthLog {
                start: start.clone(),
                end: util::now_rfc3339(),
                exit_code: code,
                output: String::from_utf8_lossy(&out).into_owned(),
            },
            Ok(Err(msg)) => fail(-1, msg),
            Err(_) => {
                let dir = self.config().container_state_dir(&h.id);
                if let Ok(c) = ShimClient::connect(&dir).await {
                    let _ = c.exec_kill(&exec_id, libc::SIGKILL).await;
                }
                fail(
                    -1,
                    format!("Health check exceeded timeout ({:?})", probe.timeout),
                )
            }
        };
        // dockerd does not keep health-check execs around for `exec inspect`.
        self.inner
            .execs
            .lock()
            .expect("exec table lock")
            .remove(&exec_id);
        log
    }

    /// Starts the exec, collects its output and waits for its exit code.
    async fn probe_io(&self, exec_id: &str) -> std::result::Result<(i64, Vec<u8>), String> {
        let stream = self
            .exec_start(exec_id, false)
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        if let Some(mut s) = stream {
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        // Keep reading to EOF so the process never blocks on a full pipe.
                        if raw.len() < 2 * MAX_OUTPUT + 64 {
                            raw.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
        }
        let handle = self
            .inner
            .execs
            .lock()
            .expect("exec table lock")
            .get(exec_id)
            .cloned()
            .ok_or_else(|| format!("exec {exec_id} vanished"))?;
        loop {
            let st = handle.status.lock().expect("exec status lock").clone();
            if !st.running {
                return Ok((st.exit_code.unwrap_or(-1), demux(&raw, MAX_OUTPUT)));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> Probe {
        Probe::from_config(
            Some(&HealthConfig {
                test: Some(vec!["CMD-SHELL".into(), "true".into()]),
                retries: Some(2),
                start_period: Some(10_000_000_000),
                ..Default::default()
            }),
            None,
        )
        .expect("probe")
    }

    fn result(code: i64) -> HealthLog {
        HealthLog {
            exit_code: code,
            ..Default::default()
        }
    }

    #[test]
    fn config_defaults_and_none() {
        let p = probe();
        assert_eq!(p.cmd, ["/bin/sh", "-c", "true"]);
        assert_eq!(p.interval, DEFAULT_INTERVAL);
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
        assert_eq!(p.start_period, Duration::from_secs(10));
        let none = HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        };
        assert_eq!(Probe::from_config(Some(&none), None), None);
        assert_eq!(Probe::from_config(None, None), None);
        let cmd = HealthConfig {
            test: Some(vec!["CMD".into(), "ls".into(), "/".into()]),
            ..Default::default()
        };
        assert_eq!(
            Probe::from_config(Some(&cmd), None).expect("cmd").cmd,
            ["ls", "/"]
        );
    }

    #[test]
    fn transitions() {
        let p = probe();
        let mut h = Health {
            status: STARTING.into(),
            ..Default::default()
        };
        // failures within the start period do not count
        assert_eq!(
            apply_result(&mut h, &p, result(1), Duration::from_secs(1)),
            None
        );
        assert_eq!(h.failing_streak, 0);
        assert_eq!(
            apply_result(&mut h, &p, result(0), Duration::from_secs(2)),
            Some(HEALTHY.to_string())
        );
        assert_eq!(
            apply_result(&mut h, &p, result(1), Duration::from_secs(3)),
            None
        );
        assert_eq!(h.failing_streak, 1);
        assert_eq!(
            apply_result(&mut h, &p, result(1), Duration::from_secs(4)),
            Some(UNHEALTHY.to_string())
        );
        for i in 0..10 {
            apply_result(&mut h, &p, result(i), Duration::from_secs(20));
        }
        assert_eq!(h.log.len(), MAX_LOG_ENTRIES);
        assert_eq!(h.log[4].exit_code, 9);
    }

    #[test]
    fn running_time_from_started_at() {
        assert_eq!(running_for(None), Duration::ZERO);
        assert_eq!(running_for(Some("not a time")), Duration::ZERO);
        let ago = (chrono::Utc::now() - chrono::Duration::seconds(90)).to_rfc3339();
        let d = running_for(Some(&ago));
        assert!(
            d >= Duration::from_secs(89) && d < Duration::from_secs(100),
            "{d:?}"
        );
        let future = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc3339();
        assert_eq!(running_for(Some(&future)), Duration::ZERO);
    }

    #[test]
    fn demux_frames() {
        let mut b = vec![1, 0, 0, 0, 0, 0, 0, 3];
        b.extend_from_slice(b"abc");
        b.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 2]);
        b.extend_from_slice(b"de");
        assert_eq!(demux(&b, 100), b"abcde");
        assert_eq!(demux(&b, 4), b"abcd");
    }
}
