//! The filesystem storage driver.
//!
//! Layout under the root:
//! ```text
//! blobs/<alg>/<hex[..2]>/<hex>                     blob content, stored once
//! repositories/<name>/_layers/<alg>/<hex>          empty link file: repo may serve blob
//! repositories/<name>/_manifests/<alg>/<hex>       link file holding the media type
//! repositories/<name>/_tags/<tag>                  file holding the manifest digest
//! repositories/<name>/_referrers/<alg>/<hex>/<alg>_<hex>   subject -> referrer index
//! uploads/<id>/data, uploads/<id>/info.json        upload sessions
//! tmp/                                             staging for atomic writes
//! ```
//! Repository name components start with `[a-z0-9]`, so `_layers` and friends can never
//! collide with a nested repository directory.
//!
//! Atomicity: every file that becomes visible is written under `tmp/` (same filesystem),
//! fsynced and renamed into place, so a crash leaves either the old or the new file, and a
//! blob path only ever holds verified content. An upload keeps its running hash in memory
//! between chunks (hash while streaming); after a restart the hash is recomputed from the
//! data file at commit. A chunk whose body breaks off midway is truncated away and the hash
//! restored, so a client can resume from the last good offset.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{BlobInfo, BlobReader, ByteStream, Storage, StorageError, UploadInfo};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::names::{RepoName, Tag};

/// Filesystem-backed [`Storage`].
pub struct FsStorage {
    root: PathBuf,
    /// Per-upload running hash; the tokio mutex also serialises chunks of one upload.
    uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Hasher>>>>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct UploadMeta {
    repo: String,
    /// Seconds since the epoch.
    started: u64,
}

fn not_found_ok<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn ioerr(what: &str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
    let context = format!("{what} {}", path.display());
    move |e| StorageError::io(context, e)
}

async fn blocking<T, F>(f: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        StorageError::io(
            "storage worker task failed",
            io::Error::other(e.to_string()),
        )
    })?
}

fn touch(path: &Path) -> io::Result<()> {
    let f = std::fs::File::options().append(true).open(path)?;
    f.set_modified(SystemTime::now())
}

fn file_names(dir: &Path) -> Result<Vec<String>, StorageError> {
    let Some(rd) = not_found_ok(std::fs::read_dir(dir)).map_err(ioerr("listing", dir))? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(ioerr("listing", dir))?;
        if let Some(n) = e.file_name().to_str() {
            out.push(n.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// Digests stored as `<dir>/<alg>/<hex>` files.
fn digests_under(dir: &Path) -> Result<Vec<Digest>, StorageError> {
    let mut out = Vec::new();
    for alg in file_names(dir)? {
        for hex in file_names(&dir.join(&alg))? {
            if let Ok(d) = Digest::from_parts(&alg, &hex) {
                out.push(d);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl FsStorage {
    /// Open (creating if needed) a storage root.
    pub fn open(root: impl Into<PathBuf>) -> Result<FsStorage, StorageError> {
        let root = root.into();
        for sub in ["blobs", "repositories", "uploads", "tmp"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(ioerr("creating", &p))?;
        }
        // Staging files left by a crash are never referenced: clear them.
        let tmp = root.join("tmp");
        for name in file_names(&tmp)? {
            let p = tmp.join(name);
            let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
        }
        Ok(FsStorage {
            root,
            uploads: Mutex::new(HashMap::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(&d.hex()[..2])
            .join(d.hex())
    }

    fn repo_dir(&self, repo: &RepoName) -> PathBuf {
        self.root.join("repositories").join(repo.as_str())
    }

    fn layer_path(&self, repo: &RepoName, d: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_layers")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn manifest_path(&self, repo: &RepoName, d: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_manifests")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn tag_path(&self, repo: &RepoName, t: &Tag) -> PathBuf {
        self.repo_dir(repo).join("_tags").join(t.as_str())
    }

    fn referrers_dir(&self, repo: &RepoName, subject: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_referrers")
            .join(subject.algorithm().as_str())
            .join(subject.hex())
    }

    fn upload_dir(&self, id: &str) -> PathBuf {
        // Ids come from URLs: anything but our own hex ids maps to a path that never exists,
        // so a crafted id cannot reach outside uploads/.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.root.join("uploads").join("_invalid_");
        }
        self.root.join("uploads").join(id)
    }

    fn upload_state(&self, id: &str) -> Arc<tokio::sync::Mutex<Option<Hasher>>> {
        let mut map = self.uploads.lock().expect("upload map lock poisoned");
        map.entry(id.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(None)))
            .clone()
    }

    fn forget_upload(&self, id: &str) {
        self.uploads
            .lock()
            .expect("upload map lock poisoned")
            .remove(id);
    }

    /// Write `data` to `dest` atomically: stage under tmp/, fsync, rename.
    fn write_atomic(root: &Path, dest: &Path, data: &[u8]) -> Result<(), StorageError> {
        let tmp = root.join("tmp").join(random_id());
        let mut f = std::fs::File::create(&tmp).map_err(ioerr("creating", &tmp))?;
        f.write_all(data).map_err(ioerr("writing", &tmp))?;
        f.sync_all().map_err(ioerr("syncing", &tmp))?;
        drop(f);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(ioerr("creating", parent))?;
        }
        std::fs::rename(&tmp, dest).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StorageError::io(format!("renaming into {}", dest.display()), e)
        })
    }

    /// The upload's metadata, checking that it belongs to `repo`.
    fn read_meta(dir: &Path, id: &str, repo: &RepoName) -> Result<UploadMeta, StorageError> {
        let p = dir.join("info.json");
        let raw = not_found_ok(std::fs::read(&p))
            .map_err(ioerr("reading", &p))?
            .ok_or_else(|| StorageError::UploadNotFound(id.to_string()))?;
        let meta: UploadMeta = serde_json::from_slice(&raw)
            .map_err(|e| StorageError::Corrupt(format!("{}: {e}", p.display())))?;
        if meta.repo != repo.as_str() {
            return Err(StorageError::UploadNotFound(id.to_string()));
        }
        Ok(meta)
    }
}

/// 32 random lower-case hex characters: upload ids and staging names.
pub(crate) fn random_id() -> String {
    let b: [u8; 16] = rand::random();
    hex::encode(b)
}

fn hash_file(path: &Path, alg: Algorithm) -> Result<Digest, StorageError> {
    let mut f = std::fs::File::open(path).map_err(ioerr("opening", path))?;
    let mut h = alg.hasher();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(ioerr("reading", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl Storage for FsStorage {
    async fn blob_stat(&self, digest: &Digest) -> Result<Option<BlobInfo>, StorageError> {
        let p = self.blob_path(digest);
        let md = not_found_ok(tokio::fs::metadata(&p).await).map_err(ioerr("stat", &p))?;
        Ok(md.map(|m| BlobInfo {
            size: m.len(),
            modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        }))
    }

    async fn blob_open(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Result<BlobReader, StorageError> {
        let p = self.blob_path(digest);
        let mut f = not_found_ok(tokio::fs::File::open(&p).await)
            .map_err(ioerr("opening", &p))?
            .ok_or_else(|| StorageError::BlobNotFound(digest.clone()))?;
        if offset > 0 {
            f.seek(io::SeekFrom::Start(offset))
                .await
                .map_err(ioerr("seeking", &p))?;
        }
        Ok(Box::pin(f.take(len)))
    }

    async fn blob_mapped(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Result<Option<Bytes>, StorageError> {
        let p = self.blob_path(digest);
        let Some(f) = not_found_ok(std::fs::File::open(&p)).map_err(ioerr("opening", &p))? else {
            return Err(StorageError::BlobNotFound(digest.clone()));
        };
        let size = f.metadata().map_err(ioerr("stat", &p))?.len();
        let end = offset.checked_add(len).filter(|&e| e <= size);
        let (Some(end), Ok(total)) = (end, usize::try_from(size)) else {
            return Ok(None);
        };
        if len == 0 {
            return Ok(Some(Bytes::new()));
        }
        match Mapped::new(&f, total) {
            Ok(m) => Ok(Some(
                Bytes::from_owner(m).slice(offset as usize..end as usize),
            )),
            // Not mappable (an odd file system): the caller reads it instead.
            Err(_) => Ok(None),
        }
    }

    async fn blob_read(&self, digest: &Digest) -> Result<Bytes, StorageError> {
        let p = self.blob_path(digest);
        not_found_ok(tokio::fs::read(&p).await)
            .map_err(ioerr("reading", &p))?
            .map(Bytes::from)
            .ok_or_else(|| StorageError::BlobNotFound(digest.clone()))
    }

    async fn blob_put(&self, digest: &Digest, data: Bytes) -> Result<(), StorageError> {
        let actual = digest.algorithm().digest(&data);
        if &actual != digest {
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let root = self.root.clone();
        let dest = self.blob_path(digest);
        blocking(move || {
            if dest.exists() {
                return touch(&dest).map_err(ioerr("touching", &dest));
            }
            FsStorage::write_atomic(&root, &dest, &data)
        })
        .await
    }

    async fn blob_touch(&self, digest: &Digest) -> Result<bool, StorageError> {
        let p = self.blob_path(digest);
        blocking(move || {
            Ok(not_found_ok(touch(&p))
                .map_err(ioerr("touching", &p))?
                .is_some())
        })
        .await
    }

    async fn blob_delete(&self, digest: &Digest) -> Result<bool, StorageError> {
        let p = self.blob_path(digest);
        Ok(not_found_ok(tokio::fs::remove_file(&p).await)
            .map_err(ioerr("removing", &p))?
            .is_some())
    }

    async fn blob_list(&self) -> Result<Vec<(Digest, BlobInfo)>, StorageError> {
        let dir = self.root.join("blobs");
        blocking(move || {
            let mut out = Vec::new();
            for alg in file_names(&dir)? {
                for prefix in file_names(&dir.join(&alg))? {
                    let pdir = dir.join(&alg).join(&prefix);
                    for hex in file_names(&pdir)? {
                        let Ok(d) = Digest::from_parts(&alg, &hex) else {
                            continue;
                        };
                        let p = pdir.join(&hex);
                        // A blob may vanish between listing and stat (concurrent delete).
                        if let Some(m) =
                            not_found_ok(std::fs::metadata(&p)).map_err(ioerr("stat", &p))?
                        {
                            out.push((
                                d,
                                BlobInfo {
                                    size: m.len(),
                                    modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                                },
                            ));
                        }
                    }
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
        .await
    }

    async fn repositories(&self) -> Result<Vec<RepoName>, StorageError> {
        let base = self.root.join("repositories");
        blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![String::new()];
            while let Some(rel) = stack.pop() {
                let dir = if rel.is_empty() {
                    base.clone()
                } else {
                    base.join(&rel)
                };
                for name in file_names(&dir)? {
                    if name.starts_with('_') {
                        continue;
                    }
                    let child = if rel.is_empty() {
                        name
                    } else {
                        format!("{rel}/{name}")
                    };
                    if base.join(&child).is_dir() {
                        stack.push(child.clone());
                        if repo_has_content(&base.join(&child))? {
                            if let Ok(r) = child.parse() {
                                out.push(r);
                            }
                        }
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn repo_exists(&self, repo: &RepoName) -> Result<bool, StorageError> {
        let dir = self.repo_dir(repo);
        blocking(move || repo_has_content(&dir)).await
    }

    async fn layer_link(&self, repo: &RepoName, digest: &Digest) -> Result<(), StorageError> {
        let root = self.root.clone();
        let p = self.layer_path(repo, digest);
        blocking(move || FsStorage::write_atomic(&root, &p, b"")).await
    }

    async fn layer_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool, StorageError> {
        let p = self.layer_path(repo, digest);
        Ok(tokio::fs::try_exists(&p).await.map_err(ioerr("stat", &p))?)
    }

    async fn layer_unlink(&self, repo: &RepoName, digest: &Digest) -> Result<bool, StorageError> {
        let p = self.layer_path(repo, digest);
        Ok(not_found_ok(tokio::fs::remove_file(&p).await)
            .map_err(ioerr("removing", &p))?
            .is_some())
    }

    async fn layer_links(&self, repo: &RepoName) -> Result<Vec<Digest>, StorageError> {
        let dir = self.repo_dir(repo).join("_layers");
        blocking(move || digests_under(&dir)).await
    }

    async fn manifest_link(
        &self,
        repo: &RepoName,
        digest: &Digest,
        media_type: &str,
    ) -> Result<(), StorageError> {
        let root = self.root.clone();
        let p = self.manifest_path(repo, digest);
        let mt = media_type.as_bytes().to_vec();
        blocking(move || FsStorage::write_atomic(&root, &p, &mt)).await
    }

    async fn manifest_media_type(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<String>, StorageError> {
        let p = self.manifest_path(repo, digest);
        let raw = not_found_ok(tokio::fs::read(&p).await).map_err(ioerr("reading", &p))?;
        raw.map(|r| {
            String::from_utf8(r).map_err(|_| StorageError::Corrupt(p.display().to_string()))
        })
        .transpose()
    }

    async fn manifest_unlink(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<bool, StorageError> {
        let p = self.manifest_path(repo, digest);
        Ok(not_found_ok(tokio::fs::remove_file(&p).await)
            .map_err(ioerr("removing", &p))?
            .is_some())
    }

    async fn manifest_links(&self, repo: &RepoName) -> Result<Vec<Digest>, StorageError> {
        let dir = self.repo_dir(repo).join("_manifests");
        blocking(move || digests_under(&dir)).await
    }

    async fn tag_set(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let root = self.root.clone();
        let p = self.tag_path(repo, tag);
        let d = digest.to_string();
        blocking(move || FsStorage::write_atomic(&root, &p, d.as_bytes())).await
    }

    async fn tag_get(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>, StorageError> {
        let p = self.tag_path(repo, tag);
        let raw =
            not_found_ok(tokio::fs::read_to_string(&p).await).map_err(ioerr("reading", &p))?;
        raw.map(|s| {
            s.trim()
                .parse()
                .map_err(|_| StorageError::Corrupt(p.display().to_string()))
        })
        .transpose()
    }

    async fn tag_delete(&self, repo: &RepoName, tag: &Tag) -> Result<bool, StorageError> {
        let p = self.tag_path(repo, tag);
        Ok(not_found_ok(tokio::fs::remove_file(&p).await)
            .map_err(ioerr("removing", &p))?
            .is_some())
    }

    async fn tags(&self, repo: &RepoName) -> Result<Vec<(Tag, Digest)>, StorageError> {
        let dir = self.repo_dir(repo).join("_tags");
        blocking(move || {
            let mut out = Vec::new();
            for name in file_names(&dir)? {
                let Ok(tag) = name.parse::<Tag>() else {
                    continue;
                };
                let p = dir.join(&name);
                // Tolerate a tag deleted between listing and reading.
                let Some(s) =
                    not_found_ok(std::fs::read_to_string(&p)).map_err(ioerr("reading", &p))?
                else {
                    continue;
                };
                let d = s
                    .trim()
                    .parse()
                    .map_err(|_| StorageError::Corrupt(p.display().to_string()))?;
                out.push((tag, d));
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn referrer_add(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<(), StorageError> {
        let root = self.root.clone();
        let p = self.referrers_dir(repo, subject).join(format!(
            "{}_{}",
            referrer.algorithm().as_str(),
            referrer.hex()
        ));
        blocking(move || FsStorage::write_atomic(&root, &p, b"")).await
    }

    async fn referrer_remove(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<(), StorageError> {
        let p = self.referrers_dir(repo, subject).join(format!(
            "{}_{}",
            referrer.algorithm().as_str(),
            referrer.hex()
        ));
        not_found_ok(tokio::fs::remove_file(&p).await).map_err(ioerr("removing", &p))?;
        Ok(())
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
    ) -> Result<Vec<Digest>, StorageError> {
        let dir = self.referrers_dir(repo, subject);
        blocking(move || {
            let mut out: Vec<Digest> = file_names(&dir)?
                .iter()
                .filter_map(|n| n.split_once('_'))
                .filter_map(|(a, h)| Digest::from_parts(a, h).ok())
                .collect();
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn upload_start(&self, repo: &RepoName) -> Result<String, StorageError> {
        let id = random_id();
        let dir = self.upload_dir(&id);
        let root = self.root.clone();
        let meta = serde_json::to_vec(&UploadMeta {
            repo: repo.to_string(),
            started: secs(SystemTime::now()),
        })
        .expect("upload metadata serializes");
        // Hold the session lock while creating it, so a concurrent purge waits for a
        // complete session instead of racing its creation.
        let state = self.upload_state(&id);
        let mut hasher = state.lock().await;
        blocking(move || {
            std::fs::create_dir_all(&dir).map_err(ioerr("creating", &dir))?;
            let data = dir.join("data");
            std::fs::File::create(&data).map_err(ioerr("creating", &data))?;
            // info.json last: an upload without it is incomplete and gets purged.
            FsStorage::write_atomic(&root, &dir.join("info.json"), &meta)
        })
        .await?;
        hasher.replace(Algorithm::Sha256.hasher());
        Ok(id)
    }

    async fn upload_write(
        &self,
        repo: &RepoName,
        id: &str,
        offset: Option<u64>,
        mut body: ByteStream,
    ) -> Result<u64, StorageError> {
        let state = self.upload_state(id);
        let mut hasher = state.lock().await;
        let dir = self.upload_dir(id);
        {
            let (dir, id2, repo) = (dir.clone(), id.to_string(), repo.clone());
            let meta = blocking(move || FsStorage::read_meta(&dir, &id2, &repo).map(|_| ())).await;
            if let Err(e) = meta {
                if matches!(e, StorageError::UploadNotFound(_)) {
                    drop(hasher);
                    self.forget_upload(id);
                }
                return Err(e);
            }
        }
        let data = dir.join("data");
        let mut f = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&data)
            .await
            .map_err(ioerr("opening", &data))?;
        let size = f.metadata().await.map_err(ioerr("stat", &data))?.len();
        if let Some(off) = offset {
            if off != size {
                return Err(StorageError::RangeMismatch {
                    id: id.to_string(),
                    size,
                    got: off,
                });
            }
        }
        let mut h = hasher.clone();
        let mut written = size;
        let mut failure: Option<StorageError> = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    failure = Some(StorageError::Body {
                        id: id.to_string(),
                        message: e.to_string(),
                    });
                    break;
                }
            };
            if let Err(e) = f.write_all(&chunk).await {
                failure = Some(StorageError::io(format!("writing {}", data.display()), e));
                break;
            }
            if let Some(h) = h.as_mut() {
                h.update(&chunk);
            }
            written += chunk.len() as u64;
        }
        if let Some(err) = failure {
            // Roll back to the last good offset; the stored hash state still matches it.
            let _ = f.flush().await;
            f.set_len(size).await.map_err(ioerr("truncating", &data))?;
            return Err(err);
        }
        f.flush().await.map_err(ioerr("flushing", &data))?;
        *hasher = h;
        Ok(written)
    }

    async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadInfo, StorageError> {
        // Wait for an in-flight chunk so the reported size is a consistent one.
        let state = self.upload_state(id);
        let _guard = state.lock().await;
        let dir = self.upload_dir(id);
        let (id2, repo2) = (id.to_string(), repo.clone());
        let info = blocking(move || {
            let meta = FsStorage::read_meta(&dir, &id2, &repo2)?;
            let data = dir.join("data");
            let md = std::fs::metadata(&data).map_err(ioerr("stat", &data))?;
            let started = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(meta.started);
            Ok(UploadInfo {
                id: id2,
                repo: repo2,
                size: md.len(),
                started,
                updated: md.modified().unwrap_or(started).max(started),
            })
        })
        .await;
        if matches!(info, Err(StorageError::UploadNotFound(_))) {
            drop(_guard);
            self.forget_upload(id);
        }
        info
    }

    async fn upload_commit(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
    ) -> Result<u64, StorageError> {
        let state = self.upload_state(id);
        let mut hasher = state.lock().await;
        let dir = self.upload_dir(id);
        let blob = self.blob_path(digest);
        let link = self.layer_path(repo, digest);
        let root = self.root.clone();
        let running = hasher
            .clone()
            .filter(|h| h.algorithm() == digest.algorithm());
        let (id2, repo2, digest2) = (id.to_string(), repo.clone(), digest.clone());
        let result = blocking(move || {
            FsStorage::read_meta(&dir, &id2, &repo2)?;
            let data = dir.join("data");
            let actual = match running {
                Some(h) => h.finish(),
                None => hash_file(&data, digest2.algorithm())?,
            };
            if actual != digest2 {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(StorageError::DigestMismatch {
                    expected: digest2,
                    actual,
                });
            }
            let size = std::fs::metadata(&data)
                .map_err(ioerr("stat", &data))?
                .len();
            if blob.exists() {
                touch(&blob).map_err(ioerr("touching", &blob))?;
            } else {
                std::fs::File::open(&data)
                    .and_then(|f| f.sync_all())
                    .map_err(ioerr("syncing", &data))?;
                let parent = blob.parent().expect("blob path has a parent");
                std::fs::create_dir_all(parent).map_err(ioerr("creating", parent))?;
                std::fs::rename(&data, &blob).map_err(ioerr("renaming into", &blob))?;
                // rename keeps the upload's old mtime; GC must see the blob as new.
                touch(&blob).map_err(ioerr("touching", &blob))?;
            }
            FsStorage::write_atomic(&root, &link, b"")?;
            let _ = std::fs::remove_dir_all(&dir);
            Ok(size)
        })
        .await;
        if !matches!(result, Err(StorageError::Io { .. })) {
            *hasher = None;
            drop(hasher);
            self.forget_upload(id);
        }
        result
    }

    async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<bool, StorageError> {
        let state = self.upload_state(id);
        let guard = state.lock().await;
        let dir = self.upload_dir(id);
        let (id2, repo2) = (id.to_string(), repo.clone());
        let r = blocking(move || {
            match FsStorage::read_meta(&dir, &id2, &repo2) {
                Ok(_) => {}
                Err(StorageError::UploadNotFound(_)) => return Ok(false),
                Err(e) => return Err(e),
            }
            std::fs::remove_dir_all(&dir).map_err(ioerr("removing", &dir))?;
            Ok(true)
        })
        .await;
        drop(guard);
        self.forget_upload(id);
        r
    }

    async fn upload_purge(&self, id: &str) -> Result<(), StorageError> {
        let state = self.upload_state(id);
        let guard = state.lock().await;
        let dir = self.upload_dir(id);
        not_found_ok(tokio::fs::remove_dir_all(&dir).await).map_err(ioerr("removing", &dir))?;
        drop(guard);
        self.forget_upload(id);
        Ok(())
    }

    async fn uploads(&self) -> Result<Vec<UploadInfo>, StorageError> {
        let base = self.root.join("uploads");
        blocking(move || {
            let mut out = Vec::new();
            for id in file_names(&base)? {
                let dir = base.join(&id);
                let info = dir.join("info.json");
                let meta = not_found_ok(std::fs::read(&info))
                    .map_err(ioerr("reading", &info))?
                    .and_then(|raw| serde_json::from_slice::<UploadMeta>(&raw).ok());
                let data_md = std::fs::metadata(dir.join("data")).ok();
                let size = data_md.as_ref().map(|m| m.len()).unwrap_or(0);
                let (repo, started) = match meta
                    .and_then(|m| m.repo.parse::<RepoName>().ok().map(|r| (r, m.started)))
                {
                    Some((r, s)) => (
                        r,
                        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s),
                    ),
                    None => {
                        // Damaged or still being created (info.json is written last): age it
                        // by the directory's mtime, so expiry removes it only once it is old,
                        // under a placeholder repository name.
                        let born = std::fs::metadata(&dir)
                            .and_then(|m| m.modified())
                            .unwrap_or(SystemTime::UNIX_EPOCH);
                        ("invalid".parse().expect("placeholder name is valid"), born)
                    }
                };
                let updated = data_md
                    .and_then(|m| m.modified().ok())
                    .map_or(started, |t| t.max(started));
                out.push(UploadInfo {
                    id,
                    repo,
                    size,
                    started,
                    updated,
                });
            }
            Ok(out)
        })
        .await
    }
}

fn repo_has_content(dir: &Path) -> Result<bool, StorageError> {
    if !file_names(&dir.join("_tags"))?.is_empty() {
        return Ok(true);
    }
    for sub in ["_manifests", "_layers"] {
        if !digests_under(&dir.join(sub))?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A read-only private map of a whole blob file, owned by the `Bytes` that serve it.
///
/// Blob GET from a map skips the copy from the page cache into a read buffer: the pages are
/// copied once, straight into the socket. A blob file is never written again once it has its
/// digest name (uploads go to their own files and are renamed in; GC unlinks, which leaves
/// a live map intact), so the map can't shrink under a reader and fault.
struct Mapped {
    ptr: *mut std::ffi::c_void,
    len: usize,
}

// SAFETY: the map is read-only and never changed or unmapped while shared; `Drop` runs once.
unsafe impl Send for Mapped {}
// SAFETY: as above: shared reads of immutable memory.
unsafe impl Sync for Mapped {}

impl Mapped {
    fn new(f: &std::fs::File, len: usize) -> io::Result<Mapped> {
        use rustix::mm::{madvise, mmap, Advice, MapFlags, ProtFlags};
        // SAFETY: a fresh read-only private map of `len` bytes of a file we hold open;
        // nothing else owns this address range.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::PRIVATE,
                f,
                0,
            )
        }?;
        // SAFETY: advice on the range just mapped; failure only loses read-ahead.
        let _ = unsafe { madvise(ptr, len, Advice::Sequential) };
        Ok(Mapped { ptr, len })
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the range mapped in `new`, unmapped exactly once.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}
