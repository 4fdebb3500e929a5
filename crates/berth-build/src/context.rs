//! COPY/ADD's file rules over a source tree: finding sources (wildcards), hashing their
//! content for cache keys, and copying them into a step's mounted root filesystem with
//! docker's rules.
//!
//! A source is a [`SourceTree`]: the build context as an in-memory index of the tar the
//! client sent ([`crate::index::ContextIndex`], never unpacked for a COPY), or a directory
//! on disk ([`DiskTree`]: a mounted image for `COPY --from`, a downloaded ADD URL). The
//! rules are written once against the trait, so both give the same files, modes, owners
//! and mtimes, and the same content hash for the same content.
//!
//! Two trees are untrusted here: the source (its symlinks may point anywhere) and the
//! image rootfs being written (its symlinks, too). Every path inside either is therefore
//! resolved with symlinks and `..` clamped to its root ([`resolve_in_root`] on disk, the
//! index's own resolver in memory), and copying never follows a symlink it finds: it
//! recreates the link.
//!
//! Content hashes cover relative path, type, permission bits, link targets and the sha256
//! of file bytes, never timestamps, so touching a file does not invalidate the cache but
//! editing it does.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use berth_runtime::user::resolve_in_root;
use sha2::{Digest, Sha256};

use crate::dockerignore::{clean_path, IgnoreError, PatternMatcher};

/// A context or copy operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("read build context: {0}")]
    Tar(io::Error),
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    #[error("file not found in build context or excluded by .dockerignore: stat {0}: file does not exist")]
    NotFound(String),
    #[error("no source files were specified")]
    NoSources,
    #[error("cannot resolve {path} inside {root}: {detail}")]
    Resolve {
        path: String,
        root: PathBuf,
        detail: String,
    },
    #[error("invalid --chmod value {0:?}: expected octal digits")]
    Chmod(String),
    #[error("unsupported archive {path}: {detail}")]
    Archive { path: PathBuf, detail: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContextError + 'a {
    move |source| ContextError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What a source entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// Devices, fifos, sockets: never copied.
    Other,
}

/// The metadata of a source entry the copy rules look at.
#[derive(Debug, Clone)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: Option<SystemTime>,
}

/// A tree COPY and ADD read from. Paths given to [`SourceTree::resolve`] are
/// `/`-separated and relative to the tree's root; every symlink on the way, the last
/// component included, is followed and clamped to the root. Nodes found through
/// [`SourceTree::children`] are not followed (a symlink there is copied as a link).
pub trait SourceTree: Sync {
    type Node: Clone;
    fn resolve(&self, rel: &str) -> Result<Self::Node, ContextError>;
    /// The entry's metadata (not following a symlink), `None` when it does not exist.
    fn stat(&self, node: &Self::Node) -> Result<Option<Meta>, ContextError>;
    /// A directory's entries, sorted by name.
    fn children(&self, node: &Self::Node) -> Result<Vec<(OsString, Self::Node)>, ContextError>;
    fn read_link(&self, node: &Self::Node) -> Result<PathBuf, ContextError>;
    /// A regular file's bytes.
    fn open(&self, node: &Self::Node) -> Result<Box<dyn Read + '_>, ContextError>;
    /// sha256 of a regular file's bytes (an index has it already; a disk tree reads).
    fn digest(&self, node: &Self::Node) -> Result<[u8; 32], ContextError> {
        let mut r = self.open(node)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf).map_err(ContextError::Tar)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finalize().into())
    }
    /// The node's path for messages.
    fn display(&self, node: &Self::Node) -> PathBuf;
}

/// A directory on disk as a source tree.
#[derive(Debug, Clone)]
pub struct DiskTree {
    root: PathBuf,
}

impl DiskTree {
    pub fn new(root: impl Into<PathBuf>) -> DiskTree {
        DiskTree { root: root.into() }
    }
}

impl SourceTree for DiskTree {
    type Node = PathBuf;

    fn resolve(&self, rel: &str) -> Result<PathBuf, ContextError> {
        resolve(&self.root, rel)
    }

    fn stat(&self, node: &PathBuf) -> Result<Option<Meta>, ContextError> {
        let m = match fs::symlink_metadata(node) {
            Ok(m) => m,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(io_err("stat", node)(e)),
        };
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else if ft.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Other
        };
        Ok(Some(Meta {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.len(),
            mtime: m.modified().ok(),
        }))
    }

    fn children(&self, node: &PathBuf) -> Result<Vec<(OsString, PathBuf)>, ContextError> {
        let mut names: Vec<OsString> = fs::read_dir(node)
            .map_err(io_err("read", node))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        Ok(names
            .into_iter()
            .map(|n| {
                let p = node.join(&n);
                (n, p)
            })
            .collect())
    }

    fn read_link(&self, node: &PathBuf) -> Result<PathBuf, ContextError> {
        fs::read_link(node).map_err(io_err("readlink", node))
    }

    fn open(&self, node: &PathBuf) -> Result<Box<dyn Read + '_>, ContextError> {
        Ok(Box::new(
            fs::File::open(node).map_err(io_err("open", node))?,
        ))
    }

    fn display(&self, node: &PathBuf) -> PathBuf {
        node.clone()
    }
}

/// Resolves a `/`-separated path given by a Dockerfile inside `root` (never leaving it).
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, ContextError> {
    let cleaned = clean_path(&format!("/{rel}"));
    resolve_in_root(root, Path::new(cleaned.trim_start_matches('/'))).map_err(|e| {
        ContextError::Resolve {
            path: rel.to_owned(),
            root: root.to_path_buf(),
            detail: e.to_string(),
        }
    })
}

fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Go's `filepath.Match` for one path component: `*`, `?`, `[...]` (with `^`/`!` negation and
/// ranges) and `\` escapes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn inner(p: &[char], n: &[char]) -> bool {
        if p.is_empty() {
            return n.is_empty();
        }
        match p[0] {
            '*' => (0..=n.len()).any(|i| inner(&p[1..], &n[i..])),
            '?' => !n.is_empty() && inner(&p[1..], &n[1..]),
            '[' => {
                let Some(c) = n.first() else { return false };
                let mut i = 1;
                let negate = matches!(p.get(1), Some('^') | Some('!'));
                if negate {
                    i += 1;
                }
                let mut matched = false;
                let mut first = true;
                while i < p.len() && (p[i] != ']' || first) {
                    first = false;
                    let mut lo = p[i];
                    if lo == '\\' && i + 1 < p.len() {
                        i += 1;
                        lo = p[i];
                    }
                    let mut hi = lo;
                    if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|c| *c != ']') {
                        hi = p[i + 2];
                        i += 2;
                    }
                    if lo <= *c && *c <= hi {
                        matched = true;
                    }
                    i += 1;
                }
                if i >= p.len() {
                    return false; // unterminated class: Go reports ErrBadPattern
                }
                matched != negate && inner(&p[i + 1..], &n[1..])
            }
            '\\' if p.len() > 1 => !n.is_empty() && n[0] == p[1] && inner(&p[2..], &n[1..]),
            c => !n.is_empty() && n[0] == c && inner(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    inner(&p, &n)
}

/// The tree-relative paths a COPY/ADD source names: itself when it has no wildcards (it
/// must exist), else every match (at least one).
pub fn expand_source<T: SourceTree>(tree: &T, src: &str) -> Result<Vec<String>, ContextError> {
    let cleaned = clean_path(&format!("/{src}"));
    let rel = cleaned.trim_start_matches('/').to_owned();
    if !has_wildcards(&rel) {
        let node = tree.resolve(&rel)?;
        if tree.stat(&node).ok().flatten().is_none() {
            return Err(ContextError::NotFound(
                src.trim_start_matches('/').to_owned(),
            ));
        }
        return Ok(vec![rel]);
    }
    let mut current: Vec<String> = vec![String::new()];
    for comp in rel.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &current {
            if has_wildcards(comp) {
                let dir = tree.resolve(base)?;
                if !matches!(
                    tree.stat(&dir),
                    Ok(Some(Meta {
                        kind: Kind::Dir,
                        ..
                    }))
                ) {
                    continue;
                }
                let Ok(children) = tree.children(&dir) else {
                    continue;
                };
                for (n, _) in children {
                    let n = n.to_string_lossy();
                    if glob_match(comp, &n) {
                        next.push(join_rel(base, &n));
                    }
                }
            } else {
                let cand = join_rel(base, comp);
                if tree.stat(&tree.resolve(&cand)?).ok().flatten().is_some() {
                    next.push(cand);
                }
            }
        }
        current = next;
    }
    if current.is_empty() {
        return Err(ContextError::NoSources);
    }
    Ok(current)
}

fn join_rel(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}/{name}")
    }
}

/// The content hash (`sha256:<hex>`) of the sources of one COPY/ADD: relative paths,
/// types, permission bits, link targets and each file's sha256, in sorted order; no
/// timestamps. The same content gives the same hash from any [`SourceTree`].
pub fn hash_sources<T: SourceTree>(tree: &T, sources: &[String]) -> Result<String, ContextError> {
    let mut h = Sha256::new();
    for src in sources {
        h.update(b"source\0");
        h.update(src.as_bytes());
        for rel in expand_source(tree, src)? {
            let node = tree.resolve(&rel)?;
            hash_tree(tree, &mut h, &node, &rel)?;
        }
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

fn hash_tree<T: SourceTree>(
    tree: &T,
    h: &mut Sha256,
    node: &T::Node,
    rel: &str,
) -> Result<(), ContextError> {
    let Some(meta) = tree.stat(node)? else {
        return Err(ContextError::NotFound(rel.to_owned()));
    };
    h.update(rel.as_bytes());
    h.update([0]);
    h.update(meta.mode.to_le_bytes());
    match meta.kind {
        Kind::Symlink => {
            h.update(b"l");
            h.update(tree.read_link(node)?.as_os_str().as_encoded_bytes());
        }
        Kind::Dir => {
            h.update(b"d");
            for (n, child) in tree.children(node)? {
                let child_rel = format!("{rel}/{}", n.to_string_lossy());
                hash_tree(tree, h, &child, &child_rel)?;
            }
        }
        Kind::File => {
            h.update(b"f");
            h.update(meta.size.to_le_bytes());
            h.update(tree.digest(node)?);
        }
        Kind::Other => h.update(b"o"),
    }
    Ok(())
}

/// How copied files are owned and what mode they get.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// `--chown`, resolved to ids; `None` keeps the source owner (for `--from`) or makes
    /// files root's (context sources: `keep_owner` false).
    pub owner: Option<(u32, u32)>,
    /// Keep the source's owner when `owner` is `None` (COPY --from does, context copies do
    /// not: the context's owners are the client's, meaningless in the image).
    pub keep_owner: bool,
    /// `--chmod`, parsed.
    pub chmod: Option<u32>,
    /// `--exclude` patterns, relative to each source.
    pub excludes: Vec<String>,
    /// `--parents`: keep the source's directory path below the destination.
    pub parents: bool,
    /// ADD: unpack local tar archives instead of copying them.
    pub unpack_archives: bool,
}

/// Parses `--chmod` (octal only, as the classic builder accepts).
pub fn parse_chmod(s: &str) -> Result<u32, ContextError> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| ContextError::Chmod(s.to_owned()))
}

/// The absolute destination of a COPY/ADD given the stage's WORKDIR.
pub fn dest_path(dest: &str, workdir: &str) -> String {
    let joined = if dest.starts_with('/') {
        dest.to_owned()
    } else {
        let wd = if workdir.is_empty() { "/" } else { workdir };
        format!("{}/{dest}", wd.trim_end_matches('/'))
    };
    let mut cleaned = clean_path(&joined);
    // A trailing slash (or `.`) says "a directory", which cleaning would lose.
    if (dest.ends_with('/') || dest == "." || dest.ends_with("/.")) && !cleaned.ends_with('/') {
        cleaned.push('/');
    }
    cleaned
}

/// Copies `sources` (paths relative to the tree's root, wildcards allowed) to `dest`
/// (absolute, from [`dest_path`]) inside `dest_root`, with docker's rules: a directory
/// source copies its contents; several sources, a wildcard or a trailing `/` make `dest` a
/// directory; a single file goes to `dest` itself unless `dest` is an existing directory.
pub fn copy_sources<T: SourceTree>(
    tree: &T,
    sources: &[String],
    dest_root: &Path,
    dest: &str,
    opts: &CopyOptions,
) -> Result<(), ContextError> {
    let excludes = PatternMatcher::new(&opts.excludes)?;
    let mut expanded = Vec::new();
    let mut wildcard = false;
    for s in sources {
        wildcard |= has_wildcards(s);
        expanded.extend(expand_source(tree, s)?);
    }
    let existing_dir = resolve(dest_root, dest).map(|p| p.is_dir())?;
    let dest_is_dir = dest.ends_with('/') || sources.len() > 1 || wildcard || existing_dir;
    for rel in expanded {
        let src = tree.resolve(&rel)?;
        let meta = tree
            .stat(&src)?
            .ok_or_else(|| ContextError::NotFound(rel.clone()))?;
        let name = Path::new(&rel)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = if opts.parents {
            let parent = Path::new(&rel)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            join_rel(&join_rel(dest.trim_end_matches('/'), &parent), &name)
        } else if meta.kind == Kind::Dir {
            dest.trim_end_matches('/').to_owned()
        } else if dest_is_dir {
            join_rel(dest.trim_end_matches('/'), &name)
        } else {
            dest.to_owned()
        };
        let target = if target.is_empty() {
            "/".to_owned()
        } else {
            target
        };
        mkdir_parents(dest_root, &target)?;
        if meta.kind == Kind::File && opts.unpack_archives {
            if let Some(kind) = archive_kind(tree, &src)? {
                let dir = if dest_is_dir || dest.ends_with('/') {
                    dest.trim_end_matches('/').to_owned()
                } else {
                    dest.to_owned()
                };
                mkdir_all(dest_root, &dir, opts)?;
                unpack_archive(tree, &src, kind, dest_root, &dir)?;
                continue;
            }
        }
        copy_tree(tree, &src, dest_root, &target, opts, &excludes, "")?;
    }
    Ok(())
}

/// Creates the parents of `target` that do not exist (root-owned, 0755, like the classic
/// builder; `--chown` applies to the destination directory itself only).
fn mkdir_parents(root: &Path, target: &str) -> Result<(), ContextError> {
    let parent = Path::new(target)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    mkdir_all(root, &parent, &CopyOptions::default())
}

/// `mkdir -p` inside `root`; new directories get `opts.owner` (or root) and mode 0755.
pub fn mkdir_all(root: &Path, dir: &str, opts: &CopyOptions) -> Result<(), ContextError> {
    let mut cur = String::new();
    for comp in dir.split('/').filter(|c| !c.is_empty()) {
        cur = format!("{cur}/{comp}");
        let p = resolve(root, &cur)?;
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                fs::remove_file(&p).map_err(io_err("remove", &p))?;
                make_dir(&p, opts)?;
            }
            Err(_) => make_dir(&p, opts)?,
        }
    }
    Ok(())
}

fn make_dir(p: &Path, opts: &CopyOptions) -> Result<(), ContextError> {
    fs::create_dir(p).map_err(io_err("mkdir", p))?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", p))?;
    let (uid, gid) = opts.owner.unwrap_or((0, 0));
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).map_err(io_err("chown", p))
}

fn copy_tree<T: SourceTree>(
    tree: &T,
    src: &T::Node,
    root: &Path,
    target: &str,
    opts: &CopyOptions,
    excludes: &PatternMatcher,
    rel: &str,
) -> Result<(), ContextError> {
    if !rel.is_empty() && !excludes.patterns().is_empty() && excludes.matches_or_parent_matches(rel)
    {
        return Ok(());
    }
    // The top-level source was resolved (symlinks followed, it was named explicitly);
    // entries below are not followed.
    let meta = tree
        .stat(src)?
        .ok_or_else(|| ContextError::NotFound(tree.display(src).to_string_lossy().into()))?;
    let dst = resolve(root, target)?;
    let (uid, gid) = match opts.owner {
        Some(o) => o,
        None if opts.keep_owner => (meta.uid, meta.gid),
        None => (0, 0),
    };
    let existing = fs::symlink_metadata(&dst).ok();
    if meta.kind == Kind::Dir {
        match existing {
            Some(m) if m.is_dir() => {}
            Some(_) => {
                fs::remove_file(&dst).map_err(io_err("remove", &dst))?;
                fs::create_dir(&dst).map_err(io_err("mkdir", &dst))?;
            }
            None => fs::create_dir(&dst).map_err(io_err("mkdir", &dst))?,
        }
        let mode = opts.chmod.unwrap_or(meta.mode);
        fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &dst))?;
        std::os::unix::fs::lchown(&dst, Some(uid), Some(gid)).map_err(io_err("chown", &dst))?;
        for (n, child) in tree.children(src)? {
            let name = n.to_string_lossy().into_owned();
            copy_tree(
                tree,
                &child,
                root,
                &format!("{}/{name}", target.trim_end_matches('/')),
                opts,
                excludes,
                &join_rel(rel, &name),
            )?;
        }
        // After the children: writing them changed the directory's mtime.
        if let (Some(mtime), Ok(f)) = (meta.mtime, fs::File::open(&dst)) {
            set_mtime(&f, mtime);
        }
        return Ok(());
    }
    if let Some(m) = existing {
        if m.is_dir() {
            fs::remove_dir_all(&dst).map_err(io_err("remove", &dst))?;
        } else {
            fs::remove_file(&dst).map_err(io_err("remove", &dst))?;
        }
    }
    match meta.kind {
        Kind::Symlink => {
            let t = tree.read_link(src)?;
            std::os::unix::fs::symlink(&t, &dst).map_err(io_err("symlink", &dst))?;
        }
        Kind::File => {
            let mut input = tree.open(src)?;
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&dst)
                .map_err(io_err("create", &dst))?;
            io::copy(&mut input, &mut out).map_err(io_err("write", &dst))?;
            let mode = opts.chmod.unwrap_or(meta.mode);
            out.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io_err("chmod", &dst))?;
            if let Some(mtime) = meta.mtime {
                set_mtime(&out, mtime);
            }
        }
        // Devices, fifos and sockets are not part of a build context.
        Kind::Dir | Kind::Other => return Ok(()),
    }
    std::os::unix::fs::lchown(&dst, Some(uid), Some(gid)).map_err(io_err("chown", &dst))
}

/// Gives a copied file or directory its source's modification time, as docker's COPY and
/// ADD do (for an ADD of a URL the source's mtime is the response's Last-Modified). Best
/// effort: a filesystem that refuses timestamps must not fail the build.
fn set_mtime(f: &fs::File, mtime: SystemTime) {
    let _ = f.set_times(fs::FileTimes::new().set_modified(mtime).set_accessed(mtime));
}

/// Writes inline (heredoc) sources to `dest`: a directory destination (trailing `/`) gets
/// one file per heredoc, named after its delimiter.
pub fn write_contents(
    root: &Path,
    contents: &[(String, String)],
    dest: &str,
    opts: &CopyOptions,
) -> Result<(), ContextError> {
    let dir_dest = dest.ends_with('/') || contents.len() > 1 || resolve(root, dest)?.is_dir();
    for (name, data) in contents {
        let target = if dir_dest {
            join_rel(dest.trim_end_matches('/'), name)
        } else {
            dest.to_owned()
        };
        mkdir_parents(root, &target)?;
        let p = resolve(root, &target)?;
        if fs::symlink_metadata(&p).is_ok() {
            fs::remove_file(&p).map_err(io_err("remove", &p))?;
        }
        let mut f = fs::File::create(&p).map_err(io_err("create", &p))?;
        f.write_all(data.as_bytes()).map_err(io_err("write", &p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(opts.chmod.unwrap_or(0o644)))
            .map_err(io_err("chmod", &p))?;
        let (uid, gid) = opts.owner.unwrap_or((0, 0));
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(io_err("chown", &p))?;
    }
    Ok(())
}

/// Compression of a local archive that ADD unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Whether `path` is a tar archive ADD should unpack (by magic bytes, as docker decides).
pub fn archive_kind<T: SourceTree>(
    tree: &T,
    node: &T::Node,
) -> Result<Option<Archive>, ContextError> {
    let path = tree.display(node);
    let path = path.as_path();
    let mut f = tree.open(node)?;
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        let r = f.read(&mut head[n..]).map_err(io_err("read", path))?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let h = &head[..n];
    let kind = if h.starts_with(&[0x1f, 0x8b]) {
        Archive::Gzip
    } else if h.starts_with(b"BZh") {
        Archive::Bzip2
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Archive::Xz
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Archive::Zstd
    } else if n >= 262 && &h[257..262] == b"ustar" {
        Archive::Tar
    } else {
        return Ok(None);
    };
    if kind == Archive::Tar {
        return Ok(Some(kind));
    }
    // A compressed file is unpacked only when it holds a tar, like docker's DetectCompression
    // followed by a tar header check.
    let mut dec = decompressor(tree, node, kind)?;
    let mut inner = [0u8; 512];
    let mut m = 0;
    while m < inner.len() {
        match dec.read(&mut inner[m..]) {
            Ok(0) => break,
            Ok(r) => m += r,
            Err(_) => return Ok(None),
        }
    }
    Ok((m >= 262 && &inner[257..262] == b"ustar").then_some(kind))
}

fn decompressor<'a, T: SourceTree>(
    tree: &'a T,
    node: &T::Node,
    kind: Archive,
) -> Result<Box<dyn Read + 'a>, ContextError> {
    let path = tree.display(node);
    let path = path.as_path();
    let f = BufReader::new(tree.open(node)?);
    Ok(match kind {
        Archive::Tar => Box::new(f),
        Archive::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Archive::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(f).map_err(io_err("open", path))?)
        }
        Archive::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(f)),
        Archive::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(f)),
    })
}

/// Unpacks a local archive into `dir` inside `root`, every entry resolved inside the root
/// (an image symlink such as `/x -> /etc` must not redirect writes to the host).
pub fn unpack_archive<T: SourceTree>(
    tree: &T,
    src: &T::Node,
    kind: Archive,
    root: &Path,
    dir: &str,
) -> Result<(), ContextError> {
    let mut ar = tar::Archive::new(decompressor(tree, src, kind)?);
    for entry in ar.entries().map_err(ContextError::Tar)? {
        let mut entry = entry.map_err(ContextError::Tar)?;
        let path = entry.path().map_err(ContextError::Tar)?.into_owned();
        let mut rel = String::new();
        for c in path.components() {
            match c {
                Component::Normal(n) => rel = join_rel(&rel, &n.to_string_lossy()),
                Component::ParentDir => {
                    rel = match rel.rfind('/') {
                        Some(i) => rel[..i].to_owned(),
                        None => String::new(),
                    }
                }
                _ => {}
            }
        }
        if rel.is_empty() {
            continue;
        }
        let target = join_rel(dir.trim_end_matches('/'), &rel);
        mkdir_parents(root, &target)?;
        let dst = resolve(root, &target)?;
        if let Ok(m) = fs::symlink_metadata(&dst) {
            if !(m.is_dir() && entry.header().entry_type().is_dir()) {
                if m.is_dir() {
                    fs::remove_dir_all(&dst).map_err(io_err("remove", &dst))?;
                } else {
                    fs::remove_file(&dst).map_err(io_err("remove", &dst))?;
                }
            }
        }
        entry.set_preserve_permissions(true);
        if entry.header().entry_type().is_hard_link() {
            let Some(link) = entry.link_name().map_err(ContextError::Tar)? else {
                continue;
            };
            let link_target = resolve(
                root,
                &join_rel(dir.trim_end_matches('/'), &link.to_string_lossy()),
            )?;
            fs::hard_link(&link_target, &dst).map_err(io_err("link", &dst))?;
            continue;
        }
        entry.unpack(&dst).map_err(ContextError::Tar)?;
        let uid = entry.header().uid().unwrap_or(0) as u32;
        let gid = entry.header().gid().unwrap_or(0) as u32;
        let _ = std::os::unix::fs::lchown(&dst, Some(uid), Some(gid));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, data: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, data).expect("write");
    }

    #[test]
    fn globbing() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a.txt.bak"));
        assert!(glob_match("f?o", "foo"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[!a-c]x", "bx"));
        assert!(glob_match("\\*", "*"));
    }

    #[test]
    fn sources_and_hash() {
        let d = tempfile::tempdir().expect("tmp");
        write(d.path(), "a.txt", "one");
        write(d.path(), "b.txt", "two");
        write(d.path(), "dir/c", "three");
        assert_eq!(
            expand_source(&DiskTree::new(d.path()), "*.txt").expect("glob"),
            vec!["a.txt", "b.txt"]
        );
        assert!(matches!(
            expand_source(&DiskTree::new(d.path()), "nope"),
            Err(ContextError::NotFound(_))
        ));
        assert!(matches!(
            expand_source(&DiskTree::new(d.path()), "*.rs"),
            Err(ContextError::NoSources)
        ));
        let h1 = hash_sources(&DiskTree::new(d.path()), &["dir".into()]).expect("hash");
        // Only the mtime changes: same hash.
        let f = fs::File::options()
            .write(true)
            .open(d.path().join("dir/c"))
            .expect("open");
        f.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .expect("touch");
        assert_eq!(
            h1,
            hash_sources(&DiskTree::new(d.path()), &["dir".into()]).expect("hash")
        );
        write(d.path(), "dir/c", "changed");
        assert_ne!(
            h1,
            hash_sources(&DiskTree::new(d.path()), &["dir".into()]).expect("hash")
        );
    }

    #[test]
    fn copy_rules() {
        let src = tempfile::tempdir().expect("tmp");
        let dst = tempfile::tempdir().expect("tmp");
        write(src.path(), "f", "file");
        write(src.path(), "d/x", "x");
        write(src.path(), "d/sub/y", "y");
        write(src.path(), "d/skip.log", "no");
        let opts = CopyOptions {
            excludes: vec!["*.log".into()],
            ..Default::default()
        };
        copy_sources(
            &DiskTree::new(src.path()),
            &["f".into()],
            dst.path(),
            "/renamed",
            &opts,
        )
        .expect("copy");
        assert_eq!(
            fs::read_to_string(dst.path().join("renamed")).expect("r"),
            "file"
        );
        copy_sources(
            &DiskTree::new(src.path()),
            &["d".into()],
            dst.path(),
            "/app/",
            &opts,
        )
        .expect("copy");
        assert!(dst.path().join("app/x").is_file(), "dir contents copied");
        assert!(dst.path().join("app/sub/y").is_file());
        assert!(!dst.path().join("app/skip.log").exists(), "excluded");
        copy_sources(
            &DiskTree::new(src.path()),
            &["f".into()],
            dst.path(),
            "/app",
            &opts,
        )
        .expect("copy");
        assert!(dst.path().join("app/f").is_file(), "existing dir is a dir");
        let p = CopyOptions {
            parents: true,
            ..Default::default()
        };
        copy_sources(
            &DiskTree::new(src.path()),
            &["d/sub/y".into()],
            dst.path(),
            "/p/",
            &p,
        )
        .expect("copy");
        assert!(dst.path().join("p/d/sub/y").is_file());
        assert_eq!(dest_path("x", "/w"), "/w/x");
        assert_eq!(dest_path(".", "/w"), "/w/");
        assert_eq!(dest_path("/a/b/", "/w"), "/a/b/");
    }

    #[test]
    fn symlinks_stay_inside() {
        let src = tempfile::tempdir().expect("tmp");
        let dst = tempfile::tempdir().expect("tmp");
        write(src.path(), "f", "file");
        std::os::unix::fs::symlink("/etc", dst.path().join("evil")).expect("symlink");
        copy_sources(
            &DiskTree::new(src.path()),
            &["f".into()],
            dst.path(),
            "/evil/berth-test-f",
            &CopyOptions::default(),
        )
        .expect("copy");
        assert!(dst.path().join("etc/berth-test-f").is_file());
        assert!(!Path::new("/etc/berth-test-f").exists());
    }

    fn small_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "dir/f.txt", &b"abc"[..])
            .expect("append");
        b.into_inner().expect("tar")
    }

    #[test]
    fn bzip2_and_xz_archives_unpack() {
        use std::io::Write as _;
        let tar = small_tar();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(&tar).expect("bzip2");
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&tar).expect("xz");
        for (name, data, kind) in [
            ("a.tar.bz2", bz.finish().expect("bzip2"), Archive::Bzip2),
            ("a.tar.xz", xz.finish().expect("xz"), Archive::Xz),
        ] {
            let d = tempfile::tempdir().expect("tmp");
            let src = d.path().join(name);
            fs::write(&src, &data).expect("write");
            let tree = DiskTree::new(d.path());
            let node = tree.resolve(name).expect("resolve");
            assert_eq!(
                archive_kind(&tree, &node).expect("kind"),
                Some(kind),
                "{name}"
            );
            let root = d.path().join("root");
            fs::create_dir(&root).expect("mkdir");
            unpack_archive(&tree, &node, kind, &root, "/out").expect("unpack");
            assert_eq!(
                fs::read_to_string(root.join("out/dir/f.txt")).expect("read"),
                "abc"
            );
        }
        // Compressed bytes that are not a tar are copied, not unpacked.
        let d = tempfile::tempdir().expect("tmp");
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(b"plain text").expect("bzip2");
        let src = d.path().join("t.bz2");
        fs::write(&src, bz.finish().expect("bzip2")).expect("write");
        let tree = DiskTree::new(d.path());
        let node = tree.resolve("t.bz2").expect("resolve");
        assert_eq!(archive_kind(&tree, &node).expect("kind"), None);
    }

    #[test]
    fn copy_keeps_mtime() {
        let src = tempfile::tempdir().expect("tmp");
        let dst = tempfile::tempdir().expect("tmp");
        write(src.path(), "d/f", "x");
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let f = fs::File::options()
            .write(true)
            .open(src.path().join("d/f"))
            .expect("open");
        f.set_modified(old).expect("touch");
        fs::File::open(src.path().join("d"))
            .expect("open")
            .set_modified(old)
            .expect("touch");
        copy_sources(
            &DiskTree::new(src.path()),
            &["d".into()],
            dst.path(),
            "/out/",
            &CopyOptions::default(),
        )
        .expect("copy");
        for p in ["out/f", "out"] {
            let m = fs::metadata(dst.path().join(p)).expect("stat");
            assert_eq!(m.modified().expect("mtime"), old, "{p}");
        }
    }
}
