//! berth-runtime: everything between a container's configuration and a running process.
//!
//! - [`spec`] turns berth's container options into an OCI runtime `config.json` with Docker's
//!   defaults (capabilities, seccomp, masked and read-only paths, mounts, devices).
//! - [`user`] resolves a Docker `--user` string against the image's `/etc/passwd` and
//!   `/etc/group` without ever leaving the rootfs.
//! - [`shim`] is the per-container supervisor (`berth-shim`) and its async client.
//! - [`sealed`] keeps one sealed in-memory copy of the runtime binary for all shims.
//! - [`preload`] starts a runtime process before its command, off the start path.
//! - [`seccomp_cache`] keeps crun's compiled seccomp filters, one per profile.
//! - [`cgroups`] detects the cgroup layout and reads stats / applies live updates.

pub mod cgroups;
pub mod execroot;
pub mod preload;
pub mod sealed;
pub mod seccomp_cache;
pub mod shim;
pub mod spec;
pub mod user;

pub use cgroups::{CgroupError, CgroupMode, CgroupStats};
pub use shim::client::{read_exit_file, shim_alive, ShimClient};
pub use shim::{
    spawn_shim, spawn_shim_with, ExecSpec, ExecState, ExitInfo, ShimConfig, ShimError, ShimState,
    ShimStatus,
};
pub use spec::{
    generate, write_bundle, Mount, NetworkNs, Resources, SeccompMode, SpecError, SpecOptions,
    Ulimit,
};
pub use user::{resolve_user, ResolvedUser, UserError};
