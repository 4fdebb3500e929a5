//! End-to-end tests of the distribution API over real HTTP.

mod common;

use bytes::Bytes;
use common::{digest_of, TestServer};
use http::{Method, StatusCode};
use serde_json::json;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[tokio::test]
async fn base_endpoint() {
    let s = TestServer::start(|_| {}).await;
    let r = s.get("/v2/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
    assert_eq!(r.json(), json!({}));
    let r = s.get("/v2/nope/unknown/path").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn monolithic_and_post_put_uploads() {
    let s = TestServer::start(|_| {}).await;
    // Monolithic POST ?digest=
    let d = s.push_blob("mono/repo", b"monolithic").await;
    let r = s.get(&format!("/v2/mono/repo/blobs/{d}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"monolithic");
    assert_eq!(r.header("docker-content-digest"), d);
    let r = s
        .req(
            Method::HEAD,
            &format!("/v2/mono/repo/blobs/{d}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "10");
    assert!(r.body.is_empty());

    // POST then PUT with the whole body.
    let r = s
        .req(
            Method::POST,
            "/v2/mono/repo/blobs/uploads/",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let loc = r.header("location").to_string();
    assert!(loc.starts_with("/v2/mono/repo/blobs/uploads/"), "{loc}");
    assert!(!r.header("docker-upload-uuid").is_empty());
    let data = b"post then put";
    let d2 = digest_of(data);
    let r = s
        .req(
            Method::PUT,
            &format!("{loc}?digest={d2}"),
            &[("content-type", "application/octet-stream")],
            &data[..],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.header("location"), format!("/v2/mono/repo/blobs/{d2}"));
    assert_eq!(
        s.get(&format!("/v2/mono/repo/blobs/{d2}")).await.body,
        &data[..]
    );

    // Wrong digest: DIGEST_INVALID and nothing visible.
    let wrong = digest_of(b"something else");
    let r = s
        .req(
            Method::POST,
            &format!("/v2/mono/repo/blobs/uploads/?digest={wrong}"),
            &[],
            &b"payload"[..],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "DIGEST_INVALID");
    assert_eq!(
        s.get(&format!("/v2/mono/repo/blobs/{wrong}")).await.status,
        StatusCode::NOT_FOUND
    );

    // Unknown blob and a malformed digest.
    let r = s
        .get(&format!("/v2/mono/repo/blobs/{}", digest_of(b"absent")))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "BLOB_UNKNOWN");
    let r = s.get("/v2/mono/repo/blobs/sha256:nothex").await;
    assert_eq!(r.error_code(), "DIGEST_INVALID");
    // A blob of another repository is not served here.
    let r = s.get(&format!("/v2/other/repo/blobs/{d}")).await;
    assert_eq!(r.error_code(), "BLOB_UNKNOWN");
}

#[tokio::test]
async fn chunked_upload_with_status_and_out_of_order() {
    let s = TestServer::start(|_| {}).await;
    let r = s
        .req(Method::POST, "/v2/chunk/blobs/uploads/", &[], Bytes::new())
        .await;
    let loc = r.header("location").to_string();
    assert_eq!(r.header("range"), "0-0");
    let r = s
        .req(
            Method::PATCH,
            &loc,
            &[
                ("content-range", "0-4"),
                ("content-type", "application/octet-stream"),
            ],
            &b"hello"[..],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.header("range"), "0-4");
    let loc = r.header("location").to_string();
    // Out-of-order chunk: 416 with the real state.
    let r = s
        .req(
            Method::PATCH,
            &loc,
            &[("content-range", "9-10")],
            &b"xx"[..],
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.error_code(), "BLOB_UPLOAD_INVALID");
    assert_eq!(r.header("range"), "0-4");
    assert_eq!(r.header("location"), loc);
    // Mismatched Content-Range vs length: also refused.
    let r = s
        .req(Method::PATCH, &loc, &[("content-range", "5-9")], &b"ab"[..])
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    // Status.
    let r = s.get(&loc).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("range"), "0-4");
    // Streamed PATCH without Content-Range.
    let r = s.req(Method::PATCH, &loc, &[], &b", wor"[..]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-9");
    // Final chunk in the PUT.
    let d = digest_of(b"hello, world");
    let r = s
        .req(
            Method::PUT,
            &format!("{loc}?digest={d}"),
            &[("content-range", "10-11")],
            &b"ld"[..],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        s.get(&format!("/v2/chunk/blobs/{d}")).await.body,
        &b"hello, world"[..]
    );
    // The session is gone.
    let r = s.get(&loc).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "BLOB_UPLOAD_UNKNOWN");
    // PUT without digest.
    let r = s
        .req(Method::POST, "/v2/chunk/blobs/uploads/", &[], Bytes::new())
        .await;
    let loc = r.header("location").to_string();
    let r = s.req(Method::PUT, &loc, &[], Bytes::new()).await;
    assert_eq!(r.error_code(), "DIGEST_INVALID");
    // Cancel.
    let r = s.req(Method::DELETE, &loc, &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = s.req(Method::DELETE, &loc, &[], Bytes::new()).await;
    assert_eq!(r.error_code(), "BLOB_UPLOAD_UNKNOWN");
    // An upload id is not usable from another repository.
    let r = s
        .req(Method::POST, "/v2/chunk/blobs/uploads/", &[], Bytes::new())
        .await;
    let id = r.header("docker-upload-uuid").to_string();
    let r = s.get(&format!("/v2/elsewhere/blobs/uploads/{id}")).await;
    assert_eq!(r.error_code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn blob_ranges_and_delete() {
    let s = TestServer::start(|_| {}).await;
    let d = s.push_blob("ranges", b"0123456789").await;
    let path = format!("/v2/ranges/blobs/{d}");
    let r = s
        .req(Method::GET, &path, &[("range", "bytes=2-5")], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], b"2345");
    assert_eq!(r.header("content-range"), "bytes 2-5/10");
    let r = s
        .req(Method::GET, &path, &[("range", "bytes=7-")], Bytes::new())
        .await;
    assert_eq!(&r.body[..], b"789");
    let r = s
        .req(Method::GET, &path, &[("range", "bytes=-2")], Bytes::new())
        .await;
    assert_eq!(&r.body[..], b"89");
    let r = s
        .req(
            Method::GET,
            &path,
            &[("range", "bytes=20-30")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), "bytes */10");
    let r = s.req(Method::DELETE, &path, &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(s.get(&path).await.status, StatusCode::NOT_FOUND);
    let r = s.req(Method::DELETE, &path, &[], Bytes::new()).await;
    assert_eq!(r.error_code(), "BLOB_UNKNOWN");
}

#[tokio::test]
async fn cross_repo_mount() {
    let s = TestServer::start(|_| {}).await;
    let d = s.push_blob("src/repo", b"shared layer").await;
    let r = s
        .req(
            Method::POST,
            &format!("/v2/dst/repo/blobs/uploads/?mount={d}&from=src/repo"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/dst/repo/blobs/{d}"));
    assert_eq!(r.header("docker-content-digest"), d);
    assert_eq!(
        s.get(&format!("/v2/dst/repo/blobs/{d}")).await.body,
        &b"shared layer"[..]
    );
    // Stored once.
    let blobs = s.state.registry.storage().blob_list().await.expect("list");
    assert_eq!(blobs.len(), 1);
    // Not in the source: fall back to an upload session.
    let other = digest_of(b"not there");
    let r = s
        .req(
            Method::POST,
            &format!("/v2/dst/repo/blobs/uploads/?mount={other}&from=src/repo"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.header("location").contains("/blobs/uploads/"));
    // Mount without from: also an upload.
    let r = s
        .req(
            Method::POST,
            &format!("/v2/third/blobs/uploads/?mount={d}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn manifests_by_tag_and_digest() {
    let s = TestServer::start(|_| {}).await;
    let (md, body) = s.push_image("img/app", "v1", "a").await;
    assert_eq!(md, digest_of(&body));
    for reference in ["v1", md.as_str()] {
        let r = s.get(&format!("/v2/img/app/manifests/{reference}")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, body, "stored byte-exact");
        assert_eq!(r.header("content-type"), OCI_MANIFEST);
        assert_eq!(r.header("docker-content-digest"), md);
        let r = s
            .req(
                Method::HEAD,
                &format!("/v2/img/app/manifests/{reference}"),
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-length"), body.len().to_string());
    }
    // Accept negotiation.
    let r = s
        .req(
            Method::GET,
            "/v2/img/app/manifests/v1",
            &[("accept", DOCKER_MANIFEST)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "MANIFEST_UNKNOWN");
    let r = s
        .req(
            Method::GET,
            &format!("/v2/img/app/manifests/{md}"),
            &[("accept", DOCKER_MANIFEST)],
            Bytes::new(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "by digest the bytes are served whatever Accept says"
    );
    let both = format!("{DOCKER_MANIFEST}, {OCI_MANIFEST}");
    let r = s
        .req(
            Method::GET,
            "/v2/img/app/manifests/v1",
            &[("accept", &both)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Unknown.
    let r = s.get("/v2/img/app/manifests/nope").await;
    assert_eq!(r.error_code(), "MANIFEST_UNKNOWN");
    let r = s.get("/v2/img/app/manifests/-bad-").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Docker schema2 manifest with the Docker media type.
    let cd = s.push_blob("img/app", b"{}").await;
    let docker = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd, "size": 2},
        "layers": []
    }))
    .expect("json");
    let r = s
        .req(
            Method::PUT,
            "/v2/img/app/manifests/docker",
            &[("content-type", DOCKER_MANIFEST)],
            docker.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = s.get("/v2/img/app/manifests/docker").await;
    assert_eq!(r.header("content-type"), DOCKER_MANIFEST);

    // An index of the two, pushed by digest.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": md, "size": body.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": DOCKER_MANIFEST, "digest": digest_of(&docker), "size": docker.len()}
        ]
    }))
    .expect("json");
    let id = digest_of(&index);
    let r = s
        .req(
            Method::PUT,
            &format!("/v2/img/app/manifests/{id}"),
            &[("content-type", OCI_INDEX)],
            index.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.header("location"), format!("/v2/img/app/manifests/{id}"));
    let r = s
        .req(
            Method::GET,
            &format!("/v2/img/app/manifests/{id}"),
            &[("accept", OCI_INDEX)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.body, index);

    // Put by digest with the wrong digest.
    let r = s
        .req(
            Method::PUT,
            &format!("/v2/img/app/manifests/{}", digest_of(b"x")),
            &[("content-type", OCI_INDEX)],
            index.clone(),
        )
        .await;
    assert_eq!(r.error_code(), "DIGEST_INVALID");

    // Index referencing an unknown manifest, manifest referencing unknown blobs.
    let bad_index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest_of(b"ghost"), "size": 1}]
    }))
    .expect("json");
    let r = s
        .req(
            Method::PUT,
            "/v2/img/app/manifests/bad",
            &[("content-type", OCI_INDEX)],
            bad_index,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "MANIFEST_BLOB_UNKNOWN");
    let bad = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "x", "digest": digest_of(b"no config"), "size": 1},
        "layers": []
    }))
    .expect("json");
    let r = s
        .req(
            Method::PUT,
            "/v2/img/app/manifests/bad",
            &[("content-type", OCI_MANIFEST)],
            bad,
        )
        .await;
    assert_eq!(r.error_code(), "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        r.json()["errors"][0]["detail"]["digest"],
        digest_of(b"no config")
    );
    // Not JSON; media type mismatch.
    let r = s
        .req(
            Method::PUT,
            "/v2/img/app/manifests/bad",
            &[("content-type", OCI_MANIFEST)],
            &b"{nope"[..],
        )
        .await;
    assert_eq!(r.error_code(), "MANIFEST_INVALID");
    let r = s
        .req(
            Method::PUT,
            "/v2/img/app/manifests/bad",
            &[("content-type", DOCKER_MANIFEST)],
            body.clone(),
        )
        .await;
    assert_eq!(r.error_code(), "MANIFEST_INVALID");

    // Invalid repository name.
    let r = s
        .req(
            Method::PUT,
            "/v2/Bad_Name/manifests/v1",
            &[("content-type", OCI_MANIFEST)],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "NAME_INVALID");

    // Delete a tag, then the manifest by digest (which also drops remaining tags).
    s.req(
        Method::PUT,
        "/v2/img/app/manifests/v1-alias",
        &[("content-type", OCI_MANIFEST)],
        body.clone(),
    )
    .await;
    let r = s
        .req(
            Method::DELETE,
            "/v2/img/app/manifests/v1",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        s.get("/v2/img/app/manifests/v1").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&format!("/v2/img/app/manifests/{md}")).await.status,
        StatusCode::OK
    );
    let r = s
        .req(
            Method::DELETE,
            &format!("/v2/img/app/manifests/{md}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        s.get(&format!("/v2/img/app/manifests/{md}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get("/v2/img/app/manifests/v1-alias").await.status,
        StatusCode::NOT_FOUND
    );
    let r = s
        .req(
            Method::DELETE,
            &format!("/v2/img/app/manifests/{md}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.error_code(), "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_too_large() {
    let s = TestServer::start(|c| c.manifest_max_bytes = 1024).await;
    let big = vec![b' '; 2048];
    let r = s
        .req(
            Method::PUT,
            "/v2/big/manifests/v1",
            &[("content-type", OCI_MANIFEST)],
            big,
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_code(), "MANIFEST_INVALID");
}

#[tokio::test]
async fn tags_and_catalog_pagination() {
    let s = TestServer::start(|_| {}).await;
    let (_, body) = s.push_image("pag/one", "c", "x").await;
    for t in ["a", "e", "b", "d"] {
        let r = s
            .req(
                Method::PUT,
                &format!("/v2/pag/one/manifests/{t}"),
                &[("content-type", OCI_MANIFEST)],
                body.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = s.get("/v2/pag/one/tags/list").await;
    assert_eq!(
        r.json(),
        json!({"name": "pag/one", "tags": ["a", "b", "c", "d", "e"]})
    );
    assert!(r.headers.get("link").is_none());
    let r = s.get("/v2/pag/one/tags/list?n=2").await;
    assert_eq!(r.json()["tags"], json!(["a", "b"]));
    assert_eq!(
        r.header("link"),
        "</v2/pag/one/tags/list?n=2&last=b>; rel=\"next\""
    );
    let r = s.get("/v2/pag/one/tags/list?n=2&last=b").await;
    assert_eq!(r.json()["tags"], json!(["c", "d"]));
    let r = s.get("/v2/pag/one/tags/list?n=2&last=d").await;
    assert_eq!(r.json()["tags"], json!(["e"]));
    assert!(r.headers.get("link").is_none());
    let r = s.get("/v2/pag/one/tags/list?n=0").await;
    assert_eq!(r.json()["tags"], json!([]));
    let r = s.get("/v2/pag/one/tags/list?n=abc").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = s.get("/v2/never/pushed/tags/list").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "NAME_UNKNOWN");

    s.push_blob("pag/two", b"x").await;
    s.push_blob("pag/one/nested", b"y").await;
    s.push_blob("aaa", b"z").await;
    let r = s.get("/v2/_catalog").await;
    assert_eq!(
        r.json(),
        json!({"repositories": ["aaa", "pag/one", "pag/one/nested", "pag/two"]})
    );
    let r = s.get("/v2/_catalog?n=2").await;
    assert_eq!(r.json()["repositories"], json!(["aaa", "pag/one"]));
    assert_eq!(
        r.header("link"),
        "</v2/_catalog?n=2&last=pag%2Fone>; rel=\"next\""
    );
    let r = s.get("/v2/_catalog?n=2&last=pag%2Fone").await;
    assert_eq!(
        r.json()["repositories"],
        json!(["pag/one/nested", "pag/two"])
    );
}

#[tokio::test]
async fn referrers_api() {
    let s = TestServer::start(|_| {}).await;
    let (subject, subject_body) = s.push_image("ref/app", "v1", "base").await;
    let empty = s.push_blob("ref/app", b"{}").await;
    let mut pushed = Vec::new();
    for (i, at) in [
        "application/vnd.example.sbom",
        "application/vnd.example.sig",
    ]
    .iter()
    .enumerate()
    {
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": at,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_body.len()},
            "annotations": {"n": i.to_string()}
        }))
        .expect("json");
        let d = digest_of(&m);
        let r = s
            .req(
                Method::PUT,
                &format!("/v2/ref/app/manifests/{d}"),
                &[("content-type", OCI_MANIFEST)],
                m.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(r.header("oci-subject"), subject);
        pushed.push((d, m.len(), *at));
    }
    // A referrer whose artifact type comes from its config media type.
    let cfg = s.push_blob("ref/app", b"{\"k\":1}").await;
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.config", "digest": cfg, "size": 7},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_body.len()}
    }))
    .expect("json");
    let r = s
        .req(
            Method::PUT,
            "/v2/ref/app/manifests/cfgtyped",
            &[("content-type", OCI_MANIFEST)],
            m,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let r = s.get(&format!("/v2/ref/app/referrers/{subject}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), OCI_INDEX);
    let idx = r.json();
    assert_eq!(idx["mediaType"], OCI_INDEX);
    let list = idx["manifests"].as_array().expect("manifests");
    assert_eq!(list.len(), 3);
    for (d, size, at) in &pushed {
        let e = list
            .iter()
            .find(|e| e["digest"] == *d)
            .expect("referrer listed");
        assert_eq!(e["size"], *size);
        assert_eq!(e["artifactType"], *at);
        assert_eq!(e["mediaType"], OCI_MANIFEST);
        assert!(e["annotations"]["n"].is_string());
    }
    assert!(list
        .iter()
        .any(|e| e["artifactType"] == "application/vnd.example.config"));

    let r = s
        .get(&format!(
            "/v2/ref/app/referrers/{subject}?artifactType=application/vnd.example.sig"
        ))
        .await;
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
    let list = r.json()["manifests"].as_array().expect("manifests").clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], pushed[1].0);

    // No referrers: an empty index, still 200.
    let r = s
        .get(&format!("/v2/ref/app/referrers/{}", digest_of(b"lonely")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["manifests"], json!([]));
    let r = s.get("/v2/ref/app/referrers/sha256:bad").await;
    assert_eq!(r.error_code(), "DIGEST_INVALID");

    // Deleting a referrer removes it from the index.
    let r = s
        .req(
            Method::DELETE,
            &format!("/v2/ref/app/manifests/{}", pushed[0].0),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = s.get(&format!("/v2/ref/app/referrers/{subject}")).await;
    assert_eq!(r.json()["manifests"].as_array().expect("list").len(), 2);
}

#[tokio::test]
async fn unsupported_methods() {
    let s = TestServer::start(|_| {}).await;
    let r = s
        .req(Method::POST, "/v2/x/tags/list", &[], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.error_code(), "UNSUPPORTED");
}

#[tokio::test]
async fn delete_disabled() {
    let s = TestServer::start(|c| c.delete_enabled = false).await;
    let (md, _) = s.push_image("nodel", "v1", "a").await;
    let r = s
        .req(
            Method::DELETE,
            &format!("/v2/nodel/manifests/{md}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.error_code(), "UNSUPPORTED");
}

#[tokio::test]
async fn large_blob_streams() {
    let s = TestServer::start(|_| {}).await;
    let data: Vec<u8> = (0..(16u32 << 20)).map(|i| (i % 251) as u8).collect();
    let d = s.push_blob("big/blob", &data).await;
    let r = s.get(&format!("/v2/big/blob/blobs/{d}")).await;
    assert_eq!(r.body.len(), data.len());
    assert_eq!(digest_of(&r.body), d);
    let r = s
        .req(
            Method::GET,
            &format!("/v2/big/blob/blobs/{d}"),
            &[("range", "bytes=16777200-")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], &data[16_777_200..]);
}
