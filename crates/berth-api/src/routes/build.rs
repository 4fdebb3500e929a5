//! `POST /build` (the classic builder's API: a tar context in, a JSON progress stream out)
//! and `POST /build/prune`.
//!
//! The response is always `200` with a stream once the request parses: failures during the
//! build arrive as `{"errorDetail": {"message": ...}, "error": ...}`, as dockerd sends them,
//! and the docker CLI turns that into its message and exit code 1.

use crate::error::{ApiError, ApiResult};
use crate::query::Q;
use crate::stream::{body_reader, json_line};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_engine::build::{BuildOptions, Progress};
use berth_engine::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// Build progress as `{"stream": ...}` lines; with `q=1` step output is dropped.
struct JsonProgress {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    quiet: bool,
}

impl Progress for JsonProgress {
    fn stream(&self, text: &str) {
        if !self.quiet {
            let _ = self.tx.send(json_line(&json!({ "stream": text })));
        }
    }
}

fn json_map<T: serde::de::DeserializeOwned + Default>(q: &Q, key: &str) -> ApiResult<T> {
    match q.get(key) {
        None | Some("") => Ok(T::default()),
        Some(v) => serde_json::from_str(v)
            .map_err(|e| ApiError::bad_request(format!("invalid {key} {v:?}: {e}"))),
    }
}

/// Parses the classic builder's query parameters.
pub fn build_options(q: &Q) -> ApiResult<BuildOptions> {
    let remote = q
        .get("remote")
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    if let Some(r) = &remote {
        if !berth_engine::build::is_git_url(r) {
            return Err(ApiError::bad_request(format!(
                "remote build context {r:?} is not a git URL: this berthd fetches git contexts only; send other contexts as a tar"
            )));
        }
    }
    // Build args may be null ("--build-arg X" with X unset in the client's environment).
    let raw_args: HashMap<String, Option<String>> = json_map(q, "buildargs")?;
    let build_args = raw_args
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    let labels: BTreeMap<String, String> = json_map(q, "labels")?;
    let cache_from: Vec<String> = json_map(q, "cachefrom")?;
    let network = q
        .get("networkmode")
        .filter(|n| !n.is_empty() && *n != "default")
        .map(str::to_string);
    Ok(BuildOptions {
        dockerfile: q.get("dockerfile").unwrap_or("Dockerfile").to_string(),
        tags: q.all("t").into_iter().filter(|t| !t.is_empty()).collect(),
        target: q.get("target").map(str::to_string),
        build_args,
        labels,
        no_cache: q.bool("nocache"),
        pull: q.bool("pull"),
        network,
        platform: q.get("platform").map(str::to_string),
        cache_from,
        remote,
        extra_hosts: q
            .all("extrahosts")
            .into_iter()
            .filter(|h| !h.is_empty())
            .collect(),
    })
}

/// `POST /build`.
pub async fn build(State(e): State<Engine>, q: Q, body: Body) -> ApiResult<Response> {
    let opts = build_options(&q)?;
    let quiet = q.bool("q");
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let reader = body_reader(body);
    tokio::spawn(async move {
        let progress = JsonProgress {
            tx: tx.clone(),
            quiet,
        };
        match e.build_image(reader, opts, &progress).await {
            Ok(res) => {
                let short: String = res
                    .id
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect();
                let _ = tx.send(json_line(&json!({"aux": {"ID": res.id}})));
                if quiet {
                    let _ = tx.send(json_line(&json!({"stream": format!("{}\n", res.id)})));
                } else {
                    let _ = tx.send(json_line(
                        &json!({"stream": format!("Successfully built {short}\n")}),
                    ));
                    for t in res.tags {
                        let _ = tx.send(json_line(
                            &json!({"stream": format!("Successfully tagged {t}\n")}),
                        ));
                    }
                }
            }
            Err(err) => {
                let m = err.to_string();
                let mut detail = json!({"message": m});
                if let Some(code) = command_exit_code(&m) {
                    detail["code"] = json!(code);
                }
                let _ = tx.send(json_line(&json!({"errorDetail": detail, "error": m})));
            }
        }
    });
    let stream = UnboundedReceiverStream::new(rx).map(|b| Ok::<_, std::io::Error>(Bytes::from(b)));
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// `POST /build/prune`.
pub async fn prune(State(e): State<Engine>) -> ApiResult<Json<Value>> {
    let (deleted, reclaimed) = e.prune_build_cache().await?;
    Ok(Json(json!({
        "CachesDeleted": deleted,
        "SpaceReclaimed": reclaimed,
    })))
}

/// The exit code of a failed RUN, from the classic builder's fixed wording ("... returned a
/// non-zero code: N"): dockerd puts it in `errorDetail.code`, which docker-py reads.
fn command_exit_code(msg: &str) -> Option<i64> {
    msg.rsplit_once("returned a non-zero code: ")?
        .1
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_query() {
        let q = Q::parse(Some(
            "t=a:1&t=b&dockerfile=sub%2FDf&target=x&buildargs=%7B%22A%22%3A%221%22%2C%22B%22%3Anull%7D&labels=%7B%22l%22%3A%22v%22%7D&nocache=1&networkmode=host",
        ));
        let o = build_options(&q).expect("parses");
        assert_eq!(o.tags, vec!["a:1", "b"]);
        assert_eq!(o.dockerfile, "sub/Df");
        assert_eq!(o.target.as_deref(), Some("x"));
        assert_eq!(o.build_args.get("A").map(String::as_str), Some("1"));
        assert!(!o.build_args.contains_key("B"));
        assert_eq!(o.labels["l"], "v");
        assert!(o.no_cache);
        assert_eq!(o.network.as_deref(), Some("host"));
        assert!(build_options(&Q::parse(Some("buildargs=nope"))).is_err());
        let o = build_options(&Q::parse(Some(
            "remote=https%3A%2F%2Fx%2Fy.git%23main%3Asub",
        )))
        .expect("a git remote");
        assert_eq!(o.remote.as_deref(), Some("https://x/y.git#main:sub"));
        assert!(build_options(&Q::parse(Some("remote=https://x/ctx.tar.gz"))).is_err());
        let o = build_options(&Q::parse(Some("extrahosts=a%3A1.2.3.4&extrahosts=b%3A::1")))
            .expect("parses");
        assert_eq!(o.extra_hosts, vec!["a:1.2.3.4", "b:::1"]);
    }

    #[test]
    fn run_failures_carry_their_exit_code() {
        let m = "Dockerfile:2: The command '/bin/sh -c false' returned a non-zero code: 3";
        assert_eq!(command_exit_code(m), Some(3));
        assert_eq!(
            command_exit_code("Cannot locate specified Dockerfile: x"),
            None
        );
    }
}
