//! Routes for working with a container's contents and processes: `top`, `stats`,
//! `archive` (docker cp), `changes` (docker diff), `export` and `commit`.

use crate::error::{ApiError, ApiResult};
use crate::query::Q;
use crate::stream::{body_from_channel, body_reader, json_line};
use crate::{empty, routes::containers::decode};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use berth_engine::container::archive::{ExtractOptions, PathStat};
use berth_engine::container::changes::Change;
use berth_engine::container::commit::CommitRequest;
use berth_engine::container::top::TopBody;
use berth_engine::models::ContainerConfig;
use berth_engine::Engine;
use serde_json::json;

const PATH_STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

pub async fn top(
    State(e): State<Engine>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult<Json<TopBody>> {
    Ok(Json(e.top_container(&id, q.get("ps_args")).await?))
}

pub async fn stats(State(e): State<Engine>, Path(id): Path<String>, q: Q) -> ApiResult<Response> {
    let one_shot = q.bool("one-shot");
    let stream = q.bool_or("stream", true) && !one_shot;
    let mut rx = e.container_stats(&id, stream, one_shot).await?;
    let (tx, body_rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            if tx.send(json_line(&v)).await.is_err() {
                return;
            }
        }
    });
    let mut resp = body_from_channel(body_rx).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn stat_header(st: &PathStat) -> ApiResult<HeaderValue> {
    let json = serde_json::to_vec(st)
        .map_err(|e| ApiError::bad_request(format!("encode path stat: {e}")))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(json);
    HeaderValue::from_str(&b64).map_err(|e| ApiError::bad_request(format!("path stat header: {e}")))
}

fn archive_path(q: &Q) -> ApiResult<String> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ApiError::bad_request("path cannot be empty")),
    }
}

pub async fn archive_head(
    State(e): State<Engine>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult<Response> {
    let st = e.archive_stat(&id, &archive_path(&q)?).await?;
    let mut resp = empty(StatusCode::OK);
    resp.headers_mut()
        .insert(PATH_STAT_HEADER, stat_header(&st)?);
    Ok(resp)
}

pub async fn archive_get(
    State(e): State<Engine>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult<Response> {
    let (st, rx) = e.archive_get(&id, &archive_path(&q)?).await?;
    let mut resp = body_from_channel(rx).into_response();
    let h = resp.headers_mut();
    h.insert(PATH_STAT_HEADER, stat_header(&st)?);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

pub async fn archive_put(
    State(e): State<Engine>,
    Path(id): Path<String>,
    q: Q,
    req: Request,
) -> ApiResult<Response> {
    let path = archive_path(&q)?;
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: q.bool("noOverwriteDirNonDir"),
        copy_uid_gid: q.bool("copyUIDGID"),
    };
    // A refusal leaves most of the tar unread: the drain layer (drain.rs) reads it.
    let reader = body_reader(req.into_body());
    e.archive_put(&id, &path, opts, Box::new(reader)).await?;
    Ok(empty(StatusCode::OK))
}

pub async fn changes(
    State(e): State<Engine>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Change>>> {
    Ok(Json(e.container_changes(&id).await?))
}

pub async fn export(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<Response> {
    let rx = e.export_container(&id).await?;
    let mut resp = body_from_channel(rx).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

pub async fn commit(State(e): State<Engine>, q: Q, body: axum::body::Bytes) -> ApiResult<Response> {
    let container = q.get("container").unwrap_or("").to_string();
    if container.is_empty() {
        return Err(ApiError::bad_request("container name is required"));
    }
    // The docker CLI sends `null` when no config is given; an empty body is the same.
    let trimmed = body.trim_ascii();
    let config: Option<ContainerConfig> = if trimmed.is_empty() || trimmed == b"null" {
        None
    } else {
        Some(decode(&body)?)
    };
    let req = CommitRequest {
        container,
        repo: q.get("repo").map(str::to_string),
        tag: q.get("tag").map(str::to_string),
        comment: q.get("comment").map(str::to_string),
        author: q.get("author").map(str::to_string),
        pause: q.bool_or("pause", true),
        changes: q.all("changes"),
        config,
    };
    let id = e.commit_container(req).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id }))).into_response())
}
