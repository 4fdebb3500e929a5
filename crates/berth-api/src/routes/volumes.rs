//! `/volumes/...` routes: parse, call the engine's volume service, render.

use crate::error::ApiResult;
use crate::query::Q;
use crate::routes::containers::decode;
use crate::{empty, ApiVersion};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_engine::filters::Filters;
use berth_engine::volumes::VolumeCreateBody;
use berth_engine::Engine;
use serde_json::Value;

/// `POST /volumes/create` (201 with the volume). An empty body creates an anonymous-named
/// volume, as dockerd does.
pub async fn create(State(e): State<Engine>, body: Bytes) -> ApiResult<Response> {
    let body: VolumeCreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        VolumeCreateBody::default()
    } else {
        decode(&body)?
    };
    let v = e.create_volume(body).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `GET /volumes`.
pub async fn list(State(e): State<Engine>, q: Q) -> ApiResult<Json<Value>> {
    let f = Filters::parse(q.get("filters"))?;
    Ok(Json(e.list_volumes(f).await?))
}

/// `GET /volumes/{name}`.
pub async fn inspect(State(e): State<Engine>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(e.inspect_volume(&name, false).await?))
}

/// `DELETE /volumes/{name}?force=`.
pub async fn remove(
    State(e): State<Engine>,
    Path(name): Path<String>,
    q: Q,
) -> ApiResult<Response> {
    e.remove_volume(&name, q.bool("force")).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune`. API 1.42 narrowed prune to anonymous volumes; an older client
/// still means all unused ones, so dockerd adds `all=true` to its filters, and so do we.
pub async fn prune(
    State(e): State<Engine>,
    Extension(v): Extension<ApiVersion>,
    q: Q,
) -> ApiResult<Json<Value>> {
    let mut f = Filters::parse(q.get("filters"))?;
    if !v.at_least(1, 42) {
        let all = f.0.entry("all".to_string()).or_default();
        if !all.iter().any(|a| a == "true") {
            all.push("true".to_string());
        }
    }
    Ok(Json(e.prune_volumes(f).await?))
}
