//! Copy-up: filling a new, empty volume with what the image has at the mount target.
//!
//! dockerd's rule: copy only when the volume's data directory is empty, and only a
//! directory (a missing or non-directory source copies nothing). The copy keeps owners,
//! permission bits (setuid/setgid/sticky included), extended attributes (file
//! capabilities, ACLs), timestamps, symlinks as symlinks, hard links as hard links, and
//! device nodes, fifos and sockets as nodes; the root of the volume takes the owner and
//! mode of the source directory.
//!
//! Symlinks inside the source are never followed: entries are examined with `lstat`,
//! regular files are opened with `O_NOFOLLOW`, and attributes are applied with the
//! no-follow variants (`lchown`, `lsetxattr`, `utimensat(AT_SYMLINK_NOFOLLOW)`). The source
//! path itself is taken as given: resolving the mount target inside the container's rootfs
//! (symlinks scoped to the rootfs) is the caller's job, as it is dockerd's.
//!
//! Attribute order matters: `chown` clears setuid/setgid bits and `security.capability`, so
//! the mode is set after it and the xattrs after that; directory times are set last, after
//! their children were written.

use crate::error::Error;
use rustix::fs::{AtFlags, FileType, Gid, Mode, Timespec, Timestamps, Uid, CWD};
use std::collections::HashMap;
use std::fs::{self, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Copies the content of `src` into the empty directory `dst` (see the module docs).
pub fn copy_up(src: &Path, dst: &Path) -> Result<(), Error> {
    let meta = match fs::symlink_metadata(src) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat copy-up source", src, e)),
    };
    if !meta.is_dir() {
        return Ok(());
    }
    let mut dst_entries = fs::read_dir(dst).map_err(|e| Error::io("read volume dir", dst, e))?;
    if dst_entries.next().is_some() {
        return Ok(());
    }
    let mut links = HashMap::new();
    copy_children(src, dst, &mut links)?;
    apply_attrs(src, dst, &meta)
}

/// Copies every entry of the directory `src` into the existing directory `dst`.
fn copy_children(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), Error> {
    let entries = fs::read_dir(src).map_err(|e| Error::io("read dir", src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read dir", src, e))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from).map_err(|e| Error::io("stat", &from, e))?;
        copy_entry(&from, &to, &meta, links)?;
    }
    Ok(())
}

fn copy_entry(
    src: &Path,
    dst: &Path,
    meta: &Metadata,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), Error> {
    let ft = meta.file_type();
    if !ft.is_dir() && meta.nlink() > 1 {
        let key = (meta.dev(), meta.ino());
        if let Some(first) = links.get(&key) {
            return fs::hard_link(first, dst).map_err(|e| Error::io("link", dst, e));
        }
        links.insert(key, dst.to_path_buf());
    }
    if ft.is_dir() {
        fs::create_dir(dst).map_err(|e| Error::io("mkdir", dst, e))?;
        copy_children(src, dst, links)?;
    } else if ft.is_file() {
        copy_file(src, dst)?;
    } else if ft.is_symlink() {
        let target = fs::read_link(src).map_err(|e| Error::io("readlink", src, e))?;
        std::os::unix::fs::symlink(&target, dst).map_err(|e| Error::io("symlink", dst, e))?;
    } else {
        // Devices, fifos and sockets.
        rustix::fs::mknodat(
            CWD,
            dst,
            FileType::from_raw_mode(meta.mode()),
            Mode::from_raw_mode(meta.mode() & 0o7777),
            meta.rdev(),
        )
        .map_err(|e| Error::io("mknod", dst, e.into()))?;
    }
    apply_attrs(src, dst, meta)
}

fn copy_file(src: &Path, dst: &Path) -> Result<(), Error> {
    let mut from = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(src)
        .map_err(|e| Error::io("open", src, e))?;
    let mut to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(|e| Error::io("create", dst, e))?;
    // std specialises File-to-File copies to copy_file_range.
    io::copy(&mut from, &mut to).map_err(|e| Error::io("copy", dst, e))?;
    Ok(())
}

/// Owner, mode, xattrs and times of `src` onto `dst`, never following a symlink.
fn apply_attrs(src: &Path, dst: &Path, meta: &Metadata) -> Result<(), Error> {
    let is_link = meta.file_type().is_symlink();
    rustix::fs::chownat(
        CWD,
        dst,
        Some(Uid::from_raw(meta.uid())),
        Some(Gid::from_raw(meta.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::io("chown", dst, e.into()))?;
    if !is_link {
        rustix::fs::chmodat(
            CWD,
            dst,
            Mode::from_raw_mode(meta.mode() & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|e| Error::io("chmod", dst, e.into()))?;
    }
    copy_xattrs(src, dst)?;
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| Error::io("set times", dst, e.into()))?;
    Ok(())
}

/// Whether an xattr error means "this filesystem or object cannot hold it", which is not
/// worth failing a container start for.
fn xattr_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENODATA))
}

fn copy_xattrs(src: &Path, dst: &Path) -> Result<(), Error> {
    // `xattr::list/get/set` are the l* (no-follow) calls.
    let names = match xattr::list(src) {
        Ok(n) => n,
        Err(e) if xattr_unsupported(&e) => return Ok(()),
        Err(e) => return Err(Error::io("list xattrs", src, e)),
    };
    for name in names {
        let value = match xattr::get(src, &name) {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) if xattr_unsupported(&e) => continue,
            Err(e) => return Err(Error::io("get xattr", src, e)),
        };
        match xattr::set(dst, &name, &value) {
            Ok(()) => {}
            Err(e) if xattr_unsupported(&e) => {
                tracing::debug!(path = %dst.display(), name = ?name, "xattr not supported here: {e}");
            }
            Err(e) => return Err(Error::io("set xattr", dst, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn copies_tree_and_keeps_links() {
        let t = tempfile::tempdir().expect("tempdir");
        let src = t.path().join("src");
        let dst = t.path().join("dst");
        fs::create_dir_all(src.join("sub/deeper")).unwrap();
        fs::create_dir(&dst).unwrap();
        fs::write(src.join("sub/file"), b"hello").unwrap();
        fs::set_permissions(src.join("sub/file"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::hard_link(src.join("sub/file"), src.join("hard")).unwrap();
        std::os::unix::fs::symlink("../../etc/shadow", src.join("sub/escape")).unwrap();
        std::os::unix::fs::symlink("sub", src.join("dirlink")).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o1777)).unwrap();

        copy_up(&src, &dst).unwrap();
        assert_eq!(fs::read(dst.join("sub/file")).unwrap(), b"hello");
        let m = fs::metadata(dst.join("sub/file")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640);
        assert_eq!(m.ino(), fs::metadata(dst.join("hard")).unwrap().ino());
        assert_eq!(
            fs::read_link(dst.join("sub/escape")).unwrap(),
            Path::new("../../etc/shadow")
        );
        assert!(fs::symlink_metadata(dst.join("dirlink"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(dst.join("sub/deeper").is_dir());
        assert_eq!(fs::metadata(&dst).unwrap().mode() & 0o7777, 0o1777);
        let sm = fs::metadata(src.join("sub/file")).unwrap();
        assert_eq!(m.mtime(), sm.mtime());
    }

    #[test]
    fn skips_non_empty_missing_and_files() {
        let t = tempfile::tempdir().expect("tempdir");
        let src = t.path().join("src");
        let dst = t.path().join("dst");
        fs::create_dir(&src).unwrap();
        fs::create_dir(&dst).unwrap();
        fs::write(src.join("a"), b"a").unwrap();
        fs::write(dst.join("keep"), b"k").unwrap();
        copy_up(&src, &dst).unwrap();
        assert!(!dst.join("a").exists());
        copy_up(&t.path().join("missing"), &dst).unwrap();
        let empty = t.path().join("empty");
        fs::create_dir(&empty).unwrap();
        copy_up(&src.join("a"), &empty).unwrap();
        assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
        assert!(copy_up(&src, &t.path().join("no-dst")).is_err());
    }
}
