//! Reading the rest of a request body that a handler refused without reading.
//!
//! A refusal (bad platform for a build, read-only `docker cp` target, unknown image for a
//! load...) often comes before the client has sent its whole body. If the connection is then
//! closed with those bytes unread, the kernel answers the client's next write with a reset
//! and the client reports "broken pipe" or "use of closed network connection" instead of
//! our message. So every request body is shared between the handler and this layer, and
//! after an error answer whatever the handler left is read and dropped (bounded in time)
//! before the answer goes out.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// How long a refused upload may keep being read before the connection is dropped anyway.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// The request body, readable by the handler while this layer keeps a handle on it.
struct Shared(Arc<Mutex<Body>>);

impl hyper::body::Body for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        let mut body = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Pin::new(&mut *body).poll_frame(cx)
    }
}

impl Drop for Shared {
    /// A handler that answers with a stream (a build's progress) may stop reading its body
    /// early, say at a Dockerfile error, while the answer still goes out as 200: the rest
    /// is read in the background, so the connection stays readable until the client has
    /// sent it all.
    fn drop(&mut self) {
        use hyper::body::Body as _;
        let mut body = {
            let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_end_stream() {
                return;
            }
            std::mem::replace(&mut *guard, Body::empty())
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tokio::time::timeout(DRAIN_LIMIT, async {
                    while let Some(Ok(_)) = body.frame().await {}
                })
                .await;
            });
        }
    }
}

/// Splits `req` into the request the router sees and a handle on its body.
pub fn share(req: Request) -> (Request, Arc<Mutex<Body>>) {
    let (parts, body) = req.into_parts();
    let handle = Arc::new(Mutex::new(body));
    let req = Request::from_parts(parts, Body::new(Shared(handle.clone())));
    (req, handle)
}

/// After an error answer: reads and drops what is left of the body.
pub async fn after(status: StatusCode, handle: Arc<Mutex<Body>>) {
    if !(status.is_client_error() || status.is_server_error()) {
        return;
    }
    let mut body = std::mem::replace(
        &mut *handle.lock().unwrap_or_else(|e| e.into_inner()),
        Body::empty(),
    );
    let _ = tokio::time::timeout(DRAIN_LIMIT, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}
