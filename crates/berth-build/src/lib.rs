//! berth-build: the front end and planner of berth's image builder.
//!
//! - [`dockerfile`]: Dockerfile parsing (BuildKit-conformant syntax tree, typed instructions)
//!   and variable expansion;
//! - [`shell`]: BuildKit's word processing (quotes, escapes, `$VAR` forms);
//! - [`dockerignore`]: `.dockerignore` reading and matching with docker's rules;
//! - [`plan`]: stages, their dependency graph, what a `--target` needs, parallel levels, and
//!   step cache keys;
//! - [`index`]: the build context as an in-memory index of the client's tar (hashed as
//!   it streams in, ignore rules applied, never unpacked for COPY);
//! - [`context`]: COPY/ADD's rules over a source tree (the index or a directory): source
//!   wildcards, content hashes, file copying into a mounted layer;
//! - [`remote`]: git build contexts (`remote=<git URL>#ref:subdir`), fetched with git;
//! - [`solver`]: runs a plan step by step, with the cache, behind the [`solver::Executor`]
//!   trait that the engine implements (containers, layers and stores live there).
//!
//! Parsing and planning are pure; only [`context`] and [`index`] touch the filesystem, and nothing here
//! starts containers.

pub mod context;
pub mod dockerfile;
pub mod dockerignore;
pub mod goquote;
pub mod index;
pub mod plan;
pub mod remote;
pub mod shell;
pub mod solver;
