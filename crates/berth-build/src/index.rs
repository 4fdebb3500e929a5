//! The build context as an in-memory index of the tar the client sent.
//!
//! The classic builder (and berth until now) unpacked the whole context to disk for every
//! build, then walked it again to hash COPY sources: for a 10,000-file context that was
//! 10,000 creates, writes, chmods and utimes before the first cache lookup, on every build,
//! even a fully cached one. Here the tar stream is read exactly once:
//!
//! - each entry becomes a node of a tree (name, kind, permission bits, mtime, link target);
//! - a regular file's bytes are hashed (sha256, SHA-NI where the CPU has it) as they pass
//!   and kept where they cost least: in memory while the context is small, past
//!   [`MEMORY_LIMIT`] appended to one unlinked spill file and read back with `pread`;
//! - `.dockerignore` is applied to the tree, not to a directory on disk.
//!
//! COPY/ADD cache keys are then computed from the tree and the stored digests without
//! reading a byte of content or touching the disk, and files are written only on a cache
//! miss, only those the step copies (through [`crate::context::SourceTree`], the same copy
//! rules as for a directory on disk). Only `RUN --mount=type=bind` of the context needs a
//! real directory: [`ContextIndex::materialize`] writes one on demand.
//!
//! Entries are interpreted as `tar::Entry::unpack_in` did when the context was unpacked:
//! `..` entries are skipped, leading `/` and `.` ignored, later entries replace earlier
//! ones, missing parents are created 0755, ownership is not kept (files are root's, as the
//! classic builder makes them), permission bits are, and a file's or symlink's mtime is its
//! header's (0 becomes 1, as the tar crate does). A hard link gets its target's bytes and
//! metadata. Paths are resolved like `resolve_in_root` does on disk: every symlink followed,
//! clamped to the root.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::context::{ContextError, Kind, Meta, SourceTree};
use crate::dockerignore::{clean_path, read_ignore_file, PatternMatcher};

/// File bytes kept in memory per context before the rest goes to the spill file.
pub const MEMORY_LIMIT: u64 = 64 * 1024 * 1024;

/// How many symlinks one resolution may follow (as `resolve_in_root`).
const MAX_LINKS: usize = 40;

type NodeId = usize;
const ROOT: NodeId = 0;

#[derive(Debug, Clone)]
enum Data {
    /// Exactly the file's bytes (allocated at its size, so boxing does not copy).
    Mem(Box<[u8]>),
    Spill {
        offset: u64,
        len: u64,
    },
}

#[derive(Debug, Clone)]
enum NodeKind {
    Dir(BTreeMap<OsString, NodeId>),
    File { data: Data, digest: [u8; 32] },
    Symlink(PathBuf),
    Other,
}

#[derive(Debug, Clone)]
struct Node {
    kind: NodeKind,
    mode: u32,
    mtime: SystemTime,
}

/// A build context read from a tar stream, with its ignore rules applied.
#[derive(Debug)]
pub struct ContextIndex {
    nodes: Vec<Node>,
    spill: Option<fs::File>,
    spill_len: u64,
    mem_len: u64,
    /// The Dockerfile when the ignore file excludes it: kept until it is read, then
    /// dropped, as dockerd does (docker-py sends a Dockerfile from outside the context as
    /// `.dockerfile.<hash>` and lists it in the `.dockerignore` it sends).
    ignored_dockerfile: Option<String>,
}

/// Where a resolved path points: an existing node, or nothing.
pub type IndexNode = Option<NodeId>;

impl ContextIndex {
    /// Reads a context tar (plain or gzip) into an index. Bytes beyond [`MEMORY_LIMIT`]
    /// are written to an unlinked file created in `spill_dir`.
    pub fn read(reader: impl Read, spill_dir: &Path) -> Result<ContextIndex, ContextError> {
        Self::read_with_limit(reader, spill_dir, MEMORY_LIMIT)
    }

    /// Reads a directory on disk (a git checkout) into an index: it is tarred into a pipe
    /// by a helper thread, so the same entry rules apply as to a client's tar.
    pub fn from_dir(dir: &Path, spill_dir: &Path) -> Result<ContextIndex, ContextError> {
        let (reader, writer) = io::pipe().map_err(ContextError::Tar)?;
        let src = dir.to_path_buf();
        let tarrer = std::thread::Builder::new()
            .name("build-ctx-tar".into())
            .spawn(move || -> io::Result<()> {
                let mut b = tar::Builder::new(io::BufWriter::with_capacity(256 * 1024, writer));
                b.follow_symlinks(false);
                b.append_dir_all(".", &src)?;
                b.into_inner()?.flush()
            })
            .map_err(ContextError::Tar)?;
        let idx = Self::read(reader, spill_dir);
        let tarred = tarrer
            .join()
            .map_err(|_| tar_error("tar of the context directory panicked".into()))?;
        // A read error usually comes from the writer's failure: report that one.
        tarred.map_err(ContextError::Tar)?;
        idx
    }

    fn read_with_limit(
        reader: impl Read,
        spill_dir: &Path,
        limit: u64,
    ) -> Result<ContextIndex, ContextError> {
        let mut r = BufReader::with_capacity(256 * 1024, reader);
        let magic = {
            let buf = io::BufRead::fill_buf(&mut r).map_err(ContextError::Tar)?;
            buf.get(..2).map(|b| [b[0], b[1]])
        };
        let inner: Box<dyn Read> = match magic {
            Some([0x1f, 0x8b]) => Box::new(flate2::read::MultiGzDecoder::new(r)),
            _ => Box::new(r),
        };
        let mut idx = ContextIndex {
            nodes: vec![Node {
                kind: NodeKind::Dir(BTreeMap::new()),
                mode: 0o755,
                mtime: SystemTime::now(),
            }],
            spill: None,
            spill_len: 0,
            mem_len: 0,
            ignored_dockerfile: None,
        };
        let mut ar = tar::Archive::new(inner);
        let mut buf = vec![0u8; 256 * 1024];
        for entry in ar.entries().map_err(ContextError::Tar)? {
            let mut entry = entry.map_err(ContextError::Tar)?;
            let Some(parts) = entry_parts(&entry.path().map_err(ContextError::Tar)?) else {
                continue; // `..` (unpack_in skips it) or the root itself
            };
            let header = entry.header();
            let mode = header.mode().unwrap_or(0o644) & 0o7777;
            // The tar crate never gives a 0 mtime (some tools treat it as "unset").
            let mtime = UNIX_EPOCH + Duration::from_secs(header.mtime().unwrap_or(0).max(1));
            let et = header.entry_type();
            let kind = if et.is_dir() {
                NodeKind::Dir(BTreeMap::new())
            } else if et.is_symlink() {
                let t = entry
                    .link_name()
                    .map_err(ContextError::Tar)?
                    .ok_or_else(|| tar_error(format!("symlink {} has no target", join(&parts))))?;
                NodeKind::Symlink(t.into_owned())
            } else if et.is_hard_link() {
                let t = entry
                    .link_name()
                    .map_err(ContextError::Tar)?
                    .ok_or_else(|| {
                        tar_error(format!("hard link {} has no target", join(&parts)))
                    })?;
                let target = entry_parts(&t)
                    .and_then(|p| idx.lookup_no_follow(&p))
                    .ok_or_else(|| {
                        tar_error(format!(
                            "hard link {} to {}: target not found",
                            join(&parts),
                            t.display()
                        ))
                    })?;
                let node = idx.nodes[target].clone();
                if matches!(node.kind, NodeKind::Dir(_)) {
                    return Err(tar_error(format!(
                        "hard link {} to directory {}",
                        join(&parts),
                        t.display()
                    )));
                }
                idx.insert(&parts, node)?;
                continue;
            } else if et.is_file() || et == tar::EntryType::Continuous {
                let len = entry.size();
                let mut h = Sha256::new();
                let data = if idx.mem_len + len <= limit {
                    let mut v = Vec::with_capacity(len as usize);
                    entry.read_to_end(&mut v).map_err(ContextError::Tar)?;
                    h.update(&v);
                    idx.mem_len += v.len() as u64;
                    Data::Mem(v.into_boxed_slice())
                } else {
                    let offset = idx.spill_len;
                    let file = idx.spill_file(spill_dir)?;
                    let mut n = 0u64;
                    loop {
                        let k = entry.read(&mut buf).map_err(ContextError::Tar)?;
                        if k == 0 {
                            break;
                        }
                        h.update(&buf[..k]);
                        file.write_all(&buf[..k]).map_err(ContextError::Tar)?;
                        n += k as u64;
                    }
                    idx.spill_len = offset + n;
                    Data::Spill { offset, len: n }
                };
                NodeKind::File {
                    data,
                    digest: h.finalize().into(),
                }
            } else if matches!(
                et,
                tar::EntryType::XGlobalHeader
                    | tar::EntryType::XHeader
                    | tar::EntryType::GNULongName
            ) {
                continue;
            } else {
                NodeKind::Other
            };
            idx.insert(&parts, Node { kind, mode, mtime })?;
        }
        Ok(idx)
    }

    fn spill_file(&mut self, dir: &Path) -> Result<&mut fs::File, ContextError> {
        if self.spill.is_none() {
            let path = dir.join(format!("spill-{}", rand::random::<u64>()));
            let f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|source| ContextError::Io {
                    op: "create",
                    path: path.clone(),
                    source,
                })?;
            // Unlinked at once: it lives exactly as long as the index.
            let _ = fs::remove_file(&path);
            self.spill = Some(f);
        }
        Ok(self.spill.as_mut().expect("spill file was just created"))
    }

    /// Puts `node` at `parts`, creating missing parents (0755, as `create_dir_all` does
    /// under the usual umask) and following symlinks in the parents, clamped to the root.
    fn insert(&mut self, parts: &[OsString], node: Node) -> Result<(), ContextError> {
        let (name, parents) = parts.split_last().expect("entry_parts is never empty");
        let mut dir = ROOT;
        for p in parents {
            let next = match self.child(dir, p) {
                Some(c) if matches!(self.nodes[c].kind, NodeKind::Dir(_)) => c,
                Some(c) if matches!(self.nodes[c].kind, NodeKind::Symlink(_)) => {
                    let rel = self.path_of(dir, p);
                    match self.resolve_parts(&rel)? {
                        Some(t) if matches!(self.nodes[t].kind, NodeKind::Dir(_)) => t,
                        _ => {
                            return Err(tar_error(format!(
                                "{}: parent {} is not a directory",
                                join(parts),
                                rel
                            )))
                        }
                    }
                }
                Some(_) => {
                    return Err(tar_error(format!(
                        "{}: parent {} is not a directory",
                        join(parts),
                        p.to_string_lossy()
                    )))
                }
                None => {
                    let id = self.push(Node {
                        kind: NodeKind::Dir(BTreeMap::new()),
                        mode: 0o755,
                        mtime: SystemTime::now(),
                    });
                    self.link(dir, p.clone(), id);
                    id
                }
            };
            dir = next;
        }
        match self.child(dir, name) {
            // A directory entry for an existing directory keeps its children.
            Some(old) if matches!(self.nodes[old].kind, NodeKind::Dir(_)) => {
                if let NodeKind::Dir(_) = node.kind {
                    self.nodes[old].mode = node.mode;
                    self.nodes[old].mtime = node.mtime;
                    return Ok(());
                }
                let id = self.push(node);
                self.link(dir, name.clone(), id);
            }
            _ => {
                let id = self.push(node);
                self.link(dir, name.clone(), id);
            }
        }
        Ok(())
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn link(&mut self, dir: NodeId, name: OsString, id: NodeId) {
        if let NodeKind::Dir(children) = &mut self.nodes[dir].kind {
            children.insert(name, id);
        }
    }

    fn child(&self, dir: NodeId, name: &OsStr) -> Option<NodeId> {
        match &self.nodes[dir].kind {
            NodeKind::Dir(children) => children.get(name).copied(),
            _ => None,
        }
    }

    /// The `/`-joined path of `name` in `dir` (for resolving a parent symlink).
    fn path_of(&self, dir: NodeId, name: &OsStr) -> String {
        fn find(idx: &ContextIndex, at: NodeId, want: NodeId, path: &mut Vec<String>) -> bool {
            if at == want {
                return true;
            }
            if let NodeKind::Dir(children) = &idx.nodes[at].kind {
                for (n, c) in children {
                    path.push(n.to_string_lossy().into_owned());
                    if find(idx, *c, want, path) {
                        return true;
                    }
                    path.pop();
                }
            }
            false
        }
        let mut path = Vec::new();
        find(self, ROOT, dir, &mut path);
        path.push(name.to_string_lossy().into_owned());
        path.join("/")
    }

    /// An exact path, no symlink followed (hard link targets).
    fn lookup_no_follow(&self, parts: &[OsString]) -> Option<NodeId> {
        parts.iter().try_fold(ROOT, |dir, p| self.child(dir, p))
    }

    /// `rel` resolved like `resolve_in_root`: components are walked one by one, a symlink
    /// is replaced by its target (absolute ones restart at the root), `..` pops, and a
    /// component that does not exist still takes part lexically (so `missing/../x` is `x`).
    fn resolve_parts(&self, rel: &str) -> Result<IndexNode, ContextError> {
        let mut pending: Vec<OsString> = Vec::new();
        push_components(&mut pending, Path::new(rel));
        pending.reverse();
        // The path so far: each component with its node (None once it does not exist).
        let mut resolved: Vec<IndexNode> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                resolved.pop();
                continue;
            }
            let parent = match resolved.last() {
                None => Some(ROOT),
                Some(n) => *n,
            };
            let found = parent.and_then(|d| self.child(d, &part));
            if let Some(NodeKind::Symlink(target)) = found.map(|f| &self.nodes[f].kind) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(ContextError::Resolve {
                        path: rel.to_owned(),
                        root: PathBuf::from("<build context>"),
                        detail: "too many levels of symbolic links".into(),
                    });
                }
                if target.is_absolute() {
                    resolved.clear();
                }
                let mut extra = Vec::new();
                push_components(&mut extra, target);
                pending.extend(extra.into_iter().rev());
                continue;
            }
            resolved.push(found);
        }
        Ok(match resolved.last() {
            None => Some(ROOT),
            Some(n) => *n,
        })
    }

    /// Applies the ignore file (`<Dockerfile>.dockerignore`, else `.dockerignore`) for the
    /// Dockerfile at `dockerfile`: what it excludes is dropped from the index (docker's CLI
    /// already left those out; a client that did not is treated the same). The Dockerfile
    /// itself stays readable until [`ContextIndex::read_dockerfile`].
    pub fn apply_ignore(&mut self, dockerfile: &str) -> Result<(), ContextError> {
        let df_rel = clean_path(dockerfile.trim_start_matches('/'));
        let mut patterns = Vec::new();
        let per_df = format!("{df_rel}.dockerignore");
        for cand in [per_df.as_str(), ".dockerignore"] {
            let node = self.resolve(cand)?;
            if let Some(id) =
                node.filter(|id| matches!(self.nodes[*id].kind, NodeKind::File { .. }))
            {
                let mut text = Vec::new();
                self.open(&Some(id))?
                    .read_to_end(&mut text)
                    .map_err(ContextError::Tar)?;
                patterns = read_ignore_file(&String::from_utf8_lossy(&text));
                break;
            }
        }
        if patterns.is_empty() {
            return Ok(());
        }
        let pm = PatternMatcher::new(&patterns)?;
        self.prune(&pm, ROOT, "", &df_rel);
        if pm.matches_or_parent_matches(&df_rel) {
            self.ignored_dockerfile = Some(df_rel);
        }
        Ok(())
    }

    /// Drops excluded entries below `dir`; true when nothing is left in it. The same
    /// walk as pruning a directory on disk: with `!` exceptions an excluded directory is
    /// descended into, since a file below it may come back.
    fn prune(&mut self, pm: &PatternMatcher, dir: NodeId, rel: &str, keep: &str) -> bool {
        let children: Vec<(OsString, NodeId)> = match &self.nodes[dir].kind {
            NodeKind::Dir(c) => c.iter().map(|(n, id)| (n.clone(), *id)).collect(),
            _ => return true,
        };
        let mut empty = true;
        for (name, id) in children {
            let child_rel = if rel.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", name.to_string_lossy())
            };
            let excluded = child_rel != keep && pm.matches_or_parent_matches(&child_rel);
            let remove = if matches!(self.nodes[id].kind, NodeKind::Dir(_)) {
                if excluded && !pm.exclusions() {
                    true
                } else {
                    let left = !self.prune(pm, id, &child_rel, keep) || !excluded;
                    !left
                }
            } else {
                excluded
            };
            if remove {
                if let NodeKind::Dir(c) = &mut self.nodes[dir].kind {
                    c.remove(&name);
                }
            } else {
                empty = false;
            }
        }
        empty
    }

    /// Reads the Dockerfile (any path inside the context); an ignored one is dropped
    /// from the index once read.
    pub fn read_dockerfile(&mut self, rel: &str) -> Result<String, ContextError> {
        let node = self
            .resolve(rel)?
            .filter(|id| matches!(self.nodes[*id].kind, NodeKind::File { .. }))
            .ok_or_else(|| ContextError::Io {
                op: "Cannot locate specified Dockerfile:",
                path: PathBuf::from(rel),
                source: io::Error::from(io::ErrorKind::NotFound),
            })?;
        let mut bytes = Vec::new();
        self.open(&Some(node))?
            .read_to_end(&mut bytes)
            .map_err(ContextError::Tar)?;
        let df_rel = clean_path(rel.trim_start_matches('/'));
        if self.ignored_dockerfile.as_deref() == Some(df_rel.as_str()) {
            let parts: Vec<OsString> = df_rel.split('/').map(OsString::from).collect();
            if let Some((name, parents)) = parts.split_last() {
                if let Some(dir) = self.lookup_no_follow(parents) {
                    if let NodeKind::Dir(c) = &mut self.nodes[dir].kind {
                        c.remove(name.as_os_str());
                    }
                }
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Writes the whole context under `dest` (an existing, empty directory), for a
    /// `RUN --mount=type=bind` of the context, with the modes and mtimes an unpack gave.
    pub fn materialize(&self, dest: &Path) -> Result<(), ContextError> {
        self.write_node(ROOT, dest)
    }

    fn write_node(&self, id: NodeId, path: &Path) -> Result<(), ContextError> {
        let node = &self.nodes[id];
        let io_err = |op: &'static str| {
            move |source| ContextError::Io {
                op,
                path: path.to_path_buf(),
                source,
            }
        };
        match &node.kind {
            NodeKind::Dir(children) => {
                if id != ROOT {
                    fs::create_dir(path).map_err(io_err("mkdir"))?;
                }
                for (name, c) in children {
                    self.write_node(*c, &path.join(name))?;
                }
                fs::set_permissions(path, fs::Permissions::from_mode(node.mode))
                    .map_err(io_err("chmod"))?;
            }
            NodeKind::File { .. } => {
                let mut f = fs::File::create(path).map_err(io_err("create"))?;
                io::copy(&mut self.open(&Some(id))?, &mut f).map_err(io_err("write"))?;
                f.set_permissions(fs::Permissions::from_mode(node.mode))
                    .map_err(io_err("chmod"))?;
                let t = fs::FileTimes::new()
                    .set_modified(node.mtime)
                    .set_accessed(node.mtime);
                let _ = f.set_times(t);
            }
            NodeKind::Symlink(t) => {
                std::os::unix::fs::symlink(t, path).map_err(io_err("symlink"))?;
            }
            NodeKind::Other => {}
        }
        Ok(())
    }
}

impl SourceTree for ContextIndex {
    type Node = IndexNode;

    fn resolve(&self, rel: &str) -> Result<IndexNode, ContextError> {
        let cleaned = clean_path(&format!("/{rel}"));
        self.resolve_parts(cleaned.trim_start_matches('/'))
    }

    fn stat(&self, node: &IndexNode) -> Result<Option<Meta>, ContextError> {
        Ok(node.map(|id| {
            let n = &self.nodes[id];
            let (kind, size) = match &n.kind {
                NodeKind::Dir(_) => (Kind::Dir, 4096),
                NodeKind::File { data, .. } => (
                    Kind::File,
                    match data {
                        Data::Mem(b) => b.len() as u64,
                        Data::Spill { len, .. } => *len,
                    },
                ),
                NodeKind::Symlink(t) => (Kind::Symlink, t.as_os_str().len() as u64),
                NodeKind::Other => (Kind::Other, 0),
            };
            Meta {
                kind,
                mode: n.mode,
                uid: 0,
                gid: 0,
                size,
                mtime: Some(n.mtime),
            }
        }))
    }

    fn children(&self, node: &IndexNode) -> Result<Vec<(OsString, IndexNode)>, ContextError> {
        match node.map(|id| &self.nodes[id].kind) {
            Some(NodeKind::Dir(c)) => Ok(c.iter().map(|(n, id)| (n.clone(), Some(*id))).collect()),
            _ => Err(ContextError::Io {
                op: "read",
                path: self.display(node),
                source: io::Error::from(io::ErrorKind::NotADirectory),
            }),
        }
    }

    fn read_link(&self, node: &IndexNode) -> Result<PathBuf, ContextError> {
        match node.map(|id| &self.nodes[id].kind) {
            Some(NodeKind::Symlink(t)) => Ok(t.clone()),
            _ => Err(ContextError::Io {
                op: "readlink",
                path: self.display(node),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            }),
        }
    }

    fn open(&self, node: &IndexNode) -> Result<Box<dyn Read + '_>, ContextError> {
        match node.map(|id| &self.nodes[id].kind) {
            Some(NodeKind::File {
                data: Data::Mem(b), ..
            }) => Ok(Box::new(&b[..])),
            Some(NodeKind::File {
                data: Data::Spill { offset, len },
                ..
            }) => Ok(Box::new(SpillReader {
                file: self.spill.as_ref().expect("spilled data has a spill file"),
                pos: *offset,
                end: offset + len,
            })),
            _ => Err(ContextError::Io {
                op: "open",
                path: self.display(node),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            }),
        }
    }

    fn digest(&self, node: &IndexNode) -> Result<[u8; 32], ContextError> {
        match node.map(|id| &self.nodes[id].kind) {
            Some(NodeKind::File { digest, .. }) => Ok(*digest),
            _ => Err(ContextError::Io {
                op: "read",
                path: self.display(node),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            }),
        }
    }

    fn display(&self, node: &IndexNode) -> PathBuf {
        match node {
            Some(id) => {
                let p = self.path_of_node(*id);
                PathBuf::from(format!("<build context>/{p}"))
            }
            None => PathBuf::from("<build context>"),
        }
    }
}

impl ContextIndex {
    fn path_of_node(&self, id: NodeId) -> String {
        // Messages only: a linear search is fine.
        for (i, n) in self.nodes.iter().enumerate() {
            if let NodeKind::Dir(c) = &n.kind {
                if let Some((name, _)) = c.iter().find(|(_, cid)| **cid == id) {
                    return self.path_of(i, name);
                }
            }
        }
        String::new()
    }
}

/// Reads a span of the spill file with `pread`, so stages copying concurrently share it.
struct SpillReader<'a> {
    file: &'a fs::File,
    pos: u64,
    end: u64,
}

impl Read for SpillReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

fn tar_error(msg: String) -> ContextError {
    ContextError::Tar(io::Error::new(io::ErrorKind::InvalidData, msg))
}

/// An entry's path as components, or `None` for `..` anywhere or an empty name.
fn entry_parts(p: &Path) -> Option<Vec<OsString>> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => return None,
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    (!out.is_empty()).then_some(out)
}

fn join(parts: &[OsString]) -> String {
    let v: Vec<_> = parts.iter().map(|p| p.to_string_lossy()).collect();
    v.join("/")
}

fn push_components(out: &mut Vec<OsString>, p: &Path) {
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s.to_os_string()),
            Component::ParentDir => out.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{copy_sources, expand_source, hash_sources, CopyOptions, DiskTree};
    use std::os::unix::fs::MetadataExt;

    fn write(root: &Path, rel: &str, data: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, data).expect("write");
    }

    /// A tar of `dir` as the docker CLI sends it (directories, files, symlinks).
    fn tar_of(dir: &Path) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        b.append_dir_all(".", dir).expect("tar");
        b.into_inner().expect("tar")
    }

    fn sample() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tmp");
        // The root's mode is hashed for `COPY .`; an unpacked context's root was 0755.
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        write(d.path(), "Dockerfile", "FROM scratch\n");
        write(d.path(), "a.txt", "one");
        write(d.path(), "b.txt", "two");
        write(d.path(), "dir/c", "three");
        write(d.path(), "dir/sub/d", "four");
        fs::set_permissions(d.path().join("dir/c"), fs::Permissions::from_mode(0o751))
            .expect("chmod");
        std::os::unix::fs::symlink("dir/sub", d.path().join("link")).expect("symlink");
        std::os::unix::fs::symlink("/../../etc", d.path().join("abs")).expect("symlink");
        let old = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        fs::File::options()
            .write(true)
            .open(d.path().join("dir/c"))
            .expect("open")
            .set_modified(old)
            .expect("touch");
        d
    }

    #[test]
    fn index_hashes_and_expands_like_the_disk() {
        let d = sample();
        let spill = tempfile::tempdir().expect("tmp");
        // Once all in memory, once all spilled: same answers.
        for limit in [MEMORY_LIMIT, 0] {
            let idx = ContextIndex::read_with_limit(&tar_of(d.path())[..], spill.path(), limit)
                .expect("index");
            let disk = DiskTree::new(d.path());
            for srcs in [
                vec!["dir".to_string()],
                vec!["*.txt".into(), "link".into()],
                vec![".".into()],
                vec!["link/d".into()],
            ] {
                assert_eq!(
                    hash_sources(&idx, &srcs).expect("index hash"),
                    hash_sources(&disk, &srcs).expect("disk hash"),
                    "{srcs:?} limit {limit}"
                );
            }
            assert_eq!(
                expand_source(&idx, "*.txt").expect("glob"),
                ["a.txt", "b.txt"]
            );
            assert_eq!(expand_source(&idx, "d*/s*").expect("glob"), ["dir/sub"]);
            assert!(matches!(
                expand_source(&idx, "nope"),
                Err(ContextError::NotFound(_))
            ));
            // An absolute symlink with `..` stays inside the context.
            assert_eq!(idx.resolve("abs").expect("resolve"), None);
            assert_eq!(
                idx.resolve("missing/../a.txt").expect("resolve"),
                idx.resolve("a.txt").expect("resolve")
            );
        }
    }

    #[test]
    fn a_copy_from_the_index_matches_a_copy_from_disk() {
        let d = sample();
        let spill = tempfile::tempdir().expect("tmp");
        let idx =
            ContextIndex::read_with_limit(&tar_of(d.path())[..], spill.path(), 8).expect("index");
        let from_idx = tempfile::tempdir().expect("tmp");
        let from_disk = tempfile::tempdir().expect("tmp");
        let opts = CopyOptions::default();
        copy_sources(
            &idx,
            &["dir".into(), "link".into()],
            from_idx.path(),
            "/out/",
            &opts,
        )
        .expect("copy");
        let disk = DiskTree::new(d.path());
        copy_sources(
            &disk,
            &["dir".into(), "link".into()],
            from_disk.path(),
            "/out/",
            &opts,
        )
        .expect("copy");
        for rel in ["out/c", "out/sub/d", "out/d"] {
            let a = from_idx.path().join(rel);
            let b = from_disk.path().join(rel);
            assert_eq!(
                fs::read(&a).expect("read"),
                fs::read(&b).expect("read"),
                "{rel}"
            );
            let (ma, mb) = (
                fs::metadata(&a).expect("stat"),
                fs::metadata(&b).expect("stat"),
            );
            assert_eq!(ma.mode(), mb.mode(), "{rel}");
            // A tar header holds whole seconds (as an unpacked context had).
            assert_eq!(ma.mtime(), mb.mtime(), "{rel}");
            assert_eq!(ma.mtime_nsec(), 0, "{rel}");
            assert_eq!((ma.uid(), ma.gid()), (0, 0), "{rel}");
        }
        let c = fs::metadata(from_idx.path().join("out/c")).expect("stat");
        assert_eq!((c.mode() & 0o7777, c.mtime()), (0o751, 1_000_000_000));
    }

    #[test]
    fn ignore_rules_prune_the_index() {
        let d = tempfile::tempdir().expect("tmp");
        write(d.path(), "Dockerfile", "FROM x");
        write(
            d.path(),
            ".dockerignore",
            "*.md\n!KEEP.md\nsecret\nDockerfile\n",
        );
        write(d.path(), "a.md", "x");
        write(d.path(), "KEEP.md", "x");
        write(d.path(), "secret/key", "x");
        write(d.path(), "src/main.rs", "x");
        let spill = tempfile::tempdir().expect("tmp");
        let mut idx = ContextIndex::read(&tar_of(d.path())[..], spill.path()).expect("index");
        idx.apply_ignore("Dockerfile").expect("ignore");
        let exists = |idx: &ContextIndex, p: &str| idx.resolve(p).expect("resolve").is_some();
        assert!(!exists(&idx, "a.md"));
        assert!(exists(&idx, "KEEP.md"));
        assert!(!exists(&idx, "secret"));
        assert!(exists(&idx, "src/main.rs"));
        assert_eq!(idx.read_dockerfile("Dockerfile").expect("read"), "FROM x");
        assert!(
            !exists(&idx, "Dockerfile"),
            "an ignored Dockerfile goes once read"
        );
        assert!(matches!(
            idx.read_dockerfile("Dockerfile"),
            Err(ContextError::Io { .. })
        ));
    }

    #[test]
    fn hard_links_dotdot_and_missing_parents() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o600);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h.clone(), "deep/er/f", &b"abc"[..])
            .expect("append");
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Link);
        l.set_size(0);
        l.set_cksum();
        b.append_link(&mut l, "hl", "deep/er/f").expect("link");
        // `..` is skipped, as unpack_in skips it.
        let mut raw = tar::Header::new_old();
        raw.as_old_mut().name[..7].copy_from_slice(b"../evil");
        raw.set_size(3);
        raw.set_mode(0o644);
        raw.set_cksum();
        b.append(&raw, &b"xyz"[..]).expect("append");
        let data = b.into_inner().expect("tar");
        let spill = tempfile::tempdir().expect("tmp");
        let idx = ContextIndex::read(&data[..], spill.path()).expect("index");
        let m = idx
            .stat(&idx.resolve("hl").expect("resolve"))
            .expect("stat")
            .expect("exists");
        assert_eq!((m.kind, m.mode, m.size), (Kind::File, 0o600, 3));
        assert_eq!(m.mtime, Some(UNIX_EPOCH + Duration::from_secs(1)));
        let deep = idx
            .stat(&idx.resolve("deep/er").expect("resolve"))
            .expect("stat")
            .expect("implied parent");
        assert_eq!((deep.kind, deep.mode), (Kind::Dir, 0o755));
        assert_eq!(idx.resolve("../evil").expect("resolve"), None);
        assert_eq!(idx.resolve("evil").expect("resolve"), None);
        let out = tempfile::tempdir().expect("tmp");
        idx.materialize(out.path()).expect("materialize");
        assert_eq!(fs::read(out.path().join("hl")).expect("read"), b"abc");
        assert_eq!(
            fs::metadata(out.path().join("deep/er/f"))
                .expect("stat")
                .mode()
                & 0o7777,
            0o600
        );
    }
}
