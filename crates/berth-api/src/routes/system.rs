//! `/_ping`, `/version`, `/info`, `/events`, `/system/df`, swarm answers.

use crate::error::{ApiError, ApiResult};
use crate::query::Q;
use crate::stream::{body_from_channel, json_line};
use crate::ApiVersion;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_engine::events::Event;
use berth_engine::filters::Filters;
use berth_engine::Engine;
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub async fn ping(method: Method) -> Response {
    let mut resp = if method == Method::HEAD {
        (StatusCode::OK, "").into_response()
    } else {
        (StatusCode::OK, "OK").into_response()
    };
    let h = resp.headers_mut();
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    resp
}

pub async fn version(State(e): State<Engine>) -> Json<Value> {
    Json(e.version())
}

pub async fn info(State(e): State<Engine>) -> Json<Value> {
    Json(e.info())
}

pub async fn swarm_leave() -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "This node is not part of a swarm".into(),
    }
}

pub async fn swarm_inspect() -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.".into(),
    }
}

pub async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "page not found: {} {}",
        req.method(),
        req.uri().path()
    ))
}

/// Which parts of `GET /system/df` to compute.
#[derive(Debug, PartialEq)]
struct DfParts {
    containers: bool,
    images: bool,
    volumes: bool,
    build_cache: bool,
}

/// The `type` query values of `/system/df` (API 1.42+): each one selects a part, none
/// selects all; an older client always gets all, as from dockerd.
fn df_parts(v: ApiVersion, types: &[String]) -> ApiResult<DfParts> {
    if !v.at_least(1, 42) || types.is_empty() {
        return Ok(DfParts {
            containers: true,
            images: true,
            volumes: true,
            build_cache: true,
        });
    }
    let mut p = DfParts {
        containers: false,
        images: false,
        volumes: false,
        build_cache: false,
    };
    for t in types {
        match t.as_str() {
            "container" => p.containers = true,
            "image" => p.images = true,
            "volume" => p.volumes = true,
            "build-cache" => p.build_cache = true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown object type: {other}"
                )))
            }
        }
    }
    Ok(p)
}

/// `GET /system/df[?type=container|image|volume|build-cache]`. Parts not asked for are
/// left out of the answer, and `LayersSize` is omitted when zero, as dockerd's
/// `omitempty` fields are (`docker system df` asks for everything; a `type=volume` caller
/// pays only for the volume walk).
pub async fn df(
    State(e): State<Engine>,
    Extension(v): Extension<ApiVersion>,
    q: Q,
) -> ApiResult<Json<Value>> {
    let parts = df_parts(v, &q.all("type"))?;
    let mut out = serde_json::Map::new();
    if parts.images {
        let images = e.list_images(false, &Filters::default(), false)?;
        let layers: i64 = images.iter().map(|i| i["Size"].as_i64().unwrap_or(0)).sum();
        if layers != 0 {
            out.insert("LayersSize".into(), json!(layers));
        }
        out.insert("Images".into(), json!(images));
    }
    if parts.containers {
        let containers = e
            .list_containers(berth_engine::container::list::ListOptions {
                all: true,
                size: true,
                ..Default::default()
            })
            .await?;
        out.insert("Containers".into(), json!(containers));
    }
    if parts.volumes {
        out.insert("Volumes".into(), json!(e.volumes_df().await?));
    }
    if parts.build_cache {
        out.insert("BuildCache".into(), json!(e.build_cache_usage()?));
    }
    Ok(Json(Value::Object(out)))
}

fn parse_time_param(s: Option<&str>) -> ApiResult<Option<f64>> {
    match s {
        None | Some("") => Ok(None),
        Some(v) => {
            if let Ok(f) = v.parse::<f64>() {
                return Ok(Some(f));
            }
            berth_engine::system::parse_until(v)
                .map(|t| Some(t as f64))
                .map_err(ApiError::from)
        }
    }
}

fn event_matches(ev: &Event, f: &Filters) -> bool {
    let attr = |k: &str| ev.actor.attributes.get(k).cloned().unwrap_or_default();
    if f.has("type") && !f.get("type").contains(&ev.typ) {
        return false;
    }
    if f.has("event")
        && !f
            .get("event")
            .iter()
            .any(|a| ev.action == *a || ev.action.starts_with(&format!("{a}:")))
    {
        return false;
    }
    if f.has("container") {
        if ev.typ != "container" {
            return false;
        }
        let name = attr("name");
        if !f
            .get("container")
            .iter()
            .any(|c| ev.actor.id.starts_with(c.as_str()) || name == *c)
        {
            return false;
        }
    }
    if f.has("image") {
        let img = if ev.typ == "image" {
            ev.actor.id.clone()
        } else {
            attr("image")
        };
        let name = attr("name");
        if !f
            .get("image")
            .iter()
            .any(|i| img == *i || name == *i || img.starts_with(i.as_str()))
        {
            return false;
        }
    }
    if f.has("volume") && !(ev.typ == "volume" && f.get("volume").contains(&ev.actor.id)) {
        return false;
    }
    f.match_labels("label", Some(&ev.actor.attributes))
}

pub async fn events(State(e): State<Engine>, q: Q) -> ApiResult<Response> {
    let filters = Filters::parse(q.get("filters"))?;
    filters.validate(&[
        "type",
        "event",
        "container",
        "image",
        "label",
        "network",
        "volume",
        "daemon",
        "scope",
        "plugin",
        "node",
        "service",
        "secret",
        "config",
    ])?;
    let since = parse_time_param(q.get("since"))?;
    let until = parse_time_param(q.get("until"))?;
    let (history, mut live) = e.events().subscribe();
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let secs = |ev: &Event| ev.time_nano as f64 / 1e9;
        let mut last_nano = 0;
        if let Some(s) = since {
            for ev in history.iter().filter(|ev| secs(ev) >= s) {
                if until.is_some_and(|u| secs(ev) > u) {
                    return;
                }
                last_nano = ev.time_nano;
                if event_matches(ev, &filters) && tx.send(json_line(&json!(ev))).await.is_err() {
                    return;
                }
            }
        }
        let deadline = until.map(|u| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            tokio::time::Instant::now() + std::time::Duration::from_secs_f64((u - now).max(0.0))
        });
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, live.recv()).await.ok(),
                    None => Some(live.recv().await),
                }
            };
            match next.await {
                None => return,
                Some(Ok(ev)) => {
                    if ev.time_nano <= last_nano {
                        continue;
                    }
                    if event_matches(&ev, &filters) && tx.send(json_line(&json!(ev))).await.is_err()
                    {
                        return;
                    }
                }
                Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                Some(Err(_)) => return,
            }
        }
    });
    let mut resp = body_from_channel(rx).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_types() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let only_volumes = df_parts(ApiVersion(1, 47), &t(&["volume"])).expect("known type");
        assert_eq!(
            only_volumes,
            DfParts {
                containers: false,
                images: false,
                volumes: true,
                build_cache: false
            }
        );
        let everything = df_parts(ApiVersion(1, 47), &[]).expect("no type");
        assert!(everything.containers && everything.images && everything.build_cache);
        // Before 1.42 the parameter did not exist: everything, even for an unknown value.
        assert_eq!(
            df_parts(ApiVersion(1, 41), &t(&["bogus"])).expect("ignored"),
            everything
        );
        let err = df_parts(ApiVersion(1, 47), &t(&["volume", "bogus"])).expect_err("unknown");
        assert_eq!(err.message, "unknown object type: bogus");
    }
}
