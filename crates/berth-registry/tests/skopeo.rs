//! Interoperability with a real client: skopeo copies an OCI layout into the registry and
//! back, lists tags, inspects and deletes. Needs Debian's `skopeo`; without it the test
//! says so and passes, except under CI (`CI=true`), where it fails loudly.

mod common;

use std::path::Path;
use std::process::Output;

use common::{digest_of, TestServer};
use serde_json::json;

fn write_blob(layout: &Path, data: &[u8]) -> String {
    let d = digest_of(data);
    let hex = d.strip_prefix("sha256:").expect("sha256");
    std::fs::write(layout.join("blobs/sha256").join(hex), data).expect("write blob");
    d
}

/// A one-layer OCI image layout tagged `v1`.
fn make_layout(layout: &Path) -> String {
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("mkdir");
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("layout");
    let mut tar = tar::Builder::new(Vec::new());
    let content = b"hello from berth-registry\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, "hello.txt", &content[..])
        .expect("tar entry");
    let layer = tar.into_inner().expect("tar");
    let ld = write_blob(layout, &layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [ld]}
    }))
    .expect("json");
    let cd = write_blob(layout, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}]
    }))
    .expect("json");
    let md = write_blob(layout, &manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}
        }]
    });
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index");
    md
}

async fn skopeo(args: &[&str]) -> Output {
    let out = tokio::process::Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .await
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copy_roundtrip() {
    if std::process::Command::new("skopeo")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "skopeo is not installed (apt-get install -y skopeo)"
        );
        eprintln!("SKIPPED skopeo_copy_roundtrip: skopeo is not installed");
        return;
    }
    let s = TestServer::start(|_| {}).await;
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    let md = make_layout(&src);
    let reg = format!("docker://{}/skopeo/test", s.addr);

    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        // skopeo would otherwise gzip our uncompressed layer and write a new manifest.
        "--preserve-digests",
        &format!("oci:{}:v1", src.display()),
        &format!("{reg}:v1"),
    ])
    .await;
    let r = s.get("/v2/skopeo/test/manifests/v1").await;
    assert_eq!(r.status, http::StatusCode::OK);
    assert_eq!(
        r.header("docker-content-digest"),
        md,
        "manifest stored byte-exact"
    );

    let out = skopeo(&["list-tags", "--tls-verify=false", &reg]).await;
    let tags: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list-tags json");
    assert_eq!(tags["Tags"], json!(["v1"]));

    let out = skopeo(&["inspect", "--tls-verify=false", &format!("{reg}:v1")]).await;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    assert_eq!(info["Digest"], md);

    let back = work.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        &format!("{reg}:v1"),
        &format!("oci:{}:v1", back.display()),
    ])
    .await;
    let hex = md.strip_prefix("sha256:").expect("sha256");
    assert_eq!(
        std::fs::read(back.join("blobs/sha256").join(hex)).expect("manifest copied back"),
        std::fs::read(src.join("blobs/sha256").join(hex)).expect("source manifest"),
    );

    skopeo(&["delete", "--tls-verify=false", &format!("{reg}:v1")]).await;
    let r = s.get("/v2/skopeo/test/manifests/v1").await;
    assert_eq!(r.status, http::StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_with_token_auth() {
    if std::process::Command::new("skopeo")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "skopeo is not installed (apt-get install -y skopeo)"
        );
        eprintln!("SKIPPED skopeo_with_token_auth: skopeo is not installed");
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let htpasswd = work.path().join("htpasswd");
    let hash = bcrypt::hash("s3cret", 4).expect("hash");
    std::fs::write(&htpasswd, format!("carol:{hash}\n")).expect("htpasswd");
    let s = TestServer::start(|c| {
        c.auth.htpasswd = Some(htpasswd);
        c.auth.mode = berth_registry::config::AuthMode::Token;
    })
    .await;
    let src = work.path().join("src");
    let md = make_layout(&src);
    let reg = format!("docker://{}/private/img", s.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--preserve-digests",
        "--dest-creds",
        "carol:s3cret",
        &format!("oci:{}:v1", src.display()),
        &format!("{reg}:v1"),
    ])
    .await;
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "carol:s3cret",
        &format!("{reg}:v1"),
    ])
    .await;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    assert_eq!(info["Digest"], md);
    // Without credentials the pull is refused.
    let out = tokio::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("{reg}:v1")])
        .output()
        .await
        .expect("run skopeo");
    assert!(!out.status.success(), "anonymous inspect must fail");
}
