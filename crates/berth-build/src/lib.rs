//! berth-build: the front end and planner of berth's image builder.
//!
//! - [`dockerfile`]: Dockerfile parsing (BuildKit-conformant syntax tree, typed instructions)
//!   and variable expansion;
//! - [`shell`]: BuildKit's word processing (quotes, escapes, `$VAR` forms);
//! - [`dockerignore`]: `.dockerignore` reading and matching with docker's rules;
//! - [`plan`]: stages, their dependency graph, what a `--target` needs, parallel levels, and
//!   step cache keys.
//!
//! Everything here is pure: no filesystem writes, no containers. The engine drives execution.

pub mod dockerfile;
pub mod dockerignore;
pub mod goquote;
pub mod plan;
pub mod shell;
