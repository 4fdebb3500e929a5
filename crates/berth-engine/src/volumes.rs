//! The engine's volume service: `docker volume` create, ls, inspect, rm and prune with
//! Docker's JSON shapes, the `volume` events, and the usage figures of `system df`.
//!
//! The data lives in berth-volume's [`berth_volume::VolumeStore`] (records in the shared
//! redb, data under `<data-root>/volumes`); this module adds what only the engine knows:
//! which containers use a volume. A volume is in use while any container, running or not,
//! has a mount point on it (dockerd's rule), so `rm` of such a volume is a conflict naming
//! the containers and prune skips it.

use crate::filters::Filters;
use crate::{Engine, Error, Result};
use berth_volume::{LabelFilter, Volume};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Body of `POST /volumes/create`.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeCreateBody {
    pub name: String,
    pub driver: String,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

const LIST_FILTERS: &[&str] = &["dangling", "name", "driver", "label"];
const PRUNE_FILTERS: &[&str] = &["label", "label!", "all"];

/// A volume as Docker's `Volume` object (`docker volume inspect`).
pub fn volume_json(v: &Volume) -> Value {
    json!({
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        // dockerd stores the options of anonymous volumes as null, and of created ones as
        // given (an empty object from the CLI).
        "Options": if v.anonymous && v.options.is_empty() { Value::Null } else { json!(v.options) },
        "Scope": v.scope,
    })
}

/// The prune filter `all`, read as dockerd's `withPrune` reads it: one value, in Go's
/// `strconv.ParseBool` spellings.
fn prune_all(filters: &Filters) -> Result<bool> {
    match filters.get("all") {
        [] => Ok(false),
        [one] => match one.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            other => Err(Error::InvalidArgument(format!(
                "invalid filter 'all': strconv.ParseBool: parsing \"{other}\": invalid syntax"
            ))),
        },
        many => Err(Error::InvalidArgument(format!(
            "invalid filter 'all=[{}]': only one value is expected",
            many.join(" ")
        ))),
    }
}

impl Engine {
    /// Volume name → ids of the containers with a mount point on it.
    pub(crate) fn volume_users(&self) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for h in self.all_handles() {
            let c = h.snapshot();
            for mp in c.mount_points.iter().filter(|m| m.is_volume()) {
                let ids = out.entry(mp.name.clone()).or_default();
                if !ids.contains(&c.id) {
                    ids.push(c.id.clone());
                }
            }
        }
        out
    }

    pub(crate) fn emit_volume(
        &self,
        action: &str,
        name: &str,
        mut attrs: BTreeMap<String, String>,
    ) {
        attrs
            .entry("driver".to_string())
            .or_insert_with(|| "local".to_string());
        self.events().emit("volume", action, name, attrs);
    }

    /// `POST /volumes/create`: creates the volume, or returns the one of that name. Without
    /// a name it gets a random one but is not anonymous (no anonymous label, kept by a
    /// plain `prune`): in dockerd only a container's unnamed volumes are anonymous.
    pub async fn create_volume(&self, body: VolumeCreateBody) -> Result<Value> {
        self.blocking(move |e| {
            let name = if body.name.is_empty() {
                crate::util::new_id()
            } else {
                body.name.clone()
            };
            let v = e.inner.volumes.create(
                Some(name.as_str()),
                Some(body.driver.as_str()),
                body.driver_opts.clone().unwrap_or_default(),
                body.labels.clone().unwrap_or_default(),
            )?;
            e.emit_volume("create", &v.name, BTreeMap::new());
            Ok(volume_json(&v))
        })
        .await
    }

    /// `GET /volumes`: `{"Volumes": [...], "Warnings": []}` with Docker's filters.
    pub async fn list_volumes(&self, filters: Filters) -> Result<Value> {
        filters.validate(LIST_FILTERS)?;
        let dangling = filters.bool_value("dangling")?;
        self.blocking(move |e| {
            let users = e.volume_users();
            let labels: Vec<LabelFilter> = filters
                .get("label")
                .iter()
                .map(|l| LabelFilter::label(l))
                .collect();
            let mut out = Vec::new();
            for v in e.inner.volumes.list()? {
                if !filters.matches("name", &v.name) {
                    continue;
                }
                if filters.has("driver") && !filters.get("driver").contains(&v.driver) {
                    continue;
                }
                if !labels.iter().all(|f| f.matches(&v.labels)) {
                    continue;
                }
                if let Some(d) = dangling {
                    if users.contains_key(&v.name) == d {
                        continue;
                    }
                }
                out.push(volume_json(&v));
            }
            Ok(json!({"Volumes": out, "Warnings": []}))
        })
        .await
    }

    /// `GET /volumes/{name}`; with `usage`, Docker's `UsageData` (size and ref count).
    pub async fn inspect_volume(&self, name: &str, usage: bool) -> Result<Value> {
        let name = name.to_string();
        self.blocking(move |e| {
            let v = e.inner.volumes.get(&name)?;
            let mut out = volume_json(&v);
            if usage {
                out["UsageData"] = e.usage_data(&v, &e.volume_users())?;
            }
            Ok(out)
        })
        .await
    }

    fn usage_data(&self, v: &Volume, users: &HashMap<String, Vec<String>>) -> Result<Value> {
        let size = self.inner.volumes.usage(&v.name)?;
        let refs = users.get(&v.name).map(Vec::len).unwrap_or(0);
        Ok(json!({"Size": size, "RefCount": refs}))
    }

    /// `DELETE /volumes/{name}`: a volume a container uses is a conflict even with `force`
    /// (which only forgives a missing volume), as in dockerd.
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let name = name.to_string();
        self.blocking(move |e| {
            let in_use = e.volume_users().remove(&name).unwrap_or_default();
            let existed = e.inner.volumes.get(&name).is_ok();
            e.inner.volumes.remove(&name, &in_use, force)?;
            if existed {
                e.emit_volume("destroy", &name, BTreeMap::new());
            }
            Ok(())
        })
        .await
    }

    /// `POST /volumes/prune`: unused anonymous volumes, or all unused ones with `all=true`,
    /// matching the label filters.
    pub async fn prune_volumes(&self, filters: Filters) -> Result<Value> {
        filters.validate(PRUNE_FILTERS)?;
        let all = prune_all(&filters)?;
        self.blocking(move |e| {
            let mut labels: Vec<LabelFilter> = filters
                .get("label")
                .iter()
                .map(|l| LabelFilter::label(l))
                .collect();
            labels.extend(
                filters
                    .get("label!")
                    .iter()
                    .map(|l| LabelFilter::not_label(l)),
            );
            let in_use: HashSet<String> = e.volume_users().into_keys().collect();
            let (removed, reclaimed) = e.inner.volumes.prune(&in_use, all, &labels)?;
            for n in &removed {
                e.emit_volume("destroy", n, BTreeMap::new());
            }
            let mut attrs = BTreeMap::new();
            attrs.insert("reclaimed".to_string(), reclaimed.to_string());
            e.events().emit("volume", "prune", "", attrs);
            Ok(json!({"VolumesDeleted": removed, "SpaceReclaimed": reclaimed}))
        })
        .await
    }

    /// Every volume with its `UsageData`, for `GET /system/df`. Volumes created with driver
    /// options are left out, as dockerd's `LocalVolumesSize` does: their data lives on a
    /// tmpfs or another host path, not on the disk `df` reports about.
    pub async fn volumes_df(&self) -> Result<Vec<Value>> {
        self.blocking(|e| {
            let users = e.volume_users();
            let mut out = Vec::new();
            for v in e.inner.volumes.list()? {
                if !v.options.is_empty() {
                    continue;
                }
                let mut j = volume_json(&v);
                j["UsageData"] = e.usage_data(&v, &users).unwrap_or_else(|err| {
                    tracing::warn!(volume = %v.name, "volume usage: {err}");
                    json!({"Size": -1, "RefCount": users.get(&v.name).map(Vec::len).unwrap_or(0)})
                });
                out.push(j);
            }
            Ok(out)
        })
        .await
    }

    /// A volume's record, for callers in the engine that need its path.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        self.inner.volumes.get(name).map_err(Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn vol(anonymous: bool) -> Volume {
        let mut labels = BTreeMap::new();
        if anonymous {
            labels.insert("com.docker.volume.anonymous".to_string(), String::new());
        }
        Volume {
            name: "v1".into(),
            driver: "local".into(),
            mountpoint: PathBuf::from("/d/volumes/v1/_data"),
            created_at: "2024-01-01T00:00:00Z".into(),
            labels,
            options: BTreeMap::new(),
            scope: "local".into(),
            anonymous,
        }
    }

    #[test]
    fn prune_all_filter() {
        let f = |raw: &str| Filters::parse(Some(raw)).expect("valid json");
        assert!(!prune_all(&f("{}")).expect("absent"));
        assert!(prune_all(&f(r#"{"all":["True"]}"#)).expect("go bool"));
        assert!(!prune_all(&f(r#"{"all":["0"]}"#)).expect("go bool"));
        assert_eq!(
            prune_all(&f(r#"{"all":["maybe"]}"#))
                .expect_err("not a bool")
                .to_string(),
            "invalid filter 'all': strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
        assert_eq!(
            prune_all(&f(r#"{"all":["false","true"]}"#))
                .expect_err("two values")
                .to_string(),
            "invalid filter 'all=[false true]': only one value is expected"
        );
    }

    #[test]
    fn json_shape() {
        let j = volume_json(&vol(false));
        assert_eq!(
            j,
            json!({"CreatedAt":"2024-01-01T00:00:00Z","Driver":"local","Labels":{},
                "Mountpoint":"/d/volumes/v1/_data","Name":"v1","Options":{},"Scope":"local"})
        );
        let j = volume_json(&vol(true));
        assert_eq!(j["Options"], Value::Null);
        assert_eq!(j["Labels"]["com.docker.volume.anonymous"], "");
    }

    #[test]
    fn create_body_decodes_docker_cli_form() {
        let b: VolumeCreateBody = serde_json::from_value(
            json!({"Name":"x","Driver":"local","DriverOpts":{},"Labels":{"a":"b"}}),
        )
        .expect("decode");
        assert_eq!(b.name, "x");
        assert_eq!(b.labels.expect("labels")["a"], "b");
        let b: VolumeCreateBody = serde_json::from_value(json!({})).expect("decode empty");
        assert!(b.name.is_empty());
    }
}
