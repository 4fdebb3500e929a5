//! berth-client: an async Docker Engine API client over `unix://` and `tcp://` (plain HTTP).
//!
//! It owns the wire: connecting, API version negotiation (`min(1.50, API-Version)` as the
//! `/v1.NN` prefix, see below), turning non-2xx answers into
//! [`Error::Api`], reading JSON message streams (pull, load, build, events) and hijacking
//! connections for attach and exec (`Connection: Upgrade`, `Upgrade: tcp`, answer 101, then a
//! raw bidirectional byte stream, demultiplexed with [`frame::Demuxer`] when not a TTY).
//!
//! **Lazy negotiation.** The docker CLI starts every command with `HEAD /_ping`; that is a
//! whole round trip (a daemon wake-up, a connection) before the real work, measurable on
//! `berth exec C true`. Every daemon answer carries `API-Version`, so the client sends its
//! first request with its own newest version and learns the daemon's from the answer. A
//! daemon older than us refuses a too-new version with 400 before acting on the request,
//! so that one request is repeated with the learned version; its body is in memory
//! (JSON, bytes, empty). A streamed body (a build context, a tar upload) cannot be
//! replayed: before one of those, or a hijack, the client pings first as docker does.
//! [`Client::negotiate`] still pings on demand (`berth version`).
//!
//! Every request opens its own connection. Over a local unix socket that costs tens of
//! microseconds, keeps the code free of pool state, and matches what a hijack needs anyway
//! (the connection is consumed by the upgrade).

pub mod error;
pub mod frame;
pub mod host;
mod resources;
pub mod stream;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::{Arc, OnceLock};

pub use error::{Error, Result};
pub use host::{Host, DEFAULT_HOST};
pub use resources::{wait_exit_code, AttachOptions, LogsOptions};
pub use stream::{Hijacked, JsonStream, Response};

/// The newest API version this client speaks.
pub const MAX_API_VERSION: &str = "1.50";

/// Request body: empty, a JSON document, raw bytes, or a stream (tar uploads).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// An empty request body.
pub fn empty_body() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A request body of raw bytes.
pub fn bytes_body(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A request body holding `value` serialized as JSON.
pub fn json_body(value: &Value) -> Body {
    bytes_body(serde_json::to_vec(value).expect("serializing a serde_json::Value cannot fail"))
}

/// A streamed request body (for large tar uploads that should not sit in memory twice).
pub fn stream_body<S>(stream: S) -> Body
where
    S: futures_util::Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static,
{
    use futures_util::StreamExt;
    BodyExt::boxed(http_body_util::StreamBody::new(
        stream.map(|r| r.map(hyper::body::Frame::data)),
    ))
}

/// Percent-encode `pairs` into a query string (without the leading `?`).
pub fn query(pairs: &[(&str, &str)]) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SET: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", k, utf8_percent_encode(v, SET)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Append `q` to `path` with `?` when it is not empty.
pub fn with_query(path: &str, q: &str) -> String {
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{q}")
    }
}

/// A connection to the daemon: an address plus the negotiated API version.
#[derive(Debug, Clone)]
pub struct Client {
    host: Host,
    /// The version to use once known; shared by clones (a resize task, say) so that one
    /// negotiation serves them all.
    version: Arc<OnceLock<String>>,
}

/// A connected socket of either kind, so that hyper sees one IO type.
enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

impl Client {
    /// A client for `host`; the version is negotiated by the first answer (see the module
    /// docs) or by [`Client::negotiate`].
    pub fn new(host: Host) -> Client {
        Client {
            host,
            version: Arc::new(OnceLock::new()),
        }
    }

    /// Build a client from the `-H` flag and the environment. Nothing is sent yet: the
    /// version is learned from the first answer.
    pub async fn from_env(flag: Option<&str>) -> Result<Client> {
        Ok(Client::new(Host::from_env(flag)?))
    }

    /// The daemon address.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The API version used as path prefix, e.g. `1.50` ([`MAX_API_VERSION`] until the
    /// daemon's is known).
    pub fn api_version(&self) -> &str {
        self.version
            .get()
            .map(String::as_str)
            .unwrap_or(MAX_API_VERSION)
    }

    fn negotiated(&self) -> bool {
        self.version.get().is_some()
    }

    /// Record the version an answer announces: `min(ours, API-Version)`. A daemon that
    /// sends no version header keeps ours, as docker does. Returns whether the version is
    /// lower than the one the request was sent with.
    fn learn(&self, resp: &Response) -> bool {
        let v = match resp
            .headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
        {
            Some(d) => min_version(MAX_API_VERSION, d).to_string(),
            None => MAX_API_VERSION.to_string(),
        };
        let lower = v != MAX_API_VERSION;
        let _ = self.version.set(v);
        lower
    }

    /// `HEAD /_ping` and lower the version to the daemon's `API-Version` when it is older.
    pub async fn negotiate(&mut self) -> Result<()> {
        self.ping_negotiate().await
    }

    async fn ping_negotiate(&self) -> Result<()> {
        let resp = self
            .raw_request(http::Method::HEAD, "/_ping", empty_body(), &[])
            .await?;
        let status = resp.status();
        if status >= 400 && resp.headers().get("api-version").is_none() {
            return Err(Error::Api {
                status,
                message: format!("ping failed with status {status}"),
            });
        }
        self.learn(&resp);
        Ok(())
    }

    async fn connect(&self) -> Result<Conn> {
        let conn = match &self.host {
            Host::Unix(p) => tokio::net::UnixStream::connect(p).await.map(Conn::Unix),
            Host::Tcp(a) => tokio::net::TcpStream::connect(a).await.map(|s| {
                // Small request/response exchanges: do not wait for Nagle.
                let _ = s.set_nodelay(true);
                Conn::Tcp(s)
            }),
        };
        conn.map_err(|source| Error::Connect {
            host: self.host.to_string(),
            source,
        })
    }

    fn build(
        &self,
        method: &http::Method,
        path: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<http::Request<Body>> {
        let host_header = match &self.host {
            Host::Unix(_) => "api.moby.localhost",
            Host::Tcp(a) => a.as_str(),
        };
        let mut b = http::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(http::header::HOST, host_header)
            .header(http::header::USER_AGENT, "berth-client/0.1");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(body).map_err(|e| Error::Request {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    /// Send a request to an absolute path (no version prefix) and return the response
    /// whatever its status.
    pub async fn raw_request(
        &self,
        method: http::Method,
        path: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<Response> {
        let req = self.build(&method, path, body, headers)?;
        let http_err = |source| Error::Http {
            method: method.to_string(),
            path: path.to_string(),
            source,
        };
        let resp = match self.connect().await? {
            Conn::Unix(s) => send(TokioIo::new(s), req, false).await,
            Conn::Tcp(s) => send(TokioIo::new(s), req, false).await,
        }
        .map_err(http_err)?;
        Ok(Response::new(resp, path))
    }

    /// The versioned form of `path`: `/v1.50/containers/json`.
    pub fn versioned(&self, path: &str) -> String {
        format!("/v{}{}", self.api_version(), path)
    }

    /// Send a versioned request; non-2xx answers become [`Error::Api`].
    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<Response> {
        if !self.negotiated() {
            use hyper::body::Body as _;
            if body.size_hint().exact().is_none() {
                self.ping_negotiate().await?;
            } else {
                return self.first_request(method, path, body, headers).await;
            }
        }
        let full = self.versioned(path);
        let resp = self.raw_request(method, &full, body, headers).await?;
        resp.error_for_status().await
    }

    /// The first request of a client that has not negotiated: sent with our version; when
    /// the answer shows an older daemon that refused it, sent again with the daemon's.
    async fn first_request(
        &self,
        method: http::Method,
        path: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<Response> {
        let data = body.collect().await.map_err(Error::Io)?.to_bytes();
        let full = self.versioned(path);
        let resp = self
            .raw_request(method.clone(), &full, bytes_body(data.clone()), headers)
            .await?;
        if self.learn(&resp) && resp.status() == 400 {
            let full = self.versioned(path);
            let again = self
                .raw_request(method, &full, bytes_body(data), headers)
                .await?;
            return again.error_for_status().await;
        }
        resp.error_for_status().await
    }

    /// GET a JSON document.
    pub async fn get_json(&self, path: &str) -> Result<Value> {
        self.request(http::Method::GET, path, empty_body(), &[])
            .await?
            .json()
            .await
    }

    /// POST an optional JSON body; returns the JSON answer, or `Value::Null` for an empty one.
    pub async fn post_json(&self, path: &str, body: Option<&Value>) -> Result<Value> {
        let (b, h): (Body, &[(&str, &str)]) = match body {
            Some(v) => (json_body(v), &[("content-type", "application/json")]),
            None => (empty_body(), &[]),
        };
        self.request(http::Method::POST, path, b, h)
            .await?
            .json()
            .await
    }

    /// DELETE; returns the JSON answer or `Value::Null`.
    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.request(http::Method::DELETE, path, empty_body(), &[])
            .await?
            .json()
            .await
    }

    /// POST a request that the daemon answers with `101 Switching Protocols`, and return the
    /// raw connection. `body` is sent as JSON when present (exec start).
    pub async fn hijack(&self, path: &str, body: Option<&Value>) -> Result<Hijacked> {
        if !self.negotiated() {
            self.ping_negotiate().await?;
        }
        let full = self.versioned(path);
        let mut headers = vec![("connection", "Upgrade"), ("upgrade", "tcp")];
        let b = match body {
            Some(v) => {
                headers.push(("content-type", "application/json"));
                json_body(v)
            }
            None => empty_body(),
        };
        let req = self.build(&http::Method::POST, &full, b, &headers)?;
        let http_err = |source| Error::Http {
            method: "POST".to_string(),
            path: full.clone(),
            source,
        };
        let resp = match self.connect().await? {
            Conn::Unix(s) => send(TokioIo::new(s), req, true).await,
            Conn::Tcp(s) => send(TokioIo::new(s), req, true).await,
        }
        .map_err(http_err)?;
        let status = resp.status().as_u16();
        if status >= 400 {
            return Err(Response::new(resp, &full).into_error().await);
        }
        if status != 101 {
            return Err(Error::NoUpgrade { path: full, status });
        }
        let multiplexed = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.contains("multiplexed-stream"));
        let upgraded = hyper::upgrade::on(resp)
            .await
            .map_err(|source| Error::Http {
                method: "POST".to_string(),
                path: full.clone(),
                source,
            })?;
        Ok(Hijacked {
            io: TokioIo::new(upgraded),
            multiplexed,
        })
    }
}

/// Run one HTTP/1.1 exchange on a fresh connection; the connection task lives on until the
/// body (or the upgraded stream) is finished with.
async fn send<T>(
    io: TokioIo<T>,
    req: http::Request<Body>,
    upgrades: bool,
) -> std::result::Result<http::Response<Incoming>, hyper::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(io)
        .await?;
    if upgrades {
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
    } else {
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    sender.send_request(req).await
}

/// The smaller of two `major.minor` API versions (by number, not by string).
pub fn min_version<'a>(a: &'a str, b: &'a str) -> &'a str {
    fn parse(v: &str) -> (u32, u32) {
        let mut it = v.trim_start_matches('v').split('.');
        let major = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        let minor = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        (major, minor)
    }
    if parse(b) < parse(a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_min_is_numeric() {
        assert_eq!(min_version("1.50", "1.9"), "1.9");
        assert_eq!(min_version("1.50", "1.51"), "1.50");
        assert_eq!(min_version("1.50", "1.43"), "1.43");
    }

    #[test]
    fn query_encodes() {
        assert_eq!(
            query(&[("fromImage", "busybox"), ("tag", "a b/c")]),
            "fromImage=busybox&tag=a%20b%2Fc"
        );
        assert_eq!(with_query("/x", ""), "/x");
        assert_eq!(with_query("/x", "a=1"), "/x?a=1");
    }
}
