//! The container state machine: one enum, the transitions it allows, in one place.
//!
//! ```text
//!  created ──start──> running ──exit──> exited ──start──> running
//!     │                │  ▲                │
//!     │             pause unpause          │
//!     │                ▼  │                │
//!     │               paused               │
//!     │     running ──exit + restart policy──> restarting ──> running
//!     └──────────────── remove ────────────┴──> removing ──> (gone) | dead
//! ```

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "created" => Status::Created,
            "running" => Status::Running,
            "paused" => Status::Paused,
            "restarting" => Status::Restarting,
            "removing" => Status::Removing,
            "exited" => Status::Exited,
            "dead" => Status::Dead,
            _ => return None,
        })
    }

    /// A process exists (or is about to): the container holds a shim.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }

    pub fn can_start(self) -> bool {
        matches!(self, Status::Created | Status::Exited)
    }

    pub fn can_pause(self) -> bool {
        self == Status::Running
    }

    pub fn can_unpause(self) -> bool {
        self == Status::Paused
    }

    pub fn can_kill(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }

    pub fn can_remove_without_force(self) -> bool {
        matches!(self, Status::Created | Status::Exited | Status::Dead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        assert!(Status::Created.can_start());
        assert!(Status::Exited.can_start());
        assert!(!Status::Running.can_start());
        assert!(!Status::Paused.can_start());
        assert!(Status::Running.can_pause());
        assert!(!Status::Paused.can_pause());
        assert!(Status::Paused.can_unpause());
        assert!(Status::Paused.can_kill());
        assert!(!Status::Exited.can_kill());
        assert!(!Status::Running.can_remove_without_force());
        assert!(Status::Created.can_remove_without_force());
    }

    #[test]
    fn names_round_trip() {
        for s in [
            Status::Created,
            Status::Running,
            Status::Paused,
            Status::Restarting,
            Status::Removing,
            Status::Exited,
            Status::Dead,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("bogus"), None);
    }
}
