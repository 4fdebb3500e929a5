//! `wait` with Docker's conditions: not-running (default), next-exit, removed.

use super::state::Status;
use crate::{Engine, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: Option<&str>) -> Result<WaitCondition> {
        match s.unwrap_or("") {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(Error::InvalidArgument(format!(
                "invalid condition: \"{other}\""
            ))),
        }
    }
}

impl Engine {
    /// Resolves once the condition holds; returns the exit code then.
    /// The subscription is taken before the state is read so no exit is missed.
    pub async fn wait_container(&self, name: &str, cond: WaitCondition) -> Result<i64> {
        let h = self.lookup(name)?;
        let mut rx = h.exits.subscribe();
        let start = rx.borrow().clone();
        let status = h.status();
        if cond == WaitCondition::NotRunning
            && !matches!(
                status,
                Status::Running | Status::Paused | Status::Restarting
            )
        {
            return Ok(h.snapshot().state.exit_code);
        }
        let ev = rx
            .wait_for(|e| match cond {
                WaitCondition::Removed => e.removed,
                _ => e.generation > start.generation || e.removed,
            })
            .await
            .map_err(|_| Error::Internal("container went away while waiting".into()))?
            .clone();
        Ok(ev.exit_code)
    }
}
