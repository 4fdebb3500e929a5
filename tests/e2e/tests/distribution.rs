//! Pull, push and login end to end: the real docker CLI and `berth` against berthd, with
//! `target/debug/berth-registry` (and Debian's `docker-registry` when installed) as the
//! registry, and skopeo reading what berthd pushed.

use berth_e2e::{bin, free_port, require, stdout, text, unique, Daemon, Registry};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn write_htpasswd(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("htpasswd");
    let h = bcrypt::hash("alicepw", 5).expect("bcrypt");
    std::fs::write(&p, format!("alice:{h}\n")).expect("write htpasswd");
    p
}

/// `berth-registry serve`; `auth` adds an htpasswd (alice/alicepw) and the token flow.
fn berth_registry(auth: bool) -> Registry {
    Registry::berth(|dir| {
        if auth {
            vec![
                "--htpasswd".into(),
                write_htpasswd(dir).into(),
                "--token-auth".into(),
            ]
        } else {
            vec![]
        }
    })
}

/// Debian's `docker-registry` (distribution 2.8) with a filesystem root.
fn distribution_registry() -> Registry {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve").arg(&cfg);
    Registry::spawn(cmd, port, dir, "docker-registry")
}

fn ok(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed: {}", text(&o));
    stdout(&o)
}

/// docker with a stdin (for `login --password-stdin`).
fn docker_stdin(d: &Daemon, args: &[&str], input: &str) -> Output {
    let mut child = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("docker output")
}

/// Push `busybox` as `name` with the docker CLI, remove every local copy, pull it back
/// and run it.
fn round_trip(d: &Daemon, name: &str) {
    ok(d.docker(&["tag", "busybox", name]), "tag");
    let out = ok(d.docker(&["push", name]), "push");
    assert!(out.contains("The push refers to repository ["), "{out}");
    assert!(out.contains(": Pushed"), "{out}");
    assert!(out.contains("digest: sha256:"), "{out}");
    let out = ok(d.docker(&["push", name]), "push again");
    assert!(out.contains("Layer already exists"), "{out}");

    let id = ok(
        d.docker(&["image", "inspect", "-f", "{{.Id}}", name]),
        "inspect",
    );
    // by id, forced: the pushed image also has repo digests now
    ok(d.docker(&["rmi", "-f", id.trim()]), "rmi image");
    let out = ok(d.docker(&["pull", name]), "pull");
    assert!(out.contains("Pull complete"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    assert_eq!(
        ok(
            d.docker(&["image", "inspect", "-f", "{{.Id}}", name]),
            "inspect pulled"
        ),
        id,
        "same image after the round trip"
    );
    let digests = ok(
        d.docker(&["image", "inspect", "-f", "{{json .RepoDigests}}", name]),
        "digests",
    );
    assert!(digests.contains("@sha256:"), "{digests}");
    let out = ok(d.docker(&["pull", name]), "pull again");
    assert!(
        out.contains(&format!("Status: Image is up to date for {name}")),
        "{out}"
    );
    let out = ok(
        d.docker(&["run", "--rm", name, "echo", "pulled-and-ran"]),
        "run pulled image",
    );
    assert_eq!(out.trim(), "pulled-and-ran");
    // put busybox back for the caller
    ok(d.docker(&["tag", name, "busybox"]), "retag busybox");
}

#[test]
fn docker_push_pull_against_berth_registry() {
    let reg = berth_registry(false);
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = format!("127.0.0.1:{}/test/bb:1", reg.port);
    round_trip(&d, &name);

    // errors before the stream: docker's wording and a failing exit
    let missing = format!("127.0.0.1:{}/test/bb:nope", reg.port);
    let o = d.docker(&["pull", &missing]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!(
            "manifest for {missing} not found: manifest unknown"
        )),
        "{}",
        text(&o)
    );
    let o = d.docker(&["push", &format!("127.0.0.1:{}/none/x:1", reg.port)]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("An image does not exist locally with the tag"),
        "{}",
        text(&o)
    );

    // berth's own CLI
    let b = format!("127.0.0.1:{}/berth/bb:2", reg.port);
    ok(d.berth(&["tag", "busybox", &b]), "berth tag");
    let out = ok(d.berth(&["push", &b]), "berth push");
    assert!(out.contains("2: digest: sha256:"), "{out}");
    assert!(
        out.contains("Mounted from test/bb") || out.contains("Layer already exists"),
        "{out}"
    );
    ok(d.berth(&["rmi", &b]), "berth rmi");
    let out = ok(d.berth(&["pull", &b]), "berth pull");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {b}")),
        "{out}"
    );
    ok(
        d.berth(&["image", "inspect", &b]),
        "pulled image is present",
    );

    // pull and push show up as events (`--until` a little ahead: `0s` is truncated to
    // the second and can miss events of the current one)
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 2)
    .to_string();
    let events = ok(
        d.docker(&[
            "events",
            "--since",
            "0",
            "--until",
            &until,
            "--filter",
            "type=image",
            "--format",
            "{{.Action}} {{.Actor.ID}}",
        ]),
        "events",
    );
    assert!(events.contains(&format!("push {name}")), "{events}");
    assert!(events.contains(&format!("pull {name}")), "{events}");

    // skopeo reads what berthd pushed
    if require("skopeo") {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = format!("oci:{}:copy", dir.path().join("layout").display());
        let o = Command::new("skopeo")
            .args([
                "copy",
                "--src-tls-verify=false",
                &format!("docker://{name}"),
                &dest,
            ])
            .output()
            .expect("skopeo");
        assert!(o.status.success(), "skopeo copy: {}", text(&o));
    }
}

#[test]
fn docker_login_with_htpasswd_and_tokens() {
    let reg = berth_registry(true);
    let d = Daemon::start();
    d.import_busybox("busybox");
    let server = format!("127.0.0.1:{}", reg.port);
    let name = format!("{server}/private/bb:1");
    ok(d.docker(&["tag", "busybox", &name]), "tag");

    let o = d.docker(&["push", &name]);
    assert!(
        !o.status.success(),
        "anonymous push must fail: {}",
        text(&o)
    );

    let o = docker_stdin(
        &d,
        &["login", &server, "-u", "alice", "--password-stdin"],
        "wrong\n",
    );
    assert!(!o.status.success(), "bad password accepted: {}", text(&o));
    assert!(text(&o).contains("unauthorized"), "{}", text(&o));

    let o = docker_stdin(
        &d,
        &["login", &server, "-u", "alice", "--password-stdin"],
        "alicepw\n",
    );
    assert!(o.status.success(), "login: {}", text(&o));
    assert!(stdout(&o).contains("Login Succeeded"), "{}", text(&o));

    let out = ok(d.docker(&["push", &name]), "push after login");
    assert!(out.contains("digest: sha256:"), "{out}");
    ok(d.docker(&["rmi", &name]), "rmi");
    let out = ok(d.docker(&["pull", &name]), "pull after login");
    assert!(out.contains("Status: "), "{out}");

    ok(d.docker(&["logout", &server]), "logout");
    ok(d.docker(&["rmi", &name]), "rmi again");
    let o = d.docker(&["pull", &name]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!(
            "pull access denied for {server}/private/bb, repository does not exist or may require 'docker login'"
        )),
        "{}",
        text(&o)
    );

    // berth login stores credentials where berth push finds them
    let cfg = tempfile::tempdir().expect("tempdir");
    let berth = |args: &[&str], input: Option<&str>| {
        let mut child = Command::new(bin("berth"))
            .args(["-H", &d.host()])
            .args(args)
            .env("DOCKER_CONFIG", cfg.path())
            .env("HOME", cfg.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(i) = input {
            stdin.write_all(i.as_bytes()).expect("stdin");
        }
        drop(stdin);
        child.wait_with_output().expect("berth output")
    };
    let o = berth(
        &["login", &server, "-u", "alice", "--password-stdin"],
        Some("alicepw\n"),
    );
    assert!(o.status.success(), "berth login: {}", text(&o));
    let b = format!("{server}/private/berth:1");
    ok(d.berth(&["tag", "busybox", &b]), "tag");
    let o = berth(&["push", &b], None);
    assert!(o.status.success(), "berth push: {}", text(&o));
    ok(d.berth(&["rmi", &b]), "rmi");
    let o = berth(&["pull", &b], None);
    assert!(
        o.status.success(),
        "berth pull with stored credentials: {}",
        text(&o)
    );
}

#[test]
fn docker_push_pull_against_distribution() {
    if !require("docker-registry") {
        return;
    }
    let reg = distribution_registry();
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = format!("127.0.0.1:{}/dist/{}:1", reg.port, unique("bb"));
    round_trip(&d, &name);
}

/// A TCP proxy in front of a registry that dies mid-reply: every connection ends after
/// `limit` bytes of replies, and after the first cut new connections are refused until
/// [`DyingProxy::revive`]. It records the `Range` headers of the requests it forwards.
struct DyingProxy {
    port: u16,
    limit: std::sync::Arc<std::sync::atomic::AtomicU64>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ranges: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl DyingProxy {
    fn start(upstream: u16, limit: u64) -> DyingProxy {
        use std::io::Read;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let limit = Arc::new(AtomicU64::new(limit));
        let down = Arc::new(AtomicBool::new(false));
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let (l, d, rg) = (limit.clone(), down.clone(), ranges.clone());
        // the accept loop lives as long as the test process; it holds nothing else
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if d.load(SeqCst) {
                    continue;
                }
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_in, mut u_out) = (
                    client.try_clone().expect("clone"),
                    up.try_clone().expect("clone"),
                );
                let rg = rg.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let text = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                        for line in text.lines() {
                            if let Some(v) = line.strip_prefix("range:") {
                                rg.lock().expect("lock").push(v.trim().to_string());
                            }
                        }
                        if u_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                let (mut u_in, mut c_out) = (up, client);
                let (l, d) = (l.clone(), d.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut sent = 0u64;
                    while let Ok(n) = u_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let k = (n as u64).min(l.load(SeqCst).saturating_sub(sent)) as usize;
                        if c_out.write_all(&buf[..k]).is_err() {
                            break;
                        }
                        sent += k as u64;
                        if k < n {
                            d.store(true, SeqCst);
                            break;
                        }
                    }
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                    let _ = u_in.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        DyingProxy {
            port,
            limit,
            down,
            ranges,
        }
    }

    fn revive(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.limit.store(u64::MAX, SeqCst);
        self.down.store(false, SeqCst);
    }
}

fn partial_downloads(d: &Daemon) -> Vec<(String, u64)> {
    let dir = d.dir.path().join("data/content/ingest");
    std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
                .map(|e| {
                    let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                    (e.file_name().to_string_lossy().into_owned(), len)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn registry_dying_mid_pull_leaves_a_resumable_download() {
    let reg = berth_registry(false);
    let d = Daemon::start();
    d.import_busybox("busybox");
    let direct = format!("127.0.0.1:{}/e2e/dying:1", reg.port);
    ok(d.berth(&["tag", "busybox", &direct]), "tag");
    ok(d.berth(&["push", &direct]), "push");
    ok(d.berth(&["rmi", "-f", "busybox", &direct]), "rmi");

    // manifests and config pass; the layer (busybox, gzip) breaks off after 64 KiB and
    // the registry stays away
    let proxy = DyingProxy::start(reg.port, 64 * 1024);
    let name = format!("127.0.0.1:{}/e2e/dying:1", proxy.port);
    let o = d.docker(&["pull", &name]);
    assert!(!o.status.success(), "pull succeeded: {}", text(&o));
    assert!(
        text(&o).contains("kept to resume on the next pull"),
        "{}",
        text(&o)
    );
    let kept = partial_downloads(&d);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].1 > 0, "{kept:?}");
    // no half image
    let o = d.docker(&["image", "inspect", &name]);
    assert!(!o.status.success(), "image visible after a failed pull");
    assert_eq!(stdout(&d.docker(&["images", "-q"])).trim(), "");

    // the registry is back: the pull continues from the kept bytes
    proxy.ranges.lock().expect("lock").clear();
    proxy.revive();
    let out = ok(
        d.docker(&["pull", &name]),
        "pull after the registry came back",
    );
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    let ranges = proxy.ranges.lock().expect("lock").clone();
    assert!(
        ranges.contains(&format!("bytes={}-", kept[0].1)),
        "no resume from {}: {ranges:?}",
        kept[0].1
    );
    assert!(partial_downloads(&d).is_empty());
    let out = ok(
        d.docker(&["run", "--rm", "--network", "none", &name, "echo", "resumed"]),
        "run the resumed image",
    );
    assert_eq!(out.trim(), "resumed");
}
