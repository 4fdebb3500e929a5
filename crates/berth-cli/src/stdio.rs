//! Local terminal and standard streams for attach, run and exec: raw mode while a TTY
//! session is attached (restored on drop, also on error paths), the terminal size for
//! resize requests, and the pump that moves bytes between a hijacked connection and our
//! stdin/stdout/stderr, demultiplexing docker's frames when the container has no TTY.
//!
//! Output is written with blocking `std::io` writes: the process has one consumer per
//! stream, and a blocking write is what gives the pipe backpressure back to the daemon.

use std::io::Write;
use std::os::fd::AsRawFd;

use berth_client::frame::{FrameError, StreamKind, HEADER_LEN};
use berth_client::Hijacked;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Puts a terminal in raw mode and restores its previous settings when dropped.
pub struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    /// Enter raw mode on `fd` if it is a terminal; `None` otherwise.
    pub fn enter(fd: i32) -> Option<RawMode> {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(fd) } != 1 {
            return None;
        }
        // SAFETY: termios is plain old data; zeroed is a valid value for tcgetattr to fill.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd is a terminal and `saved` is a valid, writable termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw only edits the struct it is given.
        unsafe { libc::cfmakeraw(&mut raw) };
        // Keep output post-processing so that "\n" from the local side still renders.
        raw.c_oflag = saved.c_oflag;
        // SAFETY: fd is a terminal and `raw` a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the settings read from the same descriptor in `enter`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// The size (rows, columns) of the terminal on stdout or stdin, if either is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    for fd in [1, 0] {
        // SAFETY: winsize is plain old data.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes a winsize into the valid pointer we pass.
        let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        if r == 0 && ws.ws_row > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// True when `fd` is a terminal.
pub fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Which local streams a session uses.
#[derive(Debug, Clone, Copy)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// The container has a TTY: the stream is raw, not multiplexed.
    pub tty: bool,
}

fn write_all(kind: StreamKind, data: &[u8]) {
    let r = match kind {
        StreamKind::Stderr | StreamKind::System => {
            let mut e = std::io::stderr().lock();
            e.write_all(data).and_then(|_| e.flush())
        }
        _ => {
            let mut o = std::io::stdout().lock();
            o.write_all(data).and_then(|_| o.flush())
        }
    };
    // A closed stdout (`berth logs x | head`) must not abort the session with a panic; the
    // remaining output is dropped like docker drops it.
    let _ = r;
}

/// Write a (possibly multiplexed) chunk to the local streams.
///
/// Frames are taken apart in place, without copying the chunk into a reassembly buffer,
/// and the payloads of consecutive frames of one stream are written with one `write`:
/// a log is one frame per line (from dockerd; berthd merges them for berth's CLI), and a
/// write (and flush) per line made `berth logs` of a 100 MB log a million syscalls; long
/// payloads are written straight from the chunk. Output of the two streams keeps its order, and
/// everything received is written before `feed` returns (interactive sessions see it at
/// once).
pub struct OutputSink {
    multiplexed: bool,
    /// The frame header being read, when a chunk ended inside one.
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Payload bytes of the current frame still to come, and its stream.
    remaining: usize,
    kind: StreamKind,
    /// Payload gathered for one write, and the stream it goes to.
    out: Vec<u8>,
    out_kind: StreamKind,
}

impl OutputSink {
    /// Payload runs at least this long are written where they are.
    const DIRECT: usize = 4096;

    pub fn new(multiplexed: bool) -> Self {
        OutputSink {
            multiplexed,
            header: [0; HEADER_LEN],
            header_len: 0,
            remaining: 0,
            kind: StreamKind::Stdout,
            out: Vec::new(),
            out_kind: StreamKind::Stdout,
        }
    }

    /// Consume bytes from the daemon.
    pub fn feed(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.feed_to(data, &mut write_all)
    }

    /// [`OutputSink::feed`] with the writer given (tests collect the writes).
    fn feed_to(
        &mut self,
        mut data: &[u8],
        write: &mut impl FnMut(StreamKind, &[u8]),
    ) -> std::io::Result<()> {
        if !self.multiplexed {
            write(StreamKind::Stdout, data);
            return Ok(());
        }
        while !data.is_empty() {
            if self.remaining == 0 {
                let take = (HEADER_LEN - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
                self.header_len += take;
                data = &data[take..];
                if self.header_len < HEADER_LEN {
                    break;
                }
                self.header_len = 0;
                let h = self.header;
                self.kind = StreamKind::from_byte(h[0]).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        FrameError::BadStream(h[0]),
                    )
                })?;
                self.remaining = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
                continue;
            }
            let take = self.remaining.min(data.len());
            if self.kind != self.out_kind {
                self.flush(write);
                self.out_kind = self.kind;
            }
            if take >= Self::DIRECT {
                // A frame holding many lines (berthd merges them for us): written from
                // the chunk, not copied first.
                self.flush(write);
                write(self.kind, &data[..take]);
            } else {
                self.out.extend_from_slice(&data[..take]);
            }
            self.remaining -= take;
            data = &data[take..];
        }
        self.flush(write);
        Ok(())
    }

    fn flush(&mut self, write: &mut impl FnMut(StreamKind, &[u8])) {
        if !self.out.is_empty() {
            write(self.out_kind, &self.out);
            self.out.clear();
        }
    }
}

/// Move bytes between a hijacked connection and the local streams until the daemon closes
/// its side. Stdin is forwarded when asked; its EOF half-closes the connection so that the
/// container sees EOF too.
pub async fn pump(h: Hijacked, s: Streams) -> std::io::Result<()> {
    let multiplexed = h.multiplexed.unwrap_or(!s.tty);
    let (mut rd, mut wr) = tokio::io::split(h.io);
    let input = async move {
        if !s.stdin {
            return;
        }
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if wr.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    let _ = wr.flush().await;
                }
            }
        }
        let _ = wr.shutdown().await;
    };
    let output = async move {
        let mut sink = OutputSink::new(multiplexed);
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            sink.feed(&buf[..n])?;
        }
    };
    tokio::pin!(input);
    tokio::pin!(output);
    // Output decides when the session is over; input may block on a terminal forever.
    let mut input_done = false;
    loop {
        tokio::select! {
            r = &mut output => return r,
            _ = &mut input, if !input_done => input_done = true,
        }
    }
}

/// Keep the container's TTY size in step with ours: once now and on every SIGWINCH.
/// `resize` is called with (rows, cols).
pub fn spawn_resize_loop<F, Fut>(resize: F)
where
    F: Fn(u16, u16) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let fd_is_tty = is_tty(std::io::stdout().as_raw_fd()) || is_tty(0);
    if !fd_is_tty {
        return;
    }
    tokio::task::spawn_local(async move {
        if let Some((h, w)) = terminal_size() {
            resize(h, w).await;
        }
        let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while sig.recv().await.is_some() {
            if let Some((h, w)) = terminal_size() {
                resize(h, w).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    /// What a sink writes when `all` arrives in two chunks cut at `cut`, each stream's
    /// consecutive writes joined.
    fn fed_in_two(all: &[u8], cut: usize) -> Vec<(StreamKind, Vec<u8>)> {
        let mut sink = OutputSink::new(true);
        let mut got: Vec<(StreamKind, Vec<u8>)> = Vec::new();
        let mut w = |k: StreamKind, d: &[u8]| match got.last_mut() {
            Some((lk, v)) if *lk == k => v.extend_from_slice(d),
            _ => got.push((k, d.to_vec())),
        };
        sink.feed_to(&all[..cut], &mut w).expect("valid");
        sink.feed_to(&all[cut..], &mut w).expect("valid");
        got
    }

    #[test]
    fn sink_coalesces_frames_and_keeps_stream_order() {
        use berth_client::frame::encode;
        let mut all = Vec::new();
        for (k, p) in [
            (StreamKind::Stdout, &b"a\n"[..]),
            (StreamKind::Stdout, b"b\n"),
            (StreamKind::Stderr, b"e\n"),
            (StreamKind::Stdout, b""),
            (StreamKind::Stdout, b"c\n"),
        ] {
            all.extend(encode(k, p));
        }
        // Every way of cutting the stream into two chunks gives the same writes.
        for cut in 0..=all.len() {
            assert_eq!(
                fed_in_two(&all, cut),
                vec![
                    (StreamKind::Stdout, b"a\nb\n".to_vec()),
                    (StreamKind::Stderr, b"e\n".to_vec()),
                    (StreamKind::Stdout, b"c\n".to_vec()),
                ],
                "cut at {cut}"
            );
        }
        let mut writes = 0;
        OutputSink::new(true)
            .feed_to(&all[..all.len() - 11], &mut |_, _| writes += 1)
            .expect("valid");
        assert_eq!(writes, 2, "one write per run of one stream");
        let err = OutputSink::new(true).feed_to(&[9, 0, 0, 0, 0, 0, 0, 0], &mut |_, _| {});
        assert!(err.is_err());
    }

    /// Long payloads (merged frames) are written from the chunk, in order with the small
    /// ones gathered around them, wherever the chunks are cut.
    #[test]
    fn sink_writes_long_payloads_in_order() {
        use berth_client::frame::encode;
        let (big_out, big_err) = (vec![b'o'; 5000], vec![b'e'; 9000]);
        let mut all = Vec::new();
        for (k, p) in [
            (StreamKind::Stdout, &b"a\n"[..]),
            (StreamKind::Stdout, &big_out),
            (StreamKind::Stderr, b"e\n"),
            (StreamKind::Stderr, &big_err),
            (StreamKind::Stdout, b"c\n"),
        ] {
            all.extend(encode(k, p));
        }
        let want = vec![
            (StreamKind::Stdout, [&b"a\n"[..], &big_out].concat()),
            (StreamKind::Stderr, [&b"e\n"[..], &big_err].concat()),
            (StreamKind::Stdout, b"c\n".to_vec()),
        ];
        for cut in (0..=all.len()).step_by(7) {
            assert_eq!(fed_in_two(&all, cut), want, "cut at {cut}");
        }
    }

    use super::*;

    #[test]
    fn raw_mode_on_non_tty_is_none() {
        let f = tempfile::tempfile().expect("tempfile");
        assert!(RawMode::enter(f.as_raw_fd()).is_none());
        assert!(!is_tty(f.as_raw_fd()));
    }
}
