//! Shared harness for the root integration tests: each test runs inside its own throwaway
//! "host" network namespace (a thread that unshared CLONE_NEWNET, with a current-thread
//! runtime), so bridges, nft tables and iptables policies never touch the real host and
//! tests run in parallel. Traffic only ever goes to loopback and to namespaces the test
//! made itself.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use berth_network::{LinuxNetSys, ManagerConfig, NetworkManager};

/// Whether root tests can run; under CI a missing capability is a failure, never a skip.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("berth-network integration tests need root under CI");
    }
    eprintln!("skipping: needs root");
    false
}

/// Runs `f` on a fresh thread inside a fresh network namespace with `lo` up.
pub fn sandbox<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let handle = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
        sh("ip link set lo up");
        // Worker threads are spawned from this thread, so they share its namespace; two of
        // them keep the embedded DNS answering while a test blocks on a command.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f());
    });
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Runs a shell command from the calling thread (so in its namespace); asserts success.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Like [`sh`] but returns whether it succeeded.
pub fn try_sh(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:06x}", rand::random::<u32>() & 0xff_ffff)
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub cfg: ManagerConfig,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = ManagerConfig::new(dir.path().join("data"), dir.path().join("exec"));
        cfg.nft_table = unique("berthtest");
        cfg.default_bridge = unique("bt");
        cfg.dns_upstreams = Some(Vec::new());
        Env { dir, cfg }
    }

    pub fn manager(&self) -> NetworkManager {
        let sys = Arc::new(LinuxNetSys::new().expect("netlink"));
        NetworkManager::new(self.cfg.clone(), sys).expect("manager")
    }

    pub fn netns_dir(&self) -> PathBuf {
        self.cfg.netns_dir.clone()
    }
}

impl Drop for Env {
    /// A failed test must not leave namespace mounts behind in the temp dir.
    fn drop(&mut self) {
        for dir in [self.cfg.netns_dir.clone(), self.dir.path().to_path_buf()] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    // Not mounted (the usual case after a clean test) is fine.
                    let _ = nix::mount::umount2(&entry.path(), nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
    }
}

pub fn ping(from: &Path, ip: impl std::fmt::Display) -> bool {
    try_sh(&format!(
        "nsenter --net={} busybox ping -c1 -W1 {ip} >/dev/null 2>&1",
        from.display()
    ))
}

/// Whether `ip` answers a ping from the namespace within three tries: the first packet
/// after an attach can be lost on a loaded machine (neighbour resolution on a port just
/// enslaved), which says nothing about reachability. Isolation is checked with `ping`.
pub fn reaches(from: &Path, ip: impl std::fmt::Display) -> bool {
    (0..3).any(|_| ping(from, &ip))
}

/// Links in the calling thread's namespace.
pub fn links() -> String {
    sh("ip -o link show")
}

/// Whether a veth other than the namespace pool's is left: the pool's are down (no `UP`
/// among their flags) and on no bridge until an endpoint takes one.
pub fn endpoint_veths() -> bool {
    links().lines().any(|l| {
        let flags = l
            .split('<')
            .nth(1)
            .and_then(|r| r.split('>').next())
            .unwrap_or("");
        l.contains(": veth") && (flags.split(',').any(|f| f == "UP") || l.contains(" master "))
    })
}
