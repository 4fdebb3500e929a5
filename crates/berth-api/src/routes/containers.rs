//! `/containers/...` routes.

use crate::error::{ApiError, ApiResult};
use crate::query::Q;
use crate::stream::body_from_channel;
use crate::{empty, ApiVersion};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_engine::container::attach::AttachOptions;
use berth_engine::container::list::ListOptions;
use berth_engine::container::logs::LogOptions;
use berth_engine::container::wait::WaitCondition;
use berth_engine::filters::Filters;
use berth_engine::models::{CreateBody, UpdateBody};
use berth_engine::Engine;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Decodes a JSON body, naming the offending field on error.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("invalid JSON: body is empty"));
    }
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    strip_nulls(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("invalid JSON: {}", e.inner()))
        } else {
            ApiError::bad_request(format!("invalid JSON: field {path}: {}", e.inner()))
        }
    })
}

/// Drops `null` members of objects. Go's decoder leaves a field at its zero value for
/// `null`, as if it were absent (docker-py sends `"IPRange": null`, `"Cmd": null`, ...);
/// serde would reject a null for a non-`Option` field, so remove them before decoding.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, m| !m.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

pub async fn create(State(e): State<Engine>, q: Q, body: Bytes) -> ApiResult<Response> {
    let body: CreateBody = decode(&body)?;
    let r = e.create_container(q.get("name"), body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": r.id, "Warnings": r.warnings})),
    )
        .into_response())
}

pub async fn list(State(e): State<Engine>, q: Q) -> ApiResult<Json<Vec<Value>>> {
    let limit = q.int("limit")?.filter(|n| *n > 0).map(|n| n as usize);
    let opts = ListOptions {
        all: q.bool("all"),
        limit,
        size: q.bool("size"),
        filters: Filters::parse(q.get("filters"))?,
    };
    Ok(Json(e.list_containers(opts).await?))
}

pub async fn inspect(
    State(e): State<Engine>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult<Json<Value>> {
    Ok(Json(e.inspect_container(&id, q.bool("size")).await?))
}

pub async fn start(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<Response> {
    e.start_container(&id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn stop_timeout(q: &Q) -> ApiResult<Option<i64>> {
    match q.int("t")? {
        Some(t) => Ok(Some(t)),
        None => q.int("timeout"),
    }
}

pub async fn stop(State(e): State<Engine>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    e.stop_container(&id, q.get("signal"), stop_timeout(&q)?)
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn restart(State(e): State<Engine>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    e.restart_container(&id, q.get("signal"), stop_timeout(&q)?)
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn kill(State(e): State<Engine>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    e.kill_container(&id, q.get("signal")).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn pause(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<Response> {
    e.pause_container(&id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn unpause(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<Response> {
    e.unpause_container(&id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `wait` answers 200 at once and sends the body when the condition holds, so clients see
/// the wait is registered before they start the container (what `docker run` relies on).
pub async fn wait(State(e): State<Engine>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    let cond = WaitCondition::parse(q.get("condition"))?;
    e.lookup(&id)?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let engine = e.clone();
    tokio::spawn(async move {
        let body = match engine.wait_container(&id, cond).await {
            Ok(code) => json!({"StatusCode": code, "Error": null}),
            Err(err) => json!({"StatusCode": -1, "Error": {"Message": err.to_string()}}),
        };
        let _ = tx.send(crate::stream::json_line(&body)).await;
    });
    let mut resp = body_from_channel(rx).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

pub async fn remove(State(e): State<Engine>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    if q.bool("link") {
        // A link is named `/parent/alias` (routes::links); a bare name is not one.
        return Err(berth_engine::Error::Conflict(
            "Conflict, cannot remove the default link name of the container".into(),
        )
        .into());
    }
    e.remove_container(&id, q.bool("force"), q.bool("v"))
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn rename(State(e): State<Engine>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    e.rename_container(&id, q.get("name").unwrap_or("")).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn update(
    State(e): State<Engine>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let u: UpdateBody = decode(&body)?;
    let warnings = e.update_container(&id, u).await?;
    Ok(Json(json!({"Warnings": warnings})))
}

pub async fn resize(State(e): State<Engine>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    let h = q.int("h")?.unwrap_or(0);
    let w = q.int("w")?.unwrap_or(0);
    if !(0..=u16::MAX as i64).contains(&h) || !(0..=u16::MAX as i64).contains(&w) {
        return Err(ApiError::bad_request(
            "invalid resize: h and w must be between 0 and 65535",
        ));
    }
    e.resize_container(&id, h as u16, w as u16).await?;
    Ok(empty(StatusCode::OK))
}

fn stream_content_type(tty: bool) -> HeaderValue {
    HeaderValue::from_static(if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    })
}

/// Sent by berth's CLI on `logs`: it takes frames holding several lines (see
/// `berth_engine::container::logs`); other clients get one frame per line, as from dockerd.
const MERGE_FRAMES_HEADER: &str = "x-berth-merge-frames";

pub async fn logs(
    State(e): State<Engine>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Q,
) -> ApiResult<Response> {
    let opts = LogOptions {
        follow: q.bool("follow"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        since: q
            .get("since")
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0),
        until: q
            .get("until")
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0),
        timestamps: q.bool("timestamps"),
        tail: q.get("tail").and_then(|t| t.parse::<usize>().ok()),
        details: q.bool("details"),
        merge_frames: headers
            .get(MERGE_FRAMES_HEADER)
            .is_some_and(|v| v.as_bytes() == b"1"),
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let (tty, rx) = e.logs(&id, opts).await?;
    let mut resp = body_from_channel(rx).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, stream_content_type(tty));
    Ok(resp)
}

/// Hijacked attach: answer 101 and splice the connection to the shim's stream.
pub async fn attach(
    State(e): State<Engine>,
    Path(id): Path<String>,
    Extension(_v): Extension<ApiVersion>,
    q: Q,
    mut req: Request,
) -> ApiResult<Response> {
    let tty = e.attach_precheck(&id)?;
    let detach_keys = parse_detach_keys(q.get("detachKeys").unwrap_or(""))?;
    let opts_stdin = q.bool("stdin");
    let opts = AttachOptions {
        stdin: q.bool("stdin"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        logs: q.bool("logs"),
        stream: q.bool("stream"),
    };
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.to_str().is_ok_and(|s| s.eq_ignore_ascii_case("tcp")));
    if !wants_upgrade {
        // No hijack requested: stream output as a plain body (no stdin possible).
        let a = e
            .attach_container(
                &id,
                AttachOptions {
                    stdin: false,
                    ..opts
                },
            )
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            for r in a.replay {
                if tx.send(r).await.is_err() {
                    return;
                }
            }
            if let Some(mut s) = a.stream {
                let mut buf = vec![0u8; 32 * 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut resp = body_from_channel(rx).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, stream_content_type(tty));
        return Ok(resp);
    }
    // Registered before the 101: the client may call start the moment it reads it.
    let prepared = e.attach_prepare(&id, opts).await?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(err) => {
                tracing::debug!("attach upgrade failed: {err}");
                return;
            }
        };
        let mut client = TokioIo::new(upgraded);
        let attached = match prepared.connect(&e).await {
            Ok(a) => a,
            Err(err) => {
                let msg = format!("{err}\n");
                let _ = client
                    .write_all(&berth_engine::container::logs::frame(3, msg.as_bytes()))
                    .await;
                let _ = client.shutdown().await;
                return;
            }
        };
        for r in &attached.replay {
            if client.write_all(r).await.is_err() {
                return;
            }
        }
        match attached.stream {
            Some(stream) => {
                // moby watches for the detach keys on TTY attaches only; on a non-TTY stream
                // they are ordinary input (the CLI leaves the terminal cooked there, and
                // `--sig-proxy=false` plus ctrl-c is how one leaves).
                let keys = (opts_stdin && tty).then_some(detach_keys);
                if splice_detachable(client, stream, keys).await {
                    e.container_detached(&id);
                }
            }
            None => {
                let _ = client.shutdown().await;
            }
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, stream_content_type(tty));
    Ok(resp)
}

/// Copies both ways until the container side ends; the client's half-close of stdin is
/// passed on as a half-close to the shim (which closes the container's stdin).
pub async fn splice<C, S>(client: C, shim: S)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    splice_detachable(client, shim, None).await;
}

/// [`splice`] that also watches the client's bytes for the detach sequence (as dockerd's
/// escape proxy does): on a match the attach ends, the container keeps running, and the
/// sequence is not passed on. A partial match that breaks off is passed on whole.
/// Returns whether the client detached.
pub async fn splice_detachable<C, S>(client: C, shim: S, detach_keys: Option<Vec<u8>>) -> bool
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    // Not `into_split`: dropping its write half would half-close the shim stream, which
    // reads as the end of stdin; a detach must close the connection without that.
    let (mut sr, mut sw) = tokio::io::split(shim);
    let mut to_shim = tokio::spawn(async move {
        let Some(keys) = detach_keys.filter(|k| !k.is_empty()) else {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
            let _ = sw.shutdown().await;
            return false;
        };
        let mut buf = vec![0u8; 32 * 1024];
        let mut matched = 0usize;
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    if matched > 0 {
                        let _ = sw.write_all(&keys[..matched]).await;
                    }
                    let _ = sw.shutdown().await;
                    return false;
                }
                Ok(n) => n,
            };
            let mut out = Vec::with_capacity(n);
            for &b in &buf[..n] {
                if b == keys[matched] {
                    matched += 1;
                    if matched == keys.len() {
                        let _ = sw.write_all(&out).await;
                        let _ = sw.flush().await;
                        return true;
                    }
                    continue;
                }
                out.extend_from_slice(&keys[..matched]);
                matched = 0;
                if b == keys[0] {
                    matched = 1;
                } else {
                    out.push(b);
                }
            }
            if sw.write_all(&out).await.is_err() {
                return false;
            }
        }
    });
    let detached = {
        let out = tokio::io::copy(&mut sr, &mut cw);
        tokio::pin!(out);
        tokio::select! {
            _ = &mut out => {
                to_shim.abort();
                false
            }
            r = &mut to_shim => {
                let detached = r.unwrap_or(false);
                if !detached {
                    let _ = out.await;
                }
                detached
            }
        }
    };
    let _ = cw.flush().await;
    let _ = cw.shutdown().await;
    detached
}

/// Docker's detach key syntax: comma-separated `ctrl-<x>` or single characters; empty
/// means the default ctrl-p,ctrl-q.
pub fn parse_detach_keys(spec: &str) -> ApiResult<Vec<u8>> {
    let spec = if spec.is_empty() {
        "ctrl-p,ctrl-q"
    } else {
        spec
    };
    let invalid = || ApiError::bad_request(format!("Invalid detach keys ({spec}) provided"));
    let mut out = Vec::new();
    for key in spec.split(',') {
        let lower = key.to_ascii_lowercase();
        if let Some(c) = lower.strip_prefix("ctrl-") {
            let c = c.as_bytes();
            if c.len() != 1 {
                return Err(invalid());
            }
            out.push(match c[0] {
                b'a'..=b'z' => c[0] - b'a' + 1,
                b'@' => 0,
                b'[' => 27,
                b'\\' => 28,
                b']' => 29,
                b'^' => 30,
                b'_' => 31,
                _ => return Err(invalid()),
            });
        } else if key.len() == 1 {
            out.push(key.as_bytes()[0]);
        } else {
            return Err(invalid());
        }
    }
    Ok(out)
}

pub async fn prune(State(e): State<Engine>, q: Q) -> ApiResult<Json<Value>> {
    let f = Filters::parse(q.get("filters"))?;
    Ok(Json(e.prune_containers(&f).await?))
}
