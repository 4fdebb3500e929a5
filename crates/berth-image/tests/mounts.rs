//! Container layers: overlay mounts through the new mount API, including stacks deeper
//! than overlayfs' 500-lower limit. Runs as root.

mod common;

use berth_image::{ErrorKind, ImportOptions};
use common::*;

#[test]
fn mount_rw_layer_and_write_into_it() {
    let ts = new_store();
    let tar = busybox_rootfs();
    let img = ts
        .store
        .import(&mut &tar[..], ImportOptions::default())
        .unwrap();
    let key = "c0ffee-mount";
    let rw = ts.store.create_rw_layer(key, Some(&img.id[7..19])).unwrap();
    assert_eq!(rw.lowers, ts.store.image_lowers(&img.id).unwrap());
    assert_eq!(
        ts.store
            .create_rw_layer(key, Some(&img.id))
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        ts.store
            .create_rw_layer("x", Some("missing"))
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    let target = ts.root().join("containers/c/rootfs");
    ts.store.mount_rw_layer(key, &target).unwrap();
    let guard = MountGuard(target.clone());
    assert!(is_mountpoint(&target));
    assert!(target.join("bin/busybox").exists());
    std::fs::write(target.join("tmp/hello"), b"hello world").unwrap();
    std::fs::remove_file(target.join("etc/passwd")).unwrap();
    assert_eq!(
        std::fs::read(rw.upper.join("tmp/hello")).unwrap(),
        b"hello world"
    );
    // the image's snapshot is untouched by the container's writes
    assert!(rw.lowers[0].join("etc/passwd").exists());
    assert!(ts.store.rw_layer_size(key).unwrap() >= 11);

    // the image cannot lose its snapshot while a container stands on it
    ts.store.delete(&img.id).unwrap();
    assert!(rw.lowers[0].join("bin/busybox").exists());

    ts.store.unmount_rw_layer(&target).unwrap();
    assert!(!is_mountpoint(&target));
    ts.store.unmount_rw_layer(&target).unwrap(); // idempotent
    drop(guard);
    // remounting still works from the persisted layer description
    ts.store.mount_rw_layer(key, &target).unwrap();
    let _g = MountGuard(target.clone());
    assert_eq!(
        std::fs::read(target.join("tmp/hello")).unwrap(),
        b"hello world"
    );
    assert!(!target.join("etc/passwd").exists());
    ts.store.unmount_rw_layer(&target).unwrap();
    ts.store.remove_rw_layer(key).unwrap();
    ts.store.remove_rw_layer(key).unwrap();
    assert!(!rw.upper.exists());
}

#[test]
fn scratch_rw_layer_mounts_over_an_empty_lower() {
    let ts = new_store();
    let rw = ts.store.create_rw_layer("scratch-1", None).unwrap();
    assert_eq!(rw.lowers.len(), 1);
    let target = ts.root().join("scratch-root");
    ts.store.mount_rw_layer("scratch-1", &target).unwrap();
    let _g = MountGuard(target.clone());
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    std::fs::write(target.join("f"), b"x").unwrap();
    assert!(rw.upper.join("f").exists());
    ts.store.unmount_rw_layer(&target).unwrap();
    ts.store.remove_rw_layer("scratch-1").unwrap();
}

#[test]
fn six_hundred_lower_layers_mount() {
    const N: usize = 600;
    let ts = new_store();
    let mut layers = Vec::with_capacity(N);
    for i in 0..N {
        let name = format!("f{i}");
        let content = format!("{i}");
        let mut entries = vec![
            E::File(&name, content.as_bytes()),
            E::File("top", content.as_bytes()),
        ];
        // a whiteout in a top-chunk layer must hide a file from the bottom chunk, and one
        // inside the bottom chunk must hide a file beneath it
        if i == 550 {
            entries.push(E::File(".wh.f10", b""));
        }
        if i == 5 {
            entries.push(E::File(".wh.f2", b""));
        }
        layers.push(layer(&entries));
    }
    let (archive, id) = docker_archive(&layers, &["deep:600"]);
    ts.store.load(&mut &archive[..]).unwrap();
    let rw = ts.store.create_rw_layer("deep-c", Some(&id)).unwrap();
    assert_eq!(rw.lowers.len(), N);
    let target = ts.root().join("deep-root");
    ts.store.mount_rw_layer("deep-c", &target).unwrap();
    let _g = MountGuard(target.clone());
    assert_eq!(std::fs::read_to_string(target.join("top")).unwrap(), "599");
    assert_eq!(std::fs::read_to_string(target.join("f0")).unwrap(), "0");
    assert_eq!(std::fs::read_to_string(target.join("f100")).unwrap(), "100");
    assert_eq!(std::fs::read_to_string(target.join("f599")).unwrap(), "599");
    assert!(
        !target.join("f10").exists(),
        "whiteout from layer 550 must hide f10"
    );
    assert!(
        !target.join("f2").exists(),
        "whiteout from layer 5 must hide f2"
    );
    let visible = std::fs::read_dir(&target).unwrap().count();
    assert_eq!(visible, N - 2 + 1);
    std::fs::write(target.join("written"), b"w").unwrap();
    assert!(rw.upper.join("written").exists());
    ts.store.unmount_rw_layer(&target).unwrap();
    assert!(!is_mountpoint(&target));
    ts.store.remove_rw_layer("deep-c").unwrap();
}
