//! `/containers/{id}/exec` and `/exec/{id}/...` routes.

use super::containers::{decode, parse_detach_keys, splice_detachable};
use crate::empty;
use crate::error::{ApiError, ApiResult};
use crate::query::Q;
use crate::reframe::{Mode, Reframed};
use crate::stream::body_from_channel;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::exec::ExecConfig;
use berth_engine::Engine;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub async fn create(
    State(e): State<Engine>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let cfg: ExecConfig = decode(&body)?;
    let exec_id = e.exec_create(&id, cfg)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": exec_id}))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    tty: bool,
    console_size: Option<[u16; 2]>,
}

pub async fn start(
    State(e): State<Engine>,
    Path(id): Path<String>,
    mut req: Request,
) -> ApiResult<Response> {
    let raw = axum::body::to_bytes(std::mem::take(req.body_mut()), 1 << 20)
        .await
        .map_err(|err| ApiError::bad_request(format!("read body: {err}")))?;
    let body: StartBody = if raw.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        decode(&raw)?
    };
    // dockerd frames the output by the start request's Tty, whatever the exec was created
    // with (docker-py starts TTY execs with `Tty: false` and expects frames).
    let tty = body.tty;
    let reframe = Mode::between(e.exec_tty(&id)?, tty);
    let detach_keys = e.exec_detach_keys(&id)?;
    let detach_keys = match detach_keys {
        Some(spec) => Some(parse_detach_keys(&spec)?),
        None => None,
    };
    let _ = body.console_size;
    if body.detach {
        e.exec_start(&id, true).await?;
        return Ok(empty(StatusCode::OK));
    }
    let ctype = HeaderValue::from_static(if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    });
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.to_str().is_ok_and(|s| s.eq_ignore_ascii_case("tcp")));
    if !wants_upgrade {
        let stream = e
            .exec_start(&id, false)
            .await?
            .ok_or_else(|| ApiError::bad_request("exec produced no stream"))?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let engine = e.clone();
        tokio::spawn(async move {
            let mut s = Reframed::new(stream, reframe);
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                    break;
                }
            }
            engine.exec_settle(&id).await;
        });
        let mut resp = body_from_channel(rx).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, ctype);
        return Ok(resp);
    }
    // Like dockerd: switch protocols first, then start the process; a runtime failure (a
    // missing binary in a distroless image, say) is written into the stream and recorded as
    // the exec's exit code (126/127), which the CLI reads back from exec inspect.
    let on_upgrade = hyper::upgrade::on(&mut req);
    let engine = e.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(err) => {
                tracing::debug!("exec upgrade failed: {err}");
                return;
            }
        };
        let mut client = TokioIo::new(upgraded);
        match engine.exec_start(&id, false).await {
            Ok(Some(stream)) => {
                let (e2, id2) = (engine.clone(), id.clone());
                let stream = SettleOnEof {
                    inner: Reframed::new(stream, reframe),
                    settle: Some(Box::pin(async move { e2.exec_settle(&id2).await })),
                };
                splice_detachable(client, stream, detach_keys).await;
            }
            Ok(None) => {
                let _ = client.shutdown().await;
            }
            Err(err) => {
                // moby's exec route writes the error to the stdout stream, so `docker exec
                // ... 2>/dev/null` still shows it.
                let msg = format!("{err}\r\n");
                let bytes = if tty {
                    msg.into_bytes()
                } else {
                    berth_engine::container::logs::frame(1, msg.as_bytes())
                };
                let _ = client.write_all(&bytes).await;
                let _ = client.shutdown().await;
            }
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, ctype);
    Ok(resp)
}

/// The shim's exec stream, whose end of file is held back until the exit code is
/// recorded: the client's connection closes only then, so the `exec inspect` a client sends
/// right after EOF (the docker CLI's and ours, for the exit status) is answered from memory
/// instead of another round trip to the shim.
struct SettleOnEof<S> {
    inner: S,
    settle: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for SettleOnEof<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::{ready, Poll};
        let before = buf.filled().len();
        ready!(std::pin::Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Some(f) = self.settle.as_mut() {
            ready!(f.as_mut().poll(cx));
            self.settle = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SettleOnEof<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub async fn inspect(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(e.exec_inspect(&id).await?))
}

pub async fn resize(State(e): State<Engine>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    let h = q.int("h")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    let w = q.int("w")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    e.exec_resize(&id, h, w).await?;
    Ok(empty(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn end_of_stream_waits_for_the_settle() {
        let (mut shim, ours) = tokio::io::duplex(64);
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let settled = Arc::new(AtomicBool::new(false));
        let s2 = settled.clone();
        let mut s = SettleOnEof {
            inner: ours,
            settle: Some(Box::pin(async move {
                let _ = go_rx.await;
                s2.store(true, Ordering::SeqCst);
            })),
        };
        shim.write_all(b"out").await.expect("write");
        drop(shim);
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"out");
        // The shim side is closed, but EOF only comes once the exit is recorded.
        let eof =
            tokio::time::timeout(std::time::Duration::from_millis(50), s.read(&mut buf)).await;
        assert!(eof.is_err(), "EOF before the settle");
        go_tx.send(()).expect("send");
        assert_eq!(s.read(&mut buf).await.expect("eof"), 0);
        assert!(settled.load(Ordering::SeqCst));
        assert_eq!(s.read(&mut buf).await.expect("still eof"), 0);
    }
}
