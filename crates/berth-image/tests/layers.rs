//! Layer apply against the real kernel: whiteouts become overlayfs whiteouts and are
//! honoured through a mount, hostile paths are refused, metadata is kept. Runs as root.

mod common;

use berth_image::ErrorKind;
use common::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

#[test]
fn whiteouts_across_two_layers_via_load() {
    let ts = new_store();
    let bottom = layer(&[
        E::Dir("a/"),
        E::File("a/gone", b"1"),
        E::File("a/kept", b"2"),
        E::Dir("d/"),
        E::File("d/old", b"3"),
        E::Dir("d/sub/"),
        E::File("d/sub/deep", b"4"),
    ]);
    let top = layer(&[
        E::Dir("a/"),
        E::File("a/.wh.gone", b""),
        E::Dir("d/"),
        E::File("d/.wh..wh..opq", b""),
        E::File("d/new", b"5"),
        E::File(".wh..wh.plnk", b""),
    ]);
    let (archive, id) = docker_archive(&[bottom, top], &["wh:test"]);
    ts.store.load(&mut &archive[..]).unwrap();
    let lowers = ts.store.image_lowers("wh:test").unwrap();
    assert_eq!(lowers.len(), 2);

    // in the top snapshot: a 0/0 char device and an opaque directory
    let wh = std::fs::symlink_metadata(lowers[0].join("a/gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    let mut buf = [0u8; 8];
    let n =
        rustix::fs::lgetxattr(lowers[0].join("d"), "trusted.overlay.opaque", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(!lowers[0].join(".wh..wh.plnk").exists());
    assert!(!lowers[0].join("a/.wh.gone").exists());

    // and through the overlay the deleted files are gone
    ts.store.create_rw_layer("wh-c1", Some(&id)).unwrap();
    let target = ts.root().join("merged");
    ts.store.mount_rw_layer("wh-c1", &target).unwrap();
    let _g = MountGuard(target.clone());
    assert!(!target.join("a/gone").exists());
    assert_eq!(std::fs::read(target.join("a/kept")).unwrap(), b"2");
    assert!(!target.join("d/old").exists());
    assert!(!target.join("d/sub").exists());
    assert_eq!(std::fs::read(target.join("d/new")).unwrap(), b"5");
    ts.store.unmount_rw_layer(&target).unwrap();
    ts.store.remove_rw_layer("wh-c1").unwrap();
}

#[test]
fn keeps_metadata_hardlinks_symlinks_and_xattrs() {
    let ts = new_store();
    // pax headers carry a uid, a sub-second mtime and an xattr
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("uid", &b"4242"[..]),
        ("gid", &b"4343"[..]),
        ("mtime", &b"1600000000.5"[..]),
        ("SCHILY.xattr.user.berth", &b"yes"[..]),
    ])
    .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(4);
    h.set_mode(0o4750);
    h.set_cksum();
    b.append_data(&mut h, "suid", &b"data"[..]).unwrap();
    let mut tail = layer(&[
        E::Hardlink("hard", "suid"),
        E::Symlink("abs-link", "/etc/passwd"),
        E::Symlink("rel-link", "../../outside"),
    ]);
    let mut head = b.into_inner().unwrap();
    head.truncate(head.len() - 1024); // drop the end-of-archive blocks before appending
    head.append(&mut tail);
    let (archive, _) = docker_archive(&[head], &["meta:1"]);
    ts.store.load(&mut &archive[..]).unwrap();
    let root = &ts.store.image_lowers("meta:1").unwrap()[0];
    let md = std::fs::symlink_metadata(root.join("suid")).unwrap();
    assert_eq!((md.uid(), md.gid()), (4242, 4343));
    assert_eq!(md.permissions().mode() & 0o7777, 0o4750);
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_600_000_000, 500_000_000));
    assert_eq!(md.nlink(), 2);
    assert_eq!(
        std::fs::symlink_metadata(root.join("hard")).unwrap().ino(),
        md.ino()
    );
    let mut buf = [0u8; 8];
    let n = rustix::fs::lgetxattr(root.join("suid"), "user.berth", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"yes");
    // symlinks are stored as they are, even pointing outside: they are never followed
    assert_eq!(
        std::fs::read_link(root.join("abs-link")).unwrap().to_str(),
        Some("/etc/passwd")
    );
    assert_eq!(
        std::fs::read_link(root.join("rel-link")).unwrap().to_str(),
        Some("../../outside")
    );
}

fn assert_refused(entries: &[E<'_>], entry_name: &str) {
    let ts = new_store();
    let (archive, _) = docker_archive(&[layer(entries)], &["evil:1"]);
    let e = ts.store.load(&mut &archive[..]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(
        e.to_string().contains(entry_name),
        "error {e:?} should name {entry_name}"
    );
    assert_eq!(
        ts.store.get("evil:1").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // nothing was written next to the store, and no half snapshot is left
    assert!(!ts.root().join("evil").exists());
    assert!(!ts.root().join("snapshots/evil").exists());
    let leftovers: Vec<_> = std::fs::read_dir(ts.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "rw")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn layer_with_dot_dot_is_refused() {
    assert_refused(&[E::File("../evil", b"x")], "../evil");
    assert_refused(
        &[E::Dir("a/"), E::File("a/../../evil", b"x")],
        "a/../../evil",
    );
}

#[test]
fn absolute_paths_and_symlink_escapes_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().to_str().unwrap();
    let abs = format!("{out}/evil");
    assert_refused(&[E::File(&abs, b"x")], &abs);
    // a symlink planted in the layer is never followed when creating later entries
    assert_refused(
        &[E::Symlink("link", out), E::File("link/evil", b"x")],
        "link/evil",
    );
    assert_refused(&[E::Symlink("link", "."), E::Dir("link/x/")], "link/x/");
    assert_refused(
        &[E::Symlink("link", out), E::Hardlink("h", "link/target")],
        "h",
    );
    assert!(!outside.path().join("evil").exists());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn diff_id_mismatch_is_refused() {
    let ts = new_store();
    let (mut archive, _) = docker_archive(&[layer(&[E::File("f", b"original")])], &["bad:1"]);
    // flip the file's content inside the archive; the config still names the old diff id
    let pos = archive.windows(8).position(|w| w == b"original").unwrap();
    archive[pos..pos + 8].copy_from_slice(b"tampered");
    let e = ts.store.load(&mut &archive[..]).unwrap_err();
    assert!(e.to_string().contains("diff id"), "{e}");
}
