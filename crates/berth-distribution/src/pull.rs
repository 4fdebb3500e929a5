//! Pull: resolve a reference to an image manifest, download what the content store
//! lacks, then register the image with the image store.
//!
//! Pull is two phases so that the Engine API can answer a missing repository or tag with
//! a plain 404 before it commits to a 200 progress stream: [`Client::resolve`] talks to
//! the registry until the image manifest is known; [`ResolvedPull::pull`] transfers and
//! reports progress.
//!
//! Blobs stream from the connection into the content store's ingest (a blocking writer
//! on its own thread, fed through a small bounded channel), so memory stays bounded by a
//! few chunks whatever the layer size; the store verifies the digest before the blob
//! becomes visible. Up to three layers download at once, as dockerd's default
//! `max-concurrent-downloads`.

use crate::auth::{stored_credentials, Credentials};
use crate::client::{transport, Client, Endpoint, Repository};
use crate::error::{Error, Result};
use crate::manifest::{self, Descriptor, ImageManifest, Manifest};
use crate::progress::{short_id, Progress, Sink};
use berth_image::content::ContentStore;
use berth_image::{Image, ImageStore, LayerSource, Reference};
use bytes::Bytes;
use futures_util::StreamExt;
use std::io::Write;
use std::time::{Duration, Instant};

const MAX_CONCURRENT_DOWNLOADS: usize = 3;
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

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
        let mut missing: Vec<&Descriptor> = Vec::new();
        for l in &self.manifest.layers {
            if content.exists(&l.digest) {
                progress(Progress::status(
                    Some(&short_id(&l.digest)),
                    "Already exists",
                ));
            } else if !missing.iter().any(|m| m.digest == l.digest) {
                progress(Progress::status(
                    Some(&short_id(&l.digest)),
                    "Pulling fs layer",
                ));
                missing.push(l);
            }
        }
        for l in missing.iter().skip(MAX_CONCURRENT_DOWNLOADS) {
            progress(Progress::status(Some(&short_id(&l.digest)), "Waiting"));
        }
        // collected first: a lazy `map` closure here makes the future's lifetimes too
        // general for `tokio::spawn` callers (rust-lang/rust#102211)
        let jobs: Vec<_> = missing
            .iter()
            .map(|l| download(&self.repo, &content, l, Some(progress)))
            .collect();
        let mut downloads =
            futures_util::stream::iter(jobs).buffer_unordered(MAX_CONCURRENT_DOWNLOADS);
        while let Some(res) = downloads.next().await {
            res?;
        }
        drop(downloads);
        let mut downloaded = !missing.is_empty();
        let config = &self.manifest.config;
        if !content.exists(&config.digest) {
            download(&self.repo, &content, config, None).await?;
            downloaded = true;
        }

        for l in &missing {
            progress(Progress::bytes(
                &short_id(&l.digest),
                "Extracting",
                0,
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
        for l in &missing {
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

/// Stream one blob into the content store, verified against its descriptor; layer
/// downloads (with `progress`) report docker's per-layer messages.
async fn download(
    repo: &Repository,
    content: &ContentStore,
    desc: &Descriptor,
    progress: Option<Sink<'_>>,
) -> Result<()> {
    let id = short_id(&desc.digest);
    let resp = repo.get_blob(&desc.digest).await?;
    let url = resp.url().to_string();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let cs = content.clone();
    let expected = desc.digest.clone();
    let expected_size = desc.size;
    let writer = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut w = cs.writer()?;
        let mut n = 0u64;
        while let Some(b) = rx.blocking_recv() {
            n += b.len() as u64;
            w.write_all(&b)
                .map_err(|e| Error::io(format!("write blob {expected}"), e))?;
        }
        if n != expected_size {
            return Err(Error::Protocol(format!(
                "blob {expected} is {n} bytes, its descriptor says {expected_size}"
            )));
        }
        w.commit(Some(&expected))?;
        Ok(())
    });
    let mut stream = resp.bytes_stream();
    let mut current = 0u64;
    let mut last = Instant::now() - PROGRESS_INTERVAL;
    let mut failed = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failed = Some(transport("GET", &url, e));
                break;
            }
        };
        current += chunk.len() as u64;
        if current > desc.size {
            failed = Some(Error::Protocol(format!(
                "blob {} is larger than the {} bytes its descriptor says",
                desc.digest, desc.size
            )));
            break;
        }
        if tx.send(chunk).await.is_err() {
            // the writer stopped; its error is reported below
            break;
        }
        if let Some(p) = progress {
            if last.elapsed() >= PROGRESS_INTERVAL || current == desc.size {
                p(Progress::bytes(&id, "Downloading", current, desc.size));
                last = Instant::now();
            }
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| Error::Protocol(format!("blob writer task failed: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    written?;
    if let Some(p) = progress {
        p(Progress::status(Some(&id), "Verifying Checksum"));
        p(Progress::status(Some(&id), "Download complete"));
    }
    Ok(())
}
