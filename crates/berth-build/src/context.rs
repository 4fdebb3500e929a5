//! The build context on disk: unpacking the tar the client sent, applying `.dockerignore`,
//! finding COPY/ADD sources (wildcards), hashing their content for cache keys, and copying
//! them into a step's mounted root filesystem with docker's rules.
//!
//! Two directories are untrusted here: the context (its symlinks may point anywhere on the
//! host) and the image rootfs being written (its symlinks, too). Every path inside either
//! is therefore resolved with [`resolve_in_root`], which clamps symlinks and `..` to the
//! root, and copying never follows a symlink it finds: it recreates the link.
//!
//! Content hashes cover relative path, type, permission bits, link targets and file bytes,
//! never timestamps, so touching a file does not invalidate the cache but editing it does.

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use berth_runtime::user::resolve_in_root;
use sha2::{Digest, Sha256};

use crate::dockerignore::{clean_path, read_ignore_file, IgnoreError, PatternMatcher};

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

/// Unpacks a build context (a tar, plain or gzip-compressed) into `dest`, which must exist.
/// Entries are confined to `dest`; ownership is not restored (files belong to root, as the
/// classic builder makes them), permission bits and timestamps are.
pub fn extract_context(reader: impl Read, dest: &Path) -> Result<(), ContextError> {
    let mut r = BufReader::with_capacity(256 * 1024, reader);
    let magic = {
        let buf = io::BufRead::fill_buf(&mut r).map_err(ContextError::Tar)?;
        buf.get(..2).map(|b| [b[0], b[1]])
    };
    let inner: Box<dyn Read> = match magic {
        Some([0x1f, 0x8b]) => Box::new(flate2::read::MultiGzDecoder::new(r)),
        _ => Box::new(r),
    };
    let mut ar = tar::Archive::new(inner);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(false);
    ar.set_overwrite(true);
    for entry in ar.entries().map_err(ContextError::Tar)? {
        let mut entry = entry.map_err(ContextError::Tar)?;
        // unpack_in refuses `..` and absolute names; it creates parents as needed.
        entry.unpack_in(dest).map_err(ContextError::Tar)?;
    }
    Ok(())
}

/// An unpacked build context with its ignore rules applied.
#[derive(Debug)]
pub struct BuildContext {
    root: PathBuf,
    /// The Dockerfile when the ignore file excludes it: kept until it is read, then
    /// removed, as dockerd does (docker-py sends a Dockerfile from outside the context as
    /// `.dockerfile.<hash>` and lists it in the `.dockerignore` it sends).
    ignored_dockerfile: Option<PathBuf>,
}

impl BuildContext {
    /// Opens the context at `root` for the Dockerfile at `dockerfile` (relative to the root)
    /// and removes what the ignore file excludes (docker's CLI already left those out; a
    /// client that did not is treated the same). The Dockerfile itself and the ignore file
    /// are kept only when not excluded, except that the Dockerfile is always readable.
    pub fn open(root: &Path, dockerfile: &str) -> Result<BuildContext, ContextError> {
        let mut ctx = BuildContext {
            root: root.to_path_buf(),
            ignored_dockerfile: None,
        };
        let df_rel = clean_path(dockerfile.trim_start_matches('/'));
        let mut patterns = Vec::new();
        let per_df = format!("{df_rel}.dockerignore");
        for cand in [per_df.as_str(), ".dockerignore"] {
            let p = ctx.resolve(cand)?;
            if p.is_file() {
                let text = fs::read_to_string(&p).map_err(io_err("read", &p))?;
                patterns = read_ignore_file(&text);
                break;
            }
        }
        if !patterns.is_empty() {
            let pm = PatternMatcher::new(&patterns)?;
            ctx.prune(&pm, Path::new(""), &df_rel)?;
            if pm.matches_or_parent_matches(&df_rel) {
                ctx.ignored_dockerfile = Some(ctx.resolve(&df_rel)?);
            }
        }
        Ok(ctx)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `rel` (a context path, any form) resolved inside the context.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, ContextError> {
        resolve(&self.root, rel)
    }

    /// Reads the Dockerfile (any path inside the context).
    pub fn read_dockerfile(&self, rel: &str) -> Result<String, ContextError> {
        let p = self.resolve(rel)?;
        let bytes = fs::read(&p).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ContextError::Io {
                op: "Cannot locate specified Dockerfile:",
                path: PathBuf::from(rel),
                source,
            },
            _ => ContextError::Io {
                op: "read",
                path: p.clone(),
                source,
            },
        })?;
        if self.ignored_dockerfile.as_ref() == Some(&p) {
            fs::remove_file(&p).map_err(io_err("remove", &p))?;
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn prune(&self, pm: &PatternMatcher, rel: &Path, keep: &str) -> Result<bool, ContextError> {
        let dir = self.root.join(rel);
        let mut empty = true;
        let entries = fs::read_dir(&dir).map_err(io_err("read", &dir))?;
        for e in entries {
            let e = e.map_err(io_err("read", &dir))?;
            let child_rel = rel.join(e.file_name());
            let name = child_rel.to_string_lossy().into_owned();
            let ft = e.file_type().map_err(io_err("stat", &e.path()))?;
            let excluded = name != keep && pm.matches_or_parent_matches(&name);
            if ft.is_dir() {
                // With `!` exceptions a file below an excluded directory may come back.
                let left = if excluded && !pm.exclusions() {
                    fs::remove_dir_all(e.path()).map_err(io_err("remove", &e.path()))?;
                    false
                } else {
                    !self.prune(pm, &child_rel, keep)? || !excluded
                };
                if left {
                    empty = false;
                } else {
                    let _ = fs::remove_dir(e.path());
                }
            } else if excluded {
                fs::remove_file(e.path()).map_err(io_err("remove", &e.path()))?;
            } else {
                empty = false;
            }
        }
        Ok(empty)
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

/// The context-relative paths a COPY/ADD source names: itself when it has no wildcards (it
/// must exist), else every match (at least one).
pub fn expand_source(root: &Path, src: &str) -> Result<Vec<String>, ContextError> {
    let cleaned = clean_path(&format!("/{src}"));
    let rel = cleaned.trim_start_matches('/').to_owned();
    if !has_wildcards(&rel) {
        let p = resolve(root, &rel)?;
        if fs::symlink_metadata(&p).is_err() {
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
                let dir = resolve(root, base)?;
                let Ok(rd) = fs::read_dir(&dir) else { continue };
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| glob_match(comp, n))
                    .collect();
                names.sort();
                for n in names {
                    next.push(join_rel(base, &n));
                }
            } else {
                let cand = join_rel(base, comp);
                if fs::symlink_metadata(resolve(root, &cand)?).is_ok() {
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

/// The content hash (`sha256:<hex>`) of the sources of one COPY/ADD from `root`: relative
/// paths, types, permission bits, link targets and bytes, in sorted order; no timestamps.
pub fn hash_sources(root: &Path, sources: &[String]) -> Result<String, ContextError> {
    let mut h = Sha256::new();
    for src in sources {
        h.update(b"source\0");
        h.update(src.as_bytes());
        for rel in expand_source(root, src)? {
            let p = resolve(root, &rel)?;
            hash_tree(&mut h, &p, &rel)?;
        }
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

fn hash_tree(h: &mut Sha256, path: &Path, rel: &str) -> Result<(), ContextError> {
    let meta = fs::symlink_metadata(path).map_err(io_err("stat", path))?;
    h.update(rel.as_bytes());
    h.update([0]);
    h.update((meta.mode() & 0o7777).to_le_bytes());
    let ft = meta.file_type();
    if ft.is_symlink() {
        let t = fs::read_link(path).map_err(io_err("readlink", path))?;
        h.update(b"l");
        h.update(t.as_os_str().as_encoded_bytes());
    } else if ft.is_dir() {
        h.update(b"d");
        let mut names: Vec<_> = fs::read_dir(path)
            .map_err(io_err("read", path))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let child_rel = format!("{rel}/{}", n.to_string_lossy());
            hash_tree(h, &path.join(&n), &child_rel)?;
        }
    } else if ft.is_file() {
        h.update(b"f");
        h.update(meta.len().to_le_bytes());
        let mut f = fs::File::open(path).map_err(io_err("open", path))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(io_err("read", path))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    } else {
        h.update(b"o");
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

/// Copies `sources` (paths relative to `src_root`, wildcards allowed) to `dest` (absolute,
/// from [`dest_path`]) inside `dest_root`, with docker's rules: a directory source copies its
/// contents; several sources, a wildcard or a trailing `/` make `dest` a directory; a single
/// file goes to `dest` itself unless `dest` is an existing directory.
pub fn copy_sources(
    src_root: &Path,
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
        expanded.extend(expand_source(src_root, s)?);
    }
    let existing_dir = resolve(dest_root, dest).map(|p| p.is_dir())?;
    let dest_is_dir = dest.ends_with('/') || sources.len() > 1 || wildcard || existing_dir;
    for rel in expanded {
        let src = resolve(src_root, &rel)?;
        let meta = fs::metadata(&src).map_err(io_err("stat", &src))?;
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
        } else if meta.is_dir() {
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
        if meta.is_file() && opts.unpack_archives {
            if let Some(kind) = archive_kind(&src)? {
                let dir = if dest_is_dir || dest.ends_with('/') {
                    dest.trim_end_matches('/').to_owned()
                } else {
                    dest.to_owned()
                };
                mkdir_all(dest_root, &dir, opts)?;
                unpack_archive(&src, kind, dest_root, &dir)?;
                continue;
            }
        }
        copy_tree(&src, dest_root, &target, opts, &excludes, "")?;
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

fn copy_tree(
    src: &Path,
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
    // The top-level source is followed (it was named explicitly); entries below are not.
    let meta = if rel.is_empty() {
        fs::metadata(src)
    } else {
        fs::symlink_metadata(src)
    }
    .map_err(io_err("stat", src))?;
    let dst = resolve(root, target)?;
    let (uid, gid) = match opts.owner {
        Some(o) => o,
        None if opts.keep_owner => (meta.uid(), meta.gid()),
        None => (0, 0),
    };
    let ft = meta.file_type();
    let existing = fs::symlink_metadata(&dst).ok();
    if ft.is_dir() {
        match existing {
            Some(m) if m.is_dir() => {}
            Some(_) => {
                fs::remove_file(&dst).map_err(io_err("remove", &dst))?;
                fs::create_dir(&dst).map_err(io_err("mkdir", &dst))?;
            }
            None => fs::create_dir(&dst).map_err(io_err("mkdir", &dst))?,
        }
        let mode = opts.chmod.unwrap_or(meta.mode() & 0o7777);
        fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &dst))?;
        std::os::unix::fs::lchown(&dst, Some(uid), Some(gid)).map_err(io_err("chown", &dst))?;
        let mut names: Vec<_> = fs::read_dir(src)
            .map_err(io_err("read", src))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let name = n.to_string_lossy().into_owned();
            copy_tree(
                &src.join(&n),
                root,
                &format!("{}/{name}", target.trim_end_matches('/')),
                opts,
                excludes,
                &join_rel(rel, &name),
            )?;
        }
        // After the children: writing them changed the directory's mtime.
        keep_mtime(&dst, &meta);
        return Ok(());
    }
    if let Some(m) = existing {
        if m.is_dir() {
            fs::remove_dir_all(&dst).map_err(io_err("remove", &dst))?;
        } else {
            fs::remove_file(&dst).map_err(io_err("remove", &dst))?;
        }
    }
    if ft.is_symlink() {
        let t = fs::read_link(src).map_err(io_err("readlink", src))?;
        std::os::unix::fs::symlink(&t, &dst).map_err(io_err("symlink", &dst))?;
    } else if ft.is_file() {
        let mut input = fs::File::open(src).map_err(io_err("open", src))?;
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dst)
            .map_err(io_err("create", &dst))?;
        io::copy(&mut input, &mut out).map_err(io_err("write", &dst))?;
        let mode = opts.chmod.unwrap_or(meta.mode() & 0o7777);
        fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &dst))?;
        keep_mtime(&dst, &meta);
    } else {
        // Devices, fifos and sockets are not part of a build context.
        return Ok(());
    }
    std::os::unix::fs::lchown(&dst, Some(uid), Some(gid)).map_err(io_err("chown", &dst))
}

/// Gives a copied file or directory its source's modification time, as docker's COPY and
/// ADD do (for an ADD of a URL the source's mtime is the response's Last-Modified). Best
/// effort: a filesystem that refuses timestamps must not fail the build.
fn keep_mtime(dst: &Path, meta: &fs::Metadata) {
    if let (Ok(f), Ok(mtime)) = (fs::File::open(dst), meta.modified()) {
        let _ = f.set_times(fs::FileTimes::new().set_modified(mtime).set_accessed(mtime));
    }
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
pub fn archive_kind(path: &Path) -> Result<Option<Archive>, ContextError> {
    let mut f = fs::File::open(path).map_err(io_err("open", path))?;
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
    let mut dec = decompressor(path, kind)?;
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

fn decompressor(path: &Path, kind: Archive) -> Result<Box<dyn Read>, ContextError> {
    let f = BufReader::new(fs::File::open(path).map_err(io_err("open", path))?);
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
pub fn unpack_archive(
    src: &Path,
    kind: Archive,
    root: &Path,
    dir: &str,
) -> Result<(), ContextError> {
    let mut ar = tar::Archive::new(decompressor(src, kind)?);
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
            expand_source(d.path(), "*.txt").expect("glob"),
            vec!["a.txt", "b.txt"]
        );
        assert!(matches!(
            expand_source(d.path(), "nope"),
            Err(ContextError::NotFound(_))
        ));
        assert!(matches!(
            expand_source(d.path(), "*.rs"),
            Err(ContextError::NoSources)
        ));
        let h1 = hash_sources(d.path(), &["dir".into()]).expect("hash");
        // Only the mtime changes: same hash.
        let f = fs::File::options()
            .write(true)
            .open(d.path().join("dir/c"))
            .expect("open");
        f.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .expect("touch");
        assert_eq!(h1, hash_sources(d.path(), &["dir".into()]).expect("hash"));
        write(d.path(), "dir/c", "changed");
        assert_ne!(h1, hash_sources(d.path(), &["dir".into()]).expect("hash"));
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
        copy_sources(src.path(), &["f".into()], dst.path(), "/renamed", &opts).expect("copy");
        assert_eq!(
            fs::read_to_string(dst.path().join("renamed")).expect("r"),
            "file"
        );
        copy_sources(src.path(), &["d".into()], dst.path(), "/app/", &opts).expect("copy");
        assert!(dst.path().join("app/x").is_file(), "dir contents copied");
        assert!(dst.path().join("app/sub/y").is_file());
        assert!(!dst.path().join("app/skip.log").exists(), "excluded");
        copy_sources(src.path(), &["f".into()], dst.path(), "/app", &opts).expect("copy");
        assert!(dst.path().join("app/f").is_file(), "existing dir is a dir");
        let p = CopyOptions {
            parents: true,
            ..Default::default()
        };
        copy_sources(src.path(), &["d/sub/y".into()], dst.path(), "/p/", &p).expect("copy");
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
            src.path(),
            &["f".into()],
            dst.path(),
            "/evil/berth-test-f",
            &CopyOptions::default(),
        )
        .expect("copy");
        assert!(dst.path().join("etc/berth-test-f").is_file());
        assert!(!Path::new("/etc/berth-test-f").exists());
    }

    #[test]
    fn ignore_prunes_with_exceptions() {
        let d = tempfile::tempdir().expect("tmp");
        write(d.path(), "Dockerfile", "FROM x");
        write(d.path(), ".dockerignore", "*.md\n!KEEP.md\nsecret\n");
        write(d.path(), "a.md", "x");
        write(d.path(), "KEEP.md", "x");
        write(d.path(), "secret/key", "x");
        write(d.path(), "src/main.rs", "x");
        BuildContext::open(d.path(), "Dockerfile").expect("open");
        assert!(!d.path().join("a.md").exists());
        assert!(d.path().join("KEEP.md").exists());
        assert!(!d.path().join("secret").exists());
        assert!(d.path().join("src/main.rs").exists());
        assert!(d.path().join("Dockerfile").exists());
    }

    #[test]
    fn an_ignored_dockerfile_is_read_then_removed() {
        let d = tempfile::tempdir().expect("tmp");
        write(d.path(), ".dockerfile.abc", "FROM x");
        write(
            d.path(),
            ".dockerignore",
            ".dockerignore\n.dockerfile.abc\n",
        );
        write(d.path(), "file.txt", "x");
        let ctx = BuildContext::open(d.path(), ".dockerfile.abc").expect("open");
        assert!(!d.path().join(".dockerignore").exists());
        assert_eq!(
            ctx.read_dockerfile(".dockerfile.abc").expect("read"),
            "FROM x"
        );
        assert!(!d.path().join(".dockerfile.abc").exists());
        assert!(d.path().join("file.txt").exists());
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
            assert_eq!(archive_kind(&src).expect("kind"), Some(kind), "{name}");
            let root = d.path().join("root");
            fs::create_dir(&root).expect("mkdir");
            unpack_archive(&src, kind, &root, "/out").expect("unpack");
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
        assert_eq!(archive_kind(&src).expect("kind"), None);
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
            src.path(),
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
