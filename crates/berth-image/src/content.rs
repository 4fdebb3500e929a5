//! The content store: every blob (layers as received, configs, manifests) addressed by
//! its sha256 digest under `content/blobs/sha256/<hex>`.
//!
//! Writes stream into `content/ingest/<random>` while being hashed, so nothing is held
//! in memory; on commit the digest is checked against the expected one (when the caller
//! knows it), the file is fsynced and renamed into place. A blob is therefore either
//! absent or complete and correct: readers never see a partial blob, and two writers of
//! the same blob simply race to an identical rename.

use crate::digest::{hex_part, is_sha256_digest, HashingWriter, SHA256_PREFIX};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

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
}

impl ContentWriter {
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
        self.inner
            .as_mut()
            .expect("writer used after commit")
            .write(buf)
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
        if self.inner.is_some() {
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
}
