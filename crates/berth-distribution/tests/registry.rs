//! The client against an embedded berth-registry on 127.0.0.1:<ephemeral>: push an
//! imported busybox rootfs, pull it into a fresh image store, auth flows, index platform
//! selection, Docker and OCI media types, mirrors.

use berth_distribution::manifest::{self, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST};
use berth_distribution::{Client, ClientConfig, Credentials, Error, ErrorKind, Progress};
use berth_image::{ImageStore, ImportOptions, Reference};
use berth_registry::config::{AuthMode, Permission};
use berth_registry::Config;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

struct Registry {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn registry(tune: impl FnOnce(&mut Config, &Path)) -> Registry {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config {
        root: dir.path().join("data"),
        ..Config::default()
    };
    tune(&mut cfg, dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    cfg.addr = addr;
    let state = berth_registry::build_state(&cfg).expect("registry state");
    let task = tokio::spawn(async move {
        berth_registry::serve_state(listener, state, std::future::pending())
            .await
            .expect("serve");
    });
    Registry {
        addr,
        _dir: dir,
        task,
    }
}

/// htpasswd with alice/alicepw (low bcrypt cost keeps the test quick).
fn auth_registry_tune(mode: AuthMode) -> impl FnOnce(&mut Config, &Path) {
    move |c, dir| {
        let p = dir.join("htpasswd");
        let h = bcrypt::hash("alicepw", 4).expect("bcrypt");
        std::fs::write(&p, format!("alice:{h}\n")).expect("write htpasswd");
        c.auth.htpasswd = Some(p);
        c.auth.mode = mode;
        c.auth.permissions = vec![Permission {
            user: "alice".into(),
            repository: "*".into(),
            actions: berth_registry::config::Action::parse_list("pull,push,delete"),
        }];
    }
}

struct Store {
    store: ImageStore,
    _dir: tempfile::TempDir,
}

fn store() -> Store {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(redb::Database::create(dir.path().join("db.redb")).expect("redb"));
    let store = ImageStore::open(dir.path(), db).expect("image store");
    Store { store, _dir: dir }
}

/// A rootfs tarball with busybox (when installed) and a file that makes it unique.
fn rootfs_tar(marker: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, path, data).expect("append");
    };
    if let Ok(bb) = std::fs::read("/usr/bin/busybox") {
        add("bin/busybox", &bb, 0o755);
    }
    add("etc/marker", marker.as_bytes(), 0o644);
    b.into_inner().expect("tar")
}

fn import(s: &ImageStore, marker: &str, name: &str) -> String {
    let tar = rootfs_tar(marker);
    s.import(
        &mut tar.as_slice(),
        ImportOptions {
            reference: Some(Reference::parse(name).expect("reference")),
            ..ImportOptions::default()
        },
    )
    .expect("import")
    .id
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Progress>>);

impl Recorder {
    fn sink(&self) -> impl Fn(Progress) + Send + Sync + '_ {
        |p| self.0.lock().expect("lock").push(p)
    }
    fn statuses(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .map(|p| match &p.id {
                Some(id) => format!("{id}: {}", p.status),
                None => p.status.clone(),
            })
            .collect()
    }
    fn has(&self, needle: &str) -> bool {
        self.statuses().iter().any(|s| s.contains(needle))
    }
}

fn r(s: &str) -> Reference {
    Reference::parse(s).expect("reference")
}

async fn pull(
    c: &Client,
    s: &ImageStore,
    name: &str,
    platform: Option<&str>,
    creds: Option<Credentials>,
) -> Result<(String, Recorder), Error> {
    let rec = Recorder::default();
    let resolved = c.resolve(&r(name), platform, creds).await?;
    let out = resolved.pull(s, &rec.sink()).await?;
    Ok((out.image.id, rec))
}

async fn push(
    c: &Client,
    s: &ImageStore,
    source: &str,
    target: &str,
    creds: Option<Credentials>,
) -> Result<(berth_distribution::PushOutcome, Recorder), Error> {
    let rec = Recorder::default();
    let out = c.push(s, source, &r(target), creds, &rec.sink()).await?;
    Ok((out, rec))
}

#[tokio::test]
async fn push_then_pull_into_a_fresh_store() {
    let reg = registry(|_, _| {}).await;
    let a = store();
    let id = import(&a.store, "one", "local/bb:1");
    let c = Client::new(ClientConfig::default());
    let target = format!("{}/test/bb:1", reg.addr);

    let (out, rec) = push(&c, &a.store, "local/bb:1", &target, None)
        .await
        .expect("push");
    assert!(
        rec.has("Preparing") && rec.has("Pushed"),
        "{:?}",
        rec.statuses()
    );
    assert!(rec.has(&format!("1: digest: {} size: {}", out.digest, out.size)));
    let aux = rec
        .0
        .lock()
        .expect("lock")
        .iter()
        .find_map(|p| p.aux.clone());
    assert_eq!(aux.expect("aux")["Digest"], out.digest.as_str());
    // dockerd records the pushed digest
    let img = a.store.get(&id).expect("image");
    assert!(img
        .repo_digests
        .contains(&format!("{}/test/bb@{}", reg.addr, out.digest)));

    let (_, rec) = push(&c, &a.store, "local/bb:1", &target, None)
        .await
        .expect("push again");
    assert!(rec.has("Layer already exists"), "{:?}", rec.statuses());
    // another repository on the same registry: mounted, not uploaded
    let (_, rec) = push(&c, &a.store, &id, &format!("{}/other/bb:x", reg.addr), None)
        .await
        .expect("push elsewhere");
    assert!(rec.has("Mounted from test/bb"), "{:?}", rec.statuses());

    let b = store();
    let (pulled, rec) = pull(&c, &b.store, &target, None, None).await.expect("pull");
    assert_eq!(pulled, id, "same image id after the round trip");
    let st = rec.statuses();
    for want in [
        "1: Pulling from test/bb",
        "Pulling fs layer",
        "Downloading",
        "Verifying Checksum",
        "Download complete",
        "Extracting",
        "Pull complete",
    ] {
        assert!(
            st.iter().any(|s| s.contains(want)),
            "{want} missing: {st:?}"
        );
    }
    assert!(rec.has(&format!("Digest: {}", out.digest)));
    assert!(rec.has(&format!("Status: Downloaded newer image for {target}")));
    let img = b.store.get(&target).expect("tagged");
    assert_eq!(img.id, id);
    assert!(img
        .repo_digests
        .contains(&format!("{}/test/bb@{}", reg.addr, out.digest)));

    let (_, rec) = pull(&c, &b.store, &target, None, None)
        .await
        .expect("pull again");
    assert!(rec.has("Already exists"));
    assert!(rec.has(&format!("Status: Image is up to date for {target}")));

    // by digest
    let c2 = store();
    let by_digest = format!("{}/test/bb@{}", reg.addr, out.digest);
    let (pulled, _) = pull(&c, &c2.store, &by_digest, None, None)
        .await
        .expect("pull by digest");
    assert_eq!(pulled, id);
    assert_eq!(c2.store.get(&by_digest).expect("by repo digest").id, id);
}

#[tokio::test]
async fn missing_repository_and_tag() {
    let reg = registry(|_, _| {}).await;
    let c = Client::default();
    let a = store();
    import(&a.store, "x", "local/x:1");
    push(
        &c,
        &a.store,
        "local/x:1",
        &format!("{}/have/x:1", reg.addr),
        None,
    )
    .await
    .expect("push");

    let name = format!("{}/have/x:nope", reg.addr);
    let err = c
        .resolve(&r(&name), None, None)
        .await
        .err()
        .expect("no tag");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let msg = err.pull_message(&r(&name));
    assert!(
        msg.starts_with(&format!("manifest for {name} not found: manifest unknown")),
        "{msg}"
    );
    let name = format!("{}/nothing/here:1", reg.addr);
    let err = c
        .resolve(&r(&name), None, None)
        .await
        .err()
        .expect("no repo");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn token_auth_flow() {
    let reg = registry(auth_registry_tune(AuthMode::Token)).await;
    let c = Client::default();
    let a = store();
    let id = import(&a.store, "tok", "local/t:1");
    let target = format!("{}/team/t:1", reg.addr);
    let alice = Credentials::basic("alice", "alicepw");
    let domain = reg.addr.to_string();

    c.login(&domain, &alice).await.expect("login");
    let err = c
        .login(&domain, &Credentials::basic("alice", "wrong"))
        .await
        .expect_err("bad password");
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");

    let err = push(
        &c,
        &a.store,
        "local/t:1",
        &target,
        Some(Credentials::basic("alice", "wrong")),
    )
    .await
    .err()
    .expect("push with a bad password");
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    push(&c, &a.store, "local/t:1", &target, Some(alice.clone()))
        .await
        .expect("push as alice");

    // anonymous pull: no rule allows it
    let b = store();
    let err = pull(&c, &b.store, &target, None, None)
        .await
        .err()
        .expect("anonymous pull refused");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.pull_message(&r(&target)).starts_with(&format!(
            "pull access denied for {}/team/t, repository does not exist or may require 'docker login'",
            reg.addr
        )),
        "{}",
        err.pull_message(&r(&target))
    );
    let (pulled, _) = pull(&c, &b.store, &target, None, Some(alice))
        .await
        .expect("pull as alice");
    assert_eq!(pulled, id);
}

#[tokio::test]
async fn basic_auth_login_and_pull() {
    let reg = registry(auth_registry_tune(AuthMode::Basic)).await;
    let c = Client::default();
    let domain = reg.addr.to_string();
    let alice = Credentials::basic("alice", "alicepw");
    c.login(&domain, &alice).await.expect("login");
    let err = c
        .login(&domain, &Credentials::basic("alice", "nope"))
        .await
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!("login attempt to http://{domain}/v2/ failed with status: 401 Unauthorized")
    );
    let a = store();
    let id = import(&a.store, "basic", "local/b:1");
    let target = format!("{domain}/x/b:1");
    push(&c, &a.store, &id, &target, Some(alice.clone()))
        .await
        .expect("push");
    let b = store();
    assert_eq!(
        pull(&c, &b.store, &target, None, Some(alice))
            .await
            .expect("pull")
            .0,
        id
    );
}

#[tokio::test]
async fn index_platform_selection() {
    let reg = registry(|_, _| {}).await;
    let c = Client::default();
    let a = store();
    let arm = import(&a.store, "arm64", "local/arm:1");
    let amd = import(&a.store, "amd64", "local/amd:1");
    let (arm_m, _) = push(
        &c,
        &a.store,
        &arm,
        &format!("{}/multi/img:arm", reg.addr),
        None,
    )
    .await
    .expect("push arm");
    let (amd_m, _) = push(
        &c,
        &a.store,
        &amd,
        &format!("{}/multi/img:amd", reg.addr),
        None,
    )
    .await
    .expect("push amd");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": [
            {"mediaType": manifest::OCI_MANIFEST, "digest": arm_m.digest, "size": arm_m.size,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": manifest::OCI_MANIFEST, "digest": amd_m.digest, "size": amd_m.size,
             "platform": {"os": "linux", "architecture": "amd64"}},
        ]
    });
    let bytes = serde_json::to_vec(&index).expect("json");
    let ep = c.endpoint(&reg.addr.to_string()).await.expect("endpoint");
    let repo = c.repository(ep, "multi/img", None, true);
    let index_digest = repo
        .put_manifest("multi", manifest::OCI_INDEX, &bytes)
        .await
        .expect("put index");

    let name = format!("{}/multi/img:multi", reg.addr);
    let b = store();
    let (id, rec) = pull(&c, &b.store, &name, Some("linux/arm64"), None)
        .await
        .expect("pull arm64");
    assert_eq!(id, arm);
    assert!(
        rec.has(&format!("Digest: {index_digest}")),
        "the index digest is the repo digest"
    );
    let (id, _) = pull(&c, &b.store, &name, Some("linux/amd64"), None)
        .await
        .expect("pull amd64");
    assert_eq!(id, amd);
    let err = c
        .resolve(&r(&name), Some("linux/s390x"), None)
        .await
        .err()
        .expect("no s390x");
    assert_eq!(
        err.to_string(),
        "no matching manifest for linux/s390x in the manifest list entries"
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

async fn upload(repo: &berth_distribution::client::Repository, data: &[u8], dir: &Path) -> String {
    let digest = berth_image::digest::sha256_digest(data);
    let path = dir.join(digest.replace(':', "_"));
    std::fs::write(&path, data).expect("write blob");
    let loc = repo.start_upload().await.expect("start upload");
    repo.put_blob_file(
        &loc,
        &digest,
        &path,
        data.len() as u64,
        Arc::new(AtomicU64::new(0)),
    )
    .await
    .expect("upload");
    digest
}

#[tokio::test]
async fn docker_media_types_round_trip() {
    let reg = registry(|_, _| {}).await;
    let c = Client::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let ep = c.endpoint(&reg.addr.to_string()).await.expect("endpoint");
    let repo = c.repository(ep.clone(), "docker/fmt", None, true);

    let tar = rootfs_tar("docker");
    let layer = gzip(&tar);
    let diff_id = berth_image::digest::sha256_digest(&tar);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "hand made"}]
    }))
    .expect("json");
    let layer_d = upload(&repo, &layer, tmp.path()).await;
    let config_d = upload(&repo, &config, tmp.path()).await;
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": config_d, "size": config.len()},
        "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": layer_d, "size": layer.len()}]
    }))
    .expect("json");
    repo.put_manifest("v1", DOCKER_MANIFEST, &m)
        .await
        .expect("put docker manifest");

    let s = store();
    let name = format!("{}/docker/fmt:v1", reg.addr);
    let (id, _) = pull(&c, &s.store, &name, None, None).await.expect("pull");
    assert_eq!(id, config_d);
    let rec = s.store.image_record(&id).expect("record");
    assert_eq!(rec.layers[0].media_type, DOCKER_LAYER_GZIP);
    assert_eq!(rec.layers[0].diff_id, diff_id);

    // pushed back elsewhere, it stays a Docker schema 2 image with the same bytes' digest
    let (out, _) = push(
        &c,
        &s.store,
        &id,
        &format!("{}/docker/copy:v1", reg.addr),
        None,
    )
    .await
    .expect("push back");
    let copy = c.repository(ep, "docker/copy", None, false);
    let (bytes, mt, digest) = copy.get_manifest("v1").await.expect("get");
    assert_eq!(mt, DOCKER_MANIFEST);
    assert_eq!(digest, out.digest);
    let pushed: manifest::ImageManifest = serde_json::from_slice(&bytes).expect("manifest");
    assert_eq!(pushed.config.media_type, DOCKER_CONFIG);
    assert_eq!(pushed.layers[0].digest, layer_d);
}

#[tokio::test]
async fn docker_hub_names_go_to_mirrors_first() {
    let reg = registry(|_, _| {}).await;
    let plain = Client::default();
    let a = store();
    let id = import(&a.store, "mirror", "local/m:1");
    // the mirror holds Hub's path for busybox
    push(
        &plain,
        &a.store,
        &id,
        &format!("{}/library/mirrored:1", reg.addr),
        None,
    )
    .await
    .expect("seed mirror");
    let c = Client::new(ClientConfig {
        registry_mirrors: vec![format!("http://{}", reg.addr)],
        ..ClientConfig::default()
    });
    let b = store();
    let (pulled, rec) = pull(&c, &b.store, "mirrored:1", None, None)
        .await
        .expect("pull through the mirror");
    assert_eq!(pulled, id);
    assert!(rec.has("1: Pulling from library/mirrored"));
    assert!(rec.has("Status: Downloaded newer image for mirrored:1"));
    assert_eq!(b.store.get("mirrored:1").expect("tag").id, id);
}
