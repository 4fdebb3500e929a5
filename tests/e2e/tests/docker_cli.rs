//! The real docker CLI against berthd: the flows Docker users run every day.

use berth_e2e::*;

#[test]
fn ping_version_info() {
    let d = Daemon::start();
    let v = d.docker(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.MinAPIVersion}}",
    ]);
    assert!(v.status.success(), "{}", text(&v));
    assert_eq!(stdout(&v).trim(), "1.50 1.24");
    let i = d.docker(&["info", "--format", "{{.OSType}} {{.Driver}}"]);
    assert!(i.status.success(), "{}", text(&i));
    assert_eq!(stdout(&i).trim(), "linux overlay2");
}

#[test]
fn run_echo_and_exit_codes() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let out = d.docker(&["run", "--rm", "busybox", "echo", "hello from berth"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out), "hello from berth\n");
    // The CLI starts the container the moment it reads the attach's 101: an attach the
    // daemon registered only after answering lost this output now and then.
    for i in 0..10 {
        let msg = format!("early output {i}");
        let out = d.docker(&["run", "--rm", "busybox", "echo", &msg]);
        assert_eq!(stdout(&out), format!("{msg}\n"), "{}", text(&out));
    }
    let out = d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = d.docker(&["run", "--rm", "busybox", "/no/such/binary"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    // nothing left behind by --rm
    let ps = d.docker(&["ps", "-aq"]);
    assert_eq!(stdout(&ps).trim(), "", "{}", text(&ps));
}

#[test]
fn lifecycle_detached() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("life");
    let out = d.docker(&["run", "-d", "--name", &name, "busybox", "sleep", "300"]);
    assert!(out.status.success(), "{}", text(&out));
    let id = stdout(&out).trim().to_string();
    assert_eq!(id.len(), 64);
    let st = d.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.Running}}",
        &name,
    ]);
    assert_eq!(stdout(&st).trim(), "running true", "{}", text(&st));
    let out = d.docker(&["pause", &name]);
    assert!(out.status.success(), "{}", text(&out));
    let st = d.docker(&["inspect", "-f", "{{.State.Status}}", &name]);
    assert_eq!(stdout(&st).trim(), "paused");
    let out = d.docker(&["unpause", &name]);
    assert!(out.status.success(), "{}", text(&out));
    // rm of a running container without force is refused with 409
    let out = d.docker(&["rm", &name]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("container is running"),
        "{}",
        text(&out)
    );
    let out = d.docker(&["stop", "-t", "1", &name]);
    assert!(out.status.success(), "{}", text(&out));
    let st = d.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        &name,
    ]);
    // sleep as pid 1 has no SIGTERM handler, so the kernel ignores SIGTERM and the stop
    // timeout ends in SIGKILL: 137, exactly as with dockerd
    assert_eq!(stdout(&st).trim(), "exited 137", "{}", text(&st));
    let out = d.docker(&["start", &name]);
    assert!(out.status.success(), "{}", text(&out));
    let out = d.docker(&["kill", &name]);
    assert!(out.status.success(), "{}", text(&out));
    let st = d.docker(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
    assert_eq!(stdout(&st).trim(), "137");
    let out = d.docker(&["rm", &name]);
    assert!(out.status.success(), "{}", text(&out));
    let out = d.docker(&["inspect", &name]);
    assert!(!out.status.success());
}

#[test]
fn name_conflict_and_unknown_image() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("dup");
    assert!(d
        .docker(&["create", "--name", &name, "busybox", "true"])
        .status
        .success());
    let out = d.docker(&["create", "--name", &name, "busybox", "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is already in use by container"),
        "{}",
        text(&out)
    );
    let out = d.docker(&["create", "nosuchimage-xyz"]);
    assert!(!out.status.success());
}

#[test]
fn logs_and_wait() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("logs");
    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 5",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let w = d.docker(&["wait", &name]);
    assert_eq!(stdout(&w).trim(), "5", "{}", text(&w));
    let l = d.docker(&["logs", &name]);
    assert_eq!(stdout(&l), "out\n");
    assert_eq!(String::from_utf8_lossy(&l.stderr), "err\n");
}

#[test]
fn save_load_tag_rmi() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    assert!(d
        .docker(&["tag", "busybox", "example/bb:v1"])
        .status
        .success());
    let imgs = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let list = stdout(&imgs);
    assert!(
        list.contains("busybox:latest") && list.contains("example/bb:v1"),
        "{list}"
    );
    let tar = d.dir.path().join("save.tar");
    let out = d.docker(&["save", "-o", tar.to_str().expect("utf8"), "example/bb:v1"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = d.docker(&["rmi", "example/bb:v1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("Untagged: example/bb:v1"),
        "{}",
        text(&out)
    );
    let out = d.docker(&["load", "-i", tar.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("Loaded image: example/bb:v1"),
        "{}",
        text(&out)
    );
    // rmi by id of an image a container uses is refused with 409 unless forced
    let name = unique("user");
    assert!(d
        .docker(&["create", "--name", &name, "busybox", "true"])
        .status
        .success());
    let id = stdout(&d.docker(&["image", "inspect", "-f", "{{.Id}}", "busybox"]))
        .trim()
        .to_string();
    let out = d.docker(&["rmi", &id]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("conflict: unable to delete"),
        "{}",
        text(&out)
    );
    // removing one of two tags only untags
    let out = d.docker(&["rmi", "busybox"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).trim(), "Untagged: busybox:latest");
}

#[test]
fn exec_exit_codes_and_missing_binary() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let name = unique("ex");
    assert!(d
        .docker(&["run", "-d", "--name", &name, "busybox", "sleep", "300"])
        .status
        .success());
    for _ in 0..5 {
        assert_eq!(d.docker(&["exec", &name, "false"]).status.code(), Some(1));
    }
    assert_eq!(
        d.docker(&["exec", &name, "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    assert_eq!(
        d.docker(&["exec", "-t", &name, "sh", "-c", "exit 8"])
            .status
            .code(),
        Some(8)
    );
    let out = d.docker(&["exec", &name, "nope"]);
    // dockerd records 126 for any exec that fails to start (checked against dockerd 20.10
    // in dockerd_interop.rs); 127 is `docker run`'s code for a missing binary.
    assert_eq!(out.status.code(), Some(126), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("executable file not found in $PATH")
            || String::from_utf8_lossy(&out.stderr).contains("executable file not found in $PATH"),
        "{}",
        text(&out)
    );
    let out = d.docker(&[
        "exec",
        "-u",
        "app",
        "-w",
        "/tmp",
        "-e",
        "X=y",
        &name,
        "sh",
        "-c",
        "echo $(id -u) $(pwd) $X",
    ]);
    assert_eq!(stdout(&out), "1000 /tmp y\n", "{}", text(&out));
}
