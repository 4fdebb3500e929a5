//! The overlayfs snapshotter: unpacked layers on disk and the writable layers of
//! containers.
//!
//! # How snapshots are keyed and shared
//!
//! Each image layer is unpacked once, on its own, into `snapshots/<chain-hex>/fs`, where
//! the key is the layer's **chain id** (OCI image spec: the first layer's chain id is its
//! diff id; every next one is `sha256(parent_chain + " " + diff_id)`). A chain id names
//! the layer *and everything beneath it*, so two images share a snapshot exactly when they
//! share the whole stack up to that layer: `debian` and `debian + app` share the debian
//! snapshots, while the same tar placed on top of a different base gets its own snapshot
//! (its whiteouts would mean something else there). The directory holds only that layer's
//! own files, with whiteouts already in overlayfs form (see [`crate::apply`]); the stack
//! is assembled at mount time by overlayfs, lowers ordered top first. Next to `fs` sits
//! `meta.json` (chain id, parent chain id, diff id, size), so a snapshot describes itself.
//!
//! A snapshot is written atomically: the layer is unpacked into `snapshots/tmp-<random>`
//! and renamed to its key only when complete and its diff id verified. If two imports race
//! on the same layer, the second rename finds the key taken and drops its copy; a crash
//! leaves only `tmp-*` directories, removed at the next open. Snapshots are never modified
//! after the rename, which is what makes sharing safe.
//!
//! Container layers live in `snapshots/rw/<key>/` with `fs` (the overlay upper), `work`
//! (overlay's workdir, same filesystem as upper), `empty` (a lower for scratch images:
//! overlayfs needs at least one) and `rw.json` naming the image and chain ids under it.
//! The image store consults [`Snapshotter::rw_chains_in_use`] before deleting snapshots,
//! so removing an image never pulls the floor from under a container.
//!
//! # Mounting
//!
//! Mounts use the new mount API (`fsopen("overlay")`, one `fsconfig lowerdir+` per
//! layer, `fsmount`, `move_mount`): the classic `mount(2)` data string is capped at a
//! page and silently truncates long `lowerdir=` lists. Overlayfs itself allows at most
//! 500 lowers, so deeper stacks put the bottom layers in a read-only inner overlay that
//! becomes the lowest lower of the outer one. Only the bottom may be merged that way:
//! a merged view hides its whiteouts, which is correct only when nothing lies beneath.
//! The inner mount stays detached (referenced through `/proc/self/fd`) and both fds are
//! closed after `move_mount`, so a single unmount of the target releases everything.

use crate::digest::hex_part;
use rustix::fd::{AsFd, OwnedFd};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Overlayfs' limit on lower layers in one mount (`OVL_MAX_STACK`).
pub const MAX_LOWERS_PER_MOUNT: usize = 500;

/// Snapshotter failures.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {0} not found")]
    NotFound(String),
    #[error("invalid layer key {0:?}")]
    InvalidKey(String),
    #[error("rw layer {0} already exists")]
    Exists(String),
    #[error("too many layers to mount: {0} (at most {max})", max = 2 * MAX_LOWERS_PER_MOUNT - 1)]
    TooManyLayers(usize),
    #[error("snapshot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mount overlay at {target}: {step}: {source}{detail}")]
    Mount {
        target: PathBuf,
        step: &'static str,
        detail: String,
        #[source]
        source: io::Error,
    },
    #[error("unmount {target}: {source}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("corrupt snapshot metadata {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn ioerr<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What `meta.json` records about a committed layer snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub chain_id: String,
    pub parent: Option<String>,
    pub diff_id: String,
    /// Bytes of file content in the layer.
    pub size: u64,
    /// Length of the uncompressed layer tar.
    pub tar_size: u64,
}

/// What `rw.json` records about a container layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RwMeta {
    pub key: String,
    pub image_id: Option<String>,
    /// Chain ids of the image's layers, bottom first.
    pub chain: Vec<String>,
    /// The shared init layer over the image (see [`INIT_FILES`]), when it has one; layers
    /// made before berth had them have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
}

/// The files of an init layer: the mount points of the files the engine bind-mounts into
/// every container, empty, as in Docker's per-container `-init` layer. One init layer per
/// image top layer (`snapshots/init/<chain hex>`) serves all its containers as their
/// topmost lower layer, so a container start creates no mount point in its upper layer: on
/// this VM's journal-less ext4 each file created there (with the copy-up of `/etc`) was an
/// inode allocation scanning past every inode freed in the last minutes. Like Docker's, the
/// empty files shadow the image's own in the container's view (`export`, `cp` from a
/// stopped container); a running container sees the engine's files mounted over them.
pub const INIT_FILES: [&str; 3] = ["etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// A container's writable layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RwLayer {
    pub key: String,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Lower directories, topmost first (overlayfs order).
    pub lowers: Vec<PathBuf>,
}

/// A layer being unpacked; removed on drop unless committed.
pub struct TempSnapshot {
    dir: PathBuf,
    committed: bool,
}

impl TempSnapshot {
    /// The directory to unpack the layer into.
    pub fn fs(&self) -> PathBuf {
        self.dir.join("fs")
    }
}

impl Drop for TempSnapshot {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The snapshot directory tree under `<data-root>/snapshots`.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    root: PathBuf,
}

impl Snapshotter {
    /// Open (creating) the tree and remove leftovers of interrupted unpacks.
    pub fn open(root: &Path) -> Result<Snapshotter, SnapshotError> {
        let rw = root.join("rw");
        fs::create_dir_all(&rw).map_err(ioerr("create", &rw))?;
        for entry in fs::read_dir(root).map_err(ioerr("read", root))? {
            let entry = entry.map_err(ioerr("read", root))?;
            if entry.file_name().to_string_lossy().starts_with("tmp-") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        // Init layers a crash left half made (see `init_layer`).
        let init = root.join("init");
        if let Ok(entries) = fs::read_dir(&init) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        // Container layers whose removal a crash interrupted (see `detach_rw`).
        for entry in fs::read_dir(&rw).map_err(ioerr("read", &rw))? {
            let entry = entry.map_err(ioerr("read", &rw))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-rm-") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(Snapshotter {
            root: root.to_path_buf(),
        })
    }

    fn dir(&self, chain_id: &str) -> PathBuf {
        self.root.join(hex_part(chain_id))
    }

    /// The unpacked files of the layer with this chain id.
    pub fn fs_dir(&self, chain_id: &str) -> PathBuf {
        self.dir(chain_id).join("fs")
    }

    pub fn exists(&self, chain_id: &str) -> bool {
        self.dir(chain_id).join("meta.json").exists()
    }

    pub fn meta(&self, chain_id: &str) -> Result<SnapshotMeta, SnapshotError> {
        let p = self.dir(chain_id).join("meta.json");
        let data = fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                SnapshotError::NotFound(chain_id.to_string())
            } else {
                ioerr("read", &p)(e)
            }
        })?;
        serde_json::from_slice(&data).map_err(|e| SnapshotError::Corrupt {
            path: p,
            reason: e.to_string(),
        })
    }

    /// A fresh directory to unpack a layer into.
    pub fn prepare(&self) -> Result<TempSnapshot, SnapshotError> {
        let dir = self
            .root
            .join(format!("tmp-{:016x}", rand::random::<u64>()));
        let fs_dir = dir.join("fs");
        fs::create_dir_all(&fs_dir).map_err(ioerr("create", &fs_dir))?;
        // image roots are 0755 whatever the umask made of the directory
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&fs_dir, fs::Permissions::from_mode(0o755))
            .map_err(ioerr("chmod", &fs_dir))?;
        Ok(TempSnapshot {
            dir,
            committed: false,
        })
    }

    /// Publish an unpacked layer under its chain id. Returns false if an identical
    /// snapshot was already there (the temp copy is discarded).
    pub fn commit(
        &self,
        mut tmp: TempSnapshot,
        meta: &SnapshotMeta,
    ) -> Result<bool, SnapshotError> {
        let meta_path = tmp.dir.join("meta.json");
        let data = serde_json::to_vec(meta).expect("snapshot meta serialises");
        fs::write(&meta_path, data).map_err(ioerr("write", &meta_path))?;
        let target = self.dir(&meta.chain_id);
        if target.exists() {
            return Ok(false);
        }
        match fs::rename(&tmp.dir, &target) {
            Ok(()) => {
                tmp.committed = true;
                Ok(true)
            }
            // lost a race with another unpack of the same layer
            Err(e) if target.exists() => {
                tracing::debug!(error = %e, chain = meta.chain_id.as_str(), "snapshot already committed");
                Ok(false)
            }
            Err(e) => Err(ioerr("rename", &target)(e)),
        }
    }

    /// Delete a layer snapshot, and the init layer made over it; missing is fine.
    pub fn remove(&self, chain_id: &str) -> Result<bool, SnapshotError> {
        let init = self.init_dir(hex_part(chain_id));
        if init.exists() {
            let trash = self
                .root
                .join("init")
                .join(format!(".tmp-rm-{:016x}", rand::random::<u64>()));
            fs::rename(&init, &trash).map_err(ioerr("rename", &init))?;
            fs::remove_dir_all(&trash).map_err(ioerr("remove", &trash))?;
        }
        let dir = self.dir(chain_id);
        if !dir.exists() {
            return Ok(false);
        }
        // rename first so a half-removed tree is never mistaken for a snapshot
        let trash = self
            .root
            .join(format!("tmp-{:016x}", rand::random::<u64>()));
        fs::rename(&dir, &trash).map_err(ioerr("rename", &dir))?;
        fs::remove_dir_all(&trash).map_err(ioerr("remove", &trash))?;
        Ok(true)
    }

    /// All committed layer snapshots (chain ids).
    pub fn list(&self) -> Result<Vec<String>, SnapshotError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(ioerr("read", &self.root))? {
            let entry = entry.map_err(ioerr("read", &self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if crate::digest::is_hex64(&name) {
                out.push(format!("sha256:{name}"));
            }
        }
        Ok(out)
    }

    fn rw_dir(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        if key.is_empty() || key == "." || key == ".." || key.contains('/') || key.contains('\0') {
            return Err(SnapshotError::InvalidKey(key.to_string()));
        }
        Ok(self.root.join("rw").join(key))
    }

    /// Create a container layer over the given chain (bottom first); empty = scratch.
    pub fn create_rw(
        &self,
        key: &str,
        image_id: Option<&str>,
        chain: &[String],
    ) -> Result<RwLayer, SnapshotError> {
        let dir = self.rw_dir(key)?;
        for c in chain {
            if !self.exists(c) {
                return Err(SnapshotError::NotFound(c.clone()));
            }
        }
        if dir.exists() {
            return Err(SnapshotError::Exists(key.to_string()));
        }
        let init = self.init_layer(chain)?;
        let tmp = self
            .root
            .join("rw")
            .join(format!(".tmp-{key}-{:08x}", rand::random::<u32>()));
        // `empty` is the lower layer of a container of an image without layers (overlayfs
        // needs one); other containers go without, one file fewer on the disk.
        let subs: &[&str] = if chain.is_empty() {
            &["fs", "work", "empty"]
        } else {
            &["fs", "work"]
        };
        for sub in subs {
            let p = tmp.join(sub);
            fs::create_dir_all(&p).map_err(ioerr("create", &p))?;
        }
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(tmp.join("fs"), fs::Permissions::from_mode(0o755));
        let meta = RwMeta {
            key: key.to_string(),
            image_id: image_id.map(str::to_string),
            chain: chain.to_vec(),
            init,
        };
        let mp = tmp.join("rw.json");
        fs::write(&mp, serde_json::to_vec(&meta).expect("rw meta serialises"))
            .map_err(ioerr("write", &mp))?;
        if let Err(e) = fs::rename(&tmp, &dir) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(if dir.exists() {
                SnapshotError::Exists(key.to_string())
            } else {
                ioerr("rename", &dir)(e)
            });
        }
        Ok(self.rw_layer(&meta, &dir))
    }

    fn init_dir(&self, key: &str) -> PathBuf {
        self.root.join("init").join(key)
    }

    /// The init layer over an image's layers (`chain`, bottom first; made on first use):
    /// its key, named after the top layer, or `None` for an image without layers or whose
    /// `/etc` is not a plain directory (a link, say), which a directory in a layer above
    /// would shadow. The init layer's `etc` takes the owner, mode and times of the image's,
    /// since the topmost lower decides them.
    fn init_layer(&self, chain: &[String]) -> Result<Option<String>, SnapshotError> {
        let Some(top) = chain.last() else {
            return Ok(None);
        };
        let key = hex_part(top).to_string();
        let dir = self.init_dir(&key);
        if dir.join("fs").is_dir() {
            return Ok(Some(key));
        }
        // The image's /etc as the container would see it: from the topmost layer that has
        // one (a whiteout or anything but a directory there means no init layer).
        let mut etc_meta = None;
        for c in chain.iter().rev() {
            match fs::symlink_metadata(self.fs_dir(c).join("etc")) {
                Ok(m) if m.is_dir() => {
                    etc_meta = Some(m);
                    break;
                }
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ioerr("stat", &self.fs_dir(c).join("etc"))(e)),
            }
        }
        let parent_dir = self.root.join("init");
        fs::create_dir_all(&parent_dir).map_err(ioerr("create", &parent_dir))?;
        let tmp = parent_dir.join(format!(".tmp-{:016x}", rand::random::<u64>()));
        let made = (|| -> io::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            let etc = tmp.join("fs").join("etc");
            fs::create_dir_all(&etc)?;
            fs::set_permissions(tmp.join("fs"), fs::Permissions::from_mode(0o755))?;
            for f in INIT_FILES {
                let p = tmp.join("fs").join(f);
                fs::File::create(&p)?;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o644))?;
            }
            match &etc_meta {
                Some(m) => {
                    use std::os::unix::fs::MetadataExt;
                    fs::set_permissions(&etc, fs::Permissions::from_mode(m.mode() & 0o7777))?;
                    std::os::unix::fs::lchown(&etc, Some(m.uid()), Some(m.gid()))?;
                    let times = fs::FileTimes::new()
                        .set_accessed(m.accessed()?)
                        .set_modified(m.modified()?);
                    fs::File::open(&etc)?.set_times(times)?;
                }
                None => fs::set_permissions(&etc, fs::Permissions::from_mode(0o755))?,
            }
            Ok(())
        })();
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&tmp);
            return Err(ioerr("make init layer in", &tmp)(e));
        }
        if let Err(e) = fs::rename(&tmp, &dir) {
            let _ = fs::remove_dir_all(&tmp);
            // Another container of the same image made it first.
            if !dir.join("fs").is_dir() {
                return Err(ioerr("rename", &dir)(e));
            }
        }
        Ok(Some(key))
    }

    fn rw_layer(&self, meta: &RwMeta, dir: &Path) -> RwLayer {
        let lowers = if meta.chain.is_empty() {
            vec![dir.join("empty")]
        } else {
            meta.init
                .iter()
                .map(|k| self.init_dir(k).join("fs"))
                .chain(meta.chain.iter().rev().map(|c| self.fs_dir(c)))
                .collect()
        };
        RwLayer {
            key: meta.key.clone(),
            upper: dir.join("fs"),
            work: dir.join("work"),
            lowers,
        }
    }

    /// The metadata of a container layer.
    pub fn rw_meta(&self, key: &str) -> Result<RwMeta, SnapshotError> {
        let p = self.rw_dir(key)?.join("rw.json");
        let data = fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                SnapshotError::NotFound(key.to_string())
            } else {
                ioerr("read", &p)(e)
            }
        })?;
        serde_json::from_slice(&data).map_err(|e| SnapshotError::Corrupt {
            path: p,
            reason: e.to_string(),
        })
    }

    /// The directories of a container layer.
    pub fn rw(&self, key: &str) -> Result<RwLayer, SnapshotError> {
        let meta = self.rw_meta(key)?;
        Ok(self.rw_layer(&meta, &self.rw_dir(key)?))
    }

    /// Remove a container layer; missing is fine. The caller unmounts first.
    pub fn remove_rw(&self, key: &str) -> Result<(), SnapshotError> {
        match self.detach_rw(key)? {
            Some(trash) => fs::remove_dir_all(&trash).map_err(ioerr("remove", &trash)),
            None => Ok(()),
        }
    }

    /// Take a container layer out of the store with one rename and return where its files
    /// went, for the caller to delete when it suits (a big upper dir takes long to delete, and
    /// `docker run --rm` waits for the removal); `None` when there is no such layer. The
    /// caller unmounts first. What a crash leaves behind is deleted by the next `open`.
    pub fn detach_rw(&self, key: &str) -> Result<Option<PathBuf>, SnapshotError> {
        let dir = self.rw_dir(key)?;
        if !dir.exists() {
            return Ok(None);
        }
        let trash = self
            .root
            .join("rw")
            .join(format!(".tmp-rm-{key}-{:08x}", rand::random::<u32>()));
        fs::rename(&dir, &trash).map_err(ioerr("rename", &dir))?;
        Ok(Some(trash))
    }

    /// Every container layer's metadata.
    pub fn list_rw(&self) -> Result<Vec<RwMeta>, SnapshotError> {
        let dir = self.root.join("rw");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(ioerr("read", &dir))? {
            let entry = entry.map_err(ioerr("read", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match self.rw_meta(&name) {
                Ok(m) => out.push(m),
                Err(SnapshotError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Chain ids some container layer stands on.
    pub fn rw_chains_in_use(&self) -> Result<HashSet<String>, SnapshotError> {
        Ok(self
            .list_rw()?
            .into_iter()
            .flat_map(|m| m.chain.into_iter())
            .collect())
    }

    /// Bytes in a container layer's upper directory (hard links counted once).
    pub fn rw_size(&self, key: &str) -> Result<u64, SnapshotError> {
        let layer = self.rw(key)?;
        let mut seen = HashSet::new();
        dir_size(&layer.upper, &mut seen).map_err(ioerr("measure", &layer.upper))
    }

    /// Mount a container layer's overlay at `target` (created if missing). A target that
    /// is already a mount point is left as it is: after a daemon restart the rootfs of a
    /// live container is still mounted, and stacking a second overlay on it would hide
    /// nothing but leak a mount.
    pub fn mount_rw(&self, key: &str, target: &Path) -> Result<(), SnapshotError> {
        self.mount_rw_with(key, target, false)
    }

    /// [`Self::mount_rw`] with overlayfs' `volatile` option: the overlay never syncs its
    /// upper layer, which makes the unmount of a container that wrote files several
    /// milliseconds cheaper. Only for layers thrown away when the container ends (`--rm`,
    /// as podman does): after a host crash their contents are not worth keeping anyway.
    pub fn mount_rw_volatile(&self, key: &str, target: &Path) -> Result<(), SnapshotError> {
        self.mount_rw_with(key, target, true)
    }

    fn mount_rw_with(&self, key: &str, target: &Path, volatile: bool) -> Result<(), SnapshotError> {
        let meta = self.rw_meta(key)?;
        // Removed only with the image's top layer, which no container's image can lose;
        // made again should anything have taken it.
        if let Some(init) = &meta.init {
            if !self.init_dir(init).join("fs").is_dir() {
                self.init_layer(&meta.chain)?;
            }
        }
        let layer = self.rw_layer(&meta, &self.rw_dir(key)?);
        fs::create_dir_all(target).map_err(ioerr("create", target))?;
        if is_mount_point(target).map_err(ioerr("stat", target))? {
            tracing::debug!(target = %target.display(), "rw layer already mounted");
            return Ok(());
        }
        if volatile {
            // The kernel leaves this marker behind after every volatile mount and refuses
            // the next mount while it exists; the layer is ours and was unmounted by us.
            let marker = layer.work.join("work").join("incompat");
            if marker.exists() {
                fs::remove_dir_all(&marker).map_err(ioerr("remove", &marker))?;
            }
        }
        mount_overlay_with(
            &layer.lowers,
            Some((&layer.upper, &layer.work)),
            target,
            volatile,
        )
    }
}

/// Whether `p` is the root of a mount (statx knows it directly).
fn is_mount_point(p: &Path) -> io::Result<bool> {
    let st = rustix::fs::statx(
        rustix::fs::CWD,
        p,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        rustix::fs::StatxFlags::BASIC_STATS,
    )?;
    let root = rustix::fs::StatxAttributes::MOUNT_ROOT;
    Ok(st.stx_attributes_mask.contains(root) && st.stx_attributes.contains(root))
}

fn dir_size(dir: &Path, seen: &mut HashSet<(u64, u64)>) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let md = entry.path().symlink_metadata()?;
        if md.is_dir() {
            total += dir_size(&entry.path(), seen)?;
        } else if (md.is_file() || md.file_type().is_symlink()) && seen.insert((md.dev(), md.ino()))
        {
            total += md.len();
        }
    }
    Ok(total)
}

fn mount_err(
    target: &Path,
    step: &'static str,
    fs_fd: Option<&OwnedFd>,
) -> impl FnOnce(rustix::io::Errno) -> SnapshotError {
    let target = target.to_path_buf();
    let detail = fs_fd.map(kernel_log).unwrap_or_default();
    move |e| SnapshotError::Mount {
        target,
        step,
        detail,
        source: e.into(),
    }
}

/// The messages the kernel queued on an fs context fd (why fsconfig failed).
fn kernel_log(fd: &OwnedFd) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    // each read returns one message; the fd is non-blocking-ish: ENODATA when empty
    for _ in 0..16 {
        match rustix::io::read(fd, &mut buf) {
            Ok(n) if n > 0 => {
                out.push_str(" (");
                out.push_str(String::from_utf8_lossy(&buf[..n]).trim());
                out.push(')');
            }
            _ => break,
        }
    }
    out
}

/// Build a detached overlay mount from `lowers` (topmost first) and an optional
/// upper/work pair; returns the fsmount fd.
fn overlay_mount_fd(
    lowers: &[String],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    volatile: bool,
) -> Result<OwnedFd, SnapshotError> {
    let fs_fd = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(mount_err(target, "fsopen", None))?;
    let set = |key: &str, value: &str, step: &'static str| {
        rustix::mount::fsconfig_set_string(fs_fd.as_fd(), key, value)
            .map_err(|e| mount_err(target, step, Some(&fs_fd))(e))
    };
    set("source", "overlay", "fsconfig source")?;
    for l in lowers {
        set("lowerdir+", l, "fsconfig lowerdir+")?;
    }
    if let Some((u, w)) = upper {
        set("upperdir", &path_str(u)?, "fsconfig upperdir")?;
        set("workdir", &path_str(w)?, "fsconfig workdir")?;
        // Kernels before 5.10 do not know the flag: they get an ordinary mount.
        if volatile && rustix::mount::fsconfig_set_flag(fs_fd.as_fd(), "volatile").is_err() {
            tracing::debug!(target = %target.display(), "overlay volatile not supported");
        }
    }
    rustix::mount::fsconfig_create(fs_fd.as_fd())
        .map_err(|e| mount_err(target, "fsconfig create", Some(&fs_fd))(e))?;
    rustix::mount::fsmount(
        fs_fd.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )
    .map_err(|e| mount_err(target, "fsmount", Some(&fs_fd))(e))
}

fn path_str(p: &Path) -> Result<String, SnapshotError> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| SnapshotError::InvalidKey(p.display().to_string()))
}

/// How a stack of lowers (topmost first) is spread over overlay mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// Lowers given to the outer mount directly, topmost first.
    pub direct: Vec<String>,
    /// The bottom of the stack, merged in a read-only inner overlay that becomes the
    /// outer mount's lowest lower.
    pub inner: Option<Vec<String>>,
}

/// Split `lowers` (topmost first) so that no mount gets more than overlayfs allows.
pub fn plan_lowers(mut lowers: Vec<String>) -> Result<MountPlan, SnapshotError> {
    if lowers.len() <= MAX_LOWERS_PER_MOUNT {
        return Ok(MountPlan {
            direct: lowers,
            inner: None,
        });
    }
    if lowers.len() > 2 * MAX_LOWERS_PER_MOUNT - 1 {
        return Err(SnapshotError::TooManyLayers(lowers.len()));
    }
    // one slot of the outer mount is taken by the inner overlay
    let bottom = lowers.split_off(MAX_LOWERS_PER_MOUNT - 1);
    Ok(MountPlan {
        direct: lowers,
        inner: Some(bottom),
    })
}

/// Mount an overlay of `lowers` (topmost first) at `target`.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), SnapshotError> {
    mount_overlay_with(lowers, upper, target, false)
}

fn mount_overlay_with(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    volatile: bool,
) -> Result<(), SnapshotError> {
    let strs = lowers
        .iter()
        .map(|p| path_str(p))
        .collect::<Result<Vec<_>, _>>()?;
    let plan = plan_lowers(strs)?;
    let mut outer = plan.direct;
    // kept open until the outer mount holds its own reference to the inner one
    let mut _inner: Option<OwnedFd> = None;
    if let Some(bottom) = plan.inner {
        let inner = overlay_mount_fd(&bottom, None, target, false)?;
        use std::os::fd::AsRawFd;
        outer.push(format!("/proc/self/fd/{}", inner.as_raw_fd()));
        _inner = Some(inner);
    }
    let mnt = overlay_mount_fd(&outer, upper, target, volatile)?;
    rustix::mount::move_mount(
        mnt.as_fd(),
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(mount_err(target, "move_mount", None))?;
    // dropping both fds here matters: a still-open fsmount fd keeps the mount busy
    drop(mnt);
    Ok(())
}

/// Unmount `target`; not mounted is fine, busy falls back to a lazy detach.
pub fn unmount(target: &Path) -> Result<(), SnapshotError> {
    match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => Ok(()),
        Err(rustix::io::Errno::BUSY) => rustix::mount::unmount(target, UnmountFlags::DETACH)
            .map_err(|e| SnapshotError::Unmount {
                target: target.to_path_buf(),
                source: e.into(),
            }),
        Err(e) => Err(SnapshotError::Unmount {
            target: target.to_path_buf(),
            source: e.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_stacks_merge_only_the_bottom() {
        let names = |n: usize| (0..n).map(|i| format!("l{i}")).collect::<Vec<_>>();
        let p = plan_lowers(names(500)).unwrap();
        assert_eq!((p.direct.len(), p.inner), (500, None));
        let p = plan_lowers(names(501)).unwrap();
        assert_eq!(p.direct.len(), 499);
        assert_eq!(p.direct[0], "l0");
        assert_eq!(
            p.inner.as_deref(),
            Some(&["l499".to_string(), "l500".to_string()][..])
        );
        let p = plan_lowers(names(999)).unwrap();
        assert_eq!(p.inner.unwrap().len(), 500);
        assert!(matches!(
            plan_lowers(names(1000)),
            Err(SnapshotError::TooManyLayers(1000))
        ));
    }

    /// A committed layer `hex` (64 hex digits of `n`) over `parent` whose fs gets `make`.
    fn layer(s: &Snapshotter, n: u8, parent: Option<&str>, make: impl FnOnce(&Path)) -> String {
        let chain = format!("sha256:{}", format!("{n:02x}").repeat(32));
        let tmp = s.prepare().unwrap();
        make(&tmp.fs());
        let meta = SnapshotMeta {
            chain_id: chain.clone(),
            parent: parent.map(str::to_string),
            diff_id: chain.clone(),
            size: 0,
            tar_size: 0,
        };
        assert!(s.commit(tmp, &meta).unwrap());
        chain
    }

    #[test]
    fn containers_of_an_image_share_one_init_layer_with_the_mount_points() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::open(dir.path()).unwrap();
        let base = layer(&s, 1, None, |fs_dir| {
            fs::create_dir(fs_dir.join("etc")).unwrap();
            fs::set_permissions(fs_dir.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
            std::os::unix::fs::lchown(fs_dir.join("etc"), Some(7), Some(8)).unwrap();
            fs::write(fs_dir.join("etc/hosts"), b"image's own").unwrap();
        });
        let top = layer(&s, 2, Some(&base), |fs_dir| {
            fs::write(fs_dir.join("app"), b"x").unwrap();
        });
        let chain = vec![base.clone(), top.clone()];
        let a = s.create_rw("a", None, &chain).unwrap();
        let b = s.create_rw("b", None, &chain).unwrap();
        let init = dir.path().join("init").join(hex_part(&top)).join("fs");
        assert_eq!(a.lowers[0], init, "the init layer is the topmost lower");
        assert_eq!(b.lowers, a.lowers, "shared by containers of the image");
        assert_eq!(a.lowers[1], s.fs_dir(&top));
        for f in INIT_FILES {
            assert_eq!(fs::read(init.join(f)).unwrap(), b"", "{f}");
        }
        let etc = fs::metadata(init.join("etc")).unwrap();
        assert_eq!(etc.mode() & 0o7777, 0o750, "the image's /etc mode");
        assert_eq!((etc.uid(), etc.gid()), (7, 8), "the image's /etc owner");
        // After a restart the layer is found again; taken away, the mount makes it again.
        assert_eq!(s.rw("a").unwrap().lowers, a.lowers);
        fs::remove_dir_all(dir.path().join("init")).unwrap();
        assert_eq!(
            s.init_layer(&chain).unwrap().as_deref(),
            Some(hex_part(&top))
        );
        // The image's layers go (no container left): its init layer with them.
        s.remove_rw("a").unwrap();
        s.remove_rw("b").unwrap();
        s.remove(&top).unwrap();
        assert!(!init.exists());
        // An image whose /etc is a link gets no init layer (its own /etc decides).
        let linked = layer(&s, 3, None, |fs_dir| {
            std::os::unix::fs::symlink("usr/etc", fs_dir.join("etc")).unwrap();
        });
        let c = s
            .create_rw("c", None, std::slice::from_ref(&linked))
            .unwrap();
        assert_eq!(c.lowers, vec![s.fs_dir(&linked)]);
        assert_eq!(s.rw_meta("c").unwrap().init, None);
    }

    #[test]
    fn rw_keys_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::open(dir.path()).unwrap();
        for bad in ["", "..", "a/b", "."] {
            assert!(matches!(
                s.create_rw(bad, None, &[]),
                Err(SnapshotError::InvalidKey(_))
            ));
        }
        let l = s.create_rw("c1", None, &[]).unwrap();
        assert_eq!(l.lowers, vec![dir.path().join("rw/c1/empty")]);
        assert!(matches!(
            s.create_rw("c1", None, &[]),
            Err(SnapshotError::Exists(_))
        ));
        let missing = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(
            s.create_rw("c2", None, &[missing]),
            Err(SnapshotError::NotFound(_))
        ));
        fs::write(l.upper.join("f"), b"1234").unwrap();
        assert_eq!(s.rw_size("c1").unwrap(), 4);
        s.remove_rw("c1").unwrap();
        s.remove_rw("c1").unwrap();
        assert!(s.list_rw().unwrap().is_empty());
    }

    #[test]
    fn detached_layers_leave_the_store_at_once_and_a_reopen_deletes_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::open(dir.path()).unwrap();
        let l = s.create_rw("c1", None, &[]).unwrap();
        fs::write(l.upper.join("f"), b"data").unwrap();
        let trash = s.detach_rw("c1").unwrap().expect("the layer existed");
        assert!(s.list_rw().unwrap().is_empty(), "gone from the store");
        assert!(matches!(s.rw("c1"), Err(SnapshotError::NotFound(_))));
        let rel = l.upper.strip_prefix(dir.path().join("rw/c1")).unwrap();
        assert!(
            trash.join(rel).join("f").exists(),
            "files wait for the caller"
        );
        assert!(s.detach_rw("c1").unwrap().is_none());
        // A create with the same key is not disturbed by the pending delete.
        s.create_rw("c1", None, &[]).unwrap();
        // The caller never deleted them (a crash): the next open does.
        drop(s);
        let s = Snapshotter::open(dir.path()).unwrap();
        assert!(!trash.exists());
        assert_eq!(s.list_rw().unwrap().len(), 1);
    }
}
