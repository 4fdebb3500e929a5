//! A sealed in-memory copy of the OCI runtime binary, shared by every shim of one berthd.
//!
//! Why: crun defends against CVE-2019-5736 (a container overwriting the host's runtime
//! binary through `/proc/<pid>/exe`) by re-executing itself from a private copy on every
//! invocation unless `/proc/self/exe` already is a fully sealed memfd (crun's
//! `cloned_binary.c`: seals exactly `SEAL | SHRINK | GROW | WRITE`). That dance, a temporary
//! read-only bind mount or a fresh memfd copy plus a second `execve`, cost about 3 ms per
//! `crun create`, `start`, `exec` and `delete` here, three of them on every `docker run`.
//!
//! berthd makes that sealed copy once (as runc's `memfd-bind` does for runc) and hands each
//! shim a descriptor for it; the shim executes the runtime through `/proc/self/fd/N`. The
//! protection is the same: nobody can write to a sealed memfd, so a container cannot reach
//! the host binary through it. The copy is refreshed when the binary on disk changes
//! (package upgrade), checked with one `stat` per container start; shims started before keep
//! the copy they were given, and the kernel frees a copy when its last holder exits.
//!
//! When memfds are unavailable (an old kernel, `vm.memfd_noexec=2`) or the runtime is a script
//! (its interpreter could not open a close-on-exec descriptor), berth falls back to
//! executing the runtime by its path, and the runtime protects itself as before.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The seals crun checks for; anything less and it copies itself again.
const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// `MFD_EXEC` (Linux 6.3): ask for an executable memfd explicitly, so the kernel neither
/// warns nor, under `vm.memfd_noexec=1`, makes it non-executable.
const MFD_EXEC: libc::c_uint = 0x0010;

#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    #[error("runtime {0:?} not found in PATH")]
    NotFound(String),
    /// Scripts cannot run from a close-on-exec descriptor: their interpreter opens the path
    /// after the exec has closed it.
    #[error("runtime {0} is not an ELF executable")]
    NotElf(PathBuf),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SealedError + 'a {
    move |source| SealedError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The file a command name runs: itself when it holds a `/`, else the first executable
/// regular file of that name in `PATH` (as `execvp` would pick).
pub fn resolve_program(name: &Path) -> Result<PathBuf, SealedError> {
    if name.as_os_str().as_encoded_bytes().contains(&b'/') {
        return Ok(name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| SealedError::NotFound(name.to_string_lossy().into_owned()))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Identity {
    fn of(path: &Path) -> io::Result<Identity> {
        let m = std::fs::metadata(path)?;
        Ok(Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }
}

/// A new close-on-exec memfd that may be sealed and executed (or mapped executable).
pub(crate) fn executable_memfd(name: &str) -> io::Result<OwnedFd> {
    let cname = std::ffi::CString::new(name).map_err(io::Error::other)?;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create takes a valid NUL-terminated name and flags; the result is
    // checked before use.
    let mut raw = unsafe { libc::memfd_create(cname.as_ptr(), flags | MFD_EXEC) };
    if raw < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Kernels before 6.3 reject the unknown MFD_EXEC flag; their memfds are executable.
        // SAFETY: as above.
        raw = unsafe { libc::memfd_create(cname.as_ptr(), flags) };
    }
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Seals a memfd against any change of its content or size.
pub(crate) fn seal(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS on a memfd the caller owns, with a plain integer argument.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One sealed copy of a binary.
#[derive(Debug)]
pub struct SealedBinary {
    fd: OwnedFd,
    source: PathBuf,
    identity: Identity,
}

impl SealedBinary {
    /// Copy `path` (already resolved) into a new memfd and seal it.
    pub fn create(path: &Path) -> Result<SealedBinary, SealedError> {
        let identity = Identity::of(path).map_err(io_err("stat", path))?;
        let mut src = File::open(path).map_err(io_err("open", path))?;
        let mut magic = [0u8; 4];
        if std::io::Read::read_exact(&mut src, &mut magic).is_err() || &magic != b"\x7fELF" {
            return Err(SealedError::NotElf(path.to_path_buf()));
        }
        std::io::Seek::rewind(&mut src).map_err(io_err("read", path))?;
        let name = path
            .file_name()
            .unwrap_or_else(|| OsStr::new("runtime"))
            .to_string_lossy()
            .into_owned();
        let fd =
            executable_memfd(&format!("berth:{name}")).map_err(io_err("memfd_create for", path))?;
        let mut dst = File::from(fd);
        let copied = io::copy(&mut src, &mut dst).map_err(io_err("copy", path))?;
        if copied != identity.size {
            return Err(io_err("copy", path)(io::Error::other(format!(
                "copied {copied} of {} bytes (changed while copying)",
                identity.size
            ))));
        }
        seal(&dst).map_err(io_err("seal copy of", path))?;
        Ok(SealedBinary {
            fd: dst.into(),
            source: path.to_path_buf(),
            identity,
        })
    }

    /// Whether the file on disk is still the one that was copied.
    pub fn is_current(&self) -> bool {
        Identity::of(&self.source).is_ok_and(|i| i == self.identity)
    }

    pub fn source(&self) -> &Path {
        &self.source
    }
}

impl AsFd for SealedBinary {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// berthd's sealed copies, one per runtime binary, made on first use and refreshed when the
/// binary changes on disk.
#[derive(Debug, Default)]
pub struct SealedRuntimes {
    copies: Mutex<HashMap<PathBuf, Arc<SealedBinary>>>,
}

impl SealedRuntimes {
    /// The sealed copy of `runtime` (a name looked up in PATH, or a path), or the reason there
    /// is none; callers then run the runtime by its path.
    pub fn get(&self, runtime: &Path) -> Result<Arc<SealedBinary>, SealedError> {
        let path = resolve_program(runtime)?;
        let mut copies = self.copies.lock().expect("sealed runtimes lock");
        if let Some(c) = copies.get(&path) {
            if c.is_current() {
                return Ok(c.clone());
            }
        }
        let fresh = Arc::new(SealedBinary::create(&path)?);
        copies.insert(path, fresh.clone());
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn resolves_names_through_path_and_keeps_paths() {
        let sh = resolve_program(Path::new("sh")).expect("sh is in PATH");
        assert!(sh.is_absolute(), "{sh:?}");
        assert_eq!(
            resolve_program(Path::new("./x/y")).unwrap(),
            PathBuf::from("./x/y")
        );
        let err = resolve_program(Path::new("no-such-runtime-berth")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "runtime \"no-such-runtime-berth\" not found in PATH"
        );
    }

    #[test]
    fn copy_is_identical_sealed_and_refreshed_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script-rt");
        std::fs::write(&script, b"#!/bin/sh\necho one\n").unwrap();
        assert!(matches!(
            SealedBinary::create(&script),
            Err(SealedError::NotElf(_))
        ));
        let bin = dir.path().join("rt");
        let elf = |tail: &[u8]| [b"\x7fELF".as_slice(), tail].concat();
        std::fs::write(&bin, elf(b" one")).unwrap();
        let copies = SealedRuntimes::default();
        let a = copies.get(&bin).unwrap();
        let again = copies.get(&bin).unwrap();
        assert!(
            Arc::ptr_eq(&a, &again),
            "an unchanged binary is copied once"
        );

        let mut f = File::from(a.fd.try_clone().unwrap());
        let mut text = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut text).unwrap();
        assert_eq!(text.as_bytes(), elf(b" one"));
        // SAFETY: F_GET_SEALS on a descriptor we own.
        let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
        assert_eq!(seals, SEALS);
        assert!(f.write_all(b"x").is_err(), "a sealed copy refuses writes");

        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&bin, elf(b" two, longer")).unwrap();
        assert!(!a.is_current());
        let b = copies.get(&bin).unwrap();
        assert!(!Arc::ptr_eq(&a, &b), "a changed binary gets a new copy");
        assert!(b.is_current());
    }
}
