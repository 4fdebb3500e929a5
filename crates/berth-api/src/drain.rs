//! Reading the rest of a request body that a handler stopped reading.
//!
//! A refusal (bad platform for a build, read-only `docker cp` target, a Dockerfile error
//! answered in a 200 progress stream...) often comes before the client has sent its whole
//! body. If the connection is then closed with those bytes unread, the kernel answers the
//! client's next write with a reset and the client reports "broken pipe" or "use of closed
//! network connection" instead of our message. So every request body is wrapped: when a
//! handler drops it unfinished, the rest is read and thrown away in the background
//! (bounded in time), which keeps the connection readable until the client has sent it all.

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// How long a refused upload may keep being read before the connection is dropped anyway.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// A request body that drains itself when dropped before its end.
struct Draining(Body);

impl hyper::body::Body for Draining {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}

impl Drop for Draining {
    fn drop(&mut self) {
        if self.0.is_end_stream() {
            return;
        }
        let mut body = std::mem::replace(&mut self.0, Body::empty());
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

/// `req` with its body wrapped in [`Draining`].
pub fn wrap(req: Request) -> Request {
    let (parts, body) = req.into_parts();
    Request::from_parts(parts, Body::new(Draining(body)))
}
