//! Helpers shared by the integration tests: a store in a temp dir, layer tars built
//! entry by entry (raw headers, so hostile paths can be written), archives, and a mount
//! guard that unmounts even when an assertion fails.

#![allow(dead_code)]

use berth_image::ImageStore;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: ImageStore,
}

impl TestStore {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

pub fn new_store() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = redb::Database::create(dir.path().join("berth.redb")).expect("redb");
    let store = ImageStore::open(dir.path(), Arc::new(db)).expect("open store");
    TestStore { dir, store }
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// One tar entry, with any path (even hostile ones).
pub enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Mode(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str),
}

fn raw_header(
    path: &str,
    kind: tar::EntryType,
    mode: u32,
    size: u64,
    link: Option<&str>,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

pub fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (h, data): (tar::Header, &[u8]) = match e {
            E::Dir(p) => (
                raw_header(p, tar::EntryType::Directory, 0o755, 0, None),
                &[],
            ),
            E::File(p, d) => (
                raw_header(p, tar::EntryType::Regular, 0o644, d.len() as u64, None),
                d,
            ),
            E::Mode(p, d, m) => (
                raw_header(p, tar::EntryType::Regular, *m, d.len() as u64, None),
                d,
            ),
            E::Symlink(p, t) => (
                raw_header(p, tar::EntryType::Symlink, 0o777, 0, Some(t)),
                &[],
            ),
            E::Hardlink(p, t) => (raw_header(p, tar::EntryType::Link, 0o644, 0, Some(t)), &[]),
            E::Fifo(p) => (raw_header(p, tar::EntryType::Fifo, 0o600, 0, None), &[]),
        };
        b.append(&h, data).expect("append");
    }
    b.into_inner().expect("finish tar")
}

/// A busybox rootfs tar: bin/busybox from the host plus applet symlinks.
pub fn busybox_rootfs() -> Vec<u8> {
    let bb =
        std::fs::read("/usr/bin/busybox").expect("busybox-static is installed at /usr/bin/busybox");
    let mut entries = vec![
        E::Dir("bin/"),
        E::Mode("bin/busybox", &bb, 0o755),
        E::Dir("etc/"),
        E::File("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        E::Dir("tmp/"),
    ];
    for applet in ["sh", "ls", "cat", "echo", "true"] {
        entries.push(E::Symlink(
            Box::leak(format!("bin/{applet}").into_boxed_str()),
            "busybox",
        ));
    }
    layer(&entries)
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, path, data).expect("append");
}

/// A docker-archive (legacy per-layer dirs) with the given layers and tags.
/// Returns the archive and the image id.
pub fn docker_archive(layers: &[Vec<u8>], tags: &[&str]) -> (Vec<u8>, String) {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let mut history: Vec<serde_json::Value> = (0..layers.len())
        .map(|i| serde_json::json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("layer {i}")}))
        .collect();
    history.push(serde_json::json!({"created": "2024-01-01T00:00:00Z", "created_by": "CMD [\"/bin/sh\"]", "empty_layer": true}));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    let config = serde_json::to_vec(&config).expect("config json");
    let id = sha256(&config);
    let mut b = tar::Builder::new(Vec::new());
    let mut paths = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let p = format!("{i:04}/layer.tar");
        add_file(&mut b, &p, l);
        paths.push(p);
    }
    let config_name = format!("{}.json", &id[7..]);
    add_file(&mut b, &config_name, &config);
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": tags, "Layers": paths}]);
    add_file(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("json"),
    );
    (b.into_inner().expect("finish"), id)
}

/// Unmounts on drop so a failed assertion does not leave a mount behind.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

pub fn is_mountpoint(p: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let p = p.to_str().expect("utf8");
    mounts.lines().any(|l| l.split(' ').nth(4) == Some(p))
}
