//! berth-image: everything about images below the engine.
//!
//! - [`reference`]: docker reference parsing and normalisation
//! - [`config`]: the image config JSON
//! - [`changes`]: `--change` instructions for import
//! - [`content`]: the digest-addressed blob store
//! - [`apply`]: safe layer unpacking with whiteouts and diff ids
//! - [`diff`]: container upper dir -> layer tar (commit, build steps)
//! - [`snapshot`]: overlayfs snapshots keyed by chain id, container layers, mounts
//! - [`store`]: the image store (records, tags, import, delete, history)
//! - [`archive`]: `docker save` / `docker load` (docker-archive and OCI layout)
//!
//! The API is synchronous; the engine calls it from `spawn_blocking`.

pub mod apply;
pub mod archive;
pub mod changes;
pub mod config;
pub mod content;
pub mod diff;
pub mod digest;
pub mod error;
pub mod reference;
pub mod snapshot;
pub mod store;

pub use config::{ContainerConfig, History, ImageConfigFile, RootFs};
pub use error::{Error, ErrorKind};
pub use reference::{Reference, ReferenceError};
pub use snapshot::RwLayer;
pub use store::{
    CommitOptions, HistoryItem, Image, ImageRecord, ImageStore, ImportOptions, LayerRecord,
    LayerSource, LoadedImage, UnpackedLayer,
};
