//! Pull: resolve a reference to an image manifest, download what the content store
//! lacks, then register the image with the image store.
//!
//! Pull is two phases so that the Engine API can answer a missing repository or tag with
//! a plain 404 before it commits to a 200 progress stream: [`Client::resolve`] talks to
//! the registry until the image manifest is known; [`ResolvedPull::pull`] transfers and
//! reports progress.
//!
//! # The transfer pipeline
//!
//! The image config is fetched first: its diff ids give every layer's chain id, i.e. the
//! snapshot it unpacks into, so a layer can be unpacked *while it downloads* instead of
//! after. Per layer, three stages run at once, connected by small bounded channels of
//! the connection's own `Bytes` chunks (refcounted, never copied between stages):
//!
//! 1. the async task reads the HTTP body and counts progress;
//! 2. a blocking thread appends each chunk to the content store's ingest file, hashing
//!    it (the blob digest), and hands the same chunk on;
//! 3. another blocking thread decompresses (gzip, zstd or none) and applies the tar into a
//!    temporary snapshot, hashing the tar (the diff id).
//!
//! Nothing becomes visible before both digests are checked: the blob is renamed into
//! the store only when its digest matches, the snapshot is published only when its diff
//! id matches the config, and the image is registered only after every layer. Memory
//! stays bounded by a few chunks whatever the layer size. Up to three layers transfer
//! at once by default (daemon.json `max-concurrent-downloads`, as dockerd); a layer
//! whose snapshot already exists is only downloaded, one whose chain id is unknown is
//! unpacked afterwards by the image store.
//!
//! # Interrupted downloads
//!
//! Layers download into the store's resumable ingest file for their digest. When the
//! connection drops (or the registry answers 5xx) mid-blob, the download is retried from
//! the byte it reached with `Range: bytes=N-`, up to [`MAX_RETRIES`] times in a row
//! without progress; a registry that ignores the range answers 200 and the bytes already
//! held are skipped. When the retries run out, the pull fails with
//! [`Error::Interrupted`], the bytes received stay in the ingest area, and the next pull
//! of the blob starts from there (the bytes kept are hashed and fed to the unpacker again,
//! since the snapshot of a failed pull is thrown away).

use crate::auth::{stored_credentials, Credentials};
use crate::client::{range_start, transport, Client, Endpoint, Repository};
use crate::error::{Error, Result};
use crate::manifest::{self, Descriptor, ImageManifest, Manifest};
use crate::progress::{short_id, Progress, Sink};
use berth_image::content::{ContentStore, ContentWriter};
use berth_image::{Image, ImageStore, LayerSource, Reference, UnpackedLayer};
use bytes::Bytes;
use futures_util::StreamExt;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// Attempts to continue a broken blob download in a row without getting further.
pub const MAX_RETRIES: u32 = 3;
/// Wait before the first retry; doubled for each next one.
const RETRY_DELAY: Duration = Duration::from_millis(250);
/// Chunks in flight between the stages of one layer's pipeline.
const PIPELINE_DEPTH: usize = 16;

/// A reference resolved to one image manifest, ready to transfer.
pub struct ResolvedPull {
    pub reference: Reference,
    /// Digest of what the reference named (an index, or the manifest itself): the repo
    /// digest docker records and prints.
    pub digest: String,
    pub manifest: ImageManifest,
    repo: Repository,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    pub image: Image,
    pub digest: String,
    /// False when everything was present and the tag already named the image.
    pub downloaded: bool,
}

impl Client {
    /// Resolve `reference` (normalised, with tag or digest) to the manifest of the image
    /// for `platform` (`os/arch[/variant]`, default the host's). Credentials default to
    /// those stored by `docker login` for the registry. Docker Hub references try the
    /// configured mirrors first.
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: Option<&str>,
        creds: Option<Credentials>,
    ) -> Result<ResolvedPull> {
        let want = manifest::parse_platform(platform)?;
        let creds = creds.or_else(|| stored_credentials(reference.domain()));
        let mut endpoints: Vec<(Endpoint, Option<Credentials>)> = Vec::new();
        if reference.domain() == "docker.io" {
            // mirrors are pull-through caches of Hub: credentials for Hub are not theirs
            endpoints.extend(self.mirrors().into_iter().map(|m| (m, None)));
        }
        endpoints.push((self.endpoint(reference.domain()).await?, creds));
        let last = endpoints.len() - 1;
        for (i, (ep, creds)) in endpoints.into_iter().enumerate() {
            let base = ep.base.clone();
            match self.resolve_on(ep, reference, &want, creds).await {
                Ok(r) => return Ok(r),
                Err(e) if i < last => {
                    tracing::info!(
                        "mirror {base} failed for {reference}: {e}; trying the next endpoint"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the registry's own endpoint is always last")
    }

    async fn resolve_on(
        &self,
        ep: Endpoint,
        reference: &Reference,
        want: &manifest::Platform,
        creds: Option<Credentials>,
    ) -> Result<ResolvedPull> {
        let repo = self.repository(ep, reference.path(), creds, false);
        let wanted = reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_string();
        let (bytes, mt, digest) = repo.get_manifest(&wanted).await?;
        let manifest = match Manifest::parse(&mt, &bytes)? {
            Manifest::Image(m) => m,
            Manifest::Index(idx) => {
                let d = manifest::select_platform(&idx, want)?;
                let (bytes, mt, _) = repo.get_manifest(&d.digest).await?;
                match Manifest::parse(&mt, &bytes)? {
                    Manifest::Image(m) => m,
                    Manifest::Index(_) => {
                        return Err(Error::UnsupportedMediaType(format!(
                            "{mt} nested in an index"
                        )))
                    }
                }
            }
        };
        Ok(ResolvedPull {
            reference: reference.clone(),
            digest,
            manifest,
            repo,
        })
    }
}

impl ResolvedPull {
    /// Download the missing blobs, register the image (tagged when the reference has a
    /// tag, with its repo digest either way) and report docker's progress messages.
    pub async fn pull(self, store: &ImageStore, progress: Sink<'_>) -> Result<PullOutcome> {
        let r = &self.reference;
        let label = r.tag().or(r.digest()).unwrap_or("latest");
        progress(Progress::status(
            Some(label),
            format!("Pulling from {}", r.path()),
        ));
        let content = store.content().clone();
        // the config first: its diff ids name the snapshots the layers unpack into
        let config = &self.manifest.config;
        let mut downloaded = false;
        if !content.exists(&config.digest) {
            download(&self.repo, &content, config, None, None).await?;
            downloaded = true;
        }
        let st = store.clone();
        let config_digest = config.digest.clone();
        // a config that does not parse or does not match the manifest is refused by
        // `create_image` below; until then the layers are just downloaded
        let chain = tokio::task::spawn_blocking(move || st.config_chain(&config_digest))
            .await
            .ok()
            .and_then(|r| r.ok())
            .filter(|c| c.len() == self.manifest.layers.len());

        let mut missing: Vec<(usize, &Descriptor)> = Vec::new();
        for (i, l) in self.manifest.layers.iter().enumerate() {
            if content.exists(&l.digest) {
                progress(Progress::status(
                    Some(&short_id(&l.digest)),
                    "Already exists",
                ));
            } else if !missing.iter().any(|(_, m)| m.digest == l.digest) {
                progress(Progress::status(
                    Some(&short_id(&l.digest)),
                    "Pulling fs layer",
                ));
                missing.push((i, l));
            }
        }
        let parallel = self.repo.client().config().downloads();
        for (_, l) in missing.iter().skip(parallel) {
            progress(Progress::status(Some(&short_id(&l.digest)), "Waiting"));
        }
        // collected first: a lazy `map` closure here makes the future's lifetimes too
        // general for `tokio::spawn` callers (rust-lang/rust#102211)
        let jobs: Vec<_> = missing
            .iter()
            .map(|&(i, l)| {
                let unpack = chain.as_ref().and_then(|c| {
                    let (diff_id, chain_id) = &c[i];
                    (!store.snapshotter().exists(chain_id)).then(|| Unpack {
                        store: store.clone(),
                        diff_id: diff_id.clone(),
                        chain_id: chain_id.clone(),
                        parent: i.checked_sub(1).map(|p| c[p].1.clone()),
                    })
                });
                download(&self.repo, &content, l, unpack, Some(progress))
            })
            .collect();
        let mut downloads = futures_util::stream::iter(jobs).buffer_unordered(parallel);
        while let Some(res) = downloads.next().await {
            res?;
        }
        drop(downloads);
        downloaded |= !missing.is_empty();

        for (_, l) in &missing {
            progress(Progress::bytes(
                &short_id(&l.digest),
                "Extracting",
                l.size,
                l.size,
            ));
        }
        let before = store.resolve(&r.full()).ok();
        let tags: Vec<Reference> = r.tag().map(|_| r.clone()).into_iter().collect();
        let repo_digests = vec![r.with_digest(&self.digest).familiar()];
        let layers: Vec<LayerSource> = self
            .manifest
            .layers
            .iter()
            .map(|l| LayerSource {
                blob: l.digest.clone(),
                media_type: Some(l.media_type.clone()).filter(|m| !m.is_empty()),
            })
            .collect();
        let st = store.clone();
        let config_digest = config.digest.clone();
        let image = tokio::task::spawn_blocking(move || {
            st.create_image(&config_digest, &layers, &tags, &repo_digests)
        })
        .await
        .map_err(|e| Error::Protocol(format!("image registration task failed: {e}")))??;
        for (_, l) in &missing {
            progress(Progress::status(
                Some(&short_id(&l.digest)),
                "Pull complete",
            ));
        }
        downloaded |= before.as_deref() != Some(image.id.as_str());
        progress(Progress::status(None, format!("Digest: {}", self.digest)));
        let status = if downloaded {
            "Downloaded newer image for"
        } else {
            "Image is up to date for"
        };
        progress(Progress::status(
            None,
            format!("Status: {status} {}", r.familiar()),
        ));
        Ok(PullOutcome {
            image,
            digest: self.digest,
            downloaded,
        })
    }
}

/// Where a downloading layer unpacks to: the snapshot its chain id names.
struct Unpack {
    store: ImageStore,
    diff_id: String,
    chain_id: String,
    parent: Option<String>,
}

/// From the connection to the blob writer.
enum Msg {
    Data(Bytes),
    /// Every byte arrived: verify and commit.
    Done,
    /// The blob is wrong (larger than its descriptor): drop even the kept bytes.
    Discard,
}

/// From the blob writer to the unpacker.
enum Feed {
    Data(Bytes),
    End,
}

/// The unpacker's view of the feed: a reader that fails, rather than ending, when the
/// download stops early, so that a truncated layer is never taken for a whole one.
struct FeedReader {
    rx: Receiver<Feed>,
    cur: Bytes,
    ended: bool,
}

impl Read for FeedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if !self.cur.is_empty() {
                let n = buf.len().min(self.cur.len());
                buf[..n].copy_from_slice(&self.cur[..n]);
                self.cur = self.cur.slice(n..);
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Feed::Data(b)) => self.cur = b,
                Ok(Feed::End) => self.ended = true,
                Err(_) => return Err(std::io::Error::other("layer download interrupted")),
            }
        }
    }
}

impl std::io::BufRead for FeedReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.cur.is_empty() && !self.ended {
            match self.rx.recv() {
                Ok(Feed::Data(b)) => self.cur = b,
                Ok(Feed::End) => self.ended = true,
                Err(_) => return Err(std::io::Error::other("layer download interrupted")),
            }
        }
        Ok(&self.cur)
    }

    fn consume(&mut self, amt: usize) {
        self.cur = self.cur.slice(amt..);
    }
}

/// How one attempt at the rest of a blob ended.
enum Attempt {
    Complete,
    /// Worth another try from where it stopped (connection lost, 5xx, short body).
    Retry(Error),
    Fatal(Error),
}

fn join_error(what: &str, e: tokio::task::JoinError) -> Error {
    Error::Protocol(format!("{what} task failed: {e}"))
}

/// Stream one blob into the content store, verified against its descriptor, resuming
/// a download kept from an earlier attempt; with `unpack`, unpack it into its snapshot
/// on the way. Layer downloads (with `progress`) report docker's per-layer messages.
async fn download(
    repo: &Repository,
    content: &ContentStore,
    desc: &Descriptor,
    unpack: Option<Unpack>,
    progress: Option<Sink<'_>>,
) -> Result<()> {
    let id = short_id(&desc.digest);
    let size = desc.size;
    let cs = content.clone();
    let digest = desc.digest.clone();
    let w = tokio::task::spawn_blocking(move || -> Result<ContentWriter> {
        let mut w = cs.resume(&digest)?;
        if w.len() > size {
            w.restart()?;
        }
        Ok(w)
    })
    .await
    .map_err(|e| join_error("blob writer", e))??;
    let have = w.len();
    if have > 0 {
        tracing::info!(
            "resuming download of {} at {have} of {size} bytes",
            desc.digest
        );
    }

    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(PIPELINE_DEPTH);
    let (feed, unpacker) = match unpack {
        Some(u) => {
            let (ftx, frx) = std::sync::mpsc::sync_channel::<Feed>(PIPELINE_DEPTH);
            let st = u.store.clone();
            let h = tokio::task::spawn_blocking(move || -> Result<UnpackedLayer> {
                let mut r = FeedReader {
                    rx: frx,
                    cur: Bytes::new(),
                    ended: false,
                };
                Ok(st.unpack_layer(&mut r)?)
            });
            (Some(ftx), Some((u, h)))
        }
        None => (None, None),
    };
    let expected = desc.digest.clone();
    let writer = tokio::task::spawn_blocking(move || write_blob(w, rx, feed, &expected, size));

    let mut current = have;
    let mut retries = 0;
    let mut last = Instant::now() - PROGRESS_INTERVAL;
    let mut failed = None;
    while current < size {
        let before = current;
        let attempt = fetch_rest(repo, desc, &mut current, &tx, |current| {
            if let Some(p) = progress {
                if last.elapsed() >= PROGRESS_INTERVAL || current == size {
                    p(Progress::bytes(&id, "Downloading", current, size));
                    last = Instant::now();
                }
            }
        })
        .await;
        match attempt {
            Attempt::Complete => break,
            Attempt::Retry(e) => {
                if current > before {
                    retries = 0;
                }
                if retries >= MAX_RETRIES {
                    failed = Some(Error::Interrupted {
                        digest: desc.digest.clone(),
                        have: current,
                        size,
                        source: Box::new(e),
                    });
                    break;
                }
                let wait = RETRY_DELAY * 2u32.pow(retries);
                retries += 1;
                tracing::info!(
                    "download of {} broke off at {current} of {size} bytes ({e}); retrying in {wait:?}",
                    desc.digest
                );
                tokio::time::sleep(wait).await;
            }
            Attempt::Fatal(e) => {
                let _ = tx.send(Msg::Discard).await;
                failed = Some(e);
                break;
            }
        }
    }
    if failed.is_none() {
        // a closed channel means the writer failed; its error is reported below
        let _ = tx.send(Msg::Done).await;
    }
    drop(tx);
    let written = writer.await.map_err(|e| join_error("blob writer", e))?;
    let unpacked = match unpacker {
        Some((u, h)) => Some((u, h.await.map_err(|e| join_error("layer unpack", e))?)),
        None => None,
    };
    if let Some(e) = failed {
        return Err(e);
    }
    written?;
    if let Some(p) = progress {
        p(Progress::status(Some(&id), "Verifying Checksum"));
        p(Progress::status(Some(&id), "Download complete"));
    }
    if let Some((u, layer)) = unpacked {
        let layer = layer?;
        tokio::task::spawn_blocking(move || {
            u.store
                .commit_layer(layer, &u.diff_id, &u.chain_id, u.parent.as_deref())
        })
        .await
        .map_err(|e| join_error("layer commit", e))??;
    }
    Ok(())
}

/// GET the blob from byte `*current` on and pass what arrives to the writer, advancing
/// `*current`.
async fn fetch_rest(
    repo: &Repository,
    desc: &Descriptor,
    current: &mut u64,
    tx: &tokio::sync::mpsc::Sender<Msg>,
    mut on_progress: impl FnMut(u64),
) -> Attempt {
    let resp = match repo.get_blob_from(&desc.digest, *current).await {
        Ok(r) => r,
        Err(e @ Error::Transport { .. }) => return Attempt::Retry(e),
        Err(e @ Error::Registry { status, .. }) if status >= 500 => return Attempt::Retry(e),
        Err(e) => return Attempt::Fatal(e),
    };
    let start = match range_start(&resp) {
        Ok(s) if s <= *current => s,
        Ok(s) => {
            return Attempt::Fatal(Error::Protocol(format!(
                "registry sent blob {} from byte {s}, asked for {current}",
                desc.digest
            )))
        }
        Err(e) => return Attempt::Fatal(e),
    };
    // a registry that ignores Range resends what is already here
    let mut skip = *current - start;
    let url = resp.url().to_string();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let mut chunk = match chunk {
            Ok(c) => c,
            Err(e) => return Attempt::Retry(transport("GET", &url, e)),
        };
        if skip > 0 {
            let k = skip.min(chunk.len() as u64);
            chunk = chunk.slice(k as usize..);
            skip -= k;
            if chunk.is_empty() {
                continue;
            }
        }
        *current += chunk.len() as u64;
        if *current > desc.size {
            return Attempt::Fatal(Error::Protocol(format!(
                "blob {} is larger than the {} bytes its descriptor says",
                desc.digest, desc.size
            )));
        }
        if tx.send(Msg::Data(chunk)).await.is_err() {
            return Attempt::Fatal(Error::Protocol(format!(
                "blob writer for {} stopped",
                desc.digest
            )));
        }
        on_progress(*current);
    }
    if *current < desc.size {
        return Attempt::Retry(Error::Protocol(format!(
            "reply from {url} ended at byte {current} of {}",
            desc.size
        )));
    }
    Attempt::Complete
}

/// The writer stage: append what arrives to the ingest file and pass it on to the
/// unpacker (first replaying the bytes kept from an earlier attempt), then verify and
/// commit. Without `Done` the bytes stay for a later resume.
fn write_blob(
    mut w: ContentWriter,
    mut rx: tokio::sync::mpsc::Receiver<Msg>,
    mut feed: Option<SyncSender<Feed>>,
    expected: &str,
    size: u64,
) -> Result<()> {
    if let Some(f) = &feed {
        if !w.is_empty() && !replay(w.path(), w.len(), f)? {
            feed = None;
        }
    }
    loop {
        match rx.blocking_recv() {
            Some(Msg::Data(b)) => {
                w.write_all(&b)
                    .map_err(|e| Error::io(format!("write blob {expected}"), e))?;
                // a failed unpacker reports its own error; the blob is still wanted
                if feed
                    .as_ref()
                    .is_some_and(|f| f.send(Feed::Data(b)).is_err())
                {
                    feed = None;
                }
            }
            Some(Msg::Done) => break,
            Some(Msg::Discard) => {
                w.discard();
                return Ok(());
            }
            None => return Ok(()),
        }
    }
    if let Some(f) = feed.take() {
        let _ = f.send(Feed::End);
    }
    let n = w.len();
    if n != size {
        w.discard();
        return Err(Error::Protocol(format!(
            "blob {expected} is {n} bytes, its descriptor says {size}"
        )));
    }
    w.commit(Some(expected))?;
    Ok(())
}

/// Send the first `len` bytes of the kept partial download to the unpacker; false when
/// the unpacker is gone.
fn replay(path: &Path, len: u64, feed: &SyncSender<Feed>) -> Result<bool> {
    let mut f =
        std::fs::File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut left = len;
    while left > 0 {
        let mut buf = vec![0u8; left.min(1 << 20) as usize];
        f.read_exact(&mut buf)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        left -= buf.len() as u64;
        if feed.send(Feed::Data(Bytes::from(buf))).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}
