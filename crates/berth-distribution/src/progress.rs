//! Progress messages in the shape of Docker's `JSONMessage`, which the Engine API streams
//! for pulls and pushes and the docker CLI renders.
//!
//! Pull and push report through a `&dyn Fn(Progress)` so that the caller decides where
//! messages go (a channel into an HTTP body, a test's vector); nothing here knows HTTP.

use serde::Serialize;
use serde_json::Value;

/// Byte counters of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Detail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// One JSON message of a pull or push stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// `progressDetail` is always present on status messages (`{}` without counters),
    /// as dockerd sends it.
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<Detail>,
    /// The rendered bar dockerd adds for byte progress (`[==>   ] 1.2MB/3.4MB`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<Value>,
}

/// Where progress goes.
pub type Sink<'a> = &'a (dyn Fn(Progress) + Send + Sync);

impl Progress {
    /// A status line: `status` alone, or `id: status`.
    pub fn status(id: Option<&str>, status: impl Into<String>) -> Progress {
        Progress {
            status: status.into(),
            progress_detail: Some(Detail::default()),
            progress: None,
            id: id.map(str::to_string),
            aux: None,
        }
    }

    /// A byte-progress update (`Downloading`, `Pushing`, `Extracting`).
    pub fn bytes(id: &str, status: &str, current: u64, total: u64) -> Progress {
        Progress {
            status: status.to_string(),
            progress_detail: Some(Detail {
                current: Some(current),
                total: (total > 0).then_some(total),
            }),
            progress: Some(bar(current, total)),
            id: Some(id.to_string()),
            aux: None,
        }
    }

    /// A message that only carries `aux` (push's `{Tag, Digest, Size}`).
    pub fn aux(aux: Value) -> Progress {
        Progress {
            status: String::new(),
            progress_detail: Some(Detail::default()),
            progress: None,
            id: None,
            aux: Some(aux),
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("progress serialises")
    }
}

/// The first 12 hex characters of a digest, as docker shows layer ids.
pub fn short_id(digest: &str) -> String {
    let hex = digest.split_once(':').map(|(_, h)| h).unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// docker's `units.HumanSize` (decimal units, 3 significant digits).
fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // Go's %.4g: four significant digits, trailing zeros dropped
    let int_digits = if v >= 100.0 {
        3
    } else if v >= 10.0 {
        2
    } else {
        1
    };
    let s = format!("{v:.prec$}", prec = 4 - int_digits);
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}{}", UNITS[i])
}

/// dockerd's progress bar: 50 columns of `=` with a `>` head, then `cur/total`.
fn bar(current: u64, total: u64) -> String {
    if total == 0 {
        return human(current);
    }
    let width = 50u64;
    let filled = (current.min(total) * width / total) as usize;
    let mut b = "=".repeat(filled);
    if filled < width as usize {
        b.push('>');
        b.push_str(&" ".repeat(width as usize - filled - 1));
    }
    format!("[{b}] {}/{}", human(current), human(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shapes() {
        assert_eq!(
            Progress::status(Some("abc"), "Pulling fs layer").to_json(),
            serde_json::json!({"status": "Pulling fs layer", "progressDetail": {}, "id": "abc"})
        );
        let p = Progress::bytes("abc", "Downloading", 500, 1000).to_json();
        assert_eq!(
            p["progressDetail"],
            serde_json::json!({"current": 500, "total": 1000})
        );
        assert!(p["progress"].as_str().expect("bar").ends_with("] 500B/1kB"));
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(human(2_345_678), "2.346MB");
        assert_eq!(human(1000), "1kB");
        assert_eq!(bar(1000, 1000).len(), 52 + " 1kB/1kB".len());
    }
}
