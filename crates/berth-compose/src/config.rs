//! Rendering of a loaded project for `compose config`: YAML (the default) or JSON, in
//! docker compose's top-level key order (`name`, `services`, `networks`, `volumes`,
//! `secrets`, `configs`); maps inside are sorted by key as compose-go prints them.

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::loader::Project;

/// Rendering failures.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot render the project as yaml: {0}")]
    Yaml(String),
    #[error("cannot render the project as json: {0}")]
    Json(#[from] serde_json::Error),
}

struct Ordered<'a>(&'a Project);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let items = self.0.ordered();
        let mut m = s.serialize_map(Some(items.len()))?;
        for (k, v) in items {
            m.serialize_entry(k, &sorted(v))?;
        }
        m.end()
    }
}

/// The model as YAML.
pub fn to_yaml(p: &Project) -> Result<String, ConfigError> {
    serde_saphyr::to_string(&Ordered(p)).map_err(|e| ConfigError::Yaml(e.to_string()))
}

/// The model as indented JSON.
pub fn to_json(p: &Project) -> Result<String, ConfigError> {
    Ok(serde_json::to_string_pretty(&Ordered(p))?)
}

/// `v` with every mapping's keys in sorted order, as compose-go prints its maps.
fn sorted(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
