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

use super::state::Status;
use crate::{util, Engine, Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

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

fn log_files(base: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for i in (1..100).rev() {
        let p = PathBuf::from(format!("{}.{i}", base.display()));
        if p.exists() {
            files.push(p);
        }
    }
    files.push(base.to_path_buf());
    files
}

fn time_secs(t: &str) -> f64 {
    util::parse_time(t)
        .map(|d| d.timestamp() as f64 + d.timestamp_subsec_nanos() as f64 / 1e9)
        .unwrap_or(0.0)
}

fn render(l: &Line, opts: &LogOptions, details: &str, tty: bool) -> Option<Vec<u8>> {
    let is_err = l.stream == "stderr";
    if (is_err && !opts.stderr) || (!is_err && !opts.stdout) {
        return None;
    }
    let t = time_secs(&l.time);
    if opts.since.is_some_and(|s| t < s) || opts.until.is_some_and(|u| t > u) {
        return None;
    }
    let mut payload = Vec::new();
    if opts.timestamps {
        payload.extend_from_slice(fixed_time(&l.time).as_bytes());
        payload.push(b' ');
    }
    if opts.details {
        payload.extend_from_slice(details.as_bytes());
    }
    payload.extend_from_slice(l.log.as_bytes());
    Some(if tty {
        payload
    } else {
        frame(if is_err { 2 } else { 1 }, &payload)
    })
}

impl Engine {
    pub async fn logs(
        &self,
        name: &str,
        opts: LogOptions,
    ) -> Result<(bool, mpsc::Receiver<Vec<u8>>)> {
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
        let (tx, rx) = mpsc::channel(64);
        let path = c.log_path.clone();
        let engine = self.clone();
        let id = c.id.clone();
        tokio::task::spawn_blocking(move || {
            // Memory stays flat whatever the log size: without `tail` every line is sent as
            // it is read; with `tail` only the last N rendered lines are held.
            let mut tail_buf: std::collections::VecDeque<Vec<u8>> =
                std::collections::VecDeque::new();
            let mut batch = Batch::new(&tx);
            let mut pos = 0u64;
            for f in log_files(&path) {
                let Ok(file) = std::fs::File::open(&f) else {
                    continue;
                };
                let mut r = BufReader::new(file);
                let mut buf = String::new();
                while r.read_line(&mut buf).unwrap_or(0) > 0 {
                    if let Ok(l) = serde_json::from_str::<Line>(&buf) {
                        if let Some(b) = render(&l, &opts, &details, tty) {
                            match opts.tail {
                                Some(0) => {}
                                Some(n) => {
                                    if tail_buf.len() == n {
                                        tail_buf.pop_front();
                                    }
                                    tail_buf.push_back(b);
                                }
                                None => {
                                    if batch.push(b).is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    }
                    buf.clear();
                }
                if f == path {
                    pos = r.stream_position().unwrap_or(0);
                }
            }
            for l in tail_buf {
                if batch.push(l).is_err() {
                    return;
                }
            }
            if batch.flush().is_err() {
                return;
            }
            if !opts.follow {
                return;
            }
            let mut buf = String::new();
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
                        if same && f.seek(SeekFrom::Start(pos)).is_ok() {
                            let mut r = BufReader::new(f);
                            if follow_lines(&mut r, &mut buf, &mut pos, &opts, &details, tty, &tx)
                                .is_break()
                            {
                                return;
                            }
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
                let mut r = BufReader::new(file);
                if follow_lines(&mut r, &mut buf, &mut pos, &opts, &details, tty, &tx).is_break() {
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

/// Sends the complete lines `r` has from `pos` on; breaks when the client is gone or
/// `until` has passed.
fn follow_lines<R: BufRead>(
    r: &mut R,
    buf: &mut String,
    pos: &mut u64,
    opts: &LogOptions,
    details: &str,
    tty: bool,
    tx: &mpsc::Sender<Vec<u8>>,
) -> std::ops::ControlFlow<()> {
    use std::ops::ControlFlow;
    let mut batch = Batch::new(tx);
    loop {
        buf.clear();
        let n = r.read_line(buf).unwrap_or(0);
        if n == 0 || !buf.ends_with('\n') {
            return match batch.flush() {
                Ok(()) => ControlFlow::Continue(()),
                Err(()) => ControlFlow::Break(()),
            };
        }
        *pos += n as u64;
        if let Ok(l) = serde_json::from_str::<Line>(buf) {
            if opts.until.is_some_and(|u| time_secs(&l.time) > u) {
                let _ = batch.flush();
                return ControlFlow::Break(());
            }
            if let Some(b) = render(&l, opts, details, tty) {
                if batch.push(b).is_err() {
                    return ControlFlow::Break(());
                }
            }
        }
    }
}

/// Groups rendered lines into chunks of about 64 KiB: one channel message and one HTTP
/// chunk per line made a 100 MB log stream at a few dozen MB/s.
struct Batch<'a> {
    tx: &'a mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl<'a> Batch<'a> {
    const SIZE: usize = 64 * 1024;

    fn new(tx: &'a mpsc::Sender<Vec<u8>>) -> Batch<'a> {
        Batch {
            tx,
            buf: Vec::with_capacity(Self::SIZE),
        }
    }

    /// Err when the client is gone.
    fn push(&mut self, data: Vec<u8>) -> Result<(), ()> {
        self.buf.extend_from_slice(&data);
        if self.buf.len() >= Self::SIZE {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(Self::SIZE));
        self.tx.blocking_send(chunk).map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(frame(1, b"hi"), vec![1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }

    #[test]
    fn render_selects_streams_and_stamps() {
        let l = Line {
            log: "x\n".into(),
            stream: "stderr".into(),
            time: "2024-01-01T00:00:00.5Z".into(),
        };
        let mut o = LogOptions {
            stdout: true,
            ..Default::default()
        };
        assert!(render(&l, &o, "", false).is_none());
        o.stderr = true;
        o.timestamps = true;
        assert_eq!(
            render(&l, &o, "", true).expect("selected"),
            b"2024-01-01T00:00:00.500000000Z x\n".to_vec()
        );
        o.details = true;
        assert_eq!(
            render(&l, &o, "a=b ", true).expect("selected"),
            b"2024-01-01T00:00:00.500000000Z a=b x\n".to_vec()
        );
        o.since = Some(1_704_067_201.0);
        assert!(render(&l, &o, "", true).is_none());
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
        let mut buf = String::new();
        let mut r = BufReader::new(std::fs::File::open(&path).expect("open"));
        let _ = follow_lines(&mut r, &mut buf, &mut pos, &opts, "", true, &tx);
        assert_eq!(rx.try_recv().expect("one"), b"one\n".to_vec());
        assert_eq!(pos, line("one").len() as u64);
    }
}
