//! Garbage collection by reachability, safe to run while the registry serves.
//!
//! Mark: note the start time, then walk every repository's tags and manifests and mark each
//! manifest, its config and layers, and the children of indexes. With `delete_untagged`,
//! only manifests reachable from a tag (through index children and referrers) are kept and
//! the other manifest links are removed first (if older than the grace period).
//!
//! Sweep (under the write side of the registry's GC lock, so no commit, mount or manifest
//! put interleaves): delete each unmarked blob whose modification time is older than the
//! mark start minus `grace`. Anything referenced after the mark started was touched by that
//! operation and is therefore young; in-flight uploads live outside the blob space until
//! their commit, which touches the blob it creates or reuses. Layer links left pointing at
//! swept blobs are removed last.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use crate::digest::Digest;
use crate::error::RegistryError;
use crate::manifest;
use crate::names::RepoName;
use crate::registry::Registry;

/// How a collection runs.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Also remove manifests that no tag reaches.
    pub delete_untagged: bool,
    /// Spare blobs modified less than this long before the mark started.
    pub grace: Duration,
    /// Report what would be deleted without deleting.
    pub dry_run: bool,
}

/// What a collection did.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_marked: usize,
    pub blobs_deleted: Vec<Digest>,
    pub bytes_freed: u64,
    pub manifests_deleted: Vec<String>,
    pub links_removed: usize,
}

/// Children of a manifest stored as `d` (blobs and manifests); empty if unreadable.
async fn references(reg: &Registry, d: &Digest, media_type: &str) -> (Vec<Digest>, Vec<Digest>) {
    let Ok(body) = reg.storage().blob_read(d).await else {
        return (Vec::new(), Vec::new());
    };
    match manifest::parse(&body, Some(media_type)) {
        Ok(info) => (info.blobs, info.manifests),
        Err(_) => (Vec::new(), Vec::new()),
    }
}

/// Manifests of `repo` reachable from its tags, via index children and referrers.
async fn tagged_closure(reg: &Registry, repo: &RepoName) -> Result<HashSet<Digest>, RegistryError> {
    let s = reg.storage();
    let mut keep = HashSet::new();
    let mut queue: Vec<Digest> = s.tags(repo).await?.into_iter().map(|(_, d)| d).collect();
    while let Some(d) = queue.pop() {
        if !keep.insert(d.clone()) {
            continue;
        }
        let Some(mt) = s.manifest_media_type(repo, &d).await? else {
            continue;
        };
        let (_, children) = references(reg, &d, &mt).await;
        queue.extend(children);
        queue.extend(s.referrers(repo, &d).await?);
    }
    Ok(keep)
}

/// Run one collection.
pub async fn collect(reg: &Registry, opts: &GcOptions) -> Result<GcReport, RegistryError> {
    let s = reg.storage();
    let start = SystemTime::now();
    let cutoff = start
        .checked_sub(opts.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = GcReport::default();
    let mut marked: BTreeSet<Digest> = BTreeSet::new();

    for repo in s.repositories().await? {
        let keep = if opts.delete_untagged {
            Some(tagged_closure(reg, &repo).await?)
        } else {
            None
        };
        for d in s.manifest_links(&repo).await? {
            let Some(mt) = s.manifest_media_type(&repo, &d).await? else {
                continue;
            };
            if let Some(keep) = &keep {
                let young = s.blob_stat(&d).await?.is_some_and(|b| b.modified >= cutoff);
                if !keep.contains(&d) && !young {
                    report.manifests_deleted.push(format!("{repo}@{d}"));
                    if !opts.dry_run {
                        if let Ok(body) = s.blob_read(&d).await {
                            if let Some(subject) = manifest::parse(&body, Some(&mt))
                                .ok()
                                .and_then(|i| i.subject)
                            {
                                s.referrer_remove(&repo, &subject, &d).await?;
                            }
                        }
                        s.manifest_unlink(&repo, &d).await?;
                    }
                    continue;
                }
            }
            marked.insert(d.clone());
            let (blobs, children) = references(reg, &d, &mt).await;
            marked.extend(blobs);
            marked.extend(children);
        }
    }
    report.blobs_marked = marked.len();

    let _exclusive = reg.gc_lock.write().await;
    for (d, info) in s.blob_list().await? {
        if marked.contains(&d) || info.modified >= cutoff {
            continue;
        }
        if opts.dry_run || s.blob_delete(&d).await? {
            report.bytes_freed += info.size;
            report.blobs_deleted.push(d);
        }
    }
    if !opts.dry_run && !report.blobs_deleted.is_empty() {
        for repo in s.repositories().await? {
            for d in s.layer_links(&repo).await? {
                if s.blob_stat(&d).await?.is_none() && s.layer_unlink(&repo, &d).await? {
                    report.links_removed += 1;
                }
            }
        }
    }
    Ok(report)
}
