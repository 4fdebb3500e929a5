//! The filesystem driver passes the storage conformance suite.

use berth_registry::storage::{conformance, FsStorage};

#[tokio::test]
async fn fs_driver_conformance() {
    let dirs = std::sync::Mutex::new(Vec::new());
    conformance::run_all(|| {
        let d = tempfile::tempdir().expect("tempdir");
        let s = FsStorage::open(d.path()).expect("open fs storage");
        dirs.lock().expect("lock").push(d);
        s
    })
    .await;
}

#[tokio::test]
async fn fs_driver_survives_restart_mid_upload() {
    use berth_registry::digest::Digest;
    use berth_registry::storage::Storage;
    use bytes::Bytes;
    let d = tempfile::tempdir().expect("tempdir");
    let repo = "restart/repo".parse().expect("name");
    let id = {
        let s = FsStorage::open(d.path()).expect("open");
        let id = s.upload_start(&repo).await.expect("start");
        let body = Box::pin(futures_util::stream::iter(vec![Ok(Bytes::from_static(
            b"first ",
        ))]));
        s.upload_write(&repo, &id, Some(0), body)
            .await
            .expect("write");
        id
    };
    // A new driver on the same root has no in-memory hash: it must rehash at commit.
    let s = FsStorage::open(d.path()).expect("reopen");
    assert_eq!(s.upload_status(&repo, &id).await.expect("status").size, 6);
    let body = Box::pin(futures_util::stream::iter(vec![Ok(Bytes::from_static(
        b"second",
    ))]));
    s.upload_write(&repo, &id, Some(6), body)
        .await
        .expect("write");
    let digest = Digest::sha256_of(b"first second");
    s.upload_commit(&repo, &id, &digest).await.expect("commit");
    assert_eq!(
        s.blob_read(&digest).await.expect("read"),
        Bytes::from_static(b"first second")
    );
}
