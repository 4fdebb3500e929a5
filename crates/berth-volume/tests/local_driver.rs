//! Integration tests against the real kernel: tmpfs- and bind-typed local volumes, copy-up
//! with ownership, modes, xattrs and device nodes, persistence across reopening the store,
//! usage, and that no mount is left behind. They need root; outside CI they skip (saying
//! so), under `CI=true` they fail.

use berth_volume::mount::is_mountpoint;
use berth_volume::{copy_up, ErrorKind, VolumeStore};
use redb::Database;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn have_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("these tests need root and CI=true forbids skipping them");
    }
    eprintln!("skipping: not root");
    false
}

/// Unmounts (lazily) whatever a test left mounted, even when it panics.
struct MountGuard(Vec<PathBuf>);

impl Drop for MountGuard {
    fn drop(&mut self) {
        for p in &self.0 {
            while is_mountpoint(p).unwrap_or(false) {
                if rustix::mount::unmount(p, rustix::mount::UnmountFlags::DETACH).is_err() {
                    break;
                }
            }
        }
    }
}

fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn open(root: &Path) -> (VolumeStore, Arc<Database>) {
    fs::create_dir_all(root).expect("create data root");
    let db = Arc::new(Database::create(root.join("berth.redb")).expect("create db"));
    (VolumeStore::open(root, db.clone()).expect("open store"), db)
}

/// No mount of the kernel's table lies under `dir`.
fn assert_no_mounts_under(dir: &Path) {
    let dir = fs::canonicalize(dir).expect("canonicalize");
    let info = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    for line in info.lines() {
        let mp = line.split(' ').nth(4).expect("mountinfo field");
        assert!(
            !mp.starts_with(dir.to_str().expect("utf-8 path")),
            "left mounted: {line}"
        );
    }
}

#[test]
fn tmpfs_volume_enforces_size_and_unmounts() {
    if !have_root() {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let (store, _db) = open(t.path());
    let v = store
        .create(
            Some("tmpfs-vol"),
            None,
            opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]),
            BTreeMap::new(),
        )
        .expect("create");
    let _guard = MountGuard(vec![v.mountpoint.clone()]);
    let path = store.mount("tmpfs-vol", "ctr-1").expect("mount");
    assert_eq!(path, v.mountpoint);
    assert!(is_mountpoint(&path).expect("mountinfo"));
    // A second ref does not stack a second tmpfs.
    store.mount("tmpfs-vol", "ctr-2").expect("mount again");
    let info = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let canonical = fs::canonicalize(&path).expect("canonicalize");
    let count = info
        .lines()
        .filter(|l| l.split(' ').nth(4) == canonical.to_str())
        .count();
    assert_eq!(count, 1);

    let mut f = fs::File::create(path.join("big")).expect("create file");
    let chunk = vec![7u8; 64 * 1024];
    let mut err = None;
    for _ in 0..32 {
        if let Err(e) = f.write_all(&chunk) {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("writing 2 MB into a 1 MB tmpfs must fail");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    drop(f);
    assert!(store.usage("tmpfs-vol").expect("usage") <= 1 << 20);

    store.unmount("tmpfs-vol", "ctr-1").expect("unmount 1");
    assert!(is_mountpoint(&path).expect("mountinfo"));
    store.unmount("tmpfs-vol", "ctr-2").expect("unmount 2");
    assert!(!is_mountpoint(&path).expect("mountinfo"));
    // The tmpfs content went with the mount; the directory underneath is empty.
    assert_eq!(fs::read_dir(&path).expect("read").count(), 0);
    store.remove("tmpfs-vol", &[], false).expect("remove");
    assert_no_mounts_under(t.path());
}

#[test]
fn bind_volume_shares_host_dir_and_removal_spares_it() {
    if !have_root() {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let host = t.path().join("host-dir");
    fs::create_dir(&host).expect("mkdir");
    fs::write(host.join("precious"), b"keep me").expect("write");
    let root = t.path().join("root");
    let (store, db) = open(&root);
    let v = store
        .create(
            Some("bind-vol"),
            None,
            opts(&[
                ("type", "none"),
                ("o", "bind"),
                ("device", host.to_str().expect("utf-8")),
            ]),
            BTreeMap::new(),
        )
        .expect("create");
    let _guard = MountGuard(vec![v.mountpoint.clone()]);
    let path = store.mount("bind-vol", "c1").expect("mount");
    assert_eq!(
        fs::read(path.join("precious")).expect("read through volume"),
        b"keep me"
    );
    fs::write(path.join("from-container"), b"hi").expect("write through volume");
    assert_eq!(
        fs::read(host.join("from-container")).expect("read on host"),
        b"hi"
    );
    assert_eq!(
        store.remove("bind-vol", &[], false).unwrap_err().kind(),
        ErrorKind::Conflict
    );

    // The daemon "restarts" with the volume still mounted, then the volume is removed:
    // it must be unmounted first and the host directory left alone.
    drop(store);
    drop(db);
    let (store, _db) = open(&root);
    assert!(is_mountpoint(&path).expect("mountinfo"));
    store.remove("bind-vol", &[], false).expect("remove");
    assert!(!root.join("volumes/bind-vol").exists());
    assert_eq!(
        fs::read(host.join("precious")).expect("host file survives"),
        b"keep me"
    );
    assert!(host.join("from-container").exists());
    assert_no_mounts_under(t.path());
}

#[test]
fn copy_up_preserves_metadata() {
    if !have_root() {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("image-srv");
    fs::create_dir_all(src.join("conf")).expect("mkdir");
    fs::write(src.join("conf/app.conf"), b"port=80\n").expect("write");
    rustix::fs::chownat(
        rustix::fs::CWD,
        src.join("conf/app.conf"),
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(5678)),
        rustix::fs::AtFlags::empty(),
    )
    .expect("chown");
    fs::set_permissions(
        src.join("conf/app.conf"),
        fs::Permissions::from_mode(0o4751),
    )
    .expect("chmod");
    rustix::fs::chownat(
        rustix::fs::CWD,
        &src,
        Some(rustix::fs::Uid::from_raw(33)),
        Some(rustix::fs::Gid::from_raw(33)),
        rustix::fs::AtFlags::empty(),
    )
    .expect("chown root");
    fs::set_permissions(&src, fs::Permissions::from_mode(0o2770)).expect("chmod root");
    std::os::unix::fs::symlink("/etc/hostname", src.join("abs-link")).expect("symlink");
    rustix::fs::chownat(
        rustix::fs::CWD,
        src.join("abs-link"),
        Some(rustix::fs::Uid::from_raw(99)),
        Some(rustix::fs::Gid::from_raw(98)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("lchown");
    fs::hard_link(src.join("conf/app.conf"), src.join("hardlink")).expect("link");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .expect("mknod");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let xattr_ok = xattr::set(src.join("conf/app.conf"), "user.berth", b"v1").is_ok();

    let t2 = tempfile::tempdir().expect("tempdir");
    let (store, _db) = open(t2.path());
    let v = store
        .create(Some("copy-vol"), None, BTreeMap::new(), BTreeMap::new())
        .expect("create");
    copy_up(&src, &v.mountpoint).expect("copy up");
    let dst = &v.mountpoint;

    let m = fs::metadata(dst.join("conf/app.conf")).expect("stat");
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    assert_eq!(m.mode() & 0o7777, 0o4751, "setuid survives the chown");
    let root_meta = fs::metadata(dst).expect("stat root");
    assert_eq!((root_meta.uid(), root_meta.gid()), (33, 33));
    assert_eq!(root_meta.mode() & 0o7777, 0o2770);
    let l = fs::symlink_metadata(dst.join("abs-link")).expect("lstat");
    assert!(l.file_type().is_symlink());
    assert_eq!((l.uid(), l.gid()), (99, 98));
    assert_eq!(
        fs::read_link(dst.join("abs-link")).expect("readlink"),
        Path::new("/etc/hostname")
    );
    assert_eq!(
        fs::metadata(dst.join("hardlink")).expect("stat").ino(),
        m.ino()
    );
    let n = fs::symlink_metadata(dst.join("null")).expect("lstat");
    assert_eq!(n.mode() & libc::S_IFMT, libc::S_IFCHR);
    assert_eq!(n.rdev(), rustix::fs::makedev(1, 3));
    let fifo = fs::symlink_metadata(dst.join("fifo")).expect("lstat");
    assert_eq!(fifo.mode() & libc::S_IFMT, libc::S_IFIFO);
    if xattr_ok {
        assert_eq!(
            xattr::get(dst.join("conf/app.conf"), "user.berth").expect("getxattr"),
            Some(b"v1".to_vec())
        );
    }
    // Usage: the two names of one inode count once; symlink and nodes by their lstat size.
    let link_len = "/etc/hostname".len() as u64;
    assert_eq!(store.usage("copy-vol").expect("usage"), 8 + link_len);

    // A second copy-up into a non-empty volume changes nothing.
    fs::write(src.join("late"), b"x").expect("write");
    copy_up(&src, dst).expect("copy up again");
    assert!(!dst.join("late").exists());
    store.remove("copy-vol", &[], false).expect("remove");
}

#[test]
fn store_persists_across_reopen() {
    if !have_root() {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let (store, db) = open(t.path());
    let named = store
        .create(
            Some("persist-me"),
            None,
            opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=2m")]),
            opts(&[("team", "a")]),
        )
        .expect("create");
    let anon = store
        .create(None, None, BTreeMap::new(), BTreeMap::new())
        .expect("create anonymous");
    fs::write(anon.mountpoint.join("data"), vec![1u8; 4096]).expect("write");
    drop(store);
    drop(db);

    let (store, _db) = open(t.path());
    let again = store.get("persist-me").expect("get after reopen");
    assert_eq!(again, named);
    let a = store.get(&anon.name).expect("anonymous after reopen");
    assert!(a.anonymous);
    assert_eq!(store.usage(&anon.name).expect("usage"), 4096);
    assert_eq!(store.list().expect("list").len(), 2);

    let (removed, bytes) = store
        .prune(&HashSet::new(), false, &[])
        .expect("prune anonymous");
    assert_eq!(removed, vec![anon.name.clone()]);
    assert_eq!(bytes, 4096);
    // A volume with driver options survives even `prune --all`, as in dockerd.
    let (removed, _) = store.prune(&HashSet::new(), true, &[]).expect("prune all");
    assert!(removed.is_empty(), "{removed:?}");
    store
        .remove("persist-me", &[], false)
        .expect("remove by name");
    assert_eq!(
        fs::read_dir(t.path().join("volumes"))
            .expect("read")
            .count(),
        0
    );
    assert_no_mounts_under(t.path());
}
