//! Layer apply: unpack one layer tar into an empty snapshot directory, safely, turning
//! OCI/Docker whiteouts into overlayfs whiteouts, and compute the layer's diff id (the
//! sha256 of the uncompressed tar) on the way.
//!
//! Safety model: every entry is created relative to a directory fd opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, and the final component is created
//! with `*at` calls that never follow a symlink (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`,
//! `linkat` without `AT_SYMLINK_FOLLOW`). So neither `../` nor an absolute path nor a
//! symlink planted earlier in the same tar can make an entry land outside the snapshot;
//! such entries are refused with an error that names them. Because each layer unpacks
//! into its own directory (overlayfs stacks them), a symlink from a lower layer is never
//! on the path of an upper layer's entry, so refusing to cross symlinks loses nothing.
//!
//! Whiteouts: `.wh.<name>` becomes a 0/0 character device `<name>`, `.wh..wh..opq` sets
//! `trusted.overlay.opaque=y` on its directory, other `.wh..wh.*` (aufs bookkeeping) are
//! dropped. Directory mtimes are set after the whole tar is applied, since creating
//! children changes them.

use crate::digest::TeeReader;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use std::io::{self, Read, Write};
use std::path::{Component, Path};

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("layer entry {entry:?}: {reason}")]
    Unsafe { entry: String, reason: &'static str },
    #[error("layer entry {entry:?}: hard link target {target:?} not found in the layer")]
    HardlinkTarget { entry: String, target: String },
    #[error("reading layer tar: {0}")]
    Read(#[source] io::Error),
    #[error("unsupported layer compression: {0}")]
    Compression(&'static str),
    #[error("layer entry {entry:?}: {op}: {source}")]
    Fs {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("opening snapshot directory {path}: {source}")]
    Root {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ApplyError {
    /// Errors caused by the layer's content rather than by the host.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ApplyError::Unsafe { .. }
                | ApplyError::HardlinkTarget { .. }
                | ApplyError::Read(_)
                | ApplyError::Compression(_)
        )
    }
}

/// What applying a layer measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// `sha256:` of the uncompressed tar stream.
    pub diff_id: String,
    /// Length of the uncompressed tar stream.
    pub tar_size: u64,
    /// Bytes of file content unpacked (docker's layer size).
    pub size: u64,
}

/// Compression of a layer stream, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Wrap `r` in the decompressor its magic bytes call for.
pub fn decompress<'a, R: Read + 'a>(
    mut r: R,
) -> Result<(Compression, Box<dyn Read + 'a>), ApplyError> {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ApplyError::Read(e)),
        }
    }
    let chained = io::Cursor::new(head[..n].to_vec()).chain(r);
    let h = &head[..n];
    if h.starts_with(&[0x1f, 0x8b]) {
        Ok((
            Compression::Gzip,
            Box::new(flate2::read::MultiGzDecoder::new(chained)),
        ))
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d = zstd::stream::read::Decoder::new(chained).map_err(ApplyError::Read)?;
        Ok((Compression::Zstd, Box::new(d)))
    } else if h.starts_with(b"BZh") {
        Err(ApplyError::Compression("bzip2"))
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Err(ApplyError::Compression("xz"))
    } else {
        Ok((Compression::None, Box::new(chained)))
    }
}

/// [`decompress`] for a buffered source: the decoder reads the source's own buffers (a
/// download's chunks) instead of copying them through one of its own.
pub fn decompress_buffered<'a, R: io::BufRead + 'a>(
    mut r: R,
) -> Result<(Compression, Box<dyn Read + 'a>), ApplyError> {
    let head = r.fill_buf().map_err(ApplyError::Read)?;
    if head.len() < 6 {
        // a tiny first chunk: sniff the slow way
        return decompress(r);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((
            Compression::Gzip,
            Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        ))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d = zstd::stream::read::Decoder::with_buffer(r).map_err(ApplyError::Read)?;
        Ok((Compression::Zstd, Box::new(d)))
    } else {
        decompress(r)
    }
}

/// Apply an uncompressed layer tar into `dest` (an existing, normally empty directory).
/// `side`, when given, receives a copy of every byte read (to store the layer blob).
pub fn apply_layer(
    reader: &mut dyn Read,
    dest: &Path,
    side: Option<&mut dyn Write>,
) -> Result<ApplyStats, ApplyError> {
    let root = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| ApplyError::Root {
        path: dest.to_path_buf(),
        source: e.into(),
    })?;
    let mut tee = TeeReader::new(reader, side);
    let mut applier = Applier {
        root,
        dirs: Vec::new(),
        size: 0,
        parent_cache: None,
        buf: Vec::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut tee);
        for entry in archive.entries().map_err(ApplyError::Read)? {
            let entry = entry.map_err(ApplyError::Read)?;
            applier.entry(entry)?;
        }
    }
    applier.finish_dirs()?;
    let (diff_id, tar_size) = tee.finish().map_err(ApplyError::Read)?;
    Ok(ApplyStats {
        diff_id,
        tar_size,
        size: applier.size,
    })
}

struct Applier {
    root: OwnedFd,
    /// Directories whose times are set at the end: (path components, times).
    dirs: Vec<(Vec<String>, Timestamps)>,
    size: u64,
    /// The last parent directory opened, since tar entries come grouped by directory.
    parent_cache: Option<(Vec<String>, OwnedFd)>,
    /// Copy buffer for file contents: `io::copy` would move them in 8 KiB writes.
    buf: Vec<u8>,
}

/// Ownership, mode, times and xattrs of an entry, PAX overrides applied.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    times: Timestamps,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn name_of(entry_path: &[u8]) -> String {
    String::from_utf8_lossy(entry_path).into_owned()
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copy an entry's content through a 1 MiB buffer allocated once per layer.
fn copy_content(r: &mut dyn Read, w: &mut dyn Write, buf: &mut Vec<u8>) -> Result<u64, CopyError> {
    if buf.is_empty() {
        buf.resize(1 << 20, 0);
    }
    let mut n = 0u64;
    loop {
        // fill the buffer first: decoders hand out a few KiB per read, and each write
        // costs a syscall and a pass through the filesystem's write path
        let mut k = 0;
        while k < buf.len() {
            match r.read(&mut buf[k..]) {
                Ok(0) => break,
                Ok(m) => k += m,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CopyError::Read(e)),
            }
        }
        if k == 0 {
            return Ok(n);
        }
        w.write_all(&buf[..k]).map_err(CopyError::Write)?;
        n += k as u64;
    }
}

/// Split a tar path into safe components, or say why it is unsafe.
fn components(path: &Path) -> Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => {
                out.push(s.to_str().ok_or("path is not valid UTF-8")?.to_string())
            }
            Component::CurDir => {}
            Component::ParentDir => {
                return Err("path contains \"..\" and could escape the snapshot")
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute path would escape the snapshot")
            }
        }
    }
    Ok(out)
}

fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

fn fs_err<'a>(
    entry: &'a str,
    op: &'static str,
) -> impl FnOnce(rustix::io::Errno) -> ApplyError + 'a {
    move |e| ApplyError::Fs {
        entry: entry.to_string(),
        op,
        source: e.into(),
    }
}

fn timespec(secs: i64, nanos: i64) -> Timespec {
    Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    }
}

impl Applier {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), ApplyError> {
        let display = name_of(&entry.path_bytes());
        let path = entry.path().map_err(ApplyError::Read)?.into_owned();
        let comps = components(&path).map_err(|reason| ApplyError::Unsafe {
            entry: display.clone(),
            reason,
        })?;
        let Some((name, parents)) = comps.split_last() else {
            // "./" itself: the snapshot root keeps its own metadata
            return Ok(());
        };
        let meta = self.meta(&mut entry)?;
        let kind = entry.header().entry_type();

        if let Some(hidden) = name.strip_prefix(".wh.") {
            let parent = self.parent(parents, &display)?;
            if hidden == ".wh..opq" {
                rustix::fs::fsetxattr(&parent, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                    .map_err(fs_err(&display, "set opaque xattr"))?;
            } else if !hidden.starts_with(".wh.") {
                remove_existing(parent.as_fd(), hidden, &display)?;
                rustix::fs::mknodat(
                    &parent,
                    hidden,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(fs_err(&display, "create whiteout"))?;
            }
            return Ok(());
        }

        let parent = self.parent(parents, &display)?;
        let pfd = parent.as_fd();
        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::statat(pfd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    Ok(_) => {
                        remove_existing(pfd, name, &display)?;
                        mkdir(pfd, name, &display)?;
                    }
                    Err(_) => mkdir(pfd, name, &display)?,
                }
                let dir = rustix::fs::openat2(
                    pfd,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    beneath(),
                )
                .map_err(fs_err(&display, "open directory"))?;
                set_owner_mode_xattrs(&dir, &meta, &display)?;
                let mut full = parents.to_vec();
                full.push(name.clone());
                self.dirs.push((full, meta.times));
                // the cached parent may be this directory's old incarnation
                self.parent_cache = None;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                remove_existing(pfd, name, &display)?;
                let fd = rustix::fs::openat(
                    pfd,
                    name.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(fs_err(&display, "create file"))?;
                let mut file = std::fs::File::from(fd);
                let n =
                    copy_content(&mut entry, &mut file, &mut self.buf).map_err(|e| match e {
                        CopyError::Read(e) => ApplyError::Read(e),
                        CopyError::Write(e) => ApplyError::Fs {
                            entry: display.clone(),
                            op: "write file",
                            source: e,
                        },
                    })?;
                self.size += n;
                set_owner_mode_xattrs(&file, &meta, &display)?;
                rustix::fs::futimens(&file, &meta.times).map_err(fs_err(&display, "set times"))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| ApplyError::Unsafe {
                        entry: display.clone(),
                        reason: "symlink without a target",
                    })?
                    .into_owned();
                remove_existing(pfd, name, &display)?;
                rustix::fs::symlinkat(target.as_slice(), pfd, name.as_str())
                    .map_err(fs_err(&display, "create symlink"))?;
                rustix::fs::chownat(
                    pfd,
                    name.as_str(),
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(fs_err(&display, "chown symlink"))?;
                rustix::fs::utimensat(pfd, name.as_str(), &meta.times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(fs_err(&display, "set symlink times"))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(ApplyError::Read)?
                    .ok_or_else(|| ApplyError::Unsafe {
                        entry: display.clone(),
                        reason: "hard link without a target",
                    })?
                    .into_owned();
                let tcomps = components(&target).map_err(|reason| ApplyError::Unsafe {
                    entry: display.clone(),
                    reason,
                })?;
                let target_name = target.display().to_string();
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(ApplyError::HardlinkTarget {
                        entry: display,
                        target: target_name,
                    });
                };
                let tparent = open_beneath(self.root.as_fd(), tparents).map_err(|_| {
                    ApplyError::HardlinkTarget {
                        entry: display.clone(),
                        target: target_name.clone(),
                    }
                })?;
                if tparents == parents && tname == name {
                    return Ok(());
                }
                remove_existing(pfd, name, &display)?;
                rustix::fs::linkat(
                    &tparent,
                    tname.as_str(),
                    pfd,
                    name.as_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| {
                    if e == rustix::io::Errno::NOENT {
                        ApplyError::HardlinkTarget {
                            entry: display.clone(),
                            target: target_name.clone(),
                        }
                    } else {
                        fs_err(&display, "create hard link")(e)
                    }
                })?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                remove_existing(pfd, name, &display)?;
                rustix::fs::mknodat(
                    pfd,
                    name.as_str(),
                    ft,
                    Mode::from_raw_mode(meta.mode),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(fs_err(&display, "create device node"))?;
                rustix::fs::chownat(
                    pfd,
                    name.as_str(),
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(fs_err(&display, "chown node"))?;
                // mknod's mode was filtered by the umask
                rustix::fs::chmodat(
                    pfd,
                    name.as_str(),
                    Mode::from_raw_mode(meta.mode),
                    AtFlags::empty(),
                )
                .map_err(fs_err(&display, "chmod node"))?;
                rustix::fs::utimensat(pfd, name.as_str(), &meta.times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(fs_err(&display, "set node times"))?;
            }
            // pax/gnu headers are folded into entries by the tar crate; anything else
            // (sockets have no tar type) is skipped like docker does
            _ => {}
        }
        Ok(())
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> Result<Meta, ApplyError> {
        let h = entry.header();
        // Go's archive/tar reads empty numeric fields as 0, and docker accepts such
        // tars, so be as lenient (the checksum has already vouched for the header)
        let mut uid = h.uid().unwrap_or(0) as u32;
        let mut gid = h.gid().unwrap_or(0) as u32;
        let mode = h.mode().unwrap_or(0) & 0o7777;
        let mut mtime = (h.mtime().unwrap_or(0) as i64, 0i64);
        let mut atime: Option<(i64, i64)> = None;
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions().map_err(ApplyError::Read)? {
            for ext in exts {
                let ext = ext.map_err(ApplyError::Read)?;
                let Ok(key) = ext.key() else { continue };
                if let Some(x) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.push((x.to_string(), ext.value_bytes().to_vec()));
                    continue;
                }
                let val = ext.value().unwrap_or_default();
                match key {
                    "uid" => uid = val.parse().unwrap_or(uid),
                    "gid" => gid = val.parse().unwrap_or(gid),
                    "mtime" => mtime = parse_pax_time(val).unwrap_or(mtime),
                    "atime" => atime = parse_pax_time(val),
                    _ => {}
                }
            }
        }
        let atime = atime.unwrap_or(mtime);
        Ok(Meta {
            uid,
            gid,
            mode,
            times: Timestamps {
                last_access: timespec(atime.0, atime.1),
                last_modification: timespec(mtime.0, mtime.1),
            },
            xattrs,
        })
    }

    /// The directory fd for `parents`, creating missing directories (0755, root-owned,
    /// as docker does for implied parents).
    fn parent(&mut self, parents: &[String], display: &str) -> Result<OwnedFd, ApplyError> {
        if let Some((p, fd)) = &self.parent_cache {
            if p.as_slice() == parents {
                return fd.try_clone().map_err(|e| dup_err(display, e));
            }
        }
        let fd = match open_beneath(self.root.as_fd(), parents) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                let mut cur = self.root.try_clone().map_err(|e| dup_err(display, e))?;
                for c in parents {
                    match mkdir_raw(cur.as_fd(), c, 0o755) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(fs_err(display, "create parent directory")(e)),
                    }
                    cur = open_beneath(cur.as_fd(), std::slice::from_ref(c))
                        .map_err(|e| parent_error(display, e))?;
                }
                cur
            }
            Err(e) => return Err(parent_error(display, e)),
        };
        let dup = fd.try_clone().map_err(|e| dup_err(display, e))?;
        self.parent_cache = Some((parents.to_vec(), dup));
        Ok(fd)
    }

    fn finish_dirs(&mut self) -> Result<(), ApplyError> {
        // children first, so setting a parent's time is not undone by a child's
        self.dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        for (path, times) in &self.dirs {
            let display = path.join("/");
            match open_beneath(self.root.as_fd(), path) {
                Ok(fd) => rustix::fs::futimens(&fd, times)
                    .map_err(fs_err(&display, "set directory times"))?,
                // replaced by a non-directory later in the tar
                Err(
                    rustix::io::Errno::NOTDIR | rustix::io::Errno::NOENT | rustix::io::Errno::LOOP,
                ) => {}
                Err(e) => return Err(fs_err(&display, "open directory")(e)),
            }
        }
        Ok(())
    }
}

fn dup_err(display: &str, e: io::Error) -> ApplyError {
    ApplyError::Fs {
        entry: display.to_string(),
        op: "dup directory fd",
        source: e,
    }
}

fn parent_error(display: &str, e: rustix::io::Errno) -> ApplyError {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV | rustix::io::Errno::NOTDIR => {
            ApplyError::Unsafe {
                entry: display.to_string(),
                reason: "parent path crosses a symlink or a non-directory",
            }
        }
        e => fs_err(display, "open parent directory")(e),
    }
}

fn open_beneath(root: BorrowedFd<'_>, comps: &[String]) -> Result<OwnedFd, rustix::io::Errno> {
    let rel = if comps.is_empty() {
        ".".to_string()
    } else {
        comps.join("/")
    };
    rustix::fs::openat2(
        root,
        rel.as_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        beneath(),
    )
}

fn mkdir_raw(parent: BorrowedFd<'_>, name: &str, mode: u32) -> Result<(), rustix::io::Errno> {
    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode))
}

fn mkdir(parent: BorrowedFd<'_>, name: &str, display: &str) -> Result<(), ApplyError> {
    mkdir_raw(parent, name, 0o700).map_err(fs_err(display, "create directory"))
}

/// Remove whatever non-directory or directory tree is at `name` (a later entry for the
/// same path replaces the earlier one, as in docker).
fn remove_existing(parent: BorrowedFd<'_>, name: &str, display: &str) -> Result<(), ApplyError> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(fs_err(display, "stat existing entry")(e)),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            // std's remove_dir_all never follows symlinks inside the tree; reaching the
            // directory through our fd's /proc link keeps it beneath the snapshot
            let p = format!("/proc/self/fd/{}/{}", fd_num(parent), name);
            std::fs::remove_dir_all(&p).map_err(|e| ApplyError::Fs {
                entry: display.to_string(),
                op: "remove existing directory",
                source: e,
            })
        }
        Ok(_) => rustix::fs::unlinkat(parent, name, AtFlags::empty())
            .map_err(fs_err(display, "remove existing entry")),
    }
}

fn fd_num(fd: BorrowedFd<'_>) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

fn set_owner_mode_xattrs<F: AsFd>(fd: &F, meta: &Meta, display: &str) -> Result<(), ApplyError> {
    rustix::fs::fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(fs_err(display, "chown"))?;
    // after chown, which clears setuid/setgid bits
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(fs_err(display, "chmod"))?;
    for (k, v) in &meta.xattrs {
        if let Err(e) = rustix::fs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty()) {
            // docker ignores xattrs the backing filesystem refuses (e.g. foreign
            // namespaces); losing one is better than refusing the whole image
            let entry_name = display;
            tracing::warn!(entry = entry_name, xattr = k.as_str(), error = %e, "could not set xattr");
        }
    }
    Ok(())
}

/// `1700000000.123456789` -> (secs, nanos)
fn parse_pax_time(v: &str) -> Option<(i64, i64)> {
    let (s, frac) = match v.split_once('.') {
        Some((a, b)) => (a, b),
        None => (v, ""),
    };
    let secs: i64 = s.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: i64 = digits.parse().ok()?;
    Some((secs, if secs < 0 && nanos > 0 { -nanos } else { nanos }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_decompression_matches_the_plain_reader() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::encode_all(data.as_slice(), 1).unwrap();
        for (input, kind) in [
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
            (&data, Compression::None),
        ] {
            // a normal buffer, and one smaller than the magic bytes
            for cap in [64 * 1024, 3] {
                let r = io::BufReader::with_capacity(cap, input.as_slice());
                let (c, mut out) = decompress_buffered(r).unwrap();
                assert_eq!(c, kind);
                let mut got = Vec::new();
                out.read_to_end(&mut got).unwrap();
                assert_eq!(got, data, "{kind:?} with a {cap}-byte buffer");
            }
        }
    }

    #[test]
    fn component_rules() {
        assert_eq!(components(Path::new("./a/b")).unwrap(), vec!["a", "b"]);
        assert!(components(Path::new("../evil")).is_err());
        assert!(components(Path::new("a/../../evil")).is_err());
        assert!(components(Path::new("/etc/passwd")).is_err());
        assert!(components(Path::new("./")).unwrap().is_empty());
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time("12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_pax_time("12"), Some((12, 0)));
        assert_eq!(parse_pax_time("x"), None);
    }

    #[test]
    fn detects_compression() {
        let (c, _) = decompress(&b"plain tar"[..]).unwrap();
        assert_eq!(c, Compression::None);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"data").unwrap();
        let gz = gz.finish().unwrap();
        let (c, mut r) = decompress(&gz[..]).unwrap();
        assert_eq!(c, Compression::Gzip);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "data");
        let z = zstd::encode_all(&b"zz"[..], 1).unwrap();
        let (c, mut r) = decompress(&z[..]).unwrap();
        assert_eq!(c, Compression::Zstd);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "zz");
        assert!(decompress(&b"BZh91AY"[..]).is_err());
    }
}
