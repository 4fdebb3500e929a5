//! A container's mounts: from the create request to resolved mount points, and from those
//! to OCI mounts at start.
//!
//! At create, [`plan_mounts`] turns `HostConfig.VolumesFrom`, `HostConfig.Binds` (`-v`),
//! `HostConfig.Mounts` (`--mount`) and `Config.Volumes` (the image's `VOLUME`s and `-v
//! /path`) into [`MountPoint`]s keyed by destination, with dockerd's precedence: volumes-from
//! first, then binds and mounts override them (a bind and a mount on one destination is
//! "Duplicate mount point"), and image volumes only fill destinations nobody mounted.
//! `HostConfig.Tmpfs` is not a mount point (dockerd does not list it in `Mounts` either); it
//! is validated at create, wins over any mount point on its destination at start, and
//! becomes an OCI tmpfs mount there. [`Engine::materialize_mounts`] then creates the named
//! volumes that are missing and the anonymous ones, recording each volume's host path.
//!
//! At start, [`Engine::prepare_mounts`] takes a ref on every volume (ref id = container id;
//! the volume store mounts `type=`/`device=` volumes at the first ref), copies the image's
//! content into a volume that asked for it (once, at its first start: copy-up itself skips a
//! non-empty volume, as dockerd's does), and creates a missing `-v` bind source. Exit and a
//! failed start drop the refs again ([`Engine::release_mounts`]); a berthd restart that
//! finds the container still running takes them again ([`Engine::reacquire_mounts`]), since
//! refs live in memory only.
//!
//! Read-only binds are recursively read-only (`rro`, `mount_setattr(AT_RECURSIVE)`; crun
//! and runc both know it) unless the user asked for `ro-non-recursive`, as dockerd does on
//! kernels that have `mount_setattr`.

use super::{Container, ContainerHandle};
use crate::models::{ContainerConfig, HostConfig};
use crate::{Engine, Error, Result};
use berth_runtime::spec::Mount;
use berth_volume::{MountSpec, MountType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One resolved mount of a container (dockerd's `MountPoint`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MountPoint {
    /// The request it came from, parsed.
    pub spec: MountSpec,
    /// Volume name; empty for binds, tmpfs and a not-yet-created anonymous volume.
    pub name: String,
    /// Host path: the bind source, or the volume's data directory (plus subpath).
    pub source: String,
    pub destination: String,
    /// `local` for volumes, empty otherwise.
    pub driver: String,
    /// What `docker inspect` shows as `Mode`.
    pub mode: String,
    pub rw: bool,
    /// `rprivate` for binds, empty otherwise.
    pub propagation: String,
    /// Copy the image's content at the destination into the volume at the next start.
    #[serde(default)]
    pub copy_data: bool,
    /// The request named no volume (`-v /data`, image `VOLUME`): `rm -v` removes it.
    #[serde(default)]
    pub anonymous: bool,
}

impl MountPoint {
    fn from_spec(spec: MountSpec) -> MountPoint {
        let typ = spec.typ;
        MountPoint {
            name: if typ == MountType::Volume {
                spec.source.clone()
            } else {
                String::new()
            },
            source: if typ == MountType::Bind {
                spec.source.clone()
            } else {
                String::new()
            },
            destination: spec.target.clone(),
            driver: if typ == MountType::Volume {
                spec.volume_driver
                    .clone()
                    .unwrap_or_else(|| "local".to_string())
            } else {
                String::new()
            },
            mode: spec.mode.clone(),
            rw: !spec.read_only,
            propagation: if typ == MountType::Bind {
                spec.propagation
                    .clone()
                    .unwrap_or_else(|| "rprivate".to_string())
            } else {
                String::new()
            },
            copy_data: typ == MountType::Volume && !spec.nocopy,
            anonymous: spec.is_anonymous_volume(),
            spec,
        }
    }

    pub fn is_volume(&self) -> bool {
        self.spec.typ == MountType::Volume
    }
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(e.to_string())
}

/// A refused `HostConfig.Mounts` entry. A missing bind source is worded as dockerd's
/// `errBindSourceDoesNotExist` ("bind source path does not exist"), which scripts match.
fn mount_api_error(e: berth_volume::SpecError) -> Error {
    use berth_volume::SpecError;
    match &e {
        SpecError::MountConfig { typ, detail } => match detail.as_ref() {
            SpecError::BindSourceMissing(path) => invalid(format!(
                "invalid mount config for type \"{typ}\": bind source path does not exist: {path}"
            )),
            _ => invalid(e),
        },
        _ => invalid(e),
    }
}

/// `VolumesFrom` entry: `container` or `container:ro|rw`.
pub fn parse_volumes_from(spec: &str) -> Result<(String, Option<bool>)> {
    let (id, mode) = match spec.split_once(':') {
        Some((id, mode)) => (id, Some(mode)),
        None => (spec, None),
    };
    if id.is_empty() {
        return Err(invalid(format!("invalid volumes-from: {spec:?}")));
    }
    let rw = match mode {
        None => None,
        Some("rw") => Some(true),
        Some("ro") => Some(false),
        Some(m) => return Err(invalid(format!("invalid mode for volumes-from: {m}"))),
    };
    Ok((id.to_string(), rw))
}

/// The mount points a create request asks for (see the module docs for the precedence).
/// `volumes_from` returns the mount points of the container a `VolumesFrom` entry names.
/// Volumes are not created here: a named volume has its name, an anonymous one none.
pub fn plan_mounts(
    hc: &HostConfig,
    config: &ContainerConfig,
    volumes_from: &dyn Fn(&str) -> Result<Vec<MountPoint>>,
) -> Result<Vec<MountPoint>> {
    let mut by_dest: BTreeMap<String, MountPoint> = BTreeMap::new();
    for entry in hc.volumes_from.iter().flatten() {
        let (id, rw) = parse_volumes_from(entry)?;
        for mut mp in volumes_from(&id)? {
            if let Some(rw) = rw {
                mp.rw = rw;
                mp.spec.read_only = !rw;
            }
            // The other container did the copy-up; its volume is not ours to remove.
            mp.copy_data = false;
            mp.anonymous = false;
            by_dest.insert(mp.destination.clone(), mp);
        }
    }
    // dockerd's setBindModeIfNull: a local volume from `Binds` or `Mounts` shows mode "z"
    // (the image's `VOLUME`s, added below, keep an empty one).
    let set_mode_if_null = |mp: &mut MountPoint| {
        if mp.is_volume() && mp.driver == "local" && mp.mode.is_empty() {
            mp.mode = "z".into();
        }
    };
    let tmpfs = tmpfs_specs(hc)?;
    let mut explicit: BTreeSet<String> = BTreeSet::new();
    for b in hc.binds.iter().flatten() {
        let spec = berth_volume::parse_bind_for_driver(b, &hc.volume_driver).map_err(invalid)?;
        // A bind and a tmpfs on one path is dockerd's #10618 check (Mounts are not held
        // to it there either).
        if !explicit.insert(spec.target.clone()) || tmpfs.iter().any(|t| t.target == spec.target) {
            return Err(invalid(format!("Duplicate mount point: {}", spec.target)));
        }
        let mut mp = MountPoint::from_spec(spec);
        set_mode_if_null(&mut mp);
        by_dest.insert(mp.destination.clone(), mp);
    }
    for m in hc.mounts.iter().flatten() {
        let spec = berth_volume::parse_mount_api(m).map_err(mount_api_error)?;
        if !explicit.insert(spec.target.clone()) {
            return Err(invalid(format!("Duplicate mount point: {}", spec.target)));
        }
        let mut mp = MountPoint::from_spec(spec);
        set_mode_if_null(&mut mp);
        by_dest.insert(mp.destination.clone(), mp);
    }
    for dest in config.volumes.iter().flat_map(|v| v.keys()) {
        berth_volume::validate_target(dest)
            .map_err(|e| invalid(format!("invalid volume specification: '{dest}': {e}")))?;
        let dest = berth_volume::spec::clean_path(dest);
        if by_dest.contains_key(&dest) || tmpfs.iter().any(|t| t.target == dest) {
            continue;
        }
        let spec =
            berth_volume::parse_bind_for_driver(&dest, &hc.volume_driver).map_err(invalid)?;
        by_dest.insert(dest, MountPoint::from_spec(spec));
    }
    Ok(by_dest.into_values().collect())
}

/// `HostConfig.Tmpfs`, parsed (and so validated).
pub fn tmpfs_specs(hc: &HostConfig) -> Result<Vec<MountSpec>> {
    hc.tmpfs
        .iter()
        .flatten()
        .map(|(dest, opts)| berth_volume::parse_tmpfs(dest, opts).map_err(invalid))
        .collect()
}

/// The OCI mounts for a container's mount points and tmpfs, before the engine's own
/// binds (/etc/hosts and friends) are merged in by [`merge_mounts`].
pub fn oci_mounts(c: &Container) -> Result<Vec<Mount>> {
    let tmpfs = tmpfs_specs(&c.host_config)?;
    let mut out = Vec::new();
    for mp in &c.mount_points {
        if tmpfs.iter().any(|t| t.target == mp.destination) {
            continue;
        }
        out.push(oci_mount(mp));
    }
    for t in &tmpfs {
        out.push(Mount {
            destination: t.target.clone(),
            source: "tmpfs".into(),
            typ: "tmpfs".into(),
            options: berth_volume::tmpfs_oci_options(t),
        });
    }
    Ok(out)
}

fn oci_mount(mp: &MountPoint) -> Mount {
    if mp.spec.typ == MountType::Tmpfs {
        return Mount {
            destination: mp.destination.clone(),
            source: "tmpfs".into(),
            typ: "tmpfs".into(),
            options: berth_volume::tmpfs_oci_options(&mp.spec),
        };
    }
    let recursive = mp.spec.bind_recursive.as_deref();
    let mut options = vec![if recursive == Some("disabled") {
        "bind".to_string()
    } else {
        "rbind".to_string()
    }];
    let propagation = if mp.propagation.is_empty() {
        "rprivate"
    } else {
        mp.propagation.as_str()
    };
    // crun (1.8) folds the propagation's MS_REC into the bind's own flags, so `bind` with
    // `rprivate` still binds submounts. A non-recursive bind has no submounts to propagate
    // to, so the plain propagation means the same there and keeps the bind non-recursive.
    options.push(if recursive == Some("disabled") {
        propagation
            .strip_prefix('r')
            .unwrap_or(propagation)
            .to_string()
    } else {
        propagation.to_string()
    });
    if mp.rw {
        options.push("rw".into());
    } else {
        options.push("ro".into());
        // Submounts of a read-only bind are read-only too, unless asked otherwise. A file
        // has no submounts, and crun 1.8 fails `rro` on one ("open mount target: Not a
        // directory").
        if !matches!(recursive, Some("writable") | Some("disabled"))
            && !Path::new(&mp.source).is_file()
        {
            options.push("rro".into());
        }
    }
    Mount {
        destination: mp.destination.clone(),
        source: mp.source.clone(),
        typ: "bind".into(),
        options,
    }
}

/// What a bind's `shared`/`slave` propagation needs, as dockerd's `withMounts` checks it:
/// the host mount the source lives on must itself be shared (or, for slave, shared or a
/// slave), otherwise there is nothing to propagate and dockerd refuses rather than
/// silently giving a private mount; and the container's root must not be private, or the
/// bind inherits privacy from it. Returns the `rootfsPropagation` to set, if any.
pub fn rootfs_propagation(c: &Container) -> Result<Option<String>> {
    let mut root: Option<&'static str> = None;
    for mp in &c.mount_points {
        if mp.spec.typ != MountType::Bind {
            continue;
        }
        let shared = match mp.propagation.as_str() {
            "shared" | "rshared" => true,
            "slave" | "rslave" => false,
            _ => continue,
        };
        let (on, optional) = berth_volume::source_mount(Path::new(&mp.source))
            .map_err(|e| Error::Internal(format!("{}: {e}", mp.source)))?;
        let has = |p: &str| optional.split(' ').any(|o| o.starts_with(p));
        if shared && !has("shared:") {
            return Err(Error::Internal(format!(
                "path {} is mounted on {on} but it is not a shared mount",
                mp.source
            )));
        }
        if !shared && !has("shared:") && !has("master:") {
            return Err(Error::Internal(format!(
                "path {} is mounted on {on} but it is not a shared or slave mount",
                mp.source
            )));
        }
        root = match (root, shared) {
            (_, true) | (Some("rshared"), false) => Some("rshared"),
            (_, false) => Some("rslave"),
        };
    }
    Ok(root.map(str::to_string))
}

/// Puts the user's mounts after the engine's, drops an engine mount the user replaced (a
/// bind on /etc/hosts wins over ours), and orders everything parents first, so a volume on
/// /etc does not hide the /etc/resolv.conf bind made before it.
pub fn merge_mounts(engine: Vec<Mount>, user: Vec<Mount>) -> Vec<Mount> {
    let clean = |d: &str| berth_volume::spec::clean_path(d);
    let user_dests: BTreeSet<String> = user.iter().map(|m| clean(&m.destination)).collect();
    let mut all: Vec<Mount> = engine
        .into_iter()
        .filter(|m| !user_dests.contains(&clean(&m.destination)))
        .chain(user)
        .collect();
    all.sort_by_key(|m| {
        clean(&m.destination)
            .split('/')
            .filter(|s| !s.is_empty())
            .count()
    });
    all
}

/// Docker's `Mounts` entry of inspect and ps.
pub fn mount_json(mp: &MountPoint) -> Value {
    match mp.spec.typ {
        MountType::Volume => json!({
            "Type": "volume",
            "Name": mp.name,
            "Source": mp.source,
            "Destination": mp.destination,
            "Driver": mp.driver,
            "Mode": mp.mode,
            "RW": mp.rw,
            "Propagation": "",
        }),
        MountType::Bind => json!({
            "Type": "bind",
            "Source": mp.source,
            "Destination": mp.destination,
            "Mode": mp.mode,
            "RW": mp.rw,
            "Propagation": mp.propagation,
        }),
        MountType::Tmpfs => json!({
            "Type": "tmpfs",
            "Source": "",
            "Destination": mp.destination,
            "Mode": "",
            "RW": mp.rw,
            "Propagation": "",
        }),
    }
}

/// All of a container's mount points as Docker's `Mounts` array.
pub fn mounts_json(mps: &[MountPoint]) -> Value {
    Value::Array(mps.iter().map(mount_json).collect())
}

/// ps's `volume=` filter: a volume name, a bind source or a destination.
pub fn uses_volume(mps: &[MountPoint], value: &str) -> bool {
    mps.iter().any(|m| {
        m.destination == value
            || (m.is_volume() && m.name == value)
            || (!m.is_volume() && !m.source.is_empty() && m.source == value)
    })
}

/// Creates an empty file at the destination of each bind mount whose source is a regular
/// file when nothing is there in the rootfs yet (compose's secrets and configs, `-v
/// ./app.conf:/app.conf`): crun makes only directories for missing targets and then
/// fails to bind a file over one; dockerd likewise makes the file before calling runc.
pub fn ensure_file_mountpoints(
    rootfs: &Path,
    mounts: &[berth_runtime::spec::Mount],
) -> std::io::Result<()> {
    for m in mounts.iter().filter(|m| m.typ == "bind") {
        if !std::fs::metadata(&m.source).is_ok_and(|md| md.is_file()) {
            continue;
        }
        let target = resolve_in_root(rootfs, &m.destination);
        if target == rootfs || std::fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Resolves `path` inside `root` as the container will see it: symlinks are followed but
/// never out of `root` (an absolute link target or `..` stops at `root`), so copy-up
/// reads the image's content and never the host's.
pub fn resolve_in_root(root: &Path, path: &str) -> PathBuf {
    let mut resolved: Vec<String> = Vec::new();
    let mut rest: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut hops = 0;
    while let Some(part) = rest.pop() {
        match part.as_str() {
            "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = resolved
            .iter()
            .chain(std::iter::once(&part))
            .fold(root.to_path_buf(), |p, s| p.join(s));
        match std::fs::read_link(&candidate) {
            Ok(target) if hops < 40 => {
                hops += 1;
                let t = target.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    resolved.clear();
                }
                rest.extend(
                    t.split('/')
                        .filter(|s| !s.is_empty())
                        .rev()
                        .map(str::to_string),
                );
            }
            _ => resolved.push(part),
        }
    }
    resolved.iter().fold(root.to_path_buf(), |p, s| p.join(s))
}

impl Engine {
    /// The mount points of another container, for `VolumesFrom`.
    fn mount_points_of(&self, name: &str) -> Result<Vec<MountPoint>> {
        Ok(self.lookup(name)?.snapshot().mount_points)
    }

    /// Plans a create request's mounts and creates the volumes they need. On error, the
    /// anonymous volumes made so far are removed again. Blocking (volume store work).
    pub(crate) fn resolve_mounts(
        &self,
        hc: &HostConfig,
        config: &ContainerConfig,
    ) -> Result<Vec<MountPoint>> {
        let mut mps = plan_mounts(hc, config, &|n| self.mount_points_of(n))?;
        let mut created = Vec::new();
        match self.materialize_mounts(&mut mps, &mut created) {
            Ok(()) => Ok(mps),
            Err(e) => {
                self.discard_volumes(&created);
                Err(e)
            }
        }
    }

    /// Removes the anonymous volumes a failed create made.
    pub(crate) fn discard_volumes(&self, names: &[String]) {
        for n in names {
            if let Err(e) = self.inner.volumes.remove(n, &[], true) {
                tracing::warn!(volume = %n, "remove volume of a failed create: {e}");
            }
        }
    }

    /// Creates the volumes of planned mount points; `created` collects anonymous ones.
    fn materialize_mounts(&self, mps: &mut [MountPoint], created: &mut Vec<String>) -> Result<()> {
        for mp in mps.iter_mut().filter(|m| m.is_volume()) {
            if !mp.source.is_empty() {
                // Taken over from VolumesFrom: the volume exists already.
                continue;
            }
            let existed = !mp.anonymous && self.inner.volumes.get(&mp.name).is_ok();
            let name = (!mp.anonymous).then_some(mp.name.as_str());
            let v = self.inner.volumes.create(
                name,
                mp.spec.volume_driver.as_deref(),
                mp.spec.volume_driver_opts.clone(),
                mp.spec.volume_labels.clone(),
            )?;
            if mp.anonymous {
                created.push(v.name.clone());
            }
            if !existed {
                self.emit_volume("create", &v.name, BTreeMap::new());
            }
            mp.name = v.name.clone();
            mp.driver = v.driver.clone();
            let mut source = v.mountpoint.clone();
            if let Some(sub) = &mp.spec.volume_subpath {
                source = source.join(sub);
                mp.copy_data = false;
            }
            mp.source = source.to_string_lossy().into_owned();
        }
        Ok(())
    }

    /// Takes the volume refs, copies image content into new volumes and creates missing
    /// `-v` bind sources, before the shim starts. Undoes its refs on failure.
    pub(crate) fn prepare_mounts(&self, h: &Arc<ContainerHandle>, rootfs: &Path) -> Result<()> {
        let c = h.snapshot();
        let mut taken: Vec<&MountPoint> = Vec::new();
        let res = (|| -> Result<bool> {
            let mut copied = false;
            for mp in &c.mount_points {
                match mp.spec.typ {
                    MountType::Volume => {
                        let data = self.inner.volumes.mount(&mp.name, &c.id)?;
                        taken.push(mp);
                        if mp.copy_data {
                            let src = resolve_in_root(rootfs, &mp.destination);
                            berth_volume::copy_up(&src, &data)?;
                            copied = true;
                        }
                        if mp.spec.volume_subpath.is_some()
                            && std::fs::symlink_metadata(&mp.source).is_err()
                        {
                            return Err(invalid(format!(
                                "cannot access path {}: no such file or directory",
                                mp.source
                            )));
                        }
                    }
                    MountType::Bind => {
                        if std::fs::symlink_metadata(&mp.source).is_err() {
                            if !mp.spec.bind_create_host_path {
                                return Err(invalid(format!(
                                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                                    mp.source
                                )));
                            }
                            std::fs::create_dir_all(&mp.source).map_err(|e| {
                                Error::io(format!("create bind source {}", mp.source), e)
                            })?;
                        }
                    }
                    MountType::Tmpfs => {}
                }
            }
            Ok(copied)
        })();
        match res {
            Ok(copied) => {
                if copied {
                    h.update(|r| {
                        for mp in r.mount_points.iter_mut() {
                            mp.copy_data = false;
                        }
                    });
                    self.persist(h)?;
                }
                for mp in taken {
                    let mut attrs = BTreeMap::new();
                    attrs.insert("container".to_string(), c.id.clone());
                    attrs.insert("destination".to_string(), mp.destination.clone());
                    attrs.insert(
                        "propagation".to_string(),
                        mp.spec.propagation.clone().unwrap_or_default(),
                    );
                    attrs.insert("read/write".to_string(), mp.rw.to_string());
                    self.emit_volume("mount", &mp.name, attrs);
                }
                Ok(())
            }
            Err(e) => {
                for mp in taken {
                    let _ = self.inner.volumes.unmount(&mp.name, &c.id);
                }
                Err(e)
            }
        }
    }

    /// Drops the container's volume refs (after exit or a failed start).
    pub(crate) fn release_mounts(&self, c: &Container) {
        for mp in c.mount_points.iter().filter(|m| m.is_volume()) {
            let held = self.inner.volumes.refs(&mp.name).contains(&c.id);
            match self.inner.volumes.unmount(&mp.name, &c.id) {
                Ok(()) if held => {
                    let mut attrs = BTreeMap::new();
                    attrs.insert("container".to_string(), c.id.clone());
                    self.emit_volume("unmount", &mp.name, attrs);
                }
                Ok(()) => {}
                Err(e) => tracing::warn!(id = %c.id, volume = %mp.name, "unmount volume: {e}"),
            }
        }
    }

    /// Takes the refs of a container found running after a berthd restart.
    pub(crate) fn reacquire_mounts(&self, c: &Container) {
        for mp in c.mount_points.iter().filter(|m| m.is_volume()) {
            if let Err(e) = self.inner.volumes.mount(&mp.name, &c.id) {
                tracing::warn!(id = %c.id, volume = %mp.name, "re-take volume ref: {e}");
            }
        }
    }

    /// `rm -v` and `--rm`: removes the container's anonymous volumes that no other
    /// container uses; named volumes are never removed with a container.
    pub(crate) fn remove_anonymous_volumes(&self, c: &Container) {
        let users = self.volume_users();
        for mp in c
            .mount_points
            .iter()
            .filter(|m| m.is_volume() && m.anonymous)
        {
            let others: Vec<String> = users
                .get(&mp.name)
                .into_iter()
                .flatten()
                .filter(|id| **id != c.id)
                .cloned()
                .collect();
            match self.inner.volumes.remove(&mp.name, &others, false) {
                Ok(()) => self.emit_volume("destroy", &mp.name, BTreeMap::new()),
                // Still used by another container, or already gone: not an error of rm.
                Err(e)
                    if matches!(
                        e.kind(),
                        berth_volume::ErrorKind::Conflict | berth_volume::ErrorKind::NotFound
                    ) => {}
                Err(e) => tracing::warn!(id = %c.id, volume = %mp.name, "remove volume: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc() -> HostConfig {
        HostConfig::default()
    }

    fn no_from(_: &str) -> Result<Vec<MountPoint>> {
        Err(Error::NotFound("No such container: x".into()))
    }

    #[test]
    fn binds_and_mounts_and_image_volumes() {
        let mut h = hc();
        h.binds = Some(vec!["/host/a:/a:ro".into(), "named:/b".into()]);
        h.mounts = Some(vec![json!({"Type": "tmpfs", "Target": "/t"})]);
        let mut c = ContainerConfig::default();
        let mut vols = BTreeMap::new();
        vols.insert("/a".to_string(), json!({}));
        vols.insert("/data".to_string(), json!({}));
        c.volumes = Some(vols);
        let mps = plan_mounts(&h, &c, &no_from).expect("plan");
        let dests: Vec<&str> = mps.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(dests, ["/a", "/b", "/data", "/t"]);
        assert_eq!(mps[0].spec.typ, MountType::Bind);
        assert!(!mps[0].rw);
        assert_eq!(mps[0].mode, "ro");
        assert_eq!(mps[0].propagation, "rprivate");
        assert_eq!(mps[1].name, "named");
        assert_eq!(mps[1].mode, "z");
        assert!(!mps[1].anonymous);
        assert!(mps[2].anonymous);
        assert_eq!(mps[2].mode, "");
        assert!(mps[2].copy_data);
        assert_eq!(mps[3].spec.typ, MountType::Tmpfs);
    }

    #[test]
    fn duplicate_between_bind_and_mount() {
        let mut h = hc();
        h.binds = Some(vec!["vv:/x".into()]);
        h.mounts = Some(vec![
            json!({"Type": "volume", "Source": "ww", "Target": "/x"}),
        ]);
        let err = plan_mounts(&h, &ContainerConfig::default(), &no_from).expect_err("dup");
        assert_eq!(err.to_string(), "Duplicate mount point: /x");
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
    }

    #[test]
    fn bind_and_tmpfs_on_one_path() {
        let mut h = hc();
        h.binds = Some(vec!["/h:/x".into()]);
        let mut t = BTreeMap::new();
        t.insert("/x".to_string(), String::new());
        h.tmpfs = Some(t);
        let err = plan_mounts(&h, &ContainerConfig::default(), &no_from).expect_err("dup");
        assert_eq!(err.to_string(), "Duplicate mount point: /x");
        // A --mount on a --tmpfs path is not refused by dockerd (the tmpfs wins at start).
        h.binds = None;
        h.mounts = Some(vec![json!({"Type": "volume", "Target": "/x"})]);
        plan_mounts(&h, &ContainerConfig::default(), &no_from).expect("mount and tmpfs");
    }

    #[test]
    fn local_volume_mode_z_from_binds_and_mounts() {
        let mut h = hc();
        h.binds = Some(vec!["/anon-bind".into(), "n2:/n2:ro".into()]);
        h.mounts = Some(vec![
            json!({"Type": "volume", "Source": "mv", "Target": "/mv", "ReadOnly": true}),
            json!({"Type": "volume", "Target": "/manon"}),
            json!({"Type": "volume", "Source": "pv", "Target": "/pv",
                   "VolumeOptions": {"DriverConfig": {"Name": "plugin"}}}),
        ]);
        let mps = plan_mounts(&h, &ContainerConfig::default(), &no_from).expect("plan");
        let mode = |d: &str| {
            mps.iter()
                .find(|m| m.destination == d)
                .map(|m| m.mode.clone())
                .expect("dest")
        };
        assert_eq!(mode("/anon-bind"), "z");
        assert_eq!(mode("/n2"), "ro");
        assert_eq!(mode("/mv"), "z");
        assert_eq!(mode("/manon"), "z");
        assert_eq!(mode("/pv"), "");
    }

    #[test]
    fn bad_bind_is_invalid_argument() {
        let mut h = hc();
        h.binds = Some(vec!["/a:/b:bogus".into()]);
        let err = plan_mounts(&h, &ContainerConfig::default(), &no_from).expect_err("bad");
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("invalid mode"), "{err}");
    }

    #[test]
    fn mount_api_missing_bind_source() {
        let mut h = hc();
        h.mounts = Some(vec![
            json!({"Type": "bind", "Source": "/nonexistent-berth-x", "Target": "/x"}),
        ]);
        let err = plan_mounts(&h, &ContainerConfig::default(), &no_from).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent-berth-x"
        );
    }

    #[test]
    fn volumes_from_modes_and_override() {
        let base = {
            let mut h = hc();
            h.binds = Some(vec!["v1:/one".into(), "/h:/two".into()]);
            plan_mounts(&h, &ContainerConfig::default(), &no_from).expect("plan")
        };
        let from = |id: &str| -> Result<Vec<MountPoint>> {
            assert_eq!(id, "src");
            Ok(base.clone())
        };
        let mut h = hc();
        h.volumes_from = Some(vec!["src:ro".into()]);
        h.binds = Some(vec!["/other:/two".into()]);
        let mps = plan_mounts(&h, &ContainerConfig::default(), &from).expect("plan");
        assert_eq!(mps.len(), 2);
        assert_eq!(mps[0].name, "v1");
        assert!(!mps[0].rw);
        assert!(!mps[0].copy_data);
        assert_eq!(mps[1].source, "/other");
        assert!(mps[1].rw);
        h.volumes_from = Some(vec!["src:rx".into()]);
        assert!(plan_mounts(&h, &ContainerConfig::default(), &from).is_err());
        h.volumes_from = Some(vec!["gone".into()]);
        assert_eq!(
            plan_mounts(&h, &ContainerConfig::default(), &no_from)
                .expect_err("missing")
                .kind(),
            crate::ErrorKind::NotFound
        );
    }

    #[test]
    fn tmpfs_flag_skips_image_volume_and_wins_at_start() {
        let mut h = hc();
        let mut t = BTreeMap::new();
        t.insert("/data".to_string(), "size=1m".to_string());
        h.tmpfs = Some(t);
        let mut c = ContainerConfig::default();
        let mut vols = BTreeMap::new();
        vols.insert("/data".to_string(), json!({}));
        c.volumes = Some(vols);
        assert!(plan_mounts(&h, &c, &no_from).expect("plan").is_empty());
        h.tmpfs
            .as_mut()
            .expect("tmpfs")
            .insert("/bad".into(), "bogus=1".into());
        assert!(plan_mounts(&h, &c, &no_from).is_err());
    }

    fn mp(spec: &str) -> MountPoint {
        MountPoint::from_spec(berth_volume::parse_bind(spec).expect("spec"))
    }

    #[test]
    fn oci_options() {
        let m = oci_mount(&mp("/h:/c:ro"));
        assert_eq!(m.options, ["rbind", "rprivate", "ro", "rro"]);
        let m = oci_mount(&mp("/h:/c:ro-non-recursive"));
        assert_eq!(m.options, ["rbind", "rprivate", "ro"]);
        let m = oci_mount(&mp("/h:/c:rshared"));
        assert_eq!(m.options, ["rbind", "rshared", "rw"]);
        // Non-recursive: no `r` propagation, which crun would turn into a recursive bind.
        let nonrec = |json: Value| {
            let spec = berth_volume::parse_mount_api(&json).expect("mount");
            oci_mount(&MountPoint::from_spec(spec)).options
        };
        assert_eq!(
            nonrec(json!({"Type": "bind", "Source": "/", "Target": "/c",
                          "BindOptions": {"NonRecursive": true}})),
            ["bind", "private", "rw"]
        );
        assert_eq!(
            nonrec(json!({"Type": "bind", "Source": "/", "Target": "/c",
                          "BindOptions": {"NonRecursive": true, "Propagation": "rslave"}})),
            ["bind", "slave", "rw"]
        );
        let mut v = mp("vol:/d");
        v.source = "/var/lib/berth/volumes/vol/_data".into();
        let m = oci_mount(&v);
        assert_eq!(m.source, "/var/lib/berth/volumes/vol/_data");
        assert_eq!(m.typ, "bind");
        assert_eq!(m.options, ["rbind", "rprivate", "rw"]);
    }

    #[test]
    fn merge_orders_parents_first_and_user_wins() {
        let b = |d: &str, s: &str| Mount {
            destination: d.into(),
            source: s.into(),
            typ: "bind".into(),
            options: vec![],
        };
        let out = merge_mounts(
            vec![b("/etc/hosts", "ours"), b("/etc/resolv.conf", "ours")],
            vec![b("/etc/resolv.conf/", "theirs"), b("/etc", "vol")],
        );
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|m| (m.destination.as_str(), m.source.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("/etc", "vol"),
                ("/etc/hosts", "ours"),
                ("/etc/resolv.conf/", "theirs")
            ]
        );
    }

    #[test]
    fn json_shapes() {
        let mut h = hc();
        h.binds = Some(vec!["vol:/d".into()]);
        let mut v =
            plan_mounts(&h, &ContainerConfig::default(), &no_from).expect("plan")[0].clone();
        v.source = "/x/_data".into();
        assert_eq!(
            mount_json(&v),
            json!({"Type":"volume","Name":"vol","Source":"/x/_data","Destination":"/d","Driver":"local","Mode":"z","RW":true,"Propagation":""})
        );
        let b = MountPoint::from_spec(berth_volume::parse_bind("/h:/c:ro").expect("spec"));
        assert_eq!(
            mount_json(&b),
            json!({"Type":"bind","Source":"/h","Destination":"/c","Mode":"ro","RW":false,"Propagation":"rprivate"})
        );
        assert!(uses_volume(&[v.clone()], "vol"));
        assert!(uses_volume(&[v.clone()], "/d"));
        assert!(!uses_volume(&[v], "other"));
        assert!(uses_volume(&[b], "/h"));
    }

    #[test]
    fn resolve_stays_in_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/etc")).expect("mkdir");
        std::os::unix::fs::symlink("/real/etc", root.join("etc")).expect("symlink");
        std::os::unix::fs::symlink("../../../..", root.join("real/up")).expect("symlink");
        assert_eq!(resolve_in_root(root, "/etc"), root.join("real/etc"));
        assert_eq!(
            resolve_in_root(root, "/etc/x/../y"),
            root.join("real/etc/y")
        );
        assert_eq!(resolve_in_root(root, "/real/up/etc"), root.join("real/etc"));
        assert_eq!(resolve_in_root(root, "/missing/a"), root.join("missing/a"));
    }
}
