//! The storage driver contract: everything the registry persists goes through [`Storage`].
//!
//! The model follows distribution's: blobs live once in a global, content-addressed space;
//! repositories hold *links* (a layer link says "this repo may serve this blob", a manifest
//! link says "this digest is a manifest of this repo, with this media type"), tags pointing
//! at manifest digests, and a referrers index (subject digest → referrer manifest digests).
//! Uploads are sessions with an id; their data becomes a blob only through
//! [`Storage::upload_commit`], which must verify the digest before anything is visible.
//!
//! Drivers decide how to be atomic; the filesystem driver writes to a temporary file and
//! renames. Every driver must pass [`conformance::run_all`].
//!
//! Blob modification times matter: garbage collection sweeps only blobs older than the start
//! of its mark phase, so every operation that makes a blob referenced again (linking, a
//! commit of content that already exists) must refresh it with [`Storage::blob_touch`] or
//! an equivalent.

pub mod conformance;
pub mod fs;

use std::io;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::AsyncRead;

use crate::digest::Digest;
use crate::names::{RepoName, Tag};

pub use fs::FsStorage;

/// Errors a storage driver reports.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob {0} not found")]
    BlobNotFound(Digest),
    #[error("upload {0} not found")]
    UploadNotFound(String),
    #[error("upload {id} is at offset {size}, a chunk starting at {got} is out of order")]
    RangeMismatch { id: String, size: u64, got: u64 },
    #[error("content digest mismatch: expected {expected}, computed {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("reading the request body for upload {id}: {message}")]
    Body { id: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("corrupt storage entry {0}")]
    Corrupt(String),
}

impl StorageError {
    /// Wrap an I/O error with what was being done and to which path.
    pub fn io(context: impl Into<String>, source: io::Error) -> StorageError {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A reader over (a range of) a blob.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// The body of an upload chunk as it arrives from the network.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// Size and last-reference time of a stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    pub size: u64,
    /// Last time the blob was written or touched; GC compares it with its mark start.
    pub modified: SystemTime,
}

/// State of an in-progress upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub id: String,
    pub repo: RepoName,
    /// Bytes received so far.
    pub size: u64,
    pub started: SystemTime,
    /// Last time data arrived (the start if none has); expiry counts idleness from here.
    pub updated: SystemTime,
}

/// A storage driver. All methods are safe to call concurrently.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    // --- global blobs ---

    /// Size and modification time of a blob, `None` if absent.
    async fn blob_stat(&self, digest: &Digest) -> Result<Option<BlobInfo>, StorageError>;
    /// Read `len` bytes of a blob starting at `offset`.
    async fn blob_open(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Result<BlobReader, StorageError>;
    /// Bytes `offset..offset + len` of a blob as one shared buffer, when the backend can
    /// hand them out without copying (a memory map); `None` means read with
    /// [`Storage::blob_open`].
    async fn blob_mapped(
        &self,
        _digest: &Digest,
        _offset: u64,
        _len: u64,
    ) -> Result<Option<Bytes>, StorageError> {
        Ok(None)
    }
    /// Read a whole (small) blob into memory; used for manifests.
    async fn blob_read(&self, digest: &Digest) -> Result<Bytes, StorageError>;
    /// Store `data` as a blob after checking it hashes to `digest`. If the blob exists
    /// already it is touched instead.
    async fn blob_put(&self, digest: &Digest, data: Bytes) -> Result<(), StorageError>;
    /// Refresh a blob's modification time; `false` if it does not exist.
    async fn blob_touch(&self, digest: &Digest) -> Result<bool, StorageError>;
    /// Remove a blob; `false` if it did not exist.
    async fn blob_delete(&self, digest: &Digest) -> Result<bool, StorageError>;
    /// Every stored blob.
    async fn blob_list(&self) -> Result<Vec<(Digest, BlobInfo)>, StorageError>;

    // --- repositories ---

    /// All repositories that hold any link or tag, sorted.
    async fn repositories(&self) -> Result<Vec<RepoName>, StorageError>;
    /// Whether the repository holds anything.
    async fn repo_exists(&self, repo: &RepoName) -> Result<bool, StorageError>;

    async fn layer_link(&self, repo: &RepoName, digest: &Digest) -> Result<(), StorageError>;
    async fn layer_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool, StorageError>;
    async fn layer_unlink(&self, repo: &RepoName, digest: &Digest) -> Result<bool, StorageError>;
    async fn layer_links(&self, repo: &RepoName) -> Result<Vec<Digest>, StorageError>;

    async fn manifest_link(
        &self,
        repo: &RepoName,
        digest: &Digest,
        media_type: &str,
    ) -> Result<(), StorageError>;
    /// The media type a manifest was pushed with, `None` if not a manifest of `repo`.
    async fn manifest_media_type(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<String>, StorageError>;
    async fn manifest_unlink(&self, repo: &RepoName, digest: &Digest)
        -> Result<bool, StorageError>;
    async fn manifest_links(&self, repo: &RepoName) -> Result<Vec<Digest>, StorageError>;

    async fn tag_set(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<(), StorageError>;
    async fn tag_get(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>, StorageError>;
    async fn tag_delete(&self, repo: &RepoName, tag: &Tag) -> Result<bool, StorageError>;
    /// Tags of a repository with their digests, sorted by tag.
    async fn tags(&self, repo: &RepoName) -> Result<Vec<(Tag, Digest)>, StorageError>;

    async fn referrer_add(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<(), StorageError>;
    async fn referrer_remove(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<(), StorageError>;
    /// Referrer manifest digests recorded for `subject`, sorted.
    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
    ) -> Result<Vec<Digest>, StorageError>;

    // --- uploads ---

    /// Open an upload session; returns its id (lower-case hex, safe in paths and URLs).
    async fn upload_start(&self, repo: &RepoName) -> Result<String, StorageError>;
    /// Append a chunk. `offset`, when given, must equal the bytes received so far
    /// ([`StorageError::RangeMismatch`] otherwise). If the body fails midway the upload is
    /// rolled back to where it was. Returns the new size.
    async fn upload_write(
        &self,
        repo: &RepoName,
        id: &str,
        offset: Option<u64>,
        body: ByteStream,
    ) -> Result<u64, StorageError>;
    async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadInfo, StorageError>;
    /// Verify the upload's content against `digest`, make it the blob `digest` (or touch the
    /// existing one), link it into `repo` and end the session. On a digest mismatch the
    /// session is discarded. Returns the blob size.
    async fn upload_commit(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
    ) -> Result<u64, StorageError>;
    /// Discard an upload; `false` if it did not exist.
    async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<bool, StorageError>;
    /// Remove an upload session whatever its repository or state (expiry).
    async fn upload_purge(&self, id: &str) -> Result<(), StorageError>;
    /// Every open upload session, for expiry. A session without readable metadata
    /// (damaged, or still being created) is listed with a driver-chosen age and a
    /// placeholder repository, so expiry removes it once it is old.
    async fn uploads(&self) -> Result<Vec<UploadInfo>, StorageError>;
}
