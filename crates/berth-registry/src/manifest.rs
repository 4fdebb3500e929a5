//! What the registry needs to know about a manifest: its media type, the blobs and child
//! manifests it references, its `subject`, `artifactType` and annotations.
//!
//! Manifests are stored byte-exact; this module only *reads* them, with permissive serde
//! models rather than oci-spec's strict types, because a registry must accept manifests
//! with fields it does not know (and Docker schema2 manifests and lists) unchanged.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// Errors from reading a manifest body.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("manifest media type {body:?} in the body differs from Content-Type {header:?}")]
    MediaTypeMismatch { header: String, body: String },
    #[error("manifest has no media type: no Content-Type and no mediaType field")]
    NoMediaType,
    #[error("manifest field {field} is invalid: {message}")]
    Field { field: String, message: String },
}

/// A content descriptor as it appears in manifests.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub annotations: Option<Map<String, Value>>,
    #[serde(default)]
    pub artifact_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: Option<Map<String, Value>>,
}

/// The parts of a manifest the registry acts on.
#[derive(Debug, Clone)]
pub struct ManifestInfo {
    /// The effective media type (Content-Type, else the body's, else inferred).
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub config: Option<(Digest, String)>,
    /// Blobs that must exist in the repository (layers with `urls` are foreign and exempt).
    pub blobs: Vec<Digest>,
    /// Child manifests (of an index) that must exist in the repository.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    pub annotations: Option<Map<String, Value>>,
}

fn digest_of(field: &str, d: &Descriptor) -> Result<Digest, ManifestError> {
    d.digest.parse().map_err(|e| ManifestError::Field {
        field: field.to_string(),
        message: format!("{e}"),
    })
}

/// Strip parameters (`; charset=...`) and whitespace from a Content-Type value.
pub fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Whether a media type is one whose references the registry checks.
pub fn is_known(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_LIST
    )
}

/// Read a manifest body. `content_type` is the request's Content-Type, if any.
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<ManifestInfo, ManifestError> {
    let raw: Raw = serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
    let header = content_type
        .map(essence)
        .filter(|c| !c.is_empty() && *c != "application/octet-stream" && *c != "application/json");
    let media_type = match (header, raw.media_type.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(ManifestError::MediaTypeMismatch {
                header: h.to_string(),
                body: b.to_string(),
            })
        }
        (Some(h), _) => h.to_string(),
        (None, Some(b)) => b.to_string(),
        // The image spec's rule for manifests without mediaType: infer from the shape.
        (None, None) if raw.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) if raw.config.is_some() => OCI_MANIFEST.to_string(),
        (None, None) => return Err(ManifestError::NoMediaType),
    };
    let mut info = ManifestInfo {
        media_type,
        artifact_type: raw.artifact_type.clone(),
        config: None,
        blobs: Vec::new(),
        manifests: Vec::new(),
        subject: raw
            .subject
            .as_ref()
            .map(|s| digest_of("subject", s))
            .transpose()?,
        annotations: raw.annotations.clone(),
    };
    match info.media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = raw.config.as_ref().ok_or_else(|| ManifestError::Field {
                field: "config".into(),
                message: "missing".into(),
            })?;
            let cd = digest_of("config", config)?;
            info.blobs.push(cd.clone());
            info.config = Some((cd, config.media_type.clone()));
            for (i, l) in raw.layers.iter().flatten().enumerate() {
                let d = digest_of(&format!("layers[{i}]"), l)?;
                if l.urls.is_empty() {
                    info.blobs.push(d);
                }
            }
        }
        OCI_INDEX | DOCKER_LIST => {
            let list = raw.manifests.as_ref().ok_or_else(|| ManifestError::Field {
                field: "manifests".into(),
                message: "missing".into(),
            })?;
            for (i, m) in list.iter().enumerate() {
                info.manifests
                    .push(digest_of(&format!("manifests[{i}]"), m)?);
            }
        }
        _ => {}
    }
    Ok(info)
}

impl ManifestInfo {
    /// The artifact type the referrers API reports: `artifactType`, else the config's media
    /// type for image manifests (the spec's rule).
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|(_, mt)| mt.clone()))
    }
}

/// Whether `accept` (the values of all Accept headers) admits `media_type`. No Accept header
/// admits everything.
pub fn accepts(accept: &[String], media_type: &str) -> bool {
    let types: Vec<&str> = accept
        .iter()
        .flat_map(|v| v.split(','))
        .map(essence)
        .filter(|t| !t.is_empty())
        .collect();
    types.is_empty()
        || types
            .iter()
            .any(|t| *t == "*/*" || *t == media_type || *t == "application/*")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> String {
        Digest::sha256_of(s.as_bytes()).to_string()
    }

    #[test]
    fn image_manifest() {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.example+json", "digest": d("c"), "size": 1},
            "layers": [
                {"mediaType": "x", "digest": d("l1"), "size": 1},
                {"mediaType": "x", "digest": d("foreign"), "size": 1, "urls": ["http://x"]}
            ],
            "subject": {"mediaType": OCI_MANIFEST, "digest": d("s"), "size": 1},
            "annotations": {"a": "b"}
        });
        let info = parse(body.to_string().as_bytes(), None).expect("parse");
        assert_eq!(info.media_type, OCI_MANIFEST);
        assert_eq!(info.blobs.len(), 2, "config and one non-foreign layer");
        assert_eq!(info.subject, Some(d("s").parse().expect("digest")));
        assert_eq!(
            info.effective_artifact_type().as_deref(),
            Some("application/vnd.example+json")
        );
    }

    #[test]
    fn media_type_rules() {
        let body = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
        let raw = body.to_string();
        assert!(matches!(
            parse(raw.as_bytes(), Some(OCI_MANIFEST)),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        let info = parse(
            raw.as_bytes(),
            Some("application/vnd.oci.image.index.v1+json; x=y"),
        )
        .expect("params ignored");
        assert_eq!(info.media_type, OCI_INDEX);
        let bare =
            serde_json::json!({"schemaVersion": 2, "manifests": [{"digest": d("m"), "size": 1}]});
        let info = parse(bare.to_string().as_bytes(), None).expect("inferred");
        assert_eq!(info.media_type, OCI_INDEX);
        assert_eq!(info.manifests.len(), 1);
        assert!(parse(b"not json", None).is_err());
        let bad = serde_json::json!({"mediaType": OCI_MANIFEST, "config": {"digest": "sha256:zz"}});
        assert!(matches!(
            parse(bad.to_string().as_bytes(), None),
            Err(ManifestError::Field { .. })
        ));
    }

    #[test]
    fn accept_negotiation() {
        assert!(accepts(&[], OCI_MANIFEST));
        assert!(accepts(
            &[format!("{DOCKER_MANIFEST}, {OCI_MANIFEST};q=0.5")],
            OCI_MANIFEST
        ));
        assert!(!accepts(&[DOCKER_MANIFEST.to_string()], OCI_MANIFEST));
        assert!(accepts(&["*/*".to_string()], OCI_INDEX));
    }
}
