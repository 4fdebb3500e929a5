//! `docker events`: every lifecycle transition is emitted with Docker's Action names, and
//! since/until/filters/format select them like dockerd.

use berth_e2e::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn events(d: &Daemon, since: f64, until: f64, extra: &[&str]) -> Vec<serde_json::Value> {
    let (s, u) = (format!("{since:.3}"), format!("{until:.3}"));
    let mut args = vec![
        "events",
        "--since",
        &s,
        "--until",
        &u,
        "--format",
        "{{json .}}",
    ];
    args.extend_from_slice(extra);
    let out = d.docker(&args);
    assert!(out.status.success(), "{}", text(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("event json"))
        .collect()
}

#[test]
fn every_action_is_emitted_and_filters_select() {
    let d = Daemon::start();
    let t0 = now() - 1.0;
    d.import_busybox("busybox");
    let ok = |args: &[&str]| {
        let o = d.docker(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        o
    };
    ok(&["tag", "busybox", "evtest:1"]);
    ok(&["rmi", "evtest:1"]);
    let tar = d.dir.path().join("s.tar");
    ok(&["save", "-o", tar.to_str().expect("utf8"), "busybox"]);
    ok(&["load", "-i", tar.to_str().expect("utf8")]);
    ok(&[
        "run",
        "-d",
        "--name",
        "ev1",
        "-l",
        "evlabel=yes",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "300",
    ]);
    ok(&["pause", "ev1"]);
    ok(&["unpause", "ev1"]);
    ok(&["exec", "ev1", "true"]);
    ok(&["rename", "ev1", "ev2"]);
    for _ in 0..50 {
        if stdout(&d.docker(&["inspect", "-f", "{{.State.Health.Status}}", "ev2"])).trim()
            == "healthy"
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(&["stop", "-t", "1", "ev2"]);
    ok(&["start", "ev2"]);
    ok(&["kill", "ev2"]);
    ok(&["rm", "ev2"]);
    // an OOM kill: busybox tail keeps reading one endless "line" of zeros into memory
    let o = d.docker(&[
        "run",
        "--name",
        "evoom",
        "-m",
        "8m",
        "--memory-swap",
        "8m",
        "busybox",
        "tail",
        "/dev/zero",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", text(&o));
    let t1 = now() + 1.0;

    let all = events(&d, t0, t1, &[]);
    let actions: Vec<String> = all
        .iter()
        .map(|e| e["Action"].as_str().unwrap_or("").to_string())
        .collect();
    for want in [
        "import", "tag", "untag", "save", "load", "create", "start", "pause", "unpause", "rename",
        "kill", "die", "stop", "destroy", "oom",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "no {want} event in {actions:?}"
        );
    }
    for prefix in [
        "exec_create: true",
        "exec_start: true",
        "exec_die",
        "health_status: healthy",
    ] {
        assert!(
            actions.iter().any(|a| a.starts_with(prefix)),
            "no {prefix} event in {actions:?}"
        );
    }
    let die = all
        .iter()
        .find(|e| e["Action"] == "die" && e["Actor"]["Attributes"]["name"] == "ev2")
        .expect("die of ev2");
    assert!(die["Actor"]["Attributes"]["exitCode"].is_string(), "{die}");
    assert_eq!(die["Type"], "container");
    assert_eq!(die["scope"], "local");
    let rename = all
        .iter()
        .find(|e| e["Action"] == "rename")
        .expect("rename");
    assert_eq!(rename["Actor"]["Attributes"]["oldName"], "/ev1");

    // filters: type, event, label, container
    let dies = events(
        &d,
        t0,
        t1,
        &["--filter", "type=container", "--filter", "event=die"],
    );
    assert!(
        !dies.is_empty() && dies.iter().all(|e| e["Action"] == "die"),
        "{dies:?}"
    );
    let labelled = events(&d, t0, t1, &["--filter", "label=evlabel=yes"]);
    assert!(!labelled.is_empty(), "label filter selected nothing");
    assert!(
        labelled
            .iter()
            .all(|e| e["Actor"]["Attributes"]["evlabel"] == "yes"),
        "{labelled:?}"
    );
    let images = events(&d, t0, t1, &["--filter", "type=image"]);
    assert!(
        images.iter().all(|e| e["Type"] == "image") && images.len() >= 4,
        "{images:?}"
    );
    // until in the past returns only what happened before it
    let none = events(&d, t0 - 100.0, t0 - 50.0, &[]);
    assert!(none.is_empty(), "{none:?}");
    // plain text format like docker's
    let (s, u) = (format!("{t0:.3}"), format!("{t1:.3}"));
    let o = d.docker(&[
        "events",
        "--since",
        &s,
        "--until",
        &u,
        "--filter",
        "event=destroy",
    ]);
    let line = stdout(&o);
    assert!(
        line.contains(" container destroy ") && line.contains("name=ev2"),
        "{line}"
    );
}
