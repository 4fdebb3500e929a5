//! Engine core end to end: live restore, limits, security defaults, users, restart policies,
//! filters, the raw API's statuses, and the berth CLI itself.

use berth_e2e::*;
use std::time::{Duration, Instant};

fn curl(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut args = vec![
        "-s".to_string(),
        "-o".into(),
        "-".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "--unix-socket".into(),
        d.socket.to_string_lossy().into_owned(),
        "-X".into(),
        method.into(),
    ];
    if let Some(b) = body {
        args.extend([
            "-H".into(),
            "Content-Type: application/json".into(),
            "-d".into(),
            b.into(),
        ]);
    }
    args.push(format!("http://localhost{path}"));
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .expect("curl");
    let s = stdout(&out);
    let (body, code) = s.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("http code"), body.to_string())
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn inspect(d: &Daemon, fmt: &str, name: &str) -> String {
    stdout(&d.docker(&["inspect", "-f", fmt, name]))
        .trim()
        .to_string()
}

#[test]
fn live_restore_after_kill_9() {
    let mut d = Daemon::start();
    d.import_busybox("busybox");
    let run = d.docker(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    ]);
    assert!(run.status.success(), "{}", text(&run));
    let quick = d.docker(&[
        "run",
        "-d",
        "--name",
        "quick",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 42",
    ]);
    assert!(quick.status.success(), "{}", text(&quick));
    // an auto-remove one that exits while berthd is down is removed when it comes back
    let gone = d.docker(&[
        "run", "-d", "--rm", "--name", "quick-rm", "busybox", "sh", "-c", "sleep 1",
    ]);
    assert!(gone.status.success(), "{}", text(&gone));
    let pid = inspect(&d, "{{.State.Pid}}", "ticker");
    // The exec root is berthd's own tmpfs (berth_runtime::execroot), and a spare shim
    // waits for the next start.
    let exec = d.dir.path().join("exec");
    assert!(is_tmpfs(&exec), "exec root not on a tmpfs");
    wait_until("a spare shim", Duration::from_secs(10), || {
        !idle_spares(&exec).is_empty()
    });
    d.crash();
    // An unused spare goes with the daemon; shims of running containers stay.
    wait_until("the spare to exit", Duration::from_secs(10), || {
        idle_spares(&exec).is_empty()
    });
    // files of removed containers whose background delete the crash cut short
    let data = d.dir.path().join("data");
    let leftovers = [
        data.join("containers/.tmp-rm-0123/log"),
        data.join("snapshots/rw/.tmp-rm-0123-00000000/upper/f"),
    ];
    for f in &leftovers {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"x").unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    d.spawn();
    assert!(is_tmpfs(&exec), "exec root not on a tmpfs after a restart");
    for f in &leftovers {
        assert!(!f.parent().unwrap().exists(), "{} left behind", f.display());
    }
    // the ticker kept running with the same init process; its logs kept growing
    assert_eq!(
        inspect(&d, "{{.State.Status}} {{.State.Pid}}", "ticker"),
        format!("running {pid}")
    );
    let lines = |d: &Daemon| stdout(&d.docker(&["logs", "ticker"])).lines().count();
    let before = lines(&d);
    std::thread::sleep(Duration::from_millis(500));
    assert!(lines(&d) > before, "logs did not continue after restart");
    // a container that exited while berthd was down shows its real exit code
    wait_until(
        "quick to be seen as exited",
        Duration::from_secs(10),
        || inspect(&d, "{{.State.Status}}", "quick") == "exited",
    );
    assert_eq!(inspect(&d, "{{.State.ExitCode}}", "quick"), "42");
    wait_until("quick-rm to be removed", Duration::from_secs(10), || {
        !d.docker(&["inspect", "quick-rm"]).status.success()
    });
    // exec and stop still work on the restored container
    let ex = d.docker(&["exec", "ticker", "echo", "inside"]);
    assert_eq!(stdout(&ex), "inside\n", "{}", text(&ex));
    let st = d.docker(&["stop", "-t", "1", "ticker"]);
    assert!(st.status.success(), "{}", text(&st));
    assert_eq!(inspect(&d, "{{.State.Status}}", "ticker"), "exited");
}

fn is_tmpfs(p: &std::path::Path) -> bool {
    nix::sys::statfs::statfs(p)
        .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .unwrap_or(false)
}

/// Live spare shims of the daemon with exec root `exec` that hold no container (no
/// container's `shim.pid` names them).
fn idle_spares(exec: &std::path::Path) -> Vec<i32> {
    let working: Vec<i32> = std::fs::read_dir(exec.join("containers"))
        .map(|it| {
            it.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("shim.pid")).ok())
                .filter_map(|p| p.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // Running or sleeping: an exited spare may stay a zombie until this machine's pid 1
    // reaps it.
    let out = std::process::Command::new("pgrep")
        .args(["-r", "R,S,D", "-f", "--"])
        .arg(format!("--spare {}", exec.display()))
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|pid| !working.contains(pid))
        .collect()
}

/// berthd killed between a start's shim and its `running` commit leaves a started
/// container recorded as `created` (simulated by rewriting the records). Restore must then
/// adopt the container (its shim is there) or, when it exited meanwhile, record its real
/// exit code, not take it for a container that never ran and orphan its process.
#[test]
fn restore_adopts_a_start_that_was_not_recorded() {
    let mut d = Daemon::start();
    d.import_busybox("busybox");
    for (name, cmd) in [("lost", "exec sleep 60"), ("lost-exit", "sleep 1; exit 9")] {
        let o = d.docker(&["run", "-d", "--name", name, "busybox", "sh", "-c", cmd]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let pid = inspect(&d, "{{.State.Pid}}", "lost");
    let ids: Vec<String> = ["lost", "lost-exit"]
        .iter()
        .map(|n| inspect(&d, "{{.Id}}", n))
        .collect();
    d.crash();
    {
        use berth_engine::store::{Store, CONTAINERS};
        let store = Store::open(&d.dir.path().join("data/berth.redb")).expect("open store");
        for id in &ids {
            let (_, mut rec) = store
                .all::<serde_json::Value>(CONTAINERS)
                .expect("records")
                .into_iter()
                .find(|(k, _)| k == id)
                .expect("record");
            rec["state"]["status"] = "created".into();
            rec["state"]["pid"] = 0.into();
            rec["state"]["started_at"] = serde_json::Value::Null;
            store.put(CONTAINERS, id, &rec).expect("rewrite record");
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    d.spawn();
    assert_eq!(
        inspect(&d, "{{.State.Status}} {{.State.Pid}}", "lost"),
        format!("running {pid}")
    );
    wait_until(
        "lost-exit to be seen as exited",
        Duration::from_secs(10),
        || inspect(&d, "{{.State.Status}}", "lost-exit") == "exited",
    );
    assert_eq!(inspect(&d, "{{.State.ExitCode}}", "lost-exit"), "9");
    let st = d.docker(&["stop", "-t", "1", "lost"]);
    assert!(st.status.success(), "{}", text(&st));
    assert_eq!(inspect(&d, "{{.State.Status}}", "lost"), "exited");
    let rm = d.docker(&["rm", "lost", "lost-exit"]);
    assert!(rm.status.success(), "{}", text(&rm));
}

fn cgroup_file(d: &Daemon, ctl: &str, id: &str, file: &str) -> String {
    std::fs::read_to_string(format!(
        "/sys/fs/cgroup/{ctl}/{}/{id}/{file}",
        d.cgroup_parent
    ))
    .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/{}/{id}/{file}", d.cgroup_parent)))
    .unwrap_or_default()
    .trim()
    .to_string()
}

#[test]
fn resource_limits_and_update() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "lim",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--cpu-shares",
        "512",
        "busybox",
        "sleep",
        "300",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let id = stdout(&out).trim().to_string();
    if std::path::Path::new("/sys/fs/cgroup/memory").exists() {
        assert_eq!(
            cgroup_file(&d, "memory", &id, "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(cgroup_file(&d, "cpu", &id, "cpu.cfs_quota_us"), "50000");
        assert_eq!(cgroup_file(&d, "cpu", &id, "cpu.shares"), "512");
        assert_eq!(cgroup_file(&d, "pids", &id, "pids.max"), "50");
        let up = d.docker(&[
            "update",
            "-m",
            "128m",
            "--memory-swap",
            "256m",
            "--pids-limit",
            "60",
            "lim",
        ]);
        assert!(up.status.success(), "{}", text(&up));
        assert_eq!(
            cgroup_file(&d, "memory", &id, "memory.limit_in_bytes"),
            (128u64 << 20).to_string()
        );
        assert_eq!(cgroup_file(&d, "pids", &id, "pids.max"), "60");
    }
    assert_eq!(
        inspect(&d, "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}", "lim"),
        format!("{} 500000000", 128u64 << 20)
    );
    // a fork bomb stops at the pids limit instead of taking the host down
    let _ = d.docker(&[
        "exec",
        "lim",
        "sh",
        "-c",
        "for i in $(seq 100); do sleep 30 & done 2>/dev/null; true",
    ]);
    if std::path::Path::new("/sys/fs/cgroup/pids").exists() {
        let cur: u32 = cgroup_file(&d, "pids", &id, "pids.current")
            .parse()
            .unwrap_or(999);
        assert!(cur <= 60, "pids limit not enforced: {cur} tasks");
        assert!(cur >= 30, "the loop did not run: {cur} tasks");
    }
    // bad values are refused with docker's words
    let bad = d.docker(&["run", "--rm", "-m", "1k", "busybox", "true"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("Minimum memory limit allowed is 6MB"),
        "{}",
        text(&bad)
    );
}

#[test]
fn security_defaults() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    // `docker run --rm <extra> busybox sh -c <script>`, which must succeed; its stdout.
    let sh = |extra: &[&str], script: &str| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["busybox", "sh", "-c", script]);
        let o = d.docker(&a);
        assert!(o.status.success(), "{}", text(&o));
        stdout(&o)
    };
    let caps = |extra: &[&str]| {
        sh(
            extra,
            "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status | tr -s '\\t ' ' '",
        )
    };
    let def = caps(&[]);
    assert!(def.contains("CapEff: 00000000a80425fb"), "{def}");
    assert!(def.contains("Seccomp: 2"), "{def}");
    assert!(def.contains("NoNewPrivs: 0"), "{def}");
    assert!(caps(&["--cap-drop", "ALL"]).contains("CapEff: 0000000000000000"));
    assert!(caps(&["--security-opt", "seccomp=unconfined"]).contains("Seccomp: 0"));
    assert!(caps(&["--security-opt", "no-new-privileges"]).contains("NoNewPrivs: 1"));
    assert!(caps(&["--cap-add", "NET_ADMIN"]).contains("CapEff: 00000000a80435fb"));
    // masked and read-only paths, minimal /dev
    let o = d.docker(&["run", "--rm", "busybox", "sh", "-c", "wc -c < /proc/timer_list; echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo writable || echo ro; ls /dev | tr '\\n' ' '"]);
    let s = stdout(&o);
    assert!(s.starts_with("0\nro\n"), "{}", text(&o));
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
    ] {
        assert!(s.contains(dev), "/dev lacks {dev}: {s}");
    }
    assert!(
        !s.contains("sda") && !s.contains("vda"),
        "host disks visible: {s}"
    );
    // dockerd's network sysctls for a namespace of the container's own: non-root users may
    // ping and bind low ports; a user's value wins; host networking keeps the host's.
    let sysctls = |extra: &[&str]| {
        let mut a = vec!["-u", "1000"];
        a.extend_from_slice(extra);
        sh(&a, "cat /proc/sys/net/ipv4/ping_group_range /proc/sys/net/ipv4/ip_unprivileged_port_start | tr -s '\t ' ' '; nc -l -p 80 2>/dev/null & sleep 0.2; kill $! 2>/dev/null && echo bound || echo refused")
    };
    assert_eq!(sysctls(&[]), "0 2147483647\n0\nbound\n");
    assert_eq!(sysctls(&["--network", "none"]), "0 2147483647\n0\nbound\n");
    let own = sysctls(&["--sysctl", "net.ipv4.ip_unprivileged_port_start=1024"]);
    assert_eq!(own, "0 2147483647\n1024\nrefused\n");
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "cat",
        "/proc/sys/net/ipv4/ping_group_range",
    ]);
    assert_eq!(stdout(&o), host, "{}", text(&o));
    // read-only rootfs
    let o = d.docker(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Read-only file system"),
        "{}",
        text(&o)
    );
    // namespaces: own pid, uts, net (lo only with --network none), ipc
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-h",
        "boxy",
        "busybox",
        "sh",
        "-c",
        "echo $$; hostname; ls /sys/class/net | tr '\\n' ' '",
    ]);
    assert_eq!(stdout(&o), "1\nboxy\nlo ", "{}", text(&o));
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net | wc -l",
    ]);
    assert!(
        stdout(&o).trim().parse::<u32>().unwrap_or(0) > 1,
        "{}",
        text(&o)
    );
}

#[test]
fn users_env_workdir_entrypoint() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let run = |a: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(a);
        d.docker(&args)
    };
    let o = run(&["-u", "app", "busybox", "sh", "-c", "id -u; id -g; id -G"]);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines[..2], ["1000", "1000"], "{}", text(&o));
    assert!(
        lines[2].split(' ').any(|g| g == "2000"),
        "supplementary group missing: {}",
        text(&o)
    );
    assert_eq!(
        stdout(&run(&["-u", "1234:5678", "busybox", "id", "-u"])),
        "1234\n"
    );
    let bad = run(&["-u", "nosuchuser", "busybox", "id"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unable to find user nosuchuser"),
        "{}",
        text(&bad)
    );
    let envf = d.dir.path().join("env.list");
    std::fs::write(&envf, "FROM_FILE=yes\n# comment\n").expect("env file");
    let o = run(&[
        "-e",
        "A=1",
        "--env-file",
        envf.to_str().expect("utf8"),
        "-w",
        "/tmp/wd",
        "busybox",
        "sh",
        "-c",
        "echo $A $FROM_FILE $(pwd) $HOME",
    ]);
    assert_eq!(stdout(&o), "1 yes /tmp/wd /root\n", "{}", text(&o));
    let o = run(&["--entrypoint", "echo", "busybox", "via", "entrypoint"]);
    assert_eq!(stdout(&o), "via entrypoint\n");
    let o = run(&[
        "--ulimit",
        "nofile=1024:2048",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(stdout(&o), "1024\n2048\n", "{}", text(&o));
    let o = run(&[
        "--shm-size",
        "16m",
        "busybox",
        "sh",
        "-c",
        "df -k /dev/shm | tail -1 | awk '{print $2}'",
    ]);
    assert_eq!(stdout(&o).trim(), "16384", "{}", text(&o));
    let o = run(&[
        "--add-host",
        "db.local:10.1.2.3",
        "busybox",
        "grep",
        "db.local",
        "/etc/hosts",
    ]);
    assert_eq!(stdout(&o), "10.1.2.3\tdb.local\n", "{}", text(&o));
    let o = run(&[
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "busybox",
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
    ]);
    assert_eq!(stdout(&o), "1\n", "{}", text(&o));
    let o = run(&["--init", "busybox", "ps", "-o", "pid,comm"]);
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.trim().starts_with("1 ") && (l.contains("init") || l.contains("tini"))),
        "{}",
        text(&o)
    );
}

#[test]
fn restart_policies() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    wait_until("two restarts then exit", Duration::from_secs(20), || {
        inspect(&d, "{{.RestartCount}} {{.State.Status}}", "flaky") == "2 exited"
    });
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    wait_until("always to restart", Duration::from_secs(20), || {
        inspect(&d, "{{.RestartCount}}", "always")
            .parse::<u32>()
            .unwrap_or(0)
            >= 2
    });
    let st = d.docker(&["stop", "-t", "1", "always"]);
    assert!(st.status.success(), "{}", text(&st));
    let count = inspect(&d, "{{.RestartCount}}", "always");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        inspect(&d, "{{.State.Status}} {{.RestartCount}}", "always"),
        format!("exited {count}")
    );
}

#[test]
fn ps_filters_formats_rename_wait() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    assert!(d
        .docker(&["run", "-d", "--name", "a1", "-l", "tier=web", "busybox", "sleep", "300"])
        .status
        .success());
    assert!(d
        .docker(&["create", "--name", "b1", "-l", "tier=db", "busybox", "true"])
        .status
        .success());
    assert!(
        d.docker(&["run", "--name", "c1", "busybox", "sh", "-c", "exit 2"])
            .status
            .code()
            == Some(2)
    );
    let names = |args: &[&str]| {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        let mut v: Vec<String> = stdout(&d.docker(&a)).lines().map(str::to_string).collect();
        v.sort();
        v.join(",")
    };
    assert_eq!(names(&[]), "a1");
    assert_eq!(names(&["-a"]), "a1,b1,c1");
    assert_eq!(names(&["-a", "--filter", "label=tier=db"]), "b1");
    assert_eq!(names(&["-a", "--filter", "status=exited"]), "c1");
    assert_eq!(names(&["-a", "--filter", "exited=2"]), "c1");
    assert_eq!(names(&["-a", "--filter", "status=created"]), "b1");
    assert_eq!(names(&["-a", "--filter", "ancestor=busybox"]), "a1,b1,c1");
    assert_eq!(names(&["-a", "--filter", "name=b"]), "b1");
    let bad = d.docker(&["ps", "--filter", "status=bogus"]);
    assert!(!bad.status.success());
    assert!(d.docker(&["rename", "a1", "a2"]).status.success());
    assert_eq!(names(&[]), "a2");
    let o = d.docker(&[
        "inspect",
        "-f",
        "{{.Name}} {{index .Config.Labels \"tier\"}}",
        "a2",
    ]);
    assert_eq!(stdout(&o).trim(), "/a2 web");
    // the same through berth
    let o = d.berth(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}} {{.Status}}",
        "--filter",
        "name=c1",
    ]);
    assert!(stdout(&o).starts_with("c1 Exited (2)"), "{}", text(&o));
    let o = d.berth(&["wait", "c1"]);
    assert_eq!(stdout(&o).trim(), "2", "{}", text(&o));
    let o = d.berth(&["run", "--rm", "busybox", "echo", "berth cli"]);
    assert_eq!(stdout(&o), "berth cli\n", "{}", text(&o));
    let o = d.berth(&["run", "--rm", "busybox", "sh", "-c", "exit 9"]);
    assert_eq!(o.status.code(), Some(9));
    let o = d.berth(&["run", "--rm", "busybox", "/not/here"]);
    assert_eq!(o.status.code(), Some(127), "{}", text(&o));
}

#[test]
fn api_statuses_and_versions() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let (c, b) = curl(&d, "GET", "/_ping", None);
    assert_eq!((c, b.as_str()), (200, "OK"));
    assert_eq!(curl(&d, "GET", "/v1.24/version", None).0, 200);
    assert_eq!(curl(&d, "GET", "/v1.50/info", None).0, 200);
    let (c, b) = curl(&d, "GET", "/v1.12/version", None);
    assert_eq!(c, 400);
    assert!(b.contains("too old"), "{b}");
    assert_eq!(curl(&d, "GET", "/v1.51/version", None).0, 400);
    let (c, b) = curl(&d, "POST", "/swarm/leave", None);
    assert_eq!(c, 503);
    assert!(b.contains("This node is not part of a swarm"), "{b}");
    let (c, b) = curl(&d, "GET", "/containers/nope/json", None);
    assert_eq!(c, 404);
    assert_eq!(b.trim(), r#"{"message":"No such container: nope"}"#);
    let (c, b) = curl(
        &d,
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","HostConfig":{"Memory":"lots"}}"#),
    );
    assert_eq!(c, 400, "{b}");
    assert!(b.contains("HostConfig.Memory"), "{b}");
    let (c, _) = curl(&d, "POST", "/containers/create", Some("{not json"));
    assert_eq!(c, 400);
    let (c, b) = curl(
        &d,
        "POST",
        "/containers/create",
        Some(r#"{"Image":"nosuch:1"}"#),
    );
    assert_eq!(c, 404);
    assert!(b.contains("No such image: nosuch:1"), "{b}");
    let (c, b) = curl(
        &d,
        "POST",
        "/containers/create?name=x1",
        Some(r#"{"Image":"busybox","Cmd":["true"]}"#),
    );
    assert_eq!(c, 201, "{b}");
    let (c, b) = curl(
        &d,
        "POST",
        "/containers/create?name=x1",
        Some(r#"{"Image":"busybox","Cmd":["true"]}"#),
    );
    assert_eq!(c, 409, "{b}");
    assert_eq!(curl(&d, "POST", "/containers/x1/stop", None).0, 304);
    assert_eq!(curl(&d, "POST", "/containers/x1/kill", None).0, 409);
    assert_eq!(curl(&d, "POST", "/containers/x1/start", None).0, 204);
    let (c, b) = curl(&d, "POST", "/containers/x1/wait", None);
    assert_eq!(c, 200);
    assert!(b.contains(r#""StatusCode":0"#), "{b}");
    assert_eq!(curl(&d, "DELETE", "/containers/x1", None).0, 204);
    assert_eq!(curl(&d, "GET", "/nonsense", None).0, 404);
}

#[test]
fn two_daemons_side_by_side() {
    let a = Daemon::start();
    let b = Daemon::start();
    a.import_busybox("busybox");
    assert!(a
        .docker(&["create", "--name", "only-in-a", "busybox", "true"])
        .status
        .success());
    assert_eq!(stdout(&b.docker(&["ps", "-aq"])).trim(), "");
    assert!(!b.docker(&["image", "inspect", "busybox"]).status.success());
}

/// `create` writes hostname, hosts and resolv.conf without fsync, on the exec root; a start
/// writes the base files again when a host crash left them missing or empty, or a reboot
/// took their folder (simulated here), for a container without a network of its own as
/// well as one on the bridge. `rm` removes the folder.
#[test]
fn start_rewrites_etc_files_a_crash_lost() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    for (name, net) in [("etc-none", "none"), ("etc-bridge", "bridge")] {
        let o = d.berth(&[
            "create",
            "--name",
            name,
            "--hostname",
            "lostfiles",
            "--network",
            net,
            "busybox",
            "sh",
            "-c",
            "cat /etc/hostname; grep -c localhost /etc/hosts",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        for (field, truncate) in [
            ("HostnamePath", false),
            ("HostsPath", true),
            ("ResolvConfPath", false),
        ] {
            let p = inspect(&d, &format!("{{{{.{field}}}}}"), name);
            assert!(std::path::Path::new(&p).exists(), "{field} {p} missing");
            assert!(
                p.starts_with(&d.dir.path().join("exec").display().to_string()),
                "{field} {p} not on the exec root"
            );
            if net == "bridge" {
                continue;
            }
            if truncate {
                std::fs::write(&p, b"").expect("truncate");
            } else {
                std::fs::remove_file(&p).expect("remove");
            }
        }
        if net == "bridge" {
            // As a reboot leaves the exec root.
            let p = inspect(&d, "{{.HostsPath}}", name);
            std::fs::remove_dir_all(std::path::Path::new(&p).parent().unwrap()).expect("rm etc");
        }
        let o = d.berth(&["start", "-a", name]);
        assert!(o.status.success(), "{}", text(&o));
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.first(), Some(&"lostfiles"), "{name}: {out}");
        assert!(
            lines.get(1).and_then(|n| n.trim().parse::<u32>().ok()) >= Some(1),
            "{name}: no localhost in /etc/hosts: {out}"
        );
        let rc = inspect(&d, "{{.ResolvConfPath}}", name);
        assert!(std::path::Path::new(&rc).exists(), "{name}: resolv.conf");
        let o = d.berth(&["rm", name]);
        assert!(o.status.success(), "{}", text(&o));
        let etc = std::path::Path::new(&rc).parent().unwrap();
        assert!(!etc.exists(), "{name}: {} left after rm", etc.display());
    }
}
