//! Engine API details that docker-py's integration tests depend on, pinned here so they
//! stay fixed without a docker-py checkout: exec output framing by the start request's
//! `Tty`, `--group-add`, legacy links (environment, `DELETE ...?link=1`, aliases on user
//! networks), IPAM options and auxiliary addresses, the `none` log driver, commit of a
//! container whose process just ended, `null` JSON members, and image load errors.

use berth_e2e::*;

/// One request over the daemon's socket: (status, raw body).
fn curl(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    let sock = d.socket.to_string_lossy().into_owned();
    let mut args = vec![
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "--unix-socket",
        &sock,
        "-X",
        method,
    ];
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let url = format!("http://localhost{path}");
    args.push(&url);
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .expect("run curl");
    let pos = out
        .stdout
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("status line");
    let code = String::from_utf8_lossy(&out.stdout[pos + 1..])
        .trim()
        .parse()
        .expect("http code");
    (code, out.stdout[..pos].to_vec())
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(body));
    })
}

fn run_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    assert!(out.status.success(), "docker {args:?}: {}", text(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn exec_output_is_framed_by_the_start_requests_tty() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let id = run_ok(&d, &["run", "-d", "-i", "busybox", "cat"]);

    // A TTY exec started with Tty=false (docker-py's default) comes back multiplexed.
    let (code, body) = curl(
        &d,
        "POST",
        &format!("/containers/{id}/exec"),
        Some(r#"{"Cmd":["printf","yay"],"Tty":true,"AttachStdout":true,"AttachStderr":true}"#),
    );
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let exec = json(&body)["Id"].as_str().expect("exec id").to_string();
    let (code, out) = curl(
        &d,
        "POST",
        &format!("/exec/{exec}/start"),
        Some(r#"{"Tty":false,"Detach":false}"#),
    );
    assert_eq!(code, 200);
    assert_eq!(out, b"\x01\x00\x00\x00\x00\x00\x00\x03yay", "{out:?}");

    // And the reverse: a pipe exec started with Tty=true comes back raw.
    let (_, body) = curl(
        &d,
        "POST",
        &format!("/containers/{id}/exec"),
        Some(
            r#"{"Cmd":["sh","-c","printf out; printf err >&2"],"AttachStdout":true,"AttachStderr":true}"#,
        ),
    );
    let exec = json(&body)["Id"].as_str().expect("exec id").to_string();
    let (code, out) = curl(
        &d,
        "POST",
        &format!("/exec/{exec}/start"),
        Some(r#"{"Tty":true}"#),
    );
    assert_eq!(code, 200);
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.contains("out") && out.contains("err") && !out.contains('\u{1}'),
        "{out:?}"
    );
}

#[test]
fn group_add_and_log_driver_none() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let groups = run_ok(
        &d,
        &[
            "run",
            "--rm",
            "--group-add",
            "1000",
            "--group-add",
            "root",
            "busybox",
            "id",
            "-G",
        ],
    );
    let groups: Vec<&str> = groups.split_whitespace().collect();
    assert!(
        groups.contains(&"1000") && groups.contains(&"0"),
        "{groups:?}"
    );
    let bad = d.docker(&[
        "run",
        "--rm",
        "--group-add",
        "nosuchgroup",
        "busybox",
        "true",
    ]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("nosuchgroup"), "{}", text(&bad));

    let id = run_ok(
        &d,
        &["run", "-d", "--log-driver", "none", "busybox", "echo", "hi"],
    );
    assert_eq!(run_ok(&d, &["wait", &id]), "0");
}

#[test]
fn legacy_links_env_and_link_removal() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let target = unique("tgt");
    let parent = unique("par");
    run_ok(
        &d,
        &[
            "run", "-d", "--name", &target, "-e", "FOO=1", "--expose", "5432", "busybox", "sleep",
            "60",
        ],
    );
    let env = run_ok(
        &d,
        &[
            "run",
            "--name",
            &parent,
            "--link",
            &format!("{target}:my-db"),
            "busybox",
            "env",
        ],
    );
    assert!(
        env.contains(&format!("MY_DB_NAME=/{parent}/my-db")),
        "{env}"
    );
    assert!(env.contains("MY_DB_ENV_FOO=1"), "{env}");
    assert!(env.contains("MY_DB_PORT_5432_TCP_PORT=5432"), "{env}");
    assert!(!env.contains("MY_DB_ENV_PATH="), "{env}");

    let (code, body) = curl(
        &d,
        "DELETE",
        &format!("/containers/{parent}/my-db?link=1"),
        None,
    );
    assert_eq!(code, 204, "{}", String::from_utf8_lossy(&body));
    let (_, body) = curl(&d, "GET", &format!("/containers/{parent}/json"), None);
    let links = &json(&body)["HostConfig"]["Links"];
    assert!(links.as_array().is_none_or(|l| l.is_empty()), "{links}");
    let (code, _) = curl(
        &d,
        "DELETE",
        &format!("/containers/{parent}/my-db?link=1"),
        None,
    );
    assert_eq!(code, 404);
    let (code, _) = curl(&d, "DELETE", &format!("/containers/{parent}?link=1"), None);
    assert_eq!(code, 409);
    // Both containers are still there.
    assert_eq!(run_ok(&d, &["ps", "-aq"]).lines().count(), 2);
}

#[test]
fn link_alias_on_a_user_network_resolves_in_the_linking_container() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let net = unique("lnk");
    let up = unique("up");
    run_ok(&d, &["network", "create", &net]);
    let c = run_ok(
        &d,
        &[
            "run",
            "-d",
            "--network",
            &net,
            "--link",
            &format!("{up}:bar"),
            "busybox",
            "sleep",
            "60",
        ],
    );
    run_ok(
        &d,
        &[
            "run",
            "-d",
            "--network",
            &net,
            "--name",
            &up,
            "busybox",
            "sleep",
            "60",
        ],
    );
    let out = d.docker(&["exec", &c, "nslookup", "bar"]);
    assert!(out.status.success(), "{}", text(&out));
    // The alias is the linking container's own: another container does not resolve it.
    let other = run_ok(
        &d,
        &["run", "-d", "--network", &net, "busybox", "sleep", "60"],
    );
    let out = d.docker(&["exec", &other, "nslookup", "bar"]);
    assert!(!out.status.success(), "{}", text(&out));
    run_ok(&d, &["rm", "-f", &c, &up, &other]);
    run_ok(&d, &["network", "rm", &net]);
}

#[test]
fn network_ipam_options_aux_addresses_and_null_members() {
    let d = Daemon::start();
    let name = unique("ipam");
    // docker-py sends unset pool fields as null; Go reads null as absent.
    let body = format!(
        r#"{{"Name":"{name}","Driver":"bridge","IPAM":{{"Driver":"default","Options":null,
        "Config":[{{"Subnet":"10.231.0.0/16","IPRange":null,"Gateway":"10.231.5.254",
        "AuxiliaryAddresses":{{"a":"10.231.1.5"}}}}]}},"Labels":null}}"#
    );
    let (code, out) = curl(&d, "POST", "/networks/create", Some(&body));
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&out));
    let (_, out) = curl(&d, "GET", &format!("/networks/{name}"), None);
    let ipam = json(&out)["IPAM"].clone();
    assert!(ipam["Options"].is_null(), "{ipam}");
    assert_eq!(
        ipam["Config"][0]["AuxiliaryAddresses"]["a"], "10.231.1.5",
        "{ipam}"
    );
    assert_eq!(ipam["Config"][0]["Gateway"], "10.231.5.254", "{ipam}");
    let (code, _) = curl(&d, "DELETE", &format!("/networks/{name}"), None);
    assert_eq!(code, 204);

    // The CLI's `--aux-address` reaches the same place and the address is never handed out.
    let cli = unique("aux");
    run_ok(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            "10.232.0.0/29",
            "--aux-address",
            "r=10.232.0.2",
            &cli,
        ],
    );
    let (_, out) = curl(&d, "GET", &format!("/networks/{cli}"), None);
    assert_eq!(json(&out)["IPAM"]["Options"], serde_json::json!({}));
    d.import_busybox("busybox");
    let c = run_ok(
        &d,
        &["run", "-d", "--network", &cli, "busybox", "sleep", "60"],
    );
    let ip = run_ok(
        &d,
        &[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{cli}\").IPAddress}}}}"),
            &c,
        ],
    );
    assert_eq!(ip, "10.232.0.3");
    run_ok(&d, &["rm", "-f", &c]);
    run_ok(&d, &["network", "rm", &cli]);
}

#[test]
fn commit_pauses_only_a_live_process_and_load_errors_stream() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    // Commit right after start: the process may already be gone, which is not an error.
    for _ in 0..3 {
        let id = run_ok(&d, &["create", "busybox", "touch", "/test"]);
        run_ok(&d, &["start", &id]);
        let (code, out) = curl(
            &d,
            "POST",
            &format!("/commit?container={id}&pause=1"),
            Some("{}"),
        );
        assert_eq!(code, 201, "{}", String::from_utf8_lossy(&out));
        let image = json(&out)["Id"].as_str().expect("image id").to_string();
        run_ok(&d, &["rm", "-f", &id]);
        run_ok(&d, &["rmi", &image]);
    }

    let (code, out) = curl(&d, "POST", "/images/load", Some("abc"));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&out));
    let msg = json(&out);
    assert!(msg["errorDetail"]["message"].is_string(), "{msg}");
    assert_eq!(msg["error"], msg["errorDetail"]["message"]);
}

#[test]
fn exec_detach_keys_end_the_attach_but_not_the_exec() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let id = run_ok(&d, &["run", "-d", "-i", "busybox", "cat"]);
    // docker-py spells the key `detachKeys`; Go's decoder matches it to DetachKeys.
    let (code, body) = curl(
        &d,
        "POST",
        &format!("/containers/{id}/exec"),
        Some(
            r#"{"Cmd":["cat"],"Tty":true,"AttachStdin":true,"AttachStdout":true,"detachKeys":"ctrl-x"}"#,
        ),
    );
    assert_eq!(code, 201);
    let exec = json(&body)["Id"].as_str().expect("exec id").to_string();
    // The hijacked start: send ctrl-x and expect the server to close the connection.
    let script = format!(
        "import socket,time\n\
         s=socket.socket(socket.AF_UNIX); s.connect({sock:?})\n\
         b=b'{{\"Tty\":true}}'\n\
         s.sendall(b'POST /exec/{exec}/start HTTP/1.1\\r\\nHost: x\\r\\nConnection: Upgrade\\r\\nUpgrade: tcp\\r\\nContent-Type: application/json\\r\\nContent-Length: '+str(len(b)).encode()+b'\\r\\n\\r\\n'+b)\n\
         time.sleep(0.5); s.sendall(b'\\x18'); s.settimeout(5)\n\
         data=b''\n\
         while True:\n    c=s.recv(4096)\n    if not c: break\n    data+=c\n\
         print('closed', b'101' in data)\n",
        sock = d.socket.to_string_lossy(),
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("run python3");
    assert_eq!(stdout(&out).trim(), "closed True", "{}", text(&out));
    let (_, body) = curl(&d, "GET", &format!("/exec/{exec}/json"), None);
    assert_eq!(
        json(&body)["Running"],
        true,
        "detach must leave the exec running"
    );
    run_ok(&d, &["rm", "-f", &id]);
}

#[test]
fn classic_build_details_docker_py_relies_on() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let ctx = tempfile::tempdir().expect("context dir");
    let df = "FROM busybox\n\
              COPY . /ctx\n\
              RUN test ! -e /ctx/Dockerfile && test ! -e /ctx/.dockerignore && test -e /ctx/kept\n\
              RUN grep -q 'extra.test' /etc/hosts\n\
              RUN sh -c 'echo to-stderr >&2'\n";
    std::fs::write(ctx.path().join("Dockerfile"), df).expect("write Dockerfile");
    std::fs::write(
        ctx.path().join(".dockerignore"),
        "Dockerfile\n.dockerignore\n",
    )
    .expect("write .dockerignore");
    std::fs::write(ctx.path().join("kept"), "x").expect("write kept");
    let dir = ctx.path().to_str().expect("utf8");
    let tag = unique("fid");
    let out = run_ok(
        &d,
        &[
            "build",
            "--add-host",
            "extra.test:10.1.2.3",
            "-t",
            &tag,
            dir,
        ],
    );
    assert!(out.contains("\u{1b}[91mto-stderr\n\u{1b}[0m"), "{out}");

    // Without --cache-from the steps hit the cache; with only an unknown image they do not.
    let again = run_ok(&d, &["build", "--add-host", "extra.test:10.1.2.3", dir]);
    assert!(again.contains("Using cache"), "{again}");
    let cold = run_ok(
        &d,
        &[
            "build",
            "--add-host",
            "extra.test:10.1.2.3",
            "--cache-from",
            "nosuchimage",
            dir,
        ],
    );
    assert!(!cold.contains("Using cache"), "{cold}");
    let warm = run_ok(
        &d,
        &[
            "build",
            "--add-host",
            "extra.test:10.1.2.3",
            "--cache-from",
            &tag,
            dir,
        ],
    );
    assert!(warm.contains("Using cache"), "{warm}");
}
