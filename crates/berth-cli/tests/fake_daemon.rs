//! Integration tests of the `berth` binary against a fake Engine API server on a temporary
//! unix socket. The fake answers like dockerd for the handful of endpoints each test needs
//! and records every request, so the tests check both what berth prints and exits with and
//! what it sent.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

#[derive(Default)]
struct Fake {
    /// (method, path with query, body) of every request.
    log: Vec<(String, String, Value)>,
    pulled: bool,
}

type Shared = Arc<Mutex<Fake>>;

const ID: &str = "4f1e9c2b7a3d5e6f00112233445566778899aabbccddeeff0011223344556677";

fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![stream, 0, 0, 0];
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn five_hours_ago() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after epoch")
        .as_secs() as i64;
    now - 5 * 3600
}

fn err(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "message": msg }))).into_response()
}

fn inspect_obj() -> Value {
    json!({
        "Id": ID, "Name": "/web", "Created": "2024-01-02T03:04:05Z",
        "State": {"Status": "running", "Running": true, "Pid": 4242, "ExitCode": 0},
        "Config": {"Image": "busybox", "Tty": false, "OpenStdin": false,
                   "Labels": {"com.example.tier": "front"}, "Env": ["A=1"]},
        "HostConfig": {"Memory": 536870912},
        "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}}
    })
}

/// dockerd's version middleware: every answer names the daemon's API version (1.47), and a
/// newer version in the path is refused with 400 before the request is handled (or logged).
async fn handle(state: State<Shared>, req: Request) -> Response {
    let too_new = req
        .uri()
        .path()
        .strip_prefix("/v")
        .and_then(|r| r.split('/').next())
        .and_then(|v| v.split_once('.'))
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .is_some_and(|v| v > (1, 47));
    let mut r = if too_new {
        err(
            StatusCode::BAD_REQUEST,
            "client version is too new. Maximum supported API version is 1.47",
        )
    } else {
        route(state, req).await
    };
    r.headers_mut()
        .insert("API-Version", HeaderValue::from_static("1.47"));
    r
}

async fn route(State(s): State<Shared>, mut req: Request) -> Response {
    let method = req.method().clone();
    let full = req.uri().to_string();
    let path = req.uri().path().to_string();
    // Strip the version prefix the way berthd does, once.
    let path = match path.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            rest[rest.find('/').unwrap_or(rest.len())..].to_string()
        }
        _ => path,
    };
    let query = req.uri().query().unwrap_or("").to_string();
    let upgrade = hyper::upgrade::on(&mut req);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.lock().expect("fake state lock").log.push((
        method.to_string(),
        full.clone(),
        body_json.clone(),
    ));
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.clone(), seg.as_slice()) {
        (_, ["_ping"]) => {
            let mut r = "OK".into_response();
            r.headers_mut()
                .insert("API-Version", HeaderValue::from_static("1.47"));
            r
        }
        (Method::POST, ["containers", "create"]) => {
            let image = body_json["Image"].as_str().unwrap_or_default().to_string();
            if image == "missing" && !s.lock().expect("fake state lock").pulled {
                return err(StatusCode::NOT_FOUND, "No such image: missing:latest");
            }
            if image == "nope" {
                return err(StatusCode::NOT_FOUND, "No such image: nope:latest");
            }
            let id = if image == "noexec" { "noexec" } else { ID };
            (
                StatusCode::CREATED,
                axum::Json(json!({"Id": id, "Warnings": []})),
            )
                .into_response()
        }
        (Method::POST, ["images", "create"]) => {
            if query.contains("fromImage=nope") {
                let body = "{\"status\":\"Pulling repository\"}\n{\"errorDetail\":{\"message\":\"pull access denied for nope\"},\"error\":\"pull access denied for nope\"}\n";
                return (StatusCode::OK, body).into_response();
            }
            s.lock().expect("fake state lock").pulled = true;
            let body = "{\"status\":\"Pulling from library/missing\",\"id\":\"latest\"}\n{\"status\":\"Downloading\",\"progressDetail\":{\"current\":1,\"total\":2},\"id\":\"aaa\"}\n{\"status\":\"Digest: sha256:00\"}\n{\"status\":\"Status: Downloaded newer image for missing:latest\"}\n";
            (StatusCode::OK, body).into_response()
        }
        (Method::POST, ["containers", _, "attach"]) => {
            tokio::spawn(async move {
                if let Ok(up) = upgrade.await {
                    let mut io = hyper_util::rt::TokioIo::new(up);
                    let _ = io.write_all(&frame(1, b"hello from stdout\n")).await;
                    let _ = io.write_all(&frame(2, b"oops on stderr\n")).await;
                    let _ = io.shutdown().await;
                }
            });
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = r.headers_mut();
            h.insert("Connection", HeaderValue::from_static("Upgrade"));
            h.insert("Upgrade", HeaderValue::from_static("tcp"));
            h.insert(
                "Content-Type",
                HeaderValue::from_static("application/vnd.docker.multiplexed-stream"),
            );
            r
        }
        (Method::POST, ["containers", _, "wait"]) => {
            axum::Json(json!({"StatusCode": 3})).into_response()
        }
        (Method::POST, ["containers", "noexec", "start"]) => err(
            StatusCode::BAD_REQUEST,
            "failed to create task: exec: \"nope\": executable file not found in $PATH",
        ),
        (Method::POST, ["containers", _, "start"]) => StatusCode::NO_CONTENT.into_response(),
        (Method::GET, ["containers", "json"]) => axum::Json(json!([{
            "Id": ID, "Names": ["/web"], "Image": "busybox", "Command": "httpd -f -h /srv",
            "Created": five_hours_ago(), "State": "running", "Status": "Up 3 seconds",
            "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
            "Labels": {}, "Mounts": []
        }]))
        .into_response(),
        (Method::GET, ["images", "json"]) => axum::Json(json!([{
            "Id": "sha256:ab12cd34ef567890aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "RepoTags": ["busybox:latest"], "Created": five_hours_ago(), "Size": 4_261_000,
            "Containers": -1
        }]))
        .into_response(),
        (Method::GET, ["containers", name, "json"]) => {
            if *name == "web" || *name == ID {
                axum::Json(inspect_obj()).into_response()
            } else {
                err(StatusCode::NOT_FOUND, &format!("No such container: {name}"))
            }
        }
        (Method::GET, ["images", name, "json"]) => {
            err(StatusCode::NOT_FOUND, &format!("No such image: {name}"))
        }
        (Method::GET, ["networks", name]) => {
            err(StatusCode::NOT_FOUND, &format!("network {name} not found"))
        }
        (Method::GET, ["volumes", name]) => err(
            StatusCode::NOT_FOUND,
            &format!("get {name}: no such volume"),
        ),
        (Method::DELETE, ["containers", name]) => {
            if *name == "web" {
                StatusCode::NO_CONTENT.into_response()
            } else {
                err(StatusCode::NOT_FOUND, &format!("No such container: {name}"))
            }
        }
        _ => err(
            StatusCode::NOT_FOUND,
            &format!("page not found: {method} {path}"),
        ),
    }
}

struct Daemon {
    _dir: tempfile::TempDir,
    sock: PathBuf,
    state: Shared,
    _thread: std::thread::JoinHandle<()>,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("fake.sock");
        let state: Shared = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let (sock2, state2) = (sock.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let l = tokio::net::UnixListener::bind(&sock2).expect("bind fake socket");
                tx.send(()).expect("signal ready");
                let app = Router::new().fallback(handle).with_state(state2);
                let _ = axum::serve(l, app).await;
            });
        });
        rx.recv().expect("fake daemon ready");
        Daemon {
            _dir: dir,
            sock,
            state,
            _thread: thread,
        }
    }

    fn berth(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .env("BERTH_HOST", format!("unix://{}", self.sock.display()))
            .env_remove("DOCKER_HOST")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run berth")
    }

    fn requests(&self) -> Vec<(String, String, Value)> {
        self.state.lock().expect("fake state lock").log.clone()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn run_attaches_streams_and_exits_with_container_status() {
    let d = Daemon::start();
    let o = d.berth(&[
        "run", "--rm", "-e", "A=1", "--cpus", "1.5", "busybox", "echo", "hi",
    ]);
    assert_eq!(text(&o.stdout), "hello from stdout\n");
    assert_eq!(text(&o.stderr), "oops on stderr\n");
    assert_eq!(o.status.code(), Some(3));
    let reqs = d.requests();
    // No `_ping` first: the refused /v1.50 create taught the client the daemon's version,
    // and everything it logged (handled) is at 1.47, the create first.
    assert!(
        reqs[0].1.starts_with("/v1.47/containers/create"),
        "{reqs:?}"
    );
    assert!(
        reqs.iter().all(|(_, p, _)| p.starts_with("/v1.47/")),
        "{reqs:?}"
    );
    let create = reqs
        .iter()
        .find(|(_, p, _)| p.contains("/containers/create"))
        .expect("create sent");
    assert_eq!(create.2["Cmd"], json!(["echo", "hi"]));
    assert_eq!(create.2["HostConfig"]["NanoCpus"], 1_500_000_000i64);
    assert_eq!(create.2["HostConfig"]["AutoRemove"], true);
    // attach and wait both come before start.
    let pos = |needle: &str| {
        reqs.iter()
            .position(|(_, p, _)| p.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not sent: {reqs:?}"))
    };
    assert!(pos("/attach") < pos("/start"));
    assert!(pos("/wait?condition=removed") < pos("/start"));
}

#[test]
fn run_pulls_missing_image_then_retries_create() {
    let d = Daemon::start();
    let o = d.berth(&["run", "-d", "missing"]);
    let err = text(&o.stderr);
    assert!(
        err.starts_with("Unable to find image 'missing:latest' locally\n"),
        "{err}"
    );
    assert!(
        err.contains("latest: Pulling from library/missing\n"),
        "{err}"
    );
    assert!(!err.contains("Downloading"), "{err}");
    assert_eq!(text(&o.stdout), format!("{ID}\n"));
    assert_eq!(o.status.code(), Some(0));
    let creates = d
        .requests()
        .iter()
        .filter(|(_, p, _)| p.contains("/containers/create"))
        .count();
    assert_eq!(creates, 2);
}

#[test]
fn run_pull_failure_exits_125_with_docker_message() {
    let d = Daemon::start();
    let o = d.berth(&["run", "nope"]);
    assert_eq!(o.status.code(), Some(125));
    let err = text(&o.stderr);
    assert!(
        err.contains(
            "berth: pull access denied for nope\n\nRun 'berth run --help' for more information"
        ),
        "{err}"
    );
}

#[test]
fn run_start_failure_maps_missing_executable_to_127() {
    let d = Daemon::start();
    let o = d.berth(&["run", "noexec"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(
        text(&o.stderr).starts_with("berth: Error response from daemon: failed to create task: exec: \"nope\": executable file not found in $PATH"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn ps_prints_docker_table() {
    let d = Daemon::start();
    let o = d.berth(&["ps"]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("CONTAINER ID   IMAGE     COMMAND              CREATED       STATUS         PORTS                  NAMES")
    );
    let row = lines.next().expect("one row");
    assert_eq!(
        row,
        "4f1e9c2b7a3d   busybox   \"httpd -f -h /srv\"   5 hours ago   Up 3 seconds   0.0.0.0:8080->80/tcp   web"
    );
    let q = d.berth(&["ps", "-q", "--no-trunc"]);
    assert_eq!(text(&q.stdout), format!("{ID}\n"));
    let f = d.berth(&["ps", "--format", "{{.Names}}\\t{{.Status}}"]);
    assert_eq!(text(&f.stdout), "web\tUp 3 seconds\n");
    let reqs = d.requests();
    assert!(
        reqs.iter()
            .any(|(_, p, _)| p.ends_with("/containers/json?all=0")),
        "{reqs:?}"
    );
}

#[test]
fn images_prints_docker_table() {
    let d = Daemon::start();
    let o = d.berth(&["images"]);
    let out = text(&o.stdout);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("REPOSITORY   TAG       IMAGE ID       CREATED       SIZE")
    );
    let row = lines.next().expect("one row");
    assert_eq!(
        row,
        "busybox      latest    ab12cd34ef56   5 hours ago   4.26MB"
    );
}

#[test]
fn inspect_format_and_raw_json() {
    let d = Daemon::start();
    let o = d.berth(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}} {{index .Config.Labels \"com.example.tier\"}} {{.HostConfig.Memory}}", "web"]);
    assert_eq!(text(&o.stdout), "running 4242 front 536870912\n");
    let o = d.berth(&["inspect", "--format", "{{json .Config.Env}}", "web"]);
    assert_eq!(text(&o.stdout), "[\"A=1\"]\n");
    let o = d.berth(&["container", "inspect", "web"]);
    let out = text(&o.stdout);
    assert!(out.starts_with("[\n    {\n        \""), "{out}");
    assert!(
        out.contains(&format!("\n        \"Id\": \"{ID}\",\n")),
        "{out}"
    );
    assert!(out.ends_with("\n    }\n]\n"), "{out}");
    let v: Value = serde_json::from_str(&out).expect("valid json");
    assert_eq!(v[0]["Name"], "/web");
}

#[test]
fn inspect_unknown_object_prints_empty_array_and_error() {
    let d = Daemon::start();
    let o = d.berth(&["inspect", "ghost"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "[]\n");
    assert_eq!(text(&o.stderr), "Error: No such object: ghost\n");
}

#[test]
fn rm_reports_each_name_and_fails_for_missing() {
    let d = Daemon::start();
    let o = d.berth(&["rm", "web", "ghost"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "web\n");
    assert_eq!(
        text(&o.stderr),
        "Error response from daemon: No such container: ghost\n"
    );
    // With -f a missing container is reported but is not a failure (docker 28).
    let o = d.berth(&["rm", "-f", "web", "ghost"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stdout), "web\n");
    assert_eq!(
        text(&o.stderr),
        "Error response from daemon: No such container: ghost\n"
    );
    assert!(d
        .requests()
        .iter()
        .any(|(m, p, _)| m == "DELETE" && p.ends_with("/containers/web?force=1&v=0")));
}

#[test]
fn usage_errors_match_docker_exit_codes() {
    let d = Daemon::start();
    assert_eq!(d.berth(&["ps", "--bogus"]).status.code(), Some(125));
    assert_eq!(d.berth(&["run"]).status.code(), Some(1));
    let o = d.berth(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("unknown command: berth frobnicate"));
    let o = d.berth(&["run", "--ulimit", "x", "busybox"]);
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(
        text(&o.stderr),
        "invalid argument \"x\" for \"--ulimit\" flag: invalid ulimit argument: x\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'berth run --help' for more information\n"
    );
    let o = d.berth(&["run", "--rm", "--restart", "always", "busybox"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(text(&o.stderr)
        .starts_with("berth: conflicting options: cannot specify both --restart and --rm\n"));
    // Bad flags are rejected before any request reaches the daemon.
    assert!(d
        .requests()
        .iter()
        .all(|(_, p, _)| !p.contains("/containers/create")));
}

#[test]
fn host_flag_overrides_environment() {
    let d = Daemon::start();
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["-H", &format!("unix://{}", d.sock.display()), "ps", "-q"])
        .env("BERTH_HOST", "unix:///nonexistent/berth.sock")
        .output()
        .expect("run berth");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "4f1e9c2b7a3d\n");
    let _ = Path::new(&d.sock);
}

#[test]
fn unreachable_daemon_message() {
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["ps"])
        .env("BERTH_HOST", "unix:///nonexistent/berth.sock")
        .output()
        .expect("run berth");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is the berth daemon running?\n"
    );
}
