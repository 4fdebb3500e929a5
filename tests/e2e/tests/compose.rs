//! `berth compose` against a private berthd: up with a healthy dependency, DNS by service
//! name, ps, logs, scale, config-hash recreation, down -v; and docker-compose 1.29 (when
//! installed) through the same daemon.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use berth_e2e::*;

const PROJECT: &str = r#"
services:
  web:
    image: busybox
    command: sh -c "echo web says $${ROLE}; exec sleep 3600"
    environment:
      ROLE: ${ROLE:-frontend}
    stop_grace_period: 1s
    depends_on:
      db:
        condition: service_healthy
  db:
    image: busybox
    command: sh -c "echo db ready; touch /tmp/ok; exec sleep 3600"
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 1s
      retries: 30
    volumes:
      - data:/data
volumes:
  data: {}
"#;

fn compose(d: &Daemon, dir: &Path, args: &[&str]) -> Output {
    Command::new(bin("berth"))
        .current_dir(dir)
        .args(["-H", &d.host(), "compose"])
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run berth compose")
}

/// Stdout then stderr of a successful command.
fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    format!("{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr))
}

fn project_dir(name: &str) -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir()
        .expect("tmp");
    std::fs::write(t.path().join("compose.yaml"), PROJECT).expect("write compose.yaml");
    t
}

fn ids(d: &Daemon, filter: &str) -> Vec<String> {
    let o = d.docker(&["ps", "-aq", "--filter", filter]);
    stdout(&o).split_whitespace().map(str::to_string).collect()
}

#[test]
fn up_dns_ps_logs_scale_recreate_down() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let dir = project_dir("cmp");
    let p = unique("cmp");
    let pr = ["-p", p.as_str()];
    let args = |rest: &[&'static str]| -> Vec<String> {
        pr.iter()
            .map(|s| s.to_string())
            .chain(rest.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |rest: &[&'static str]| {
        let a = args(rest);
        let v: Vec<&str> = a.iter().map(String::as_str).collect();
        compose(&d, dir.path(), &v)
    };

    let out = ok(run(&["up", "-d"]));
    assert!(
        out.contains(&format!("Network {p}_default  Created")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Container {p}-db-1  Healthy")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Container {p}-web-1  Started")),
        "{out}"
    );
    // db started (and became healthy) before web.
    let db_at = out.find(&format!("{p}-db-1  Started")).expect("db started");
    let web_at = out
        .find(&format!("{p}-web-1  Started"))
        .expect("web started");
    assert!(db_at < web_at, "{out}");

    // Labels as docker compose writes them.
    let labels = d.docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"com.docker.compose.project\"}} {{index .Config.Labels \"com.docker.compose.service\"}} {{index .Config.Labels \"com.docker.compose.container-number\"}} {{index .Config.Labels \"com.docker.compose.oneoff\"}}",
        &format!("{p}-web-1"),
    ]);
    assert_eq!(
        stdout(&labels).trim(),
        format!("{p} web 1 False"),
        "{}",
        text(&labels)
    );

    // DNS by service name on the project network.
    ok(run(&["exec", "-T", "web", "ping", "-c1", "-W2", "db"]));
    let env = ok(run(&["exec", "-T", "web", "sh", "-c", "echo $ROLE"]));
    assert!(env.contains("frontend"), "{env}");

    let ps = ok(run(&["ps"]));
    assert!(ps.starts_with("NAME"), "{ps}");
    assert!(
        ps.contains(&format!("{p}-db-1")) && ps.contains(&format!("{p}-web-1")),
        "{ps}"
    );
    let svcs = ok(run(&["ps", "--services"]));
    assert_eq!(svcs.lines().count(), 2, "{svcs}");

    let logs = ok(run(&["logs", "web"]));
    assert!(logs.contains("web-1  | web says frontend"), "{logs}");
    let logs = ok(run(&["logs", "--no-log-prefix", "db"]));
    assert!(logs.contains("db ready"), "{logs}");

    // Nothing changed: no recreation.
    let web_id = ids(&d, &format!("name={p}-web-1"));
    let out = ok(run(&["up", "-d"]));
    assert!(
        out.contains(&format!("Container {p}-web-1  Running")),
        "{out}"
    );
    assert_eq!(ids(&d, &format!("name={p}-web-1")), web_id);

    // Scale web to 2: web-1 stays, web-2 is created.
    let out = ok(run(&["up", "-d", "--scale", "web=2"]));
    assert!(
        out.contains(&format!("Container {p}-web-2  Started")),
        "{out}"
    );
    assert_eq!(ids(&d, &format!("name={p}-web-1")), web_id);
    assert_eq!(
        ids(&d, &format!("label=com.docker.compose.project={p}")).len(),
        3
    );

    // A config change recreates only the changed service (back to one replica).
    let changed = PROJECT.replace("ROLE: ${ROLE:-frontend}", "ROLE: changed");
    std::fs::write(dir.path().join("compose.yaml"), changed).expect("rewrite");
    let out = ok(run(&["up", "-d"]));
    assert!(
        out.contains(&format!("Container {p}-web-1  Recreate")),
        "{out}"
    );
    assert!(!out.contains(&format!("{p}-db-1  Recreate")), "{out}");
    assert_ne!(ids(&d, &format!("name={p}-web-1")), web_id);
    assert_eq!(
        ids(&d, &format!("label=com.docker.compose.project={p}")).len(),
        2
    );
    let env = ok(run(&["exec", "-T", "web", "sh", "-c", "echo $ROLE"]));
    assert!(env.contains("changed"), "{env}");

    ok(run(&["stop", "web"]));
    let ps = ok(run(&["ps", "-a"]));
    assert!(ps.contains("Exited"), "{ps}");
    ok(run(&["start", "web"]));

    let vol = format!("{p}_data");
    ok(d.docker(&["volume", "inspect", &vol]));
    let out = ok(run(&["down", "-v"]));
    assert!(
        out.contains(&format!("Network {p}_default  Removed")),
        "{out}"
    );
    assert!(ids(&d, &format!("label=com.docker.compose.project={p}")).is_empty());
    assert!(!d.docker(&["volume", "inspect", &vol]).status.success());
    assert!(!d
        .docker(&["network", "inspect", &format!("{p}_default")])
        .status
        .success());
}

#[test]
fn config_and_run() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let dir = project_dir("cfg");
    let p = unique("cfg");
    let cfg = ok(compose(&d, dir.path(), &["-p", &p, "config"]));
    assert!(cfg.starts_with(&format!("name: {p}\n")), "{cfg}");
    assert!(cfg.contains("condition: service_healthy"), "{cfg}");
    let services = ok(compose(&d, dir.path(), &["config", "--services"]));
    assert_eq!(services.lines().count(), 2, "{services}");
    let vols = ok(compose(&d, dir.path(), &["config", "--volumes"]));
    assert_eq!(vols.trim(), "data");
    ok(compose(&d, dir.path(), &["config", "-q"]));
    let j = ok(compose(&d, dir.path(), &["config", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&j).expect("json config");
    assert_eq!(v["services"]["web"]["environment"]["ROLE"], "frontend");

    // run: one-off container with the dependency brought up first; exit code passes through.
    let out = compose(
        &d,
        dir.path(),
        &[
            "-p",
            &p,
            "run",
            "--rm",
            "-T",
            "web",
            "sh",
            "-c",
            "ping -c1 -W2 db >/dev/null && exit 7",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    ok(compose(&d, dir.path(), &["-p", &p, "down", "-v"]));
    assert!(ids(&d, &format!("label=com.docker.compose.project={p}")).is_empty());
}

#[test]
fn attached_up_streams_logs_and_exit_code() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  a:\n    image: busybox\n    command: echo hello-a\n  b:\n    image: busybox\n    command: sh -c 'sleep 1; echo bye-b; exit 3'\n",
    )
    .expect("write");
    let p = unique("att");
    let out = compose(&d, dir.path(), &["-p", &p, "up", "--exit-code-from", "b"]);
    let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("a-1  | hello-a"), "{all}");
    assert!(all.contains("b-1  | bye-b"), "{all}");
    ok(compose(&d, dir.path(), &["-p", &p, "down"]));
}

/// Debian's docker-compose 1.29 (Python) driving berthd through the Engine API.
#[test]
fn docker_compose_1_29_flow() {
    if !require("docker-compose") {
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "version: '2.4'\nservices:\n  app:\n    image: busybox\n    command: sh -c 'echo hi; exec sleep 3600'\n    stop_grace_period: 1s\n",
    )
    .expect("write");
    let p = unique("dc").replace('-', "");
    let dc = |args: &[&str]| -> Output {
        Command::new("docker-compose")
            .current_dir(dir.path())
            .args(["-p", &p])
            .args(args)
            .env("DOCKER_HOST", d.host())
            .env("COMPOSE_API_VERSION", "auto")
            .stdin(Stdio::null())
            .output()
            .expect("docker-compose")
    };
    ok(dc(&["up", "-d"]));
    let ps = ok(dc(&["ps"]));
    assert!(ps.contains(&format!("{p}_app_1")), "{ps}");
    // berth compose sees the project docker-compose made.
    let ours = ok(compose(&d, dir.path(), &["-p", &p, "ps"]));
    assert!(ours.contains("app"), "{ours}");
    ok(dc(&["down"]));
    assert!(ids(&d, &format!("label=com.docker.compose.project={p}")).is_empty());
}
