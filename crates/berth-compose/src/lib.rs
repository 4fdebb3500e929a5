//! berth-compose: the Compose Specification for berth.
//!
//! Two halves. The loader ([`loader`], with [`interpolate`], [`dotenv`], [`schema`],
//! [`normalize`], [`merge`]) is pure: it turns compose files plus the environment into one
//! normalized model (the shape `docker compose config` prints). The runner ([`runner`])
//! drives berthd through the Engine API only ([`berth_client::Client`]), naming and
//! labelling containers, networks and volumes exactly as docker compose v2 does, so that
//! either tool can manage a project the other created.

pub mod config;
pub mod dotenv;
pub mod interpolate;
pub mod loader;
pub mod merge;
pub mod normalize;
pub mod progress;
pub mod runner;
pub mod schema;
pub mod spec;
pub mod yaml;

pub use loader::{load, LoadError, LoadOptions, Project};
