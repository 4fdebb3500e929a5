//! The shim with the real crun, as root: create/start/attach/logs/exit codes/kill/tty/exec.
//!
//! Each test builds its own busybox rootfs and bundle in a temp dir, uses a unique container
//! id and cgroup path, and shuts its shim down (which deletes the container and its cgroups).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use berth_runtime::cgroups::CgroupFs;
use berth_runtime::{
    generate, read_exit_file, shim_alive, spawn_shim, write_bundle, ExecSpec, ShimClient,
    ShimConfig, ShimStatus, SpecOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

static SEQ: AtomicU32 = AtomicU32::new(0);

struct Fixture {
    _tmp: tempfile::TempDir,
    id: String,
    cgroups_path: String,
    cfg: ShimConfig,
}

/// If a test fails half-way, leave no shim, container or cgroup behind.
impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.cfg.state_dir.join("shim.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = std::process::Command::new("crun")
            .arg("--root")
            .arg(&self.cfg.runtime_root)
            .args(["delete", "--force", &self.id])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = berth_runtime::cgroups::remove(&self.cgroups_path);
    }
}

fn prepare_host() {
    // crun refuses hybrid cgroups while the unified mount offers hugetlb; mount it as v1.
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg("mkdir -p /sys/fs/cgroup/hugetlb && (mountpoint -q /sys/fs/cgroup/hugetlb || mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb)")
        .status();
    berth_runtime::cgroups::check_runtime_compat().expect("cgroup layout usable by crun");
}

fn busybox_rootfs(root: &Path) {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    std::fs::copy("/usr/bin/busybox", bin.join("busybox")).expect("copy busybox");
    for app in ["sh", "echo", "cat", "sleep", "stty", "true", "ls"] {
        std::os::unix::fs::symlink("busybox", bin.join(app)).expect("symlink");
    }
    for d in ["proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
}

fn fixture(
    name: &str,
    args: &[&str],
    tweak: impl FnOnce(&mut SpecOptions, &mut ShimConfig),
) -> Fixture {
    prepare_host();
    let tmp = tempfile::tempdir().expect("tempdir");
    let id = format!(
        "rt-{}-{}-{name}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    );
    let rootfs = tmp.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let cgroups_path = format!("/berth-test/{id}");
    let mut opts = SpecOptions {
        rootfs: rootfs.clone(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        hostname: name.into(),
        cgroups_path: cgroups_path.clone(),
        ..Default::default()
    };
    let state_dir = tmp.path().join("state");
    let mut cfg = ShimConfig {
        id: id.clone(),
        bundle: tmp.path().join("bundle"),
        state_dir,
        runtime: PathBuf::from("crun"),
        runtime_root: tmp.path().join("crun"),
        log_path: tmp.path().join("logs").join(format!("{id}-json.log")),
        log_max_size: None,
        log_max_files: 1,
        terminal: false,
        open_stdin: false,
        stdin_once: false,
        spec_facts: None,
    };
    tweak(&mut opts, &mut cfg);
    opts.terminal = cfg.terminal;
    let spec = generate(&opts).expect("generate spec");
    write_bundle(&cfg.bundle, &spec).expect("write bundle");
    Fixture {
        _tmp: tmp,
        id,
        cgroups_path,
        cfg,
    }
}

/// The shim under test; `BERTH_SHIM_BIN` selects another build (e.g. release, to read RSS).
fn shim_bin() -> PathBuf {
    std::env::var_os("BERTH_SHIM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth-shim")))
}

async fn spawn(f: &Fixture) -> (u32, ShimClient) {
    let cfg = f.cfg.clone();
    let pid = tokio::task::spawn_blocking(move || spawn_shim(&shim_bin(), &cfg))
        .await
        .expect("join")
        .expect("spawn shim");
    let client = ShimClient::connect(&f.cfg.state_dir)
        .await
        .expect("connect");
    (pid, client)
}

/// Read the whole multiplexed stream; returns (stdout, stderr).
async fn demux(mut s: tokio::net::UnixStream) -> (String, String) {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut all))
        .await
        .expect("stream ends")
        .expect("read stream");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i + 8 <= all.len() {
        let len = u32::from_be_bytes([all[i + 4], all[i + 5], all[i + 6], all[i + 7]]) as usize;
        let payload = &all[i + 8..i + 8 + len];
        match all[i] {
            1 => out.extend_from_slice(payload),
            2 => err.extend_from_slice(payload),
            other => panic!("bad stream id {other}"),
        }
        i += 8 + len;
    }
    assert_eq!(i, all.len(), "trailing partial frame");
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .expect("stat")
        .split_whitespace()
        .collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn shutdown_and_check(f: &Fixture, client: &ShimClient, shim_pid: u32) {
    let t = std::time::Instant::now();
    client.shutdown().await.expect("shutdown");
    println!("shutdown request {:?}", t.elapsed());
    for _ in 0..100 {
        // Exited means gone or a zombie waiting for this machine's pid 1 to reap it.
        let state = std::fs::read_to_string(format!("/proc/{shim_pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim().chars().next()));
        if matches!(state, None | Some(Some('Z'))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!shim_alive(&f.cfg.state_dir), "shim socket still answers");
    let fsys = CgroupFs::host();
    assert!(
        !fsys.exists(&f.cgroups_path),
        "cgroup {} left behind",
        f.cgroups_path
    );
    // Best effort: the shared parent goes once the last parallel test is done with it.
    for mount in fsys.v1.iter().map(|(m, _)| m).chain(fsys.v2.iter()) {
        let _ = std::fs::remove_dir(mount.join("berth-test"));
    }
}

#[tokio::test]
async fn echo_hello_reaches_log_and_attach() {
    let t0 = std::time::Instant::now();
    let f = fixture(
        "hello",
        &["sh", "-c", "echo hello; echo oops >&2"],
        |_, _| {},
    );
    let t1 = std::time::Instant::now();
    let (pid, client) = spawn(&f).await;
    println!(
        "fixture {:?} spawn_shim (crun create) {:?}",
        t1 - t0,
        t1.elapsed()
    );
    let st = client.state().await.expect("state");
    assert_eq!(st.status, ShimStatus::Created);
    assert!(st.pid > 0);
    println!("shim pid {pid} VmRSS {} KiB", vm_rss_kib(pid));
    let stream = client.attach(false, true, true).await.expect("attach");
    client.start().await.expect("start");
    let t2 = std::time::Instant::now();
    let (out, err) = demux(stream).await;
    println!("start to end of output {:?}", t2.elapsed());
    assert_eq!(out, "hello\n");
    assert_eq!(err, "oops\n");
    let exit = client.wait().await.expect("wait");
    assert_eq!(exit.exit_code, 0);
    assert!(!exit.oom_killed);
    let st = client.state().await.expect("state");
    assert_eq!(st.status, ShimStatus::Stopped);
    assert_eq!(st.exit_code, Some(0));
    let log = std::fs::read_to_string(&f.cfg.log_path).expect("log file");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["log"] == "hello\n" && l["stream"] == "stdout"));
    assert!(lines
        .iter()
        .any(|l| l["log"] == "oops\n" && l["stream"] == "stderr"));
    println!("shim pid {pid} VmRSS after run {} KiB", vm_rss_kib(pid));
    let t3 = std::time::Instant::now();
    shutdown_and_check(&f, &client, pid).await;
    println!("shutdown {:?}", t3.elapsed());
}

#[tokio::test]
async fn exit_code_is_recorded() {
    let f = fixture("exit3", &["sh", "-c", "exit 3"], |_, _| {});
    let (pid, client) = spawn(&f).await;
    let waiter = {
        let c = client.clone();
        tokio::spawn(async move { c.wait().await })
    };
    client.start().await.expect("start");
    let exit = waiter.await.expect("join").expect("wait");
    assert_eq!(exit.exit_code, 3);
    let file = read_exit_file(&f.cfg.state_dir).expect("exit.json");
    assert_eq!(file, exit);
    chrono::DateTime::parse_from_rfc3339(&exit.exited_at).expect("rfc3339 exited_at");
    shutdown_and_check(&f, &client, pid).await;
    assert!(read_exit_file(&f.cfg.state_dir).is_some(), "exit.json kept");
}

#[tokio::test]
async fn kill_sigkill_and_sigterm_via_init() {
    let f = fixture("kill9", &["sleep", "100"], |_, _| {});
    let (pid, client) = spawn(&f).await;
    client.start().await.expect("start");
    client.kill(9, false).await.expect("kill");
    let exit = client.wait().await.expect("wait");
    assert_eq!(exit.exit_code, 137);
    assert!(
        client.kill(9, false).await.is_err(),
        "kill after exit fails"
    );
    shutdown_and_check(&f, &client, pid).await;

    // busybox sleep as pid 1 ignores SIGTERM; with --init, tini forwards it.
    let f = fixture("term", &["sleep", "100"], |o, _| {
        o.init = Some("/usr/bin/tini-static".into())
    });
    let (pid, client) = spawn(&f).await;
    client.start().await.expect("start");
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.kill(15, false).await.expect("kill");
    let exit = tokio::time::timeout(Duration::from_secs(10), client.wait())
        .await
        .expect("exits on SIGTERM")
        .expect("wait");
    assert_eq!(exit.exit_code, 143);
    shutdown_and_check(&f, &client, pid).await;
}

#[tokio::test]
async fn tty_resize_and_stty() {
    let f = fixture("tty", &["sh", "-c", "sleep 0.2; stty size"], |_, c| {
        c.terminal = true
    });
    let (pid, client) = spawn(&f).await;
    client.resize(33, 111).await.expect("resize");
    let mut stream = client.attach(false, true, true).await.expect("attach");
    client.start().await.expect("start");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out))
        .await
        .expect("stream ends")
        .expect("read");
    assert_eq!(String::from_utf8_lossy(&out), "33 111\r\n");
    assert_eq!(client.wait().await.expect("wait").exit_code, 0);
    shutdown_and_check(&f, &client, pid).await;
}

#[tokio::test]
async fn stdin_once_through_attach() {
    let f = fixture("cat", &["cat"], |_, c| {
        c.open_stdin = true;
        c.stdin_once = true;
    });
    let (pid, client) = spawn(&f).await;
    let stream = client.attach(true, true, true).await.expect("attach");
    client.start().await.expect("start");
    let (rd, mut wr) = stream.into_split();
    wr.write_all(b"ping\n").await.expect("write stdin");
    wr.shutdown().await.expect("close stdin");
    let (out, _) = demux(rd.reunite(wr).expect("reunite")).await;
    assert_eq!(out, "ping\n");
    assert_eq!(client.wait().await.expect("wait").exit_code, 0);
    shutdown_and_check(&f, &client, pid).await;
}

#[tokio::test]
async fn exec_exit_code_and_output() {
    let f = fixture("exec", &["sleep", "100"], |_, _| {});
    let (pid, client) = spawn(&f).await;
    client.start().await.expect("start");
    let process = |args: &[&str]| {
        serde_json::json!({
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
        })
    };
    let s = client
        .exec(ExecSpec {
            exec_id: "e1".into(),
            process: process(&["sh", "-c", "echo from-exec; exit 7"]),
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        })
        .await
        .expect("exec");
    let (out, _) = demux(s).await;
    assert_eq!(out, "from-exec\n");
    assert_eq!(client.exec_wait("e1").await.expect("exec wait"), 7);
    let st = client.exec_state("e1").await.expect("exec state");
    assert!(!st.running);
    assert_eq!(st.exit_code, Some(7));

    let s = client
        .exec(ExecSpec {
            exec_id: "e2".into(),
            process: process(&["sh", "-c", "sleep 0.2; stty size"]),
            tty: true,
            stdin: false,
            stdout: true,
            stderr: true,
        })
        .await
        .expect("exec tty");
    client.exec_resize("e2", 20, 70).await.expect("exec resize");
    let mut s = s;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("exec stream ends")
        .expect("read");
    assert_eq!(String::from_utf8_lossy(&out), "20 70\r\n");
    assert_eq!(client.exec_wait("e2").await.expect("exec wait"), 0);

    let err = client
        .exec(ExecSpec {
            exec_id: "e3".into(),
            process: process(&["/nonexistent"]),
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        })
        .await;
    if let Err(e) = err {
        assert!(e.to_string().contains("nonexistent"), "{e}");
    } else {
        assert_eq!(client.exec_wait("e3").await.expect("exec wait"), 127);
    }

    assert!(
        client.shutdown().await.is_err(),
        "shutdown refused while running"
    );
    client.kill(9, true).await.expect("kill");
    assert_eq!(client.wait().await.expect("wait").exit_code, 137);
    shutdown_and_check(&f, &client, pid).await;
}

#[tokio::test]
async fn shim_is_detached_and_survives() {
    let f = fixture("detach", &["sleep", "100"], |_, _| {});
    let (pid, client) = spawn(&f).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let ppid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("PPid");
    assert_ne!(ppid, std::process::id(), "shim must not be our child");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .expect("stat")
        .split_whitespace()
        .collect();
    // fields[3] is the session id: the shim has its own session, not ours.
    let our_sid = nix::unistd::getsid(None)
        .expect("getsid")
        .as_raw()
        .to_string();
    assert_ne!(fields[3], our_sid);
    client.start().await.expect("start");
    // A brand-new client (as after a berthd restart) finds it by the state dir alone.
    let again = ShimClient::connect(&f.cfg.state_dir)
        .await
        .expect("reconnect");
    assert_eq!(
        again.state().await.expect("state").status,
        ShimStatus::Running
    );
    assert!(shim_alive(&f.cfg.state_dir));
    let shim_pid: u32 = std::fs::read_to_string(f.cfg.state_dir.join("shim.pid"))
        .expect("shim.pid")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(shim_pid, pid);
    // A waiter that goes away (berthd killed) must not make the shim spin.
    {
        use std::io::Write as _;
        let mut raw = std::os::unix::net::UnixStream::connect(f.cfg.state_dir.join("shim.sock"))
            .expect("raw connect");
        raw.write_all(b"{\"op\":\"wait\"}\n").expect("send wait");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cpu = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cpu_ticks(pid) - cpu <= 2, "shim busy while idle");
    again.pause().await.expect("pause");
    assert_eq!(
        again.state().await.expect("state").status,
        ShimStatus::Paused
    );
    again.resume().await.expect("resume");
    let stats = berth_runtime::cgroups::stats(&f.cgroups_path).expect("stats");
    assert!(stats.pids_current >= 1);
    assert!(stats.memory_usage > 0);
    again.kill(9, false).await.expect("kill");
    again.wait().await.expect("wait");
    shutdown_and_check(&f, &again, pid).await;
}

#[tokio::test]
async fn missing_binary_reports_runtime_error() {
    let f = fixture("missing", &["/no/such/binary"], |_, _| {});
    let cfg = f.cfg.clone();
    let err = tokio::task::spawn_blocking(move || spawn_shim(&shim_bin(), &cfg))
        .await
        .expect("join")
        .expect_err("create must fail");
    let msg = err.to_string();
    assert!(msg.contains("crun"), "{msg}");
    assert!(msg.contains("/no/such/binary"), "{msg}");
    assert!(!shim_alive(&f.cfg.state_dir));
    assert!(!CgroupFs::host().exists(&f.cgroups_path));
}

/// Run a one-shot container and return (stdout, exit code).
async fn run_once(
    name: &str,
    args: &[&str],
    tweak: impl FnOnce(&mut SpecOptions, &mut ShimConfig),
) -> (String, berth_runtime::ExitInfo) {
    let f = fixture(name, args, tweak);
    let (pid, client) = spawn(&f).await;
    let stream = client.attach(false, true, true).await.expect("attach");
    client.start().await.expect("start");
    let (out, _) = demux(stream).await;
    let exit = client.wait().await.expect("wait");
    shutdown_and_check(&f, &client, pid).await;
    (out, exit)
}

#[tokio::test]
async fn spec_rules_hold_inside_crun() {
    // Default caps: CapEff is exactly Docker's set (0xa80425fb).
    let (out, exit) = run_once(
        "caps",
        &["sh", "-c", "grep CapEff /proc/self/status"],
        |_, _| {},
    )
    .await;
    assert_eq!(exit.exit_code, 0);
    assert!(out.contains("00000000a80425fb"), "{out}");
    // Privileged: every capability, /sys writable.
    let (out, _) = run_once(
        "priv",
        &[
            "sh",
            "-c",
            "grep CapEff /proc/self/status; grep ' /sys ' /proc/mounts",
        ],
        |o, _| o.privileged = true,
    )
    .await;
    let bnd = std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .expect("CapBnd");
    assert!(out.contains(&format!("CapEff:\t{bnd}")), "{out} vs {bnd}");
    assert!(out.contains("sysfs rw"), "{out}");
    // Masked paths, hostname, user, read-only rootfs, clamped ulimit.
    let (out, exit) = run_once(
        "misc",
        &[
            "sh",
            "-c",
            "cat /proc/kcore | wc -c; hostname; id -u; id -g; ulimit -n; touch /x 2>/dev/null || echo ro",
        ],
        |o, _| {
            o.user = berth_runtime::ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![],
                home: "/".into(),
            };
            o.readonly_rootfs = true;
            o.ulimits = vec![berth_runtime::Ulimit {
                name: "nofile".into(),
                soft: 1 << 20,
                hard: 1 << 20,
            }];
        },
    )
    .await;
    assert_eq!(exit.exit_code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let hard_nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit")
        .1;
    assert_eq!(
        lines,
        vec!["0", "misc", "1000", "1000", &hard_nofile.to_string(), "ro"],
        "{out}"
    );
}

#[tokio::test]
async fn oom_kill_is_detected() {
    let (_, exit) = run_once(
        "oom",
        &[
            "sh",
            "-c",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo done",
        ],
        |o, _| {
            o.resources.memory = Some(8 << 20);
            o.resources.memory_swap = Some(8 << 20);
        },
    )
    .await;
    assert!(exit.oom_killed, "{exit:?}");
}

#[tokio::test]
async fn long_state_dir_paths() {
    // exec-root/containers/<64 hex id>/shim.sock under a temp dir can exceed sun_path.
    let f = fixture("long", &["sh", "-c", "sleep 0.2; stty size"], |_, c| {
        let base = c.bundle.parent().expect("tmp").to_path_buf();
        c.state_dir = base.join("exec-root/containers").join("ab".repeat(40));
        c.terminal = true;
    });
    assert!(f.cfg.state_dir.join("shim.sock").as_os_str().len() > 108);
    let (pid, client) = spawn(&f).await;
    assert!(shim_alive(&f.cfg.state_dir));
    client.resize(10, 20).await.expect("resize");
    let mut stream = client.attach(false, true, true).await.expect("attach");
    client.start().await.expect("start");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out))
        .await
        .expect("stream ends")
        .expect("read");
    assert_eq!(String::from_utf8_lossy(&out), "10 20\r\n");
    assert_eq!(client.wait().await.expect("wait").exit_code, 0);
    shutdown_and_check(&f, &client, pid).await;
}

#[tokio::test]
async fn exec_with_stdin() {
    let f = fixture("execin", &["sleep", "100"], |_, _| {});
    let (pid, client) = spawn(&f).await;
    client.start().await.expect("start");
    let s = client
        .exec(ExecSpec {
            exec_id: "cat".into(),
            process: serde_json::json!({
                "args": ["sh", "-c", "cat; echo done >&2"],
                "env": ["PATH=/bin"],
                "cwd": "/",
                "user": {"uid": 0, "gid": 0},
            }),
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        })
        .await
        .expect("exec");
    let (rd, mut wr) = s.into_split();
    wr.write_all(b"abc").await.expect("write");
    wr.shutdown().await.expect("close stdin");
    let (out, err) = demux(rd.reunite(wr).expect("reunite")).await;
    assert_eq!((out.as_str(), err.as_str()), ("abc", "done\n"));
    assert_eq!(client.exec_wait("cat").await.expect("exec wait"), 0);
    client.kill(9, false).await.expect("kill");
    client.wait().await.expect("wait");
    shutdown_and_check(&f, &client, pid).await;
}

/// The shim runs the runtime from berthd's sealed copy when given one (no re-exec dance in
/// crun), for create, start, exec and delete alike; and it deletes the container from the
/// runtime as soon as the exit is recorded, before berthd asks for the shutdown.
#[tokio::test]
async fn sealed_runtime_copy_runs_every_runtime_call_and_delete_is_eager() {
    let f = fixture("sealed", &["sh", "-c", "read x; exit 4"], |_, c| {
        c.open_stdin = true;
    });
    let sealed = berth_runtime::sealed::SealedRuntimes::default();
    let copy = sealed.get(&f.cfg.runtime).expect("sealed copy of crun");
    let cfg = f.cfg.clone();
    let pid = tokio::task::spawn_blocking(move || {
        berth_runtime::shim::spawn_shim_with(
            &shim_bin(),
            &cfg,
            Some(std::os::fd::AsFd::as_fd(&*copy)),
        )
    })
    .await
    .expect("join")
    .expect("spawn shim with the sealed runtime");
    let client = ShimClient::connect(&f.cfg.state_dir)
        .await
        .expect("connect");
    let holds_copy = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("shim fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|l| l.to_string_lossy().contains("memfd:berth:crun"));
    assert!(holds_copy, "the shim keeps the sealed copy open");
    client.start().await.expect("start");
    let s = client
        .exec(ExecSpec {
            exec_id: "e1".into(),
            process: serde_json::json!({
                "args": ["sh", "-c", "echo through-sealed"],
                "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            }),
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        })
        .await
        .expect("exec through the sealed runtime");
    let (out, _) = demux(s).await;
    assert_eq!(out, "through-sealed\n");
    let stdin = client
        .attach(true, false, false)
        .await
        .expect("attach stdin");
    let (_r, mut w) = stdin.into_split();
    w.write_all(b"go\n").await.expect("write stdin");
    let exit = client.wait().await.expect("wait");
    assert_eq!(exit.exit_code, 4);
    let state = f.cfg.runtime_root.join(&f.id);
    let mut gone = false;
    for _ in 0..100 {
        if !state.exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        gone,
        "runtime state {} kept until shutdown",
        state.display()
    );
    shutdown_and_check(&f, &client, pid).await;
}

/// Whether crun still lists `id` under `root`.
fn crun_lists(root: &Path, id: &str) -> bool {
    let out = std::process::Command::new("crun")
        .arg("--root")
        .arg(root)
        .args(["list", "-q"])
        .output()
        .expect("crun list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == id)
}

/// Polls for up to 2 s until `done` holds.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// Runs `f`'s container to its exit (`code`) and checks that, before anyone asks for the
/// shutdown, crun's state and the cgroup are gone and crun no longer lists it, and whether
/// the shim had to leave the delete to crun (`fell_back`, seen in shim.log).
async fn exit_and_check_deleted(f: &Fixture, code: i64, fell_back: bool) {
    let (pid, client) = spawn(f).await;
    client.start().await.expect("start");
    let exit = client.wait().await.expect("wait");
    assert_eq!(exit.exit_code, code);
    let state = f.cfg.runtime_root.join(&f.id);
    let fsys = CgroupFs::host();
    assert!(
        eventually(|| !state.exists() && !fsys.exists(&f.cgroups_path)).await,
        "runtime state {} or cgroup {} kept after the exit",
        state.display(),
        f.cgroups_path
    );
    assert!(
        !crun_lists(&f.cfg.runtime_root, &f.id),
        "crun still lists it"
    );
    let log = std::fs::read_to_string(f.cfg.state_dir.join("shim.log")).unwrap_or_default();
    assert_eq!(
        log.contains("delete in place"),
        fell_back,
        "in-place delete refused: {log:?}"
    );
    shutdown_and_check(f, &client, pid).await;
}

/// Once the init has exited, the shim deletes the container from crun itself (cgroup and
/// state directory).
#[tokio::test]
async fn exited_container_is_deleted_in_place() {
    let f = fixture("inplace", &["sh", "-c", "exit 5"], |_, _| {});
    exit_and_check_deleted(&f, 5, false).await;
}

/// A process that outlives the init (no pid namespace of its own, so the kernel does not
/// kill it with the init) keeps the cgroup busy: the shim leaves the delete to crun, and
/// nothing is left behind either way.
#[tokio::test]
async fn delete_falls_back_to_the_runtime_when_the_cgroup_is_busy() {
    let f = fixture("busycg", &["sh", "-c", "sleep 30 & exit 6"], |o, _| {
        o.pid_host = true;
    });
    exit_and_check_deleted(&f, 6, true).await;
}

/// crun's own view of the container's status (`crun state`).
fn crun_status(root: &Path, id: &str) -> String {
    let out = std::process::Command::new("crun")
        .arg("--root")
        .arg(root)
        .args(["state", id])
        .output()
        .expect("crun state");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["status"].as_str().unwrap_or_default().to_string()
}

/// `start` releases the init from crun's exec barrier without running `crun start`, and
/// leaves crun's state as `crun start` would: the fifo gone, the container `running`.
#[tokio::test]
async fn start_in_place_leaves_crun_state_as_crun_start() {
    // A `crun` that records its calls, so the test sees which ones the shim made.
    let mut calls = PathBuf::new();
    let f = fixture(
        "startip",
        &["sh", "-c", "echo started; exec sleep 30"],
        |_, c| {
            let dir = c.runtime_root.with_file_name("wrap");
            std::fs::create_dir_all(&dir).expect("mkdir wrap");
            calls = dir.join("calls");
            let real = String::from_utf8(
                std::process::Command::new("sh")
                    .args(["-c", "command -v crun"])
                    .output()
                    .expect("find crun")
                    .stdout,
            )
            .expect("utf-8 path");
            let script = format!(
                "#!/bin/sh\necho \"$@\" >> '{}'\nexec '{}' \"$@\"\n",
                calls.display(),
                real.trim()
            );
            let wrapper = dir.join("crun");
            std::fs::write(&wrapper, script).expect("write wrapper");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
                .expect("chmod wrapper");
            c.runtime = wrapper;
        },
    );
    let (pid, client) = spawn(&f).await;
    let fifo = f.cfg.runtime_root.join(&f.id).join("exec.fifo");
    assert!(fifo.exists(), "crun create made no exec fifo");
    assert_eq!(crun_status(&f.cfg.runtime_root, &f.id), "created");
    let stream = client.attach(false, true, false).await.expect("attach");
    client.start().await.expect("start");
    assert!(!fifo.exists(), "exec fifo left after start");
    assert_eq!(crun_status(&f.cfg.runtime_root, &f.id), "running");
    let mut s = stream;
    let mut head = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head))
        .await
        .expect("output in time")
        .expect("read output");
    assert_eq!(&head[8..], b"started\n");
    let log = std::fs::read_to_string(f.cfg.state_dir.join("shim.log")).unwrap_or_default();
    assert!(!log.contains("start in place"), "fell back: {log:?}");
    let made = std::fs::read_to_string(&calls).expect("runtime calls");
    assert!(made.contains(" create "), "no create: {made:?}");
    assert!(!made.contains(" start "), "crun start ran: {made:?}");
    client.kill(9, false).await.expect("kill");
    assert_eq!(client.wait().await.expect("wait").exit_code, 137);
    shutdown_and_check(&f, &client, pid).await;
}

/// Pid of a live (running or sleeping, not zombie) process whose command line holds
/// `needle`.
fn live_pid_with_arg(needle: &str) -> Option<i32> {
    let out = std::process::Command::new("pgrep")
        .args(["-r", "R,S,D", "-f", "--", needle])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
}

/// Hands `f`'s container to `spare`; the shim's pid once the container exists.
async fn launch(spare: berth_runtime::shim::SpareShim, f: &Fixture) -> u32 {
    let cfg = f.cfg.clone();
    tokio::task::spawn_blocking(move || spare.launch(&cfg))
        .await
        .expect("join")
        .expect("spare was there")
        .expect("container created")
}

/// The pid of the spare shim named after `tag`, once it runs.
async fn running_spare(tag: &std::path::Path) -> i32 {
    let marker = tag.to_string_lossy().into_owned();
    assert!(
        eventually(|| live_pid_with_arg(&marker).is_some()).await,
        "spare {marker} not running"
    );
    live_pid_with_arg(&marker).expect("spare pid")
}

/// Starts the created container of `f` (shim `pid`) attached, checks its output, exit
/// code and a clean shim log, and shuts the shim down.
async fn start_and_expect(f: &Fixture, pid: u32, out: &str, code: i64) {
    let client = ShimClient::connect(&f.cfg.state_dir)
        .await
        .expect("connect");
    let attach = client.attach(false, true, true).await.expect("attach");
    client.start().await.expect("start");
    let (got, _) = demux(attach).await;
    assert_eq!(got, out);
    assert_eq!(client.wait().await.expect("wait").exit_code, code);
    let log = std::fs::read_to_string(f.cfg.state_dir.join("shim.log")).expect("shim.log");
    assert!(!log.contains("error"), "{log}");
    shutdown_and_check(f, &client, pid).await;
}

#[tokio::test]
async fn spare_shim_takes_a_container_and_exits_when_dropped() {
    use berth_runtime::shim::SpareShim;
    let f = fixture("spare", &["sh", "-c", "echo from-spare; exit 4"], |_, _| {});
    let tag = f._tmp.path().join("spare-root");
    let spawn_spare = |tag: PathBuf| {
        tokio::task::spawn_blocking(move || SpareShim::spawn(&shim_bin(), &tag, None))
    };
    // A spare nobody uses exits as soon as it is dropped (EOF on its socket).
    let unused = spawn_spare(tag.join("unused"))
        .await
        .expect("join")
        .expect("spare");
    let marker = tag.join("unused").to_string_lossy().into_owned();
    assert!(
        eventually(|| live_pid_with_arg(&marker).is_some()).await,
        "spare not running"
    );
    drop(unused);
    assert!(
        eventually(|| live_pid_with_arg(&marker).is_none()).await,
        "dropped spare still running"
    );

    // A spare given a container runs it like a spawned shim, at normal priority.
    let spare = spawn_spare(tag.join("used"))
        .await
        .expect("join")
        .expect("spare");
    let pid = launch(spare, &f).await;
    // SAFETY: getpriority on a pid; no memory is passed.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, pid) };
    assert_eq!(nice, 0, "a working shim runs at nice 0");
    start_and_expect(&f, pid, "from-spare\n", 4).await;

    // A spare that is gone says so, and the caller spawns a shim instead.
    let gone = spawn_spare(tag.join("gone"))
        .await
        .expect("join")
        .expect("spare");
    let p = running_spare(&tag.join("gone")).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(p),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill spare");
    let marker = tag.join("gone").to_string_lossy().into_owned();
    assert!(eventually(|| live_pid_with_arg(&marker).is_none()).await);
    let cfg = f.cfg.clone();
    let res = tokio::task::spawn_blocking(move || gone.launch(&cfg))
        .await
        .expect("join");
    assert!(res.is_err(), "a dead spare cannot take a job");
}

/// A spare holding a sealed crun starts crun ahead too (berth_runtime::preload), at the
/// spare's nice 19, and creates the container with it: the container runs as with a
/// spawned crun, and no runtime process is left once it exists. A spare dropped unused
/// takes its waiting crun with it.
#[tokio::test]
async fn spare_shim_with_sealed_crun_creates_through_a_preloaded_crun() {
    use berth_runtime::shim::SpareShim;
    let f = fixture(
        "preload",
        &["sh", "-c", "echo preloaded; exit 5"],
        |_, _| {},
    );
    let sealed = berth_runtime::sealed::SealedRuntimes::default();
    let copy = sealed.get(&f.cfg.runtime).expect("sealed copy of crun");
    let tag = f._tmp.path().join("preload-root");
    let spawn_spare = |tag: PathBuf| {
        let copy = copy.clone();
        tokio::task::spawn_blocking(move || {
            SpareShim::spawn(&shim_bin(), &tag, Some(std::os::fd::AsFd::as_fd(&*copy)))
        })
    };
    // The spare's waiting crun: its child with the preload's variable in its environment.
    let waiting_runtime = |spare: i32| -> Option<i32> {
        let out = std::process::Command::new("pgrep")
            .args(["-P", &spare.to_string()])
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .find(|p| {
                std::fs::read(format!("/proc/{p}/environ"))
                    .is_ok_and(|e| e.split(|&b| b == 0).any(|v| v == b"BERTH_PRELOAD_JOB=1"))
            })
    };

    let unused = spawn_spare(tag.join("unused"))
        .await
        .expect("join")
        .expect("spare");
    let spare = running_spare(&tag.join("unused")).await;
    assert!(
        eventually(|| waiting_runtime(spare).is_some()).await,
        "no crun waiting under the spare"
    );
    let rt = waiting_runtime(spare).expect("waiting crun");
    // SAFETY: getpriority on a pid; no memory is passed.
    assert_eq!(
        unsafe { libc::getpriority(libc::PRIO_PROCESS, rt as u32) },
        19
    );
    drop(unused);
    assert!(
        eventually(|| nix::sys::signal::kill(nix::unistd::Pid::from_raw(rt), None).is_err()).await,
        "the waiting crun outlived its dropped spare"
    );

    let spare = spawn_spare(tag.join("used"))
        .await
        .expect("join")
        .expect("spare");
    let spare_pid = running_spare(&tag.join("used")).await;
    assert!(eventually(|| waiting_runtime(spare_pid).is_some()).await);
    let rt = waiting_runtime(spare_pid).expect("waiting crun");
    let pid = launch(spare, &f).await;
    assert_eq!(pid as i32, spare_pid);
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(rt), None).is_err(),
        "the preloaded crun ran create and was reaped"
    );
    start_and_expect(&f, pid, "preloaded\n", 5).await;
}
