//! The conformance suite every [`Storage`] driver must pass (containerd's
//! `SnapshotterSuite` idea). A driver's crate calls [`run_all`] from a test with a factory
//! that returns a fresh, empty driver each time; each check panics with a message naming
//! the broken promise.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::stream;
use tokio::io::AsyncReadExt;

use super::{ByteStream, Storage, StorageError};
use crate::digest::Digest;
use crate::names::{RepoName, Tag};

fn repo(s: &str) -> RepoName {
    s.parse().expect("conformance repo names are valid")
}

fn tag(s: &str) -> Tag {
    s.parse().expect("conformance tags are valid")
}

fn body(chunks: &[&[u8]]) -> ByteStream {
    let items: Vec<Result<Bytes, std::io::Error>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(stream::iter(items))
}

fn broken_body(first: &[u8]) -> ByteStream {
    let items: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::copy_from_slice(first)),
        Err(std::io::Error::other("client went away")),
    ];
    Box::pin(stream::iter(items))
}

/// Run every check, each on a fresh driver from `make`.
pub async fn run_all<S: Storage, F: Fn() -> S>(make: F) {
    blobs(&make()).await;
    blob_put_verifies(&make()).await;
    uploads_chunked(&make()).await;
    upload_out_of_order(&make()).await;
    upload_digest_mismatch(&make()).await;
    upload_interrupted_rolls_back(&make()).await;
    upload_wrong_repo(&make()).await;
    upload_cancel_and_purge(&make()).await;
    links_and_repositories(&make()).await;
    tags(&make()).await;
    referrers(&make()).await;
    commit_existing_blob_touches(&make()).await;
}

/// Blob stat, ranged reads, listing, delete.
pub async fn blobs(s: &dyn Storage) {
    let data = Bytes::from_static(b"hello, registry");
    let d = Digest::sha256_of(&data);
    assert!(
        s.blob_stat(&d).await.expect("stat").is_none(),
        "absent blob has no stat"
    );
    s.blob_put(&d, data.clone()).await.expect("put");
    let info = s.blob_stat(&d).await.expect("stat").expect("blob present");
    assert_eq!(info.size, data.len() as u64, "blob size");
    assert_eq!(s.blob_read(&d).await.expect("read"), data, "blob content");
    let mut r = s.blob_open(&d, 7, 8).await.expect("open range");
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.expect("read range");
    assert_eq!(out, b"registry", "ranged read");
    let list = s.blob_list().await.expect("list");
    assert_eq!(list.len(), 1, "one blob listed");
    assert_eq!(list[0].0, d);
    assert!(s.blob_delete(&d).await.expect("delete"), "delete existing");
    assert!(!s.blob_delete(&d).await.expect("delete"), "delete absent");
    assert!(matches!(
        s.blob_read(&d).await,
        Err(StorageError::BlobNotFound(_))
    ));
    assert!(matches!(
        s.blob_open(&d, 0, 1).await,
        Err(StorageError::BlobNotFound(_))
    ));
}

/// `blob_put` refuses content that does not match its digest.
pub async fn blob_put_verifies(s: &dyn Storage) {
    let d = Digest::sha256_of(b"a");
    let r = s.blob_put(&d, Bytes::from_static(b"b")).await;
    assert!(
        matches!(r, Err(StorageError::DigestMismatch { .. })),
        "mismatching put must fail"
    );
    assert!(
        s.blob_stat(&d).await.expect("stat").is_none(),
        "nothing stored"
    );
}

/// A chunked upload becomes a blob linked into the repository only at commit.
pub async fn uploads_chunked(s: &dyn Storage) {
    let r = repo("conf/chunked");
    let id = s.upload_start(&r).await.expect("start");
    assert_eq!(s.upload_status(&r, &id).await.expect("status").size, 0);
    let n = s
        .upload_write(&r, &id, Some(0), body(&[b"abc", b"def"]))
        .await
        .expect("chunk 1");
    assert_eq!(n, 6);
    let n = s
        .upload_write(&r, &id, Some(6), body(&[b"ghi"]))
        .await
        .expect("chunk 2");
    assert_eq!(n, 9);
    let n = s
        .upload_write(&r, &id, None, body(&[b"j"]))
        .await
        .expect("streamed chunk");
    assert_eq!(n, 10);
    assert_eq!(s.upload_status(&r, &id).await.expect("status").size, 10);
    let d = Digest::sha256_of(b"abcdefghij");
    assert!(
        s.blob_stat(&d).await.expect("stat").is_none(),
        "not visible before commit"
    );
    assert_eq!(s.uploads().await.expect("uploads").len(), 1);
    let size = s.upload_commit(&r, &id, &d).await.expect("commit");
    assert_eq!(size, 10);
    assert_eq!(
        s.blob_read(&d).await.expect("read"),
        Bytes::from_static(b"abcdefghij")
    );
    assert!(
        s.layer_linked(&r, &d).await.expect("linked"),
        "linked at commit"
    );
    assert!(matches!(
        s.upload_status(&r, &id).await,
        Err(StorageError::UploadNotFound(_))
    ));
    assert!(s.uploads().await.expect("uploads").is_empty());
}

/// A chunk at the wrong offset is refused and changes nothing.
pub async fn upload_out_of_order(s: &dyn Storage) {
    let r = repo("conf/order");
    let id = s.upload_start(&r).await.expect("start");
    s.upload_write(&r, &id, Some(0), body(&[b"0123"]))
        .await
        .expect("first");
    match s.upload_write(&r, &id, Some(10), body(&[b"x"])).await {
        Err(StorageError::RangeMismatch { size, got, .. }) => {
            assert_eq!((size, got), (4, 10));
        }
        other => panic!("out-of-order chunk: expected RangeMismatch, got {other:?}"),
    }
    assert_eq!(s.upload_status(&r, &id).await.expect("status").size, 4);
    let d = Digest::sha256_of(b"0123");
    s.upload_commit(&r, &id, &d).await.expect("commit");
}

/// A wrong digest at commit stores nothing and ends the session.
pub async fn upload_digest_mismatch(s: &dyn Storage) {
    let r = repo("conf/mismatch");
    let id = s.upload_start(&r).await.expect("start");
    s.upload_write(&r, &id, None, body(&[b"data"]))
        .await
        .expect("write");
    let wrong = Digest::sha256_of(b"other");
    assert!(matches!(
        s.upload_commit(&r, &id, &wrong).await,
        Err(StorageError::DigestMismatch { .. })
    ));
    assert!(
        s.blob_list().await.expect("list").is_empty(),
        "nothing stored"
    );
    assert!(!s.layer_linked(&r, &wrong).await.expect("linked"));
}

/// A body that breaks off midway leaves the upload where it was.
pub async fn upload_interrupted_rolls_back(s: &dyn Storage) {
    let r = repo("conf/interrupted");
    let id = s.upload_start(&r).await.expect("start");
    s.upload_write(&r, &id, None, body(&[b"good"]))
        .await
        .expect("write");
    let res = s
        .upload_write(&r, &id, Some(4), broken_body(b"partial"))
        .await;
    assert!(matches!(res, Err(StorageError::Body { .. })), "{res:?}");
    assert_eq!(
        s.upload_status(&r, &id).await.expect("status").size,
        4,
        "rolled back to the last good offset"
    );
    s.upload_write(&r, &id, Some(4), body(&[b"more"]))
        .await
        .expect("resume");
    let d = Digest::sha256_of(b"goodmore");
    s.upload_commit(&r, &id, &d)
        .await
        .expect("commit after resume");
}

/// An upload id is only valid in the repository that started it.
pub async fn upload_wrong_repo(s: &dyn Storage) {
    let r = repo("conf/one");
    let other = repo("conf/two");
    let id = s.upload_start(&r).await.expect("start");
    assert!(matches!(
        s.upload_status(&other, &id).await,
        Err(StorageError::UploadNotFound(_))
    ));
    assert!(matches!(
        s.upload_write(&other, &id, None, body(&[b"x"])).await,
        Err(StorageError::UploadNotFound(_))
    ));
    assert!(matches!(
        s.upload_status(&r, "../../etc").await,
        Err(StorageError::UploadNotFound(_))
    ));
}

/// Cancel and purge remove sessions.
pub async fn upload_cancel_and_purge(s: &dyn Storage) {
    let r = repo("conf/cancel");
    let a = s.upload_start(&r).await.expect("start");
    let b = s.upload_start(&r).await.expect("start");
    assert!(s.upload_cancel(&r, &a).await.expect("cancel"));
    assert!(!s.upload_cancel(&r, &a).await.expect("cancel again"));
    s.upload_purge(&b).await.expect("purge");
    assert!(s.uploads().await.expect("uploads").is_empty());
    let started = s.upload_start(&r).await.expect("start");
    let info = &s.uploads().await.expect("uploads")[0];
    assert_eq!(info.id, started);
    let age = SystemTime::now()
        .duration_since(info.started)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(120), "start time recorded");
    assert!(
        info.updated >= info.started,
        "activity time is not before the start"
    );
}

/// Layer and manifest links, and which repositories exist.
pub async fn links_and_repositories(s: &dyn Storage) {
    let a = repo("conf/a");
    let b = repo("conf/a/nested");
    let d = Digest::sha256_of(b"x");
    assert!(s.repositories().await.expect("repos").is_empty());
    assert!(!s.repo_exists(&a).await.expect("exists"));
    s.layer_link(&a, &d).await.expect("link");
    s.manifest_link(&b, &d, "application/vnd.oci.image.manifest.v1+json")
        .await
        .expect("manifest link");
    assert_eq!(
        s.repositories().await.expect("repos"),
        vec![a.clone(), b.clone()]
    );
    assert!(s.layer_linked(&a, &d).await.expect("linked"));
    assert!(!s.layer_linked(&b, &d).await.expect("linked"));
    assert_eq!(s.layer_links(&a).await.expect("links"), vec![d.clone()]);
    assert_eq!(
        s.manifest_media_type(&b, &d)
            .await
            .expect("media type")
            .as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(
        s.manifest_media_type(&a, &d).await.expect("media type"),
        None
    );
    assert_eq!(s.manifest_links(&b).await.expect("links"), vec![d.clone()]);
    assert!(s.layer_unlink(&a, &d).await.expect("unlink"));
    assert!(!s.layer_unlink(&a, &d).await.expect("unlink"));
    assert!(s.manifest_unlink(&b, &d).await.expect("unlink"));
    assert!(s.repositories().await.expect("repos").is_empty());
}

/// Tags point at digests, are listed sorted and can be moved and deleted.
pub async fn tags(s: &dyn Storage) {
    let r = repo("conf/tags");
    let d1 = Digest::sha256_of(b"1");
    let d2 = Digest::sha256_of(b"2");
    for t in ["b", "a", "c"] {
        s.tag_set(&r, &tag(t), &d1).await.expect("tag");
    }
    s.tag_set(&r, &tag("b"), &d2).await.expect("move tag");
    let tags = s.tags(&r).await.expect("tags");
    let names: Vec<&str> = tags.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(s.tag_get(&r, &tag("b")).await.expect("get"), Some(d2));
    assert!(s.tag_delete(&r, &tag("a")).await.expect("delete"));
    assert!(!s.tag_delete(&r, &tag("a")).await.expect("delete"));
    assert_eq!(s.tag_get(&r, &tag("a")).await.expect("get"), None);
    assert!(s.repo_exists(&r).await.expect("exists"));
}

/// The referrers index adds, lists sorted and removes.
pub async fn referrers(s: &dyn Storage) {
    let r = repo("conf/refs");
    let subject = Digest::sha256_of(b"subject");
    let x = Digest::sha256_of(b"x");
    let y = Digest::sha256_of(b"y");
    s.referrer_add(&r, &subject, &y).await.expect("add");
    s.referrer_add(&r, &subject, &x).await.expect("add");
    s.referrer_add(&r, &subject, &x).await.expect("add twice");
    let mut want = vec![x.clone(), y.clone()];
    want.sort();
    assert_eq!(s.referrers(&r, &subject).await.expect("list"), want);
    s.referrer_remove(&r, &subject, &x).await.expect("remove");
    assert_eq!(s.referrers(&r, &subject).await.expect("list"), vec![y]);
    assert!(s
        .referrers(&repo("conf/other"), &subject)
        .await
        .expect("list")
        .is_empty());
}

/// Committing content that already exists refreshes its modification time (GC safety).
pub async fn commit_existing_blob_touches(s: &dyn Storage) {
    let r = repo("conf/touch");
    let data = Bytes::from_static(b"shared content");
    let d = Digest::sha256_of(&data);
    s.blob_put(&d, data.clone()).await.expect("put");
    let before = s
        .blob_stat(&d)
        .await
        .expect("stat")
        .expect("present")
        .modified;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let id = s.upload_start(&r).await.expect("start");
    s.upload_write(&r, &id, None, body(&[&data]))
        .await
        .expect("write");
    s.upload_commit(&r, &id, &d).await.expect("commit");
    let after = s
        .blob_stat(&d)
        .await
        .expect("stat")
        .expect("present")
        .modified;
    assert!(
        after > before,
        "commit of existing content must touch the blob"
    );
    assert!(s.blob_touch(&d).await.expect("touch"));
    assert!(!s
        .blob_touch(&Digest::sha256_of(b"absent"))
        .await
        .expect("touch"));
}
