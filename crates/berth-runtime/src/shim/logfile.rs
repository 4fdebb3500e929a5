//! Docker's `json-file` log format, written by the shim.
//!
//! One JSON object per line: `{"log":"text\n","stream":"stdout","time":"<RFC3339Nano UTC>"}`.
//! Output is split at newlines; a line longer than 16 KiB is emitted in 16 KiB pieces without
//! the trailing newline, exactly as dockerd does, so `docker logs` reassembles them. Rotation
//! happens before a write would push the file past `max_size`: `name` becomes `name.1`,
//! `name.1` becomes `name.2`, ... keeping `max_files` files in total.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// dockerd's buffer size for partial lines.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("open log {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("write log {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("rotate log {path}: {source}")]
    Rotate { path: PathBuf, source: io::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

pub struct JsonLog {
    path: PathBuf,
    max_size: Option<u64>,
    max_files: u32,
    file: File,
    size: u64,
    partial: [Vec<u8>; 2],
}

#[derive(serde::Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

impl JsonLog {
    pub fn open(path: &Path, max_size: Option<u64>, max_files: u32) -> Result<JsonLog, LogError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|source| LogError::Open {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| LogError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(JsonLog {
            path: path.to_path_buf(),
            max_size: max_size.filter(|m| *m > 0),
            max_files: max_files.max(1),
            file,
            size,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Add raw output; complete lines (and 16 KiB pieces of long ones) are written now.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<(), LogError> {
        let idx = stream as usize;
        let mut buf = std::mem::take(&mut self.partial[idx]);
        buf.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &buf[start..];
            match rest.iter().position(|b| *b == b'\n') {
                Some(pos) if pos < MAX_LINE => {
                    self.emit(stream, &rest[..=pos])?;
                    start += pos + 1;
                }
                _ if rest.len() >= MAX_LINE => {
                    self.emit(stream, &rest[..MAX_LINE])?;
                    start += MAX_LINE;
                }
                _ => break,
            }
        }
        buf.drain(..start);
        self.partial[idx] = buf;
        Ok(())
    }

    /// Write out whatever partial lines remain (at exit).
    pub fn flush_partial(&mut self) -> Result<(), LogError> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let buf = std::mem::take(&mut self.partial[stream as usize]);
            if !buf.is_empty() {
                self.emit(stream, &buf)?;
            }
        }
        Ok(())
    }

    fn emit(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), LogError> {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let text = String::from_utf8_lossy(bytes);
        let mut line = serde_json::to_vec(&Entry {
            log: &text,
            stream: stream.name(),
            time: &time,
        })
        .expect("a struct of strings always serializes");
        line.push(b'\n');
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + line.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file
            .write_all(&line)
            .map_err(|source| LogError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        let rot = |source| LogError::Rotate {
            path: self.path.clone(),
            source,
        };
        if self.max_files > 1 {
            let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
            for i in (1..self.max_files - 1).rev() {
                match fs::rename(name(i), name(i + 1)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(rot(e)),
                }
            }
            fs::rename(&self.path, name(1)).map_err(rot)?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|source| LogError::Open {
                    path: self.path.clone(),
                    source,
                })?;
        } else {
            // One file only: start it over, as dockerd does with max-file=1.
            self.file.set_len(0).map_err(rot)?;
        }
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(path: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    #[test]
    fn splits_lines_and_keeps_partials() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("c-json.log");
        let mut log = JsonLog::open(&p, None, 1).expect("open");
        log.write(Stream::Stdout, b"hello\nwor").expect("write");
        log.write(Stream::Stderr, b"err\n").expect("write");
        log.write(Stream::Stdout, b"ld\ntail").expect("write");
        log.flush_partial().expect("flush");
        let e = entries(&p);
        let logs: Vec<(&str, &str)> = e
            .iter()
            .map(|v| {
                (
                    v["log"].as_str().expect("log"),
                    v["stream"].as_str().expect("stream"),
                )
            })
            .collect();
        assert_eq!(
            logs,
            vec![
                ("hello\n", "stdout"),
                ("err\n", "stderr"),
                ("world\n", "stdout"),
                ("tail", "stdout")
            ]
        );
        let t = e[0]["time"].as_str().expect("time");
        assert!(t.ends_with('Z') && t.contains('T'), "{t}");
        chrono::DateTime::parse_from_rfc3339(t).expect("rfc3339");
    }

    #[test]
    fn long_lines_split_at_16k() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("l.log");
        let mut log = JsonLog::open(&p, None, 1).expect("open");
        let mut data = vec![b'a'; MAX_LINE + 10];
        data.push(b'\n');
        log.write(Stream::Stdout, &data).expect("write");
        let e = entries(&p);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0]["log"].as_str().expect("log").len(), MAX_LINE);
        assert_eq!(
            e[1]["log"].as_str().expect("log"),
            format!("{}\n", "a".repeat(10))
        );
    }

    #[test]
    fn rotates_keeping_max_files() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("r.log");
        let mut log = JsonLog::open(&p, Some(200), 3).expect("open");
        for i in 0..20 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .expect("write");
        }
        assert!(p.exists());
        assert!(d.path().join("r.log.1").exists());
        assert!(d.path().join("r.log.2").exists());
        assert!(!d.path().join("r.log.3").exists());
        assert!(fs::metadata(&p).expect("meta").len() <= 200);
        let last = entries(&p);
        assert_eq!(last.last().expect("entry")["log"], "line 19\n");
        let mut single = JsonLog::open(&d.path().join("s.log"), Some(100), 1).expect("open");
        for i in 0..10 {
            single
                .write(Stream::Stdout, format!("x{i}\n").as_bytes())
                .expect("write");
        }
        assert!(!d.path().join("s.log.1").exists());
        assert!(fs::metadata(d.path().join("s.log")).expect("meta").len() <= 100);
    }
}
