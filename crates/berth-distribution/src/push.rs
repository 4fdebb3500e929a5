//! Push: upload an image's layers and config, then its manifest under a tag.
//!
//! Compressed layers (what a pull received) are pushed as they are stored, so their
//! digests are the ones the registry had. Uncompressed layers (imports, commits, builds)
//! are gzip-compressed on the way, as docker does: the compressor runs on a blocking
//! thread and feeds one streamed `PATCH` (the digest is only known once the last byte
//! is out), then `PUT ?digest=` closes the upload. The gzip digest and size are kept
//! in the image store per layer; compression is deterministic (fixed level, no name or
//! time in the gzip header), so a later push to this or any registry asks for that
//! digest first and compresses again only when the registry lacks the blob.
//!
//! Per layer: `HEAD` first (`Layer already exists`); otherwise a cross-repository mount
//! from another repository of the same registry that the image is known to be in (its
//! repo digests; `Mounted from x`); otherwise an upload (`POST`, then for stored blobs a
//! monolithic `PUT ?digest=` streamed from disk). Up to five layers go at once by
//! default (daemon.json `max-concurrent-uploads`, as dockerd). The manifest is Docker
//! schema 2 when every layer carries a Docker media type, OCI otherwise (see
//! [`crate::manifest::build_manifest`]).

use crate::auth::{stored_credentials, Credentials};
use crate::client::{Client, MountOutcome, Repository};
use crate::error::{Error, Result};
use crate::manifest::{build_manifest, DOCKER_LAYER_GZIP, OCI_LAYER, OCI_LAYER_GZIP};
use crate::pargz;
use crate::progress::{short_id, Progress, Sink};
use berth_image::digest::HashingWriter;
use berth_image::{ImageStore, LayerRecord, LayerSource, Reference};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Media type of an uncompressed Docker layer.
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// gzip level of pushed layers: zlib's default, what docker uses. Changing it changes
/// the digests of layers pushed from now on.
const GZIP_LEVEL: u32 = 6;
/// Size of the chunks the compressor hands to the connection.
const CHUNK: usize = 256 * 1024;

/// Whether a stored layer is a plain tar, to be compressed for the registry: by its
/// media type, and by its first bytes (a loaded archive may hold compressed layers under
/// a plain media type; compressing those again would break them).
fn uncompressed(media_type: &str, path: &std::path::Path) -> bool {
    if !matches!(media_type, "" | OCI_LAYER | DOCKER_LAYER) {
        return false;
    }
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let head = &head[..n];
    !(head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]))
}

/// What a push stored in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub tag: String,
    /// The manifest digest.
    pub digest: String,
    /// The manifest size in bytes.
    pub size: u64,
}

/// The first line of a push stream.
pub fn push_header(target: &Reference) -> Progress {
    Progress::status(
        None,
        format!("The push refers to repository [{}]", target.name()),
    )
}

impl Client {
    /// Push the local image `source` (name or id) to `target` (a reference with a tag).
    /// Credentials default to those stored by `docker login` for the registry. On
    /// success the image gains the repo digest `target@digest`.
    pub async fn push(
        &self,
        store: &ImageStore,
        source: &str,
        target: &Reference,
        creds: Option<Credentials>,
        progress: Sink<'_>,
    ) -> Result<PushOutcome> {
        let tag = target
            .tag()
            .ok_or_else(|| Error::InvalidArgument(format!("push of {target}: a tag is required")))?
            .to_string();
        let record = store.image_record(source)?;
        let creds = creds.or_else(|| stored_credentials(target.domain()));
        let ep = self.endpoint(target.domain()).await?;
        let repo = self.repository(ep, target.path(), creds, true);
        // repositories of the same registry holding this image: mount sources
        let mount_from: Vec<String> = record
            .repo_digests
            .iter()
            .filter_map(|d| Reference::parse(d).ok())
            .filter(|r| r.domain() == target.domain() && r.path() != target.path())
            .map(|r| r.path().to_string())
            .collect();

        let layers: Vec<&LayerRecord> = record.layers.iter().rev().collect();
        for l in &layers {
            progress(Progress::status(Some(&short_id(&l.diff_id)), "Preparing"));
        }
        let parallel = self.config().uploads();
        for l in layers.iter().skip(parallel) {
            progress(Progress::status(Some(&short_id(&l.diff_id)), "Waiting"));
        }
        let content = store.content();
        // collected first: a lazy `map` closure here makes the future's lifetimes too
        // general for `tokio::spawn` callers (rust-lang/rust#102211)
        let mut jobs = Vec::with_capacity(layers.len());
        for l in &layers {
            let path = content.blob_path(&l.blob)?;
            let progress = Some((short_id(&l.diff_id), progress));
            let mount_from = &mount_from;
            let repo = &repo;
            jobs.push(async move {
                if uncompressed(&l.media_type, &path) {
                    let (digest, size) =
                        push_compressed(repo, store, l, path, mount_from, progress).await?;
                    let mt = if l.media_type.starts_with("application/vnd.docker.") {
                        DOCKER_LAYER_GZIP
                    } else {
                        OCI_LAYER_GZIP
                    };
                    Ok::<_, Error>((l.blob.clone(), (digest, mt.to_string(), size)))
                } else {
                    push_blob(repo, &l.blob, path, l.blob_size, mount_from, progress).await?;
                    Ok((
                        l.blob.clone(),
                        (l.blob.clone(), l.media_type.clone(), l.blob_size),
                    ))
                }
            });
        }
        let mut pushed = std::collections::HashMap::new();
        let mut uploads = futures_util::stream::iter(jobs).buffer_unordered(parallel);
        while let Some(res) = uploads.next().await {
            let (blob, desc) = res?;
            pushed.insert(blob, desc);
        }
        drop(uploads);

        let config_size = content.size(&record.id)?;
        push_blob(
            &repo,
            &record.id,
            content.blob_path(&record.id)?,
            config_size,
            &mount_from,
            None,
        )
        .await?;

        let descs: Vec<(String, String, u64)> = record
            .layers
            .iter()
            .map(|l| {
                pushed
                    .get(&l.blob)
                    .cloned()
                    .ok_or_else(|| Error::Protocol(format!("layer {} was not pushed", l.blob)))
            })
            .collect::<Result<_>>()?;
        let (media_type, bytes) = build_manifest(&record.id, config_size, &descs);
        let digest = repo.put_manifest(&tag, &media_type, &bytes).await?;
        let size = bytes.len() as u64;
        progress(Progress::status(
            None,
            format!("{tag}: digest: {digest} size: {size}"),
        ));
        progress(Progress::aux(
            json!({"Tag": tag, "Digest": digest, "Size": size}),
        ));

        // Record the repo digest, as dockerd does. Re-registering the image is the only
        // way the image store offers to add one, and it does not carry a parent over, so
        // images with a parent (commits) skip it rather than lose their parent.
        if record.parent.is_empty() {
            let st = store.clone();
            let id = record.id.clone();
            let sources: Vec<LayerSource> = record
                .layers
                .iter()
                .map(|l| LayerSource {
                    blob: l.blob.clone(),
                    media_type: Some(l.media_type.clone()),
                })
                .collect();
            let repo_digest = vec![target.with_digest(&digest).familiar()];
            tokio::task::spawn_blocking(move || st.create_image(&id, &sources, &[], &repo_digest))
                .await
                .map_err(|e| Error::Protocol(format!("image update task failed: {e}")))??;
        }
        Ok(PushOutcome { tag, digest, size })
    }
}

/// Whether the registry has `digest` already (`Layer already exists`) or can mount it
/// from one of `mount_from` (`Mounted from x`): then None; otherwise the location of a
/// new upload.
async fn locate(
    repo: &Repository,
    digest: &str,
    mount_from: &[String],
    say: &(dyn Fn(&str) + Sync),
) -> Result<Option<String>> {
    if repo.blob_exists(digest).await?.is_some() {
        say("Layer already exists");
        return Ok(None);
    }
    for from in mount_from {
        match repo.mount_blob(digest, from).await {
            Ok(MountOutcome::Mounted) => {
                say(&format!("Mounted from {from}"));
                return Ok(None);
            }
            Ok(MountOutcome::Upload(loc)) => return Ok(Some(loc)),
            Err(e) => tracing::debug!("mount of {digest} from {from} failed: {e}"),
        }
    }
    Ok(Some(repo.start_upload().await?))
}

/// Drive `transfer` while reporting `Pushing` progress from `counter` every 100 ms.
async fn with_progress<T>(
    transfer: impl std::future::Future<Output = Result<T>>,
    counter: &AtomicU64,
    size: u64,
    progress: &Option<(String, Sink<'_>)>,
) -> Result<T> {
    tokio::pin!(transfer);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let res = loop {
        tokio::select! {
            r = &mut transfer => break r,
            _ = tick.tick() => {
                if let Some((id, p)) = progress {
                    let n = counter.load(Ordering::Relaxed);
                    if n > 0 {
                        p(Progress::bytes(id, "Pushing", n.min(size), size));
                    }
                }
            }
        }
    };
    let out = res?;
    if let Some((id, p)) = progress {
        p(Progress::bytes(id, "Pushing", size, size));
        p(Progress::status(Some(id), "Pushed"));
    }
    Ok(out)
}

/// Make one stored blob present in the registry: already there, mounted, or uploaded.
async fn push_blob(
    repo: &Repository,
    digest: &str,
    path: PathBuf,
    size: u64,
    mount_from: &[String],
    progress: Option<(String, Sink<'_>)>,
) -> Result<()> {
    let say = |s: &str| {
        if let Some((id, p)) = &progress {
            p(Progress::status(Some(id), s));
        }
    };
    let Some(location) = locate(repo, digest, mount_from, &say).await? else {
        return Ok(());
    };
    let sent = Arc::new(AtomicU64::new(0));
    let put = repo.put_blob_file(&location, digest, &path, size, sent.clone());
    with_progress(put, &sent, size, &progress).await
}

/// Make an uncompressed layer present in the registry as gzip: the gzip blob known
/// from an earlier push when the registry has it or can mount it, else compressed now
/// and uploaded. Returns the gzip blob's digest and size.
async fn push_compressed(
    repo: &Repository,
    store: &ImageStore,
    layer: &LayerRecord,
    path: PathBuf,
    mount_from: &[String],
    progress: Option<(String, Sink<'_>)>,
) -> Result<(String, u64)> {
    let say = |s: &str| {
        if let Some((id, p)) = &progress {
            p(Progress::status(Some(id), s));
        }
    };
    let st = store.clone();
    let blob = layer.blob.clone();
    let known = tokio::task::spawn_blocking(move || st.compressed_layer(&blob))
        .await
        .map_err(|e| Error::Protocol(format!("layer lookup task failed: {e}")))??;
    let location = match &known {
        Some((digest, size)) => match locate(repo, digest, mount_from, &say).await? {
            None => return Ok((digest.clone(), *size)),
            Some(loc) => loc,
        },
        None => repo.start_upload().await?,
    };
    let read = Arc::new(AtomicU64::new(0));
    let result: Mutex<Option<Compressed>> = Mutex::new(None);
    let body = || {
        let (body, done) = gzip_body(path.clone(), read.clone());
        *result.lock().expect("compression result lock") = Some(done);
        body
    };
    let transfer = async {
        let next = repo.patch_upload(&location, &body).await?;
        let done = result
            .lock()
            .expect("compression result lock")
            .take()
            .ok_or_else(|| Error::Protocol("no compressed body was sent".into()))?;
        let (digest, size) = done
            .await
            .map_err(|_| Error::Protocol(format!("compression of {} stopped", layer.blob)))??;
        repo.finish_upload(&next, &digest).await?;
        Ok((digest, size))
    };
    let (digest, size) = with_progress(transfer, &read, layer.blob_size, &progress).await?;
    if known.as_ref() != Some(&(digest.clone(), size)) {
        let st = store.clone();
        let (blob, d) = (layer.blob.clone(), digest.clone());
        tokio::task::spawn_blocking(move || st.set_compressed_layer(&blob, &d, size))
            .await
            .map_err(|e| Error::Protocol(format!("layer record task failed: {e}")))??;
    }
    Ok((digest, size))
}

/// Where the digest and size of a gzip stream arrive once it is complete.
type Compressed = tokio::sync::oneshot::Receiver<Result<(String, u64)>>;

/// A request body of the gzip of the file at `path`, compressed on a blocking thread;
/// `read` counts the file bytes consumed. The digest and size of the gzip stream arrive
/// on the receiver before the body ends.
fn gzip_body(path: PathBuf, read: Arc<AtomicU64>) -> (reqwest::Body, Compressed) {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    read.store(0, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || {
        let out = ChunkSender {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let res = compress_file(&path, out, &read);
        if let Err(e) = &res {
            // fail the request too, not only the result
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        let _ = done_tx.send(res);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (reqwest::Body::wrap_stream(stream), done_rx)
}

fn compress_file(
    path: &std::path::Path,
    out: ChunkSender,
    read: &AtomicU64,
) -> Result<(String, u64)> {
    let ctx = || format!("compress {}", path.display());
    let f = std::fs::File::open(path).map_err(|e| Error::io(ctx(), e))?;
    let mut hw = HashingWriter::new(out);
    // All cores: one core deflates about 50 MB/s at this level (see pargz).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    pargz::compress(f, &mut hw, GZIP_LEVEL, threads, |n| {
        read.fetch_add(n as u64, Ordering::Relaxed);
    })
    .map_err(|e| Error::io(ctx(), e))?;
    hw.flush().map_err(|e| Error::io(ctx(), e))?;
    let (digest, size, _) = hw.finish();
    Ok((digest, size))
}

/// The compressor's output: chunks of [`CHUNK`] bytes onto the request body's channel.
struct ChunkSender {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "upload closed"))
    }
}
