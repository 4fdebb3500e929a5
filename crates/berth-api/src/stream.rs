//! Streaming helpers: channel-backed bodies, a blocking Write into a body, and JSON lines.

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A body fed by a channel of byte chunks.
pub fn body_from_channel<T: Into<Bytes> + Send + 'static>(rx: mpsc::Receiver<T>) -> Body {
    Body::from_stream(ReceiverStream::new(rx).map(|b| Ok::<_, std::io::Error>(b.into())))
}

/// A `std::io::Write` for blocking code (tar writers) that feeds a response body.
pub struct ChannelWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<Vec<u8>>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(64 * 1024),
        }
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::take(&mut self.buf);
            self.tx.blocking_send(chunk).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away")
            })?;
        }
        Ok(())
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

/// One JSON message of a progress stream, newline-terminated.
pub fn json_line(v: &serde_json::Value) -> Vec<u8> {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b
}

/// A blocking reader over a request body (for tar parsing in `spawn_blocking`).
pub fn body_reader(body: Body) -> impl std::io::Read + Send + 'static {
    let stream = body
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream))
}
