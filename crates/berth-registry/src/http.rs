//! The HTTP face of the registry: routing, auth checks, headers, status codes.
//!
//! Repository names contain slashes, so axum's path patterns cannot split
//! `/v2/<name>/blobs/<digest>`; every `/v2/...` path goes to one handler that parses it into
//! a typed [`Route`] (matching from the right, since a name may itself contain `blobs` or
//! `manifests` components) and dispatches on route and method. Handlers translate to calls
//! on [`Registry`] and never touch storage directly. Errors become the spec's JSON body in
//! one place (`impl IntoResponse for RegistryError`).

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use futures_util::TryStreamExt;
use serde_json::json;

use crate::auth::{Auth, Claims, Principal, Scope};
use crate::config::{Action, AuthMode, Config};
use crate::digest::Digest;
use crate::error::RegistryError;
use crate::gc::{self, GcOptions};
use crate::names::{Reference, RepoName};
use crate::registry::{Page, Registry};
use crate::storage::ByteStream;

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
const OCI_FILTERS: HeaderName = HeaderName::from_static("oci-filters-applied");

/// Everything a request handler needs.
pub struct AppState {
    pub registry: Arc<Registry>,
    pub auth: Arc<Auth>,
    pub config: Config,
}

/// The registry's routes, ready to serve or to embed in a test.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v2", any(base))
        .route("/v2/", any(base))
        .route("/v2/{*rest}", any(dispatch))
        .route("/token", get(token_get).post(token_post))
        .route("/admin/gc", post(admin_gc))
        .layer(axum::middleware::map_response(
            |mut r: Response| async move {
                r.headers_mut()
                    .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
                r
            },
        ))
        .with_state(state)
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        if let RegistryError::Storage(e) = &self {
            tracing::error!(error = %e, "storage failure");
        }
        let mut resp = (self.status(), axum::Json(self.body())).into_response();
        if let RegistryError::Unauthorized { challenge } = &self {
            if let Ok(v) = HeaderValue::from_str(challenge) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let RegistryError::RangeNotSatisfiable { size, .. } = &self {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
        }
        resp
    }
}

type HResult = Result<Response, RegistryError>;

/// A parsed `/v2/...` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Catalog,
    Tags(RepoName),
    UploadStart(RepoName),
    Upload(RepoName, String),
    Blob(RepoName, Digest),
    Manifest(RepoName, Reference),
    Referrers(RepoName, Digest),
}

fn name(s: &str) -> Result<RepoName, RegistryError> {
    s.parse()
        .map_err(|_| RegistryError::NameInvalid(s.to_string()))
}

fn digest(s: &str) -> Result<Digest, RegistryError> {
    s.parse()
        .map_err(|_| RegistryError::DigestInvalid(s.to_string()))
}

/// Parse the part of the path after `/v2/`.
pub fn parse_route(rest: &str) -> Result<Route, RegistryError> {
    let not_found = || RegistryError::NotFound(format!("/v2/{rest}"));
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    if let Some(n) = rest.strip_suffix("/tags/list") {
        return Ok(Route::Tags(name(n)?));
    }
    if let Some(n) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Ok(Route::UploadStart(name(n)?));
    }
    let (prefix, last) = rest.rsplit_once('/').ok_or_else(not_found)?;
    if let Some(n) = prefix.strip_suffix("/blobs/uploads") {
        return Ok(Route::Upload(name(n)?, last.to_string()));
    }
    if let Some(n) = prefix.strip_suffix("/blobs") {
        return Ok(Route::Blob(name(n)?, digest(last)?));
    }
    if let Some(n) = prefix.strip_suffix("/manifests") {
        let repo = name(n)?;
        let reference = last.parse().map_err(|_| {
            if last.contains(':') {
                RegistryError::DigestInvalid(last.to_string())
            } else {
                RegistryError::TagInvalid(last.to_string())
            }
        })?;
        return Ok(Route::Manifest(repo, reference));
    }
    if let Some(n) = prefix.strip_suffix("/referrers") {
        return Ok(Route::Referrers(name(n)?, digest(last)?));
    }
    Err(not_found())
}

fn query_map(uri: &http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn respond(status: StatusCode, headers: Vec<(HeaderName, String)>, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    for (k, v) in headers {
        r.headers_mut().insert(k, hv(&v));
    }
    r
}

fn empty(status: StatusCode, mut headers: Vec<(HeaderName, String)>) -> Response {
    headers.push((header::CONTENT_LENGTH, "0".to_string()));
    respond(status, headers, Body::empty())
}

fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(io::Error::other))
}

// ---------- authorization ----------

/// Who is calling, and with which token claims (token mode).
struct Caller {
    principal: Principal,
    claims: Option<Claims>,
}

enum Need<'a> {
    Base,
    Catalog,
    Repo(&'a RepoName, Action),
}

fn scheme_host(state: &AppState, headers: &HeaderMap) -> String {
    let scheme = if state.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| state.config.addr.to_string());
    format!("{scheme}://{host}")
}

fn challenge(
    state: &AppState,
    headers: &HeaderMap,
    scope: Option<String>,
    error: Option<&str>,
) -> String {
    let cfg = state.auth.config();
    match cfg.mode {
        AuthMode::Basic => format!("Basic realm=\"{}\"", cfg.service),
        AuthMode::Token => {
            let realm = cfg
                .realm
                .clone()
                .unwrap_or_else(|| format!("{}/token", scheme_host(state, headers)));
            let mut c = format!("Bearer realm=\"{realm}\",service=\"{}\"", cfg.service);
            if let Some(s) = scope {
                c.push_str(&format!(",scope=\"{s}\""));
            }
            if let Some(e) = error {
                c.push_str(&format!(",error=\"{e}\""));
            }
            c
        }
    }
}

fn scope_for(need: &Need<'_>) -> Option<String> {
    match need {
        Need::Base => None,
        Need::Catalog => Some("registry:catalog:*".to_string()),
        Need::Repo(r, Action::Pull) => Some(format!("repository:{r}:pull")),
        Need::Repo(r, Action::Push) => Some(format!("repository:{r}:pull,push")),
        Need::Repo(r, Action::Delete) => Some(format!("repository:{r}:delete")),
    }
}

async fn basic_principal(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, RegistryError> {
    let Some(h) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return Ok(None);
    };
    if !h.to_ascii_lowercase().starts_with("basic ") {
        return Ok(None);
    }
    let unauthorized = || RegistryError::Unauthorized {
        challenge: challenge(state, headers, None, None),
    };
    let (user, pass) = Auth::parse_basic(h).map_err(|_| unauthorized())?;
    let auth = state.auth.clone();
    let u = user.clone();
    let ok = tokio::task::spawn_blocking(move || auth.verify_password(&u, &pass).is_ok())
        .await
        .unwrap_or(false);
    if !ok {
        return Err(unauthorized());
    }
    Ok(Some(Principal::User(user)))
}

async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    need: Need<'_>,
) -> Result<Caller, RegistryError> {
    let auth = &state.auth;
    if !auth.enabled() {
        return Ok(Caller {
            principal: Principal::Anonymous,
            claims: None,
        });
    }
    match auth.config().mode {
        AuthMode::Basic => {
            let principal = basic_principal(state, headers).await?;
            let who = principal.clone().unwrap_or(Principal::Anonymous);
            let ok = match &need {
                Need::Base | Need::Catalog => principal.is_some(),
                Need::Repo(r, a) => auth.permitted(&who, r.as_str()).contains(a),
            };
            if ok {
                return Ok(Caller {
                    principal: who,
                    claims: None,
                });
            }
            if principal.is_some() {
                Err(RegistryError::Denied)
            } else {
                Err(RegistryError::Unauthorized {
                    challenge: challenge(state, headers, None, None),
                })
            }
        }
        AuthMode::Token => {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| {
                    h.strip_prefix("Bearer ")
                        .or_else(|| h.strip_prefix("bearer "))
                });
            let claims = match bearer {
                Some(t) => match auth.verify_token(t.trim()) {
                    Ok(c) => Some(c),
                    Err(_) => {
                        return Err(RegistryError::Unauthorized {
                            challenge: challenge(
                                state,
                                headers,
                                scope_for(&need),
                                Some("invalid_token"),
                            ),
                        })
                    }
                },
                None => None,
            };
            let ok = match (&claims, &need) {
                (None, _) => false,
                (Some(_), Need::Base) => true,
                (Some(c), Need::Catalog) => c.allows_catalog(),
                (Some(c), Need::Repo(r, a)) => c.allows(r.as_str(), *a),
            };
            if ok {
                let c = claims.expect("ok implies claims");
                let principal = if c.sub.is_empty() {
                    Principal::Anonymous
                } else {
                    Principal::User(c.sub.clone())
                };
                return Ok(Caller {
                    principal,
                    claims: Some(c),
                });
            }
            let error = claims.as_ref().map(|_| "insufficient_scope");
            Err(RegistryError::Unauthorized {
                challenge: challenge(state, headers, scope_for(&need), error),
            })
        }
    }
}

impl Caller {
    fn can(&self, auth: &Auth, repo: &RepoName, action: Action) -> bool {
        match &self.claims {
            Some(c) => c.allows(repo.as_str(), action),
            None => auth
                .permitted(&self.principal, repo.as_str())
                .contains(&action),
        }
    }
}

// ---------- handlers ----------

async fn base(State(state): State<Arc<AppState>>, req: Request) -> HResult {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(RegistryError::Unsupported(format!("{} /v2/", req.method())));
    }
    let (parts, _body) = req.into_parts();
    authorize(&state, &parts.headers, Need::Base).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], "{}").into_response())
}

fn required_action(route: &Route, method: &Method) -> Action {
    match (route, method) {
        (Route::Blob(..) | Route::Manifest(..), &Method::DELETE) => Action::Delete,
        (Route::UploadStart(_) | Route::Upload(..), _) => Action::Push,
        (Route::Manifest(..), &Method::PUT) => Action::Push,
        _ => Action::Pull,
    }
}

async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> HResult {
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/v2/").unwrap_or(&path);
    let route = parse_route(rest)?;
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let headers = &parts.headers;
    let q = query_map(&parts.uri);
    let writes = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if writes && state.config.read_only {
        return Err(RegistryError::Unsupported(
            "the registry is in read-only mode".into(),
        ));
    }
    let caller = match &route {
        Route::Catalog => authorize(&state, headers, Need::Catalog).await?,
        Route::Tags(r)
        | Route::UploadStart(r)
        | Route::Upload(r, _)
        | Route::Blob(r, _)
        | Route::Manifest(r, _)
        | Route::Referrers(r, _) => {
            let need = Need::Repo(r, required_action(&route, &method));
            authorize(&state, headers, need).await?
        }
    };
    let reg = &state.registry;
    match (route, method) {
        (Route::Catalog, Method::GET) => catalog(&state, &caller, &q).await,
        (Route::Tags(r), Method::GET) => tags_list(reg, &r, &q).await,
        (Route::Blob(r, d), m @ (Method::GET | Method::HEAD)) => {
            blob_get(reg, &r, &d, headers, m == Method::HEAD).await
        }
        (Route::Blob(r, d), Method::DELETE) => {
            reg.delete_blob(&r, &d).await?;
            Ok(empty(
                StatusCode::ACCEPTED,
                vec![(CONTENT_DIGEST, d.to_string())],
            ))
        }
        (Route::UploadStart(r), Method::POST) => upload_start(&state, &caller, &r, &q, body).await,
        (Route::Upload(r, id), Method::PATCH) => upload_patch(reg, &r, &id, headers, body).await,
        (Route::Upload(r, id), Method::PUT) => upload_put(reg, &r, &id, &q, headers, body).await,
        (Route::Upload(r, id), Method::GET) => {
            let info = reg.upload_status(&r, &id).await?;
            Ok(empty(
                StatusCode::NO_CONTENT,
                upload_headers(&r, &id, info.size),
            ))
        }
        (Route::Upload(r, id), Method::DELETE) => {
            reg.cancel_upload(&r, &id).await?;
            Ok(empty(StatusCode::NO_CONTENT, vec![]))
        }
        (Route::Manifest(r, reference), m @ (Method::GET | Method::HEAD)) => {
            manifest_get(reg, &r, &reference, headers, m == Method::HEAD).await
        }
        (Route::Manifest(r, reference), Method::PUT) => {
            manifest_put(&state, &r, &reference, headers, body).await
        }
        (Route::Manifest(r, reference), Method::DELETE) => {
            reg.delete_manifest(&r, &reference).await?;
            Ok(empty(StatusCode::ACCEPTED, vec![]))
        }
        (Route::Referrers(r, d), Method::GET) => referrers(reg, &r, &d, &q).await,
        (_, m) => Err(RegistryError::Unsupported(format!("{m} {path}"))),
    }
}

/// Parse `n` and `last` query parameters.
fn page_params(
    q: &HashMap<String, String>,
) -> Result<(Option<usize>, Option<String>), RegistryError> {
    let n = match q.get("n") {
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| RegistryError::BadParameter {
                    name: "n".into(),
                    value: v.clone(),
                })?,
        ),
        None => None,
    };
    Ok((n, q.get("last").cloned()))
}

fn link_header(base: &str, n: Option<usize>, page: &Page) -> Option<(HeaderName, String)> {
    let (true, Some(n), Some(last)) = (page.more, n, page.items.last()) else {
        return None;
    };
    let last: String = url::form_urlencoded::byte_serialize(last.as_bytes()).collect();
    Some((
        header::LINK,
        format!("<{base}?n={n}&last={last}>; rel=\"next\""),
    ))
}

async fn tags_list(reg: &Registry, repo: &RepoName, q: &HashMap<String, String>) -> HResult {
    let (n, last) = page_params(q)?;
    let page = reg.tags(repo, n, last.as_deref()).await?;
    let mut headers = vec![(header::CONTENT_TYPE, "application/json".to_string())];
    headers.extend(link_header(&format!("/v2/{repo}/tags/list"), n, &page));
    let body = json!({ "name": repo.to_string(), "tags": page.items });
    Ok(respond(
        StatusCode::OK,
        headers,
        Body::from(body.to_string()),
    ))
}

async fn catalog(state: &AppState, caller: &Caller, q: &HashMap<String, String>) -> HResult {
    let (n, last) = page_params(q)?;
    let auth = state.auth.clone();
    let page = state
        .registry
        .catalog(n, last.as_deref(), |r| {
            // List only what the caller may pull according to the configuration.
            auth.permitted(&caller.principal, r.as_str())
                .contains(&Action::Pull)
        })
        .await?;
    let mut headers = vec![(header::CONTENT_TYPE, "application/json".to_string())];
    headers.extend(link_header("/v2/_catalog", n, &page));
    let body = json!({ "repositories": page.items });
    Ok(respond(
        StatusCode::OK,
        headers,
        Body::from(body.to_string()),
    ))
}

/// A single byte range, inclusive; `Ok(None)` means "serve the whole blob" (no header,
/// or one we ignore as RFC 9110 allows: malformed or multi-range).
fn parse_range(h: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, RegistryError> {
    let Some(h) = h else { return Ok(None) };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = || RegistryError::RangeNotSatisfiable {
        range: h.to_string(),
        size,
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        return Ok(Some((size - n.min(size), size - 1)));
    }
    let Ok(start) = a.parse::<u64>() else {
        return Ok(None);
    };
    let end = if b.is_empty() {
        size.saturating_sub(1)
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.min(size.saturating_sub(1)),
            _ => return Ok(None),
        }
    };
    if start >= size {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end)))
}

/// Piece size of a mapped blob body: large writes, few wake-ups.
const MAPPED_CHUNK: usize = 4 << 20;

async fn blob_get(
    reg: &Registry,
    repo: &RepoName,
    d: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> HResult {
    let info = reg.stat_blob(repo, d).await?;
    let range = if head {
        None
    } else {
        parse_range(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            info.size,
        )?
    };
    let (status, start, len) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (StatusCode::OK, 0, info.size),
    };
    let mut out = vec![
        (header::CONTENT_LENGTH, len.to_string()),
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (CONTENT_DIGEST, d.to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (header::ETAG, format!("\"{d}\"")),
    ];
    if let Some((a, b)) = range {
        out.push((
            header::CONTENT_RANGE,
            format!("bytes {a}-{b}/{}", info.size),
        ));
    }
    if head {
        return Ok(respond(status, out, Body::empty()));
    }
    if let Some(data) = reg.mapped_blob(d, start, len).await? {
        // Slices of one map: no copy until the socket write.
        let n = data.len();
        let chunks = (0..n)
            .step_by(MAPPED_CHUNK)
            .map(move |i| Ok::<_, std::io::Error>(data.slice(i..(i + MAPPED_CHUNK).min(n))));
        return Ok(respond(
            status,
            out,
            Body::from_stream(futures_util::stream::iter(chunks)),
        ));
    }
    let reader = reg.open_blob(d, start, len).await?;
    // Large reads: tokio's file reads each hop to a blocking thread, so 4 KiB reads (the
    // default) cap a blob GET at a few hundred MB/s.
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20);
    Ok(respond(status, out, Body::from_stream(stream)))
}

fn upload_headers(repo: &RepoName, id: &str, size: u64) -> Vec<(HeaderName, String)> {
    vec![
        (header::LOCATION, format!("/v2/{repo}/blobs/uploads/{id}")),
        (header::RANGE, format!("0-{}", size.saturating_sub(1))),
        (UPLOAD_UUID, id.to_string()),
    ]
}

fn blob_created(repo: &RepoName, d: &Digest) -> Response {
    empty(
        StatusCode::CREATED,
        vec![
            (header::LOCATION, format!("/v2/{repo}/blobs/{d}")),
            (CONTENT_DIGEST, d.to_string()),
        ],
    )
}

async fn upload_start(
    state: &AppState,
    caller: &Caller,
    repo: &RepoName,
    q: &HashMap<String, String>,
    body: Body,
) -> HResult {
    let reg = &state.registry;
    if let Some(m) = q.get("mount") {
        let d = digest(m)?;
        if let Some(from) = q.get("from").and_then(|f| f.parse::<RepoName>().ok()) {
            if caller.can(&state.auth, &from, Action::Pull)
                && reg.mount_blob(repo, &from, &d).await?
            {
                return Ok(blob_created(repo, &d));
            }
        }
        // Not mountable: the spec says fall back to an ordinary upload session.
    }
    let id = reg.start_upload(repo).await?;
    if let Some(ds) = q.get("digest") {
        let d = match digest(ds) {
            Ok(d) => d,
            Err(e) => {
                let _ = reg.cancel_upload(repo, &id).await;
                return Err(e);
            }
        };
        let body = body_stream(body);
        let res = async {
            reg.write_upload(repo, &id, Some(0), body).await?;
            reg.finish_upload(repo, &id, &d).await
        }
        .await;
        if let Err(e) = res {
            let _ = reg.cancel_upload(repo, &id).await;
            return Err(e);
        }
        return Ok(blob_created(repo, &d));
    }
    Ok(empty(StatusCode::ACCEPTED, upload_headers(repo, &id, 0)))
}

/// Parse a chunk's `Content-Range: <start>-<end>` (also tolerating a `bytes ` / `bytes=`
/// prefix and a `/total` suffix that some clients send).
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, RegistryError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || RegistryError::UploadInvalid(format!("malformed Content-Range {v:?}"));
    let s = v.to_str().map_err(|_| bad())?.trim();
    let s = s
        .strip_prefix("bytes=")
        .or_else(|| s.strip_prefix("bytes "))
        .unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

/// Append a request body to an upload, answering 416 with the upload's real state when
/// the chunk is out of order.
async fn append(
    reg: &Registry,
    repo: &RepoName,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<u64, Response> {
    let range = content_range(headers).map_err(IntoResponse::into_response)?;
    if let (Some((a, b)), Some(len)) = (
        range,
        headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok()),
    ) {
        if b - a + 1 != len {
            let e = RegistryError::UploadInvalid(format!(
                "Content-Range {a}-{b} does not match Content-Length {len}"
            ));
            return Err(range_error(reg, repo, id, e).await);
        }
    }
    let body = body_stream(body);
    match reg.write_upload(repo, id, range.map(|r| r.0), body).await {
        Ok(n) => Ok(n),
        Err(e @ RegistryError::RangeInvalid { .. }) => Err(range_error(reg, repo, id, e).await),
        Err(e) => Err(e.into_response()),
    }
}

async fn range_error(reg: &Registry, repo: &RepoName, id: &str, e: RegistryError) -> Response {
    let mut resp = e.into_response();
    *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    if let Ok(info) = reg.upload_status(repo, id).await {
        for (k, v) in upload_headers(repo, id, info.size) {
            resp.headers_mut().insert(k, hv(&v));
        }
    }
    resp
}

async fn upload_patch(
    reg: &Registry,
    repo: &RepoName,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> HResult {
    match append(reg, repo, id, headers, body).await {
        Ok(size) => Ok(empty(StatusCode::ACCEPTED, upload_headers(repo, id, size))),
        Err(resp) => Ok(resp),
    }
}

async fn upload_put(
    reg: &Registry,
    repo: &RepoName,
    id: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> HResult {
    let d = match q.get("digest") {
        Some(s) => digest(s)?,
        None => {
            return Err(RegistryError::DigestInvalid(
                "missing digest query parameter".into(),
            ))
        }
    };
    if let Err(resp) = append(reg, repo, id, headers, body).await {
        return Ok(resp);
    }
    reg.finish_upload(repo, id, &d).await?;
    Ok(blob_created(repo, &d))
}

async fn manifest_get(
    reg: &Registry,
    repo: &RepoName,
    reference: &Reference,
    headers: &HeaderMap,
    head: bool,
) -> HResult {
    let accept: Vec<String> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let m = reg.get_manifest(repo, reference, &accept).await?;
    let out = vec![
        (header::CONTENT_TYPE, m.media_type.clone()),
        (header::CONTENT_LENGTH, m.body.len().to_string()),
        (CONTENT_DIGEST, m.digest.to_string()),
        (header::ETAG, format!("\"{}\"", m.digest)),
    ];
    let body = if head {
        Body::empty()
    } else {
        Body::from(m.body)
    };
    Ok(respond(StatusCode::OK, out, body))
}

async fn manifest_put(
    state: &AppState,
    repo: &RepoName,
    reference: &Reference,
    headers: &HeaderMap,
    body: Body,
) -> HResult {
    let limit = state.registry.options().manifest_max_bytes;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = axum::body::to_bytes(body, limit as usize + 1)
        .await
        .map_err(|_| RegistryError::ManifestTooLarge {
            size: limit + 1,
            limit,
        })?;
    let put = state
        .registry
        .put_manifest(repo, reference, body, content_type.as_deref())
        .await?;
    let mut out = vec![
        (
            header::LOCATION,
            format!("/v2/{repo}/manifests/{}", put.digest),
        ),
        (CONTENT_DIGEST, put.digest.to_string()),
    ];
    if let Some(s) = put.subject {
        out.push((OCI_SUBJECT, s.to_string()));
    }
    Ok(empty(StatusCode::CREATED, out))
}

async fn referrers(
    reg: &Registry,
    repo: &RepoName,
    d: &Digest,
    q: &HashMap<String, String>,
) -> HResult {
    let filter = q.get("artifactType").filter(|s| !s.is_empty());
    let index = reg.referrers(repo, d, filter.map(String::as_str)).await?;
    let mut headers = vec![(header::CONTENT_TYPE, crate::manifest::OCI_INDEX.to_string())];
    if filter.is_some() {
        headers.push((OCI_FILTERS, "artifactType".to_string()));
    }
    Ok(respond(
        StatusCode::OK,
        headers,
        Body::from(index.to_string()),
    ))
}

// ---------- token endpoint ----------

fn scopes_from(values: &[String]) -> Vec<Scope> {
    values
        .iter()
        .flat_map(|v| v.split(' '))
        .filter_map(Scope::parse)
        .collect()
}

fn token_body(state: &AppState, who: &Principal, scopes: &[Scope]) -> Response {
    let (token, ttl) = state.auth.issue_token(who, scopes);
    let body = json!({ "token": token, "access_token": token, "expires_in": ttl });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn token_unauthorized(state: &AppState) -> RegistryError {
    RegistryError::Unauthorized {
        challenge: format!("Basic realm=\"{}\"", state.auth.config().service),
    }
}

async fn token_get(State(state): State<Arc<AppState>>, req: Request) -> HResult {
    if !state.auth.enabled() {
        return Err(RegistryError::NotFound(
            "/token: authentication is not enabled".into(),
        ));
    }
    let (parts, _body) = req.into_parts();
    let scopes: Vec<String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.into_owned())
                .collect()
        })
        .unwrap_or_default();
    let who = match basic_principal(&state, &parts.headers).await {
        Ok(Some(p)) => p,
        Ok(None) if state.auth.anonymous_allowed() => Principal::Anonymous,
        Ok(None) | Err(_) => return Err(token_unauthorized(&state)),
    };
    Ok(token_body(&state, &who, &scopes_from(&scopes)))
}

/// OAuth2 password grant (`grant_type=password`), which some clients prefer to GET.
async fn token_post(State(state): State<Arc<AppState>>, req: Request) -> HResult {
    if !state.auth.enabled() {
        return Err(RegistryError::NotFound(
            "/token: authentication is not enabled".into(),
        ));
    }
    let body = axum::body::to_bytes(req.into_body(), 64 << 10)
        .await
        .map_err(|_| RegistryError::Unsupported("token request body too large".into()))?;
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("password") {
        return Err(RegistryError::Unsupported(
            "only grant_type=password is supported".into(),
        ));
    }
    let (Some(user), Some(pass)) = (form.get("username"), form.get("password")) else {
        return Err(token_unauthorized(&state));
    };
    let auth = state.auth.clone();
    let (u, p) = (user.clone(), pass.clone());
    let ok = tokio::task::spawn_blocking(move || auth.verify_password(&u, &p).is_ok())
        .await
        .unwrap_or(false);
    if !ok {
        return Err(token_unauthorized(&state));
    }
    let scopes = form.get("scope").cloned().into_iter().collect::<Vec<_>>();
    Ok(token_body(
        &state,
        &Principal::User(user.clone()),
        &scopes_from(&scopes),
    ))
}

// ---------- admin ----------

async fn admin_gc(State(state): State<Arc<AppState>>, req: Request) -> HResult {
    let (parts, _body) = req.into_parts();
    if state.auth.enabled() {
        let who = match basic_principal(&state, &parts.headers).await? {
            Some(p) => p,
            None => {
                return Err(RegistryError::Unauthorized {
                    challenge: format!("Basic realm=\"{}\"", state.auth.config().service),
                })
            }
        };
        if !state.auth.is_admin(&who) {
            return Err(RegistryError::Denied);
        }
    }
    if state.config.read_only {
        return Err(RegistryError::Unsupported(
            "the registry is in read-only mode".into(),
        ));
    }
    let q = query_map(&parts.uri);
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "1" || v == "true");
    let grace = match q.get("grace_secs") {
        Some(v) => v.parse().map_err(|_| RegistryError::BadParameter {
            name: "grace_secs".into(),
            value: v.clone(),
        })?,
        None => state.config.gc_grace_secs,
    };
    let opts = GcOptions {
        delete_untagged: flag("delete_untagged"),
        dry_run: flag("dry_run"),
        grace: Duration::from_secs(grace),
    };
    let report = gc::collect(&state.registry, &opts).await?;
    Ok(axum::Json(report).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let d = Digest::sha256_of(b"");
        assert_eq!(parse_route("_catalog").expect("catalog"), Route::Catalog);
        assert!(matches!(parse_route("a/b/tags/list"), Ok(Route::Tags(r)) if r.as_str() == "a/b"));
        assert!(matches!(
            parse_route("a/blobs/uploads/"),
            Ok(Route::UploadStart(_))
        ));
        assert!(
            matches!(parse_route("a/blobs/uploads/abc"), Ok(Route::Upload(r, id)) if r.as_str() == "a" && id == "abc")
        );
        assert!(
            matches!(parse_route(&format!("x/blobs/blobs/{d}")), Ok(Route::Blob(r, _)) if r.as_str() == "x/blobs")
        );
        assert!(matches!(
            parse_route("x/manifests/latest"),
            Ok(Route::Manifest(_, Reference::Tag(_)))
        ));
        assert!(matches!(
            parse_route(&format!("x/referrers/{d}")),
            Ok(Route::Referrers(..))
        ));
        assert!(matches!(
            parse_route("UPPER/tags/list"),
            Err(RegistryError::NameInvalid(_))
        ));
        assert!(matches!(
            parse_route("x/blobs/sha256:zz"),
            Err(RegistryError::DigestInvalid(_))
        ));
        assert!(matches!(
            parse_route("x/manifests/-bad"),
            Err(RegistryError::TagInvalid(_))
        ));
        assert!(matches!(
            parse_route("x/other/y"),
            Err(RegistryError::NotFound(_))
        ));
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10).expect("none"), None);
        assert_eq!(parse_range(Some("bytes=2-4"), 10).expect("r"), Some((2, 4)));
        assert_eq!(parse_range(Some("bytes=2-"), 10).expect("r"), Some((2, 9)));
        assert_eq!(parse_range(Some("bytes=-3"), 10).expect("r"), Some((7, 9)));
        assert_eq!(
            parse_range(Some("bytes=5-100"), 10).expect("r"),
            Some((5, 9))
        );
        assert!(parse_range(Some("bytes=10-"), 10).is_err());
        assert_eq!(
            parse_range(Some("bytes=1-2,4-5"), 10).expect("multi ignored"),
            None
        );
        assert_eq!(
            parse_range(Some("items=1-2"), 10).expect("unit ignored"),
            None
        );
    }
}
