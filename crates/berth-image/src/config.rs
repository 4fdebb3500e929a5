//! The image config JSON (Docker's and OCI's `application/vnd.oci.image.config.v1+json`),
//! with Docker's exact field names. Unknown fields are kept in `extra` so a config read
//! from an archive re-serialises without losing anything; the image id, though, is always
//! the digest of the bytes as stored, never of a re-serialisation.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole image config document.
#[derive(Serialize, Deserialize, Clone, Default, Debug, PartialEq)]
pub struct ImageConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub config: ContainerConfig,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields berth does not model (`container_config`, `docker_version`, `os.version`...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The runtime defaults an image carries (`config` in the JSON).
#[derive(Serialize, Deserialize, Clone, Default, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Docker-only keys such as `AttachStdin` kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `rootfs`: the layer diff ids, bottom first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RootFs {
    /// Always "layers".
    #[serde(rename = "type")]
    pub r#type: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            r#type: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// One `history` entry; `empty_layer` entries have no layer in `rootfs`.
#[derive(Serialize, Deserialize, Clone, Default, Debug, PartialEq)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

/// RFC 3339 with nanoseconds in UTC, as Go's `time.RFC3339Nano` prints it.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Unix seconds of an RFC 3339 time, 0 if it does not parse (docker shows such images
/// as created at the epoch rather than failing).
pub fn unix_seconds(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_docker_field_names_and_unknown_fields() {
        let json = r#"{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
            "config":{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/w","ExposedPorts":{"80/tcp":{}},
                      "AttachStdin":false},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},
            "history":[{"created_by":"x","empty_layer":true}],
            "docker_version":"25.0"}"#;
        let c: ImageConfigFile = serde_json::from_str(json).expect("parse");
        assert_eq!(c.config.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(c.config.working_dir.as_deref(), Some("/w"));
        assert_eq!(c.history[0].empty_layer, Some(true));
        assert_eq!(c.extra["docker_version"], "25.0");
        let out = serde_json::to_value(&c).expect("serialize");
        assert_eq!(out["config"]["AttachStdin"], false);
        assert_eq!(
            out["config"]["ExposedPorts"]["80/tcp"],
            serde_json::json!({})
        );
        assert_eq!(out["rootfs"]["type"], "layers");
        assert!(out["config"].get("User").is_none());
        assert_eq!(unix_seconds("2024-01-01T00:00:00Z"), 1704067200);
    }
}
