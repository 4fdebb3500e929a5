//! `/networks/...` routes: parse, call the engine's network service, render Docker's JSON.

use crate::empty;
use crate::error::{ApiError, ApiResult};
use crate::query::Q;
use crate::routes::containers::decode;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::filters::Filters;
use berth_engine::network::{NetworkConnectBody, NetworkCreateBody};
use berth_engine::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

pub async fn list(State(e): State<Engine>, q: Q) -> ApiResult<Json<Vec<Value>>> {
    let f = Filters::parse(q.get("filters"))?;
    Ok(Json(e.list_networks(&f)?))
}

pub async fn inspect(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(e.inspect_network(&id)?))
}

pub async fn create(State(e): State<Engine>, body: Bytes) -> ApiResult<Response> {
    let body: NetworkCreateBody = decode(&body)?;
    let id = e.create_network(body).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id, "Warning": ""}))).into_response())
}

pub async fn remove(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<Response> {
    e.remove_network(&id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn prune(State(e): State<Engine>, q: Q) -> ApiResult<Json<Value>> {
    let f = Filters::parse(q.get("filters"))?;
    let removed = e.prune_networks(&f).await?;
    Ok(Json(json!({ "NetworksDeleted": removed })))
}

pub async fn connect(
    State(e): State<Engine>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: NetworkConnectBody = decode(&body)?;
    if body.container.is_empty() {
        return Err(ApiError::bad_request("container is required"));
    }
    e.connect_network(&id, body).await?;
    Ok(empty(StatusCode::OK))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DisconnectBody {
    container: String,
    force: bool,
}

pub async fn disconnect(
    State(e): State<Engine>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: DisconnectBody = decode(&body)?;
    if body.container.is_empty() {
        return Err(ApiError::bad_request("container is required"));
    }
    e.disconnect_network(&id, &body.container, body.force)
        .await?;
    Ok(empty(StatusCode::OK))
}
