//! The one place where volumes touch the kernel's mount table.
//!
//! [`Mounter`] is deliberately narrow (mount, unmount, is-mounted) so that the volume
//! store's ref-counting and crash logic can be tested without root through
//! [`FakeMounter`], which records calls and keeps an in-memory mount table.
//!
//! Option strings (`o=` of the local driver) are split as moby/sys/mount does: words that
//! are mount flags (`ro`, `bind`, `noexec`, ...) become `MS_*` bits, propagation words
//! (`rshared`, ...) are applied by a second `mount(2)` after the first (the kernel ignores
//! them when combined with a new mount), and everything else is filesystem data.
//! Unmounting uses `MNT_DETACH`, like dockerd, so a busy volume never blocks cleanup.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One `mount(2)` call, plus the propagation change that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    pub source: String,
    pub target: PathBuf,
    pub fstype: String,
    /// `MS_*` bits other than propagation.
    pub flags: u64,
    /// `MS_SHARED`/`MS_SLAVE`/`MS_PRIVATE`/`MS_UNBINDABLE` (with `MS_REC`), or 0.
    pub propagation: u64,
    pub data: String,
}

/// Mount side effects, behind a trait so the logic above can be tested without root.
pub trait Mounter: Send + Sync + std::fmt::Debug {
    fn mount(&self, req: &MountRequest) -> io::Result<()>;
    fn unmount(&self, target: &Path) -> io::Result<()>;
    fn is_mounted(&self, target: &Path) -> io::Result<bool>;
}

const PROPAGATION_BITS: u64 =
    libc::MS_SHARED | libc::MS_SLAVE | libc::MS_PRIVATE | libc::MS_UNBINDABLE;

/// moby/sys/mount's flag table: (word, clear instead of set, bits).
const FLAG_WORDS: &[(&str, bool, u64)] = &[
    ("defaults", false, 0),
    ("ro", false, libc::MS_RDONLY),
    ("rw", true, libc::MS_RDONLY),
    ("suid", true, libc::MS_NOSUID),
    ("nosuid", false, libc::MS_NOSUID),
    ("dev", true, libc::MS_NODEV),
    ("nodev", false, libc::MS_NODEV),
    ("exec", true, libc::MS_NOEXEC),
    ("noexec", false, libc::MS_NOEXEC),
    ("sync", false, libc::MS_SYNCHRONOUS),
    ("async", true, libc::MS_SYNCHRONOUS),
    ("dirsync", false, libc::MS_DIRSYNC),
    ("remount", false, libc::MS_REMOUNT),
    ("mand", false, libc::MS_MANDLOCK),
    ("nomand", true, libc::MS_MANDLOCK),
    ("atime", true, libc::MS_NOATIME),
    ("noatime", false, libc::MS_NOATIME),
    ("diratime", true, libc::MS_NODIRATIME),
    ("nodiratime", false, libc::MS_NODIRATIME),
    ("bind", false, libc::MS_BIND),
    ("rbind", false, libc::MS_BIND | libc::MS_REC),
    ("unbindable", false, libc::MS_UNBINDABLE),
    ("runbindable", false, libc::MS_UNBINDABLE | libc::MS_REC),
    ("private", false, libc::MS_PRIVATE),
    ("rprivate", false, libc::MS_PRIVATE | libc::MS_REC),
    ("shared", false, libc::MS_SHARED),
    ("rshared", false, libc::MS_SHARED | libc::MS_REC),
    ("slave", false, libc::MS_SLAVE),
    ("rslave", false, libc::MS_SLAVE | libc::MS_REC),
    ("relatime", false, libc::MS_RELATIME),
    ("norelatime", true, libc::MS_RELATIME),
    ("strictatime", false, libc::MS_STRICTATIME),
    ("nostrictatime", true, libc::MS_STRICTATIME),
];

/// Splits an `o=` option string into (flags, propagation, data).
pub fn parse_mount_options(options: &str) -> (u64, u64, String) {
    let mut flags = 0u64;
    let mut data: Vec<&str> = Vec::new();
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match FLAG_WORDS.iter().find(|(w, _, _)| *w == o) {
            Some((_, true, bits)) => flags &= !bits,
            Some((_, false, bits)) => flags |= bits,
            None => data.push(o),
        }
    }
    // MS_REC belongs to propagation unless it came with a bind (rbind).
    let mut propagation = flags & PROPAGATION_BITS;
    if propagation != 0 {
        flags &= !PROPAGATION_BITS;
        if flags & libc::MS_REC != 0 {
            propagation |= libc::MS_REC;
            if flags & libc::MS_BIND == 0 {
                flags &= !libc::MS_REC;
            }
        }
    }
    (flags, propagation, data.join(","))
}

/// Decodes the octal escapes (`\040` for a space) of /proc/self/mountinfo.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `target` is a mount point, from /proc/self/mountinfo (comparing device numbers
/// is not enough: a bind mount from the same filesystem has the same device).
pub fn is_mountpoint(target: &Path) -> io::Result<bool> {
    let canonical = match std::fs::canonicalize(target) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let want = canonical.to_string_lossy();
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape_mountinfo(mp) == want))
}

/// The mount `path` lives on, as dockerd's `getSourceMount` finds it: the longest mount
/// point of /proc/self/mountinfo that is `path` or one of its parents (the later one when
/// several are stacked on one path), with that line's optional fields (`shared:N`,
/// `master:N`), which tell its propagation.
pub fn source_mount(path: &Path) -> io::Result<(String, String)> {
    let canonical = std::fs::canonicalize(path)?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    source_mount_in(&info, &canonical.to_string_lossy()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("Can't find mount point of {}", path.display()),
        )
    })
}

fn source_mount_in(info: &str, path: &str) -> Option<(String, String)> {
    let mut best: Option<(String, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mp) = fields.get(4).map(|m| unescape_mountinfo(m)) else {
            continue;
        };
        let parent = mp == "/"
            || path == mp
            || path
                .strip_prefix(mp.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        if !parent || best.as_ref().is_some_and(|(b, _)| b.len() > mp.len()) {
            continue;
        }
        let optional = fields
            .iter()
            .skip(6)
            .take_while(|f| **f != "-")
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        best = Some((mp, optional));
    }
    best
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemMounter;

impl Mounter for SystemMounter {
    fn mount(&self, req: &MountRequest) -> io::Result<()> {
        use rustix::mount::{MountFlags, MountPropagationFlags};
        let data = std::ffi::CString::new(req.data.as_str())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mount data contains NUL"))?;
        rustix::mount::mount(
            req.source.as_str(),
            &req.target,
            req.fstype.as_str(),
            MountFlags::from_bits_retain(req.flags as u32),
            Some(data.as_c_str()),
        )?;
        if req.propagation != 0 {
            if let Err(e) = rustix::mount::mount_change(
                &req.target,
                MountPropagationFlags::from_bits_retain(req.propagation as u32),
            ) {
                // Leave nothing half-done behind.
                let _ = rustix::mount::unmount(&req.target, rustix::mount::UnmountFlags::DETACH);
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        match rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH) {
            Ok(()) => Ok(()),
            // EINVAL: not a mount point (already gone); that is the state we want.
            Err(e) if e == rustix::io::Errno::INVAL && !is_mountpoint(target)? => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn is_mounted(&self, target: &Path) -> io::Result<bool> {
        is_mountpoint(target)
    }
}

/// A recording mounter with an in-memory mount table, for tests without root.
#[derive(Debug, Default)]
pub struct FakeMounter {
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    calls: Vec<String>,
    mounted: Vec<PathBuf>,
    fail_next_mount: Option<i32>,
}

impl FakeMounter {
    pub fn new() -> FakeMounter {
        FakeMounter::default()
    }

    /// Every call so far: `mount SOURCE TARGET FSTYPE flags=0x.. prop=0x.. data=..`,
    /// `unmount TARGET`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Targets currently mounted.
    pub fn mounted(&self) -> Vec<PathBuf> {
        self.lock().mounted.clone()
    }

    /// Pretend `target` is mounted (as after a daemon restart).
    pub fn preset_mounted(&self, target: &Path) {
        self.lock().mounted.push(target.to_path_buf());
    }

    /// Make the next mount fail with this errno.
    pub fn fail_next_mount(&self, errno: i32) {
        self.lock().fail_next_mount = Some(errno);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        // A poisoned fake only means another test thread panicked; its data is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Mounter for FakeMounter {
    fn mount(&self, req: &MountRequest) -> io::Result<()> {
        let mut s = self.lock();
        s.calls.push(format!(
            "mount {} {} {} flags={:#x} prop={:#x} data={}",
            req.source,
            req.target.display(),
            req.fstype,
            req.flags,
            req.propagation,
            req.data
        ));
        if let Some(errno) = s.fail_next_mount.take() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        s.mounted.push(req.target.clone());
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.calls.push(format!("unmount {}", target.display()));
        match s.mounted.iter().rposition(|m| m == target) {
            Some(i) => {
                s.mounted.remove(i);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn is_mounted(&self, target: &Path) -> io::Result<bool> {
        Ok(self.lock().mounted.iter().any(|m| m == target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split() {
        assert_eq!(
            parse_mount_options("bind"),
            (libc::MS_BIND, 0, String::new())
        );
        assert_eq!(
            parse_mount_options("size=1m,uid=1000,noexec"),
            (libc::MS_NOEXEC, 0, "size=1m,uid=1000".to_string())
        );
        assert_eq!(
            parse_mount_options("rbind,rshared"),
            (
                libc::MS_BIND | libc::MS_REC,
                libc::MS_SHARED | libc::MS_REC,
                String::new()
            )
        );
        assert_eq!(
            parse_mount_options("bind,ro,rw"),
            (libc::MS_BIND, 0, String::new())
        );
        assert_eq!(
            parse_mount_options("private"),
            (0, libc::MS_PRIVATE, String::new())
        );
        assert_eq!(parse_mount_options(""), (0, 0, String::new()));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/tail\\"), "/tail\\");
        assert_eq!(unescape_mountinfo("/x\\134y"), "/x\\y");
    }

    #[test]
    fn source_mount_longest_parent() {
        let info = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:40 / /srv rw master:7 - tmpfs tmpfs rw
31 22 0:41 / /srv2 rw - tmpfs tmpfs rw
32 30 0:42 / /srv/a\\040b rw shared:9 master:3 - tmpfs tmpfs rw
33 30 0:43 / /srv/a\\040b rw - tmpfs tmpfs rw
";
        let got = |p: &str| source_mount_in(info, p).expect("found");
        assert_eq!(got("/etc/x"), ("/".into(), "shared:1".into()));
        assert_eq!(got("/srv"), ("/srv".into(), "master:7".into()));
        // /srv2 is not a parent of /srv20.
        assert_eq!(got("/srv20/x"), ("/".into(), "shared:1".into()));
        assert_eq!(got("/srv2/x"), ("/srv2".into(), String::new()));
        // Stacked on one path: the later line (the mount on top) wins.
        assert_eq!(got("/srv/a b/c"), ("/srv/a b".into(), String::new()));
    }

    #[test]
    fn proc_is_a_mountpoint() {
        assert!(is_mountpoint(Path::new("/proc")).expect("read mountinfo"));
        assert!(is_mountpoint(Path::new("/proc/self/..")).is_ok());
        assert!(!is_mountpoint(Path::new("/definitely/not/here")).expect("missing path"));
    }

    #[test]
    fn fake_records() {
        let f = FakeMounter::new();
        let req = MountRequest {
            source: "tmpfs".into(),
            target: "/x".into(),
            fstype: "tmpfs".into(),
            flags: 0,
            propagation: 0,
            data: "size=1m".into(),
        };
        f.mount(&req).expect("fake mount");
        assert!(f.is_mounted(Path::new("/x")).expect("fake"));
        f.unmount(Path::new("/x")).expect("fake unmount");
        assert!(f.mounted().is_empty());
        assert_eq!(f.calls().len(), 2);
        f.fail_next_mount(libc::EPERM);
        assert!(f.mount(&req).is_err());
    }
}
