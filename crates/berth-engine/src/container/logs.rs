//! `logs`: read the json-file log the shim writes, with Docker's selection options, and
//! follow it while the container runs.
//!
//! The shim rotates `<id>-json.log` to `.1`, `.2`, ... so a full read walks the rotated files
//! oldest first. Output is framed like the attach stream: 8-byte headers for non-TTY
//! containers, raw bytes for TTY ones.

use super::state::Status;
use crate::{util, Engine, Error, Result};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
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

fn render(l: &Line, opts: &LogOptions, tty: bool) -> Option<Vec<u8>> {
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
        payload.extend_from_slice(l.time.as_bytes());
        payload.push(b' ');
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
        let (tx, rx) = mpsc::channel(64);
        let path = c.log_path.clone();
        let engine = self.clone();
        let id = c.id.clone();
        tokio::task::spawn_blocking(move || {
            let mut lines: Vec<Vec<u8>> = Vec::new();
            let mut pos = 0u64;
            for f in log_files(&path) {
                let Ok(file) = std::fs::File::open(&f) else {
                    continue;
                };
                let mut r = BufReader::new(file);
                let mut buf = String::new();
                while r.read_line(&mut buf).unwrap_or(0) > 0 {
                    if let Ok(l) = serde_json::from_str::<Line>(&buf) {
                        if let Some(b) = render(&l, &opts, tty) {
                            lines.push(b);
                        }
                    }
                    buf.clear();
                }
                if f == path {
                    pos = r.stream_position().unwrap_or(0);
                }
            }
            let skip = match opts.tail {
                Some(n) => lines.len().saturating_sub(n),
                None => 0,
            };
            for l in lines.into_iter().skip(skip) {
                if tx.blocking_send(l).is_err() {
                    return;
                }
            }
            if !opts.follow {
                return;
            }
            let mut buf = String::new();
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
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                if len < pos {
                    pos = 0; // rotated
                }
                if file.seek(SeekFrom::Start(pos)).is_err() {
                    return;
                }
                let mut r = BufReader::new(file);
                loop {
                    buf.clear();
                    let n = r.read_line(&mut buf).unwrap_or(0);
                    if n == 0 || !buf.ends_with('\n') {
                        break;
                    }
                    pos += n as u64;
                    if let Ok(l) = serde_json::from_str::<Line>(&buf) {
                        if opts.until.is_some_and(|u| time_secs(&l.time) > u) {
                            return;
                        }
                        if let Some(b) = render(&l, &opts, tty) {
                            if tx.blocking_send(b).is_err() {
                                return;
                            }
                        }
                    }
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
        assert!(render(&l, &o, false).is_none());
        o.stderr = true;
        o.timestamps = true;
        assert_eq!(
            render(&l, &o, true).expect("selected"),
            b"2024-01-01T00:00:00.5Z x\n".to_vec()
        );
        o.since = Some(1_704_067_201.0);
        assert!(render(&l, &o, true).is_none());
    }
}
