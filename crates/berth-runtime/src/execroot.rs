//! The exec root on a tmpfs.
//!
//! Everything under the exec root is runtime state that must not outlive a reboot: bundles,
//! shim sockets and exit files, crun's state directories, the mount points of container root
//! filesystems and network namespaces. It belongs in memory, and on a systemd host it is,
//! since `/run` is a tmpfs there. Some hosts keep `/run` on the root disk (this project's
//! development VMs: ext4 without a journal). There every `run --rm` creates and deletes
//! about twenty files and directories in the exec root, and on an ext4 without a journal
//! each new inode is searched for past the inodes deleted in the last 5 to 10 seconds
//! (`recently_deleted` in the inode allocator), so a busy engine slows itself down: in a
//! loop of `run --rm`, inode allocation was the largest single item of berthd's kernel time.
//!
//! So at start-up berthd mounts a tmpfs of its own on the exec root when the exec root is a
//! plain directory on a disk file system. It never mounts over state: a directory that is
//! not empty (a daemon of an older version left containers running there) is left as it is,
//! and so is any exec root that already is a mount point (an administrator's choice) or on
//! a tmpfs. The mount stays when berthd exits, as `/run` would: shims of live-restored
//! containers keep their sockets there, and the next berthd finds it. `exec-root-tmpfs:
//! false` in daemon.json turns this off.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `f_type` of tmpfs and ramfs in statfs(2).
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

#[derive(Debug, thiserror::Error)]
pub enum ExecRootError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// What [`prepare`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already in memory (tmpfs or ramfs), nothing to do.
    InMemory,
    /// A tmpfs was mounted on it just now.
    Mounted,
    /// Left on disk, for the reason given.
    OnDisk(&'static str),
}

/// The facts [`decide`] weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub in_memory: bool,
    pub mount_point: bool,
    pub empty: bool,
}

/// Mount a tmpfs only on a plain, empty directory of a disk file system.
pub fn decide(f: Facts) -> Outcome {
    if f.in_memory {
        Outcome::InMemory
    } else if f.mount_point {
        Outcome::OnDisk("it is a mount point of its own")
    } else if !f.empty {
        Outcome::OnDisk("it holds state from an earlier daemon")
    } else {
        Outcome::Mounted
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ExecRootError + 'a {
    move |source| ExecRootError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Looks at `path` (created if missing) and mounts a tmpfs on it when [`decide`] says so.
pub fn prepare(path: &Path) -> Result<Outcome, ExecRootError> {
    std::fs::create_dir_all(path).map_err(io_err("create", path))?;
    let st =
        nix::sys::statfs::statfs(path).map_err(|e| io_err("statfs", path)(io::Error::from(e)))?;
    let kind = st.filesystem_type().0 as i64;
    let here = std::fs::metadata(path).map_err(io_err("stat", path))?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    let up = std::fs::metadata(parent).map_err(io_err("stat", parent))?;
    let empty = std::fs::read_dir(path)
        .map_err(io_err("read", path))?
        .next()
        .is_none();
    let facts = Facts {
        in_memory: kind == TMPFS_MAGIC || kind == RAMFS_MAGIC,
        // The root directory is always a mount point; otherwise a device change marks one.
        mount_point: here.dev() != up.dev() || here.ino() == up.ino(),
        empty,
    };
    let outcome = decide(facts);
    if outcome == Outcome::Mounted {
        nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some("mode=0711"),
        )
        .map_err(|e| io_err("mount tmpfs on", path)(io::Error::from(e)))?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(in_memory: bool, mount_point: bool, empty: bool) -> Facts {
        Facts {
            in_memory,
            mount_point,
            empty,
        }
    }

    #[test]
    fn mounts_only_on_an_empty_plain_directory_on_disk() {
        assert_eq!(decide(facts(false, false, true)), Outcome::Mounted);
        assert_eq!(decide(facts(true, false, true)), Outcome::InMemory);
        assert_eq!(decide(facts(true, true, false)), Outcome::InMemory);
        assert!(matches!(
            decide(facts(false, true, true)),
            Outcome::OnDisk(_)
        ));
        assert!(matches!(
            decide(facts(false, false, false)),
            Outcome::OnDisk(_)
        ));
    }

    fn is_tmpfs(p: &Path) -> bool {
        nix::sys::statfs::statfs(p).unwrap().filesystem_type().0 as i64 == TMPFS_MAGIC
    }

    #[test]
    fn mounts_a_tmpfs_once_and_never_over_state() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let t = tempfile::tempdir_in("/var/tmp").unwrap();
        if is_tmpfs(t.path()) {
            eprintln!("skipped: /var/tmp is a tmpfs here");
            return;
        }
        let root = t.path().join("exec");
        assert_eq!(prepare(&root).unwrap(), Outcome::Mounted);
        assert!(is_tmpfs(&root));
        // A restart finds it in memory and mounts nothing more.
        std::fs::write(root.join("state"), b"x").unwrap();
        assert_eq!(prepare(&root).unwrap(), Outcome::InMemory);
        assert!(root.join("state").exists());
        nix::mount::umount(&root).unwrap();

        // State on disk stays visible: nothing is mounted over it.
        let old = t.path().join("old");
        std::fs::create_dir_all(old.join("containers")).unwrap();
        assert!(matches!(prepare(&old).unwrap(), Outcome::OnDisk(_)));
        assert!(old.join("containers").exists() && !is_tmpfs(&old));
    }
}
