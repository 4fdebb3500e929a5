//! Docker's multiplexed stream framing (attach, exec and logs of non-TTY containers).
//!
//! Each frame is an 8-byte header `[stream, 0, 0, 0, len as u32 big-endian]` followed by
//! `len` bytes of payload; stream 0 is stdin, 1 stdout, 2 stderr (3 is the systemerr of
//! newer daemons). The decoder is a push parser so it can sit behind any byte source: the
//! body of a logs request or the raw socket of a hijacked attach, where reads split frames
//! at arbitrary points.

use bytes::{Buf, Bytes, BytesMut};

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stdin,
    Stdout,
    Stderr,
    /// Stream 3: an error from the daemon itself, printed to stderr.
    System,
}

impl StreamKind {
    /// The header byte of this stream.
    pub fn byte(self) -> u8 {
        match self {
            StreamKind::Stdin => 0,
            StreamKind::Stdout => 1,
            StreamKind::Stderr => 2,
            StreamKind::System => 3,
        }
    }

    /// The stream a header byte names, if any.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(StreamKind::Stdin),
            1 => Some(StreamKind::Stdout),
            2 => Some(StreamKind::Stderr),
            3 => Some(StreamKind::System),
            _ => None,
        }
    }
}

/// A frame header that does not start with a known stream byte.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("invalid stream byte {0} in multiplexed stream header")]
    BadStream(u8),
}

/// Size of the header before each payload.
pub const HEADER_LEN: usize = 8;

/// Encode one frame (used by fake servers in tests and by anything that writes the format).
pub fn encode(kind: StreamKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(kind.byte());
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Incremental decoder: push bytes as they arrive, pop whole frames.
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: BytesMut,
}

impl Demuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes read from the source.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<(StreamKind, Bytes)>, FrameError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let kind = StreamKind::from_byte(self.buf[0]).ok_or(FrameError::BadStream(self.buf[0]))?;
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        Ok(Some((kind, self.buf.split_to(len).freeze())))
    }

    /// Bytes held that do not yet form a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_single_frame() {
        let enc = encode(StreamKind::Stdout, b"hello\n");
        assert_eq!(&enc[..8], &[1, 0, 0, 0, 0, 0, 0, 6]);
        let mut d = Demuxer::new();
        d.push(&enc);
        let (k, p) = d.next_frame().expect("valid").expect("complete");
        assert_eq!(k, StreamKind::Stdout);
        assert_eq!(&p[..], b"hello\n");
        assert_eq!(d.next_frame().expect("valid"), None);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn frames_split_at_every_byte() {
        let mut all = encode(StreamKind::Stdout, b"out");
        all.extend(encode(StreamKind::Stderr, b"err-data"));
        all.extend(encode(StreamKind::Stdout, b""));
        let mut d = Demuxer::new();
        let mut got = Vec::new();
        for b in &all {
            d.push(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().expect("valid") {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (StreamKind::Stdout, Bytes::from_static(b"out")));
        assert_eq!(
            got[1],
            (StreamKind::Stderr, Bytes::from_static(b"err-data"))
        );
        assert_eq!(got[2], (StreamKind::Stdout, Bytes::new()));
    }

    #[test]
    fn big_length_is_big_endian() {
        let payload = vec![b'x'; 70000];
        let enc = encode(StreamKind::Stderr, &payload);
        assert_eq!(&enc[..8], &[2, 0, 0, 0, 0, 1, 0x11, 0x70]);
        let mut d = Demuxer::new();
        d.push(&enc[..40000]);
        assert_eq!(d.next_frame().expect("valid"), None);
        d.push(&enc[40000..]);
        let (_, p) = d.next_frame().expect("valid").expect("complete");
        assert_eq!(p.len(), 70000);
    }

    #[test]
    fn bad_stream_byte_is_an_error() {
        let mut d = Demuxer::new();
        d.push(&[9, 0, 0, 0, 0, 0, 0, 1, b'a']);
        assert_eq!(d.next_frame(), Err(FrameError::BadStream(9)));
    }
}
