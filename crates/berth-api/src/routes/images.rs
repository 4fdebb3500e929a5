//! `/images/...` routes. Image names may contain '/', so routes under `/images/{name}/...`
//! are matched by suffix here rather than by the router.

use crate::empty;
use crate::error::{ApiError, ApiResult};
use crate::query::Q;
use crate::stream::{body_from_channel, body_reader, json_line, ChannelWriter};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::filters::Filters;
use berth_engine::Engine;
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub async fn list(State(e): State<Engine>, q: Q) -> ApiResult<Json<Vec<Value>>> {
    let f = Filters::parse(q.get("filters"))?;
    Ok(Json(e.list_images(q.bool("all"), &f, q.bool("digests"))?))
}

fn json_stream(rx: mpsc::Receiver<Vec<u8>>) -> Response {
    let mut resp = body_from_channel(rx).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `POST /images/create`: import (`fromSrc=-`) or pull (`fromImage`).
pub async fn create(
    State(e): State<Engine>,
    q: Q,
    headers: axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if let Some(src) = q.get("fromSrc") {
        if src != "-" {
            return Err(ApiError::bad_request(format!(
                "importing from a URL is not supported: fromSrc={src}; send the tarball in the body with fromSrc=-"
            )));
        }
        let repo = q.get("repo").map(str::to_string);
        let tag = q.get("tag").map(str::to_string);
        let mut changes = q.all("changes");
        changes.retain(|c| !c.is_empty());
        let message = q.get("message").map(str::to_string);
        let platform = q
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        let mut reader = body_reader(body);
        let res = tokio::task::spawn_blocking(move || {
            e.import_image(
                &mut reader,
                repo.as_deref(),
                tag.as_deref(),
                changes,
                message,
                platform,
            )
        })
        .await
        .map_err(|err| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("import task failed: {err}"),
        })?;
        let img = res?;
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.send(json_line(&json!({"status": img.id}))).await;
        return Ok(json_stream(rx));
    }
    if q.get("fromImage").is_some() {
        return super::distribution::pull(e, &q, &headers).await;
    }
    Err(ApiError::bad_request(
        "one of fromSrc or fromImage is required",
    ))
}

pub async fn load(State(e): State<Engine>, q: Q, body: Body) -> ApiResult<Response> {
    let quiet = q.bool("quiet");
    let mut reader = body_reader(body);
    let loaded = tokio::task::spawn_blocking(move || e.load_images(&mut reader))
        .await
        .map_err(|err| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("load task failed: {err}"),
        })?;
    // Like dockerd, a bad archive is reported inside a 200 JSON stream (docker-py raises
    // ImageLoadError from its `errorDetail`; the CLI prints it and exits 1).
    let loaded = match loaded {
        Ok(l) => l,
        Err(err) => {
            let msg = err.to_string();
            let (tx, rx) = mpsc::channel(1);
            let _ = tx
                .send(json_line(
                    &json!({"errorDetail": {"message": msg}, "error": msg}),
                ))
                .await;
            return Ok(json_stream(rx));
        }
    };
    let (tx, rx) = mpsc::channel(loaded.len().max(1) * 2 + 1);
    for l in loaded {
        if l.tags.is_empty() {
            let _ = tx
                .send(json_line(
                    &json!({"stream": format!("Loaded image ID: {}\n", l.id)}),
                ))
                .await;
        }
        for t in l.tags {
            let _ = tx
                .send(json_line(
                    &json!({"stream": format!("Loaded image: {t}\n")}),
                ))
                .await;
        }
    }
    let _ = quiet;
    Ok(json_stream(rx))
}

async fn save(e: Engine, names: Vec<String>) -> ApiResult<Response> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    for n in &names {
        e.images()
            .get(n)
            .map_err(|_| ApiError::not_found(format!("No such image: {n}")))?;
    }
    let (tx, rx) = mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter::new(tx);
        if let Err(err) = e.save_images(&names, &mut w) {
            tracing::error!("save {names:?}: {err}");
        }
    });
    let mut resp = body_from_channel(rx).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

pub async fn save_many(State(e): State<Engine>, q: Q) -> ApiResult<Response> {
    save(e, q.all("names")).await
}

pub async fn prune(State(e): State<Engine>, q: Q) -> ApiResult<Json<Value>> {
    let f = Filters::parse(q.get("filters"))?;
    Ok(Json(e.prune_images(&f)?))
}

pub async fn by_name_get(
    State(e): State<Engine>,
    Path(rest): Path<String>,
    q: Q,
) -> ApiResult<Response> {
    if let Some(name) = rest.strip_suffix("/json") {
        return Ok(Json(e.inspect_image(name)?).into_response());
    }
    if let Some(name) = rest.strip_suffix("/history") {
        return Ok(Json(e.image_history(name)?).into_response());
    }
    if let Some(name) = rest.strip_suffix("/get") {
        let _ = q;
        return save(e, vec![name.to_string()]).await;
    }
    Err(ApiError::not_found(format!(
        "page not found: GET /images/{rest}"
    )))
}

pub async fn by_name_post(
    State(e): State<Engine>,
    Path(rest): Path<String>,
    q: Q,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    if let Some(name) = rest.strip_suffix("/tag") {
        let repo = q.get("repo").filter(|r| !r.is_empty()).ok_or_else(|| {
            ApiError::bad_request("repository name must have at least one component")
        })?;
        e.tag_image(name, repo, q.get("tag"))?;
        return Ok(empty(StatusCode::CREATED));
    }
    if let Some(name) = rest.strip_suffix("/push") {
        return super::distribution::push(e, name, &q, &headers).await;
    }
    Err(ApiError::not_found(format!(
        "page not found: POST /images/{rest}"
    )))
}

pub async fn by_name_delete(
    State(e): State<Engine>,
    Path(rest): Path<String>,
    q: Q,
) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(e.remove_image(&rest, q.bool("force"))?))
}
