//! Response bodies: whole (JSON or bytes), chunked streams, JSON message streams (pull,
//! load, import, build, events: one JSON object after another, usually newline separated but
//! not guaranteed to be split at chunk boundaries), and hijacked raw connections.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::error::{Error, Result};

/// A daemon response with its body still unread.
pub struct Response {
    inner: http::Response<Incoming>,
    path: String,
}

impl Response {
    pub(crate) fn new(inner: http::Response<Incoming>, path: &str) -> Self {
        Response {
            inner,
            path: path.to_string(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.inner.status().as_u16()
    }

    /// The response headers.
    pub fn headers(&self) -> &http::HeaderMap {
        self.inner.headers()
    }

    /// Turn a non-2xx response into [`Error::Api`], keep a 2xx one.
    pub async fn error_for_status(self) -> Result<Response> {
        if self.status() < 400 {
            Ok(self)
        } else {
            Err(self.into_error().await)
        }
    }

    /// The error a non-2xx answer stands for: its JSON `message`, else its text, else the
    /// status' reason phrase.
    pub async fn into_error(self) -> Error {
        let status = self.status();
        let reason = self
            .inner
            .status()
            .canonical_reason()
            .unwrap_or("error")
            .to_string();
        let body = self.bytes().await.unwrap_or_default();
        Error::Api {
            status,
            message: error_message(&body).unwrap_or(reason),
        }
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes> {
        let path = self.path;
        self.inner
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|source| Error::Http {
                method: "read".to_string(),
                path,
                source,
            })
    }

    /// The body as JSON; an empty body is `Value::Null`.
    pub async fn json(self) -> Result<Value> {
        let path = self.path.clone();
        let b = self.bytes().await?;
        if b.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&b).map_err(|source| Error::Json { path, source })
    }

    /// The next chunk of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Option<Result<Bytes>> {
        loop {
            match self.inner.body_mut().frame().await? {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        if !d.is_empty() {
                            return Some(Ok(d));
                        }
                    }
                }
                Err(source) => {
                    return Some(Err(Error::Http {
                        method: "read".to_string(),
                        path: self.path.clone(),
                        source,
                    }))
                }
            }
        }
    }

    /// Read the body as a stream of JSON messages.
    pub fn json_stream(self) -> JsonStream {
        JsonStream {
            resp: self,
            buf: BytesMut::new(),
            done: false,
        }
    }
}

/// Pull the `message` out of a JSON error body, or use the trimmed text.
fn error_message(body: &[u8]) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            return Some(m.to_string());
        }
    }
    let t = String::from_utf8_lossy(body).trim().to_string();
    (!t.is_empty()).then_some(t)
}

/// A stream of JSON documents in one response body.
pub struct JsonStream {
    resp: Response,
    buf: BytesMut,
    done: bool,
}

impl JsonStream {
    /// The next message, `None` at the end of the body.
    pub async fn next(&mut self) -> Option<Result<Value>> {
        loop {
            if let Some(v) = self.take_one() {
                return Some(v);
            }
            if self.done {
                return None;
            }
            match self.resp.chunk().await {
                Some(Ok(b)) => self.buf.extend_from_slice(&b),
                Some(Err(e)) => return Some(Err(e)),
                None => self.done = true,
            }
        }
    }

    /// Decode one complete value from the buffer if there is one. An incomplete value waits
    /// for more input unless the body is over, when it becomes an error.
    fn take_one(&mut self) -> Option<Result<Value>> {
        let start = self.buf.iter().position(|b| !b.is_ascii_whitespace());
        let Some(start) = start else {
            self.buf.clear();
            return None;
        };
        let mut it = serde_json::Deserializer::from_slice(&self.buf[start..]).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) => {
                let used = start + it.byte_offset();
                let _ = self.buf.split_to(used);
                Some(Ok(v))
            }
            Some(Err(e)) if e.is_eof() && !self.done => None,
            Some(Err(source)) => {
                self.buf.clear();
                Some(Err(Error::Json {
                    path: self.resp.path.clone(),
                    source,
                }))
            }
            None => None,
        }
    }
}

/// A hijacked connection (attach, exec start): raw bytes both ways.
pub struct Hijacked {
    /// The upgraded connection; split it with `tokio::io::split` to read and write at once.
    pub io: TokioIo<Upgraded>,
    /// `Some(true)` when the daemon said the stream is multiplexed
    /// (`application/vnd.docker.multiplexed-stream`), `Some(false)` for a raw stream,
    /// `None` when it did not say (then the container's TTY setting decides).
    pub multiplexed: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_prefers_json_message() {
        assert_eq!(
            error_message(br#"{"message":"No such container: x"}"#).as_deref(),
            Some("No such container: x")
        );
        assert_eq!(
            error_message(b"  plain text\n").as_deref(),
            Some("plain text")
        );
        assert_eq!(error_message(b""), None);
    }
}
