//! `logs`: read the json-file log the shim writes, with Docker's selection options, and
//! follow it while the container runs.
//!
//! The shim rotates `<id>-json.log` to `.1`, `.2`, ... so a full read walks the rotated files
//! oldest first. Output is framed like the attach stream: 8-byte headers for non-TTY
//! containers, raw bytes for TTY ones.
//!
//! **Drivers.** `json-file` and `local` are both readable: berth stores `local` logs in the
//! same on-disk format (the format is the driver's own business; only `docker logs` and
//! the rotation options are visible), with dockerd's `local` defaults of 20 MB by 5 files.
//! `none` cannot be read, with dockerd's message.
//!
//! **Following across rotation.** The follower keeps the inode of the file it reads; when
//! `<id>-json.log` has a new inode the old file is now `.1`, so the follower first drains
//! the rest of `.1` from its position and then starts the new file at 0, losing nothing.
//! The log is written by the shim, not by berthd, so output a container produces while
//! berthd is down is in the files when it comes back.
//!
//! **`--details`** prefixes each line with the extra attributes dockerd's json-file writer
//! would have stored (`labels` and `env` log options: the named container labels and
//! environment variables), `k=v` pairs sorted by key and joined by `,`, then a space
//! (a lone space when there are none, as dockerd). berth computes them at read time
//! from the container's config, which is the same data. Timestamps are printed in
//! dockerd's fixed-width RFC 3339 (`.000000000Z`).
//!
//! **Speed.** A 100 MB log is about a million lines, so per-line costs decide the speed.
//! A whole-log read (no `tail`) goes through `blocks`: the files are read in 1 MiB blocks
//! of whole lines; on a machine with cores to spare, a reader thread and decoder threads
//! render blocks in parallel and the calling thread sends their output in order (on two
//! cores a file in the page cache is read and decoded on one thread, see `decoders_for`,
//! and one from the disk is mapped and decoded by two, see `mapped`). berth's own CLI
//! asks for merged frames (see [`Framing`]), so it is not left stripping a header per
//! line. A line in the exact layout the shim
//! (and dockerd) writes, `{"log":"…","stream":"stdout","time":"…"}`, is parsed in one
//! pass from the block (`parse_record`: the string's end, its first escape and the line's
//! end in one scan), its text copied (or unescaped from its first backslash) straight into
//! the output behind a frame header whose length is patched afterwards, and the timestamp
//! is parsed only when `since`, `until` or `timestamps` need it. Any other layout, or an
//! escape the fast decoder does not take (a lone surrogate), goes through serde_json, so
//! the output is the same either way. Output leaves in 256 KiB pieces from a per-read
//! pool, reused once the HTTP layer has written them. Memory stays flat: at most a few
//! blocks and their output are in flight (see `blocks`) plus the channel's 8 pieces and
//! the pool's 16 spare pieces, whatever the log size. `tail` and `follow` read line by
//! line on one thread.

use super::state::Status;
use crate::{util, Engine, Error, Result};
use bytes::Bytes;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

mod blocks;
mod mapped;

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<f64>,
    pub until: Option<f64>,
    pub timestamps: bool,
    pub tail: Option<usize>,
    /// `details=1`: prefix the extra attributes.
    pub details: bool,
    /// The client takes frames of any length (berth's own CLI asks, see [`Framing`]): a
    /// whole-log read then sends a run of lines of one stream as one frame.
    pub merge_frames: bool,
}

/// dockerd's `local` driver defaults, applied when a container sets no rotation options.
const LOCAL_MAX_SIZE: &str = "20m";
const LOCAL_MAX_FILE: &str = "5";

/// The log options a container's shim writes with: the container's own, else the
/// daemon's `log-opts`; the `local` driver rotates by default.
pub fn effective_log_opts(
    driver: &str,
    container: &BTreeMap<String, String>,
    daemon: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut opts = if container.is_empty() {
        daemon.clone()
    } else {
        container.clone()
    };
    if driver == "local" {
        opts.entry("max-size".into())
            .or_insert_with(|| LOCAL_MAX_SIZE.into());
        opts.entry("max-file".into())
            .or_insert_with(|| LOCAL_MAX_FILE.into());
    }
    opts
}

/// The `--details` prefix for a container: `labels`/`env` log options name the container
/// labels and environment variables to show, as dockerd's `ExtraAttributes`.
pub fn details_prefix(
    opts: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    env: &[String],
) -> String {
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    let names = |key: &str| -> Vec<String> {
        opts.get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    for l in names("labels") {
        if let Some(v) = labels.get(&l) {
            attrs.insert(l, v.clone());
        }
    }
    for name in names("env") {
        if let Some(v) = env.iter().find_map(|e| e.strip_prefix(&format!("{name}="))) {
            attrs.insert(name, v.to_string());
        }
    }
    let pairs: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("{k}={}", query_escape(v)))
        .collect();
    format!("{} ", pairs.join(","))
}

/// Go's `url.QueryEscape`, which dockerd applies to attribute values.
fn query_escape(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A stored time in dockerd's `RFC3339NanoFixed`.
fn fixed_time(t: &str) -> String {
    util::parse_time(t)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

/// Docker's multiplexed frame: [stream, 0, 0, 0, len u32 BE] + payload.
pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.push(stream);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// The log's files, oldest first: the rotated `<base>.N` (highest N is the oldest, as
/// the shim renames them) and then `base`. One directory read rather than a `stat` per
/// possible N: `max-file` may have been larger when the older files were written.
fn log_files(base: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (base.parent(), base.file_name().and_then(|n| n.to_str())) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let file = e.file_name();
                let n = file
                    .to_str()
                    .and_then(|f| f.strip_prefix(name))
                    .and_then(|f| f.strip_prefix('.'))
                    .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|n| n.parse::<u32>().ok());
                if let Some(n) = n.filter(|&n| n > 0) {
                    rotated.push((n, e.path()));
                }
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    files.push(base.to_path_buf());
    files
}

/// The number of cores, read once: `available_parallelism` reads the cgroup's CPU quota
/// files on every call.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn time_secs(t: &str) -> f64 {
    util::parse_time(t)
        .map(|d| d.timestamp() as f64 + d.timestamp_subsec_nanos() as f64 / 1e9)
        .unwrap_or(0.0)
}

/// A json-file line in the exact layout the shim writes, fields borrowed from the line;
/// `log` still JSON-escaped when `escaped`.
struct RawLine<'a> {
    log: &'a [u8],
    /// Where `log`'s first backslash is (its length if none): the text before it is
    /// copied as is, only the rest is unescaped.
    first_escape: usize,
    stderr: bool,
    time: &'a str,
}

/// A line in the shim's layout, else `None`.
fn split_fast(line: &[u8]) -> Option<RawLine<'_>> {
    parse_record(line)
        .filter(|&(_, n)| n == line.len())
        .map(|(raw, _)| raw)
}

/// Parses a record in the shim's exact layout,
/// `{"log":"…","stream":"stdout","time":"…"}`, at the start of `buf`, and returns it with
/// its length (up to its closing brace). A `\n` ends the record: called on a whole block,
/// this finds the same records as splitting it into lines first, in one pass over the
/// line instead of three (newline, string end, escapes).
fn parse_record(buf: &[u8]) -> Option<(RawLine<'_>, usize)> {
    const PREFIX: &[u8] = b"{\"log\":\"";
    let rest = buf.strip_prefix(PREFIX)?;
    // The string ends at the first quote that is not escaped: skip `\x` pairs.
    let (mut i, mut first_escape) = (0, None);
    let end = loop {
        let j = i + memchr::memchr3(b'"', b'\\', b'\n', &rest[i..])?;
        match rest[j] {
            b'"' => break j,
            b'\n' => return None,
            _ => {
                if rest.get(j + 1).is_none_or(|&c| c == b'\n') {
                    return None;
                }
                first_escape.get_or_insert(j);
                i = j + 2;
                // A quote right after an escape pair ends the string: saves a scan on
                // the common `…\n"` ending of a line.
                if rest.get(i) == Some(&b'"') {
                    break i;
                }
            }
        }
    };
    let log = &rest[..end];
    let first_escape = first_escape.unwrap_or(end);
    let after = &rest[end..];
    let (stderr, t) = match after.strip_prefix(b"\",\"stream\":\"stdout\",\"time\":\"") {
        Some(t) => (false, t),
        None => (
            true,
            after.strip_prefix(b"\",\"stream\":\"stderr\",\"time\":\"")?,
        ),
    };
    let q = memchr::memchr2(b'"', b'\n', t)?;
    if t[q] != b'"' || t.get(q + 1) != Some(&b'}') {
        return None;
    }
    let time = &t[..q];
    // Inlined: `is_ascii`'s call was a few per cent of a whole-log read.
    let time = if time.iter().fold(0, |a, &b| a | b) < 0x80 {
        // SAFETY: ASCII is UTF-8 (checked just above, cheaper than `from_utf8` on the
        // million short stamps of a big log).
        unsafe { std::str::from_utf8_unchecked(time) }
    } else {
        std::str::from_utf8(time).ok()?
    };
    let len = buf.len() - t.len() + q + 2;
    Some((
        RawLine {
            log,
            first_escape,
            stderr,
            time,
        },
        len,
    ))
}

/// Appends the JSON string contents `esc` unescaped to `out`; false (with `out` partly
/// written) for an escape serde_json would reject or that needs its care.
fn unescape_into(esc: &[u8], out: &mut Vec<u8>) -> bool {
    let mut rest = esc;
    while let Some(i) = memchr::memchr(b'\\', rest) {
        out.extend_from_slice(&rest[..i]);
        let Some(&c) = rest.get(i + 1) else {
            return false;
        };
        rest = &rest[i + 2..];
        let b = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let Some(cp) = rest.get(..4).and_then(hex4) else {
                    return false;
                };
                rest = &rest[4..];
                let ch = if (0xD800..0xDC00).contains(&cp) {
                    // A high surrogate must be followed by `\uDC00`-`\uDFFF`.
                    let Some(lo) = rest
                        .strip_prefix(b"\\u")
                        .and_then(|r| r.get(..4))
                        .and_then(hex4)
                        .filter(|lo| (0xDC00..0xE000).contains(lo))
                    else {
                        return false;
                    };
                    rest = &rest[6..];
                    char::from_u32(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00))
                } else {
                    char::from_u32(cp)
                };
                let Some(ch) = ch else {
                    return false;
                };
                out.extend_from_slice(ch.encode_utf8(&mut [0u8; 4]).as_bytes());
                continue;
            }
            _ => return false,
        };
        out.push(b);
    }
    out.extend_from_slice(rest);
    true
}

fn hex4(h: &[u8]) -> Option<u32> {
    u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
}

/// What [`render_line`] did with a line.
#[derive(Debug, PartialEq, Eq)]
enum Rendered {
    Written,
    /// Not selected (stream, `since`, `until`) or not a log record.
    Skipped,
    /// Later than `until`: a follower stops here.
    After,
}

/// Renders one json-file line (without its newline) onto `out`: an 8-byte frame header
/// unless `tty`, then the timestamp and details when asked, then the text.
fn render_line(
    line: &[u8],
    opts: &LogOptions,
    details: &str,
    f: &mut Framing,
    out: &mut Vec<u8>,
) -> Rendered {
    if let Some(raw) = split_fast(line) {
        if let Some(r) = render_raw(&raw, opts, details, f, out) {
            return r;
        }
    }
    render_slow(line, opts, details, f, out)
}

/// Renders a line in the shim's layout; `None` (nothing written) when its text needs
/// serde_json after all.
fn render_raw(
    raw: &RawLine<'_>,
    opts: &LogOptions,
    details: &str,
    f: &mut Framing,
    out: &mut Vec<u8>,
) -> Option<Rendered> {
    let start = out.len();
    let text = if raw.first_escape < raw.log.len() {
        Text::Escaped(raw.log, raw.first_escape)
    } else {
        Text::Plain(raw.log)
    };
    let r = render_parts(text, raw.stderr, raw.time, opts, details, f, out);
    if r.is_none() {
        out.truncate(start);
    }
    r
}

/// Renders a line in any layout serde_json reads.
fn render_slow(
    line: &[u8],
    opts: &LogOptions,
    details: &str,
    f: &mut Framing,
    out: &mut Vec<u8>,
) -> Rendered {
    let Ok(l) = serde_json::from_slice::<Line>(line) else {
        return Rendered::Skipped;
    };
    let text = Text::Plain(l.log.as_bytes());
    render_parts(text, l.stream == "stderr", &l.time, opts, details, f, out)
        .unwrap_or(Rendered::Skipped)
}

enum Text<'a> {
    /// JSON-escaped, its first backslash at the given offset.
    Escaped(&'a [u8], usize),
    Plain(&'a [u8]),
}

/// `None` when the escaped text needs serde_json after all.
fn render_parts(
    text: Text<'_>,
    stderr: bool,
    time: &str,
    opts: &LogOptions,
    details: &str,
    f: &mut Framing,
    out: &mut Vec<u8>,
) -> Option<Rendered> {
    if (stderr && !opts.stderr) || (!stderr && !opts.stdout) {
        return Some(Rendered::Skipped);
    }
    if opts.since.is_some() || opts.until.is_some() {
        let t = time_secs(time);
        if opts.until.is_some_and(|u| t > u) {
            return Some(Rendered::After);
        }
        if opts.since.is_some_and(|s| t < s) {
            return Some(Rendered::Skipped);
        }
    }
    let header = f.header(stderr, out);
    if opts.timestamps {
        out.extend_from_slice(fixed_time(time).as_bytes());
        out.push(b' ');
    }
    if opts.details {
        out.extend_from_slice(details.as_bytes());
    }
    match text {
        Text::Plain(p) => out.extend_from_slice(p),
        Text::Escaped(e, first) => {
            out.extend_from_slice(&e[..first]);
            // Most lines' only escape is their newline.
            if &e[first..] == b"\\n" {
                out.push(b'\n');
            } else if !unescape_into(&e[first..], out) {
                return None;
            }
        }
    }
    f.close(header, stderr, out);
    Some(Rendered::Written)
}

/// How rendered lines are framed: raw for a TTY container, else behind Docker's 8-byte
/// headers, one frame per line as dockerd sends them. Some clients iterate over frames
/// as lines (docker-py's `logs(stream=True)`), so that stays the default; a client that
/// says it takes frames of any length (`X-Berth-Merge-Frames`, sent by berth's CLI) gets
/// each run of lines of one stream in a piece as one frame: a million 8-byte headers
/// fewer to write, send and strip for a 100 MB log, and the client writes its output
/// straight from the received chunks.
struct Framing {
    tty: bool,
    merge: bool,
    /// While merging: the offset in the output of the frame the last line went to, and
    /// whether it is stderr's.
    open: Option<(usize, bool)>,
}

impl Framing {
    fn new(tty: bool, merge: bool) -> Framing {
        Framing {
            tty,
            merge,
            open: None,
        }
    }

    /// One frame per line (the follower and `tail`).
    fn lines(tty: bool) -> Framing {
        Framing::new(tty, false)
    }

    /// Where the frame a line of `stderr` goes to starts in `out`, after writing its header
    /// when it is a new one; `None` for a TTY. Nothing is recorded until [`Framing::close`],
    /// so a line rolled back in between leaves no trace.
    fn header(&self, stderr: bool, out: &mut Vec<u8>) -> Option<usize> {
        if self.tty {
            return None;
        }
        match self.open {
            Some((at, s)) if s == stderr => Some(at),
            _ => {
                out.extend_from_slice(&[if stderr { 2 } else { 1 }, 0, 0, 0, 0, 0, 0, 0]);
                Some(out.len() - 8)
            }
        }
    }

    /// Sets the length of the frame at `header` to the end of `out`.
    fn close(&mut self, header: Option<usize>, stderr: bool, out: &mut [u8]) {
        if let Some(at) = header {
            let len = (out.len() - at - 8) as u32;
            out[at + 4..at + 8].copy_from_slice(&len.to_be_bytes());
            if self.merge {
                self.open = Some((at, stderr));
            }
        }
    }
}

/// Size of the blocks the log files are read in.
const READ_BLOCK: usize = 1 << 20;

/// Renders the whole lines of `block` (each ending with `\n`) into pieces of about
/// [`Batch::SIZE`], appended to `out`. Same output as [`render_line`] on each line.
fn render_block(
    block: &[u8],
    opts: &LogOptions,
    details: &str,
    tty: bool,
    pool: &PiecePool,
    out: &mut Vec<Vec<u8>>,
) {
    let mut f = Framing::new(tty, opts.merge_frames);
    let mut piece = pool.take();
    let mut at = 0;
    while at < block.len() {
        let rest = &block[at..];
        let fast = parse_record(rest)
            .filter(|&(_, n)| rest.get(n) == Some(&b'\n'))
            .and_then(|(raw, n)| Some(n).zip(render_raw(&raw, opts, details, &mut f, &mut piece)));
        at += match fast {
            Some((n, _)) => n + 1,
            None => {
                let nl = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                render_slow(&rest[..nl], opts, details, &mut f, &mut piece);
                nl + 1
            }
        };
        if piece.len() >= Batch::SIZE {
            out.push(std::mem::replace(&mut piece, pool.take()));
            f.open = None;
        }
    }
    if !piece.is_empty() {
        out.push(piece);
    }
}

/// Decoder threads for a whole-log read of `bytes` on `cores` cores: none for a small log
/// (threads would cost more than they save), and two cores are left to the rest of the
/// stream (the HTTP writer and, usually on the same host, the client reading it). On the
/// 2-core development VM, decoding on the sending thread measured best: 45 to 47 ms for
/// the 100 MiB benchmark log from the page cache against 50 to 57 ms with one or two
/// decoder threads, which fought the writer and the client for the cores; from the disk
/// all variants took the same time.
fn decoders_for(bytes: u64, cores: usize) -> usize {
    if bytes <= 2 * READ_BLOCK as u64 {
        return 0;
    }
    cores.saturating_sub(2).min(4)
}

/// Calls `f` with every complete line `r` yields from its position on (without the
/// `\n`). A last line without its newline is not consumed (the shim may be writing it).
/// Returns the bytes of the complete lines and whether `f` asked to stop.
fn each_line<R: Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(&[u8]) -> ControlFlow<()>,
) -> (u64, ControlFlow<()>) {
    if buf.len() < READ_BLOCK {
        buf.resize(READ_BLOCK, 0);
    }
    let (mut start, mut end, mut consumed) = (0usize, 0usize, 0u64);
    loop {
        if start == end {
            (start, end) = (0, 0);
        } else if end == buf.len() {
            if start > 0 {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            } else {
                // One line longer than the buffer.
                buf.resize(buf.len() * 2, 0);
            }
        }
        let n = loop {
            match r.read(&mut buf[end..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(n) => break n,
                Err(_) => break 0,
            }
        };
        if n == 0 {
            return (consumed, ControlFlow::Continue(()));
        }
        let scan_from = end;
        end += n;
        let mut from = scan_from;
        while let Some(i) = memchr::memchr(b'\n', &buf[from..end]) {
            let nl = from + i;
            let line = &buf[start..nl];
            consumed += (nl + 1 - start) as u64;
            start = nl + 1;
            from = start;
            if f(line).is_break() {
                return (consumed, ControlFlow::Break(()));
            }
        }
    }
}

impl Engine {
    pub async fn logs(
        &self,
        name: &str,
        opts: LogOptions,
    ) -> Result<(bool, mpsc::Receiver<Bytes>)> {
        let h = self.lookup(name)?;
        let c = h.snapshot();
        if c.host_config.log_config.typ == "none" {
            return Err(Error::InvalidArgument(
                "configured logging driver does not support reading".into(),
            ));
        }
        let tty = c.config.tty;
        let details = details_prefix(
            &c.host_config.log_config.config,
            c.config.labels.as_ref().unwrap_or(&BTreeMap::new()),
            c.config.env.as_deref().unwrap_or(&[]),
        );
        let (tx, rx) = mpsc::channel(8);
        let path = c.log_path.clone();
        let engine = self.clone();
        let id = c.id.clone();
        tokio::task::spawn_blocking(move || {
            // Memory stays flat whatever the log size: without `tail` lines go out in
            // batches as they are read; with `tail` only the last N rendered lines are held.
            let files = log_files(&path);
            let mut block = Vec::new();
            let (mut pos, flow) = match opts.tail {
                None => {
                    // The whole log: read, decode and send on separate threads (`blocks`).
                    let bytes = files
                        .iter()
                        .filter_map(|f| std::fs::metadata(f).ok())
                        .map(|m| m.len())
                        .sum();
                    let pool = Arc::new(PiecePool::default());
                    blocks::stream_files(
                        files,
                        READ_BLOCK,
                        decoders_for(bytes, cores()),
                        |b, out| render_block(b, &opts, &details, tty, &pool, out),
                        |piece| match tx.blocking_send(PiecePool::wrap(&pool, piece)) {
                            Ok(()) => ControlFlow::Continue(()),
                            Err(_) => ControlFlow::Break(()),
                        },
                    )
                }
                Some(n) => send_tail(&files, n, &mut block, &opts, &details, tty, &tx),
            };
            if flow.is_break() {
                return;
            }
            if !opts.follow {
                return;
            }
            let mut ino = std::fs::metadata(&path).map(|m| m.ino()).ok();
            loop {
                let running = engine
                    .lookup(&id)
                    .map(|h| {
                        matches!(
                            h.status(),
                            Status::Running | Status::Paused | Status::Restarting
                        )
                    })
                    .unwrap_or(false);
                let Ok(mut file) = std::fs::File::open(&path) else {
                    if !running {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                };
                let md = file.metadata().ok();
                let now_ino = md.as_ref().map(|m| m.ino());
                if ino.is_some() && now_ino != ino {
                    // Rotated: the rest of the file we were reading is `.1` now.
                    let old = PathBuf::from(format!("{}.1", path.display()));
                    if let Ok(mut f) = std::fs::File::open(&old) {
                        let same = f.metadata().map(|m| Some(m.ino()) == ino).unwrap_or(false);
                        if same
                            && f.seek(SeekFrom::Start(pos)).is_ok()
                            && follow_lines(&mut f, &mut block, &mut pos, &opts, &details, tty, &tx)
                                .is_break()
                        {
                            return;
                        }
                    }
                    pos = 0;
                } else if md.as_ref().is_some_and(|m| m.len() < pos) {
                    pos = 0; // truncated
                }
                ino = now_ino;
                if file.seek(SeekFrom::Start(pos)).is_err() {
                    return;
                }
                if follow_lines(&mut file, &mut block, &mut pos, &opts, &details, tty, &tx)
                    .is_break()
                {
                    return;
                }
                if !running || tx.is_closed() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        Ok((tty, rx))
    }
}

/// Sends the last `n` selected lines of `files` (read oldest first). Returns the bytes of
/// complete lines in the last file and whether the client is gone.
fn send_tail(
    files: &[PathBuf],
    n: usize,
    block: &mut Vec<u8>,
    opts: &LogOptions,
    details: &str,
    tty: bool,
    tx: &mpsc::Sender<Bytes>,
) -> (u64, ControlFlow<()>) {
    let mut tail_buf: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let mut pos = 0;
    for (i, f) in files.iter().enumerate() {
        let Ok(mut file) = std::fs::File::open(f) else {
            continue;
        };
        let (consumed, _) = each_line(&mut file, block, |line| {
            if n > 0 {
                // Reuse the line that falls out of the window: no allocation per line.
                let mut v = if tail_buf.len() == n {
                    tail_buf.pop_front().unwrap_or_default()
                } else {
                    Vec::new()
                };
                v.clear();
                if render_line(line, opts, details, &mut Framing::lines(tty), &mut v)
                    == Rendered::Written
                {
                    tail_buf.push_back(v);
                }
            }
            ControlFlow::Continue(())
        });
        if i + 1 == files.len() {
            pos = consumed;
        }
    }
    let mut batch = Batch::new(tx);
    for l in tail_buf {
        batch.buf().extend_from_slice(&l);
        if batch.maybe_flush().is_break() {
            return (pos, ControlFlow::Break(()));
        }
    }
    (pos, batch.flush())
}

/// Sends the complete lines `r` has from `pos` on; breaks when the client is gone or
/// `until` has passed.
fn follow_lines<R: Read>(
    r: &mut R,
    block: &mut Vec<u8>,
    pos: &mut u64,
    opts: &LogOptions,
    details: &str,
    tty: bool,
    tx: &mpsc::Sender<Bytes>,
) -> ControlFlow<()> {
    let mut batch = Batch::new(tx);
    let mut past_until = false;
    let (n, flow) = each_line(r, block, |line| {
        match render_line(line, opts, details, &mut Framing::lines(tty), batch.buf()) {
            Rendered::After => {
                past_until = true;
                ControlFlow::Break(())
            }
            _ => batch.maybe_flush(),
        }
    });
    *pos += n;
    let sent = batch.flush();
    if past_until || flow.is_break() {
        return ControlFlow::Break(());
    }
    sent
}

/// The output buffers of one whole-log read, reused once the HTTP layer has written them:
/// decoder threads filling fresh 256 KiB buffers that another thread frees made the
/// allocator hand pages back and fault them in again, about 7 % of the daemon's time.
#[derive(Default)]
struct PiecePool(Mutex<Vec<Vec<u8>>>);

impl PiecePool {
    /// Buffers kept for reuse; the rest are freed.
    const KEEP: usize = 16;

    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_else(|| Vec::with_capacity(Batch::SIZE + 4096))
    }

    /// `buf` as a chunk for the body; its buffer comes back when the chunk is dropped.
    fn wrap(pool: &Arc<PiecePool>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: Arc::clone(pool),
        })
    }
}

struct Pooled {
    buf: Vec<u8>,
    pool: Arc<PiecePool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        // A buffer a huge line grew is not kept.
        if buf.capacity() > 2 * Batch::SIZE {
            return;
        }
        buf.clear();
        if let Ok(mut free) = self.pool.0.lock() {
            if free.len() < PiecePool::KEEP {
                free.push(buf);
            }
        }
    }
}

/// Collects rendered lines into chunks of about 256 KiB: one channel message and one HTTP
/// chunk per line made a 100 MB log stream at a few dozen MB/s.
struct Batch<'a> {
    tx: &'a mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl<'a> Batch<'a> {
    const SIZE: usize = 256 * 1024;

    fn new(tx: &'a mpsc::Sender<Bytes>) -> Batch<'a> {
        Batch {
            tx,
            buf: Vec::with_capacity(Self::SIZE + 4096),
        }
    }

    /// Where the next line is rendered.
    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Sends the batch once it is full; breaks when the client is gone.
    fn maybe_flush(&mut self) -> ControlFlow<()> {
        if self.buf.len() >= Self::SIZE {
            self.flush()
        } else {
            ControlFlow::Continue(())
        }
    }

    fn flush(&mut self) -> ControlFlow<()> {
        if self.buf.is_empty() {
            return ControlFlow::Continue(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(Self::SIZE + 4096));
        match self.tx.blocking_send(Bytes::from(chunk)) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The frames of a multiplexed stream, as (stream, payload).
    fn demux(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
            out.push((b[0], b[8..8 + len].to_vec()));
            b = &b[8 + len..];
        }
        out
    }

    #[test]
    fn frames() {
        assert_eq!(frame(1, b"hi"), vec![1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }

    fn rendered(line: &str, o: &LogOptions, details: &str, tty: bool) -> Option<Vec<u8>> {
        let mut out = b"prefix".to_vec();
        match render_line(
            line.as_bytes(),
            o,
            details,
            &mut Framing::lines(tty),
            &mut out,
        ) {
            Rendered::Written => Some(out.split_off(6)),
            _ => {
                assert_eq!(out, b"prefix", "nothing written for a skipped line");
                None
            }
        }
    }

    #[test]
    fn render_selects_streams_and_stamps() {
        let l = r#"{"log":"x\n","stream":"stderr","time":"2024-01-01T00:00:00.5Z"}"#;
        let mut o = LogOptions {
            stdout: true,
            ..Default::default()
        };
        assert!(rendered(l, &o, "", false).is_none());
        o.stderr = true;
        o.timestamps = true;
        assert_eq!(
            rendered(l, &o, "", true).expect("selected"),
            b"2024-01-01T00:00:00.500000000Z x\n".to_vec()
        );
        o.details = true;
        assert_eq!(
            rendered(l, &o, "a=b ", true).expect("selected"),
            b"2024-01-01T00:00:00.500000000Z a=b x\n".to_vec()
        );
        assert_eq!(
            rendered(l, &o, "a=b ", false).expect("framed"),
            frame(2, b"2024-01-01T00:00:00.500000000Z a=b x\n")
        );
        o.since = Some(1_704_067_201.0);
        assert!(rendered(l, &o, "", true).is_none());
        o.since = None;
        o.until = Some(1_704_067_199.0);
        let mut out = Vec::new();
        assert_eq!(
            render_line(l.as_bytes(), &o, "", &mut Framing::lines(true), &mut out),
            Rendered::After
        );
    }

    /// The in-place decoder must give exactly what serde_json gives, for the shim's own
    /// escapes (serde_json's writer), dockerd's (`\u003c` for `<`) and any layout.
    #[test]
    fn fast_decoder_matches_serde() {
        let o = LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let texts = [
            "plain\n",
            "quote \" backslash \\ slash / tab \t cr \r bell \u{7} nul \u{0}\n",
            "<html> & é ü 日本 🐳\n",
            "",
            "ends with backslash \\",
        ];
        for t in texts {
            for stream in ["stdout", "stderr"] {
                let line = serde_json::to_string(
                    &json!({"log": t, "stream": stream, "time": "2024-01-01T00:00:00Z"}),
                )
                .expect("json");
                assert!(split_fast(line.as_bytes()).is_some(), "fast layout: {line}");
                let want = frame(if stream == "stderr" { 2 } else { 1 }, t.as_bytes());
                assert_eq!(rendered(&line, &o, "", false), Some(want), "{line}");
            }
        }
        let escaped = [
            (
                r#"{"log":"\u003cb\u003e \u0026\n","stream":"stdout","time":"t"}"#,
                "<b> &\n",
            ),
            (
                r#"{"log":"\ud83d\udc33\/","stream":"stdout","time":"t"}"#,
                "🐳/",
            ),
            (
                r#"{"log":"\b\f","stream":"stdout","time":"t"}"#,
                "\u{8}\u{c}",
            ),
            // Not the shim's layout: serde_json decodes it.
            (
                r#"{"stream":"stdout","log":"moved\n","time":"t"}"#,
                "moved\n",
            ),
            (
                r#"{"log":"attrs\n","stream":"stdout","attrs":{"a":"b"},"time":"t"}"#,
                "attrs\n",
            ),
        ];
        for (line, want) in escaped {
            assert_eq!(
                rendered(line, &o, "", true),
                Some(want.as_bytes().to_vec()),
                "{line}"
            );
        }
        // What serde_json refuses is skipped, as before.
        for bad in [
            r#"{"log":"\ud83d lone","stream":"stdout","time":"t"}"#,
            r#"{"log":"\q","stream":"stdout","time":"t"}"#,
            r#"{"log":"cut"#,
            "not json",
        ] {
            assert_eq!(rendered(bad, &o, "", true), None, "{bad}");
        }
    }

    #[test]
    fn lines_are_split_across_blocks_and_partial_tails_are_left() {
        let mut data = Vec::new();
        let long = "y".repeat(READ_BLOCK + 10);
        for l in ["a", "", long.as_str(), "b"] {
            data.extend_from_slice(l.as_bytes());
            data.push(b'\n');
        }
        let complete = data.len() as u64;
        data.extend_from_slice(b"partial");
        let mut got = Vec::new();
        let mut block = Vec::new();
        let (n, flow) = each_line(&mut &data[..], &mut block, |l| {
            got.push(l.to_vec());
            ControlFlow::Continue(())
        });
        assert!(flow.is_continue());
        assert_eq!(n, complete);
        assert_eq!(
            got,
            vec![b"a".to_vec(), vec![], long.into_bytes(), b"b".to_vec()]
        );
    }

    /// A merged frame never spans two pieces: each piece is whole frames, so pieces can
    /// be sent (and decoded on other threads) independently.
    #[test]
    fn merged_frames_end_with_their_piece() {
        let mut block = Vec::new();
        for i in 0..6000 {
            let stream = if i % 1000 < 900 { "stdout" } else { "stderr" };
            block.extend_from_slice(
                format!(
                    r#"{{"log":"line {i:0>80}\n","stream":"{stream}","time":"2024-01-01T00:00:00Z"}}"#
                )
                .as_bytes(),
            );
            block.push(b'\n');
        }
        let o = LogOptions {
            stdout: true,
            stderr: true,
            merge_frames: true,
            ..Default::default()
        };
        let pool = PiecePool::default();
        let mut pieces = Vec::new();
        render_block(&block, &o, "", false, &pool, &mut pieces);
        assert!(pieces.len() > 1, "the block fills several pieces");
        let mut text = [Vec::new(), Vec::new()];
        let mut frames = 0;
        for p in &pieces {
            for (s, payload) in demux(p) {
                text[usize::from(s - 1)].extend_from_slice(&payload);
                frames += 1;
            }
        }
        assert!(frames <= 12 + pieces.len(), "{frames} frames");
        assert_eq!(text[0].len() + text[1].len(), 6000 * 86);
        assert!(text[1].starts_with(b"line 0000"));
        assert!(
            std::str::from_utf8(&text[0])
                .expect("utf-8")
                .lines()
                .count()
                == 5400
        );
    }

    /// Decoding a whole block in one pass gives what decoding its lines one by one gives,
    /// including lines the one-pass parser must not read across (a raw newline inside a
    /// string, a backslash before a newline) and CRLF endings.
    #[test]
    fn block_decoder_matches_line_decoder() {
        let lines: Vec<String> = vec![
            r#"{"log":"plain\n","stream":"stdout","time":"2024-01-01T00:00:00.5Z"}"#.into(),
            r#"{"log":"err \"q\" \\ \u003c\t","stream":"stderr","time":"2024-01-01T00:00:01Z"}"#
                .into(),
            r#"{"log":"crlf\n","stream":"stdout","time":"2024-01-01T00:00:02Z"}"#.to_string()
                + "\r",
            r#"{"log":"raw"#.into(),
            r#"newline\n","stream":"stdout","time":"2024-01-01T00:00:03Z"}"#.into(),
            r#"{"log":"backslash at end\"#.into(),
            r#"","stream":"stdout","time":"2024-01-01T00:00:04Z"}"#.into(),
            r#"{"log":"time cut","stream":"stdout","time":"2024-01-01"#.into(),
            r#"T00:00:05Z"}"#.into(),
            r#"{"log":"quote in time","stream":"stdout","time":"2024"x"}"#.into(),
            r#"{"stream":"stdout","log":"moved\n","time":"2024-01-01T00:00:06Z"}"#.into(),
            r#"{"log":"\ud83d lone","stream":"stdout","time":"2024-01-01T00:00:07Z"}"#.into(),
            r#"{"log":"\ud83d\udc33 whale","stream":"stderr","time":"2024-01-01T00:00:08Z"}"#
                .into(),
            // Strings that end right after an escape pair other than the newline.
            r#"{"log":"ends in a backslash \\","stream":"stdout","time":"2024-01-01T00:00:10Z"}"#
                .into(),
            r#"{"log":"ends in \u0041","stream":"stderr","time":"2024-01-01T00:00:11Z"}"#.into(),
            r#"{"log":"tab then quote\t\"","stream":"stdout","time":"2024-01-01T00:00:12Z"}"#
                .into(),
            String::new(),
            "not json".into(),
            r#"{"log":"last\n","stream":"stdout","time":"2024-01-01T00:00:09.123456789Z"}"#.into(),
        ];
        let mut block = Vec::new();
        for l in &lines {
            block.extend_from_slice(l.as_bytes());
            block.push(b'\n');
        }
        let base = LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let variants = [
            base.clone(),
            LogOptions {
                stderr: false,
                ..base.clone()
            },
            LogOptions {
                timestamps: true,
                details: true,
                ..base.clone()
            },
            LogOptions {
                since: Some(1_704_067_202.0),
                until: Some(1_704_067_207.0),
                ..base.clone()
            },
        ];
        let pool = PiecePool::default();
        for o in &variants {
            for tty in [false, true] {
                let mut want = Vec::new();
                for l in &lines {
                    render_line(l.as_bytes(), o, "a=b ", &mut Framing::lines(tty), &mut want);
                }
                let mut pieces = Vec::new();
                render_block(&block, o, "a=b ", tty, &pool, &mut pieces);
                assert_eq!(pieces.concat(), want, "{o:?} tty {tty}");
            }
        }
        // Merged frames carry the same bytes of each stream in the same order, with one
        // header per run of one stream's lines.
        let merged = LogOptions {
            merge_frames: true,
            ..base.clone()
        };
        let mut per_line = Vec::new();
        render_block(&block, &base, "a=b ", false, &pool, &mut per_line);
        let mut pieces = Vec::new();
        render_block(&block, &merged, "a=b ", false, &pool, &mut pieces);
        let runs = |frames: Vec<(u8, Vec<u8>)>| {
            let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
            for (s, p) in frames {
                match out.last_mut() {
                    Some((ls, lp)) if *ls == s => lp.extend_from_slice(&p),
                    _ => out.push((s, p)),
                }
            }
            out
        };
        let lines_frames = demux(&per_line.concat());
        let merged_frames = demux(&pieces.concat());
        assert!(merged_frames.len() < lines_frames.len());
        assert_eq!(
            runs(merged_frames.clone()),
            merged_frames,
            "no two frames of one stream in a row"
        );
        assert_eq!(runs(lines_frames), merged_frames);
        // The fixture exercises both paths: some lines decode, some are skipped.
        let mut all = Vec::new();
        render_block(&block, &base, "", true, &pool, &mut all);
        let text = String::from_utf8(all.concat()).expect("utf-8");
        assert!(text.contains("plain\n") && text.contains("moved\n") && text.contains("🐳 whale"));
        assert!(
            text.contains("ends in a backslash \\ends in Atab then quote\t\""),
            "{text:?}"
        );
        assert!(!text.contains("raw") && !text.contains("lone") && !text.contains("time cut"));
    }

    #[test]
    fn decoder_threads_leave_two_cores_to_the_stream() {
        let big = 100 << 20;
        assert_eq!(decoders_for(1000, 16), 0, "small logs decode inline");
        assert_eq!(decoders_for(big, 1), 0);
        assert_eq!(decoders_for(big, 2), 0);
        assert_eq!(decoders_for(big, 3), 1);
        assert_eq!(decoders_for(big, 4), 2);
        assert_eq!(decoders_for(big, 64), 4);
    }

    #[test]
    fn details_from_labels_and_env() {
        let opts: BTreeMap<String, String> = [
            ("labels".to_string(), "team,missing".to_string()),
            ("env".to_string(), "MODE".to_string()),
        ]
        .into();
        let labels: BTreeMap<String, String> = [
            ("team".to_string(), "a b/c".to_string()),
            ("other".to_string(), "x".to_string()),
        ]
        .into();
        let env = vec!["MODE=prod".to_string(), "MODEL=no".to_string()];
        assert_eq!(
            details_prefix(&opts, &labels, &env),
            "MODE=prod,team=a+b%2Fc "
        );
        assert_eq!(details_prefix(&BTreeMap::new(), &labels, &env), " ");
    }

    #[test]
    fn local_driver_rotates_by_default() {
        let none = BTreeMap::new();
        let daemon: BTreeMap<String, String> = [("max-size".to_string(), "1k".to_string())].into();
        let o = effective_log_opts("local", &none, &none);
        assert_eq!(o.get("max-size").map(String::as_str), Some("20m"));
        assert_eq!(o.get("max-file").map(String::as_str), Some("5"));
        let o = effective_log_opts("json-file", &none, &daemon);
        assert_eq!(o, daemon);
        let own: BTreeMap<String, String> = [("max-file".to_string(), "2".to_string())].into();
        assert_eq!(effective_log_opts("json-file", &own, &daemon), own);
    }

    #[test]
    fn log_files_lists_rotated_files_oldest_first() {
        let t = tempfile::tempdir().expect("tempdir");
        let base = t.path().join("c-json.log");
        for f in [
            "c-json.log",
            "c-json.log.1",
            "c-json.log.3",
            "c-json.log.12",
            "c-json.log.0",
            "c-json.log.x",
            "c-json.log.2.gz",
            "c-json.log.",
            "d-json.log.2",
            "c-json.logs.2",
        ] {
            std::fs::write(t.path().join(f), "").expect("write");
        }
        let names: Vec<String> = log_files(&base)
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "c-json.log.12",
                "c-json.log.3",
                "c-json.log.1",
                "c-json.log"
            ]
        );
        // No directory at all: just the base (reading it then says what is missing).
        let gone = t.path().join("nope").join("c-json.log");
        assert_eq!(log_files(&gone), vec![gone.clone()]);
    }

    #[test]
    fn follower_sends_complete_lines_and_tracks_position() {
        let t = tempfile::tempdir().expect("tempdir");
        let path = t.path().join("c-json.log");
        let line = |s: &str| {
            format!(
                "{{\"log\":\"{s}\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:00Z\"}}\n"
            )
        };
        std::fs::write(&path, line("one")).expect("write");
        let opts = LogOptions {
            stdout: true,
            follow: true,
            ..Default::default()
        };
        let (tx, mut rx) = mpsc::channel(16);
        let mut pos = 0;
        let mut block = Vec::new();
        let mut f = std::fs::File::open(&path).expect("open");
        let _ = follow_lines(&mut f, &mut block, &mut pos, &opts, "", true, &tx);
        assert_eq!(rx.try_recv().expect("one"), b"one\n".to_vec());
        assert_eq!(pos, line("one").len() as u64);
        // A line the shim is still writing is not consumed.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        std::io::Write::write_all(&mut f, line("two").as_bytes()).expect("write");
        std::io::Write::write_all(&mut f, b"{\"log\":\"thr").expect("write");
        let mut f = std::fs::File::open(&path).expect("open");
        f.seek(SeekFrom::Start(pos)).expect("seek");
        let _ = follow_lines(&mut f, &mut block, &mut pos, &opts, "", true, &tx);
        assert_eq!(rx.try_recv().expect("two"), b"two\n".to_vec());
        assert_eq!(pos, 2 * line("one").len() as u64);
    }
}
