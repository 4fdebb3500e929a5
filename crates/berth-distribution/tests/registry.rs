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

    // the imported layer (a plain tar) went out gzip-compressed, and its gzip digest
    // is remembered for the next push
    let layer = a.store.image_record(&id).expect("record").layers[0].clone();
    let ep = c.endpoint(&reg.addr.to_string()).await.expect("endpoint");
    let (m, _, _) = c
        .repository(ep, "test/bb", None, false)
        .get_manifest("1")
        .await
        .expect("manifest");
    let m: manifest::ImageManifest = serde_json::from_slice(&m).expect("json");
    assert_eq!(m.layers[0].media_type, manifest::OCI_LAYER_GZIP);
    assert_ne!(m.layers[0].digest, layer.blob);
    assert!(m.layers[0].size < layer.blob_size);
    assert_eq!(
        a.store.compressed_layer(&layer.blob).expect("lookup"),
        Some((m.layers[0].digest.clone(), m.layers[0].size))
    );
    // compression is deterministic: another registry gets the same blob
    let reg2 = registry(|_, _| {}).await;
    let (out2, _) = push(
        &c,
        &a.store,
        "local/bb:1",
        &format!("{}/t/bb:1", reg2.addr),
        None,
    )
    .await
    .expect("push to another registry");
    assert_eq!(out2.digest, out.digest);

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

/// A TCP proxy in front of a registry that can cut every connection after `limit` bytes
/// of replies, refuse connections altogether (`down`), or go down at the first cut
/// (`die_on_cut`: a registry dying mid-blob); it records the `Range` headers it
/// forwards and counts the reply bytes it passes.
struct CuttingProxy {
    addr: SocketAddr,
    limit: Arc<AtomicU64>,
    down: Arc<std::sync::atomic::AtomicBool>,
    die_on_cut: Arc<std::sync::atomic::AtomicBool>,
    ranges: Arc<Mutex<Vec<String>>>,
    passed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn cutting_proxy(upstream: SocketAddr, limit: u64) -> CuttingProxy {
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let limit = Arc::new(AtomicU64::new(limit));
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let passed = Arc::new(AtomicU64::new(0));
    let die_on_cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (l, d, rg, ps, dc) = (
        limit.clone(),
        down.clone(),
        ranges.clone(),
        passed.clone(),
        die_on_cut.clone(),
    );
    let task = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            if d.load(SeqCst) {
                drop(client);
                continue;
            }
            let (l, rg, ps, d, dc) = (l.clone(), rg.clone(), ps.clone(), d.clone(), dc.clone());
            tokio::spawn(async move {
                let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = up.into_split();
                let requests = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let text = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                        for line in text.lines() {
                            if let Some(v) = line.strip_prefix("range:") {
                                rg.lock().expect("lock").push(v.trim().to_string());
                            }
                        }
                        if uw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let replies = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut sent = 0u64;
                    while let Ok(n) = ur.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let budget = l.load(SeqCst).saturating_sub(sent);
                        let k = (n as u64).min(budget) as usize;
                        if cw.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                        sent += k as u64;
                        ps.fetch_add(k as u64, SeqCst);
                        if k < n {
                            // the connection goes mid-reply, and maybe the registry too
                            if dc.load(SeqCst) {
                                d.store(true, SeqCst);
                            }
                            break;
                        }
                    }
                };
                // whichever side ends first ends the connection
                tokio::select! {
                    _ = requests => {}
                    _ = replies => {}
                }
            });
        }
    });
    CuttingProxy {
        addr,
        limit,
        down,
        die_on_cut,
        ranges,
        passed,
        task,
    }
}

/// A rootfs with `n` bytes of incompressible content, so that its layer is large.
fn big_rootfs_tar(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(n as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    b.append_data(&mut h, "big.bin", data.as_slice())
        .expect("append");
    b.into_inner().expect("tar")
}

/// A store holding `local/big:1`, one 3 MiB layer of incompressible bytes: the tar, the id.
fn big_image() -> (Store, Vec<u8>, String) {
    let a = store();
    let tar = big_rootfs_tar(3 << 20);
    let id = a
        .store
        .import(
            &mut tar.as_slice(),
            ImportOptions {
                reference: Some(r("local/big:1")),
                ..ImportOptions::default()
            },
        )
        .expect("import")
        .id;
    (a, tar, id)
}

#[tokio::test]
async fn dropped_connections_resume_with_range() {
    use std::sync::atomic::Ordering::SeqCst;
    let reg = registry(|_, _| {}).await;
    let c = Client::default();
    let (a, tar, id) = big_image();
    push(&c, &a.store, &id, &format!("{}/r/big:1", reg.addr), None)
        .await
        .expect("push");

    // every connection breaks after 1 MiB of replies: the pull goes on from where each
    // one stopped, within the same pull
    let proxy = cutting_proxy(reg.addr, 1 << 20).await;
    let b = store();
    let name = format!("{}/r/big:1", proxy.addr);
    let (pulled, _) = pull(&c, &b.store, &name, None, None)
        .await
        .expect("pull over a connection that keeps breaking");
    assert_eq!(pulled, id);
    let ranges = proxy.ranges.lock().expect("lock").clone();
    assert!(
        ranges.len() >= 2 && ranges.iter().all(|r| r.starts_with("bytes=")),
        "{ranges:?}"
    );
    // nothing was fetched twice: well under two copies of the layer went through
    assert!(proxy.passed.load(SeqCst) < (tar.len() as u64) * 3 / 2);
    let out = b.store.get(&name).expect("pulled image");
    let layer = &b.store.image_record(&out.id).expect("record").layers[0];
    assert!(b.store.content().exists(&layer.blob));
    assert_eq!(b.store.content().partial_size(&layer.blob), None);
}

#[tokio::test]
async fn registry_dying_mid_blob_keeps_the_partial_download_for_the_next_pull() {
    use std::sync::atomic::Ordering::SeqCst;
    let reg = registry(|_, _| {}).await;
    let c = Client::default();
    let (a, tar, id) = big_image();
    let (pushed, _) = push(&c, &a.store, &id, &format!("{}/r/big:1", reg.addr), None)
        .await
        .expect("push");
    let layer = a.store.image_record(&id).expect("record").layers[0].clone();
    let blob = {
        let ep = c.endpoint(&reg.addr.to_string()).await.expect("endpoint");
        let repo = c.repository(ep, "r/big", None, false);
        let (m, _, _) = repo.get_manifest(&pushed.digest).await.expect("manifest");
        let m: manifest::ImageManifest = serde_json::from_slice(&m).expect("json");
        assert_eq!(m.layers.len(), 1);
        m.layers[0].clone()
    };
    assert_eq!(layer.diff_id, berth_image::digest::sha256_digest(&tar));

    // the registry dies after 1 MiB of the blob and stays down
    let proxy = cutting_proxy(reg.addr, 1 << 20).await;
    proxy.die_on_cut.store(true, SeqCst);
    let b = store();
    let name = format!("{}/r/big:1", proxy.addr);
    let Err(err) = pull(&c, &b.store, &name, None, None).await else {
        panic!("pull from a registry that died succeeded");
    };
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Interrupted { .. }),
        "not an interrupted download: {msg}"
    );
    assert!(
        msg.contains(&blob.digest) && msg.contains("kept to resume"),
        "{msg}"
    );
    let kept = b
        .store
        .content()
        .partial_size(&blob.digest)
        .expect("partial download kept");
    assert!(kept > 0 && kept < blob.size, "{kept} of {}", blob.size);
    // no half image: no image, no blob, no snapshot
    assert!(b.store.get(&name).is_err());
    assert!(b.store.list().expect("list").is_empty());
    assert!(!b.store.content().exists(&blob.digest));
    assert!(!b.store.snapshotter().exists(&layer.chain_id));

    // the registry is back: the next pull starts at the kept offset
    proxy.ranges.lock().expect("lock").clear();
    proxy.die_on_cut.store(false, SeqCst);
    proxy.limit.store(u64::MAX, SeqCst);
    proxy.down.store(false, SeqCst);
    let before = proxy.passed.load(SeqCst);
    let (pulled, _) = pull(&c, &b.store, &name, None, None)
        .await
        .expect("pull after the registry came back");
    assert_eq!(pulled, id);
    let ranges = proxy.ranges.lock().expect("lock").clone();
    assert!(
        ranges.contains(&format!("bytes={kept}-")),
        "no resume from {kept}: {ranges:?}"
    );
    let fetched = proxy.passed.load(SeqCst) - before;
    assert!(
        fetched < blob.size - kept + 64 * 1024,
        "fetched {fetched} bytes, {} were missing",
        blob.size - kept
    );
    assert_eq!(b.store.content().partial_size(&blob.digest), None);
    assert!(b.store.snapshotter().exists(&layer.chain_id));
    let img = b.store.get(&name).expect("image");
    assert_eq!(img.id, id);
}

#[tokio::test]
async fn max_concurrent_downloads_is_honoured() {
    let reg = registry(|_, _| {}).await;
    let c = Client::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let ep = c.endpoint(&reg.addr.to_string()).await.expect("endpoint");
    let repo = c.repository(ep, "two/layers", None, true);
    let tars = [rootfs_tar("lower"), rootfs_tar("upper")];
    let mut layers = Vec::new();
    for t in &tars {
        let gz = gzip(t);
        let d = upload(&repo, &gz, tmp.path()).await;
        layers.push(
            serde_json::json!({"mediaType": DOCKER_LAYER_GZIP, "digest": d, "size": gz.len()}),
        );
    }
    let diff_ids: Vec<String> = tars
        .iter()
        .map(|t| berth_image::digest::sha256_digest(t))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json");
    let config_d = upload(&repo, &config, tmp.path()).await;
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": config_d, "size": config.len()},
        "layers": layers,
    }))
    .expect("json");
    repo.put_manifest("v1", DOCKER_MANIFEST, &m)
        .await
        .expect("put manifest");
    let name = format!("{}/two/layers:v1", reg.addr);

    let s = store();
    let (id, rec) = pull(&c, &s.store, &name, None, None).await.expect("pull");
    assert_eq!(id, config_d);
    assert!(!rec.has("Waiting"), "{:?}", rec.statuses());

    let one = Client::new(ClientConfig {
        max_concurrent_downloads: 1,
        ..ClientConfig::default()
    });
    let s = store();
    let (id, rec) = pull(&one, &s.store, &name, None, None)
        .await
        .expect("pull one layer at a time");
    assert_eq!(id, config_d);
    assert_eq!(
        rec.statuses()
            .iter()
            .filter(|s| s.ends_with(": Waiting"))
            .count(),
        1,
        "{:?}",
        rec.statuses()
    );
    // both layers unpacked on top of each other
    let img = s.store.image_record(&id).expect("record");
    assert_eq!(img.layers.len(), 2);
    assert!(s.store.snapshotter().exists(&img.layers[1].chain_id));
}
