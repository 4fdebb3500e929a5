//! End-to-end harness: each test starts its own berthd (temporary data root, exec root,
//! socket and cgroup parent) and drives it through `berth` and the real `docker` CLI.
//!
//! Nothing here touches another daemon: sockets, roots and cgroups are unique per daemon,
//! and `Drop` removes every container, unmounts what is left under the temp dir and deletes
//! it. Under `CI=true` a missing prerequisite fails the test instead of skipping it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// target/debug (or target/release) holding berthd, berth and berth-shim.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace` before the e2e tests",
        p.display()
    );
    p
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Fails under CI, skips (with a loud message) elsewhere.
pub fn require(cmd: &str) -> bool {
    if have(cmd) {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{cmd} is required under CI but not installed");
    }
    eprintln!("SKIPPED: {cmd} not installed");
    false
}

/// A busybox rootfs tarball made from Debian's busybox-static (built once per process).
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let busybox = ["/usr/bin/busybox", "/bin/busybox"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("busybox-static is required (apt-get install busybox-static)");
        // Kept under target/ (not /tmp) so test runs leave nothing behind; rebuilt per process
        // in a private dir, then renamed into place.
        let fixtures = bin_dir().join("e2e-fixtures");
        std::fs::create_dir_all(&fixtures).expect("fixtures dir");
        let final_tar = fixtures.join("busybox.tar");
        if final_tar.exists() {
            return final_tar;
        }
        let dir = fixtures.join(format!("build-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("rootfs");
        for d in ["bin", "etc", "tmp", "root", "home/app", "proc", "sys", "dev"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir rootfs");
        }
        std::fs::copy(&busybox, root.join("bin/busybox")).expect("copy busybox");
        let list = Command::new(&busybox).arg("--list").output().expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
            }
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n",
        )
        .expect("group");
        let tar = dir.join("busybox.tar");
        let st = Command::new("tar")
            .args(["-C", root.to_str().expect("utf8"), "-cf", tar.to_str().expect("utf8"), "."])
            .status()
            .expect("tar");
        assert!(st.success(), "tar of the busybox rootfs failed");
        std::fs::rename(&tar, &final_tar).expect("publish fixture tar");
        let _ = std::fs::remove_dir_all(&dir);
        final_tar
    })
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub child: Option<Child>,
    pub cgroup_parent: String,
    /// This daemon's default bridge (`--bridge`); its nft table is `berth_<bridge>`.
    pub bridge: String,
    /// This daemon's default bridge subnet (`--bip`), random so parallel daemons never
    /// pick the same one.
    pub bip: String,
}

impl Daemon {
    pub fn start() -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let cgroup_parent = unique("berth-test");
        let mut d = Daemon {
            socket: dir.path().join("berth.sock"),
            dir,
            child: None,
            cgroup_parent,
            bridge: format!("bt{:08x}", rand::random::<u32>()),
            bip: format!(
                "10.{}.{}.1/24",
                100 + rand::random::<u8>() % 150,
                rand::random::<u8>()
            ),
        };
        d.spawn();
        d
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// (Re)starts berthd on the same roots and socket.
    pub fn spawn(&mut self) {
        let root = self.dir.path();
        if !root.join("daemon.json").exists() {
            std::fs::write(root.join("daemon.json"), "{}").expect("daemon.json");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("berthd.log"))
            .expect("log file");
        let child = Command::new(bin("berthd"))
            .args(["-H", &self.host()])
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("berthd.pid"))
            .arg("--config-file")
            .arg(root.join("daemon.json"))
            .args([
                "--cgroup-parent",
                &self.cgroup_parent,
                "--bridge",
                &self.bridge,
                "--bip",
                &self.bip,
                "--log-level",
                "debug",
            ])
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn berthd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.socket.exists() && self.berth(&["version"]).status.success() {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("berthd exited early ({st}): {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("berthd did not come up: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    /// kill -9, as a crash would.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        Command::new(bin("berth"))
            .args(["-H", &self.host()])
            .args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("BERTH_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env("DOCKER_BUILDKIT", "0")
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// Imports the busybox rootfs as `name` through the docker CLI.
    pub fn import_busybox(&self, name: &str) {
        let out = self.docker(&["import", busybox_tar().to_str().expect("utf8"), name]);
        assert!(out.status.success(), "import failed: {}", text(&out));
    }

    fn cleanup(&mut self) {
        if self.child.is_some() {
            let ids = self.berth(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.berth(&["rm", "-f", id]);
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Kill shims left by a failed test, then unmount anything under our dir.
        let root = self.dir.path().to_string_lossy().to_string();
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let pid = p.file_name().to_string_lossy().to_string();
                if pid.parse::<i32>().is_err() {
                    continue;
                }
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmd).contains(&root) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid.parse().expect("numeric")),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut targets: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&root))
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for t in targets {
            let _ = nix::mount::umount2(t, nix::mount::MntFlags::MNT_DETACH);
        }
        for ctl in [
            "memory", "cpu", "cpuacct", "pids", "freezer", "blkio", "cpuset", "devices", "hugetlb",
            "systemd", "unified",
        ] {
            let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{ctl}/{}", self.cgroup_parent));
        }
        // A daemon that crashed leaves its default bridge and nft table: remove those of
        // this daemon only (unique names), best effort.
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &format!("berth_{}", self.bridge)])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.cleanup();
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn text(o: &Output) -> String {
    format!(
        "status={:?}\nstdout={}\nstderr={}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
