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
    // The image's layers under the shared init layer with the /etc mount points.
    assert_eq!(&rw.lowers[1..], ts.store.image_lowers(&img.id).unwrap());
    assert!(rw.lowers[0].ends_with("fs") && rw.lowers[0].to_string_lossy().contains("/init/"));
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
    for f in berth_image::snapshot::INIT_FILES {
        assert!(
            target.join(f).is_file(),
            "mount point {f} in the merged view"
        );
    }
    // mounting again (a daemon restart with a live container) does not stack a mount
    ts.store.mount_rw_layer(key, &target).unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let t = target.to_str().unwrap();
    assert_eq!(
        mounts
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some(t))
            .count(),
        1
    );
    std::fs::write(target.join("tmp/hello"), b"hello world").unwrap();
    std::fs::remove_file(target.join("etc/passwd")).unwrap();
    assert_eq!(
        std::fs::read(rw.upper.join("tmp/hello")).unwrap(),
        b"hello world"
    );
    // the image's snapshot is untouched by the container's writes
    assert!(rw.lowers[1].join("etc/passwd").exists());
    assert!(ts.store.rw_layer_size(key).unwrap() >= 11);

    // the image cannot lose its snapshot while a container stands on it
    ts.store.delete(&img.id).unwrap();
    assert!(rw.lowers[1].join("bin/busybox").exists());
    assert!(
        rw.lowers[0].join("etc/hosts").exists(),
        "nor its init layer"
    );

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
    assert_eq!(
        rw.lowers.len(),
        N + 1,
        "the image's layers and the init layer"
    );
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
    // f0..f599 but the two whited out, `top`, and the init layer's `etc`.
    assert_eq!(visible, N - 2 + 1 + 1);
    std::fs::write(target.join("written"), b"w").unwrap();
    assert!(rw.upper.join("written").exists());
    ts.store.unmount_rw_layer(&target).unwrap();
    assert!(!is_mountpoint(&target));
    ts.store.remove_rw_layer("deep-c").unwrap();
}

#[test]
fn commit_a_container_layer_into_a_new_image() {
    use std::os::unix::fs::MetadataExt;
    let ts = new_store();
    let tar = busybox_rootfs();
    let base = ts
        .store
        .import(
            &mut &tar[..],
            ImportOptions {
                reference: Some(berth_image::Reference::parse("base:1").unwrap()),
                ..ImportOptions::default()
            },
        )
        .unwrap();
    ts.store
        .create_rw_layer("commit-c", Some(&base.id))
        .unwrap();
    let target = ts.root().join("commit-root");
    ts.store.mount_rw_layer("commit-c", &target).unwrap();
    let guard = MountGuard(target.clone());
    std::fs::write(target.join("tmp/new"), b"fresh").unwrap();
    std::fs::write(target.join("tmp/a"), b"linked").unwrap();
    std::fs::hard_link(target.join("tmp/a"), target.join("tmp/b")).unwrap();
    // removing and recreating a directory makes overlay mark it opaque
    std::fs::remove_dir_all(target.join("etc")).unwrap();
    std::fs::create_dir(target.join("etc")).unwrap();
    std::fs::write(target.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    std::fs::remove_file(target.join("bin/ls")).unwrap();
    ts.store.unmount_rw_layer(&target).unwrap();
    drop(guard);

    let img = ts
        .store
        .commit_rw_layer(
            "commit-c",
            berth_image::CommitOptions {
                reference: Some(berth_image::Reference::parse("committed:1").unwrap()),
                changes: vec![r#"CMD ["/bin/true"]"#.to_string()],
                message: Some("msg".to_string()),
                created_by: Some("sh".to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(img.layers.len(), 2);
    assert_eq!(img.layers[0], base.layers[0]);
    assert_eq!(img.parent, base.id);
    assert_eq!(
        img.config.config.cmd.as_deref(),
        Some(&["/bin/true".to_string()][..])
    );
    let hist = ts.store.history("committed:1").unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(
        (
            hist[0].id.as_str(),
            hist[0].created_by.as_str(),
            hist[0].comment.as_str()
        ),
        (img.id.as_str(), "sh", "msg")
    );
    assert_eq!(hist[1].id, "<missing>");

    // the committed layer, exported and reloaded elsewhere, gives the same view
    let mut saved = Vec::new();
    ts.store
        .save(&["committed:1".to_string()], &mut saved)
        .unwrap();
    let fresh = new_store();
    assert_eq!(fresh.store.load(&mut &saved[..]).unwrap()[0].id, img.id);
    fresh
        .store
        .create_rw_layer("commit-d", Some("committed:1"))
        .unwrap();
    let t2 = fresh.root().join("reloaded");
    fresh.store.mount_rw_layer("commit-d", &t2).unwrap();
    let _g = MountGuard(t2.clone());
    assert_eq!(std::fs::read(t2.join("tmp/new")).unwrap(), b"fresh");
    assert_eq!(
        std::fs::metadata(t2.join("tmp/a")).unwrap().ino(),
        std::fs::metadata(t2.join("tmp/b")).unwrap().ino()
    );
    assert!(
        !t2.join("etc/passwd").exists(),
        "opaque etc must hide the base's files"
    );
    assert!(t2.join("etc/hosts").exists());
    assert!(!t2.join("bin/ls").exists());
    assert!(t2.join("bin/sh").exists());
    fresh.store.unmount_rw_layer(&t2).unwrap();
}

#[test]
fn volatile_rw_layer_is_volatile_and_mounts_again_after_a_clean_unmount() {
    let ts = new_store();
    let rw = ts.store.create_rw_layer("volatile-1", None).unwrap();
    let target = ts.root().join("volatile-root");
    ts.store
        .mount_rw_layer_volatile("volatile-1", &target)
        .unwrap();
    let guard = MountGuard(target.clone());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let t = target.to_str().unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(t))
        .expect("mounted");
    assert!(line.contains("volatile"), "{line}");
    std::fs::write(target.join("f"), b"kept").unwrap();
    ts.store.unmount_rw_layer(&target).unwrap();
    drop(guard);
    // the kernel's marker from the first mount must not make the second one fail
    assert!(rw.work.join("work/incompat/volatile").exists());
    ts.store
        .mount_rw_layer_volatile("volatile-1", &target)
        .unwrap();
    let _g = MountGuard(target.clone());
    assert_eq!(std::fs::read(target.join("f")).unwrap(), b"kept");
    ts.store.unmount_rw_layer(&target).unwrap();
    ts.store.remove_rw_layer("volatile-1").unwrap();
}
