//! The client against a small fake Engine API on a temporary unix socket: version
//! negotiation, error mapping, JSON message streams split at awkward chunk boundaries, and
//! a hijacked connection carrying bytes both ways.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use berth_client::frame::{encode, Demuxer, StreamKind};
use berth_client::{Client, Error, Host};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn handle(mut req: Request) -> Response {
    let path = req.uri().path().to_string();
    let upgrade = hyper::upgrade::on(&mut req);
    match path.as_str() {
        "/_ping" => {
            let mut r = "OK".into_response();
            r.headers_mut()
                .insert("API-Version", HeaderValue::from_static("1.44"));
            r
        }
        "/v1.44/containers/ghost/json" => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "No such container: ghost"})),
        )
            .into_response(),
        "/v1.44/plain" => (StatusCode::INTERNAL_SERVER_ERROR, "boom\n").into_response(),
        "/v1.44/images/create" => {
            // Messages split mid-object across chunks, and two in one chunk.
            let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
                Ok("{\"status\":\"Pull".into()),
                Ok("ing\"}\n{\"status\":\"a\"}{\"status\":\"b\"}".into()),
                Ok("\n\n{\"errorDetail\":{\"message\":\"x\"},\"error\":\"x\"}\n".into()),
            ];
            Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
        }
        "/v1.44/exec/e1/start" => {
            // Echo what the client writes back as stdout frames until it half-closes.
            tokio::spawn(async move {
                if let Ok(up) = upgrade.await {
                    let mut io = hyper_util::rt::TokioIo::new(up);
                    let mut buf = [0u8; 1024];
                    loop {
                        match io.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let _ = io.write_all(&encode(StreamKind::Stdout, &buf[..n])).await;
                            }
                        }
                    }
                    let _ = io.write_all(&encode(StreamKind::Stderr, b"done")).await;
                    let _ = io.shutdown().await;
                }
            });
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert("Connection", HeaderValue::from_static("Upgrade"));
            r.headers_mut()
                .insert("Upgrade", HeaderValue::from_static("tcp"));
            r.headers_mut().insert(
                "Content-Type",
                HeaderValue::from_static("application/vnd.docker.multiplexed-stream"),
            );
            r
        }
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": format!("page not found: {path}")})),
        )
            .into_response(),
    }
}

async fn fake() -> (tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("d.sock");
    let l = tokio::net::UnixListener::bind(&sock).expect("bind");
    tokio::spawn(async move {
        let _ = axum::serve(l, Router::new().fallback(handle)).await;
    });
    let mut c = Client::new(Host::Unix(sock));
    c.negotiate().await.expect("ping");
    (dir, c)
}

#[tokio::test]
async fn negotiates_down_and_maps_errors() {
    let (_d, c) = fake().await;
    assert_eq!(c.api_version(), "1.44");
    let e = c.container_inspect("ghost", false).await.expect_err("404");
    assert!(e.is_not_found());
    assert_eq!(e.to_string(), "No such container: ghost");
    match c.get_json("/plain").await {
        Err(Error::Api { status, message }) => {
            assert_eq!(status, 500);
            assert_eq!(message, "boom");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn json_stream_reassembles_messages() {
    let (_d, c) = fake().await;
    let mut s = c
        .image_pull("busybox", Some("latest"), None, None)
        .await
        .expect("stream");
    let mut got = Vec::new();
    while let Some(m) = s.next().await {
        got.push(m.expect("valid json"));
    }
    assert_eq!(got.len(), 4);
    assert_eq!(got[0]["status"], "Pulling");
    assert_eq!(got[2]["status"], "b");
    assert_eq!(got[3]["errorDetail"]["message"], "x");
}

#[tokio::test]
async fn hijack_carries_bytes_both_ways() {
    let (_d, c) = fake().await;
    let h = c.exec_start_attached("e1", false).await.expect("upgrade");
    assert_eq!(h.multiplexed, Some(true));
    let (mut rd, mut wr) = tokio::io::split(h.io);
    wr.write_all(b"ping").await.expect("write");
    wr.shutdown().await.expect("half close");
    let mut all = Vec::new();
    rd.read_to_end(&mut all).await.expect("read");
    let mut d = Demuxer::new();
    d.push(&all);
    let mut out = Vec::new();
    let mut err = Vec::new();
    while let Some((k, p)) = d.next_frame().expect("valid frames") {
        match k {
            StreamKind::Stdout => out.extend_from_slice(&p),
            StreamKind::Stderr => err.extend_from_slice(&p),
            _ => {}
        }
    }
    assert_eq!(out, b"ping");
    assert_eq!(err, b"done");
}

#[tokio::test]
async fn unreachable_socket_is_a_connect_error() {
    let mut c = Client::new(Host::Unix("/nonexistent/berth-test.sock".into()));
    let e = c.negotiate().await.expect_err("no daemon");
    assert!(matches!(e, Error::Connect { .. }));
    assert_eq!(
        e.to_string(),
        "Cannot connect to the berth daemon at unix:///nonexistent/berth-test.sock. Is the berth daemon running?"
    );
}

static OLD_DAEMON_HITS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A daemon at API 1.44 that behaves like dockerd: every answer names its version, and a
/// newer version in the path is refused with 400 before anything is done.
async fn old_daemon(req: Request) -> Response {
    OLD_DAEMON_HITS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = req.uri().path().to_string();
    let mut r = if path.starts_with("/v1.50/") {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": "client version 1.50 is too new. Maximum supported API version is 1.44"})),
        )
            .into_response()
    } else if path == "/v1.44/containers/c/exec" {
        let body = axum::body::to_bytes(req.into_body(), 1 << 20)
            .await
            .expect("body");
        let sent: serde_json::Value = serde_json::from_slice(&body).expect("json body");
        (
            StatusCode::CREATED,
            axum::Json(json!({"Id": "e1", "Sent": sent})),
        )
            .into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    };
    r.headers_mut()
        .insert("API-Version", HeaderValue::from_static("1.44"));
    r
}

#[tokio::test]
async fn first_request_negotiates_without_a_ping() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("old.sock");
    let l = tokio::net::UnixListener::bind(&sock).expect("bind");
    tokio::spawn(async move {
        let _ = axum::serve(l, Router::new().fallback(old_daemon)).await;
    });
    let c = Client::new(Host::Unix(sock));
    assert_eq!(c.api_version(), "1.50");
    // Refused at 1.50, repeated at 1.44 with the same body.
    let v = c
        .post_json("/containers/c/exec", Some(&json!({"Cmd": ["true"]})))
        .await
        .expect("created after the retry");
    assert_eq!(v["Sent"]["Cmd"][0], "true");
    assert_eq!(c.api_version(), "1.44");
    assert_eq!(OLD_DAEMON_HITS.load(Ordering::SeqCst), 2);
    // Clones share the negotiated version; no more retries.
    let c2 = c.clone();
    c2.post_json("/containers/c/exec", Some(&json!({"Cmd": ["x"]})))
        .await
        .expect("created");
    assert_eq!(OLD_DAEMON_HITS.load(Ordering::SeqCst), 3);
}
