//! Containers: the persisted record, its in-memory handle, and one file per verb.
//!
//! A container lives as a [`Container`] record in the metadata store and as a
//! [`ContainerHandle`] in memory. Lifecycle verbs (start, stop, kill, remove, ...) take the
//! handle's `op` lock so two verbs on one container never interleave; the exit monitor does
//! not take it (a `stop` holding the lock waits for the monitor to observe the exit).

pub mod archive;
pub mod attach;
pub mod changes;
pub mod commit;
pub mod create;
pub mod export;
pub mod health;
pub mod inspect;
pub mod links;
pub mod list;
pub mod logs;
pub mod monitor;
pub mod mounts;
pub mod remove;
pub mod spec;
pub mod start;
pub mod state;
pub mod stats;
pub mod stop;
pub mod top;
pub mod update;
pub mod wait;

use crate::models::{ContainerConfig, Health, HostConfig};
use serde::{Deserialize, Serialize};
use state::Status;
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::sync::{oneshot, watch};

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct ContainerState {
    pub status: Option<Status>,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub health: Option<Health>,
}

impl ContainerState {
    pub fn status(&self) -> Status {
        self.status.unwrap_or(Status::Created)
    }
}

/// The persisted form of a container.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Container {
    pub id: String,
    /// With Docker's leading slash: "/web".
    pub name: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    /// Image id ("sha256:...").
    pub image: String,
    pub state: ContainerState,
    pub restart_count: i64,
    /// Set by stop/kill from the user so restart policies do not revive it.
    pub manually_stopped: bool,
    pub log_path: PathBuf,
    pub hostname_path: PathBuf,
    pub hosts_path: PathBuf,
    pub resolv_conf_path: PathBuf,
    /// cgroups path handed to the runtime.
    pub cgroups_path: String,
    /// Binds, volumes and tmpfs mounts resolved at create (see `mounts`).
    #[serde(default)]
    pub mount_points: Vec<mounts::MountPoint>,
}

impl Container {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    pub fn bare_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }
}

/// What an exit looked like, published to waiters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExitEvent {
    /// Increments on every exit, so `next-exit` waiters can tell a new exit from an old one.
    pub generation: u64,
    pub exit_code: i64,
    pub error: Option<String>,
    pub removed: bool,
}

/// An attach request made before the container started; start() connects it to the shim
/// before the process runs, so no output is lost.
pub struct PendingAttach {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub reply: oneshot::Sender<crate::Result<tokio::net::UnixStream>>,
}

pub struct ContainerHandle {
    pub id: String,
    pub record: Mutex<Container>,
    pub op: tokio::sync::Mutex<()>,
    pub exits: watch::Sender<ExitEvent>,
    pub pending_attaches: Mutex<Vec<PendingAttach>>,
    /// Held across each metadata write of this container; `Deleted` once its record is
    /// gone. See [`crate::Engine::persist`].
    pub stored: Mutex<StoreState>,
}

/// Whether a container's record is still in the store (see [`ContainerHandle::stored`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    #[default]
    Present,
    Deleted,
}

impl ContainerHandle {
    pub fn new(c: Container) -> ContainerHandle {
        let (tx, _) = watch::channel(ExitEvent {
            exit_code: c.state.exit_code,
            ..Default::default()
        });
        ContainerHandle {
            id: c.id.clone(),
            record: Mutex::new(c),
            op: tokio::sync::Mutex::new(()),
            exits: tx,
            pending_attaches: Mutex::new(Vec::new()),
            stored: Mutex::new(StoreState::Present),
        }
    }

    pub fn snapshot(&self) -> Container {
        self.record
            .lock()
            .expect("container record lock poisoned")
            .clone()
    }

    pub fn status(&self) -> Status {
        self.record
            .lock()
            .expect("container record lock poisoned")
            .state
            .status()
    }

    pub fn update<R>(&self, f: impl FnOnce(&mut Container) -> R) -> R {
        let mut g = self.record.lock().expect("container record lock poisoned");
        f(&mut g)
    }
}
