//! The `berth-registry` binary: `serve` with flags and a config file, and `gc`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn wait_up(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(r) = get(port, "/v2/") {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "server did not come up on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_with_config_file_and_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = dir.path().join("registry.toml");
    std::fs::write(
        &cfg,
        format!(
            "addr = \"127.0.0.1:1\"\nroot = \"{}\"\nread_only = true\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let _guard = Kill(child);
    let r = wait_up(port);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r
        .to_ascii_lowercase()
        .contains("docker-distribution-api-version: registry/2.0"));
    assert!(
        dir.path().join("data/blobs").is_dir(),
        "root from the config file"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["gc", "--grace-secs", "0", "--root"])
        .arg(dir.path().join("data"))
        .output()
        .expect("gc");
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report json");
    assert_eq!(report["blobs_deleted"], serde_json::json!([]));
}

#[test]
fn bad_config_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "no_such_key = 1\n").expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
}
