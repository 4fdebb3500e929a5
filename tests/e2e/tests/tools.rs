//! Working with running containers through the real docker CLI: top, stats, cp (both
//! ways, stopped containers, symlink escapes), diff, commit, export, health checks, an
//! interactive `-it` session through a pty, detach keys and logs options.

use berth_e2e::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    stdout(o)
}

/// Runs `cmd` under `script` (a real pty) in the daemon's environment, feeding `input`
/// chunks with pauses in between; returns (exit code, output).
fn in_pty(d: &Daemon, cmd: &str, input: &[(&str, u64)]) -> (Option<i32>, String) {
    let mut child = Command::new("script")
        .args(["-qfec", cmd, "/dev/null"])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    let mut stdin = child.stdin.take().expect("stdin");
    for (data, pause_ms) in input {
        std::thread::sleep(Duration::from_millis(*pause_ms));
        let _ = stdin.write_all(data.as_bytes());
        let _ = stdin.flush();
    }
    // keep stdin open a little so `script` does not hang up before the reply arrives
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    let out = child.wait_with_output().expect("script output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn top_and_stats() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("top");
    ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "-m",
        "64m",
        "busybox",
        "sleep",
        "1000",
    ]));
    let top = ok(&d.docker(&["top", &name]));
    assert!(top.starts_with("UID"), "{top}");
    assert!(top.contains("sleep 1000"), "{top}");
    assert_eq!(
        top.lines().count(),
        2,
        "only the container's process: {top}"
    );
    let aux = ok(&d.docker(&["top", &name, "aux"]));
    assert!(aux.contains("%CPU") && aux.contains("sleep 1000"), "{aux}");
    let bad = d.docker(&["top", &name, "-q", "1"]);
    assert!(!bad.status.success());
    let st = ok(&d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.PIDs}}",
        &name,
    ]));
    let f: Vec<&str> = st.trim().split('|').collect();
    assert_eq!(f[0], name, "{st}");
    assert!(f[1].ends_with('%') && !f[1].contains("--"), "{st}");
    assert!(f[2].ends_with("/ 64MiB"), "{st}");
    assert!(f[3].ends_with('%'), "{st}");
    assert_eq!(f[4], "1", "{st}");
    // and through berth's own CLI
    let top = ok(&d.berth(&["top", &name]));
    assert!(top.contains("sleep 1000"), "{top}");
    let st = ok(&d.berth(&["stats", "--no-stream", &name]));
    assert!(st.contains(&name) && st.contains("64MiB"), "{st}");
    // a stopped container answers with zeros rather than an error
    ok(&d.docker(&["stop", "-t", "0", &name]));
    ok(&d.docker(&["stats", "--no-stream", &name]));
}

#[test]
fn cp_both_ways_and_symlink_escapes() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("cp");
    ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(&d.docker(&[
        "exec",
        &name,
        "sh",
        "-c",
        "mkdir -p /data/sub && echo hello > /data/sub/f && ln -s / /data/root && ln -s ../../../../.. /data/dots && ln -s /etc/passwd /data/pw",
    ]));
    let host = d.dir.path().join("cp-host");
    std::fs::create_dir_all(&host).expect("mkdir");
    // container -> host, a directory (the CLI itself refuses to write escaping links, so
    // take the subdirectory and the symlinks separately)
    let dst = host.join("sub");
    ok(&d.docker(&[
        "cp",
        &format!("{name}:/data/sub"),
        dst.to_str().expect("utf8"),
    ]));
    assert_eq!(
        std::fs::read_to_string(dst.join("f")).expect("f"),
        "hello\n"
    );
    // a link is copied as a link, its absolute target byte for byte
    let pw = host.join("pw");
    ok(&d.docker(&[
        "cp",
        &format!("{name}:/data/pw"),
        pw.to_str().expect("utf8"),
    ]));
    assert_eq!(
        std::fs::read_link(&pw).expect("link"),
        std::path::Path::new("/etc/passwd")
    );
    // reading through links resolves inside the container: its passwd, not the host's
    let through = host.join("passwd");
    for src in [
        "/data/root/etc/passwd",
        "/data/dots/etc/passwd",
        "/../../../etc/passwd",
    ] {
        let _ = std::fs::remove_file(&through);
        ok(&d.docker(&[
            "cp",
            &format!("{name}:{src}"),
            through.to_str().expect("utf8"),
        ]));
        let got = std::fs::read_to_string(&through).expect("passwd");
        assert!(
            got.contains("app:x:1000"),
            "{src} read the host's file: {got}"
        );
    }
    // host -> container through escaping links: lands in the container, never on the host
    let marker = unique("berth-escape");
    let src = host.join(&marker);
    std::fs::write(&src, "escape").expect("write");
    for dst in ["/data/root/tmp/", "/data/dots/tmp/", "/../../tmp/"] {
        ok(&d.docker(&["cp", src.to_str().expect("utf8"), &format!("{name}:{dst}")]));
        assert!(
            !std::path::Path::new("/tmp").join(&marker).exists(),
            "escaped via {dst}"
        );
    }
    let ls = ok(&d.docker(&["exec", &name, "cat", &format!("/tmp/{marker}")]));
    assert_eq!(ls, "escape");
    // a directory into the container
    ok(&d.docker(&["cp", dst.to_str().expect("utf8"), &format!("{name}:/srv")]));
    assert_eq!(ok(&d.docker(&["exec", &name, "cat", "/srv/f"])), "hello\n");
    // missing paths: docker's wording
    let miss = d.docker(&["cp", &format!("{name}:/nope"), host.to_str().expect("utf8")]);
    assert!(!miss.status.success());
    assert!(
        String::from_utf8_lossy(&miss.stderr)
            .contains("Could not find the file /nope in container"),
        "{}",
        text(&miss)
    );
    // stopped containers work too, and leave nothing mounted
    ok(&d.docker(&["stop", "-t", "0", &name]));
    ok(&d.docker(&[
        "cp",
        src.to_str().expect("utf8"),
        &format!("{name}:/etc/stopped"),
    ]));
    let back = host.join("stopped");
    ok(&d.docker(&[
        "cp",
        &format!("{name}:/etc/stopped"),
        back.to_str().expect("utf8"),
    ]));
    assert_eq!(std::fs::read_to_string(&back).expect("back"), "escape");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let root = d.dir.path().to_string_lossy().to_string();
    // The exec root's own tmpfs (berth_runtime::execroot) is the daemon's, not cp's.
    let exec = d.dir.path().join("exec").to_string_lossy().to_string();
    let left: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&root) && *m != exec)
        .collect();
    assert!(left.is_empty(), "a mount was left behind: {left:?}");
}

#[test]
fn diff_commit_export() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("diff");
    ok(&d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "mkdir /new && echo x > /new/f && rm /bin/vi && echo y > /etc/motd",
    ]));
    let diff = ok(&d.docker(&["diff", &name]));
    let lines: Vec<&str> = diff.lines().collect();
    assert_eq!(
        lines,
        [
            "C /bin",
            "D /bin/vi",
            "C /etc",
            "A /etc/motd",
            "A /new",
            "A /new/f"
        ],
        "{diff}"
    );
    let repo = unique("committed");
    let id = ok(&d.docker(&[
        "commit",
        "--change",
        r#"CMD ["echo","x"]"#,
        "-m",
        "a message",
        &name,
        &format!("{repo}:v1"),
    ]));
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let run = ok(&d.docker(&["run", "--rm", "--network", "none", &format!("{repo}:v1")]));
    assert_eq!(run, "x\n");
    let run = ok(&d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &format!("{repo}:v1"),
        "cat",
        "/new/f",
    ]));
    assert_eq!(run, "x\n");
    let hist = ok(&d.docker(&["history", "--format", "{{.Comment}}", &format!("{repo}:v1")]));
    assert!(hist.contains("a message"), "{hist}");
    // export: the merged filesystem, relative names
    let out = Command::new("sh")
        .args(["-c", &format!("docker export {name} | tar -t")])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .output()
        .expect("export");
    let list = ok(&out);
    assert!(list.lines().any(|l| l == "bin/busybox"), "{list}");
    assert!(list.lines().any(|l| l == "new/f"), "{list}");
    assert!(
        !list.lines().any(|l| l == "bin/vi"),
        "deleted file exported"
    );
    // a running container commits (paused meanwhile) too
    let live = unique("live");
    ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &live,
        "busybox",
        "sh",
        "-c",
        "echo z > /z; sleep 1000",
    ]));
    wait_for("the file", || {
        d.docker(&["exec", &live, "test", "-e", "/z"])
            .status
            .success()
    });
    ok(&d.docker(&["commit", &live, &format!("{repo}:live")]));
    let st = ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", &live]));
    assert_eq!(st.trim(), "running");
    let run = ok(&d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &format!("{repo}:live"),
        "cat",
        "/z",
    ]));
    assert_eq!(run, "z\n");
}

#[test]
fn healthcheck_transitions() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("health");
    ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "--health-cmd",
        "test -e /tmp/ok && echo fine",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        "--health-timeout",
        "2s",
        "busybox",
        "sleep",
        "1000",
    ]));
    let status = |d: &Daemon| {
        stdout(&d.docker(&["inspect", "-f", "{{.State.Health.Status}}", &name]))
            .trim()
            .to_string()
    };
    wait_for("unhealthy", || status(&d) == "unhealthy");
    ok(&d.docker(&["exec", &name, "touch", "/tmp/ok"]));
    wait_for("healthy", || status(&d) == "healthy");
    let ps = ok(&d.docker(&[
        "ps",
        "--format",
        "{{.Status}}",
        "--filter",
        &format!("name={name}"),
    ]));
    assert!(ps.contains("(healthy)"), "{ps}");
    let filtered = ok(&d.docker(&["ps", "-q", "--filter", "health=healthy"]));
    assert_eq!(filtered.lines().count(), 1, "{filtered}");
    let log = ok(&d.docker(&["inspect", "-f", "{{json .State.Health}}", &name]));
    let v: serde_json::Value = serde_json::from_str(&log).expect("health json");
    let entries = v["Log"].as_array().expect("log");
    assert!(entries.len() <= 5 && !entries.is_empty(), "{log}");
    assert_eq!(entries.last().expect("last")["Output"], "fine\n");
    assert_eq!(v["FailingStreak"], 0);
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 1)
    .to_string();
    let ev = ok(&d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        &format!("container={name}"),
        "--format",
        "{{.Action}}",
    ]));
    assert!(ev.lines().any(|l| l == "health_status: healthy"), "{ev}");
    assert!(ev.lines().any(|l| l == "health_status: unhealthy"), "{ev}");
    // a timeout is recorded with exit code -1
    let slow = unique("slow");
    ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &slow,
        "--health-cmd",
        "sleep 5",
        "--health-interval",
        "200ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "1000",
    ]));
    wait_for("unhealthy by timeout", || {
        stdout(&d.docker(&["inspect", "-f", "{{.State.Health.Status}}", &slow])).trim()
            == "unhealthy"
    });
    let log = ok(&d.docker(&["inspect", "-f", "{{json .State.Health.Log}}", &slow]));
    assert!(
        log.contains("\"ExitCode\":-1") && log.contains("exceeded timeout"),
        "{log}"
    );
    // --no-healthcheck and NONE disable the image's check
    let none = unique("none");
    ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &none,
        "--no-healthcheck",
        "busybox",
        "sleep",
        "1000",
    ]));
    let h = ok(&d.docker(&["inspect", "-f", "{{json .State.Health}}", &none]));
    assert_eq!(h.trim(), "null");
}

#[test]
fn interactive_tty_session() {
    if !require("script") {
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox");
    let (code, out) = in_pty(
        &d,
        "docker run -it --rm --network none busybox sh",
        &[("echo hi$((1+2)); exit 7\r", 1500)],
    );
    assert!(out.contains("hi3"), "{out}");
    assert_eq!(code, Some(7), "{out}");
}

#[test]
fn detach_keys_leave_the_container_running() {
    if !require("script") {
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("detach");
    ok(&d.docker(&[
        "run",
        "-dit",
        "--network",
        "none",
        "--name",
        &name,
        "busybox",
        "sh",
    ]));
    let (_, out) = in_pty(
        &d,
        &format!("docker attach {name}"),
        &[("echo before\r", 1000), ("\x10\x11", 500)],
    );
    assert!(out.contains("before"), "{out}");
    let st = ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", &name]));
    assert_eq!(st.trim(), "running", "{out}");
    // custom keys, then leave by exiting the shell
    let (code, out) = in_pty(
        &d,
        &format!("docker attach --detach-keys ctrl-x {name}"),
        &[("echo again\r", 1000), ("exit 3\r", 300)],
    );
    assert!(out.contains("again"), "{out}");
    assert_eq!(code, Some(3), "{out}");
    // the daemon side of the escape, on a raw TTY attach with custom keys
    let id = unique("raw");
    ok(&d.docker(&[
        "run",
        "-dit",
        "--network",
        "none",
        "--name",
        &id,
        "busybox",
        "sh",
    ]));
    let raw_attach = |id: &str| {
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
        write!(
            s,
            "POST /containers/{id}/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-a,b HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        .expect("request");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 4096];
        let n = std::io::Read::read(&mut s, &mut buf).expect("101");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
        s
    };
    let mut s = raw_attach(&id);
    s.write_all(b"\x01b").expect("keys");
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut rest).expect("closed by the daemon");
    let st = ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", &id]));
    assert_eq!(st.trim(), "running");
    // without a TTY the keys are plain input, as with dockerd: `cat` echoes them back
    let plain = unique("plain");
    ok(&d.docker(&[
        "run",
        "-di",
        "--network",
        "none",
        "--name",
        &plain,
        "busybox",
        "cat",
    ]));
    let mut s = raw_attach(&plain);
    s.write_all(b"\x01b\n").expect("keys as input");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.windows(3).any(|w| w == b"\x01b\n") {
        let n = std::io::Read::read(&mut s, &mut buf).expect("echo");
        assert!(n > 0, "stream ended: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    drop(s);
    // through the real CLI in a pty: a non-TTY attach is left with ctrl-c and
    // --sig-proxy=false, and the container keeps running
    let (_, out) = in_pty(
        &d,
        &format!("docker attach --sig-proxy=false {plain}"),
        &[("through\r", 1000), ("\x03", 500)],
    );
    assert!(out.contains("through"), "{out}");
    let st = ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", &plain]));
    assert_eq!(st.trim(), "running", "{out}");
    // `docker exec -it` detaches with ctrl-p ctrl-q too; the container keeps running
    let (code, out) = in_pty(
        &d,
        &format!("docker exec -it {id} sh"),
        &[("echo inexec\r", 1000), ("\x10\x11", 500)],
    );
    assert!(out.contains("inexec"), "{out}");
    assert_ne!(code, None, "the CLI left after the detach keys: {out}");
    let st = ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", &id]));
    assert_eq!(st.trim(), "running", "{out}");
    let ev = ok(&d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        &format!("container={id}"),
        "--format",
        "{{.Action}}",
    ]));
    assert!(ev.lines().any(|l| l == "detach"), "{ev}");
}

#[test]
fn logs_options() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("logs");
    ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line$i; done; sleep 2; echo late; sleep 1000",
    ]));
    wait_for("first lines", || {
        stdout(&d.docker(&["logs", &name])).contains("line5")
    });
    let tail = ok(&d.docker(&["logs", "--tail", "2", &name]));
    assert_eq!(tail, "line4\nline5\n");
    let ts = ok(&d.docker(&["logs", "-t", "--tail", "1", &name]));
    let (stamp, line) = ts.trim().split_once(' ').expect("timestamp");
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "{ts}");
    assert_eq!(line, "line5");
    // -f streams what comes later
    let mut child = Command::new("docker")
        .args(["logs", "-f", &name])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("logs -f");
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&got).contains("late") {
                break;
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let got = reader.join().expect("reader");
    assert!(got.contains("late"), "{got}");
    let since = ok(&d.docker(&["logs", "--since", "2099-01-01T00:00:00Z", &name]));
    assert_eq!(since, "");
}

/// The frames of a multiplexed body, as (stream, payload).
fn frames_of(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut d = berth_client::frame::Demuxer::new();
    d.push(b);
    let mut out = Vec::new();
    while let Some((kind, payload)) = d.next_frame().expect("valid frames") {
        out.push((kind.byte(), payload.to_vec()));
    }
    assert_eq!(d.pending(), 0, "no partial frame");
    out
}

/// berth's CLI asks for merged frames (`X-Berth-Merge-Frames`): a run of lines of one
/// stream comes as one frame, and what it prints is what the docker CLI prints from
/// dockerd's one frame per line, which every other client still gets.
#[test]
fn logs_merged_frames_for_the_berth_cli() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("merged");
    ok(&d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 3000 ]; do echo out$i; [ $((i % 500)) = 0 ] && echo err$i >&2; i=$((i+1)); done",
    ]));
    let (b, k) = (d.berth(&["logs", &name]), d.docker(&["logs", &name]));
    assert!(b.status.success() && k.status.success(), "{}", text(&b));
    assert_eq!(b.stdout, k.stdout, "stdout as the docker CLI prints it");
    assert_eq!(b.stderr, k.stderr, "stderr as the docker CLI prints it");
    assert_eq!(String::from_utf8_lossy(&b.stdout).lines().count(), 3000);
    assert_eq!(String::from_utf8_lossy(&b.stderr).lines().count(), 6);
    let get = |merge: bool| {
        let sock = d.socket.to_string_lossy().into_owned();
        let mut c = Command::new("curl");
        c.args(["-s", "--unix-socket", &sock]);
        if merge {
            c.args(["-H", "X-Berth-Merge-Frames: 1"]);
        }
        let out = c
            .arg(format!(
                "http://localhost/containers/{name}/logs?stdout=1&stderr=1"
            ))
            .output()
            .expect("curl");
        assert!(out.status.success());
        frames_of(&out.stdout)
    };
    let (per_line, merged) = (get(false), get(true));
    assert_eq!(per_line.len(), 3006, "one frame per line by default");
    assert!(merged.len() <= 13, "{} merged frames", merged.len());
    let by_stream = |frames: &[(u8, Vec<u8>)], s: u8| -> Vec<u8> {
        frames
            .iter()
            .filter(|f| f.0 == s)
            .flat_map(|f| f.1.clone())
            .collect()
    };
    for s in [1, 2] {
        assert_eq!(by_stream(&merged, s), by_stream(&per_line, s), "stream {s}");
    }
    ok(&d.docker(&["rm", &name]));
}

#[test]
fn system_df_and_container_prune_filters() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let keep = unique("keep");
    let drop = unique("drop");
    ok(&d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        &keep,
        "--label",
        "keep=1",
        "busybox",
        "sh",
        "-c",
        "head -c 4096 /dev/zero > /blob",
    ]));
    ok(&d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        &drop,
        "busybox",
        "true",
    ]));
    let df = ok(&d.docker(&[
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Size}}",
    ]));
    let images = df
        .lines()
        .find(|l| l.starts_with("Images|"))
        .expect("images row");
    assert!(
        images.starts_with("Images|1|") && !images.ends_with("|0B"),
        "{df}"
    );
    let containers = df
        .lines()
        .find(|l| l.starts_with("Containers|"))
        .expect("containers row");
    assert!(
        containers.starts_with("Containers|2|") && containers.contains("kB"),
        "{df}"
    );
    let pruned = ok(&d.docker(&["container", "prune", "-f", "--filter", "label!=keep=1"]));
    assert!(pruned.contains("Deleted Containers"), "{pruned}");
    let left = ok(&d.docker(&["ps", "-a", "--format", "{{.Names}}"]));
    assert_eq!(left.trim(), keep, "{pruned}");
    let none = ok(&d.docker(&[
        "container",
        "prune",
        "-f",
        "--filter",
        "until=2000-01-01T00:00:00Z",
    ]));
    assert!(!none.contains(&keep), "{none}");
    assert_eq!(ok(&d.docker(&["ps", "-aq"])).lines().count(), 1);
}

/// Runs a shell pipeline (python3, curl) with this daemon's socket in `$SOCK`.
fn sh(d: &Daemon, script: &str) -> std::process::Output {
    Command::new("sh")
        .args(["-ec", script])
        .env("SOCK", &d.socket)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .output()
        .expect("run sh")
}

#[test]
fn cp_through_volumes_binds_tmpfs_gzip_and_xattrs() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("cpvol");
    let vol = unique("cpdata");
    let bind = d.dir.path().join("bind");
    let robind = d.dir.path().join("robind");
    std::fs::create_dir_all(&bind).expect("mkdir");
    std::fs::create_dir_all(&robind).expect("mkdir");
    let host_file = d.dir.path().join("hello.txt");
    std::fs::write(&host_file, "hello volume\n").expect("write");
    ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "-v",
        &format!("{vol}:/data"),
        "-v",
        &format!("{}:/bind", bind.display()),
        "-v",
        &format!("{}:/ro:ro", robind.display()),
        "--tmpfs",
        "/scratch",
        "busybox",
        "sleep",
        "1000",
    ]));
    let hf = host_file.to_str().expect("utf8");
    // into a volume, a bind and a tmpfs: the container sees each file where it was put
    for dir in ["/data", "/bind", "/scratch"] {
        ok(&d.docker(&["cp", hf, &format!("{name}:{dir}/")]));
        let got = ok(&d.docker(&["exec", &name, "cat", &format!("{dir}/hello.txt")]));
        assert_eq!(got, "hello volume\n", "{dir}");
    }
    assert_eq!(
        std::fs::read_to_string(bind.join("hello.txt")).expect("bind file on host"),
        "hello volume\n"
    );
    let mountpoint = ok(&d.docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &vol]));
    assert!(
        std::path::Path::new(mountpoint.trim())
            .join("hello.txt")
            .exists(),
        "volume data dir {mountpoint}"
    );
    // out of them, and a symlink in the rootfs that points into the volume
    ok(&d.docker(&["exec", &name, "ln", "-s", "/data", "/shortcut"]));
    let out_dir = d.dir.path().join("out");
    std::fs::create_dir_all(&out_dir).expect("mkdir");
    ok(&d.docker(&[
        "cp",
        &format!("{name}:/shortcut/hello.txt"),
        out_dir.join("via-link").to_str().expect("utf8"),
    ]));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("via-link")).expect("copied"),
        "hello volume\n"
    );
    ok(&d.docker(&[
        "cp",
        &format!("{name}:/scratch/hello.txt"),
        out_dir.join("from-tmpfs").to_str().expect("utf8"),
    ]));
    // a read-only bind refuses, with dockerd's message; nothing lands on the host
    let ro = d.docker(&["cp", hf, &format!("{name}:/ro/")]);
    assert!(!ro.status.success());
    assert!(
        text(&ro).contains("mounted volume is marked read-only"),
        "{}",
        text(&ro)
    );
    assert_eq!(std::fs::read_dir(&robind).expect("ls").count(), 0);
    // a gzip-compressed tar from stdin (docker cp - sends it as is)
    let gz = sh(
        &d,
        &format!(
            "mkdir -p {t}/gz && echo zipped > {t}/gz/z.txt && tar -C {t}/gz -czf - z.txt \
             | docker cp - {name}:/data",
            t = d.dir.path().display()
        ),
    );
    assert!(gz.status.success(), "{}", text(&gz));
    assert_eq!(
        ok(&d.docker(&["exec", &name, "cat", "/data/z.txt"])),
        "zipped\n"
    );
    // xattrs travel as PAX records both ways through the archive endpoint
    let x = sh(
        &d,
        &format!(
            r#"python3 - <<'PY'
import io, subprocess, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    data = b"with attrs\n"
    info = tarfile.TarInfo("x.txt")
    info.size = len(data)
    info.pax_headers = {{"SCHILY.xattr.user.berth": "kept"}}
    t.addfile(info, io.BytesIO(data))
import os
sock = os.environ["SOCK"]
put = subprocess.run(["curl", "-sf", "--unix-socket", sock, "-X", "PUT",
    "-H", "Content-Type: application/x-tar", "--data-binary", "@-",
    "http://d/containers/{name}/archive?path=/data"], input=buf.getvalue())
assert put.returncode == 0, put
got = subprocess.run(["curl", "-sf", "--unix-socket", sock,
    "http://d/containers/{name}/archive?path=/data/x.txt"], capture_output=True, check=True)
with tarfile.open(fileobj=io.BytesIO(got.stdout)) as t:
    m = t.getmember("x.txt")
    print(m.pax_headers.get("SCHILY.xattr.user.berth", "missing"))
PY"#
        ),
    );
    assert!(x.status.success(), "{}", text(&x));
    let mp = std::path::Path::new(mountpoint.trim()).join("x.txt");
    let host_has_user_xattrs = Command::new("python3")
        .args([
            "-c",
            "import os,sys; os.setxattr(sys.argv[1], 'user.probe', b'1')",
            d.dir.path().join("hello.txt").to_str().expect("utf8"),
        ])
        .status()
        .expect("python3")
        .success();
    if host_has_user_xattrs {
        assert_eq!(stdout(&x).trim(), "kept", "{}", text(&x));
        assert!(mp.exists());
    }
    // a stopped container's volume is still reachable
    ok(&d.docker(&["stop", "-t", "0", &name]));
    let stopped = ok(&d.docker(&["cp", &format!("{name}:/data/hello.txt"), "-"]));
    assert!(stopped.contains("hello volume"), "{stopped}");
    ok(&d.docker(&["cp", hf, &format!("{name}:/data/again.txt")]));
    assert!(std::path::Path::new(mountpoint.trim())
        .join("again.txt")
        .exists());
    ok(&d.docker(&["rm", "-f", &name]));
    ok(&d.docker(&["volume", "rm", &vol]));
}

#[test]
fn health_survives_a_daemon_restart() {
    let mut d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("healthrs");
    ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "--health-cmd",
        "echo probe",
        "--health-interval",
        "500ms",
        "busybox",
        "sleep",
        "1000",
    ]));
    let health = |d: &Daemon| -> serde_json::Value {
        let o = d.docker(&["inspect", "-f", "{{json .State.Health}}", &name]);
        serde_json::from_str(stdout(&o).trim()).unwrap_or(serde_json::Value::Null)
    };
    wait_for("healthy", || health(&d)["Status"] == "healthy");
    let before = health(&d);
    d.crash();
    d.spawn();
    // right after the restart the state is the persisted one, not `starting`
    let after = health(&d);
    assert_eq!(after["Status"], "healthy", "{after}");
    assert!(
        !after["Log"].as_array().expect("log").is_empty(),
        "log kept: {after}"
    );
    let last_before = before["Log"].as_array().expect("log").last().cloned();
    // and the probes resume
    wait_for("a new probe after the restart", || {
        let h = health(&d);
        h["Log"].as_array().and_then(|l| l.last().cloned()) != last_before
            && h["Status"] == "healthy"
    });
    ok(&d.docker(&["rm", "-f", &name]));
}

#[test]
fn stats_cpu_percent_throttling_and_blkio() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("busy");
    ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/tmp/f bs=64k count=64 conv=fsync 2>/dev/null; \
         while :; do :; done",
    ]));
    std::thread::sleep(Duration::from_secs(2));
    let pct = ok(&d.docker(&["stats", "--no-stream", "--format", "{{.CPUPerc}}", &name]));
    let v: f64 = pct
        .trim()
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("cpu percent {pct:?}"));
    // Alone on the host this reads about 50%; tests running beside it on two cores can
    // take CPU from the loop, but the quota must cap it and the percentage stay sane.
    assert!(
        (5.0..=65.0).contains(&v),
        "a busy loop at --cpus 0.5: {pct}"
    );
    let raw = sh(
        &d,
        &format!("curl -sf --unix-socket \"$SOCK\" 'http://d/containers/{name}/stats?stream=0'"),
    );
    assert!(raw.status.success(), "{}", text(&raw));
    let s: serde_json::Value = serde_json::from_str(&stdout(&raw)).expect("stats json");
    let t = &s["cpu_stats"]["throttling_data"];
    assert!(t["periods"].as_u64().unwrap_or(0) > 0, "{t}");
    assert!(t["throttled_periods"].as_u64().unwrap_or(0) > 0, "{t}");
    assert!(t["throttled_time"].as_u64().unwrap_or(0) > 0, "{t}");
    // blkio entries, when the cgroup saw I/O, name their device
    if let Some(entries) = s["blkio_stats"]["io_service_bytes_recursive"].as_array() {
        for e in entries {
            assert!(
                e["major"].is_u64() && e["minor"].is_u64() && e["op"].is_string(),
                "{e}"
            );
        }
    }
    ok(&d.docker(&["rm", "-f", &name]));
}

/// The numbered lines (`<prefix><n>`) in `out`, checked to be one gap-free run.
fn numbered_run(out: &str, prefix: &str) -> Vec<u64> {
    let nums: Vec<u64> = out
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| l.split('-').next().and_then(|n| n.parse().ok()))
        .collect();
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "gap in the log: {:?}", &nums);
    }
    nums
}

#[test]
fn logs_rotation_drivers_restart_and_time_filters() {
    let mut d = Daemon::start();
    // daemon.json log-opts are the default for containers that set none
    d.crash();
    std::fs::write(
        d.dir.path().join("daemon.json"),
        r#"{"log-opts": {"max-size": "10k", "max-file": "3"}}"#,
    )
    .expect("daemon.json");
    d.spawn();
    d.import_busybox("busybox");
    let writer = "i=0; while [ $i -lt 600 ]; do echo n$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; \
                  i=$((i+1)); done";
    let own = unique("rot");
    let dflt = unique("rotd");
    for (name, opts) in [
        (
            &own,
            vec!["--log-opt", "max-size=10k", "--log-opt", "max-file=3"],
        ),
        (&dflt, vec![]),
    ] {
        let mut args = vec!["run", "--network", "none", "--name", name.as_str()];
        args.extend(opts);
        args.extend(["busybox", "sh", "-c", writer]);
        let o = d.docker(&args);
        assert!(o.status.success(), "{}", text(&o));
        let path = ok(&d.docker(&["inspect", "-f", "{{.LogPath}}", name]));
        let path = path.trim();
        for suffix in ["", ".1", ".2"] {
            let f = format!("{path}{suffix}");
            let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            assert!(len > 0 && len <= 10 * 1024, "{f}: {len} bytes");
        }
        assert!(!std::path::Path::new(&format!("{path}.3")).exists());
        // docker logs reads across the rotated files, oldest first, with no gap
        let out = ok(&d.docker(&["logs", name]));
        let nums = numbered_run(&out, "n");
        assert_eq!(nums.last(), Some(&599), "{name}");
        assert!(nums.len() > 150, "{} lines kept", nums.len());
        let tail = ok(&d.docker(&["logs", "--tail", "3", name]));
        assert_eq!(numbered_run(&tail, "n"), vec![597, 598, 599]);
    }

    // a container that keeps writing while berthd is down: nothing is lost
    let ticker = unique("tick");
    ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &ticker,
        "busybox",
        "sh",
        "-c",
        "i=0; while :; do echo t$i; i=$((i+1)); sleep 0.1; done",
    ]));
    std::thread::sleep(Duration::from_millis(500));
    let before = numbered_run(&ok(&d.docker(&["logs", &ticker])), "t").len();
    d.crash();
    std::thread::sleep(Duration::from_secs(1));
    d.spawn();
    let after = ok(&d.docker(&["logs", &ticker]));
    let nums = numbered_run(&after, "t");
    assert!(nums.len() >= before + 8, "{before} then {}", nums.len());
    // -f after the restart follows the live container from where the file is
    let followed = sh(
        &d,
        &format!("timeout 2 docker logs -f --tail 1 {ticker} || true"),
    );
    let f = numbered_run(&stdout(&followed), "t");
    assert!(f.len() >= 5, "followed {:?}", f);
    assert!(f[0] >= *nums.last().expect("lines"), "{f:?}");
    // the exited containers are still readable after the restart
    let out = ok(&d.docker(&["logs", "--tail", "1", &own]));
    assert_eq!(numbered_run(&out, "n"), vec![599]);
    ok(&d.docker(&["rm", "-f", &ticker]));

    // --since / --until, RFC 3339 and relative
    let timed = unique("timed");
    ok(&d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        &timed,
        "busybox",
        "sh",
        "-c",
        "echo early; sleep 2; echo late",
    ]));
    let stamps = ok(&d.docker(&["logs", "-t", &timed]));
    let early_t = stamps
        .lines()
        .next()
        .expect("line")
        .split(' ')
        .next()
        .expect("time");
    assert_eq!(
        early_t.len(),
        "2024-01-01T00:00:00.000000000Z".len(),
        "{stamps}"
    );
    // a second boundary between the two lines (they are 2 s apart)
    let mid = stdout(&sh(
        &d,
        &format!("date -u -d @$(( $(date -d {early_t} +%s) + 1 )) +%Y-%m-%dT%H:%M:%SZ"),
    ));
    let mid = mid.trim().to_string();
    assert!(mid.ends_with('Z'), "{mid}");
    assert_eq!(ok(&d.docker(&["logs", "--since", &mid, &timed])), "late\n");
    assert_eq!(ok(&d.docker(&["logs", "--until", &mid, &timed])), "early\n");
    assert_eq!(
        ok(&d.docker(&["logs", "--since", "10m", &timed])),
        "early\nlate\n"
    );
    assert_eq!(ok(&d.docker(&["logs", "--until", "10m", &timed])), "");

    // --details with labels/env log options; local and none drivers
    let det = unique("details");
    ok(&d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        &det,
        "--label",
        "team=blue",
        "-e",
        "MODE=prod",
        "--log-opt",
        "labels=team",
        "--log-opt",
        "env=MODE",
        "busybox",
        "echo",
        "hi",
    ]));
    assert_eq!(
        ok(&d.docker(&["logs", "--details", &det])),
        "MODE=prod,team=blue hi\n"
    );
    assert_eq!(ok(&d.docker(&["logs", &det])), "hi\n");
    let local = unique("local");
    ok(&d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        &local,
        "--log-driver",
        "local",
        "busybox",
        "echo",
        "kept locally",
    ]));
    assert_eq!(ok(&d.docker(&["logs", &local])), "kept locally\n");
    let none = unique("nolog");
    ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &none,
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "gone",
    ]));
    let o = d.docker(&["logs", &none]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("configured logging driver does not support reading"),
        "{}",
        text(&o)
    );
    for n in [&own, &dflt, &timed, &det, &local, &none] {
        let _ = d.docker(&["rm", "-f", n]);
    }
}

#[test]
fn attach_replays_logs_after_exit_without_a_stream() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("replay");
    ok(&d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]));
    // logs=1&stream=0 on an exited container answers with the log and ends
    let o = sh(
        &d,
        &format!(
            r#"python3 - <<'PY'
import os, socket
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["SOCK"])
s.sendall(b"POST /containers/{name}/attach?logs=1&stream=0&stdout=1&stderr=1 HTTP/1.1\r\n"
          b"Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n")
s.settimeout(10)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
print(head.split(b"\r\n")[0].decode())
out = {{1: b"", 2: b""}}
while len(body) >= 8:
    n = int.from_bytes(body[4:8], "big")
    out[body[0]] += body[8:8 + n]
    body = body[8 + n:]
print(repr(out[1]), repr(out[2]))
PY"#
        ),
    );
    let got = ok(&o);
    assert!(got.contains(" 101 ") || got.contains(" 200 "), "{got}");
    assert!(got.contains("b'out\\n' b'err\\n'"), "{got}");
    ok(&d.docker(&["rm", "-f", &name]));
}
