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
        remove_cgroup_parent(&self.cgroup_parent);
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

/// Removes a test daemon's cgroup parent from every hierarchy, with whatever its containers
/// left under it. A shim killed before it deleted its container leaves the container's
/// cgroup, and the parent cannot go while a child is there; a process still inside keeps
/// that child busy. The parent's name is unique to the test daemon, so any such process
/// belongs to one of its containers: it is thawed and killed, and removal tried again.
pub fn remove_cgroup_parent(parent: &str) {
    let path = format!("/{parent}");
    for _ in 0..50 {
        if berth_runtime::cgroups::remove(&path).is_ok() {
            return;
        }
        let root = Path::new("/sys/fs/cgroup");
        kill_cgroup_tree(&root.join(parent)); // cgroup v2
        for hierarchy in std::fs::read_dir(root).into_iter().flatten().flatten() {
            kill_cgroup_tree(&hierarchy.path().join(parent));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill_cgroup_tree(dir: &Path) {
    // A frozen (paused) process only dies once thawed.
    let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
    let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.split_whitespace().filter_map(|p| p.parse().ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            kill_cgroup_tree(&e.path());
        }
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

/// A private reference daemon: Debian's containerd + dockerd (20.10) started with their own
/// data root, exec root, sockets, pidfile and cgroup parent, `--bridge none` and no
/// iptables/masquerade/ip-forward changes, so it never touches the host network, docker0 or
/// another engine. `Drop` stops both by PID, kills their shims, unmounts everything under
/// its temp dir and removes it. `start()` returns `None` (after a loud message) when dockerd
/// or containerd is missing outside CI; under `CI=true` that panics instead.
pub struct Dockerd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub cgroup_parent: String,
    containerd: Option<Child>,
    dockerd: Option<Child>,
}

impl Dockerd {
    pub fn start() -> Option<Dockerd> {
        if !require("dockerd") || !require("containerd") {
            return None;
        }
        // Short prefix: containerd's ttrpc socket path must stay under the 108-byte limit.
        let dir = tempfile::Builder::new()
            .prefix("bdd-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let root = dir.path().to_path_buf();
        let mut d = Dockerd {
            socket: root.join("docker.sock"),
            dir,
            cgroup_parent: unique("berth-dockerd"),
            containerd: None,
            dockerd: None,
        };
        // The cri plugin is off (it would want CNI and /etc/cni), debug and metrics
        // listeners are off, and every path containerd writes is ours.
        let ctd_sock = root.join("containerd.sock");
        let cfg = format!(
            "version = 2\nroot = \"{r}/containerd\"\nstate = \"{r}/containerd-state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{s}\"\n[ttrpc]\n  address = \"{s}.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{r}/opt\"\n",
            r = root.display(),
            s = ctd_sock.display()
        );
        std::fs::write(root.join("containerd.toml"), cfg).expect("containerd config");
        std::fs::write(root.join("daemon.json"), "{}").expect("daemon.json");
        let log = |name: &str| std::fs::File::create(root.join(name)).expect("log file");
        let ctd_log = log("containerd.log");
        d.containerd = Some(
            Command::new("containerd")
                .arg("--config")
                .arg(root.join("containerd.toml"))
                .stdout(ctd_log.try_clone().expect("log fd"))
                .stderr(ctd_log)
                .spawn()
                .expect("spawn containerd"),
        );
        d.wait_for(&ctd_sock, "containerd");
        let dd_log = log("dockerd.log");
        d.dockerd = Some(
            Command::new("dockerd")
                .args(["-H", &d.host()])
                .arg("--data-root")
                .arg(root.join("data"))
                .arg("--exec-root")
                .arg(root.join("exec"))
                .arg("--pidfile")
                .arg(root.join("dockerd.pid"))
                .arg("--config-file")
                .arg(root.join("daemon.json"))
                .arg("--containerd")
                .arg(&ctd_sock)
                .args([
                    "--bridge",
                    "none",
                    "--iptables=false",
                    "--ip-masq=false",
                    "--ip-forward=false",
                    "--cgroup-parent",
                    // Absolute: dockerd's cgroupfs driver puts a relative parent under its
                    // own cgroup (here a job cgroup in the memory hierarchy), where
                    // `remove_cgroup_parent` would never find it.
                    &format!("/{}", d.cgroup_parent),
                ])
                .stdout(dd_log.try_clone().expect("log fd"))
                .stderr(dd_log)
                .spawn()
                .expect("spawn dockerd"),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if d.socket.exists() && d.docker(&["version"]).status.success() {
                return Some(d);
            }
            if let Some(Ok(Some(st))) = d.dockerd.as_mut().map(|c| c.try_wait()) {
                panic!("dockerd exited early ({st}): {}", d.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("dockerd did not come up: {}", d.log());
    }

    fn wait_for(&mut self, sock: &Path, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if sock.exists() {
                return;
            }
            if let Some(Ok(Some(st))) = self.containerd.as_mut().map(|c| c.try_wait()) {
                panic!("{what} exited early ({st}): {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what} did not come up: {}", self.log());
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Both daemons' logs, for assertion messages.
    pub fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- containerd.log\n{}\n--- dockerd.log\n{}",
            read("containerd.log"),
            read("dockerd.log")
        )
    }

    /// The real docker CLI against this dockerd (its own DOCKER_CONFIG).
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

    /// Imports the same busybox rootfs `Daemon::import_busybox` uses.
    pub fn import_busybox(&self, name: &str) {
        let out = self.docker(&["import", busybox_tar().to_str().expect("utf8"), name]);
        assert!(
            out.status.success(),
            "dockerd import failed: {}",
            text(&out)
        );
    }

    fn stop(child: &mut Option<Child>, grace: Duration) {
        if let Some(mut c) = child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.dockerd.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
        }
        Self::stop(&mut self.dockerd, Duration::from_secs(15));
        Self::stop(&mut self.containerd, Duration::from_secs(10));
        // Shims of our containerd carry our socket path in their command line (`-address`);
        // nothing else does, so this never touches another engine's processes.
        let root = self.dir.path().to_string_lossy().to_string();
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmd).contains(&root) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
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
        remove_cgroup_parent(&self.cgroup_parent);
    }
}

/// A free TCP port on 127.0.0.1 (bound and released: a test server binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A registry server child on 127.0.0.1:`port` (dockerd treats 127.0.0.0/8 as insecure),
/// with its files in `dir`; killed on drop.
pub struct Registry {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// `berth-registry serve` on a free port with its data under a temp dir; `extra` gets
    /// that dir and returns more arguments (files it writes there, e.g. an htpasswd).
    pub fn berth(extra: impl FnOnce(&Path) -> Vec<std::ffi::OsString>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut cmd = Command::new(bin("berth-registry"));
        cmd.args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--root"])
            .arg(dir.path().join("data"))
            .args(extra(dir.path()));
        Registry::spawn(cmd, port, dir, "berth-registry")
    }

    /// Start `cmd`, a server that listens on 127.0.0.1:`port`, and wait until it does.
    pub fn spawn(mut cmd: Command, port: u16, dir: tempfile::TempDir, what: &str) -> Registry {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("{what} exited early: {st}");
            }
            assert!(Instant::now() < deadline, "{what} did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { child, port, dir }
    }
}
