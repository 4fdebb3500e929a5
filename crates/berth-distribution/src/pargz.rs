//! gzip compression spread over all cores, for pushing plain-tar layers.
//!
//! Deflate at docker's level is about 50 MB/s on one core, which made pushing a freshly
//! imported or built 100 MiB layer as slow as `docker push`. The input is cut into fixed
//! 1 MiB pieces; each is deflated on its own (raw deflate, no dictionary from the piece
//! before) and ended with a sync flush, so it stops on a byte boundary with the final-block
//! bit clear; the last piece is finished normally. Deflate allows a stream to be any
//! sequence of blocks, so the pieces concatenated behind one gzip header, followed by the
//! CRC-32 and length of the whole input, are a single ordinary gzip member that every
//! decoder reads (this is what pigz does, minus its shared dictionaries).
//!
//! The output depends only on the input, the level and the piece size, never on the number
//! of threads or their timing: the same tar always gives the same blob digest, which is
//! what lets a second push find the blob already in the registry.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::{mpsc, Arc, Mutex};

/// Bytes of input per independently deflated piece.
const PIECE: usize = 1 << 20;

/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown (as flate2's
/// own encoder writes it).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Deflates one piece; `last` finishes the stream, the others end on a sync flush.
fn deflate_piece(data: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 64);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done = c.total_in() as usize == data.len() && out.len() < out.capacity();
        match status {
            Status::StreamEnd => return Ok(out),
            _ if done && !last => return Ok(out),
            _ => out.reserve(64 * 1024),
        }
    }
}

/// Reads `input` to its end and writes it gzip-compressed at `level` to `out`, using up to
/// `threads` cores. Returns the number of input bytes. `on_read` sees each piece's length
/// as it is read (progress).
pub fn compress<R: Read, W: Write>(
    mut input: R,
    out: &mut W,
    level: u32,
    threads: usize,
    mut on_read: impl FnMut(usize),
) -> io::Result<u64> {
    let threads = threads.max(1);
    out.write_all(&HEADER)?;
    // Both channels bounded: at most a few pieces per worker are in memory.
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Vec<u8>, bool)>(threads);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let sink = &mut *out;
    let (done_tx, done_rx) = mpsc::sync_channel::<(usize, io::Result<Vec<u8>>)>(threads);
    let (crc, total) = std::thread::scope(move |scope| -> io::Result<(Crc, u64)> {
        for _ in 0..threads {
            let (rx, tx) = (work_rx.clone(), done_tx.clone());
            scope.spawn(move || loop {
                let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok((i, data, last)) = next else { return };
                if tx.send((i, deflate_piece(&data, level, last))).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        // `work_tx` and `done_rx` live in this closure: leaving it early (an error) drops
        // them, which ends every worker before the scope joins them.
        let mut crc = Crc::new();
        let mut total = 0u64;
        let mut pending: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
        let (mut next_out, mut sent) = (0usize, 0usize);
        let mut take = |(i, r): (usize, io::Result<Vec<u8>>),
                        pending: &mut BTreeMap<usize, Vec<u8>>,
                        next_out: &mut usize|
         -> io::Result<()> {
            pending.insert(i, r?);
            while let Some(piece) = pending.remove(next_out) {
                sink.write_all(&piece)?;
                *next_out += 1;
            }
            Ok(())
        };
        // One piece of read-ahead tells whether the current one is the last.
        let mut current = read_piece(&mut input)?;
        loop {
            let following = if current.is_empty() {
                Vec::new()
            } else {
                read_piece(&mut input)?
            };
            // An empty input still gets one finished (empty) deflate stream.
            let last = following.is_empty();
            crc.update(&current);
            total += current.len() as u64;
            on_read(current.len());
            work_tx
                .send((sent, current, last))
                .map_err(|_| io::Error::other("compression workers stopped"))?;
            sent += 1;
            while sent - next_out > threads * 2 {
                let r = done_rx.recv().map_err(io::Error::other)?;
                take(r, &mut pending, &mut next_out)?;
            }
            while let Ok(r) = done_rx.try_recv() {
                take(r, &mut pending, &mut next_out)?;
            }
            if last {
                break;
            }
            current = following;
        }
        drop(work_tx);
        while next_out < sent {
            let r = done_rx.recv().map_err(io::Error::other)?;
            take(r, &mut pending, &mut next_out)?;
        }
        Ok((crc, total))
    })?;
    out.write_all(&crc.sum().to_le_bytes())?;
    out.write_all(&crc.amount().to_le_bytes())?;
    Ok(total)
}

/// Up to [`PIECE`] bytes; shorter only at the end of the input.
fn read_piece<R: Read>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; PIECE];
    let mut n = 0;
    while n < PIECE {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        // GzDecoder (not Multi): the output must be one member.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        // Half compressible text, half pseudo-random bytes.
        let mut x: u32 = 12345;
        (0..len)
            .map(|i| {
                if (i / 70_000) % 2 == 0 {
                    b"layer line of a tar file\n"[i % 25]
                } else {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                }
            })
            .collect()
    }

    #[test]
    fn round_trips_as_one_member_at_every_size() {
        for len in [0, 1, 1000, PIECE - 1, PIECE, PIECE + 1, 3 * PIECE + 17] {
            let input = sample(len);
            let mut out = Vec::new();
            let n = compress(&input[..], &mut out, 6, 2, |_| {}).unwrap();
            assert_eq!(n, len as u64);
            assert_eq!(gunzip(&out), input, "len {len}");
        }
    }

    #[test]
    fn output_does_not_depend_on_threads() {
        let input = sample(5 * PIECE + 123);
        let mut one = Vec::new();
        compress(&input[..], &mut one, 6, 1, |_| {}).unwrap();
        for threads in [2, 3, 8] {
            let mut many = Vec::new();
            compress(&input[..], &mut many, 6, threads, |_| {}).unwrap();
            assert_eq!(one, many, "{threads} threads");
        }
    }

    #[test]
    fn system_gzip_reads_it() {
        let input = sample(2 * PIECE + 5);
        let mut out = Vec::new();
        compress(&input[..], &mut out, 6, 2, |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.gz");
        std::fs::write(&f, &out).unwrap();
        let o = std::process::Command::new("gzip")
            .args(["-dc"])
            .arg(&f)
            .output()
            .expect("gzip runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, input);
    }
}
