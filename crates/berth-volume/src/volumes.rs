//! The volume store and the `local` driver.
//!
//! Layout: each volume is `<data-root>/volumes/<name>/_data`; its record (driver, labels,
//! options, creation time, anonymity) is JSON in the redb table `volume_volumes` of the
//! engine's shared database. Records and directories are reconciled on [`VolumeStore::open`]:
//! a directory without a record is adopted (as dockerd's local driver does with whatever it
//! finds under `volumes/`), a record without a directory gets its `_data` recreated, and
//! half-removed volumes are finished off.
//!
//! Removal is crash-safe in this order: rename `<name>` to `.removing-<name>-<random>`
//! (atomic; names never start with `.`), delete the record, then delete the tree. Before any
//! tree is deleted it must not be a mount point: deleting through a `o=bind` volume that is
//! still mounted would wipe the host directory it points to.
//!
//! Mounts: a volume with `type=`/`device=` options is mounted on its `_data` at the first
//! [`VolumeStore::mount`] and unmounted when the last ref goes; plain volumes only count
//! refs. Refs live in memory: after a daemon restart a volume found mounted is marked
//! mounted with no refs, so the engine's live-restore `mount` calls re-attach to it (its
//! tmpfs content survives) and the first `unmount` with no refs left releases it.
//!
//! One mutex serialises create, remove, mount and unmount; the work inside is a redb
//! transaction or a mount syscall, both short.

use crate::error::Error;
use crate::mount::{parse_mount_options, MountRequest, Mounter, SystemMounter};
use crate::spec::{parse_ram_bytes, validate_volume_name};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

const VOLUMES: TableDefinition<&str, &[u8]> = TableDefinition::new("volume_volumes");

/// The label dockerd puts on volumes created without a name.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
const DATA_DIR: &str = "_data";
const REMOVING_PREFIX: &str = ".removing-";
const LOCAL_OPTS: &[&str] = &["type", "o", "device", "size"];

/// A volume as the engine sees it (`docker volume inspect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    /// Always `local` for now.
    pub driver: String,
    /// `<data-root>/volumes/<name>/_data`.
    pub mountpoint: PathBuf,
    /// RFC 3339, seconds, UTC.
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    /// Driver options as given at creation.
    pub options: BTreeMap<String, String>,
    /// Always `local`.
    pub scope: String,
    /// Created without a name (pruned by default by `docker volume prune`).
    pub anonymous: bool,
}

/// What is stored per volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    name: String,
    driver: String,
    created_at: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
    #[serde(default)]
    anonymous: bool,
}

impl Record {
    /// The local driver mounts something only when given a type or a device.
    fn needs_mount(&self) -> bool {
        self.options.contains_key("type") || self.options.contains_key("device")
    }
}

/// A `label=` / `label!=` filter of `docker volume prune` and `ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    pub key: String,
    /// None: only the key's presence matters.
    pub value: Option<String>,
    /// `label!=`.
    pub negate: bool,
}

impl LabelFilter {
    /// `label=KEY` or `label=KEY=VALUE`.
    pub fn label(expr: &str) -> LabelFilter {
        Self::parse(expr, false)
    }

    /// `label!=KEY` or `label!=KEY=VALUE`.
    pub fn not_label(expr: &str) -> LabelFilter {
        Self::parse(expr, true)
    }

    fn parse(expr: &str, negate: bool) -> LabelFilter {
        let (key, value) = match expr.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (expr.to_string(), None),
        };
        LabelFilter { key, value, negate }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let hit = match (&self.value, labels.get(&self.key)) {
            (None, found) => found.is_some(),
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
        };
        hit != self.negate
    }
}

#[derive(Debug, Default)]
struct Active {
    refs: BTreeSet<String>,
    mounted: bool,
}

#[derive(Debug)]
struct Inner {
    /// `<data-root>/volumes`.
    root: PathBuf,
    db: Arc<Database>,
    mounter: Arc<dyn Mounter>,
    active: Mutex<HashMap<String, Active>>,
}

/// The volume store. Cheap to clone; all clones share state.
#[derive(Debug, Clone)]
pub struct VolumeStore {
    inner: Arc<Inner>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn no_such_volume(name: &str) -> Error {
    Error::NotFound(format!("get {name}: no such volume"))
}

impl VolumeStore {
    /// Opens (creating if needed) the store under `<data_root>/volumes`, with records in `db`.
    pub fn open(data_root: &Path, db: Arc<Database>) -> Result<VolumeStore, Error> {
        Self::open_with_mounter(data_root, db, Arc::new(SystemMounter))
    }

    /// Like [`VolumeStore::open`], with the mount side effects going through `mounter`.
    pub fn open_with_mounter(
        data_root: &Path,
        db: Arc<Database>,
        mounter: Arc<dyn Mounter>,
    ) -> Result<VolumeStore, Error> {
        let root = data_root.join("volumes");
        // 0701: other users may traverse to a volume a container bind-mounts, not list names.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o701)
            .create(&root)
            .map_err(|e| Error::io("create volumes dir", &root, e))?;
        let tx = db.begin_write()?;
        tx.open_table(VOLUMES)?;
        tx.commit()?;
        let store = VolumeStore {
            inner: Arc::new(Inner {
                root,
                db,
                mounter,
                active: Mutex::new(HashMap::new()),
            }),
        };
        store.reconcile()?;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Active>> {
        // The map stays consistent across a panic (each update is one insert/remove), so a
        // poisoned lock is still safe to use.
        self.inner.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.inner.root.join(name)
    }

    fn data_dir(&self, name: &str) -> PathBuf {
        self.dir(name).join(DATA_DIR)
    }

    fn to_volume(&self, r: &Record) -> Volume {
        Volume {
            name: r.name.clone(),
            driver: r.driver.clone(),
            mountpoint: self.data_dir(&r.name),
            created_at: r.created_at.clone(),
            labels: r.labels.clone(),
            options: r.options.clone(),
            scope: "local".to_string(),
            anonymous: r.anonymous,
        }
    }

    fn read_record(&self, name: &str) -> Result<Option<Record>, Error> {
        let tx = self.inner.db.begin_read()?;
        let t = tx.open_table(VOLUMES)?;
        let Some(v) = t.get(name)? else {
            return Ok(None);
        };
        let r = serde_json::from_slice(v.value()).map_err(|e| Error::Record {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some(r))
    }

    fn all_records(&self) -> Result<Vec<Record>, Error> {
        let tx = self.inner.db.begin_read()?;
        let t = tx.open_table(VOLUMES)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            match serde_json::from_slice::<Record>(v.value()) {
                Ok(r) => out.push(r),
                Err(e) => tracing::error!(volume = k.value(), "undecodable volume record: {e}"),
            }
        }
        Ok(out)
    }

    fn write_record(&self, r: &Record) -> Result<(), Error> {
        let bytes = serde_json::to_vec(r).map_err(|e| Error::Record {
            name: r.name.clone(),
            reason: e.to_string(),
        })?;
        let tx = self.inner.db.begin_write()?;
        {
            let mut t = tx.open_table(VOLUMES)?;
            t.insert(r.name.as_str(), bytes.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    fn delete_record(&self, name: &str) -> Result<(), Error> {
        let tx = self.inner.db.begin_write()?;
        {
            let mut t = tx.open_table(VOLUMES)?;
            t.remove(name)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn make_data_dir(&self, name: &str) -> Result<(), Error> {
        let dir = self.dir(name);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir.join(DATA_DIR))
            .map_err(|e| Error::io("create volume dir", &dir, e))
    }

    /// Brings records, directories and mounts into agreement after a start or a crash.
    fn reconcile(&self) -> Result<(), Error> {
        let records: HashMap<String, Record> = self
            .all_records()?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let entries = std::fs::read_dir(&self.inner.root)
            .map_err(|e| Error::io("read volumes dir", &self.inner.root, e))?;
        let mut on_disk = HashSet::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read volumes dir", &self.inner.root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(REMOVING_PREFIX) {
                if let Err(e) = self.delete_tree(&entry.path()) {
                    tracing::warn!(path = %entry.path().display(), "finishing a volume removal: {e}");
                }
                continue;
            }
            if !entry.file_type().is_ok_and(|t| t.is_dir()) || validate_volume_name(&name).is_err()
            {
                continue;
            }
            on_disk.insert(name.clone());
            if !records.contains_key(&name) {
                let meta = entry
                    .metadata()
                    .map_err(|e| Error::io("stat", entry.path(), e))?;
                let created_at = chrono::DateTime::from_timestamp(meta.ctime(), 0)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_else(now_rfc3339);
                tracing::info!(volume = %name, "adopting volume directory without a record");
                self.make_data_dir(&name)?;
                self.write_record(&Record {
                    name: name.clone(),
                    driver: "local".to_string(),
                    created_at,
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                    anonymous: false,
                })?;
            }
        }
        let mut active = self.lock();
        for (name, r) in &records {
            if !on_disk.contains(name) {
                tracing::warn!(volume = %name, "volume directory missing; recreating it empty");
            }
            self.make_data_dir(name)?;
            if r.needs_mount() {
                let data = self.data_dir(name);
                let mounted = self
                    .inner
                    .mounter
                    .is_mounted(&data)
                    .map_err(|e| Error::io("check mount", &data, e))?;
                if mounted {
                    active.entry(name.clone()).or_default().mounted = true;
                }
            }
        }
        Ok(())
    }

    /// Deletes a volume tree, refusing while anything in it is still a mount point.
    fn delete_tree(&self, dir: &Path) -> Result<(), Error> {
        let data = dir.join(DATA_DIR);
        let mounted = self
            .inner
            .mounter
            .is_mounted(&data)
            .map_err(|e| Error::io("check mount", &data, e))?;
        if mounted {
            self.inner
                .mounter
                .unmount(&data)
                .map_err(|e| Error::Mount(format!("unmount {}: {e}", data.display())))?;
            if self
                .inner
                .mounter
                .is_mounted(&data)
                .map_err(|e| Error::io("check mount", &data, e))?
            {
                return Err(Error::Mount(format!(
                    "refusing to delete {}: still mounted",
                    data.display()
                )));
            }
        }
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove volume dir", dir, e)),
        }
    }

    /// The local driver's option rules, with dockerd's messages (wrapped in `create NAME:`).
    fn validate_opts(name: &str, opts: &BTreeMap<String, String>) -> Result<(), Error> {
        let invalid = |msg: String| Error::InvalidArgument(format!("create {name}: {msg}"));
        for k in opts.keys() {
            if !LOCAL_OPTS.contains(&k.as_str()) {
                return Err(invalid(format!("invalid option: \"{k}\"")));
            }
        }
        if let Some(size) = opts.get("size") {
            let n = parse_ram_bytes(size).map_err(|e| invalid(e.to_string()))?;
            // Quotas need project quotas on the backing filesystem; we do not set them up.
            if n > 0 {
                return Err(invalid(
                    "quota size requested but no quota support".to_string(),
                ));
            }
        }
        for (opt, required) in [
            ("device", &["type"][..]),
            ("type", &["device"]),
            ("o", &["device", "type"]),
        ] {
            if opts.contains_key(opt) {
                for req in required {
                    if !opts.contains_key(*req) {
                        return Err(invalid(format!("missing required option: \"{req}\"")));
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates a volume, or returns the existing one of that name (dockerd's behaviour).
    /// `name: None` makes an anonymous volume with a random 64-hex name.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: Option<&str>,
        opts: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
    ) -> Result<Volume, Error> {
        let driver = match driver {
            None | Some("") | Some("local") => "local",
            Some(other) => {
                return Err(Error::NotFound(format!(
                    "error looking up volume plugin {other}: plugin \"{other}\" not found"
                )))
            }
        };
        let mut labels = labels;
        let (name, anonymous) = match name.filter(|n| !n.is_empty()) {
            Some(n) => (n.to_string(), labels.contains_key(ANONYMOUS_LABEL)),
            None => {
                let bytes: [u8; 32] = rand::random();
                labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
                (hex::encode(bytes), true)
            }
        };
        validate_volume_name(&name)?;
        Self::validate_opts(&name, &opts)?;

        let _guard = self.lock();
        if let Some(existing) = self.read_record(&name)? {
            if existing.driver != driver {
                return Err(Error::Conflict(format!(
                    "create {name}: volume name must be unique"
                )));
            }
            return Ok(self.to_volume(&existing));
        }
        let record = Record {
            name: name.clone(),
            driver: driver.to_string(),
            created_at: now_rfc3339(),
            labels,
            options: opts,
            anonymous,
        };
        self.make_data_dir(&name)?;
        if let Err(e) = self.write_record(&record) {
            // No record, no volume: do not leave a directory that the next start would adopt.
            let _ = std::fs::remove_dir_all(self.dir(&name));
            return Err(e);
        }
        Ok(self.to_volume(&record))
    }

    /// The volume called `name`.
    pub fn get(&self, name: &str) -> Result<Volume, Error> {
        match self.read_record(name)? {
            Some(r) => Ok(self.to_volume(&r)),
            None => Err(no_such_volume(name)),
        }
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>, Error> {
        let mut out: Vec<Volume> = self
            .all_records()?
            .iter()
            .map(|r| self.to_volume(r))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Ref ids currently holding a mount of the volume.
    pub fn refs(&self, name: &str) -> Vec<String> {
        self.lock()
            .get(name)
            .map(|a| a.refs.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Removes a volume and its data. `in_use_by` are the containers the engine found using
    /// it; those, and any live mount refs, make this a conflict even with `force` (as in
    /// dockerd, where force only forgives a missing volume).
    pub fn remove(&self, name: &str, in_use_by: &[String], force: bool) -> Result<(), Error> {
        let mut active = self.lock();
        let Some(_record) = self.read_record(name)? else {
            return if force {
                Ok(())
            } else {
                Err(no_such_volume(name))
            };
        };
        let mut users: BTreeSet<String> = in_use_by.iter().cloned().collect();
        if let Some(a) = active.get(name) {
            users.extend(a.refs.iter().cloned());
        }
        if !users.is_empty() {
            let list: Vec<String> = users.into_iter().collect();
            return Err(Error::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                list.join(", ")
            )));
        }
        if active.get(name).is_some_and(|a| a.mounted) {
            let data = self.data_dir(name);
            self.inner.mounter.unmount(&data).map_err(|e| {
                Error::Mount(format!("remove {name}: unmount {}: {e}", data.display()))
            })?;
            active.remove(name);
        }
        let dir = self.dir(name);
        let suffix: [u8; 8] = rand::random();
        let trash = self
            .inner
            .root
            .join(format!("{REMOVING_PREFIX}{name}-{}", hex::encode(suffix)));
        let renamed = match std::fs::rename(&dir, &trash) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io("remove volume", &dir, e)),
        };
        self.delete_record(name)?;
        active.remove(name);
        drop(active);
        if renamed {
            self.delete_tree(&trash)?;
        }
        Ok(())
    }

    /// Makes the volume's data available for `ref_id` and returns the path to bind into the
    /// container. Volumes with `type=`/`device=` options are mounted at the first ref.
    pub fn mount(&self, name: &str, ref_id: &str) -> Result<PathBuf, Error> {
        let mut active = self.lock();
        let record = self
            .read_record(name)?
            .ok_or_else(|| no_such_volume(name))?;
        let data = self.data_dir(name);
        let mounted = active.get(name).is_some_and(|a| a.mounted);
        if record.needs_mount() && !mounted {
            self.make_data_dir(name)?;
            let (flags, propagation, extra) =
                parse_mount_options(record.options.get("o").map(String::as_str).unwrap_or(""));
            let device = record.options.get("device").cloned().unwrap_or_default();
            if device.is_empty() {
                return Err(Error::Mount(format!(
                    "mount {name}: missing device in volume options"
                )));
            }
            let req = MountRequest {
                source: device.clone(),
                target: data.clone(),
                fstype: record.options.get("type").cloned().unwrap_or_default(),
                flags,
                propagation,
                data: extra,
            };
            self.inner.mounter.mount(&req).map_err(|e| {
                Error::Mount(format!(
                    "failed to mount local volume: mount {device}:{}, flags: {flags:#x}, data: {}: {e}",
                    data.display(),
                    req.data
                ))
            })?;
        }
        // Only now, after a successful mount, does the volume gain state: a failed mount
        // leaves no ref and no "mounted" mark behind.
        let entry = active.entry(name.to_string()).or_default();
        entry.mounted |= record.needs_mount();
        entry.refs.insert(ref_id.to_string());
        Ok(data)
    }

    /// Drops `ref_id`'s hold; the last one out unmounts. Unknown refs are not an error, so
    /// the engine can release after a restart that lost the in-memory refs.
    pub fn unmount(&self, name: &str, ref_id: &str) -> Result<(), Error> {
        let mut active = self.lock();
        if self.read_record(name)?.is_none() {
            return Err(no_such_volume(name));
        }
        let Some(entry) = active.get_mut(name) else {
            return Ok(());
        };
        entry.refs.remove(ref_id);
        if entry.refs.is_empty() {
            if entry.mounted {
                let data = self.data_dir(name);
                self.inner
                    .mounter
                    .unmount(&data)
                    .map_err(|e| Error::Mount(format!("unmount {}: {e}", data.display())))?;
            }
            active.remove(name);
        }
        Ok(())
    }

    /// Bytes used by the volume's content: apparent sizes of everything but directories,
    /// each hard-linked inode once (dockerd's `UsageData.Size`).
    pub fn usage(&self, name: &str) -> Result<u64, Error> {
        let v = self.get(name)?;
        dir_size(&v.mountpoint)
    }

    /// Removes unused volumes: anonymous ones only unless `all`, and only those matching
    /// every label filter. Returns the names removed and the bytes reclaimed.
    ///
    /// A volume created with driver options (`-o type=tmpfs`, `-o o=bind,device=/srv`) is
    /// never pruned, as in dockerd: its data is not under the data root, so removing it
    /// reclaims nothing here and only loses the user's mount definition.
    pub fn prune(
        &self,
        in_use: &HashSet<String>,
        all: bool,
        label_filters: &[LabelFilter],
    ) -> Result<(Vec<String>, u64), Error> {
        let mut removed = Vec::new();
        let mut reclaimed = 0u64;
        for v in self.list()? {
            if (!all && !v.anonymous)
                || !v.options.is_empty()
                || in_use.contains(&v.name)
                || !label_filters.iter().all(|f| f.matches(&v.labels))
                || !self.refs(&v.name).is_empty()
            {
                continue;
            }
            let size = dir_size(&v.mountpoint).unwrap_or(0);
            match self.remove(&v.name, &[], false) {
                Ok(()) => {
                    removed.push(v.name);
                    reclaimed += size;
                }
                // Raced with a mount or another remove: not prunable now, not an error.
                Err(e)
                    if matches!(
                        e.kind(),
                        crate::ErrorKind::Conflict | crate::ErrorKind::NotFound
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((removed, reclaimed))
    }
}

/// Apparent size of a tree without following symlinks, counting each inode once.
fn dir_size(root: &Path) -> Result<u64, Error> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read dir", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read dir", &dir, e))?;
            let meta = match std::fs::symlink_metadata(entry.path()) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", entry.path(), e)),
            };
            if meta.is_dir() {
                stack.push(entry.path());
                continue;
            }
            if meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            total += meta.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::FakeMounter;
    use crate::ErrorKind;

    fn store() -> (
        tempfile::TempDir,
        VolumeStore,
        Arc<FakeMounter>,
        Arc<Database>,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(Database::create(dir.path().join("berth.redb")).expect("db"));
        let fake = Arc::new(FakeMounter::new());
        let s = VolumeStore::open_with_mounter(dir.path(), db.clone(), fake.clone()).expect("open");
        (dir, s, fake, db)
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn create_get_list_idempotent() {
        let (dir, s, _, _) = store();
        let v = s
            .create(Some("data"), None, BTreeMap::new(), map(&[("a", "b")]))
            .unwrap();
        assert_eq!(v.driver, "local");
        assert_eq!(v.scope, "local");
        assert_eq!(v.mountpoint, dir.path().join("volumes/data/_data"));
        assert!(v.mountpoint.is_dir());
        assert!(!v.anonymous);
        // Same name again: the existing volume, labels untouched.
        let again = s
            .create(
                Some("data"),
                Some("local"),
                BTreeMap::new(),
                BTreeMap::new(),
            )
            .unwrap();
        assert_eq!(again, v);
        assert_eq!(s.get("data").unwrap(), v);
        let anon = s
            .create(None, None, BTreeMap::new(), BTreeMap::new())
            .unwrap();
        assert_eq!(anon.name.len(), 64);
        assert!(anon.name.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(anon.anonymous);
        assert_eq!(
            anon.labels.get(ANONYMOUS_LABEL).map(String::as_str),
            Some("")
        );
        let names: Vec<String> = s.list().unwrap().into_iter().map(|v| v.name).collect();
        let mut sorted = vec!["data".to_string(), anon.name.clone()];
        sorted.sort();
        assert_eq!(names, sorted);
        let e = s.get("nope").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "get nope: no such volume");
    }

    #[test]
    fn create_validation() {
        let (_d, s, _, _) = store();
        let e = s
            .create(Some("a"), None, BTreeMap::new(), BTreeMap::new())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "create a: volume name is too short, names should be at least two alphanumeric characters"
        );
        let e = s
            .create(Some("hello world"), None, BTreeMap::new(), BTreeMap::new())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "create hello world: \"hello world\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
        let cases = [
            (map(&[("foo", "bar")]), "create vv: invalid option: \"foo\""),
            (
                map(&[("device", "x")]),
                "create vv: missing required option: \"type\"",
            ),
            (
                map(&[("type", "x")]),
                "create vv: missing required option: \"device\"",
            ),
            (
                map(&[("o", "x"), ("device", "d")]),
                "create vv: missing required option: \"type\"",
            ),
            (
                map(&[("size", "1m")]),
                "create vv: quota size requested but no quota support",
            ),
        ];
        for (opts, want) in cases {
            let e = s
                .create(Some("vv"), None, opts, BTreeMap::new())
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert_eq!(e.to_string(), want);
        }
        let e = s
            .create(
                Some("vv"),
                Some("nfs-plugin"),
                BTreeMap::new(),
                BTreeMap::new(),
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn remove_semantics() {
        let (dir, s, _, _) = store();
        s.create(Some("data"), None, BTreeMap::new(), BTreeMap::new())
            .unwrap();
        std::fs::write(dir.path().join("volumes/data/_data/f"), b"x").unwrap();
        let e = s
            .remove("data", &["c1".to_string(), "c0".to_string()], true)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(e.to_string(), "remove data: volume is in use - [c0, c1]");
        // Mount refs count as use too.
        s.mount("data", "r1").unwrap();
        assert_eq!(
            s.remove("data", &[], false).unwrap_err().to_string(),
            "remove data: volume is in use - [r1]"
        );
        s.unmount("data", "r1").unwrap();
        s.remove("data", &[], false).unwrap();
        assert!(!dir.path().join("volumes/data").exists());
        assert_eq!(s.get("data").unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(
            s.remove("data", &[], false).unwrap_err().to_string(),
            "get data: no such volume"
        );
        s.remove("data", &[], true).unwrap();
        // Nothing left behind in the volumes dir.
        assert_eq!(
            std::fs::read_dir(dir.path().join("volumes"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn mounted_volumes_refcount() {
        let (dir, s, fake, _) = store();
        let opts = map(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m,noexec"),
        ]);
        s.create(Some("tv"), None, opts, BTreeMap::new()).unwrap();
        let data = dir.path().join("volumes/tv/_data");
        assert_eq!(s.mount("tv", "a").unwrap(), data);
        assert_eq!(s.mount("tv", "b").unwrap(), data);
        let calls = fake.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(
            calls[0],
            format!(
                "mount tmpfs {} tmpfs flags={:#x} prop=0x0 data=size=1m",
                data.display(),
                libc::MS_NOEXEC
            )
        );
        s.unmount("tv", "a").unwrap();
        assert_eq!(fake.mounted(), vec![data.clone()]);
        s.unmount("tv", "b").unwrap();
        assert!(fake.mounted().is_empty());
        // Unknown ref after everything is released: fine.
        s.unmount("tv", "zzz").unwrap();
        assert_eq!(
            s.unmount("nope", "a").unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            s.mount("nope", "a").unwrap_err().kind(),
            ErrorKind::NotFound
        );
        // A failed mount leaves no ref behind.
        fake.fail_next_mount(libc::EPERM);
        let e = s.mount("tv", "c").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("failed to mount local volume: mount tmpfs:"),
            "{e}"
        );
        assert!(s.refs("tv").is_empty());
        s.remove("tv", &[], false).unwrap();
    }

    #[test]
    fn bind_volume_mount_request() {
        let (dir, s, fake, _) = store();
        let src = dir.path().join("host");
        std::fs::create_dir(&src).unwrap();
        let opts = map(&[
            ("type", "none"),
            ("o", "bind"),
            ("device", src.to_str().unwrap()),
        ]);
        s.create(Some("bv"), None, opts, BTreeMap::new()).unwrap();
        s.mount("bv", "x").unwrap();
        assert!(fake.calls()[0].contains(&format!(" none flags={:#x} ", libc::MS_BIND)));
        s.unmount("bv", "x").unwrap();
    }

    #[test]
    fn reopen_restores_and_reconciles() {
        let (dir, s, fake, db) = store();
        s.create(
            Some("keep"),
            None,
            map(&[("type", "tmpfs"), ("device", "tmpfs")]),
            map(&[("x", "y")]),
        )
        .unwrap();
        s.create(Some("gone"), None, BTreeMap::new(), BTreeMap::new())
            .unwrap();
        s.mount("keep", "c1").unwrap();
        // Simulate: the data dir of `gone` vanished, a stray dir appeared, a removal was
        // interrupted, and the daemon restarted with `keep` still mounted.
        std::fs::remove_dir_all(dir.path().join("volumes/gone")).unwrap();
        std::fs::create_dir_all(dir.path().join("volumes/stray/_data")).unwrap();
        std::fs::create_dir_all(dir.path().join("volumes/.removing-old-1234/_data/x")).unwrap();
        drop(s);
        let s2 = VolumeStore::open_with_mounter(dir.path(), db, fake.clone()).unwrap();
        assert!(dir.path().join("volumes/gone/_data").is_dir());
        assert!(!dir.path().join("volumes/.removing-old-1234").exists());
        let names: Vec<String> = s2.list().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names, vec!["gone", "keep", "stray"]);
        assert_eq!(s2.get("keep").unwrap().labels, map(&[("x", "y")]));
        // Re-attaching does not mount again; releasing an unknown ref unmounts.
        let before = fake.calls().len();
        s2.mount("keep", "c1").unwrap();
        assert_eq!(fake.calls().len(), before);
        s2.unmount("keep", "c1").unwrap();
        assert!(fake.mounted().is_empty());
    }

    #[test]
    fn restart_release_without_refs() {
        let (dir, s, fake, db) = store();
        s.create(
            Some("t1"),
            None,
            map(&[("type", "tmpfs"), ("device", "tmpfs")]),
            BTreeMap::new(),
        )
        .unwrap();
        s.mount("t1", "c1").unwrap();
        drop(s);
        let s2 = VolumeStore::open_with_mounter(dir.path(), db, fake.clone()).unwrap();
        s2.unmount("t1", "c1").unwrap();
        assert!(fake.mounted().is_empty());
        // Removal of a volume found mounted at start unmounts first.
        s2.mount("t1", "c2").unwrap();
        s2.unmount("t1", "c2").unwrap();
        s2.remove("t1", &[], false).unwrap();
    }

    #[test]
    fn prune_rules() {
        let (dir, s, _, _) = store();
        let anon1 = s
            .create(None, None, BTreeMap::new(), map(&[("env", "dev")]))
            .unwrap();
        let anon2 = s
            .create(None, None, BTreeMap::new(), BTreeMap::new())
            .unwrap();
        s.create(Some("named"), None, BTreeMap::new(), map(&[("env", "dev")]))
            .unwrap();
        s.create(Some("busy"), None, BTreeMap::new(), BTreeMap::new())
            .unwrap();
        std::fs::write(anon1.mountpoint.join("f"), vec![0u8; 1000]).unwrap();
        s.mount(&anon2.name, "r").unwrap();

        let in_use: HashSet<String> = ["busy".to_string()].into();
        let (removed, bytes) = s
            .prune(&in_use, false, &[LabelFilter::label("env=dev")])
            .unwrap();
        assert_eq!(removed, vec![anon1.name.clone()]);
        assert_eq!(bytes, 1000);
        // anon2 holds a mount ref; named is not anonymous.
        let (removed, _) = s.prune(&in_use, false, &[]).unwrap();
        assert!(removed.is_empty());
        s.unmount(&anon2.name, "r").unwrap();
        let (removed, _) = s
            .prune(&in_use, true, &[LabelFilter::not_label("env")])
            .unwrap();
        assert_eq!(removed, vec![anon2.name.clone()]);
        // A volume with driver options is kept even with `all`.
        s.create(
            Some("opts"),
            None,
            map(&[("type", "tmpfs"), ("device", "tmpfs")]),
            BTreeMap::new(),
        )
        .unwrap();
        let (removed, _) = s.prune(&in_use, true, &[]).unwrap();
        assert_eq!(removed, vec!["named".to_string()]);
        assert_eq!(s.list().unwrap().len(), 2);
        assert!(dir.path().join("volumes/busy").exists());
    }

    #[test]
    fn label_filters() {
        let l = map(&[("a", "1"), ("b", "")]);
        assert!(LabelFilter::label("a").matches(&l));
        assert!(LabelFilter::label("a=1").matches(&l));
        assert!(!LabelFilter::label("a=2").matches(&l));
        assert!(LabelFilter::label("b=").matches(&l));
        assert!(!LabelFilter::label("c").matches(&l));
        assert!(LabelFilter::not_label("c").matches(&l));
        assert!(!LabelFilter::not_label("a").matches(&l));
        assert!(LabelFilter::not_label("a=2").matches(&l));
        assert!(LabelFilter::not_label("c=1").matches(&l));
    }

    #[test]
    fn usage_counts_hardlinks_once() {
        let (_d, s, _, _) = store();
        let v = s
            .create(Some("u1"), None, BTreeMap::new(), BTreeMap::new())
            .unwrap();
        assert_eq!(s.usage("u1").unwrap(), 0);
        std::fs::create_dir(v.mountpoint.join("sub")).unwrap();
        std::fs::write(v.mountpoint.join("sub/a"), vec![1u8; 300]).unwrap();
        std::fs::hard_link(v.mountpoint.join("sub/a"), v.mountpoint.join("b")).unwrap();
        std::fs::write(v.mountpoint.join("c"), vec![1u8; 20]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd-not-followed", v.mountpoint.join("l")).unwrap();
        let link_len = "/etc/passwd-not-followed".len() as u64;
        assert_eq!(s.usage("u1").unwrap(), 320 + link_len);
        assert_eq!(s.usage("zz").unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn store_is_send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone>() {}
        assert_traits::<VolumeStore>();
    }
}
