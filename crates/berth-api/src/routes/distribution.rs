//! Registry routes: pull (`POST /images/create?fromImage=`), push
//! (`POST /images/{name}/push`) and `POST /auth`.
//!
//! Pull and push answer errors found before any transfer (unknown repository or tag, no
//! such local image) with a plain status, like dockerd; once the 200 progress stream has
//! started, a failure is the stream's last message (`{"errorDetail": ..., "error": ...}`).
//! Progress goes through an unbounded channel: the engine reports from async code that
//! must not wait on a slow client, and progress messages are small and few.

use crate::error::{ApiError, ApiResult};
use crate::query::Q;
use crate::stream::json_line;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::distribution::{Credentials, Progress, RegistryErrorKind};
use berth_engine::Engine;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// Credentials from `X-Registry-Auth` (absent or undecodable: none).
fn registry_auth(headers: &HeaderMap) -> Option<Credentials> {
    headers
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .and_then(Credentials::from_header)
}

fn error_line(message: &str) -> Vec<u8> {
    json_line(&json!({"errorDetail": {"message": message}, "error": message}))
}

fn stream_response(rx: mpsc::UnboundedReceiver<Vec<u8>>) -> Response {
    let body = Body::from_stream(
        UnboundedReceiverStream::new(rx).map(|b| Ok::<_, std::io::Error>(bytes::Bytes::from(b))),
    );
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `POST /images/create?fromImage=&tag=&platform=`.
pub async fn pull(e: Engine, q: &Q, headers: &HeaderMap) -> ApiResult<Response> {
    let image = q.get("fromImage").unwrap_or_default();
    let prepared = e
        .prepare_pull(
            image,
            q.get("tag"),
            q.get("platform"),
            registry_auth(headers),
        )
        .await?;
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let sink = |p: Progress| {
            let _ = tx.send(json_line(&p.to_json()));
        };
        if let Err(err) = prepared.run(&sink).await {
            let _ = tx.send(error_line(&err.to_string()));
        }
    });
    Ok(stream_response(rx))
}

/// `POST /images/{name}/push?tag=`.
pub async fn push(e: Engine, name: &str, q: &Q, headers: &HeaderMap) -> ApiResult<Response> {
    let targets = e.push_targets(name, q.get("tag"))?;
    let creds = registry_auth(headers);
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let sink = |p: Progress| {
            let _ = tx.send(json_line(&p.to_json()));
        };
        if let Err(err) = e.push_images(&targets, creds, &sink).await {
            let _ = tx.send(error_line(&err.to_string()));
        }
    });
    Ok(stream_response(rx))
}

/// `POST /auth`: `{"Status": "Login Succeeded"}`, or 401 with the registry's refusal.
pub async fn auth(State(e): State<Engine>, Json(body): Json<Value>) -> ApiResult<Json<Value>> {
    let creds: Credentials = serde_json::from_value(body)
        .map_err(|err| ApiError::bad_request(format!("invalid auth configuration: {err}")))?;
    match e.registry_login(&creds).await {
        Ok(()) => Ok(Json(
            json!({"Status": "Login Succeeded", "IdentityToken": ""}),
        )),
        Err(err) => {
            let status = match err.kind() {
                RegistryErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
                RegistryErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Err(ApiError {
                status,
                message: err.to_string(),
            })
        }
    }
}
