//! `changes` (`docker diff`): what the container changed against its image, read from the
//! overlay upper directory of its rw layer and compared with the image's lower layers.
//!
//! Kinds are Docker's: 0 modified, 1 added, 2 deleted. Overlay records a deletion as a 0/0
//! character device and a replaced directory as an opaque one (`trusted.overlay.opaque=y`;
//! everything under it is new). Docker keeps the mount points the runtime creates
//! (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/dev`, `/proc`, `/sys`, volume
//! targets) in a separate init layer, so they never show up in its diff; berth has no init
//! layer and filters those paths instead. For the same reason a directory that exists in
//! the image is reported as modified only when something reported lies under it or its
//! owner or mode changed: the runtime creating a mount point bumps the parent's mtime,
//! which docker would never show.

use crate::{Engine, Result};
use serde::Serialize;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One row of `GET /containers/{id}/changes`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Change {
    pub path: String,
    pub kind: u8,
}

pub const MODIFIED: u8 = 0;
pub const ADDED: u8 = 1;
pub const DELETED: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<ChangesError> for crate::Error {
    fn from(e: ChangesError) -> crate::Error {
        crate::Error::Internal(e.to_string())
    }
}

/// Paths the runtime mounts over; never part of the diff.
const HIDDEN: &[&str] = &[
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/.dockerenv",
    "/dev",
    "/proc",
    "/sys",
];

impl Engine {
    pub async fn container_changes(&self, name: &str) -> Result<Vec<Change>> {
        let h = self.lookup(name)?;
        let c = h.snapshot();
        let mut hidden: Vec<String> = HIDDEN.iter().map(|s| s.to_string()).collect();
        for b in c.host_config.binds.iter().flatten() {
            if let Some(dst) = b.split(':').nth(1) {
                hidden.push(dst.trim_end_matches('/').to_string());
            }
        }
        for m in c.host_config.mounts.iter().flatten() {
            if let Some(dst) = m.get("Target").and_then(|v| v.as_str()) {
                hidden.push(dst.trim_end_matches('/').to_string());
            }
        }
        for (dst, _) in c.host_config.tmpfs.iter().flatten() {
            hidden.push(dst.trim_end_matches('/').to_string());
        }
        for dst in c.config.volumes.iter().flat_map(|v| v.keys()) {
            hidden.push(dst.trim_end_matches('/').to_string());
        }
        let key = c.id.clone();
        self.blocking(move |e| {
            let rw = e.images().rw_layer(&key)?;
            Ok(diff_upper(&rw.upper, &rw.lowers, &hidden)?)
        })
        .await
    }
}

/// The changes recorded in `upper` over `lowers`, sorted by path.
pub fn diff_upper(
    upper: &Path,
    lowers: &[PathBuf],
    hidden: &[String],
) -> std::result::Result<Vec<Change>, ChangesError> {
    let mut out = Vec::new();
    walk(upper, lowers, "", true, hidden, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn is_hidden(path: &str, hidden: &[String]) -> bool {
    hidden.iter().any(|h| {
        path == h || (path.starts_with(h.as_str()) && path.as_bytes().get(h.len()) == Some(&b'/'))
    })
}

fn lower_meta(lowers: &[PathBuf], rel: &str) -> Option<fs::Metadata> {
    lowers
        .iter()
        .find_map(|l| fs::symlink_metadata(l.join(rel.trim_start_matches('/'))).ok())
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 8];
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        if let Ok(n) = rustix_getxattr(path, name, &mut buf) {
            if n > 0 && buf[0] == b'y' {
                return true;
            }
        }
    }
    false
}

fn rustix_getxattr(path: &Path, name: &str, buf: &mut [u8]) -> std::io::Result<usize> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let c_name = std::ffi::CString::new(name).expect("xattr names have no NUL");
    // SAFETY: both strings are NUL-terminated and live across the call; `buf` is writable
    // for `buf.len()` bytes.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Walks `dir` (the upper directory at container path `rel`); returns whether anything
/// under it was reported.
fn walk(
    dir: &Path,
    lowers: &[PathBuf],
    rel: &str,
    lowers_visible: bool,
    hidden: &[String],
    out: &mut Vec<Change>,
) -> std::result::Result<bool, ChangesError> {
    let rd = |source| ChangesError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(rd)?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    let mut any = false;
    for name in names {
        let path = format!("{rel}/{}", name.to_string_lossy());
        if is_hidden(&path, hidden) {
            continue;
        }
        let host = dir.join(&name);
        let md = fs::symlink_metadata(&host).map_err(|source| ChangesError::Read {
            path: host.clone(),
            source,
        })?;
        if md.file_type().is_char_device() && md.rdev() == 0 {
            out.push(Change {
                path,
                kind: DELETED,
            });
            any = true;
            continue;
        }
        let lower = if lowers_visible {
            lower_meta(lowers, &path)
        } else {
            None
        };
        match lower {
            None => {
                out.push(Change {
                    path: path.clone(),
                    kind: ADDED,
                });
                if md.is_dir() {
                    walk(&host, lowers, &path, false, hidden, out)?;
                }
                any = true;
            }
            Some(l) if md.is_dir() && l.is_dir() => {
                let opaque = is_opaque(&host);
                let idx = out.len();
                let below = walk(&host, lowers, &path, !opaque, hidden, out)?;
                let meta_changed =
                    md.mode() != l.mode() || md.uid() != l.uid() || md.gid() != l.gid();
                if below || meta_changed || opaque {
                    out.insert(
                        idx,
                        Change {
                            path,
                            kind: MODIFIED,
                        },
                    );
                    any = true;
                }
            }
            Some(_) => {
                out.push(Change {
                    path: path.clone(),
                    kind: MODIFIED,
                });
                if md.is_dir() {
                    walk(&host, lowers, &path, false, hidden, out)?;
                }
                any = true;
            }
        }
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(v: &[Change]) -> Vec<(String, u8)> {
        v.iter().map(|c| (c.path.clone(), c.kind)).collect()
    }

    #[test]
    fn added_modified_deleted() {
        let t = tempfile::tempdir().expect("tempdir");
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for d in ["etc", "tmp", "bin", "usr/share"] {
            fs::create_dir_all(lower.join(d)).expect("mkdir");
        }
        fs::write(lower.join("etc/motd"), "a").expect("write");
        fs::write(lower.join("bin/ls"), "a").expect("write");
        for d in ["etc", "tmp/new", "bin", "usr"] {
            fs::create_dir_all(upper.join(d)).expect("mkdir");
        }
        fs::write(upper.join("etc/motd"), "b").expect("write");
        fs::write(upper.join("etc/hostname"), "").expect("write");
        fs::write(upper.join("tmp/new/f"), "x").expect("write");
        // a whiteout needs mknod (root); fall back to checking the rest without it
        let c = std::ffi::CString::new(upper.join("bin/ls").as_os_str().as_encoded_bytes())
            .expect("path");
        // SAFETY: `c` is a valid path for the duration of the call.
        let whiteout = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, 0) } == 0;
        let hidden: Vec<String> = HIDDEN.iter().map(|s| s.to_string()).collect();
        let got = kinds(&diff_upper(&upper, std::slice::from_ref(&lower), &hidden).expect("diff"));
        let mut want = vec![
            ("/etc".to_string(), MODIFIED),
            ("/etc/motd".to_string(), MODIFIED),
            ("/tmp".to_string(), MODIFIED),
            ("/tmp/new".to_string(), ADDED),
            ("/tmp/new/f".to_string(), ADDED),
        ];
        if whiteout {
            want.insert(0, ("/bin".to_string(), MODIFIED));
            want.insert(1, ("/bin/ls".to_string(), DELETED));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn hidden_paths_do_not_mark_parents() {
        let t = tempfile::tempdir().expect("tempdir");
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        fs::create_dir_all(lower.join("etc")).expect("mkdir");
        fs::create_dir_all(upper.join("etc")).expect("mkdir");
        fs::write(upper.join("etc/hosts"), "").expect("write");
        let hidden: Vec<String> = HIDDEN.iter().map(|s| s.to_string()).collect();
        let got = diff_upper(&upper, &[lower], &hidden).expect("diff");
        assert!(got.is_empty(), "{got:?}");
        assert!(is_hidden("/dev/shm", &hidden));
        assert!(!is_hidden("/devices", &hidden));
    }
}
