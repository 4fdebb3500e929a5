//! berth-distribution: the registry client behind `docker pull`, `push` and `login`.
//!
//! - [`client`]: endpoints (Docker Hub mapping, HTTPS or HTTP for insecure registries,
//!   mirrors), the challenge-driven auth flow (Basic, Bearer tokens cached per scope),
//!   and the Distribution API calls
//! - [`pull`]: resolve a reference (index → platform → manifest), stream blobs into the
//!   content store, register the image
//! - [`push`]: upload layers (skip, mount or upload), config and manifest
//! - [`auth`]: credentials (`X-Registry-Auth`, `~/.docker/config.json`) and challenges
//! - [`manifest`]: OCI and Docker manifest models, media types, platform selection
//! - [`progress`]: Docker's JSON progress messages
//!
//! Everything is async (tokio); image-store work that blocks runs in `spawn_blocking`.
//! Nothing here knows the Engine API: the engine turns [`progress::Progress`] into its
//! stream and [`Error`] into statuses.

pub mod auth;
pub mod client;
pub mod error;
pub mod manifest;
pub mod pargz;
pub mod progress;
pub mod pull;
pub mod push;

pub use auth::{Challenge, Credentials};
pub use client::{Client, ClientConfig, Endpoint};
pub use error::{Error, ErrorKind, Result};
pub use progress::Progress;
pub use pull::{PullOutcome, ResolvedPull};
pub use push::{push_header, PushOutcome};
