//! `docker save` and `docker load` archives.
//!
//! **Save** writes one tar that is both formats at once, as docker 25+ does: an OCI image
//! layout (`oci-layout`, `index.json`, `blobs/sha256/*` with an OCI manifest per image)
//! and a docker-archive (`manifest.json` naming the same blobs, and `repositories`).
//! Layers are written uncompressed under their diff id, so `manifest.json` and the OCI
//! manifests point at the same files and old docker versions load it too. Headers carry
//! mtime 0 so saving the same images twice gives the same bytes.
//!
//! **Load** accepts docker-archives (current and legacy `<id>/layer.tar` layouts, with the
//! symlinks older dockers put in) and OCI layouts. The outer tar is streamed once: files
//! under `blobs/sha256/` go straight into the content store, verified against their
//! names; other files (JSON, legacy layer tars) go to a temp dir. Then `manifest.json` is
//! preferred when present, otherwise `index.json`, otherwise the pre-1.10 layout
//! (`repositories` and `<v1-id>/json` chains). Every path from the archive is checked
//! to stay inside it.

use crate::apply;
use crate::digest::{self, hex_part, is_sha256_digest};
use crate::error::Error;
use crate::reference::Reference;
use crate::store::{id_hex, ImageRecord, ImageStore, LayerSource, LoadedImage, MEDIA_TYPE_LAYER};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A malformed archive given to `load`.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive entry {0:?} escapes the archive")]
    UnsafePath(String),
    #[error("archive has neither manifest.json nor index.json")]
    UnknownFormat,
    #[error("archive member {0:?} not found")]
    MissingMember(String),
    #[error("invalid {what} in archive: {reason}")]
    Invalid { what: String, reason: String },
    #[error("reading archive: {0}")]
    Read(#[source] io::Error),
    #[error("writing archive: {0}")]
    Write(#[source] io::Error),
}

/// One entry of a docker-archive `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
struct Platform {
    architecture: String,
    os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct OciIndex {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Serialize, Deserialize)]
struct OciManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// Where an archive member ended up.
enum Member {
    Blob(String),
    File(PathBuf),
}

/// Removes the load's temp dir however the load ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Normalise an archive path; `None` if it would leave the archive.
fn clean(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

struct Extracted {
    members: HashMap<PathBuf, Member>,
    symlinks: HashMap<PathBuf, PathBuf>,
}

impl Extracted {
    fn resolve(&self, name: &str) -> Result<&Member, ArchiveError> {
        let mut p =
            clean(Path::new(name)).ok_or_else(|| ArchiveError::UnsafePath(name.to_string()))?;
        for _ in 0..16 {
            if let Some(m) = self.members.get(&p) {
                return Ok(m);
            }
            match self.symlinks.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        Err(ArchiveError::MissingMember(name.to_string()))
    }
}

fn extract(store: &ImageStore, archive: &mut dyn Read, tmp: &Path) -> Result<Extracted, Error> {
    let (_, reader) = apply::decompress(archive)?;
    let mut ar = tar::Archive::new(reader);
    let mut members = HashMap::new();
    let mut symlinks = HashMap::new();
    for entry in ar.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        let raw = entry.path().map_err(ArchiveError::Read)?.into_owned();
        let display = raw.display().to_string();
        let path = clean(&raw).ok_or_else(|| ArchiveError::UnsafePath(display.clone()))?;
        if path.as_os_str().is_empty() {
            continue;
        }
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let name = path.to_string_lossy().into_owned();
                let blob_digest = name
                    .strip_prefix("blobs/sha256/")
                    .filter(|h| digest::is_hex64(h))
                    .map(|h| format!("sha256:{h}"));
                if let Some(d) = blob_digest {
                    if !store.content().exists(&d) {
                        let mut w = store.content().writer()?;
                        io::copy(&mut entry, &mut w).map_err(ArchiveError::Read)?;
                        w.commit(Some(&d))?;
                    }
                    members.insert(path, Member::Blob(d));
                } else {
                    let dest = tmp.join(&path);
                    if let Some(parent) = dest.parent() {
                        fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
                    }
                    let mut f =
                        fs::File::create(&dest).map_err(|e| Error::io("create", &dest, e))?;
                    io::copy(&mut entry, &mut f).map_err(ArchiveError::Read)?;
                    members.insert(path, Member::File(dest));
                }
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(ArchiveError::Read)?
                    .ok_or_else(|| ArchiveError::UnsafePath(display.clone()))?
                    .into_owned();
                let joined = if entry.header().entry_type() == tar::EntryType::Symlink {
                    path.parent().unwrap_or(Path::new("")).join(target)
                } else {
                    target
                };
                let t = clean(&joined).ok_or_else(|| ArchiveError::UnsafePath(display.clone()))?;
                symlinks.insert(path, t);
            }
            _ => {}
        }
    }
    Ok(Extracted { members, symlinks })
}

fn read_member(ex: &Extracted, store: &ImageStore, name: &str) -> Result<Vec<u8>, Error> {
    match ex.resolve(name)? {
        Member::Blob(d) => Ok(store.content().read_blob(d)?),
        Member::File(p) => fs::read(p).map_err(|e| Error::io("read", p, e)),
    }
}

/// The digest of a member in the content store, copying it in if it is a plain file.
fn member_blob(ex: &Extracted, store: &ImageStore, name: &str) -> Result<String, Error> {
    match ex.resolve(name)? {
        Member::Blob(d) => Ok(d.clone()),
        Member::File(p) => {
            let mut f = fs::File::open(p).map_err(|e| Error::io("open", p, e))?;
            let mut w = store.content().writer()?;
            io::copy(&mut f, &mut w).map_err(|e| Error::io("copy", p, e))?;
            Ok(w.commit(None)?.0)
        }
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        ArchiveError::Invalid {
            what: what.to_string(),
            reason: e.to_string(),
        }
        .into()
    })
}

pub(crate) fn load(store: &ImageStore, archive: &mut dyn Read) -> Result<Vec<LoadedImage>, Error> {
    let tmp = TempDir(
        store
            .tmp_dir()
            .join(format!("load-{:016x}", rand::random::<u64>())),
    );
    fs::create_dir_all(&tmp.0).map_err(|e| Error::io("create", &tmp.0, e))?;
    let _guard = store.shared_lock();
    let ex = extract(store, archive, &tmp.0)?;
    let mut loaded = Vec::new();

    if ex.resolve("manifest.json").is_ok() {
        let entries: Vec<DockerManifestEntry> =
            parse_json(&read_member(&ex, store, "manifest.json")?, "manifest.json")?;
        for m in entries {
            let config = read_member(&ex, store, &m.config)?;
            let config_digest = store.content().write_blob(&config)?;
            let mut layers = Vec::new();
            for l in &m.layers {
                layers.push(LayerSource {
                    blob: member_blob(&ex, store, l)?,
                    media_type: None,
                });
            }
            let mut tags = Vec::new();
            for t in m.repo_tags.unwrap_or_default() {
                tags.push(Reference::parse(&t)?);
            }
            store.create_image_locked(&config_digest, &layers, &tags, &[])?;
            loaded.push(LoadedImage {
                id: config_digest,
                tags: tags.iter().map(|t| t.familiar()).collect(),
            });
        }
        return Ok(loaded);
    }

    if ex.resolve("index.json").is_ok() {
        let index: OciIndex = parse_json(&read_member(&ex, store, "index.json")?, "index.json")?;
        for desc in index.manifests {
            let tags = oci_tags(&desc)?;
            let manifest = resolve_manifest(store, &desc, 0)?;
            let layers: Vec<LayerSource> = manifest
                .layers
                .iter()
                .map(|l| LayerSource {
                    blob: l.digest.clone(),
                    media_type: Some(l.media_type.clone()).filter(|m| !m.is_empty()),
                })
                .collect();
            for l in &layers {
                if !store.content().exists(&l.blob) {
                    return Err(ArchiveError::MissingMember(format!(
                        "blobs/sha256/{}",
                        hex_part(&l.blob)
                    ))
                    .into());
                }
            }
            let config_digest = manifest.config.digest.clone();
            if !is_sha256_digest(&config_digest) || !store.content().exists(&config_digest) {
                return Err(ArchiveError::MissingMember(format!("config {config_digest}")).into());
            }
            store.create_image_locked(&config_digest, &layers, &tags, &[])?;
            loaded.push(LoadedImage {
                id: config_digest,
                tags: tags.iter().map(|t| t.familiar()).collect(),
            });
        }
        return Ok(loaded);
    }
    if ex.resolve("repositories").is_ok() || ex.legacy_ids().next().is_some() {
        return load_legacy(store, &ex);
    }
    Err(ArchiveError::UnknownFormat.into())
}

/// A v1 image of a pre-1.10 archive, once turned into a v2 image.
#[derive(Clone)]
struct LegacyImage {
    id: String,
    layers: Vec<LayerSource>,
    diff_ids: Vec<String>,
    history: Vec<serde_json::Value>,
}

impl Extracted {
    /// The v1 ids of a legacy archive: every `<id>/json`.
    fn legacy_ids(&self) -> impl Iterator<Item = String> + '_ {
        self.members.keys().filter_map(|p| {
            let mut c = p.components();
            let id = c.next()?.as_os_str().to_str()?.to_string();
            let file = c.next()?.as_os_str().to_str()?;
            (file == "json" && c.next().is_none()).then_some(id)
        })
    }
}

/// Pre-1.10 `docker save` output: `<v1-id>/{json,layer.tar}` chained by `parent`, and
/// `repositories` mapping names and tags to v1 ids. Each v1 image becomes a v2 image the
/// way docker's `legacyLoad` does it (config = the v1 JSON less its v1 fields, plus
/// rootfs and history).
fn load_legacy(store: &ImageStore, ex: &Extracted) -> Result<Vec<LoadedImage>, Error> {
    let mut done: HashMap<String, LegacyImage> = HashMap::new();
    let mut ids: Vec<String> = ex.legacy_ids().collect();
    ids.sort();
    for id in &ids {
        legacy_image(store, ex, id, &mut done, 0)?;
    }
    let repos: BTreeMap<String, BTreeMap<String, String>> = match ex.resolve("repositories") {
        Ok(_) => parse_json(&read_member(ex, store, "repositories")?, "repositories")?,
        Err(_) => BTreeMap::new(),
    };
    let mut loaded = Vec::new();
    for (name, tags) in repos {
        for (tag, v1) in tags {
            let img = legacy_image(store, ex, &v1, &mut done, 0)?;
            let r = Reference::parse_with_tag(&name, Some(&tag))?;
            store.create_image_locked(&img.id, &img.layers, std::slice::from_ref(&r), &[])?;
            loaded.push(LoadedImage {
                id: img.id,
                tags: vec![r.familiar()],
            });
        }
    }
    if loaded.is_empty() {
        // untagged archives report every top image
        for id in ids {
            let img = &done[&id];
            loaded.push(LoadedImage {
                id: img.id.clone(),
                tags: Vec::new(),
            });
        }
    }
    Ok(loaded)
}

fn legacy_image(
    store: &ImageStore,
    ex: &Extracted,
    v1: &str,
    done: &mut HashMap<String, LegacyImage>,
    depth: usize,
) -> Result<LegacyImage, Error> {
    if let Some(img) = done.get(v1) {
        return Ok(img.clone());
    }
    if depth > 256 || v1.contains('/') || v1.is_empty() {
        return Err(ArchiveError::Invalid {
            what: "legacy image chain".to_string(),
            reason: format!("bad or cyclic parent {v1:?}"),
        }
        .into());
    }
    let json = read_member(ex, store, &format!("{v1}/json"))?;
    let v: serde_json::Map<String, serde_json::Value> = parse_json(&json, &format!("{v1}/json"))?;
    let parent = match v
        .get("parent")
        .and_then(|p| p.as_str())
        .filter(|p| !p.is_empty())
    {
        Some(p) => Some(legacy_image(store, ex, p, done, depth + 1)?),
        None => None,
    };
    let (mut layers, mut diff_ids, mut history) = match parent {
        Some(p) => (p.layers, p.diff_ids, p.history),
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    let blob = member_blob(ex, store, &format!("{v1}/layer.tar"))?;
    diff_ids.push(diff_id_of_blob(store, &blob)?);
    layers.push(LayerSource {
        blob,
        media_type: None,
    });
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).filter(|s| !s.is_empty());
    let created_by = v
        .get("container_config")
        .and_then(|c| c.get("Cmd"))
        .and_then(|c| c.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|s| !s.is_empty());
    let mut h = serde_json::Map::new();
    for (key, val) in [
        ("created", text("created").map(str::to_string)),
        ("author", text("author").map(str::to_string)),
        ("created_by", created_by),
        ("comment", text("comment").map(str::to_string)),
    ] {
        if let Some(val) = val {
            h.insert(key.to_string(), val.into());
        }
    }
    history.push(serde_json::Value::Object(h));
    // sorted keys, as Go's encoding of a map
    let mut config: BTreeMap<String, serde_json::Value> = v.into_iter().collect();
    for k in ["id", "parent", "Size", "parent_id", "layer_id", "throwaway"] {
        config.remove(k);
    }
    config.insert(
        "rootfs".to_string(),
        serde_json::json!({"type": "layers", "diff_ids": diff_ids}),
    );
    config.insert(
        "history".to_string(),
        serde_json::Value::Array(history.clone()),
    );
    let bytes = serde_json::to_vec(&config).expect("legacy config serialises");
    let id = store.content().write_blob(&bytes)?;
    store.create_image_locked(&id, &layers, &[], &[])?;
    let img = LegacyImage {
        id,
        layers,
        diff_ids,
        history,
    };
    done.insert(v1.to_string(), img.clone());
    Ok(img)
}

/// The diff id of a layer blob: its own digest when it is a plain tar.
fn diff_id_of_blob(store: &ImageStore, blob: &str) -> Result<String, Error> {
    let f = store.content().open_blob(blob)?;
    let (compression, mut reader) = apply::decompress(io::BufReader::new(f))?;
    if compression == apply::Compression::None {
        return Ok(blob.to_string());
    }
    let mut w = digest::HashingWriter::new(io::sink());
    io::copy(&mut reader, &mut w).map_err(ArchiveError::Read)?;
    Ok(w.finish().0)
}

/// The tag an OCI index entry carries: containerd's full name, else a ref.name that is a
/// whole reference (a bare tag like `latest` names no repository and is ignored).
fn oci_tags(desc: &Descriptor) -> Result<Vec<Reference>, Error> {
    let Some(ann) = &desc.annotations else {
        return Ok(Vec::new());
    };
    if let Some(n) = ann.get(ANNOTATION_IMAGE_NAME) {
        return Ok(vec![Reference::parse(n)?]);
    }
    if let Some(n) = ann.get(ANNOTATION_REF_NAME) {
        if n.contains('/') || n.contains(':') {
            if let Ok(r) = Reference::parse(n) {
                return Ok(vec![r]);
            }
        }
    }
    Ok(Vec::new())
}

/// Follow a descriptor to an image manifest, choosing linux/<host arch> in indexes.
fn resolve_manifest(
    store: &ImageStore,
    desc: &Descriptor,
    depth: usize,
) -> Result<OciManifest, Error> {
    if depth > 4 {
        return Err(ArchiveError::Invalid {
            what: "index.json".to_string(),
            reason: "indexes nested too deep".to_string(),
        }
        .into());
    }
    if !is_sha256_digest(&desc.digest) {
        return Err(ArchiveError::Invalid {
            what: "descriptor".to_string(),
            reason: format!("unsupported digest {:?}", desc.digest),
        }
        .into());
    }
    let bytes = store.content().read_blob(&desc.digest)?;
    let value: serde_json::Value = parse_json(&bytes, &desc.digest)?;
    let is_index = matches!(
        desc.media_type.as_str(),
        MEDIA_TYPE_OCI_INDEX | MEDIA_TYPE_DOCKER_LIST
    ) || (value.get("manifests").is_some() && value.get("layers").is_none());
    if !is_index {
        return parse_json(&bytes, &desc.digest);
    }
    let index: OciIndex = parse_json(&bytes, &desc.digest)?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let pick = index
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                && store.content().exists(&m.digest)
        })
        .or_else(|| {
            index
                .manifests
                .iter()
                .find(|m| store.content().exists(&m.digest))
        })
        .ok_or_else(|| {
            ArchiveError::MissingMember(format!("a manifest of index {}", desc.digest))
        })?;
    resolve_manifest(store, pick, depth + 1)
}

// ---- save ------------------------------------------------------------------------------

struct SaveImage {
    rec: ImageRecord,
    config: Vec<u8>,
    tags: Vec<Reference>,
}

fn header(path: &str, size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_path(path).expect("archive paths are short ascii");
    h.set_cksum();
    h
}

fn add_bytes<W: Write>(b: &mut tar::Builder<W>, path: &str, data: &[u8]) -> Result<(), Error> {
    let mut h = header(path, data.len() as u64, 0o644, tar::EntryType::Regular);
    b.append_data(&mut h, path, data)
        .map_err(ArchiveError::Write)?;
    Ok(())
}

pub(crate) fn save(store: &ImageStore, names: &[String], out: &mut dyn Write) -> Result<(), Error> {
    // images in first-named order, each with the tags the names selected
    let mut order: Vec<String> = Vec::new();
    let mut images: HashMap<String, SaveImage> = HashMap::new();
    let mut add = |id: String, tag: Option<Reference>| -> Result<(), Error> {
        if !images.contains_key(&id) {
            let rec = store.image_record(&id)?;
            let config = store.config_bytes(&id)?;
            order.push(id.clone());
            images.insert(
                id.clone(),
                SaveImage {
                    rec,
                    config,
                    tags: Vec::new(),
                },
            );
        }
        let img = images.get_mut(&id).expect("inserted above");
        if let Some(t) = tag {
            if !img.tags.contains(&t) {
                img.tags.push(t);
            }
        }
        Ok(())
    };
    for name in names {
        let all = store.repo_tags_of(name)?;
        if !all.is_empty() {
            for (r, id) in all {
                add(id, Some(r))?;
            }
            continue;
        }
        let id = store.resolve(name)?;
        let tag = Reference::parse(name)
            .ok()
            .filter(|r| r.digest().is_none() && !looks_like_id(name, &id));
        add(id, tag)?;
    }

    let mut b = tar::Builder::new(out);
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(dir, 0, 0o755, tar::EntryType::Directory);
        b.append_data(&mut h, dir, io::empty())
            .map_err(ArchiveError::Write)?;
    }
    let mut written: HashSet<String> = HashSet::new();
    let mut docker_manifest = Vec::new();
    let mut index = OciIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_INDEX.to_string()),
        manifests: Vec::new(),
    };
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for id in &order {
        let img = &images[id];
        let mut layer_descs = Vec::new();
        let mut layer_paths = Vec::new();
        for l in &img.rec.layers {
            let path = format!("blobs/sha256/{}", hex_part(&l.diff_id));
            if written.insert(l.diff_id.clone()) {
                let blob = store.content().open_blob(&l.blob)?;
                let (_, mut reader) =
                    apply::decompress(io::BufReader::with_capacity(256 * 1024, blob))?;
                let mut h = header(&path, l.tar_size, 0o644, tar::EntryType::Regular);
                // the header promised tar_size bytes; a short blob would corrupt the tar
                let mut limited = (&mut reader).take(l.tar_size);
                b.append_data(&mut h, &path, &mut limited)
                    .map_err(ArchiveError::Write)?;
            }
            layer_paths.push(path);
            layer_descs.push(Descriptor {
                media_type: MEDIA_TYPE_LAYER.to_string(),
                digest: l.diff_id.clone(),
                size: l.tar_size,
                annotations: None,
                platform: None,
            });
        }
        let config_path = format!("blobs/sha256/{}", id_hex(id));
        if written.insert(id.clone()) {
            add_bytes(&mut b, &config_path, &img.config)?;
        }
        let manifest = OciManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: MEDIA_TYPE_OCI_CONFIG.to_string(),
                digest: id.clone(),
                size: img.config.len() as u64,
                annotations: None,
                platform: None,
            },
            layers: layer_descs,
        };
        let mbytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        let mdigest = digest::sha256_digest(&mbytes);
        if written.insert(mdigest.clone()) {
            add_bytes(
                &mut b,
                &format!("blobs/sha256/{}", hex_part(&mdigest)),
                &mbytes,
            )?;
        }
        let desc = |annotations| Descriptor {
            media_type: MEDIA_TYPE_OCI_MANIFEST.to_string(),
            digest: mdigest.clone(),
            size: mbytes.len() as u64,
            annotations,
            platform: None,
        };
        if img.tags.is_empty() {
            index.manifests.push(desc(None));
        }
        for t in &img.tags {
            let mut ann = BTreeMap::new();
            ann.insert(ANNOTATION_IMAGE_NAME.to_string(), t.full());
            ann.insert(
                ANNOTATION_REF_NAME.to_string(),
                t.tag().unwrap_or("latest").to_string(),
            );
            index.manifests.push(desc(Some(ann)));
            if let (Some(tag), Some(top)) = (t.tag(), img.rec.layers.last()) {
                repositories
                    .entry(t.familiar_name())
                    .or_default()
                    .insert(tag.to_string(), hex_part(&top.diff_id).to_string());
            }
        }
        docker_manifest.push(DockerManifestEntry {
            config: config_path,
            repo_tags: Some(img.tags.iter().map(|t| t.familiar()).collect()),
            layers: layer_paths,
        });
    }
    add_bytes(
        &mut b,
        "index.json",
        &serde_json::to_vec(&index).expect("index serialises"),
    )?;
    add_bytes(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&docker_manifest).expect("manifest.json serialises"),
    )?;
    add_bytes(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    if !repositories.is_empty() {
        add_bytes(
            &mut b,
            "repositories",
            &serde_json::to_vec(&repositories).expect("repositories serialises"),
        )?;
    }
    b.finish().map_err(ArchiveError::Write)?;
    Ok(())
}

/// Whether `name` was given as the image's id (full, hex, or a prefix) rather than a tag.
fn looks_like_id(name: &str, id: &str) -> bool {
    let n = name.strip_prefix("sha256:").unwrap_or(name);
    !n.is_empty() && hex_part(id).starts_with(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_archive_paths() {
        assert_eq!(clean(Path::new("./a/../b")), Some(PathBuf::from("b")));
        assert_eq!(clean(Path::new("../x")), None);
        assert_eq!(clean(Path::new("/abs/x")), Some(PathBuf::from("abs/x")));
    }
}
