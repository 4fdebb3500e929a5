//! Layer diff: turn a container's overlay upper directory back into a layer tar, the
//! inverse of [`crate::apply`]. Overlay whiteouts (0/0 character devices) become
//! `.wh.<name>` entries and opaque directories (`trusted.overlay.opaque=y`) get a
//! `.wh..wh..opq` entry; overlay's own `trusted.overlay.*` xattrs are not exported.
//!
//! The walk is sorted by name and hard links are emitted as links to the first path
//! seen, so the same upper directory always gives the same tar (the builder's cache
//! relies on that).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Why a diff could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("reading {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing layer tar: {0}")]
    Write(#[source] io::Error),
}

fn rd(path: &Path) -> impl FnOnce(io::Error) -> DiffError + '_ {
    move |source| DiffError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Write the tar of `upper` into `out`.
pub fn write_diff(upper: &Path, out: &mut dyn Write) -> Result<(), DiffError> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    walk(&mut b, upper, "", &mut links)?;
    b.finish().map_err(DiffError::Write)?;
    Ok(())
}

fn header(md: &fs::Metadata, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid() as u64);
    h.set_gid(md.gid() as u64);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(size);
    h
}

/// xattrs worth carrying into a layer (overlay's bookkeeping is not).
fn xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, DiffError> {
    let mut list = vec![0u8; 64 * 1024];
    let n = match rustix::fs::llistxattr(path, &mut list[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(rd(path)(e.into())),
    };
    let mut out = Vec::new();
    for name in list[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        let mut val = vec![0u8; 64 * 1024];
        let len = rustix::fs::lgetxattr(path, name.as_str(), &mut val[..])
            .map_err(|e| rd(path)(e.into()))?;
        val.truncate(len);
        out.push((name, val));
    }
    Ok(out)
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(path, "trusted.overlay.opaque", &mut buf[..]), Ok(1) if buf[0] == b'y')
}

/// Appends a symlink entry whose target is stored byte for byte. The tar crate's
/// `append_link` rebuilds link names from path components, which turns `/etc` into
/// `//etc` and drops `./` and doubled slashes; a layer must give back exactly the link
/// the container made. Targets over 100 bytes get a GNU `././@LongLink` (`K`) entry
/// written here, since the crate would normalise those too when they shrink under 100.
fn append_symlink<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    rel: &str,
    target: &[u8],
) -> io::Result<()> {
    const NAME_FIELD: usize = 100;
    if target.len() > NAME_FIELD {
        let mut long = tar::Header::new_gnu();
        long.set_entry_type(tar::EntryType::GNULongLink);
        long.set_mode(0o644);
        long.set_size(target.len() as u64 + 1);
        let gnu = long
            .as_gnu_mut()
            .expect("a header made by new_gnu is a gnu header");
        let name = b"././@LongLink";
        gnu.name[..name.len()].copy_from_slice(name);
        long.set_cksum();
        b.append(&long, target.chain(&[0u8][..]))?;
    }
    h.set_link_name_literal(&target[..target.len().min(NAME_FIELD)])?;
    b.append_data(h, rel, io::empty())
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    prefix: &str,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<(), DiffError> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(rd(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(rd(dir))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let name = name.to_string_lossy().into_owned();
        let rel = format!("{prefix}{name}");
        let md = fs::symlink_metadata(&path).map_err(rd(&path))?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            let wh = format!("{prefix}.wh.{name}");
            let mut h = header(&md, tar::EntryType::Regular, 0);
            b.append_data(&mut h, &wh, io::empty())
                .map_err(DiffError::Write)?;
            continue;
        }
        let x = xattrs(&path)?;
        if !x.is_empty() {
            let pax: Vec<(String, Vec<u8>)> = x
                .into_iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
                .collect();
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(DiffError::Write)?;
        }
        if ft.is_dir() {
            let mut h = header(&md, tar::EntryType::Directory, 0);
            b.append_data(&mut h, format!("{rel}/"), io::empty())
                .map_err(DiffError::Write)?;
            if is_opaque(&path) {
                let mut h = header(&md, tar::EntryType::Regular, 0);
                h.set_mode(0o644);
                b.append_data(&mut h, format!("{rel}/.wh..wh..opq"), io::empty())
                    .map_err(DiffError::Write)?;
            }
            walk(b, &path, &format!("{rel}/"), links)?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = links.get(&(md.dev(), md.ino())) {
                    let mut h = header(&md, tar::EntryType::Link, 0);
                    b.append_link(&mut h, &rel, first)
                        .map_err(DiffError::Write)?;
                    continue;
                }
                links.insert((md.dev(), md.ino()), rel.clone());
            }
            let f = fs::File::open(&path).map_err(rd(&path))?;
            let mut h = header(&md, tar::EntryType::Regular, md.len());
            b.append_data(&mut h, &rel, f).map_err(DiffError::Write)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(rd(&path))?;
            let mut h = header(&md, tar::EntryType::Symlink, 0);
            append_symlink(b, &mut h, &rel, target.as_os_str().as_encoded_bytes())
                .map_err(DiffError::Write)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            };
            let mut h = header(&md, kind, 0);
            let dev = md.rdev();
            h.set_device_major(rustix::fs::major(dev))
                .map_err(DiffError::Write)?;
            h.set_device_minor(rustix::fs::minor(dev))
                .map_err(DiffError::Write)?;
            b.append_data(&mut h, &rel, io::empty())
                .map_err(DiffError::Write)?;
        }
        // sockets have no tar representation; docker skips them too
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_targets(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut ar = tar::Archive::new(io::Cursor::new(tar));
        for e in ar.entries().expect("entries") {
            let e = e.expect("entry");
            if e.header().entry_type() == tar::EntryType::Symlink {
                let name = e.path().expect("path").display().to_string();
                let raw = e.link_name_bytes().expect("link name").into_owned();
                out.push((name, raw));
            }
        }
        out
    }

    #[test]
    fn symlink_targets_are_stored_exactly() {
        let t = tempfile::tempdir().expect("tempdir");
        let upper = t.path();
        let long = format!("/{}/./x", "d".repeat(120));
        for (name, target) in [
            ("abs", "/etc"),
            ("root", "/"),
            ("dot", "./a//b/"),
            ("rel", "../lib"),
            ("long", long.as_str()),
        ] {
            std::os::unix::fs::symlink(target, upper.join(name)).expect("symlink");
        }
        let mut out = Vec::new();
        write_diff(upper, &mut out).expect("diff");
        let got = link_targets(&out);
        let want: Vec<(String, Vec<u8>)> = [
            ("abs", "/etc"),
            ("dot", "./a//b/"),
            ("long", long.as_str()),
            ("rel", "../lib"),
            ("root", "/"),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), t.as_bytes().to_vec()))
        .collect();
        assert_eq!(got, want);
    }
}
