//! `docker cp`: stat, read (as a tar) and write (from a tar) paths inside a container, and
//! the shared machinery `export` uses: the container's root, mounted on demand, and a tar
//! writer for a tree.
//!
//! **The root.** A running (or paused) container's rootfs is mounted on the host at
//! `<exec-root>/containers/<id>/rootfs`. For any other state the rw layer is mounted there
//! for the duration of the call while the container's `op` lock is held, so `start` cannot
//! race with it; a crash in between leaves a mount that start-up reconciliation removes
//! (it unmounts that same place for containers without a process).
//!
//! **Paths never leave the root.** A container path is cleaned lexically (like Go's
//! `filepath.Clean`, so `..` cannot climb above `/`), then its directory part is resolved
//! with symlinks interpreted relative to the container root
//! ([`berth_runtime::user::resolve_in_root`]); the last component is taken as it is (a
//! symlink there is copied as a symlink, as docker does), unless the path ends in `/` or
//! `/.`, which asks for the directory itself. Walking a tree never follows symlinks.
//! Extraction resolves each entry's parent the same way and creates the entry itself with
//! no-follow semantics, replacing (never writing through) a symlink that is in its place.
//! A running container could swap a directory for a symlink while a copy runs (the same
//! window dockerd has); everything berth writes is still resolved inside the root.
//!
//! **Mounts.** The host-side rootfs mount carries none of the container's volumes, binds
//! or tmpfs (those live in the container's mount namespace), so paths are resolved through
//! a [`RootView`]: the rootfs plus the container's `mount_points`, each destination mapped
//! to its host source (a running container's tmpfs through `/proc/<pid>/root`). Every
//! symlink is read on the host path of its container path and its target resolved again
//! from the container root, so a link in the rootfs into a volume (or out of one) lands
//! where the container would see it, and never outside the root or a mount source.
//! Nothing is mounted for this, so two copies never race on mount state. Writes honour
//! read-only mounts and `--read-only` per entry (the host side of a `:ro` bind is
//! writable; the check is ours), with dockerd's messages.
//!
//! **Uploads** may be gzip or zstd compressed (detected from the magic bytes, as docker's
//! `archive.DecompressStream`). Extended attributes travel as PAX `SCHILY.xattr.*` records
//! both ways; on extraction `EPERM`/`ENOTSUP` are ignored, as dockerd does.

use super::state::Status;
use super::{Container, ContainerHandle};
use crate::{Engine, Error, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Docker's `ContainerPathStat` (the `X-Docker-Container-Path-Stat` header, base64 JSON).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Options of `PUT /containers/{id}/archive`.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    pub no_overwrite_dir_non_dir: bool,
    pub copy_uid_gid: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("Could not find the file {path} in container {container}")]
    NotFound { path: String, container: String },
    #[error("extraction point is not a directory")]
    NotADirectory,
    #[error("cannot overwrite directory {dst:?} with non-directory {src:?}")]
    DirWithNonDir { dst: String, src: String },
    #[error("cannot overwrite non-directory {dst:?} with directory {src:?}")]
    NonDirWithDir { dst: String, src: String },
    #[error("invalid tar entry {0:?}: path is outside of the destination")]
    Breakout(String),
    #[error("resolve {path} in the container: {reason}")]
    Resolve { path: String, reason: String },
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the tar stream: {0}")]
    Tar(#[source] io::Error),
    #[error("container rootfs is marked read-only")]
    ReadOnly,
    #[error("mounted volume is marked read-only")]
    VolumeReadOnly,
    #[error("too many levels of symbolic links resolving {0}")]
    SymlinkLoop(String),
    #[error("decompressing the upload: {0}")]
    Compression(String),
    #[error("set xattr {name} on {path}: {source}")]
    Xattr {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl From<ArchiveError> for Error {
    fn from(e: ArchiveError) -> Error {
        match e {
            ArchiveError::NotFound { .. } => Error::NotFound(e.to_string()),
            ArchiveError::NotADirectory
            | ArchiveError::DirWithNonDir { .. }
            | ArchiveError::NonDirWithDir { .. }
            | ArchiveError::Breakout(_)
            | ArchiveError::SymlinkLoop(_)
            | ArchiveError::Compression(_)
            | ArchiveError::Tar(_) => Error::InvalidArgument(e.to_string()),
            ArchiveError::ReadOnly | ArchiveError::VolumeReadOnly => {
                Error::Forbidden(e.to_string())
            }
            ArchiveError::Resolve { .. } | ArchiveError::Io { .. } | ArchiveError::Xattr { .. } => {
                Error::Internal(e.to_string())
            }
        }
    }
}

fn ioe<'a>(context: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ArchiveError + 'a {
    move |source| ArchiveError::Io {
        context,
        path: path.to_path_buf(),
        source,
    }
}

impl Engine {
    /// Runs `f` (on a blocking thread) with the container's root mounted on the host.
    pub(crate) async fn with_rootfs<T, F>(&self, h: &Arc<ContainerHandle>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Path, &Container) -> Result<T> + Send + 'static,
    {
        let state_dir = self.config().container_state_dir(&h.id);
        let rootfs = state_dir.join("rootfs");
        if matches!(h.status(), Status::Running | Status::Paused) {
            let c = h.snapshot();
            return tokio::task::spawn_blocking(move || f(&rootfs, &c))
                .await
                .map_err(|e| Error::Internal(format!("archive task failed: {e}")))?;
        }
        let _op = h.op.lock().await;
        let c = h.snapshot();
        if matches!(c.state.status(), Status::Running | Status::Paused) {
            // Started while we waited for the lock: its rootfs is mounted now.
            return tokio::task::spawn_blocking(move || f(&rootfs, &c))
                .await
                .map_err(|e| Error::Internal(format!("archive task failed: {e}")))?;
        }
        let key = c.id.clone();
        let target = rootfs.clone();
        self.blocking(move |e| Ok(e.images().mount_rw_layer(&key, &target)?))
            .await?;
        let root = rootfs.clone();
        let res = tokio::task::spawn_blocking(move || f(&root, &c))
            .await
            .map_err(|e| Error::Internal(format!("archive task failed: {e}")));
        let target = rootfs.clone();
        let unmounted = self
            .blocking(move |e| Ok(e.images().unmount_rw_layer(&target)?))
            .await;
        match unmounted {
            // Only empty directories are removed: never recurse into what may be a mount.
            Ok(()) => {
                let _ = fs::remove_dir(&rootfs);
                let _ = fs::remove_dir(&state_dir);
            }
            Err(e) => tracing::warn!(id = %h.id, "unmount {}: {e}", rootfs.display()),
        }
        res?
    }

    /// `HEAD /containers/{id}/archive`.
    pub async fn archive_stat(&self, name: &str, path: &str) -> Result<PathStat> {
        let h = self.lookup(name)?;
        let path = path.to_string();
        let id = h.id.clone();
        self.with_rootfs(&h, move |root, c| {
            Ok(stat_path(&RootView::for_container(root, c), &path, &id)?)
        })
        .await
    }

    /// `GET /containers/{id}/archive`: the stat and a stream of the tar.
    pub async fn archive_get(
        &self,
        name: &str,
        path: &str,
    ) -> Result<(PathStat, mpsc::Receiver<Vec<u8>>)> {
        let h = self.lookup(name)?;
        let (stat_tx, stat_rx) = oneshot::channel::<Result<PathStat>>();
        let (tx, rx) = mpsc::channel(16);
        let engine = self.clone();
        let path = path.to_string();
        let h2 = h.clone();
        tokio::spawn(async move {
            let id = h2.id.clone();
            let res = engine
                .with_rootfs(&h2, move |root, c| {
                    let view = RootView::for_container(root, c);
                    let st = match stat_path(&view, &path, &id) {
                        Ok(st) => st,
                        Err(e) => {
                            let _ = stat_tx.send(Err(e.into()));
                            return Ok(());
                        }
                    };
                    let (host, abs) = resolve_path(&view, &path)?;
                    let start = view.resolve(&abs, clean_path(&path).1)?;
                    let _ = stat_tx.send(Ok(st.clone()));
                    let mut w = ChannelWriter::new(tx);
                    let mut b = tar::Builder::new(&mut w);
                    b.mode(tar::HeaderMode::Complete);
                    let mut links = HashMap::new();
                    let top = if st.name == "/" {
                        "."
                    } else {
                        st.name.as_str()
                    };
                    write_tree_in(&mut b, &host, top, &mut links, Some((&view, &start)))?;
                    b.finish().map_err(ArchiveError::Tar)?;
                    drop(b);
                    w.flush().map_err(ArchiveError::Tar)?;
                    Ok(())
                })
                .await;
            if let Err(e) = res {
                tracing::debug!("archive of {}: {e}", h2.id);
            }
        });
        let st = stat_rx
            .await
            .map_err(|_| Error::Internal("archive task ended early".into()))??;
        self.emit_container(&h, "archive-path", Default::default());
        Ok((st, rx))
    }

    /// `PUT /containers/{id}/archive`: extract `tar` into the directory `path`.
    pub async fn archive_put(
        &self,
        name: &str,
        path: &str,
        opts: ExtractOptions,
        tar: Box<dyn Read + Send>,
    ) -> Result<()> {
        let h = self.lookup(name)?;
        let path = path.to_string();
        let id = h.id.clone();
        self.with_rootfs(&h, move |root, c| {
            let view = RootView::for_container(root, c);
            Ok(extract(&view, &path, &id, &opts, tar)?)
        })
        .await?;
        self.emit_container(&h, "extract-to-dir", Default::default());
        Ok(())
    }
}

/// One mount of a [`RootView`].
#[derive(Debug, Clone)]
struct ViewMount {
    /// Cleaned container path, `/data`.
    dest: String,
    host: PathBuf,
    rw: bool,
}

/// A container's filesystem as its processes see it, built from host paths: the rootfs
/// and, over it, each mount's host source at its destination.
#[derive(Debug, Clone)]
pub struct RootView {
    root: PathBuf,
    /// Longest destination first, so nested mounts win over their parents.
    mounts: Vec<ViewMount>,
    readonly_rootfs: bool,
}

/// Symlinks followed in one resolution before giving up (Linux's own limit).
const MAX_SYMLINKS: usize = 40;

impl RootView {
    /// The bare root, with no mounts over it.
    pub fn plain(root: &Path) -> RootView {
        RootView {
            root: root.to_path_buf(),
            mounts: Vec::new(),
            readonly_rootfs: false,
        }
    }

    /// The root with `c`'s volumes, binds and tmpfs. A tmpfs has no host path but the
    /// running container's own view (`/proc/<pid>/root`); without a process it is empty
    /// and the rootfs directory under it is what there is.
    pub fn for_container(root: &Path, c: &Container) -> RootView {
        let running = matches!(c.state.status(), Status::Running | Status::Paused);
        let pid = c.state.pid;
        let tmpfs_host = |dest: &str| -> Option<PathBuf> {
            (running && pid > 0).then(|| {
                PathBuf::from(format!("/proc/{pid}/root")).join(dest.trim_start_matches('/'))
            })
        };
        let mut mounts = Vec::new();
        for mp in &c.mount_points {
            let dest = clean_path(&mp.destination).0;
            let host = if mp.spec.typ == berth_volume::MountType::Tmpfs {
                tmpfs_host(&dest)
            } else if mp.source.is_empty() {
                None
            } else {
                Some(PathBuf::from(&mp.source))
            };
            if let Some(host) = host {
                mounts.push(ViewMount {
                    dest,
                    host,
                    rw: mp.rw,
                });
            }
        }
        for dest in c.host_config.tmpfs.iter().flatten().map(|(d, _)| d) {
            let dest = clean_path(dest).0;
            if mounts.iter().any(|m| m.dest == dest) {
                continue;
            }
            if let Some(host) = tmpfs_host(&dest) {
                mounts.push(ViewMount {
                    dest,
                    host,
                    rw: true,
                });
            }
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.dest.len()));
        RootView {
            root: root.to_path_buf(),
            mounts,
            readonly_rootfs: c.host_config.readonly_rootfs,
        }
    }

    /// The mount a cleaned container path lies in, if any.
    fn mount_of(&self, cpath: &str) -> Option<&ViewMount> {
        self.mounts.iter().find(|m| {
            m.dest == "/"
                || cpath == m.dest
                || (cpath.starts_with(&m.dest) && cpath.as_bytes().get(m.dest.len()) == Some(&b'/'))
        })
    }

    /// The host path of a cleaned container path, symlinks not interpreted.
    pub fn host_of(&self, cpath: &str) -> PathBuf {
        match self.mount_of(cpath) {
            Some(m) => {
                let rest = cpath[m.dest.len()..].trim_start_matches('/');
                if rest.is_empty() {
                    m.host.clone()
                } else {
                    m.host.join(rest)
                }
            }
            None => self.root.join(cpath.trim_start_matches('/')),
        }
    }

    /// Whether a container path is the destination of a mount (a tree walk switches to
    /// the mount's source there).
    fn is_mount_point(&self, cpath: &str) -> bool {
        self.mounts.iter().any(|m| m.dest == cpath)
    }

    /// Names of the mounts directly under a cleaned container directory path.
    fn mounts_under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let dir = dir.trim_end_matches('/');
        self.mounts.iter().filter_map(move |m| {
            let rest = m.dest.strip_prefix(dir)?.strip_prefix('/')?;
            (!rest.is_empty() && !rest.contains('/')).then_some(rest)
        })
    }

    /// Refuses a write at a cleaned container path that the container could not write.
    fn check_writable(&self, cpath: &str) -> std::result::Result<(), ArchiveError> {
        match self.mount_of(cpath) {
            Some(m) if !m.rw => Err(ArchiveError::VolumeReadOnly),
            Some(_) => Ok(()),
            None if self.readonly_rootfs => Err(ArchiveError::ReadOnly),
            None => Ok(()),
        }
    }

    /// Resolves a container path the way the container's kernel would: every symlink is
    /// read at the host path of its container path and its target resolved again from the
    /// container root; `..` never climbs above `/`. The last component is followed only if
    /// `follow_last`. Returns the cleaned, resolved container path.
    pub fn resolve(
        &self,
        path: &str,
        follow_last: bool,
    ) -> std::result::Result<String, ArchiveError> {
        let mut resolved: Vec<String> = Vec::new();
        let mut rest: Vec<String> = split_rev(path);
        let mut hops = 0;
        while let Some(part) = rest.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            resolved.push(part);
            let cpath = format!("/{}", resolved.join("/"));
            if !follow_last && rest.is_empty() {
                break;
            }
            // A mount destination is whatever is mounted there, never a link in the rootfs.
            if self.is_mount_point(&cpath) {
                continue;
            }
            if let Ok(target) = fs::read_link(self.host_of(&cpath)) {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(ArchiveError::SymlinkLoop(path.to_string()));
                }
                resolved.pop();
                let t = target.as_os_str().as_encoded_bytes();
                if t.starts_with(b"/") {
                    resolved.clear();
                }
                rest.extend(split_rev(&target.to_string_lossy()));
            }
        }
        Ok(format!("/{}", resolved.join("/")))
    }
}

fn split_rev(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .rev()
        .map(str::to_string)
        .collect()
}

/// Lexically cleans a container path to an absolute one; the flag says it ended in `/` or
/// `/.` (the caller wants the directory itself, symlinks followed).
pub fn clean_path(path: &str) -> (String, bool) {
    let trailing = path.ends_with('/') || path.ends_with("/.") || path == ".";
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().unwrap_or("")),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    (format!("/{}", parts.join("/")), trailing)
}

/// The host path for a container path, and the cleaned container path. The last
/// component is kept as it is (a symlink stays a symlink) unless the path ends in `/` or
/// `/.`.
pub fn resolve_path(
    view: &RootView,
    path: &str,
) -> std::result::Result<(PathBuf, String), ArchiveError> {
    let (abs, trailing) = clean_path(path);
    let resolved = view.resolve(&abs, trailing)?;
    Ok((view.host_of(&resolved), abs))
}

/// Go's `os.FileMode` for a unix mode.
pub fn go_file_mode(mode: u32) -> u32 {
    let mut m = mode & 0o777;
    match mode & libc::S_IFMT {
        libc::S_IFDIR => m |= 1 << 31,
        libc::S_IFLNK => m |= 1 << 27,
        libc::S_IFIFO => m |= 1 << 25,
        libc::S_IFSOCK => m |= 1 << 24,
        libc::S_IFBLK => m |= 1 << 26,
        libc::S_IFCHR => m |= (1 << 26) | (1 << 21),
        _ => {}
    }
    if mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

fn stat_path(view: &RootView, path: &str, id: &str) -> std::result::Result<PathStat, ArchiveError> {
    let (host, abs) = resolve_path(view, path)?;
    let md = fs::symlink_metadata(&host).map_err(|_| ArchiveError::NotFound {
        path: abs.clone(),
        container: id.to_string(),
    })?;
    let (_, trailing) = clean_path(path);
    if trailing && !md.is_dir() && path.ends_with('/') {
        return Err(ArchiveError::NotFound {
            path: abs,
            container: id.to_string(),
        });
    }
    let link_target = if md.file_type().is_symlink() {
        view.resolve(&abs, true)?
    } else {
        String::new()
    };
    let name = if path.ends_with("/.") || path == "." {
        ".".to_string()
    } else {
        Path::new(&abs)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into())
    };
    let mtime = chrono::DateTime::from_timestamp(md.mtime(), md.mtime_nsec() as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    Ok(PathStat {
        name,
        size: md.len() as i64,
        mode: go_file_mode(md.mode()),
        mtime,
        link_target,
    })
}

/// Writes `host` (and, for a directory, everything under it) as `name` into the tar. Never
/// follows symlinks; hard links inside the tree become link entries; sockets are skipped
/// (as Go's archive package does).
pub fn write_tree<W: Write>(
    b: &mut tar::Builder<W>,
    host: &Path,
    name: &str,
    links: &mut HashMap<(u64, u64), String>,
) -> std::result::Result<(), ArchiveError> {
    write_tree_in(b, host, name, links, None)
}

/// [`write_tree`] inside a [`RootView`]: `at` is the view and the container path of
/// `host`; a child that is a mount destination is read from the mount's source.
fn write_tree_in<W: Write>(
    b: &mut tar::Builder<W>,
    host: &Path,
    name: &str,
    links: &mut HashMap<(u64, u64), String>,
    at: Option<(&RootView, &str)>,
) -> std::result::Result<(), ArchiveError> {
    let md = fs::symlink_metadata(host).map_err(ioe("stat", host))?;
    let ft = md.file_type();
    let mut h = tar::Header::new_gnu();
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid() as u64);
    h.set_gid(md.gid() as u64);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    let tar_err = ArchiveError::Tar;
    if !ft.is_socket() && (!ft.is_dir() || !name.is_empty()) {
        let x = read_xattrs(host)?;
        if !x.is_empty() {
            let pax: Vec<(String, Vec<u8>)> = x
                .into_iter()
                .map(|(k, v)| (format!("{XATTR_PAX}{k}"), v))
                .collect();
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(tar_err)?;
        }
    }
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        if !name.is_empty() {
            b.append_data(
                &mut h,
                format!("{}/", name.trim_end_matches('/')),
                io::empty(),
            )
            .map_err(tar_err)?;
        }
        let mut entries: Vec<_> = fs::read_dir(host)
            .map_err(ioe("read directory", host))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        // A mount whose destination the directory does not hold (the runtime creates it
        // in the container's view only) still shows up in the tree, as the container
        // sees it.
        if let Some((v, cpath)) = at {
            for name in v.mounts_under(cpath) {
                let name = std::ffi::OsString::from(name);
                if !entries.contains(&name) {
                    entries.push(name);
                }
            }
        }
        entries.sort();
        for child in entries {
            let child_name = if name.is_empty() {
                child.to_string_lossy().into_owned()
            } else {
                format!("{}/{}", name.trim_end_matches('/'), child.to_string_lossy())
            };
            let child_at = at.map(|(v, cpath)| {
                let c = format!(
                    "{}/{}",
                    cpath.trim_end_matches('/'),
                    child.to_string_lossy()
                );
                (v, c)
            });
            let child_host = match &child_at {
                Some((v, c)) if v.is_mount_point(c) => v.host_of(c),
                _ => host.join(&child),
            };
            let next = child_at.as_ref().map(|(v, c)| (*v, c.as_str()));
            write_tree_in(b, &child_host, &child_name, links, next)?;
        }
        return Ok(());
    }
    if ft.is_socket() {
        return Ok(());
    }
    if md.nlink() > 1 && !ft.is_symlink() {
        if let Some(first) = links.get(&(md.dev(), md.ino())) {
            h.set_entry_type(tar::EntryType::Link);
            return b.append_link(&mut h, name, first).map_err(tar_err);
        }
        links.insert((md.dev(), md.ino()), name.to_string());
    }
    if ft.is_symlink() {
        let target = fs::read_link(host).map_err(ioe("read link", host))?;
        h.set_entry_type(tar::EntryType::Symlink);
        // The tar crate rebuilds link names from path components, turning "/etc" into
        // "//etc"; short targets are stored byte for byte instead (long ones go into a
        // GNU long-link entry, which keeps the bytes as they are).
        let bytes = target.as_os_str().as_encoded_bytes();
        if bytes.len() <= 100 {
            h.set_link_name_literal(bytes).map_err(tar_err)?;
            return b.append_data(&mut h, name, io::empty()).map_err(tar_err);
        }
        return b.append_link(&mut h, name, target).map_err(tar_err);
    }
    if ft.is_file() {
        let f = fs::File::open(host).map_err(ioe("open", host))?;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(md.len());
        return b.append_data(&mut h, name, f).map_err(tar_err);
    }
    let kind = if ft.is_fifo() {
        tar::EntryType::Fifo
    } else if ft.is_char_device() {
        tar::EntryType::Char
    } else {
        tar::EntryType::Block
    };
    h.set_entry_type(kind);
    if kind != tar::EntryType::Fifo {
        let rdev = md.rdev();
        h.set_device_major(libc::major(rdev)).map_err(tar_err)?;
        h.set_device_minor(libc::minor(rdev)).map_err(tar_err)?;
    }
    b.append_data(&mut h, name, io::empty()).map_err(tar_err)
}

/// A relative tar entry name, cleaned; `None` when it would leave the destination.
fn entry_rel(name: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir if !out.pop() => return None,
            _ => {}
        }
    }
    Some(out)
}

fn extract(
    view: &RootView,
    path: &str,
    id: &str,
    opts: &ExtractOptions,
    tar_stream: Box<dyn Read + Send>,
) -> std::result::Result<(), ArchiveError> {
    // The extraction point itself is followed to the end, as docker does.
    let (abs, _) = clean_path(path);
    let dst_container = view.resolve(&abs, true)?;
    let md = fs::metadata(view.host_of(&dst_container)).map_err(|_| ArchiveError::NotFound {
        path: abs.clone(),
        container: id.to_string(),
    })?;
    if !md.is_dir() {
        return Err(ArchiveError::NotADirectory);
    }
    view.check_writable(&dst_container)?;
    let dst_container = PathBuf::from(dst_container);
    let (_, tar_stream) = berth_image::apply::decompress(tar_stream)
        .map_err(|e| ArchiveError::Compression(e.to_string()))?;
    let mut ar = tar::Archive::new(tar_stream);
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    for entry in ar.entries().map_err(ArchiveError::Tar)? {
        let mut entry = entry.map_err(ArchiveError::Tar)?;
        let raw = entry.path().map_err(ArchiveError::Tar)?.into_owned();
        let rel =
            entry_rel(&raw).ok_or_else(|| ArchiveError::Breakout(raw.display().to_string()))?;
        let Some(base) = rel.file_name().map(|b| b.to_os_string()) else {
            continue; // the destination directory itself
        };
        let in_container = dst_container.join(&rel);
        let parent_c = in_container
            .parent()
            .unwrap_or(Path::new("/"))
            .display()
            .to_string();
        let parent_c = view.resolve(&parent_c, true)?;
        let target_c = format!(
            "{}/{}",
            parent_c.trim_end_matches('/'),
            base.to_string_lossy()
        );
        view.check_writable(&target_c)?;
        let parent = view.host_of(&parent_c);
        fs::create_dir_all(&parent).map_err(ioe("create", &parent))?;
        let xattrs = pax_xattrs(&mut entry)?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let is_dir = kind == tar::EntryType::Directory;
        let target = if view.is_mount_point(&target_c) {
            // A mount's root can take a directory's metadata, never be replaced.
            if !is_dir {
                return Err(ArchiveError::DirWithNonDir {
                    dst: target_c,
                    src: raw.display().to_string(),
                });
            }
            view.host_of(&target_c)
        } else {
            parent.join(&base)
        };
        if let Ok(old) = fs::symlink_metadata(&target) {
            let shown = in_container.display().to_string();
            if opts.no_overwrite_dir_non_dir {
                if old.is_dir() && !is_dir {
                    return Err(ArchiveError::DirWithNonDir {
                        dst: shown,
                        src: raw.display().to_string(),
                    });
                }
                if !old.is_dir() && is_dir {
                    return Err(ArchiveError::NonDirWithDir {
                        dst: shown,
                        src: raw.display().to_string(),
                    });
                }
            }
            if !(old.is_dir() && is_dir) {
                if old.is_dir() {
                    fs::remove_dir_all(&target).map_err(ioe("remove", &target))?;
                } else {
                    fs::remove_file(&target).map_err(ioe("remove", &target))?;
                }
            }
        }
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        match kind {
            tar::EntryType::Directory => {
                if !target.is_dir() {
                    fs::create_dir(&target).map_err(ioe("create", &target))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&target)
                    .map_err(ioe("create", &target))?;
                io::copy(&mut entry, &mut f).map_err(ioe("write", &target))?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(ArchiveError::Tar)?
                    .unwrap_or_default()
                    .into_owned();
                std::os::unix::fs::symlink(&link, &target).map_err(ioe("symlink", &target))?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(ArchiveError::Tar)?
                    .unwrap_or_default()
                    .into_owned();
                let link_rel = entry_rel(&link)
                    .ok_or_else(|| ArchiveError::Breakout(link.display().to_string()))?;
                let src_c = dst_container.join(&link_rel);
                let (src, _) = resolve_path(view, &src_c.display().to_string())?;
                fs::hard_link(&src, &target).map_err(ioe("link", &target))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let kind_bits = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = libc::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                let c = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
                    .map_err(|_| ArchiveError::Breakout(raw.display().to_string()))?;
                // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
                let rc = unsafe { libc::mknod(c.as_ptr(), kind_bits | mode, dev) };
                if rc != 0 {
                    return Err(ArchiveError::Io {
                        context: "mknod",
                        path: target,
                        source: io::Error::last_os_error(),
                    });
                }
            }
            // pax/GNU long-name headers are consumed by the tar crate; others are ignored.
            _ => continue,
        }
        for (name, value) in &xattrs {
            set_xattr(&target, name, value)?;
        }
        let (uid, gid) = if opts.copy_uid_gid {
            (
                header.uid().unwrap_or(0) as u32,
                header.gid().unwrap_or(0) as u32,
            )
        } else {
            (0, 0)
        };
        std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).map_err(ioe("chown", &target))?;
        if kind != tar::EntryType::Symlink && kind != tar::EntryType::Link {
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(ioe("chmod", &target))?;
        }
        let mtime = header.mtime().unwrap_or(0) as i64;
        if is_dir {
            dir_times.push((target, mtime));
        } else if kind != tar::EntryType::Link {
            set_mtime(&target, mtime);
        }
    }
    // Read the stream to its end (tar writers pad past the end marker): answering before
    // the client has sent everything makes it fail with a broken pipe.
    let mut rest = ar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(ArchiveError::Tar)?;
    // Directory times last: creating their children changed them.
    for (d, t) in dir_times.into_iter().rev() {
        set_mtime(&d, t);
    }
    Ok(())
}

/// The PAX record prefix that carries an extended attribute (GNU tar and Go's archive/tar).
const XATTR_PAX: &str = "SCHILY.xattr.";

/// The xattrs of a path worth copying; overlayfs' own bookkeeping is not.
fn read_xattrs(path: &Path) -> std::result::Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    let xe = |source: rustix::io::Errno| ArchiveError::Io {
        context: "read xattrs of",
        path: path.to_path_buf(),
        source: source.into(),
    };
    let mut list = vec![0u8; 64 * 1024];
    let n = match rustix::fs::llistxattr(path, &mut list[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(xe(e)),
    };
    let mut out = Vec::new();
    for name in list[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        let mut val = vec![0u8; 64 * 1024];
        match rustix::fs::lgetxattr(path, name.as_str(), &mut val[..]) {
            Ok(len) => {
                val.truncate(len);
                out.push((name, val));
            }
            // Removed between list and get: nothing to copy.
            Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(xe(e)),
        }
    }
    Ok(out)
}

/// The xattrs an entry's PAX header carries.
fn pax_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> std::result::Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(ArchiveError::Tar)? {
        for ext in exts {
            let ext = ext.map_err(ArchiveError::Tar)?;
            if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix(XATTR_PAX)) {
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

/// Sets one xattr without following a symlink. Like dockerd, a filesystem that does not
/// support it or a namespace we may not write (`trusted.*` without the capability) is
/// not an error: the copy goes on without that attribute.
fn set_xattr(path: &Path, name: &str, value: &[u8]) -> std::result::Result<(), ArchiveError> {
    match rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOTSUP | rustix::io::Errno::PERM) => {
            tracing::debug!("xattr {name} not kept on {}", path.display());
            Ok(())
        }
        Err(e) => Err(ArchiveError::Xattr {
            name: name.to_string(),
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

fn set_mtime(path: &Path, secs: i64) {
    let ts = nix::sys::time::TimeSpec::new(secs, 0);
    let _ = nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &ts,
        &ts,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
}

/// A blocking `Write` that feeds an async channel in 64 KiB chunks.
pub struct ChannelWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<Vec<u8>>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(64 * 1024),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::take(&mut self.buf);
            self.tx
                .blocking_send(chunk)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_never_climbs_above_root() {
        assert_eq!(clean_path("/a/b/../c"), ("/a/c".into(), false));
        assert_eq!(
            clean_path("../../../etc/passwd"),
            ("/etc/passwd".into(), false)
        );
        assert_eq!(clean_path("/a/"), ("/a".into(), true));
        assert_eq!(clean_path("/a/."), ("/a".into(), true));
        assert_eq!(clean_path("/"), ("/".into(), true));
    }

    #[test]
    fn go_modes() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o4755), (1 << 23) | 0o755);
        assert_eq!(
            go_file_mode(libc::S_IFCHR | 0o666),
            (1 << 26) | (1 << 21) | 0o666
        );
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("root");
        fs::create_dir_all(root.join("etc")).expect("mkdir");
        fs::write(root.join("etc/passwd"), "inside").expect("write");
        std::os::unix::fs::symlink("/", root.join("up")).expect("symlink");
        std::os::unix::fs::symlink("../../../..", root.join("etc/dots")).expect("symlink");
        let (h, abs) = resolve_path(&RootView::plain(&root), "/up/etc/passwd").expect("resolves");
        assert_eq!(abs, "/up/etc/passwd");
        assert_eq!(h, root.join("etc/passwd"));
        let (h, _) =
            resolve_path(&RootView::plain(&root), "/etc/dots/etc/passwd").expect("resolves");
        assert_eq!(h, root.join("etc/passwd"));
        // the last component stays a link unless the path asks for the directory
        let (h, _) = resolve_path(&RootView::plain(&root), "/up").expect("resolves");
        assert_eq!(h, root.join("up"));
        let (h, _) = resolve_path(&RootView::plain(&root), "/up/").expect("resolves");
        assert_eq!(h, root);
        let st = stat_path(&RootView::plain(&root), "/up", "c").expect("stat");
        assert_eq!(st.link_target, "/");
        assert_eq!(st.mode & (1 << 27), 1 << 27);
        let err = stat_path(&RootView::plain(&root), "/nope", "c").expect_err("missing");
        assert_eq!(
            err.to_string(),
            "Could not find the file /nope in container c"
        );
    }

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            match *kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    b.append_link(&mut h, name, data).expect("link");
                }
                _ => {
                    // raw name bytes: the tar crate refuses to write `..` itself
                    h.set_size(data.len() as u64);
                    let gnu = h.as_gnu_mut().expect("gnu header");
                    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
                    h.set_cksum();
                    b.append(&h, data.as_bytes()).expect("data");
                }
            }
        }
        b.into_inner().expect("tar")
    }

    #[test]
    fn extraction_through_symlinks_stays_inside() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        fs::create_dir_all(root.join("dst")).expect("mkdir");
        fs::create_dir_all(&outside).expect("mkdir");
        // a link pointing at the host path of `outside`, and one climbing with ..
        std::os::unix::fs::symlink(&outside, root.join("dst/abs")).expect("symlink");
        std::os::unix::fs::symlink("../../../../..", root.join("dst/dots")).expect("symlink");
        let data = tar_of(&[
            ("abs/x", tar::EntryType::Regular, "one"),
            ("dots/y", tar::EntryType::Regular, "two"),
            ("lnk", tar::EntryType::Symlink, "/"),
            ("lnk/z", tar::EntryType::Regular, "three"),
        ]);
        extract(
            &RootView::plain(&root),
            "/dst",
            "c",
            &ExtractOptions::default(),
            Box::new(io::Cursor::new(data)),
        )
        .expect("extract");
        assert_eq!(fs::read_dir(&outside).expect("ls").count(), 0);
        let p = outside.strip_prefix("/").expect("absolute");
        assert_eq!(
            fs::read_to_string(root.join(p).join("x")).expect("x"),
            "one"
        );
        assert_eq!(fs::read_to_string(root.join("y")).expect("y"), "two");
        assert_eq!(fs::read_to_string(root.join("z")).expect("z"), "three");
    }

    #[test]
    fn extraction_rejects_breakout_and_dir_overwrite() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("root");
        fs::create_dir_all(root.join("dst/d")).expect("mkdir");
        let bad = tar_of(&[("../../x", tar::EntryType::Regular, "x")]);
        let err = extract(
            &RootView::plain(&root),
            "/dst",
            "c",
            &ExtractOptions::default(),
            Box::new(io::Cursor::new(bad)),
        )
        .expect_err("breakout");
        assert!(matches!(err, ArchiveError::Breakout(_)), "{err}");
        let over = tar_of(&[("d", tar::EntryType::Regular, "x")]);
        let opts = ExtractOptions {
            no_overwrite_dir_non_dir: true,
            copy_uid_gid: false,
        };
        let err = extract(
            &RootView::plain(&root),
            "/dst",
            "c",
            &opts,
            Box::new(io::Cursor::new(over)),
        )
        .expect_err("dir kept");
        assert!(matches!(err, ArchiveError::DirWithNonDir { .. }), "{err}");
        let not_dir = tar_of(&[("f", tar::EntryType::Regular, "x")]);
        fs::write(root.join("file"), "").expect("write");
        let err = extract(
            &RootView::plain(&root),
            "/file",
            "c",
            &ExtractOptions::default(),
            Box::new(io::Cursor::new(not_dir)),
        )
        .expect_err("not a dir");
        assert!(matches!(err, ArchiveError::NotADirectory));
    }

    #[test]
    fn tree_round_trip() {
        let t = tempfile::tempdir().expect("tempdir");
        let src = t.path().join("src");
        fs::create_dir_all(src.join("sub")).expect("mkdir");
        fs::write(src.join("sub/a"), "hello").expect("write");
        fs::hard_link(src.join("sub/a"), src.join("b")).expect("link");
        std::os::unix::fs::symlink("sub/a", src.join("c")).expect("symlink");
        std::os::unix::fs::symlink("/etc", src.join("d")).expect("symlink");
        let mut b = tar::Builder::new(Vec::new());
        write_tree(&mut b, &src, "src", &mut HashMap::new()).expect("tar");
        let data = b.into_inner().expect("tar");
        let mut names = Vec::new();
        for e in tar::Archive::new(io::Cursor::new(&data))
            .entries()
            .expect("entries")
        {
            let e = e.expect("entry");
            names.push(e.path().expect("path").display().to_string());
        }
        assert_eq!(
            names,
            ["src/", "src/b", "src/c", "src/d", "src/sub/", "src/sub/a"]
        );
        let root = t.path().join("root");
        fs::create_dir_all(root.join("dst")).expect("mkdir");
        extract(
            &RootView::plain(&root),
            "/dst",
            "c",
            &ExtractOptions::default(),
            Box::new(io::Cursor::new(data)),
        )
        .expect("extract");
        assert_eq!(
            fs::read_to_string(root.join("dst/src/sub/a")).expect("a"),
            "hello"
        );
        assert_eq!(
            fs::read_link(root.join("dst/src/c")).expect("c"),
            Path::new("sub/a")
        );
        assert_eq!(
            fs::read_link(root.join("dst/src/d")).expect("d"),
            Path::new("/etc")
        );
        let (a, b2) = (
            fs::metadata(root.join("dst/src/sub/a")).expect("a"),
            fs::metadata(root.join("dst/src/b")).expect("b"),
        );
        assert_eq!(a.ino(), b2.ino());
    }

    fn view_with(root: &Path, mounts: &[(&str, &Path, bool)], ro_root: bool) -> RootView {
        let mut v = RootView::plain(root);
        v.readonly_rootfs = ro_root;
        for (dest, host, rw) in mounts {
            v.mounts.push(ViewMount {
                dest: dest.to_string(),
                host: host.to_path_buf(),
                rw: *rw,
            });
        }
        v.mounts.sort_by_key(|m| std::cmp::Reverse(m.dest.len()));
        v
    }

    #[test]
    fn paths_resolve_through_mounts_and_links_into_them() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("root");
        let vol = t.path().join("vol");
        let nested = t.path().join("nested");
        fs::create_dir_all(root.join("data")).expect("mkdir");
        fs::create_dir_all(vol.join("sub")).expect("mkdir");
        fs::create_dir_all(&nested).expect("mkdir");
        fs::write(vol.join("sub/f"), "in volume").expect("write");
        fs::write(nested.join("n"), "nested").expect("write");
        // a link in the rootfs into the volume, and one in the volume out to the rootfs
        std::os::unix::fs::symlink("/data/sub", root.join("shortcut")).expect("symlink");
        std::os::unix::fs::symlink("../../../../etc", vol.join("up")).expect("symlink");
        fs::create_dir_all(root.join("etc")).expect("mkdir");
        let v = view_with(
            &root,
            &[("/data", &vol, true), ("/data/deep", &nested, false)],
            false,
        );
        let (h, _) = resolve_path(&v, "/shortcut/f").expect("resolves");
        assert_eq!(h, vol.join("sub/f"));
        let (h, _) = resolve_path(&v, "/data/up/").expect("resolves");
        assert_eq!(h, root.join("etc"));
        let (h, _) = resolve_path(&v, "/data/deep/n").expect("resolves");
        assert_eq!(h, nested.join("n"));
        assert_eq!(v.resolve("/shortcut", true).expect("link"), "/data/sub");
        // reading a tree crosses into the mount at its destination
        let mut b = tar::Builder::new(Vec::new());
        let start = v.resolve("/data", true).expect("resolves");
        write_tree_in(
            &mut b,
            &v.host_of(&start),
            "data",
            &mut HashMap::new(),
            Some((&v, &start)),
        )
        .expect("tar");
        let data = b.into_inner().expect("tar");
        let names: Vec<String> = tar::Archive::new(io::Cursor::new(&data))
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert!(names.contains(&"data/deep/n".to_string()), "{names:?}");
        assert!(names.contains(&"data/sub/f".to_string()), "{names:?}");
    }

    #[test]
    fn writes_honour_read_only_mounts_and_rootfs() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("root");
        let ro = t.path().join("ro");
        let rw = t.path().join("rw");
        for d in [&root, &ro, &rw] {
            fs::create_dir_all(d).expect("mkdir");
        }
        fs::create_dir_all(root.join("tmp")).expect("mkdir");
        let v = view_with(&root, &[("/ro", &ro, false), ("/rw", &rw, true)], true);
        let one = || tar_of(&[("f", tar::EntryType::Regular, "x")]);
        let err = extract(
            &v,
            "/ro",
            "c",
            &ExtractOptions::default(),
            Box::new(io::Cursor::new(one())),
        )
        .expect_err("read-only volume");
        assert_eq!(err.to_string(), "mounted volume is marked read-only");
        let err = extract(
            &v,
            "/tmp",
            "c",
            &ExtractOptions::default(),
            Box::new(io::Cursor::new(one())),
        )
        .expect_err("read-only rootfs");
        assert_eq!(err.to_string(), "container rootfs is marked read-only");
        extract(
            &v,
            "/rw",
            "c",
            &ExtractOptions::default(),
            Box::new(io::Cursor::new(one())),
        )
        .expect("writable volume under a read-only rootfs");
        assert_eq!(fs::read_to_string(rw.join("f")).expect("f"), "x");
        assert_eq!(fs::read_dir(&ro).expect("ls").count(), 0);
        // replacing a mount's root with a file is refused, never removes the volume
        let v = view_with(&root, &[("/rw", &rw, true)], false);
        let clash = tar_of(&[("rw", tar::EntryType::Regular, "x")]);
        extract(
            &v,
            "/",
            "c",
            &ExtractOptions::default(),
            Box::new(io::Cursor::new(clash)),
        )
        .expect_err("mount root kept");
        assert!(rw.join("f").exists());
    }

    #[test]
    fn gzip_uploads_and_xattrs_round_trip() {
        use std::io::Write as _;
        let t = tempfile::tempdir().expect("tempdir");
        let src = t.path().join("src");
        fs::create_dir_all(&src).expect("mkdir");
        fs::write(src.join("a"), "attrs").expect("write");
        let have_user_xattrs = rustix::fs::lsetxattr(
            src.join("a"),
            "user.berth",
            b"kept",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok();
        let mut b = tar::Builder::new(Vec::new());
        write_tree(&mut b, &src, "src", &mut HashMap::new()).expect("tar");
        let plain = b.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let root = t.path().join("root");
        fs::create_dir_all(root.join("dst")).expect("mkdir");
        extract(
            &RootView::plain(&root),
            "/dst",
            "c",
            &ExtractOptions::default(),
            Box::new(io::Cursor::new(gz)),
        )
        .expect("extract gzip");
        let a = root.join("dst/src/a");
        assert_eq!(fs::read_to_string(&a).expect("a"), "attrs");
        if have_user_xattrs {
            let mut buf = [0u8; 16];
            let n = rustix::fs::lgetxattr(&a, "user.berth", &mut buf[..]).expect("xattr kept");
            assert_eq!(&buf[..n], b"kept");
        }
    }
}
