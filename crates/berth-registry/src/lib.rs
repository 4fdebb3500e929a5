//! berth-registry: an OCI Distribution Spec v1.1 registry server, as a library with a thin
//! binary on top.
//!
//! Layers, top to bottom:
//! - [`server`]: listeners, TLS, the upload-expiry task; [`server::serve`] runs it all.
//! - [`http`]: routes and wire details (headers, status codes, auth challenges);
//!   [`http::router`] gives an `axum::Router` to embed, e.g. in tests.
//! - [`registry`] and [`gc`]: the domain logic with no HTTP in it.
//! - [`storage`]: the [`storage::Storage`] trait, the filesystem driver and the
//!   conformance suite every driver must pass.
//! - [`auth`], [`config`], [`manifest`], [`names`], [`digest`], [`error`]: supporting parts.

pub mod auth;
pub mod config;
pub mod digest;
pub mod error;
pub mod gc;
pub mod http;
pub mod manifest;
pub mod names;
pub mod registry;
pub mod server;
pub mod storage;

pub use config::Config;
pub use error::RegistryError;
pub use http::{router, AppState};
pub use registry::Registry;
pub use server::{build_state, serve, serve_state, serve_with_shutdown, ServeError};
