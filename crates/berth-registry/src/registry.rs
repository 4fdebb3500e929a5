//! The registry's domain logic, free of HTTP: what it means to upload, mount, put and get a
//! manifest, list tags and referrers. The HTTP layer (`http`) turns requests into these
//! calls and results into responses; tests can call this API directly.
//!
//! Concurrency with garbage collection: every operation that makes a blob referenced
//! (commit of an upload, mount, manifest put) runs under the read side of `gc_lock` and
//! touches the blobs it references; the GC sweep runs under the write side and deletes only
//! blobs older than its mark start. So a blob referenced after the mark started is young
//! and spared, and one referenced before it was seen by the mark.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::RwLock;

use crate::digest::Digest;
use crate::error::RegistryError;
use crate::manifest::{self, ManifestInfo, OCI_INDEX};
use crate::names::{Reference, RepoName};
use crate::storage::{BlobInfo, BlobReader, ByteStream, Storage, UploadInfo};

/// Behaviour switches of a [`Registry`].
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    pub delete_enabled: bool,
    pub manifest_max_bytes: u64,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            delete_enabled: true,
            manifest_max_bytes: 4 << 20,
        }
    }
}

/// A stored manifest as served.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub body: Bytes,
}

/// Result of a manifest put.
#[derive(Debug, Clone)]
pub struct PutManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

/// One page of a sorted listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<String>,
    /// Whether more items follow the last one returned.
    pub more: bool,
}

/// Paginate a sorted list: items strictly after `last`, at most `n` of them.
pub fn paginate(sorted: Vec<String>, n: Option<usize>, last: Option<&str>) -> Page {
    let mut items: Vec<String> = match last {
        Some(l) => sorted.into_iter().filter(|s| s.as_str() > l).collect(),
        None => sorted,
    };
    let more = match n {
        Some(n) if items.len() > n => {
            items.truncate(n);
            true
        }
        _ => false,
    };
    Page { items, more }
}

/// The registry service.
pub struct Registry {
    storage: Arc<dyn Storage>,
    opts: RegistryOptions,
    pub(crate) gc_lock: RwLock<()>,
}

impl Registry {
    pub fn new(storage: Arc<dyn Storage>, opts: RegistryOptions) -> Registry {
        Registry {
            storage,
            opts,
            gc_lock: RwLock::new(()),
        }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.opts
    }

    // ---------- blobs ----------

    /// A blob the repository may serve: linked as a layer or as a manifest, and present.
    pub async fn stat_blob(&self, repo: &RepoName, d: &Digest) -> Result<BlobInfo, RegistryError> {
        let linked = self.storage.layer_linked(repo, d).await?
            || self.storage.manifest_media_type(repo, d).await?.is_some();
        if !linked {
            return Err(RegistryError::BlobUnknown(d.clone()));
        }
        self.storage
            .blob_stat(d)
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(d.clone()))
    }

    pub async fn open_blob(
        &self,
        d: &Digest,
        offset: u64,
        len: u64,
    ) -> Result<BlobReader, RegistryError> {
        Ok(self.storage.blob_open(d, offset, len).await?)
    }

    /// [`Self::open_blob`] as one shared, uncopied buffer where the storage can map it.
    pub async fn mapped_blob(
        &self,
        d: &Digest,
        offset: u64,
        len: u64,
    ) -> Result<Option<Bytes>, RegistryError> {
        Ok(self.storage.blob_mapped(d, offset, len).await?)
    }

    /// Unlink a blob from a repository (its content goes at the next GC).
    pub async fn delete_blob(&self, repo: &RepoName, d: &Digest) -> Result<(), RegistryError> {
        if !self.opts.delete_enabled {
            return Err(RegistryError::Unsupported("deletes are disabled".into()));
        }
        if !self.storage.layer_unlink(repo, d).await? {
            return Err(RegistryError::BlobUnknown(d.clone()));
        }
        Ok(())
    }

    // ---------- uploads ----------

    pub async fn start_upload(&self, repo: &RepoName) -> Result<String, RegistryError> {
        Ok(self.storage.upload_start(repo).await?)
    }

    /// Link `d` from `from` into `repo` if `from` holds it; `false` means "not mountable".
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        from: &RepoName,
        d: &Digest,
    ) -> Result<bool, RegistryError> {
        let _gc = self.gc_lock.read().await;
        if !self.storage.layer_linked(from, d).await? {
            return Ok(false);
        }
        if !self.storage.blob_touch(d).await? {
            return Ok(false);
        }
        self.storage.layer_link(repo, d).await?;
        Ok(true)
    }

    pub async fn write_upload(
        &self,
        repo: &RepoName,
        id: &str,
        offset: Option<u64>,
        body: ByteStream,
    ) -> Result<u64, RegistryError> {
        Ok(self.storage.upload_write(repo, id, offset, body).await?)
    }

    pub async fn upload_status(
        &self,
        repo: &RepoName,
        id: &str,
    ) -> Result<UploadInfo, RegistryError> {
        Ok(self.storage.upload_status(repo, id).await?)
    }

    /// Verify and publish an upload as blob `d` linked into `repo`.
    pub async fn finish_upload(
        &self,
        repo: &RepoName,
        id: &str,
        d: &Digest,
    ) -> Result<u64, RegistryError> {
        let _gc = self.gc_lock.read().await;
        Ok(self.storage.upload_commit(repo, id, d).await?)
    }

    pub async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<(), RegistryError> {
        if !self.storage.upload_cancel(repo, id).await? {
            return Err(RegistryError::UploadUnknown(id.to_string()));
        }
        Ok(())
    }

    /// Remove uploads idle (no data received) for more than `max_age`; returns how many.
    pub async fn purge_expired_uploads(&self, max_age: Duration) -> Result<usize, RegistryError> {
        let now = SystemTime::now();
        let mut n = 0;
        for u in self.storage.uploads().await? {
            if now.duration_since(u.updated).unwrap_or_default() > max_age {
                self.storage.upload_purge(&u.id).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    // ---------- manifests ----------

    /// Validate and store a manifest under a tag or digest.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        body: Bytes,
        content_type: Option<&str>,
    ) -> Result<PutManifest, RegistryError> {
        if body.len() as u64 > self.opts.manifest_max_bytes {
            return Err(RegistryError::ManifestTooLarge {
                size: body.len() as u64,
                limit: self.opts.manifest_max_bytes,
            });
        }
        let info = manifest::parse(&body, content_type)
            .map_err(|e| RegistryError::ManifestInvalid(e.to_string()))?;
        let digest = match reference {
            Reference::Digest(d) => {
                let actual = d.algorithm().digest(&body);
                if &actual != d {
                    return Err(RegistryError::DigestMismatch {
                        expected: d.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => Digest::sha256_of(&body),
        };
        let _gc = self.gc_lock.read().await;
        for b in &info.blobs {
            // Touching doubles as the existence check and protects the blob from a GC
            // whose mark started before this manifest existed.
            if !self.storage.layer_linked(repo, b).await? || !self.storage.blob_touch(b).await? {
                return Err(RegistryError::ManifestBlobUnknown(b.clone()));
            }
        }
        for m in &info.manifests {
            if self.storage.manifest_media_type(repo, m).await?.is_none()
                || !self.storage.blob_touch(m).await?
            {
                return Err(RegistryError::ManifestBlobUnknown(m.clone()));
            }
        }
        self.storage.blob_put(&digest, body).await?;
        self.storage
            .manifest_link(repo, &digest, &info.media_type)
            .await?;
        if let Some(subject) = &info.subject {
            self.storage.referrer_add(repo, subject, &digest).await?;
        }
        if let Reference::Tag(t) = reference {
            self.storage.tag_set(repo, t, &digest).await?;
        }
        Ok(PutManifest {
            digest,
            subject: info.subject,
        })
    }

    async fn resolve(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Digest, RegistryError> {
        match reference {
            Reference::Digest(d) => Ok(d.clone()),
            Reference::Tag(t) => self
                .storage
                .tag_get(repo, t)
                .await?
                .ok_or_else(|| RegistryError::ManifestUnknown(reference.to_string())),
        }
    }

    /// Fetch a manifest; `accept` holds the request's Accept header values. A tag whose
    /// manifest type the client does not accept is `MANIFEST_UNKNOWN`.
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        accept: &[String],
    ) -> Result<StoredManifest, RegistryError> {
        let digest = self.resolve(repo, reference).await?;
        let media_type = self
            .storage
            .manifest_media_type(repo, &digest)
            .await?
            .ok_or_else(|| RegistryError::ManifestUnknown(reference.to_string()))?;
        // Negotiate only for tags, as distribution does: a digest names exact bytes, and a
        // client that asks for them by digest gets them whatever it lists in Accept.
        if matches!(reference, Reference::Tag(_)) && !manifest::accepts(accept, &media_type) {
            return Err(RegistryError::ManifestUnknown(format!(
                "{reference} has media type {media_type}, which the Accept header excludes"
            )));
        }
        let body = match self.storage.blob_read(&digest).await {
            Ok(b) => b,
            Err(crate::storage::StorageError::BlobNotFound(_)) => {
                return Err(RegistryError::ManifestUnknown(reference.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        Ok(StoredManifest {
            digest,
            media_type,
            body,
        })
    }

    /// Delete a tag, or a manifest (with every tag pointing at it) by digest.
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(), RegistryError> {
        if !self.opts.delete_enabled {
            return Err(RegistryError::Unsupported("deletes are disabled".into()));
        }
        match reference {
            Reference::Tag(t) => {
                if !self.storage.tag_delete(repo, t).await? {
                    return Err(RegistryError::ManifestUnknown(reference.to_string()));
                }
            }
            Reference::Digest(d) => {
                if self.storage.manifest_media_type(repo, d).await?.is_none() {
                    return Err(RegistryError::ManifestUnknown(reference.to_string()));
                }
                if let Ok(body) = self.storage.blob_read(d).await {
                    if let Ok(info) = manifest::parse(&body, None) {
                        if let Some(subject) = info.subject {
                            self.storage.referrer_remove(repo, &subject, d).await?;
                        }
                    }
                }
                for (t, td) in self.storage.tags(repo).await? {
                    if &td == d {
                        self.storage.tag_delete(repo, &t).await?;
                    }
                }
                self.storage.manifest_unlink(repo, d).await?;
            }
        }
        Ok(())
    }

    // ---------- listings ----------

    /// Tags of a repository, sorted, paginated.
    pub async fn tags(
        &self,
        repo: &RepoName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Page, RegistryError> {
        if !self.storage.repo_exists(repo).await? {
            return Err(RegistryError::NameUnknown(repo.to_string()));
        }
        let tags: Vec<String> = self
            .storage
            .tags(repo)
            .await?
            .into_iter()
            .map(|(t, _)| t.to_string())
            .collect();
        Ok(paginate(tags, n, last))
    }

    /// Repositories for which `visible` holds, sorted, paginated.
    pub async fn catalog(
        &self,
        n: Option<usize>,
        last: Option<&str>,
        visible: impl Fn(&RepoName) -> bool,
    ) -> Result<Page, RegistryError> {
        let repos: Vec<String> = self
            .storage
            .repositories()
            .await?
            .into_iter()
            .filter(|r| visible(r))
            .map(|r| r.to_string())
            .collect();
        Ok(paginate(repos, n, last))
    }

    /// The referrers index for `subject`; with `artifact_type`, only matching descriptors.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Value, RegistryError> {
        let mut manifests = Vec::new();
        for d in self.storage.referrers(repo, subject).await? {
            let Some(media_type) = self.storage.manifest_media_type(repo, &d).await? else {
                continue;
            };
            let Ok(body) = self.storage.blob_read(&d).await else {
                continue;
            };
            let Ok(info) = manifest::parse(&body, Some(&media_type)) else {
                continue;
            };
            let at = info.effective_artifact_type();
            if let Some(filter) = artifact_type {
                if at.as_deref() != Some(filter) {
                    continue;
                }
            }
            manifests.push(descriptor(&d, &media_type, body.len(), &info, at));
        }
        Ok(json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
    }
}

fn descriptor(
    d: &Digest,
    media_type: &str,
    size: usize,
    info: &ManifestInfo,
    artifact_type: Option<String>,
) -> Value {
    let mut m = Map::new();
    m.insert("mediaType".into(), json!(media_type));
    m.insert("digest".into(), json!(d.to_string()));
    m.insert("size".into(), json!(size));
    if let Some(at) = artifact_type {
        m.insert("artifactType".into(), json!(at));
    }
    if let Some(a) = &info.annotations {
        m.insert("annotations".into(), Value::Object(a.clone()));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            paginate(all.clone(), Some(2), None),
            Page {
                items: vec!["a".into(), "b".into()],
                more: true
            }
        );
        assert_eq!(
            paginate(all.clone(), Some(2), Some("b")),
            Page {
                items: vec!["c".into(), "d".into()],
                more: false
            }
        );
        assert_eq!(paginate(all.clone(), Some(0), None).items.len(), 0);
        assert_eq!(paginate(all, None, Some("c")).items, vec!["d".to_string()]);
    }
}
