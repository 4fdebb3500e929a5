//! The image store: image records and tags in redb, blobs in the content store, layers
//! in the snapshotter; import, lookup, tag/untag, delete with garbage collection, history
//! and container layers.
//!
//! Records live in two redb tables of the engine's shared database, both prefixed
//! `image_`: `image_images` (image id -> JSON [`ImageRecord`]) and `image_tags` (full
//! normalised reference -> image id). The config blob is the source of truth for the
//! image itself (its digest is the id); the record adds what is learnt while unpacking
//! (chain ids, blob digests, sizes).
//!
//! Concurrency: all writes to redb are single transactions. A reader/writer lock orders
//! work that creates references to layers (import, load, creating a container layer:
//! shared) against work that deletes layers (delete, prune: exclusive), so a delete never
//! removes a snapshot that an import in flight has just decided to reuse.

use crate::apply::{self, Compression};
use crate::changes::apply_changes;
use crate::config::{self, History, ImageConfigFile, RootFs};
use crate::content::ContentStore;
use crate::digest::{self, chain_ids, hex_part};
use crate::error::Error;
use crate::reference::Reference;
use crate::snapshot::{self, RwLayer, SnapshotMeta, Snapshotter, TempSnapshot};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("image_images");
const TAGS: TableDefinition<&str, &str> = TableDefinition::new("image_tags");
/// Uncompressed layer blob digest -> `<gzip digest> <gzip size>` of the gzip stream a
/// push made of it: deterministic, so it names the same bytes in every registry, and
/// lets a second push find the blob without compressing the layer again.
const COMPRESSED: TableDefinition<&str, &str> = TableDefinition::new("image_compressed");

/// OCI media type of an uncompressed layer.
pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// An image as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `sha256:<config digest>`.
    pub id: String,
    /// Familiar tags: `busybox:latest`.
    pub repo_tags: Vec<String>,
    /// Familiar digest references: `busybox@sha256:...`.
    pub repo_digests: Vec<String>,
    pub config: ImageConfigFile,
    /// Sum of the unpacked layer sizes.
    pub size: u64,
    /// RFC 3339: the config's `created`, or the time the image was stored.
    pub created: String,
    pub parent: String,
    /// The layers' diff ids, bottom first (what `docker inspect` shows as RootFS.Layers).
    pub layers: Vec<String>,
}

/// Options for [`ImageStore::import`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub reference: Option<Reference>,
    /// Dockerfile-style changes: `CMD ["/bin/sh"]`, `ENV A=b`, ...
    pub changes: Vec<String>,
    /// Commit message; default "Imported from -".
    pub message: Option<String>,
    /// `os/arch[/variant]`; default the host's.
    pub platform: Option<String>,
}

/// Options for [`ImageStore::commit_rw_layer`] (`docker commit`, and the builder's steps).
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub reference: Option<Reference>,
    /// Dockerfile-style changes applied on top of `config`.
    pub changes: Vec<String>,
    /// The history comment (`docker commit -m`).
    pub message: Option<String>,
    pub author: Option<String>,
    /// The history's `created_by` (the container's command, or the build step).
    pub created_by: Option<String>,
    /// The config of the new image; default the base image's.
    pub config: Option<crate::config::ContainerConfig>,
}

/// One image a `load` brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    pub id: String,
    /// Familiar tags it received.
    pub tags: Vec<String>,
}

/// One row of `docker history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    /// The image id for the top row, `<missing>` for the others (as docker shows).
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: u64,
    pub comment: String,
}

/// A layer blob already in the content store, as a manifest names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSource {
    pub blob: String,
    pub media_type: Option<String>,
}

/// A layer unpacked into a temporary snapshot, not yet published (removed on drop).
pub struct UnpackedLayer {
    tmp: TempSnapshot,
    stats: apply::ApplyStats,
}

/// What the store records for one layer of an image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    pub diff_id: String,
    pub chain_id: String,
    /// The blob in the content store (compressed as received, or the plain tar).
    pub blob: String,
    pub media_type: String,
    pub blob_size: u64,
    /// Unpacked content bytes.
    pub size: u64,
    /// Uncompressed tar length (needed to stream it into a save archive).
    pub tar_size: u64,
}

/// The stored record of an image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    pub id: String,
    pub layers: Vec<LayerRecord>,
    #[serde(default)]
    pub repo_digests: Vec<String>,
    pub created: String,
    #[serde(default)]
    pub parent: String,
}

impl ImageRecord {
    fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

struct Inner {
    data_root: PathBuf,
    db: Arc<redb::Database>,
    content: ContentStore,
    snapshots: Snapshotter,
    /// Shared by work that adds references to layers, exclusive for deletes.
    gc: RwLock<()>,
}

/// The image store; cheap to clone.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("No such image: {name}"))
}

impl ImageStore {
    /// Open the store under `data_root` (content/, snapshots/) using `db` for records.
    pub fn open(data_root: &Path, db: Arc<redb::Database>) -> Result<ImageStore, Error> {
        let content = ContentStore::open(&data_root.join("content"))?;
        content.clean_ingest()?;
        let snapshots = Snapshotter::open(&data_root.join("snapshots"))?;
        // under content/ so it cannot clash with directories the engine keeps in the data root
        let tmp = data_root.join("content").join("tmp");
        if tmp.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let tx = db.begin_write()?;
        {
            tx.open_table(IMAGES)?;
            tx.open_table(TAGS)?;
            tx.open_table(COMPRESSED)?;
        }
        tx.commit()?;
        Ok(ImageStore {
            inner: Arc::new(Inner {
                data_root: data_root.to_path_buf(),
                db,
                content,
                snapshots,
                gc: RwLock::new(()),
            }),
        })
    }

    /// The content store (for pull and push in berth-distribution).
    pub fn content(&self) -> &ContentStore {
        &self.inner.content
    }

    /// The snapshotter (for the builder, which writes snapshots directly).
    pub fn snapshotter(&self) -> &Snapshotter {
        &self.inner.snapshots
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.inner.data_root.join("content").join("tmp")
    }

    pub(crate) fn shared_lock(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.inner.gc.read().unwrap_or_else(|e| e.into_inner())
    }

    fn exclusive_lock(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.inner.gc.write().unwrap_or_else(|e| e.into_inner())
    }

    // ---- records -------------------------------------------------------------------

    pub(crate) fn record(&self, id: &str) -> Result<Option<ImageRecord>, Error> {
        let tx = self.inner.db.begin_read()?;
        let t = tx.open_table(IMAGES)?;
        let Some(v) = t.get(id)? else {
            return Ok(None);
        };
        let rec = serde_json::from_slice(v.value())
            .map_err(|e| Error::Corrupt(format!("image record {id}: {e}")))?;
        Ok(Some(rec))
    }

    fn records(&self) -> Result<Vec<ImageRecord>, Error> {
        let tx = self.inner.db.begin_read()?;
        let t = tx.open_table(IMAGES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push(
                serde_json::from_slice(v.value())
                    .map_err(|e| Error::Corrupt(format!("image record {}: {e}", k.value())))?,
            );
        }
        Ok(out)
    }

    /// The gzip blob (digest, size) a push made of the uncompressed layer blob `blob`.
    pub fn compressed_layer(&self, blob: &str) -> Result<Option<(String, u64)>, Error> {
        let tx = self.inner.db.begin_read()?;
        let t = tx.open_table(COMPRESSED)?;
        let Some(v) = t.get(blob)? else {
            return Ok(None);
        };
        let v = v.value();
        let parsed = v
            .split_once(' ')
            .and_then(|(d, n)| Some((d.to_string(), n.parse().ok()?)))
            .filter(|(d, _)| digest::is_sha256_digest(d));
        match parsed {
            Some(p) => Ok(Some(p)),
            None => Err(Error::Corrupt(format!(
                "compressed layer record of {blob}: {v:?}"
            ))),
        }
    }

    /// Remember the gzip blob a push made of the uncompressed layer blob `blob`.
    pub fn set_compressed_layer(&self, blob: &str, gzip: &str, size: u64) -> Result<(), Error> {
        let tx = self.inner.db.begin_write()?;
        {
            let mut t = tx.open_table(COMPRESSED)?;
            t.insert(blob, format!("{gzip} {size}").as_str())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every tag: full reference -> image id.
    fn tags(&self) -> Result<BTreeMap<String, String>, Error> {
        let tx = self.inner.db.begin_read()?;
        let t = tx.open_table(TAGS)?;
        let mut out = BTreeMap::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.insert(k.value().to_string(), v.value().to_string());
        }
        Ok(out)
    }

    fn tags_by_image(&self) -> Result<HashMap<String, Vec<String>>, Error> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for (r, id) in self.tags()? {
            let fam = Reference::parse(&r).map(|r| r.familiar()).unwrap_or(r);
            out.entry(id).or_default().push(fam);
        }
        Ok(out)
    }

    pub(crate) fn config_bytes(&self, id: &str) -> Result<Vec<u8>, Error> {
        Ok(self.inner.content.read_blob(id)?)
    }

    fn to_image(&self, rec: &ImageRecord, tags: Vec<String>) -> Result<Image, Error> {
        let bytes = self.config_bytes(&rec.id)?;
        let config: ImageConfigFile = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Corrupt(format!("image config {}: {e}", rec.id)))?;
        Ok(Image {
            id: rec.id.clone(),
            repo_tags: tags,
            repo_digests: rec.repo_digests.clone(),
            size: rec.size(),
            created: config
                .created
                .clone()
                .unwrap_or_else(|| rec.created.clone()),
            parent: rec.parent.clone(),
            layers: rec.layers.iter().map(|l| l.diff_id.clone()).collect(),
            config,
        })
    }

    /// Store a record and point `tags` at it, in one transaction. An existing record for
    /// the same id keeps its repo digests. Tags move from whatever image they named.
    pub(crate) fn put_record(&self, mut rec: ImageRecord, tags: &[Reference]) -> Result<(), Error> {
        let tx = self.inner.db.begin_write()?;
        {
            let mut images = tx.open_table(IMAGES)?;
            let old: Option<ImageRecord> = images
                .get(rec.id.as_str())?
                .and_then(|v| serde_json::from_slice(v.value()).ok());
            if let Some(old) = old {
                for d in old.repo_digests {
                    if !rec.repo_digests.contains(&d) {
                        rec.repo_digests.push(d);
                    }
                }
                rec.created = old.created;
            }
            let data = serde_json::to_vec(&rec).expect("image record serialises");
            images.insert(rec.id.as_str(), data.as_slice())?;
            let mut t = tx.open_table(TAGS)?;
            for r in tags {
                t.insert(r.full().as_str(), rec.id.as_str())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    // ---- lookup --------------------------------------------------------------------

    /// Resolve a name, reference, id or id prefix to an image id.
    pub fn resolve(&self, name_or_id: &str) -> Result<String, Error> {
        let s = name_or_id;
        let hex = s.strip_prefix(digest::SHA256_PREFIX).unwrap_or(s);
        if digest::is_hex64(hex) {
            let id = format!("{}{hex}", digest::SHA256_PREFIX);
            if self.record(&id)?.is_some() {
                return Ok(id);
            }
            return Err(not_found(s));
        }
        if !s.starts_with(digest::SHA256_PREFIX) {
            if let Ok(r) = Reference::parse(s) {
                if let Some(d) = r.digest() {
                    let want = r.with_digest(d).familiar();
                    for rec in self.records()? {
                        if rec.repo_digests.contains(&want) {
                            return Ok(rec.id);
                        }
                    }
                    return Err(not_found(s));
                }
                let tx = self.inner.db.begin_read()?;
                let t = tx.open_table(TAGS)?;
                if let Some(id) = t.get(r.full().as_str())? {
                    return Ok(id.value().to_string());
                }
            }
        }
        // short id: docker accepts any unique prefix of the hex id
        let is_hex = !hex.is_empty() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        // (`hex` has no ':' left, so `name:tag` never gets here)
        if is_hex {
            let tx = self.inner.db.begin_read()?;
            let t = tx.open_table(IMAGES)?;
            let lo = format!("{}{hex}", digest::SHA256_PREFIX);
            let mut found = Vec::new();
            for row in t.range(lo.as_str()..)? {
                let (k, _) = row?;
                let k = k.value().to_string();
                if !k.starts_with(&lo) || found.len() > 1 {
                    break;
                }
                found.push(k);
            }
            if found.len() == 1 {
                return Ok(found.remove(0));
            }
        }
        Err(not_found(s))
    }

    /// Look an image up by reference, id, id prefix or `name@digest`.
    pub fn get(&self, name_or_id: &str) -> Result<Image, Error> {
        let id = self.resolve(name_or_id)?;
        let rec = self.record(&id)?.ok_or_else(|| not_found(name_or_id))?;
        let tags = self.tags_by_image()?.remove(&id).unwrap_or_default();
        self.to_image(&rec, tags)
    }

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<Image>, Error> {
        let mut by_image = self.tags_by_image()?;
        let mut out = Vec::new();
        for rec in self.records()? {
            let tags = by_image.remove(&rec.id).unwrap_or_default();
            out.push(self.to_image(&rec, tags)?);
        }
        out.sort_by_key(|i| std::cmp::Reverse(config::unix_seconds(&i.created)));
        Ok(out)
    }

    /// The lower directories of an image, topmost first (empty for a layerless image).
    pub fn image_lowers(&self, name_or_id: &str) -> Result<Vec<PathBuf>, Error> {
        let id = self.resolve(name_or_id)?;
        let rec = self.record(&id)?.ok_or_else(|| not_found(name_or_id))?;
        Ok(rec
            .layers
            .iter()
            .rev()
            .map(|l| self.inner.snapshots.fs_dir(&l.chain_id))
            .collect())
    }

    // ---- tags ----------------------------------------------------------------------

    /// Point `reference` at an image (moving it if it named another one).
    pub fn tag(&self, name_or_id: &str, reference: &Reference) -> Result<(), Error> {
        if reference.digest().is_some() {
            return Err(Error::InvalidArgument(format!(
                "refusing to create a tag with a digest reference: {reference}"
            )));
        }
        let reference = if reference.tag().is_none() {
            reference.with_tag("latest")
        } else {
            reference.clone()
        };
        let id = self.resolve(name_or_id)?;
        let tx = self.inner.db.begin_write()?;
        {
            let mut t = tx.open_table(TAGS)?;
            t.insert(reference.full().as_str(), id.as_str())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Remove one tag (or repo digest); returns the image it named.
    pub fn untag(&self, reference: &Reference) -> Result<Image, Error> {
        if let Some(d) = reference.digest() {
            let want = reference.with_digest(d).familiar();
            let tx = self.inner.db.begin_write()?;
            let rec = {
                let mut images = tx.open_table(IMAGES)?;
                let mut hit = None;
                for row in images.iter()? {
                    let (_, v) = row?;
                    let rec: ImageRecord = serde_json::from_slice(v.value())
                        .map_err(|e| Error::Corrupt(format!("image record: {e}")))?;
                    if rec.repo_digests.contains(&want) {
                        hit = Some(rec);
                        break;
                    }
                }
                let mut rec = hit.ok_or_else(|| not_found(&reference.familiar()))?;
                rec.repo_digests.retain(|x| x != &want);
                let data = serde_json::to_vec(&rec).expect("image record serialises");
                images.insert(rec.id.as_str(), data.as_slice())?;
                rec
            };
            tx.commit()?;
            let tags = self.tags_by_image()?.remove(&rec.id).unwrap_or_default();
            return self.to_image(&rec, tags);
        }
        let tx = self.inner.db.begin_write()?;
        let id = {
            let mut t = tx.open_table(TAGS)?;
            let removed = t.remove(reference.full().as_str())?;
            match removed {
                Some(v) => v.value().to_string(),
                None => return Err(not_found(&reference.familiar())),
            }
        };
        tx.commit()?;
        let rec = self
            .record(&id)?
            .ok_or_else(|| not_found(&reference.familiar()))?;
        let tags = self.tags_by_image()?.remove(&id).unwrap_or_default();
        self.to_image(&rec, tags)
    }

    // ---- create --------------------------------------------------------------------

    /// `docker import`: a rootfs tarball (plain, gzip or zstd) becomes a one-layer image.
    pub fn import(&self, tar: &mut dyn Read, opts: ImportOptions) -> Result<Image, Error> {
        let (os, architecture, variant) = parse_platform(opts.platform.as_deref())?;
        if let Some(r) = opts.reference.as_ref().filter(|r| r.digest().is_some()) {
            return Err(Error::InvalidArgument(format!(
                "refusing to create a tag with a digest reference: {r}"
            )));
        }
        let mut container_config = crate::config::ContainerConfig::default();
        apply_changes(&mut container_config, &opts.changes)?;
        let _guard = self.shared_lock();

        let (compression, mut reader) = apply::decompress(tar)?;
        tracing::debug!(?compression, "importing rootfs");
        let tmp = self.inner.snapshots.prepare()?;
        let mut blob = self.inner.content.writer()?;
        let stats = apply::apply_layer(&mut reader, &tmp.fs(), Some(&mut blob))?;
        let (blob_digest, blob_size) = blob.commit(Some(&stats.diff_id))?;
        let meta = SnapshotMeta {
            chain_id: stats.diff_id.clone(),
            parent: None,
            diff_id: stats.diff_id.clone(),
            size: stats.size,
            tar_size: stats.tar_size,
        };
        self.inner.snapshots.commit(tmp, &meta)?;

        let created = config::now_rfc3339();
        let message = opts
            .message
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "Imported from -".to_string());
        let config = ImageConfigFile {
            architecture,
            os,
            variant,
            created: Some(created.clone()),
            comment: Some(message.clone()),
            config: container_config,
            rootfs: RootFs {
                r#type: "layers".to_string(),
                diff_ids: vec![stats.diff_id.clone()],
            },
            history: vec![History {
                created: Some(created.clone()),
                comment: Some(message),
                ..History::default()
            }],
            ..ImageConfigFile::default()
        };
        let bytes = serde_json::to_vec(&config).expect("image config serialises");
        let id = self.inner.content.write_blob(&bytes)?;
        let rec = ImageRecord {
            id: id.clone(),
            layers: vec![LayerRecord {
                diff_id: stats.diff_id.clone(),
                chain_id: stats.diff_id,
                blob: blob_digest,
                media_type: MEDIA_TYPE_LAYER.to_string(),
                blob_size,
                size: stats.size,
                tar_size: stats.tar_size,
            }],
            repo_digests: Vec::new(),
            created,
            parent: String::new(),
        };
        let tags: Vec<Reference> = opts.reference.into_iter().collect();
        self.put_record(rec, &tags)?;
        drop(_guard);
        self.get(&id)
    }

    /// Register an image whose config and layer blobs are already in the content store
    /// (after a pull, or from a loaded archive): unpack the layers not yet unpacked,
    /// verify them against the config's diff ids, record the image and tag it.
    pub fn create_image(
        &self,
        config_digest: &str,
        layers: &[LayerSource],
        tags: &[Reference],
        repo_digests: &[String],
    ) -> Result<Image, Error> {
        let _guard = self.shared_lock();
        self.create_image_locked(config_digest, layers, tags, repo_digests)?;
        drop(_guard);
        self.get(config_digest)
    }

    pub(crate) fn create_image_locked(
        &self,
        config_digest: &str,
        layers: &[LayerSource],
        tags: &[Reference],
        repo_digests: &[String],
    ) -> Result<(), Error> {
        let bytes = self.config_bytes(config_digest)?;
        let config: ImageConfigFile = serde_json::from_slice(&bytes).map_err(|e| {
            Error::InvalidArgument(format!("invalid image config {config_digest}: {e}"))
        })?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != layers.len() {
            return Err(Error::InvalidArgument(format!(
                "image {config_digest} has {} layers but its config lists {} diff ids",
                layers.len(),
                diff_ids.len()
            )));
        }
        let chain = chain_ids(diff_ids);
        let mut records = Vec::with_capacity(layers.len());
        for (i, src) in layers.iter().enumerate() {
            let chain_id = &chain[i];
            let blob_size = self.inner.content.size(&src.blob)?;
            let compression = {
                let f = self.inner.content.open_blob(&src.blob)?;
                apply::decompress(f)?.0
            };
            let meta = if self.inner.snapshots.exists(chain_id) {
                self.inner.snapshots.meta(chain_id)?
            } else {
                let f = self.inner.content.open_blob(&src.blob)?;
                let (_, mut reader) =
                    apply::decompress(std::io::BufReader::with_capacity(256 * 1024, f))?;
                let tmp = self.inner.snapshots.prepare()?;
                let stats = apply::apply_layer(&mut reader, &tmp.fs(), None)?;
                if stats.diff_id != diff_ids[i] {
                    return Err(Error::InvalidArgument(format!(
                        "layer {} has diff id {}, but the image config says {}",
                        src.blob, stats.diff_id, diff_ids[i]
                    )));
                }
                let meta = SnapshotMeta {
                    chain_id: chain_id.clone(),
                    parent: i.checked_sub(1).map(|p| chain[p].clone()),
                    diff_id: stats.diff_id,
                    size: stats.size,
                    tar_size: stats.tar_size,
                };
                self.inner.snapshots.commit(tmp, &meta)?;
                meta
            };
            let media_type = match compression {
                Compression::None => MEDIA_TYPE_LAYER,
                Compression::Gzip => MEDIA_TYPE_LAYER_GZIP,
                Compression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
            };
            records.push(LayerRecord {
                diff_id: diff_ids[i].clone(),
                chain_id: chain_id.clone(),
                blob: src.blob.clone(),
                media_type: src
                    .media_type
                    .clone()
                    .unwrap_or_else(|| media_type.to_string()),
                blob_size,
                size: meta.size,
                tar_size: meta.tar_size,
            });
        }
        let rec = ImageRecord {
            id: config_digest.to_string(),
            layers: records,
            repo_digests: repo_digests.to_vec(),
            created: config.created.clone().unwrap_or_else(config::now_rfc3339),
            parent: String::new(),
        };
        self.put_record(rec, tags)
    }

    /// Diff ids and chain ids (bottom first) of the layers the image config
    /// `config_digest` (already in the content store) lists.
    pub fn config_chain(&self, config_digest: &str) -> Result<Vec<(String, String)>, Error> {
        let bytes = self.config_bytes(config_digest)?;
        let config: ImageConfigFile = serde_json::from_slice(&bytes).map_err(|e| {
            Error::InvalidArgument(format!("invalid image config {config_digest}: {e}"))
        })?;
        let diff_ids = config.rootfs.diff_ids;
        let chain = chain_ids(&diff_ids);
        Ok(diff_ids.into_iter().zip(chain).collect())
    }

    /// Unpack a layer blob as it arrives (compressed or not, detected from its first
    /// bytes) into a temporary snapshot, so that a pull can unpack while it downloads.
    /// Nothing is visible until [`ImageStore::commit_layer`].
    pub fn unpack_layer(&self, blob: &mut dyn std::io::BufRead) -> Result<UnpackedLayer, Error> {
        let (_, mut reader) = apply::decompress_buffered(blob)?;
        let tmp = self.inner.snapshots.prepare()?;
        let stats = apply::apply_layer(&mut reader, &tmp.fs(), None)?;
        Ok(UnpackedLayer { tmp, stats })
    }

    /// Publish a layer unpacked by [`ImageStore::unpack_layer`] as the snapshot
    /// `chain_id` (on top of `parent`), once its content is the `diff_id` the image
    /// config names. An existing snapshot of the same chain id wins.
    pub fn commit_layer(
        &self,
        layer: UnpackedLayer,
        diff_id: &str,
        chain_id: &str,
        parent: Option<&str>,
    ) -> Result<(), Error> {
        if layer.stats.diff_id != diff_id {
            return Err(Error::InvalidArgument(format!(
                "layer has diff id {}, but the image config says {diff_id}",
                layer.stats.diff_id
            )));
        }
        let meta = SnapshotMeta {
            chain_id: chain_id.to_string(),
            parent: parent.map(str::to_string),
            diff_id: layer.stats.diff_id,
            size: layer.stats.size,
            tar_size: layer.stats.tar_size,
        };
        let _guard = self.shared_lock();
        self.inner.snapshots.commit(layer.tmp, &meta)?;
        Ok(())
    }

    /// `docker load`: a docker-archive or an OCI image layout (see [`crate::archive`]).
    pub fn load(&self, archive: &mut dyn Read) -> Result<Vec<LoadedImage>, Error> {
        crate::archive::load(self, archive)
    }

    /// `docker save`: see [`crate::archive`].
    pub fn save(&self, names: &[String], out: &mut dyn std::io::Write) -> Result<(), Error> {
        crate::archive::save(self, names, out)
    }

    /// Tags of `name` when it is a bare repository name (`docker save busybox` saves them
    /// all); empty otherwise.
    pub(crate) fn repo_tags_of(&self, name: &str) -> Result<Vec<(Reference, String)>, Error> {
        let Ok(r) = Reference::parse_named(name) else {
            return Ok(Vec::new());
        };
        if r.tag().is_some() || r.digest().is_some() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (full, id) in self.tags()? {
            if let Ok(t) = Reference::parse(&full) {
                if t.name() == r.name() {
                    out.push((t, id));
                }
            }
        }
        Ok(out)
    }

    // ---- delete --------------------------------------------------------------------

    /// Remove an image, its tags, and the blobs and snapshots nothing else needs.
    /// Returns the image id followed by the removed layer (chain) ids.
    pub fn delete(&self, id: &str) -> Result<Vec<String>, Error> {
        let _guard = self.exclusive_lock();
        let id = self.resolve(id)?;
        let (deleted, _) = self.delete_locked(&id)?;
        Ok(deleted)
    }

    fn delete_locked(&self, id: &str) -> Result<(Vec<String>, u64), Error> {
        let tx = self.inner.db.begin_write()?;
        let rec: ImageRecord = {
            let mut images = tx.open_table(IMAGES)?;
            let removed = images.remove(id)?;
            let Some(v) = removed else {
                return Err(not_found(id));
            };
            serde_json::from_slice(v.value())
                .map_err(|e| Error::Corrupt(format!("image record {id}: {e}")))?
        };
        {
            let mut t = tx.open_table(TAGS)?;
            t.retain(|_, v| v != id)?;
        }
        tx.commit()?;

        let mut chains_kept: HashSet<String> = self.inner.snapshots.rw_chains_in_use()?;
        let mut blobs_kept: HashSet<String> = HashSet::new();
        for other in self.records()? {
            blobs_kept.insert(other.id.clone());
            for l in other.layers {
                chains_kept.insert(l.chain_id);
                blobs_kept.insert(l.blob);
            }
        }
        let mut deleted = vec![rec.id.clone()];
        let mut reclaimed = 0u64;
        if !blobs_kept.contains(&rec.id) {
            self.inner.content.delete(&rec.id)?;
        }
        // top first, like docker's "Deleted:" lines
        for l in rec.layers.iter().rev() {
            if !chains_kept.contains(&l.chain_id) && self.inner.snapshots.remove(&l.chain_id)? {
                reclaimed += l.size;
                deleted.push(l.chain_id.clone());
            }
            if !blobs_kept.contains(&l.blob) {
                self.inner.content.delete(&l.blob)?;
                blobs_kept.insert(l.blob.clone());
            }
        }
        Ok((deleted, reclaimed))
    }

    /// Remove untagged images not in `in_use` (ids); returns deleted ids and bytes freed.
    pub fn prune_dangling(&self, in_use: &HashSet<String>) -> Result<(Vec<String>, u64), Error> {
        let _guard = self.exclusive_lock();
        let tagged: HashSet<String> = self.tags()?.into_values().collect();
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for rec in self.records()? {
            if tagged.contains(&rec.id) || in_use.contains(&rec.id) {
                continue;
            }
            let (d, r) = self.delete_locked(&rec.id)?;
            deleted.extend(d);
            reclaimed += r;
        }
        Ok((deleted, reclaimed))
    }

    /// How many images use the layer with this chain id.
    pub fn images_using_layer_count(&self, chain_id: &str) -> Result<usize, Error> {
        Ok(self
            .records()?
            .iter()
            .filter(|r| r.layers.iter().any(|l| l.chain_id == chain_id))
            .count())
    }

    // ---- history -------------------------------------------------------------------

    /// `docker history`, newest first.
    pub fn history(&self, name_or_id: &str) -> Result<Vec<HistoryItem>, Error> {
        let img = self.get(name_or_id)?;
        let rec = self.record(&img.id)?.ok_or_else(|| not_found(name_or_id))?;
        let mut layer_sizes = rec.layers.iter().map(|l| l.size);
        let mut items = Vec::new();
        if img.config.history.is_empty() {
            for l in &rec.layers {
                items.push(HistoryItem {
                    id: "<missing>".to_string(),
                    created: config::unix_seconds(&img.created),
                    created_by: String::new(),
                    tags: Vec::new(),
                    size: l.size,
                    comment: String::new(),
                });
            }
        }
        for h in &img.config.history {
            let size = if h.empty_layer.unwrap_or(false) {
                0
            } else {
                layer_sizes.next().unwrap_or(0)
            };
            items.push(HistoryItem {
                id: "<missing>".to_string(),
                created: h.created.as_deref().map(config::unix_seconds).unwrap_or(0),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: Vec::new(),
                size,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
        items.reverse();
        if let Some(top) = items.first_mut() {
            top.id = img.id.clone();
            top.tags = img.repo_tags.clone();
        }
        Ok(items)
    }

    // ---- container layers ----------------------------------------------------------

    /// A writable layer for container `key` over the image (None = scratch).
    pub fn create_rw_layer(&self, key: &str, image_id: Option<&str>) -> Result<RwLayer, Error> {
        let _guard = self.shared_lock();
        let (id, chain) = match image_id {
            Some(name) => {
                let id = self.resolve(name)?;
                let rec = self.record(&id)?.ok_or_else(|| not_found(name))?;
                (
                    Some(id),
                    rec.layers.into_iter().map(|l| l.chain_id).collect(),
                )
            }
            None => (None, Vec::new()),
        };
        self.inner
            .snapshots
            .create_rw(key, id.as_deref(), &chain)
            .map_err(|e| match e {
                snapshot::SnapshotError::Exists(k) => {
                    Error::Conflict(format!("rw layer {k} already exists"))
                }
                snapshot::SnapshotError::InvalidKey(k) => {
                    Error::InvalidArgument(format!("invalid rw layer key {k:?}"))
                }
                e => e.into(),
            })
    }

    /// The directories of an existing container layer.
    pub fn rw_layer(&self, key: &str) -> Result<RwLayer, Error> {
        Ok(self.inner.snapshots.rw(key)?)
    }

    /// Mount the container layer's overlay at `target`.
    pub fn mount_rw_layer(&self, key: &str, target: &Path) -> Result<(), Error> {
        Ok(self.inner.snapshots.mount_rw(key, target)?)
    }

    /// [`Self::mount_rw_layer`] for a layer removed with its container (`--rm`): mounted
    /// `volatile`, so its unmount does not sync the upper file system.
    pub fn mount_rw_layer_volatile(&self, key: &str, target: &Path) -> Result<(), Error> {
        Ok(self.inner.snapshots.mount_rw_volatile(key, target)?)
    }

    /// Unmount `target`; not mounted is fine, busy detaches lazily.
    pub fn unmount_rw_layer(&self, target: &Path) -> Result<(), Error> {
        Ok(snapshot::unmount(target)?)
    }

    /// Delete a container layer; missing is fine.
    pub fn remove_rw_layer(&self, key: &str) -> Result<(), Error> {
        Ok(self.inner.snapshots.remove_rw(key)?)
    }

    /// Take a container layer out of the store, leaving its files for the caller to delete
    /// (see `Snapshotter::detach_rw`); `None` when there is no such layer.
    pub fn detach_rw_layer(&self, key: &str) -> Result<Option<std::path::PathBuf>, Error> {
        Ok(self.inner.snapshots.detach_rw(key)?)
    }

    /// Bytes in the container layer's upper directory.
    pub fn rw_layer_size(&self, key: &str) -> Result<u64, Error> {
        Ok(self.inner.snapshots.rw_size(key)?)
    }

    /// Write the diff of a container layer (its upper dir) as a layer tar.
    pub fn diff_rw_layer(&self, key: &str, out: &mut dyn std::io::Write) -> Result<(), Error> {
        let layer = self.inner.snapshots.rw(key)?;
        Ok(crate::diff::write_diff(&layer.upper, out)?)
    }

    /// `docker commit`: a new image made of the container layer's base image plus the
    /// layer's diff as one more layer.
    pub fn commit_rw_layer(&self, key: &str, opts: CommitOptions) -> Result<Image, Error> {
        if let Some(r) = opts.reference.as_ref().filter(|r| r.digest().is_some()) {
            return Err(Error::InvalidArgument(format!(
                "refusing to create a tag with a digest reference: {r}"
            )));
        }
        let _guard = self.shared_lock();
        let rw = self.inner.snapshots.rw_meta(key)?;
        let (base_rec, mut config) = match &rw.image_id {
            Some(id) => {
                let rec = self.record(id)?.ok_or_else(|| not_found(id))?;
                let bytes = self.config_bytes(id)?;
                let config: ImageConfigFile = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Corrupt(format!("image config {id}: {e}")))?;
                (Some(rec), config)
            }
            None => {
                let (os, architecture, variant) = parse_platform(None)?;
                let config = ImageConfigFile {
                    os,
                    architecture,
                    variant,
                    ..ImageConfigFile::default()
                };
                (None, config)
            }
        };
        let mut container_config = opts.config.clone().unwrap_or_else(|| config.config.clone());
        apply_changes(&mut container_config, &opts.changes)?;

        // the diff goes to the content store as a plain tar (its digest is its diff id),
        // then is applied from there into a new snapshot on top of the base chain
        let upper = self.inner.snapshots.rw(key)?.upper;
        let mut w = self.inner.content.writer()?;
        crate::diff::write_diff(&upper, &mut w)?;
        let (diff_id, blob_size) = w.commit(None)?;
        let mut diff_ids = config.rootfs.diff_ids.clone();
        diff_ids.push(diff_id.clone());
        let chain = chain_ids(&diff_ids);
        let chain_id = chain.last().expect("at least the new layer").clone();
        let meta = if self.inner.snapshots.exists(&chain_id) {
            self.inner.snapshots.meta(&chain_id)?
        } else {
            let f = self.inner.content.open_blob(&diff_id)?;
            let mut reader = std::io::BufReader::with_capacity(256 * 1024, f);
            let tmp = self.inner.snapshots.prepare()?;
            let stats = apply::apply_layer(&mut reader, &tmp.fs(), None)?;
            let meta = SnapshotMeta {
                chain_id: chain_id.clone(),
                parent: chain.len().checked_sub(2).map(|p| chain[p].clone()),
                diff_id: diff_id.clone(),
                size: stats.size,
                tar_size: stats.tar_size,
            };
            self.inner.snapshots.commit(tmp, &meta)?;
            meta
        };

        let created = config::now_rfc3339();
        config.created = Some(created.clone());
        config.config = container_config;
        if opts.author.is_some() {
            config.author = opts.author.clone();
        }
        config.comment = opts.message.clone().filter(|m| !m.is_empty());
        config.rootfs.diff_ids = diff_ids;
        config.history.push(History {
            created: Some(created.clone()),
            created_by: opts.created_by.clone(),
            author: opts.author.clone(),
            comment: opts.message.clone().filter(|m| !m.is_empty()),
            empty_layer: None,
        });
        let bytes = serde_json::to_vec(&config).expect("image config serialises");
        let id = self.inner.content.write_blob(&bytes)?;
        let mut layers = base_rec
            .as_ref()
            .map(|r| r.layers.clone())
            .unwrap_or_default();
        layers.push(LayerRecord {
            diff_id: diff_id.clone(),
            chain_id,
            blob: diff_id,
            media_type: MEDIA_TYPE_LAYER.to_string(),
            blob_size,
            size: meta.size,
            tar_size: meta.tar_size,
        });
        let rec = ImageRecord {
            id: id.clone(),
            layers,
            repo_digests: Vec::new(),
            created,
            parent: rw.image_id.clone().unwrap_or_default(),
        };
        let tags: Vec<Reference> = opts.reference.into_iter().collect();
        self.put_record(rec, &tags)?;
        drop(_guard);
        self.get(&id)
    }

    /// Records the image `id` was built on (docker's `Parent`: `docker images` hides
    /// untagged parents, the build intermediates). An existing parent is kept.
    pub fn set_parent(&self, id: &str, parent: &str) -> Result<(), Error> {
        let _guard = self.shared_lock();
        let mut rec = self
            .record(id)?
            .ok_or_else(|| Error::NotFound(format!("No such image: {id}")))?;
        if rec.parent.is_empty() && rec.id != parent {
            rec.parent = parent.to_string();
            self.put_record(rec, &[])?;
        }
        Ok(())
    }

    /// The record of an image (layers with blobs and sizes), for save and push.
    pub fn image_record(&self, name_or_id: &str) -> Result<ImageRecord, Error> {
        let id = self.resolve(name_or_id)?;
        self.record(&id)?.ok_or_else(|| not_found(name_or_id))
    }
}

/// `os/arch[/variant]`, defaulting to the host's.
fn parse_platform(p: Option<&str>) -> Result<(String, String, Option<String>), Error> {
    let host_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    let Some(p) = p.filter(|p| !p.is_empty()) else {
        return Ok(("linux".to_string(), host_arch.to_string(), None));
    };
    let parts: Vec<&str> = p.split('/').collect();
    let bad = || {
        Error::InvalidArgument(format!(
            "invalid platform {p:?}: expected os/arch[/variant]"
        ))
    };
    if parts.iter().any(|x| x.is_empty()) {
        return Err(bad());
    }
    match parts.as_slice() {
        [os] => Ok((os.to_lowercase(), host_arch.to_string(), None)),
        [os, arch] => Ok((os.to_lowercase(), arch.to_lowercase(), None)),
        [os, arch, variant] => Ok((
            os.to_lowercase(),
            arch.to_lowercase(),
            Some(variant.to_lowercase()),
        )),
        _ => Err(bad()),
    }
}

/// The hex of an id, for file names.
pub(crate) fn id_hex(id: &str) -> &str {
    hex_part(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        assert_eq!(
            parse_platform(Some("linux/arm64/v8")).unwrap(),
            ("linux".into(), "arm64".into(), Some("v8".into()))
        );
        assert_eq!(parse_platform(None).unwrap().0, "linux");
        assert!(parse_platform(Some("linux//x")).is_err());
        assert!(parse_platform(Some("a/b/c/d")).is_err());
    }
}
