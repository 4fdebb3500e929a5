//! berth-engine: the daemon core, with a typed Rust API and no HTTP.
//!
//! [`Engine`] owns the metadata store, the image store, the in-memory container table and
//! the event bus. berth-api turns Engine API requests into calls on it; tests call it
//! directly. Container creation itself never happens in this process: each container gets
//! its own `berth-shim`, which drives the OCI runtime (see berth-runtime).

#![recursion_limit = "256"]

pub mod build;
pub mod config;
pub mod container;
pub mod distribution;
pub mod error;
pub mod events;
pub mod exec;
pub mod filters;
pub mod images;
pub mod models;
pub mod names;
pub mod network;
pub mod store;
pub mod system;
pub mod util;
pub mod volumes;

pub use config::EngineConfig;
pub use error::{Error, ErrorKind, Result};

use berth_image::ImageStore;
use container::ContainerHandle;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub cfg: EngineConfig,
    pub store: store::Store,
    pub images: ImageStore,
    pub containers: RwLock<HashMap<String, Arc<ContainerHandle>>>,
    pub names: names::NameIndex,
    pub execs: std::sync::Mutex<HashMap<String, Arc<exec::ExecHandle>>>,
    pub events: events::EventBus,
    pub network: network::NetworkService,
    pub volumes: berth_volume::VolumeStore,
    pub registry: berth_distribution::Client,
    /// Sealed copies of the OCI runtime binaries handed to shims (berth_runtime::sealed).
    pub sealed: berth_runtime::sealed::SealedRuntimes,
    pub migration_warmer: berth_runtime::cgroups::MigrationWarmer,
    /// A shim started ahead of the next container start (berth_runtime::shim::SpareShim),
    /// with the sealed runtime it holds.
    pub spare_shim: std::sync::Mutex<Option<container::start::SpareSlot>>,
}

impl Engine {
    /// Opens (or creates) the data and exec roots and reconciles what a previous run left.
    pub async fn open(cfg: EngineConfig) -> Result<Engine> {
        for dir in [
            cfg.data_root.clone(),
            cfg.data_root.join("containers"),
            cfg.exec_root.join("containers"),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        }
        // Data dirs of removed containers whose background delete a crash cut short.
        if let Ok(entries) = std::fs::read_dir(cfg.data_root.join("containers")) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-rm-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let store = store::Store::open(&cfg.data_root.join("berth.redb"))?;
        let images = ImageStore::open(&cfg.data_root, store.database())?;
        let volumes = berth_volume::VolumeStore::open(&cfg.data_root, store.database())?;
        let network = network::NetworkService::open(&cfg).await?;
        let registry = distribution::registry_client(&cfg);
        let engine = Engine {
            inner: Arc::new(Inner {
                cfg,
                store,
                images,
                containers: RwLock::new(HashMap::new()),
                names: names::NameIndex::default(),
                execs: std::sync::Mutex::new(HashMap::new()),
                events: events::EventBus::new(),
                network,
                volumes,
                registry,
                sealed: Default::default(),
                migration_warmer: berth_runtime::cgroups::MigrationWarmer::host(),
                spare_shim: std::sync::Mutex::new(None),
            }),
        };
        engine.restore().await?;
        engine.sweep_exec_root();
        Ok(engine)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }

    /// After restore: the per-container folders of the exec root (bundles, /etc files)
    /// whose container is gone, as a crash between a removal's steps leaves them.
    fn sweep_exec_root(&self) {
        let known: std::collections::HashSet<String> = self
            .inner
            .containers
            .read()
            .expect("container table lock poisoned")
            .keys()
            .cloned()
            .collect();
        for dir in ["containers", "etc"] {
            let Ok(entries) = std::fs::read_dir(self.config().exec_root.join(dir)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.len() == 64 && !known.contains(&name) {
                    tracing::info!(path = %e.path().display(), "removing a leftover of a removed container");
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    pub fn images(&self) -> &ImageStore {
        &self.inner.images
    }

    pub fn events(&self) -> &events::EventBus {
        &self.inner.events
    }

    /// Finds a container by full id, name (with or without '/') or unique id prefix.
    pub fn lookup(&self, name_or_id: &str) -> Result<Arc<ContainerHandle>> {
        let map = self
            .inner
            .containers
            .read()
            .expect("container table lock poisoned");
        if let Some(h) = map.get(name_or_id) {
            return Ok(h.clone());
        }
        if let Some(id) = self.inner.names.get(name_or_id) {
            if let Some(h) = map.get(&id) {
                return Ok(h.clone());
            }
        }
        if !name_or_id.is_empty() {
            let matches: Vec<_> = map
                .values()
                .filter(|h| h.id.starts_with(name_or_id))
                .collect();
            match matches.len() {
                1 => return Ok(matches[0].clone()),
                0 => {}
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "multiple IDs found with provided prefix: {name_or_id}"
                    )))
                }
            }
        }
        Err(Error::no_such_container(name_or_id))
    }

    pub(crate) fn all_handles(&self) -> Vec<Arc<ContainerHandle>> {
        self.inner
            .containers
            .read()
            .expect("container table lock poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Writes the container's record to the store.
    ///
    /// Writes are serialised per container and each takes its snapshot inside that lock,
    /// so the last write always carries the newest state, whichever threads the callers
    /// run on (a start's write can finish after the exit it raced with, a health probe's
    /// after a stop). Once the record is deleted ([`Engine::delete_record`]) nothing
    /// writes it back.
    pub(crate) fn persist(&self, h: &ContainerHandle) -> Result<()> {
        let stored = h.stored.lock().expect("container store lock poisoned");
        if *stored == container::StoreState::Deleted {
            return Ok(());
        }
        let rec = h.snapshot();
        self.inner.store.put(store::CONTAINERS, &rec.id, &rec)
    }

    /// Deletes the container's record from the store, under the same lock as
    /// [`Engine::persist`], and marks it deleted so no later write brings it back. `lazily`:
    /// without waiting for the disk (durable with the next durable commit), for records
    /// whose return after a crash restore deals with anyway.
    pub(crate) fn delete_record(&self, h: &ContainerHandle, lazily: bool) -> Result<()> {
        let mut stored = h.stored.lock().expect("container store lock poisoned");
        if lazily {
            self.inner.store.delete_lazily(store::CONTAINERS, &h.id)?;
        } else {
            self.inner.store.delete(store::CONTAINERS, &h.id)?;
        }
        *stored = container::StoreState::Deleted;
        Ok(())
    }

    /// [`Engine::persist`] on a blocking thread: a commit waits for the disk (fsync), and
    /// an async worker stuck on it also stalls the tasks queued behind it.
    pub(crate) async fn persist_off(&self, h: &Arc<ContainerHandle>) -> Result<()> {
        let h = h.clone();
        self.blocking(move |e| e.persist(&h)).await
    }

    /// Runs blocking image-store work off the async threads.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let e = self.clone();
        tokio::task::spawn_blocking(move || f(&e))
            .await
            .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))?
    }
}
