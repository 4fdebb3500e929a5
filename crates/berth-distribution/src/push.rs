//! Push: upload an image's layers and config, then its manifest under a tag.
//!
//! Layers are pushed as they are stored (the blob a pull received, or the plain tar of
//! an import), so their digests are the ones the image store already knows and a push
//! never recompresses. Per layer: `HEAD` first (`Layer already exists`); otherwise a
//! cross-repository mount from another repository of the same registry that the image
//! is known to be in (its repo digests; `Mounted from x`); otherwise a monolithic upload
//! (`POST` then `PUT ?digest=` streamed from disk). Up to five layers go at once, as
//! dockerd's default `max-concurrent-uploads`. The manifest is Docker schema 2 when every
//! layer carries a Docker media type, OCI otherwise (see [`crate::manifest::build_manifest`]).

use crate::auth::{stored_credentials, Credentials};
use crate::client::{Client, MountOutcome, Repository};
use crate::error::{Error, Result};
use crate::manifest::build_manifest;
use crate::progress::{short_id, Progress, Sink};
use berth_image::{ImageStore, LayerRecord, LayerSource, Reference};
use futures_util::StreamExt;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MAX_CONCURRENT_UPLOADS: usize = 5;

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
        for l in layers.iter().skip(MAX_CONCURRENT_UPLOADS) {
            progress(Progress::status(Some(&short_id(&l.diff_id)), "Waiting"));
        }
        let content = store.content();
        // collected first: a lazy `map` closure here makes the future's lifetimes too
        // general for `tokio::spawn` callers (rust-lang/rust#102211)
        let mut jobs = Vec::with_capacity(layers.len());
        for l in &layers {
            jobs.push(push_blob(
                &repo,
                &l.blob,
                content.blob_path(&l.blob)?,
                l.blob_size,
                &mount_from,
                Some((short_id(&l.diff_id), progress)),
            ));
        }
        let mut uploads = futures_util::stream::iter(jobs).buffer_unordered(MAX_CONCURRENT_UPLOADS);
        while let Some(res) = uploads.next().await {
            res?;
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
            .map(|l| (l.blob.clone(), l.media_type.clone(), l.blob_size))
            .collect();
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

/// Make one blob present in the registry: already there, mounted, or uploaded.
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
    if repo.blob_exists(digest).await?.is_some() {
        say("Layer already exists");
        return Ok(());
    }
    let mut location = None;
    for from in mount_from {
        match repo.mount_blob(digest, from).await {
            Ok(MountOutcome::Mounted) => {
                say(&format!("Mounted from {from}"));
                return Ok(());
            }
            Ok(MountOutcome::Upload(loc)) => {
                location = Some(loc);
                break;
            }
            Err(e) => tracing::debug!("mount of {digest} from {from} failed: {e}"),
        }
    }
    let location = match location {
        Some(l) => l,
        None => repo.start_upload().await?,
    };
    let sent = Arc::new(AtomicU64::new(0));
    let put = repo.put_blob_file(&location, digest, &path, size, sent.clone());
    tokio::pin!(put);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let res = loop {
        tokio::select! {
            r = &mut put => break r,
            _ = tick.tick() => {
                if let Some((id, p)) = &progress {
                    let n = sent.load(Ordering::Relaxed);
                    if n > 0 {
                        p(Progress::bytes(id, "Pushing", n, size));
                    }
                }
            }
        }
    };
    res?;
    if let Some((id, p)) = &progress {
        p(Progress::bytes(id, "Pushing", size, size));
    }
    say("Pushed");
    Ok(())
}
