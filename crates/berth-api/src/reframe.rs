//! Converting a process's output stream between Docker's two wire forms: raw bytes (a
//! TTY) and the multiplexed form (`[stream, 0, 0, 0, len u32 BE]` frames).
//!
//! The shim speaks the form that matches how the process was created (a pty gives raw
//! bytes, pipes give frames). dockerd instead chooses the form from the `Tty` of the
//! *start* request (`POST /exec/{id}/start`), so a client that creates a TTY exec and
//! starts it with `Tty: false` (docker-py does, by default) gets frames, and the opposite
//! gets raw bytes. [`Reframed`] wraps the shim's stream and rewrites only what is read from
//! it; writes (the process's stdin) pass through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Which rewrite a [`Reframed`] stream applies to what it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Pass bytes through.
    Same,
    /// Raw bytes in, stdout frames out.
    Frame,
    /// Frames in, their payloads (stdout and stderr alike) out.
    Unframe,
}

impl Mode {
    /// The rewrite from what the process produces (`process_tty`) to what the client asked
    /// for (`client_tty`).
    pub fn between(process_tty: bool, client_tty: bool) -> Mode {
        match (process_tty, client_tty) {
            (true, false) => Mode::Frame,
            (false, true) => Mode::Unframe,
            _ => Mode::Same,
        }
    }
}

/// A stream whose read side is rewritten by [`Mode`].
pub struct Reframed<S> {
    inner: S,
    mode: Mode,
    /// Bytes produced for the reader but not yet handed out.
    out: Vec<u8>,
    out_pos: usize,
    /// Unframe: a partial frame header seen so far, and the payload bytes still due.
    header: Vec<u8>,
    payload_left: usize,
}

impl<S> Reframed<S> {
    pub fn new(inner: S, mode: Mode) -> Self {
        Reframed {
            inner,
            mode,
            out: Vec::new(),
            out_pos: 0,
            header: Vec::with_capacity(8),
            payload_left: 0,
        }
    }

    /// Rewrites `input` (freshly read from the inner stream) into `self.out`.
    fn absorb(&mut self, input: &[u8]) {
        match self.mode {
            Mode::Same => self.out.extend_from_slice(input),
            Mode::Frame => {
                self.out.push(1);
                self.out.extend_from_slice(&[0, 0, 0]);
                let len = u32::try_from(input.len()).expect("read chunks are far below 4 GiB");
                self.out.extend_from_slice(&len.to_be_bytes());
                self.out.extend_from_slice(input);
            }
            Mode::Unframe => {
                let mut rest = input;
                while !rest.is_empty() {
                    if self.payload_left > 0 {
                        let n = self.payload_left.min(rest.len());
                        self.out.extend_from_slice(&rest[..n]);
                        self.payload_left -= n;
                        rest = &rest[n..];
                        continue;
                    }
                    let need = 8 - self.header.len();
                    let n = need.min(rest.len());
                    self.header.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    if self.header.len() == 8 {
                        let len = u32::from_be_bytes(
                            self.header[4..8].try_into().expect("slice of four bytes"),
                        );
                        self.payload_left = len as usize;
                        self.header.clear();
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Reframed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_pos < this.out.len() {
                let n = (this.out.len() - this.out_pos).min(buf.remaining());
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    let data = rb.filled().to_vec();
                    this.absorb(&data);
                    // A chunk of pure frame headers yields nothing yet: read on.
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Reframed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn read_all(input: Vec<u8>, mode: Mode) -> Vec<u8> {
        let mut r = Reframed::new(&input[..], mode);
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.expect("read from a slice");
        out
    }

    #[tokio::test]
    async fn frames_raw_bytes_as_stdout() {
        let out = read_all(b"hello".to_vec(), Mode::Frame).await;
        assert_eq!(out, b"\x01\x00\x00\x00\x00\x00\x00\x05hello");
    }

    #[tokio::test]
    async fn unframes_stdout_and_stderr() {
        let mut input = b"\x01\x00\x00\x00\x00\x00\x00\x03out".to_vec();
        input.extend_from_slice(b"\x02\x00\x00\x00\x00\x00\x00\x04err\n");
        assert_eq!(read_all(input, Mode::Unframe).await, b"outerr\n");
    }

    #[test]
    fn unframes_headers_split_across_reads() {
        let mut r = Reframed::new((), Mode::Unframe);
        let all = b"\x01\x00\x00\x00\x00\x00\x00\x02ab\x02\x00\x00\x00\x00\x00\x00\x01c";
        for b in all.iter() {
            r.absorb(std::slice::from_ref(b));
        }
        assert_eq!(r.out, b"abc");
    }

    #[tokio::test]
    async fn same_passes_through() {
        assert_eq!(read_all(b"x\r\n".to_vec(), Mode::Same).await, b"x\r\n");
    }

    #[test]
    fn mode_follows_start_request() {
        assert_eq!(Mode::between(true, false), Mode::Frame);
        assert_eq!(Mode::between(false, true), Mode::Unframe);
        assert_eq!(Mode::between(true, true), Mode::Same);
    }
}
