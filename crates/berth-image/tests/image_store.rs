//! Image store behaviour against a real filesystem: import, lookup, tags, delete,
//! history, prune, save/load round trips and OCI layouts. Runs as root (ownership).

mod common;

use berth_image::{ErrorKind, ImportOptions, Reference};
use common::*;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

fn import_busybox(ts: &TestStore, tag: &str) -> berth_image::Image {
    let tar = busybox_rootfs();
    ts.store
        .import(
            &mut &tar[..],
            ImportOptions {
                reference: Some(Reference::parse(tag).expect("tag")),
                changes: vec![r#"CMD ["/bin/sh"]"#.to_string(), "ENV A=b".to_string()],
                ..ImportOptions::default()
            },
        )
        .expect("import")
}

#[test]
fn import_busybox_and_look_it_up() {
    let ts = new_store();
    let img = import_busybox(&ts, "busybox:latest");
    assert!(img.id.starts_with("sha256:") && img.id.len() == 71);
    assert_eq!(img.repo_tags, vec!["busybox:latest"]);
    assert_eq!(
        img.config.config.cmd.as_deref(),
        Some(&["/bin/sh".to_string()][..])
    );
    assert_eq!(
        img.config.config.env.as_deref(),
        Some(&["A=b".to_string()][..])
    );
    assert_eq!(img.config.os, "linux");
    assert_eq!(img.config.architecture, "amd64");
    assert_eq!(
        img.config.history[0].comment.as_deref(),
        Some("Imported from -")
    );
    assert_eq!(img.layers, img.config.rootfs.diff_ids);
    let bb_len = std::fs::metadata("/usr/bin/busybox").unwrap().len();
    assert!(img.size >= bb_len, "size {} < busybox {bb_len}", img.size);

    let hex = &img.id[7..];
    for name in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        &img.id,
        hex,
        &hex[..12],
        &hex[..1],
        &format!("sha256:{}", &hex[..10]),
    ] {
        assert_eq!(
            ts.store
                .get(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .id,
            img.id,
            "{name}"
        );
    }
    for missing in ["nope", "busybox:other", "Busybox", "ffffffffffff"] {
        let e = ts.store.get(missing).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), format!("No such image: {missing}"));
    }

    // the snapshot holds the files with their modes and symlinks
    let lowers = ts.store.image_lowers(&img.id).unwrap();
    assert_eq!(lowers.len(), 1);
    let bb = lowers[0].join("bin/busybox");
    let md = std::fs::symlink_metadata(&bb).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o755);
    assert_eq!(md.len(), bb_len);
    assert_eq!(md.mtime(), 1_700_000_000);
    assert_eq!(
        std::fs::read_link(lowers[0].join("bin/sh"))
            .unwrap()
            .to_str(),
        Some("busybox")
    );
    // the layer blob is the plain tar, digest = diff id
    let rec = ts.store.image_record(&img.id).unwrap();
    assert_eq!(rec.layers[0].blob, rec.layers[0].diff_id);
    assert!(ts.store.content().exists(&rec.layers[0].blob));
    assert_eq!(ts.store.list().unwrap().len(), 1);

    let hist = ts.store.history("busybox").unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].id, img.id);
    assert_eq!(hist[0].tags, vec!["busybox:latest"]);
    assert_eq!(hist[0].comment, "Imported from -");
    assert!(hist[0].size >= bb_len);
}

#[test]
fn import_detects_gzip_and_zstd() {
    let ts = new_store();
    let tar = layer(&[E::Dir("d/"), E::File("d/f", b"hello")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zs = zstd::encode_all(&tar[..], 3).unwrap();
    let mut ids = HashSet::new();
    for (i, input) in [tar.clone(), gz, zs].iter().enumerate() {
        let img = ts
            .store
            .import(
                &mut &input[..],
                ImportOptions {
                    message: Some(format!("m{i}")),
                    ..Default::default()
                },
            )
            .expect("import");
        // same content, same diff id whatever the compression
        assert_eq!(img.layers, vec![sha256(&tar)]);
        assert_eq!(
            img.config.comment.as_deref(),
            Some(format!("m{i}").as_str())
        );
        assert!(img.repo_tags.is_empty());
        ids.insert(img.id);
    }
    assert_eq!(ids.len(), 3);
    let e = ts
        .store
        .import(
            &mut &tar[..],
            ImportOptions {
                changes: vec!["RUN x".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("RUN"), "{e}");
}

#[test]
fn tag_untag_delete_and_prune() {
    let ts = new_store();
    let img = import_busybox(&ts, "busybox:latest");
    let other = Reference::parse("myreg:5000/team/app:v1").unwrap();
    ts.store.tag(&img.id[7..19], &other).unwrap();
    let mut tags = ts.store.get("busybox").unwrap().repo_tags;
    tags.sort();
    assert_eq!(tags, vec!["busybox:latest", "myreg:5000/team/app:v1"]);
    assert_eq!(ts.store.get("myreg:5000/team/app:v1").unwrap().id, img.id);
    assert_eq!(
        ts.store.tag("missing", &other).unwrap_err().to_string(),
        "No such image: missing"
    );

    let untagged = ts
        .store
        .untag(&Reference::parse("busybox").unwrap())
        .unwrap();
    assert_eq!(untagged.id, img.id);
    assert_eq!(untagged.repo_tags, vec!["myreg:5000/team/app:v1"]);
    assert_eq!(
        ts.store.get("busybox").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        ts.store
            .untag(&Reference::parse("busybox").unwrap())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    // a second image sharing the layer: deleting one keeps the shared snapshot
    let tar = busybox_rootfs();
    let img2 = ts
        .store
        .import(
            &mut &tar[..],
            ImportOptions {
                message: Some("second".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_ne!(img2.id, img.id);
    assert_eq!(img2.layers, img.layers);
    let lower = ts.store.image_lowers(&img.id).unwrap()[0].clone();
    let deleted = ts.store.delete(&img.id).unwrap();
    assert_eq!(deleted, vec![img.id.clone()]);
    assert!(lower.exists(), "shared snapshot must survive");
    assert_eq!(
        ts.store.get(&img.id).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        ts.store.get("myreg:5000/team/app:v1").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(!ts.store.content().exists(&img.id));

    // img2 is dangling (untagged): prune removes it, unless in use
    let in_use: HashSet<String> = [img2.id.clone()].into();
    assert!(ts.store.prune_dangling(&in_use).unwrap().0.is_empty());
    let (pruned, bytes) = ts.store.prune_dangling(&HashSet::new()).unwrap();
    assert_eq!(pruned[0], img2.id);
    assert_eq!(pruned[1], img2.layers[0]); // one layer: chain id = diff id
    assert!(bytes > 0);
    assert!(!lower.exists());
    assert!(!ts.store.content().exists(&img2.layers[0]));
    assert!(ts.store.list().unwrap().is_empty());
}

#[test]
fn moving_a_tag_leaves_the_old_image_dangling() {
    let ts = new_store();
    let a = import_busybox(&ts, "app:1");
    let (archive, id_b) = docker_archive(&[layer(&[E::File("x", b"x")])], &["app:1"]);
    let loaded = ts.store.load(&mut &archive[..]).unwrap();
    assert_eq!(loaded[0].id, id_b);
    assert_eq!(loaded[0].tags, vec!["app:1"]);
    assert_eq!(ts.store.get("app:1").unwrap().id, id_b);
    assert!(ts.store.get(&a.id).unwrap().repo_tags.is_empty());
}

#[test]
fn save_then_load_into_a_fresh_store_keeps_the_id() {
    let ts = new_store();
    let img = import_busybox(&ts, "busybox:latest");
    ts.store
        .tag(&img.id, &Reference::parse("busybox:1.36").unwrap())
        .unwrap();
    let (archive, id2) = docker_archive(
        &[layer(&[E::File("a", b"1")]), layer(&[E::File("b", b"2")])],
        &["two:layers"],
    );
    ts.store.load(&mut &archive[..]).unwrap();

    let mut out = Vec::new();
    ts.store
        .save(&["busybox".to_string(), "two:layers".to_string()], &mut out)
        .unwrap();

    // the archive is both a docker-archive and an OCI layout
    let mut names = HashSet::new();
    let mut index = None;
    let mut manifest = None;
    let mut ar = tar::Archive::new(&out[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name == "index.json" || name == "manifest.json" {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            if name == "index.json" {
                index = Some(v)
            } else {
                manifest = Some(v)
            }
        }
        names.insert(name);
    }
    for n in ["oci-layout", "index.json", "manifest.json", "repositories"] {
        assert!(names.contains(n), "{n} missing from {names:?}");
    }
    assert!(names.contains(&format!("blobs/sha256/{}", &img.id[7..])));
    assert!(names.contains(&format!("blobs/sha256/{}", &img.layers[0][7..])));
    let index = index.unwrap();
    let anns: HashSet<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["io.containerd.image.name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: HashSet<String> = [
        "docker.io/library/busybox:latest",
        "docker.io/library/busybox:1.36",
        "docker.io/library/two:layers",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(anns, want);
    let manifest = manifest.unwrap();
    assert_eq!(manifest.as_array().unwrap().len(), 2);

    // deterministic output
    let mut again = Vec::new();
    ts.store
        .save(
            &["busybox".to_string(), "two:layers".to_string()],
            &mut again,
        )
        .unwrap();
    assert_eq!(out, again);

    let fresh = new_store();
    let loaded = fresh.store.load(&mut &out[..]).unwrap();
    let ids: HashSet<String> = loaded.iter().map(|l| l.id.clone()).collect();
    assert_eq!(ids, [img.id.clone(), id2.clone()].into());
    let got = fresh.store.get("busybox:1.36").unwrap();
    assert_eq!(got.id, img.id);
    assert_eq!(got.layers, img.layers);
    assert_eq!(fresh.store.get("two:layers").unwrap().id, id2);
    let lower = fresh.store.image_lowers("busybox").unwrap();
    assert!(lower[0].join("bin/busybox").exists());

    // saving by id carries no tag
    let mut by_id = Vec::new();
    fresh
        .store
        .save(&[img.id[7..19].to_string()], &mut by_id)
        .unwrap();
    let third = new_store();
    let loaded = third.store.load(&mut &by_id[..]).unwrap();
    assert_eq!(
        loaded,
        vec![berth_image::LoadedImage {
            id: img.id.clone(),
            tags: vec![]
        }]
    );
    assert_eq!(
        third
            .store
            .save(&["nope".to_string()], &mut Vec::new())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

fn oci_blob(b: &mut tar::Builder<Vec<u8>>, data: &[u8]) -> String {
    let d = sha256(data);
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, format!("blobs/sha256/{}", &d[7..]), data)
        .unwrap();
    d
}

#[test]
fn load_a_hand_built_oci_layout() {
    let plain = layer(&[
        E::Dir("etc/"),
        E::File("etc/os-release", b"ID=handmade\n"),
        E::Fifo("pipe"),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&plain)]},
    }))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let layer_digest = oci_blob(&mut b, &gz);
    let config_digest = oci_blob(&mut b, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": gz.len()}],
    }))
    .unwrap();
    let manifest_digest = oci_blob(&mut b, &manifest);
    // an index inside the index, as buildx writes for multi-platform images
    let inner = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": manifest.len(), "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    let inner_digest = oci_blob(&mut b, &inner);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len(),
             "annotations": {"io.containerd.image.name": "example.com/hand/made:v2", "org.opencontainers.image.ref.name": "v2"}},
            {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": inner_digest, "size": inner.len(),
             "annotations": {"org.opencontainers.image.ref.name": "hand:multi"}},
        ],
    }))
    .unwrap();
    for (name, data) in [
        ("index.json", &index[..]),
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    let archive = b.into_inner().unwrap();

    let ts = new_store();
    let loaded = ts.store.load(&mut &archive[..]).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].id, config_digest);
    assert_eq!(loaded[0].tags, vec!["example.com/hand/made:v2"]);
    assert_eq!(loaded[1].tags, vec!["hand:multi"]);
    let img = ts.store.get("example.com/hand/made:v2").unwrap();
    assert_eq!(
        img.config.config.entrypoint.as_deref(),
        Some(&["/bin/true".to_string()][..])
    );
    let rec = ts.store.image_record(&img.id).unwrap();
    assert_eq!(rec.layers[0].blob, layer_digest);
    assert_eq!(
        rec.layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let lower = &ts.store.image_lowers(&img.id).unwrap()[0];
    assert_eq!(
        std::fs::read(lower.join("etc/os-release")).unwrap(),
        b"ID=handmade\n"
    );
    assert!(std::fs::symlink_metadata(lower.join("pipe"))
        .unwrap()
        .file_type()
        .is_fifo());

    // saving a gzip-stored layer writes it uncompressed under its diff id, and loads back
    let mut out = Vec::new();
    ts.store
        .save(&["example.com/hand/made:v2".to_string()], &mut out)
        .unwrap();
    let fresh = new_store();
    let again = fresh.store.load(&mut &out[..]).unwrap();
    assert_eq!(again[0].id, config_digest);
    assert_eq!(
        fresh.store.image_record(&config_digest).unwrap().layers[0].blob,
        sha256(&plain)
    );

    // a blob whose content does not match its name is refused
    let mut bad = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    bad.append_data(
        &mut h,
        format!("blobs/sha256/{}", &layer_digest[7..]),
        &b"bad"[..],
    )
    .unwrap();
    let bad = bad.into_inner().unwrap();
    let e = new_store().store.load(&mut &bad[..]).unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
}

#[test]
fn concurrent_imports_share_one_snapshot() {
    let ts = new_store();
    let tar = std::sync::Arc::new(layer(&[E::Dir("d/"), E::File("d/f", b"shared")]));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let store = ts.store.clone();
            let tar = tar.clone();
            std::thread::spawn(move || {
                store
                    .import(
                        &mut &tar[..],
                        ImportOptions {
                            reference: Some(Reference::parse(&format!("c:{i}")).unwrap()),
                            message: Some(format!("{i}")),
                            ..Default::default()
                        },
                    )
                    .expect("import")
            })
        })
        .collect();
    let imgs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(imgs.iter().all(|i| i.layers == imgs[0].layers));
    let snaps: Vec<_> = std::fs::read_dir(ts.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "rw")
        .collect();
    assert_eq!(snaps, vec![imgs[0].layers[0][7..].to_string()]);
    assert_eq!(
        ts.store
            .images_using_layer_count(&imgs[0].layers[0])
            .unwrap(),
        4
    );
    // deleting them one by one frees the layer only with the last
    for (n, img) in imgs.iter().enumerate() {
        let deleted = ts.store.delete(&img.id).unwrap();
        assert_eq!(deleted.len(), if n == 3 { 2 } else { 1 });
    }
}

#[test]
fn history_skips_sizes_for_empty_layers() {
    let ts = new_store();
    let (archive, id) = docker_archive(
        &[
            layer(&[E::File("a", b"12345")]),
            layer(&[E::File("b", b"1")]),
        ],
        &["h:1"],
    );
    ts.store.load(&mut &archive[..]).unwrap();
    let h = ts.store.history("h:1").unwrap();
    // docker_archive adds a trailing empty-layer CMD entry
    assert_eq!(h.len(), 3);
    assert_eq!(
        (h[0].id.as_str(), h[0].size, h[0].created_by.as_str()),
        (id.as_str(), 0, "CMD [\"/bin/sh\"]")
    );
    assert_eq!(h[0].tags, vec!["h:1"]);
    assert_eq!(
        (h[1].size, h[1].created_by.as_str(), h[1].id.as_str()),
        (1, "layer 1", "<missing>")
    );
    assert_eq!((h[2].size, h[2].created_by.as_str()), (5, "layer 0"));
    assert_eq!(h[2].created, 1_704_067_200);
}

#[test]
fn load_a_pre_1_10_legacy_archive() {
    let base_id = "a".repeat(64);
    let child_id = "b".repeat(64);
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    };
    let base_json = serde_json::json!({"id": base_id, "created": "2015-01-01T00:00:00Z", "os": "linux",
        "architecture": "amd64", "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ADD file"]}, "Size": 5});
    let child_json = serde_json::json!({"id": child_id, "parent": base_id, "created": "2015-01-02T00:00:00Z",
        "os": "linux", "architecture": "amd64", "config": {"Cmd": ["sh"]},
        "container_config": {"Cmd": ["/bin/sh", "-c", "rm /a"]}});
    add(
        &format!("{base_id}/json"),
        &serde_json::to_vec(&base_json).unwrap(),
    );
    add(
        &format!("{base_id}/layer.tar"),
        &layer(&[E::File("a", b"12345"), E::File("keep", b"k")]),
    );
    add(&format!("{base_id}/VERSION"), b"1.0");
    add(
        &format!("{child_id}/json"),
        &serde_json::to_vec(&child_json).unwrap(),
    );
    add(
        &format!("{child_id}/layer.tar"),
        &layer(&[E::File(".wh.a", b"")]),
    );
    add(
        "repositories",
        &serde_json::to_vec(&serde_json::json!({"legacy": {"v1": child_id}})).unwrap(),
    );
    let archive = b.into_inner().unwrap();

    let ts = new_store();
    let loaded = ts.store.load(&mut &archive[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].tags, vec!["legacy:v1"]);
    let img = ts.store.get("legacy:v1").unwrap();
    assert_eq!(img.id, loaded[0].id);
    assert_eq!(img.layers.len(), 2);
    assert_eq!(
        img.config.config.cmd.as_deref(),
        Some(&["sh".to_string()][..])
    );
    assert_eq!(img.config.history.len(), 2);
    assert_eq!(
        img.config.history[1].created_by.as_deref(),
        Some("/bin/sh -c rm /a")
    );
    assert!(img.config.extra.get("id").is_none() && img.config.extra.get("parent").is_none());
    // the base became an image of its own (dangling), as docker does
    assert_eq!(ts.store.list().unwrap().len(), 2);
    let lowers = ts.store.image_lowers("legacy:v1").unwrap();
    assert!(lowers[1].join("a").exists());
    assert!(std::fs::symlink_metadata(lowers[0].join("a"))
        .unwrap()
        .file_type()
        .is_char_device());
}
