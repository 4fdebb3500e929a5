//! Reading whole log files fast: blocks of whole lines, decoded on several threads, emitted
//! in file order.
//!
//! Without this, reading and decoding took turns on one thread, so a log coming from the
//! disk cost the read time plus the decode time, and the second core sat idle. Here one
//! thread only reads: big sequential `read`s (with `POSIX_FADV_SEQUENTIAL`, which widens
//! the kernel's read-ahead), each block cut after its last newline and the partial line
//! carried to the start of the next block, so every block holds whole lines and can be
//! decoded on its own. Decoder threads take blocks in any order; the calling thread puts
//! their output back in order and hands it on.
//!
//! **Flat memory.** A fixed pool of block buffers bounds everything in flight: a buffer
//! goes back to the reader only once its block's output has been handed on, so the reader
//! is never more than [`POOL`] blocks ahead of the consumer, and no more than that many
//! decoded outputs wait to be reordered, whatever the log size. A line longer than a block
//! grows its buffer until its newline arrives (that buffer then stays big).
//!
//! **Same lines as the sequential reader.** Files are read oldest first and a line never
//! spans two files; the last line of a file without its newline is not taken (the shim may
//! be writing it), and the bytes of complete lines in the last file are reported, so a
//! follower continues exactly where this left off.

use std::fs::File;
use std::io::Read;
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use super::mapped;

/// Block buffers in flight between the reader and the consumer.
const POOL: usize = 6;

/// A block of whole lines, and its place in the stream.
struct Block {
    seq: u64,
    buf: Vec<u8>,
    /// The block is `buf[..len]`.
    len: usize,
}

/// Reads log files in order as blocks of whole lines.
struct BlockReader {
    files: std::vec::IntoIter<PathBuf>,
    /// The file being read; `None` between files.
    file: Option<File>,
    is_last: bool,
    /// Bytes of complete lines of the file being read.
    consumed: u64,
    /// Complete-line bytes of the last file, once it has been read.
    last_consumed: u64,
    /// The partial line that ended the previous block of this file.
    carry: Vec<u8>,
    block: usize,
}

impl BlockReader {
    fn new(files: Vec<PathBuf>, block: usize) -> BlockReader {
        BlockReader {
            files: files.into_iter(),
            file: None,
            is_last: false,
            consumed: 0,
            last_consumed: 0,
            carry: Vec::new(),
            block,
        }
    }

    /// Reads the next block of whole lines into the start of `buf` and returns its length;
    /// `None` at the end of the last file. `buf` keeps its size between calls (it is zeroed
    /// only when it grows).
    fn next_block(&mut self, buf: &mut Vec<u8>) -> Option<usize> {
        loop {
            if self.file.is_none() && !self.open_next() {
                return None;
            }
            let mut len = self.carry.len();
            let want = self.block.max(len + self.block / 2);
            if buf.len() < want {
                buf.resize(want, 0);
            }
            buf[..len].copy_from_slice(&self.carry);
            self.carry.clear();
            loop {
                if len == buf.len() {
                    // No newline in a whole buffer: one line longer than a block.
                    buf.resize(buf.len() * 2, 0);
                }
                let n = match self.file.as_mut() {
                    Some(f) => read_some(f, &mut buf[len..]),
                    None => 0,
                };
                let scan_from = len;
                len += n;
                if n == 0 {
                    // End of this file: a partial last line is left (not consumed).
                    self.finish_file();
                    break;
                }
                if let Some(i) = memchr::memrchr(b'\n', &buf[scan_from..len]) {
                    let end = scan_from + i + 1;
                    self.carry.extend_from_slice(&buf[end..len]);
                    self.consumed += end as u64;
                    return Some(end);
                }
            }
        }
    }

    fn open_next(&mut self) -> bool {
        while let Some(f) = self.files.next() {
            let is_last = self.files.len() == 0;
            let Ok(file) = File::open(&f) else {
                continue;
            };
            // SAFETY: the descriptor is open for the call; the advice changes only the
            // kernel's read-ahead for it.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
            self.file = Some(file);
            self.is_last = is_last;
            self.consumed = 0;
            self.carry.clear();
            return true;
        }
        false
    }

    fn finish_file(&mut self) {
        self.file = None;
        self.carry.clear();
        if self.is_last {
            self.last_consumed = self.consumed;
        }
    }
}

/// One `read`, retried on EINTR; an error ends the file like EOF (as the sequential reader).
fn read_some(f: &mut File, buf: &mut [u8]) -> usize {
    loop {
        match f.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(n) => return n,
            Err(_) => return 0,
        }
    }
}

/// Calls `emit` with the output `decode` makes of every block of whole lines of `files`
/// (oldest first), in order, decoding on `workers` threads (none: on this one). Returns the
/// bytes of complete lines in the last of `files` (0 if it could not be opened) and
/// whether `emit` asked to stop.
pub(super) fn stream_files<D, E>(
    files: Vec<PathBuf>,
    block: usize,
    workers: usize,
    decode: D,
    mut emit: E,
) -> (u64, ControlFlow<()>)
where
    D: Fn(&[u8], &mut Vec<Vec<u8>>) + Sync,
    E: FnMut(Vec<u8>) -> ControlFlow<()>,
{
    if workers == 0 {
        // File by file: a big file not yet in the page cache is decoded from a mapping
        // (`mapped`), the others are read.
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        let mut last_consumed = 0;
        let count = files.len();
        for (i, file) in files.into_iter().enumerate() {
            let (consumed, flow) = match mapped::stream_file(&file, block, &decode, &mut emit) {
                Some(done) => done,
                None => read_file(file, block, &decode, &mut emit, &mut buf, &mut out),
            };
            if i + 1 == count {
                last_consumed = consumed;
            }
            if flow.is_break() {
                return (last_consumed, flow);
            }
        }
        return (last_consumed, ControlFlow::Continue(()));
    }
    let mut reader = BlockReader::new(files, block);
    // Blocks go reader -> `jobs` -> a decoder -> `done` -> here (reordered, emitted) ->
    // `pool` -> reader. Dropping any end stops the others: a send or receive fails.
    let (pool_tx, pool_rx) = sync_channel::<Vec<u8>>(POOL);
    let (jobs_tx, jobs_rx) = sync_channel::<Block>(POOL);
    let (done_tx, done_rx) = sync_channel::<(Block, Vec<Vec<u8>>)>(POOL);
    for _ in 0..POOL {
        let _ = pool_tx.send(Vec::new());
    }
    // Each decoder holds the receiver, so it closes once the last decoder is gone and a
    // reader blocked on a full queue wakes up.
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    std::thread::scope(|s| {
        let reading = s.spawn(move || {
            let mut seq = 0;
            while let Ok(mut buf) = pool_rx.recv() {
                let Some(len) = reader.next_block(&mut buf) else {
                    break;
                };
                if jobs_tx.send(Block { seq, buf, len }).is_err() {
                    break;
                }
                seq += 1;
            }
            reader.last_consumed
        });
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let (jobs_rx, decode) = (Arc::clone(&jobs_rx), &decode);
            s.spawn(move || loop {
                let job = match jobs_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(b) = job else {
                    return;
                };
                let mut out = Vec::new();
                // A block that made the decoder panic still takes its turn (empty), or the
                // consumer would wait for it forever.
                let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    decode(&b.buf[..b.len], &mut out)
                }));
                if decoded.is_err() {
                    tracing::error!("log decoder panicked; a block of the log was dropped");
                    out.clear();
                }
                if done_tx.send((b, out)).is_err() {
                    return;
                }
            });
        }
        drop((done_tx, jobs_rx));
        let flow = emit_in_order(&done_rx, &pool_tx, &mut emit);
        // Unblock the reader and the decoders if we stopped early.
        drop(done_rx);
        drop(pool_tx);
        let consumed = reading.join().unwrap_or(0);
        (consumed, flow)
    })
}

/// One file with `read` on this thread: the bytes of its complete lines (0 if it could not
/// be opened) and whether `emit` asked to stop.
fn read_file<D, E>(
    file: PathBuf,
    block: usize,
    decode: &D,
    emit: &mut E,
    buf: &mut Vec<u8>,
    out: &mut Vec<Vec<u8>>,
) -> (u64, ControlFlow<()>)
where
    D: Fn(&[u8], &mut Vec<Vec<u8>>),
    E: FnMut(Vec<u8>) -> ControlFlow<()>,
{
    let mut reader = BlockReader::new(vec![file], block);
    while let Some(len) = reader.next_block(buf) {
        decode(&buf[..len], out);
        for piece in out.drain(..) {
            if emit(piece).is_break() {
                return (reader.last_consumed, ControlFlow::Break(()));
            }
        }
    }
    (reader.last_consumed, ControlFlow::Continue(()))
}

/// Emits decoded blocks in sequence order as they arrive, returning each block's buffer to
/// the reader's pool once its output is out.
fn emit_in_order(
    done: &Receiver<(Block, Vec<Vec<u8>>)>,
    pool: &std::sync::mpsc::SyncSender<Vec<u8>>,
    emit: &mut impl FnMut(Vec<u8>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let mut next = 0u64;
    let mut waiting: Vec<(Block, Vec<Vec<u8>>)> = Vec::new();
    while let Ok(d) = done.recv() {
        waiting.push(d);
        while let Some(i) = waiting.iter().position(|(b, _)| b.seq == next) {
            let (b, out) = waiting.swap_remove(i);
            for piece in out {
                if emit(piece).is_break() {
                    return ControlFlow::Break(());
                }
            }
            next += 1;
            // The reader may have finished: nobody takes the buffer back then.
            let _ = pool.send(b.buf);
        }
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits into lines again: what the decoders saw, in emitted order.
    fn lines_of(files: Vec<PathBuf>, block: usize, workers: usize) -> (Vec<Vec<u8>>, u64) {
        let mut got = Vec::new();
        let (n, flow) = stream_files(
            files,
            block,
            workers,
            |b, out| {
                assert_eq!(b.last(), Some(&b'\n'), "a block ends with a whole line");
                out.push(b.to_vec());
            },
            |piece| {
                got.extend_from_slice(&piece);
                ControlFlow::Continue(())
            },
        );
        assert!(flow.is_continue());
        let lines = got
            .split(|&c| c == b'\n')
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>();
        (lines[..lines.len() - 1].to_vec(), n)
    }

    fn write(dir: &std::path::Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).expect("write");
        p
    }

    #[test]
    fn blocks_hold_whole_lines_in_order() {
        let t = tempfile::tempdir().expect("tempdir");
        // Lines of every length around the block size, a huge one, CRLF, empty lines.
        let mut data = Vec::new();
        let mut want = Vec::new();
        for i in 0..3000usize {
            let l = match i % 7 {
                0 => vec![b'a' + (i % 26) as u8; i % 61],
                1 => format!("line {i}\r").into_bytes(),
                2 => Vec::new(),
                3 if i == 1003 => vec![b'h'; 10_000],
                _ => format!("{{\"log\":\"{i}\\n\"}}").into_bytes(),
            };
            data.extend_from_slice(&l);
            data.push(b'\n');
            want.push(l);
        }
        let last = data.len() as u64;
        data.extend_from_slice(b"partial tail, no newline");
        let p = write(t.path(), "c-json.log", &data);
        for block in [64, 100, 4096, 1 << 20] {
            for workers in [0, 1, 2, 3] {
                let (got, n) = lines_of(vec![p.clone()], block, workers);
                assert_eq!(got.len(), want.len(), "block {block} workers {workers}");
                assert!(got == want, "block {block} workers {workers}");
                assert_eq!(n, last);
            }
        }
    }

    #[test]
    fn lines_never_span_files_and_missing_files_are_skipped() {
        let t = tempfile::tempdir().expect("tempdir");
        let old = write(t.path(), "c-json.log.1", b"one\ntwo\ncut");
        let gone = t.path().join("c-json.log.2");
        let cur = write(t.path(), "c-json.log", b"three\nfour\nhalf");
        for workers in [0, 2] {
            let (got, n) = lines_of(vec![gone.clone(), old.clone(), cur.clone()], 4, workers);
            assert_eq!(got, [&b"one"[..], b"two", b"three", b"four"]);
            assert_eq!(n, 11, "complete lines of the last file");
        }
        // The last file missing: nothing of it was consumed.
        let (got, n) = lines_of(vec![old, t.path().join("none")], 4, 2);
        assert_eq!(got, [&b"one"[..], b"two"]);
        assert_eq!(n, 0);
    }

    #[test]
    fn stopping_early_ends_every_thread() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = write(t.path(), "c-json.log", &b"0123456789\n".repeat(10_000));
        let mut pieces = 0;
        let (_, flow) = stream_files(
            vec![p],
            64,
            2,
            |b, out| out.push(b.to_vec()),
            |_| {
                pieces += 1;
                if pieces == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        // Returning at all shows the reader and decoders ended (the scope joins them).
        assert!(flow.is_break());
        assert_eq!(pieces, 3);
    }
}
