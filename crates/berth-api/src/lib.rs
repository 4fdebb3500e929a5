//! berth-api: the Docker Engine API over HTTP, a thin layer over [`berth_engine::Engine`].
//!
//! Requests arrive as `/v1.NN/...` (docker CLI) or unversioned (docker-py, bollard). The
//! version prefix is checked and stripped in one place, [`strip_version`], before routing,
//! so every route exists once. Handlers parse the request into typed engine calls and turn
//! results back into Docker's JSON; they hold no state of their own.

mod drain;
pub mod error;
pub mod query;
pub mod reframe;
pub mod routes;
pub mod stream;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use berth_engine::system::{API_VERSION, MIN_API_VERSION};
use berth_engine::Engine;
use std::convert::Infallible;
use tower::ServiceExt;

/// The API version a request asked for, after the prefix has been stripped.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (a, b) = s.split_once('.')?;
        Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
    }

    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.0, self.1) >= (major, minor)
    }
}

fn current() -> ApiVersion {
    ApiVersion::parse(API_VERSION).expect("API_VERSION is well-formed")
}

/// Strips `/v1.NN` and rejects versions outside MIN_API_VERSION..=API_VERSION like dockerd.
#[allow(clippy::result_large_err)]
pub fn strip_version(mut req: Request) -> Result<Request, Response> {
    let path = req.uri().path().to_string();
    let mut version = current();
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some((ver, tail)) = rest.split_once('/') {
            if let Some(v) = ApiVersion::parse(ver) {
                let min = ApiVersion::parse(MIN_API_VERSION).expect("well-formed");
                if v < min {
                    return Err(error::ApiError::bad_request(format!(
                        "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                    ))
                    .into_response());
                }
                if v > current() {
                    return Err(error::ApiError::bad_request(format!(
                        "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
                    ))
                    .into_response());
                }
                version = v;
                let new_path = format!("/{tail}");
                let pq = match req.uri().query() {
                    Some(q) => format!("{new_path}?{q}"),
                    None => new_path,
                };
                let mut parts = req.uri().clone().into_parts();
                parts.path_and_query = Some(pq.parse().map_err(|_| {
                    error::ApiError::bad_request("invalid request path").into_response()
                })?);
                *req.uri_mut() = Uri::from_parts(parts).map_err(|_| {
                    error::ApiError::bad_request("invalid request path").into_response()
                })?;
            }
        }
    }
    req.extensions_mut().insert(version);
    Ok(req)
}

/// The whole API as one service: version stripping, then the router, then common headers.
pub fn app(
    engine: Engine,
) -> impl tower::Service<Request, Response = Response, Error = Infallible, Future = impl Send>
       + Clone
       + Send
       + 'static {
    let router: Router = routes::router(engine);
    tower::service_fn(move |req: Request| {
        let router = router.clone();
        async move {
            let req = drain::wrap(req);
            let mut resp = match strip_version(req) {
                Ok(req) => router.oneshot(req).await?,
                Err(resp) => resp,
            };
            let h = resp.headers_mut();
            h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
            h.insert("Docker-Experimental", HeaderValue::from_static("false"));
            h.insert("Ostype", HeaderValue::from_static("linux"));
            h.insert(
                "Server",
                HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
            );
            Ok::<_, Infallible>(resp)
        }
    })
}

/// Serves the API on a bound unix listener until the future is dropped.
pub async fn serve_unix(listener: tokio::net::UnixListener, engine: Engine) -> std::io::Result<()> {
    let svc = app(engine);
    loop {
        let (stream, _) = listener.accept().await?;
        // Streams (logs, export, save, pull progress) otherwise find the default 208 KiB
        // socket buffer full every few dozen writes and wake the writer that often (warm
        // `logs` of 100 MiB: 55 → 49 ms p50); the buffer is only memory while data waits.
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(&stream, 2 << 20);
        let svc = svc.clone();
        tokio::spawn(serve_conn(hyper_util::rt::TokioIo::new(stream), svc));
    }
}

pub async fn serve_tcp(listener: tokio::net::TcpListener, engine: Engine) -> std::io::Result<()> {
    let svc = app(engine);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let svc = svc.clone();
        tokio::spawn(serve_conn(hyper_util::rt::TokioIo::new(stream), svc));
    }
}

async fn serve_conn<I, S>(io: I, svc: S)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let hyper_svc =
        hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let svc = svc.clone();
            async move {
                let req = req.map(Body::new);
                svc.oneshot(req).await
            }
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, hyper_svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("connection ended: {e}");
    }
}

pub(crate) fn empty(status: StatusCode) -> Response {
    (status, Body::empty()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(
            ApiVersion::parse("1.44").expect("valid") > ApiVersion::parse("1.9").expect("valid")
        );
        assert!(ApiVersion(1, 50).at_least(1, 44));
    }

    #[test]
    fn strips_prefix() {
        let req = Request::builder()
            .uri("/v1.41/containers/json?all=1")
            .body(Body::empty())
            .expect("request");
        let req = strip_version(req).expect("accepted");
        assert_eq!(req.uri().path(), "/containers/json");
        assert_eq!(req.uri().query(), Some("all=1"));
        assert_eq!(
            req.extensions().get::<ApiVersion>(),
            Some(&ApiVersion(1, 41))
        );
        let old = Request::builder()
            .uri("/v1.12/info")
            .body(Body::empty())
            .expect("request");
        let resp = strip_version(old).expect_err("too old");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
}
