//! Garbage collection while serving, upload expiry.

mod common;

use std::time::Duration;

use berth_registry::gc::{self, GcOptions};
use bytes::Bytes;
use common::{digest_of, TestServer};
use http::{Method, StatusCode};

#[tokio::test]
async fn gc_sweeps_unreferenced_but_spares_in_flight_uploads() {
    let s = TestServer::start(|_| {}).await;
    let (md, _) = s.push_image("gc/app", "v1", "keep").await;
    // An orphan: pushed, never referenced by a manifest, then unlinked.
    let orphan = s.push_blob("gc/app", b"orphan").await;
    let r = s
        .req(
            Method::DELETE,
            &format!("/v2/gc/app/blobs/{orphan}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // An upload in flight: half its data sent before the GC starts.
    let r = s
        .req(Method::POST, "/v2/gc/app/blobs/uploads/", &[], Bytes::new())
        .await;
    let loc = r.header("location").to_string();
    let r = s
        .req(
            Method::PATCH,
            &loc,
            &[("content-range", "0-4")],
            &b"in-fl"[..],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // The same bytes also exist as an old, unreferenced blob: the in-flight upload's commit
    // must keep it alive even though the mark never saw it.
    let dup = s.push_blob("gc/other", b"in-flight").await;
    s.req(
        Method::DELETE,
        &format!("/v2/gc/other/blobs/{dup}"),
        &[],
        Bytes::new(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let r = s
        .req(Method::POST, "/admin/gc?grace_secs=0", &[], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let report = r.json();
    let deleted: Vec<String> = report["blobs_deleted"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v.as_str().expect("digest").to_string())
        .collect();
    assert!(deleted.contains(&orphan), "{report}");
    assert!(deleted.contains(&dup), "{report}");
    assert_eq!(deleted.len(), 2, "{report}");

    // The image still pulls.
    let r = s.get(&format!("/v2/gc/app/manifests/{md}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let m = r.json();
    for d in [&m["config"]["digest"], &m["layers"][0]["digest"]] {
        let r = s
            .get(&format!("/v2/gc/app/blobs/{}", d.as_str().expect("digest")))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // The in-flight upload finishes after the GC and is served.
    let d = digest_of(b"in-flight");
    assert_eq!(d, dup);
    let r = s
        .req(
            Method::PUT,
            &format!("{loc}?digest={d}"),
            &[("content-range", "5-8")],
            &b"ight"[..],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        s.get(&format!("/v2/gc/app/blobs/{d}")).await.body,
        &b"in-flight"[..]
    );
}

#[tokio::test]
async fn gc_racing_pushes_never_lose_content() {
    let s = TestServer::start(|_| {}).await;
    let reg = s.state.registry.clone();
    // Repeatedly: an old unreferenced blob exists; a GC with no grace period runs while a
    // client re-uploads that content and pushes a manifest for it. Whatever the
    // interleaving, a manifest whose PUT succeeded must have all its blobs. (With no grace
    // the PUT itself may fail with MANIFEST_BLOB_UNKNOWN: a safe, retryable outcome.)
    let mut created = 0;
    for i in 0..12 {
        let layer = format!("race-layer-{i}");
        let d = s.push_blob("race/tmp", layer.as_bytes()).await;
        s.req(
            Method::DELETE,
            &format!("/v2/race/tmp/blobs/{d}"),
            &[],
            Bytes::new(),
        )
        .await;
        let gc_reg = reg.clone();
        let gc_task = tokio::spawn(async move {
            gc::collect(
                &gc_reg,
                &GcOptions {
                    grace: Duration::ZERO,
                    ..GcOptions::default()
                },
            )
            .await
            .expect("gc")
        });
        let cd = s
            .push_blob("race/app", format!("{{\"i\":{i}}}").as_bytes())
            .await;
        let ld = s.push_blob("race/app", layer.as_bytes()).await;
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": 1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": 1}]
        }))
        .expect("json");
        let r = s
            .req(
                Method::PUT,
                &format!("/v2/race/app/manifests/t{i}"),
                &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
                m,
            )
            .await;
        gc_task.await.expect("gc task");
        if r.status == StatusCode::CREATED {
            created += 1;
            for d in [&cd, &ld] {
                let r = s.get(&format!("/v2/race/app/blobs/{d}")).await;
                assert_eq!(r.status, StatusCode::OK, "iteration {i}: blob {d} lost");
            }
        } else {
            assert_eq!(r.error_code(), "MANIFEST_BLOB_UNKNOWN", "iteration {i}");
        }
    }
    assert!(created > 0, "at least some pushes complete");
}

#[tokio::test]
async fn gc_delete_untagged_keeps_referrers_and_index_children() {
    let s = TestServer::start(|_| {}).await;
    let (child, child_body) = s.push_image("ut/app", "temp", "child").await;
    let (lonely, _) = s.push_image("ut/app", "gone", "lonely").await;
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child, "size": child_body.len()}]
    }))
    .expect("json");
    let r = s
        .req(
            Method::PUT,
            "/v2/ut/app/manifests/release",
            &[("content-type", "application/vnd.oci.image.index.v1+json")],
            index,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let empty = s.push_blob("ut/app", b"{}").await;
    let sig = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child, "size": child_body.len()}
    }))
    .expect("json");
    let sig_d = digest_of(&sig);
    let r = s
        .req(
            Method::PUT,
            &format!("/v2/ut/app/manifests/{sig_d}"),
            &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
            sig,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Untag both images: `child` stays reachable through the index, `lonely` does not.
    for t in ["temp", "gone"] {
        s.req(
            Method::DELETE,
            &format!("/v2/ut/app/manifests/{t}"),
            &[],
            Bytes::new(),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = s
        .req(
            Method::POST,
            "/admin/gc?grace_secs=0&delete_untagged=true",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let report = r.json();
    assert_eq!(
        report["manifests_deleted"],
        serde_json::json!([format!("ut/app@{lonely}")]),
        "{report}"
    );
    assert_eq!(
        s.get(&format!("/v2/ut/app/manifests/{lonely}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&format!("/v2/ut/app/manifests/{child}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.get(&format!("/v2/ut/app/manifests/{sig_d}")).await.status,
        StatusCode::OK
    );
    // lonely's config and layer were swept (2 blobs) plus its manifest blob.
    assert_eq!(
        report["blobs_deleted"].as_array().expect("list").len(),
        3,
        "{report}"
    );
}

#[tokio::test]
async fn expired_uploads_are_purged() {
    let s = TestServer::start(|c| {
        c.upload_expiry_secs = 1;
        c.upload_purge_interval_secs = 1;
    })
    .await;
    let r = s
        .req(Method::POST, "/v2/exp/blobs/uploads/", &[], Bytes::new())
        .await;
    let loc = r.header("location").to_string();
    assert_eq!(s.get(&loc).await.status, StatusCode::NO_CONTENT);
    // Start times have one-second resolution: wait past expiry plus a purge interval.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if s.get(&loc).await.status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "upload never expired");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let uploads = s.state.registry.storage().uploads().await.expect("uploads");
    assert!(uploads.is_empty());
}
