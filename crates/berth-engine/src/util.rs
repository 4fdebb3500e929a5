//! Small helpers shared by the engine's modules.

use rand::RngCore;
use std::io::Write;
use std::path::Path;

/// 64 hex chars, like Docker's ids.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// RFC 3339 with nanoseconds in UTC, as Docker prints timestamps.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Writes a file whole (temp file in the same directory, rename) without fsync: for files
/// regenerated each time they are needed (a container's /etc files at every start), which a
/// crash of the daemon cannot tear and a crash of the host makes moot.
pub fn write_replace(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes a file a container reads through a bind mount whatever its user (`/etc/hosts`,
/// `/etc/resolv.conf`, `/etc/hostname`) as a whole: temp file, mode 0644 as docker makes
/// them, rename; fsync when `durable`. The temp file starts 0600, which left these files
/// unreadable to a container running as a non-root user (no name resolution at all).
pub fn write_world_readable(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes a file atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn etc_files_are_world_readable() {
        let t = tempfile::tempdir().expect("tmp");
        for durable in [true, false] {
            let p = t.path().join(format!("hosts-{durable}"));
            super::write_world_readable(&p, b"127.0.0.1\tlocalhost\n", durable).expect("write");
            let mode = std::fs::metadata(&p).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o644);
            assert_eq!(std::fs::read(&p).expect("read"), b"127.0.0.1\tlocalhost\n");
        }
    }
}
