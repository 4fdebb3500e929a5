//! The content store: every blob (layers as received, configs, manifests) addressed by
//! its sha256 digest under `content/blobs/sha256/<hex>`.
//!
//! Writes stream into `content/ingest/<random>` while being hashed, so nothing is held
//! in memory; on commit the digest is checked against the expected one (when the caller
//! knows it), the file is fsynced and renamed into place. A blob is therefore either
//! absent or complete and correct: readers never see a partial blob, and two writers of
//! the same blob simply race to an identical rename.
//!
//! Downloads of a blob whose digest is known ([`ContentStore::resume`]) are the exception
//! to the random ingest name: they go to `ingest/<hex>.partial`, which survives a failed
//! transfer (and a daemon restart, for a week) so that the next pull can continue it with
//! an HTTP `Range` request instead of starting over. The file is `flock`ed while a writer
//! holds it: a second pull of the same blob at the same time gets an ordinary random
//! ingest file rather than interleaving its bytes into the first one's. The bytes already
//! there are hashed again on resume; the digest is still checked over the whole blob at
//! commit, so a corrupt leftover costs one failed pull, never a wrong blob.

use crate::digest::{hex_part, is_sha256_digest, HashingWriter, SHA256_PREFIX};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a partial download is kept for a later resume.
const PARTIAL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const PARTIAL_SUFFIX: &str = ".partial";

/// Content store failures.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("content store {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn ioerr<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContentError + 'a {
    move |source| ContentError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A digest-addressed blob store on disk.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Open (creating) the store rooted at `root` (`<data-root>/content`).
    pub fn open(root: &Path) -> Result<ContentStore, ContentError> {
        for sub in ["blobs/sha256", "ingest"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(ioerr("create", &p))?;
        }
        Ok(ContentStore {
            root: root.to_path_buf(),
        })
    }

    /// Path of a blob (whether or not it exists).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ContentError> {
        if !is_sha256_digest(digest) {
            return Err(ContentError::InvalidDigest(digest.to_string()));
        }
        Ok(self.root.join("blobs/sha256").join(hex_part(digest)))
    }

    pub fn exists(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    /// Size of a stored blob.
    pub fn size(&self, digest: &str) -> Result<u64, ContentError> {
        let p = self.blob_path(digest)?;
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ContentError::NotFound(digest.to_string()))
            }
            Err(e) => Err(ioerr("stat", &p)(e)),
        }
    }

    /// Open a blob for streaming reads.
    pub fn open_blob(&self, digest: &str) -> Result<File, ContentError> {
        let p = self.blob_path(digest)?;
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound(digest.to_string())
            } else {
                ioerr("open", &p)(e)
            }
        })
    }

    /// Read a (small) blob fully: configs and manifests.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ContentError> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound(digest.to_string())
            } else {
                ioerr("read", &p)(e)
            }
        })
    }

    /// Store a small in-memory blob and return its digest.
    pub fn write_blob(&self, data: &[u8]) -> Result<String, ContentError> {
        let mut w = self.writer()?;
        w.write_all(data).map_err(ioerr("write", &w.path.clone()))?;
        let (digest, _) = w.commit(None)?;
        Ok(digest)
    }

    /// Start a streaming write into the ingest area.
    pub fn writer(&self) -> Result<ContentWriter, ContentError> {
        let name = format!("{:016x}", rand::random::<u64>());
        let path = self.root.join("ingest").join(name);
        let f = File::create(&path).map_err(ioerr("create", &path))?;
        Ok(ContentWriter {
            store: self.clone(),
            inner: Some(HashingWriter::new(BufWriter::with_capacity(256 * 1024, f))),
            path,
            keep_partial: false,
            synced: 0,
        })
    }

    fn partial_path(&self, digest: &str) -> Result<PathBuf, ContentError> {
        if !is_sha256_digest(digest) {
            return Err(ContentError::InvalidDigest(digest.to_string()));
        }
        Ok(self
            .root
            .join("ingest")
            .join(format!("{}{PARTIAL_SUFFIX}", hex_part(digest))))
    }

    /// Bytes kept from an interrupted download of `digest`, if any.
    pub fn partial_size(&self, digest: &str) -> Option<u64> {
        let p = self.partial_path(digest).ok()?;
        fs::metadata(p).ok().map(|m| m.len())
    }

    /// A writer for a download of the known blob `digest` that continues a partial
    /// download kept from an earlier attempt: its bytes are hashed and
    /// [`ContentWriter::len`] says how many there are (the offset to resume from). If the
    /// writer is dropped without commit the file is kept for the next attempt. When
    /// another writer holds the same partial file, this one is an ordinary fresh writer.
    pub fn resume(&self, digest: &str) -> Result<ContentWriter, ContentError> {
        let path = self.partial_path(digest)?;
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(ioerr("open", &path))?;
        match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return self.writer(),
            Err(e) => return Err(ioerr("lock", &path)(e.into())),
        }
        let mut hw = HashingWriter::new(BufWriter::with_capacity(
            256 * 1024,
            f.try_clone().map_err(ioerr("open", &path))?,
        ));
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ioerr("read", &path)(e)),
            };
            hw.absorb(&buf[..n]);
        }
        // the clone shares the file offset, which the reads left at the end
        Ok(ContentWriter {
            store: self.clone(),
            inner: Some(hw),
            path,
            keep_partial: true,
            synced: 0,
        })
    }

    /// Remove a blob; missing is fine (idempotent GC).
    pub fn delete(&self, digest: &str) -> Result<bool, ContentError> {
        let p = self.blob_path(digest)?;
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ioerr("remove", &p)(e)),
        }
    }

    /// Remove leftovers of interrupted writes (called at open time by the image store).
    pub fn clean_ingest(&self) -> Result<(), ContentError> {
        let dir = self.root.join("ingest");
        for entry in fs::read_dir(&dir).map_err(ioerr("read", &dir))? {
            let entry = entry.map_err(ioerr("read", &dir))?;
            if entry
                .file_name()
                .to_string_lossy()
                .ends_with(PARTIAL_SUFFIX)
            {
                let fresh = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age < PARTIAL_TTL);
                if fresh {
                    continue;
                }
            }
            // best effort: a concurrent writer in another store handle may own it, but a
            // store is opened once per daemon, before any write
            let _ = fs::remove_file(entry.path());
        }
        Ok(())
    }
}

/// A blob being written; dropped without commit, its ingest file is removed.
pub struct ContentWriter {
    store: ContentStore,
    inner: Option<HashingWriter<BufWriter<File>>>,
    path: PathBuf,
    /// A resumable download: kept on drop without commit.
    keep_partial: bool,
    /// Bytes whose writeback was started (see [`WRITEBACK_STEP`]).
    synced: u64,
}

/// Writeback of a blob being written is started every this many bytes, so that the
/// disk works while the rest arrives and the fsync of the commit finds little left to
/// do (it is on the critical path of a pull; the writes before it are not).
const WRITEBACK_STEP: u64 = 8 << 20;

impl ContentWriter {
    /// Bytes written so far (including those kept from an earlier attempt).
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, HashingWriter::len)
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ingest file (to replay the bytes kept from an earlier attempt).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Give up on this blob: the ingest file goes, even a resumable one (what it holds
    /// is known to be wrong).
    pub fn discard(mut self) {
        self.inner.take();
        let _ = fs::remove_file(&self.path);
    }

    /// Drop everything written so far and start the blob again from its first byte.
    pub fn restart(&mut self) -> Result<(), ContentError> {
        let hw = self.inner.as_mut().expect("writer used after commit");
        hw.get_mut()
            .flush()
            .map_err(|e| ioerr("flush", &self.path)(e))?;
        let f = hw.get_mut().get_mut();
        f.set_len(0).map_err(ioerr("truncate", &self.path))?;
        f.rewind().map_err(ioerr("seek", &self.path))?;
        hw.reset();
        self.synced = 0;
        Ok(())
    }

    /// Verify, fsync and move into place. Returns the digest and size.
    pub fn commit(mut self, expected: Option<&str>) -> Result<(String, u64), ContentError> {
        let inner = self.inner.take().expect("commit is called once");
        let (digest, size, buf) = inner.finish();
        let file = buf
            .into_inner()
            .map_err(|e| ioerr("flush", &self.path)(e.into_error()))?;
        if let Some(exp) = expected {
            if exp != digest {
                let _ = fs::remove_file(&self.path);
                return Err(ContentError::DigestMismatch {
                    expected: exp.to_string(),
                    actual: digest,
                });
            }
        }
        file.sync_all().map_err(ioerr("fsync", &self.path))?;
        drop(file);
        let target = self.store.blob_path(&digest)?;
        fs::rename(&self.path, &target).map_err(ioerr("rename", &target))?;
        debug_assert!(digest.starts_with(SHA256_PREFIX));
        Ok((digest, size))
    }
}

impl Write for ContentWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let hw = self.inner.as_mut().expect("writer used after commit");
        let n = hw.write(buf)?;
        let len = hw.len();
        if len - self.synced >= WRITEBACK_STEP {
            hw.get_mut().flush()?;
            let f = hw.get_mut().get_ref();
            // SAFETY: sync_file_range only reads the descriptor, which `f` keeps open;
            // failing is harmless (the commit's fsync does the whole job then)
            unsafe {
                libc::sync_file_range(
                    std::os::fd::AsRawFd::as_raw_fd(f),
                    self.synced as libc::off64_t,
                    (len - self.synced) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.synced = len;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner
            .as_mut()
            .expect("writer used after commit")
            .flush()
    }
}

impl Drop for ContentWriter {
    fn drop(&mut self) {
        // a kept partial download is flushed by the BufWriter's own drop
        if self.inner.is_some() && !self.keep_partial {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_digest;

    #[test]
    fn write_verify_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let d = cs.write_blob(b"hello").unwrap();
        assert_eq!(d, sha256_digest(b"hello"));
        assert_eq!(cs.read_blob(&d).unwrap(), b"hello");
        assert_eq!(cs.size(&d).unwrap(), 5);

        let mut w = cs.writer().unwrap();
        w.write_all(b"other").unwrap();
        let err = w.commit(Some(&d)).unwrap_err();
        assert!(matches!(err, ContentError::DigestMismatch { .. }));
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
        assert!(cs.delete(&d).unwrap());
        assert!(!cs.delete(&d).unwrap());
        assert!(matches!(cs.read_blob(&d), Err(ContentError::NotFound(_))));
        assert!(cs.blob_path("sha256:../x").is_err());
    }

    #[test]
    fn interrupted_download_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let d = sha256_digest(&data);

        let mut w = cs.resume(&d).unwrap();
        assert_eq!(w.len(), 0);
        w.write_all(&data[..100_000]).unwrap();
        // a second download of the same blob meanwhile gets its own file
        let other = cs.resume(&d).unwrap();
        assert_eq!(other.len(), 0);
        assert_ne!(other.path(), w.path());
        drop(other);
        drop(w);
        assert_eq!(cs.partial_size(&d), Some(100_000));
        // kept across a reopen of the store
        cs.clean_ingest().unwrap();
        assert_eq!(cs.partial_size(&d), Some(100_000));
        assert!(!cs.exists(&d));

        let mut w = cs.resume(&d).unwrap();
        assert_eq!(w.len(), 100_000);
        w.write_all(&data[100_000..]).unwrap();
        assert_eq!(w.commit(Some(&d)).unwrap(), (d.clone(), 300_000));
        assert_eq!(cs.read_blob(&d).unwrap(), data);
        assert_eq!(cs.partial_size(&d), None);

        // a leftover that does not hash right is refused and removed, never stored
        let bad = sha256_digest(b"bad");
        let mut w = cs.resume(&bad).unwrap();
        w.write_all(b"bxd").unwrap();
        drop(w);
        let w = cs.resume(&bad).unwrap();
        assert!(matches!(
            w.commit(Some(&bad)),
            Err(ContentError::DigestMismatch { .. })
        ));
        assert_eq!(cs.partial_size(&bad), None);
        assert!(!cs.exists(&bad));

        // restart: the kept bytes are dropped
        let mut w = cs.resume(&d).unwrap();
        w.write_all(b"junk").unwrap();
        w.restart().unwrap();
        assert_eq!(w.len(), 0);
        w.write_all(&data).unwrap();
        w.commit(Some(&d)).unwrap();
        assert_eq!(cs.read_blob(&d).unwrap(), data);
    }
}
