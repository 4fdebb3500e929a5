//! Manifest and index models (OCI and Docker schema 2), media types, platform selection,
//! and the manifest berth writes when it pushes.
//!
//! The models are deliberately loose (unknown fields ignored, most fields optional) so
//! that manifests written by any tool parse; the bytes as received are what gets hashed,
//! never a re-serialisation.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header of a manifest GET: every type berth can use, images first.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest accepted (distribution's default limit).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An image manifest (OCI or Docker schema 2: the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An OCI index or a Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// A fetched manifest, classified.
#[derive(Debug, Clone)]
pub enum Manifest {
    Image(ImageManifest),
    Index(Index),
}

impl Manifest {
    /// Classify by the Content-Type, falling back to the body's own `mediaType` and shape
    /// (registries sometimes answer `application/json`).
    pub fn parse(content_type: &str, bytes: &[u8]) -> Result<Manifest> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(rename = "schemaVersion", default)]
            schema_version: u32,
            #[serde(rename = "mediaType", default)]
            media_type: String,
            #[serde(default)]
            manifests: Option<serde_json::Value>,
            #[serde(default)]
            config: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| Error::Protocol(format!("invalid manifest json: {e}")))?;
        let ct = content_type.split(';').next().unwrap_or("").trim();
        let mt = if ct.is_empty() || ct == "application/json" || ct == "text/plain" {
            probe.media_type.as_str()
        } else {
            ct
        };
        let bad = |e: serde_json::Error| Error::Protocol(format!("invalid manifest {mt}: {e}"));
        match mt {
            OCI_INDEX | DOCKER_LIST => {
                Ok(Manifest::Index(serde_json::from_slice(bytes).map_err(bad)?))
            }
            OCI_MANIFEST | DOCKER_MANIFEST => {
                Ok(Manifest::Image(serde_json::from_slice(bytes).map_err(bad)?))
            }
            DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Err(Error::UnsupportedMediaType(format!(
                "{mt} (Docker Image manifest v2, schema 1 is no longer supported)"
            ))),
            _ if probe.schema_version == 1 => {
                Err(Error::UnsupportedMediaType(DOCKER_SCHEMA1.to_string()))
            }
            _ if probe.manifests.is_some() => {
                Ok(Manifest::Index(serde_json::from_slice(bytes).map_err(bad)?))
            }
            _ if probe.config.is_some() => {
                Ok(Manifest::Image(serde_json::from_slice(bytes).map_err(bad)?))
            }
            other => Err(Error::UnsupportedMediaType(other.to_string())),
        }
    }
}

/// A wanted platform: `os/arch[/variant]`, default the host's linux platform.
pub fn parse_platform(p: Option<&str>) -> Result<Platform> {
    let host_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        other => other,
    };
    let Some(p) = p.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(Platform {
            os: "linux".into(),
            architecture: host_arch.into(),
            variant: None,
        });
    };
    let parts: Vec<String> = p.split('/').map(str::to_lowercase).collect();
    if parts.iter().any(String::is_empty) || parts.len() > 3 {
        return Err(Error::InvalidArgument(format!(
            "invalid platform {p:?}: expected os/arch[/variant]"
        )));
    }
    let arch = match parts.get(1).map(String::as_str) {
        None => host_arch.to_string(),
        Some("x86_64" | "x86-64") => "amd64".to_string(),
        Some("aarch64") => "arm64".to_string(),
        Some(a) => a.to_string(),
    };
    Ok(Platform {
        os: parts[0].clone(),
        architecture: arch,
        variant: parts.get(2).cloned(),
    })
}

pub fn platform_string(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// The entry of an index to pull for `want`, as containerd's platform matcher does for
/// the common cases: os and architecture must match; a wanted variant must match; with
/// no wanted variant an entry without one (or arm64's implied `v8`) is preferred.
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Result<&'a Descriptor> {
    let mut best: Option<(u8, &Descriptor)> = None;
    for d in &index.manifests {
        if !matches!(d.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST | "") {
            continue;
        }
        let Some(p) = &d.platform else { continue };
        if !p.os.eq_ignore_ascii_case(&want.os)
            || !p.architecture.eq_ignore_ascii_case(&want.architecture)
        {
            continue;
        }
        let variant = p.variant.as_deref().filter(|v| !v.is_empty());
        let score = match (want.variant.as_deref(), variant) {
            (Some(w), Some(v)) if w.eq_ignore_ascii_case(v) => 3,
            (Some(_), _) => continue,
            (None, None) => 3,
            (None, Some("v8")) if want.architecture == "arm64" => 3,
            (None, Some(_)) => 1,
        };
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, d));
        }
    }
    best.map(|(_, d)| d)
        .ok_or_else(|| Error::NoMatchingPlatform(platform_string(want)))
}

/// The manifest to push for an image with `config` and layers `(blob digest, media type,
/// size)`: Docker schema 2 when every layer already has a Docker media type (the image
/// came from a Docker-format pull), OCI otherwise, with the layers' media types mapped
/// to the chosen family so that the manifest is consistent.
pub fn build_manifest(
    config_digest: &str,
    config_size: u64,
    layers: &[(String, String, u64)],
) -> (String, Vec<u8>) {
    let docker = !layers.is_empty()
        && layers
            .iter()
            .all(|(_, mt, _)| mt.starts_with("application/vnd.docker."));
    let (manifest_type, config_type) = if docker {
        (DOCKER_MANIFEST, DOCKER_CONFIG)
    } else {
        (OCI_MANIFEST, OCI_CONFIG)
    };
    let layers = layers
        .iter()
        .map(|(digest, mt, size)| {
            let mt = match (docker, mt.as_str()) {
                (false, DOCKER_LAYER_GZIP) => OCI_LAYER_GZIP,
                (false, m) if m.is_empty() || m.starts_with("application/vnd.docker.") => OCI_LAYER,
                (_, m) => m,
            };
            Descriptor {
                media_type: mt.to_string(),
                digest: digest.clone(),
                size: *size,
                platform: None,
            }
        })
        .collect();
    let m = ImageManifest {
        schema_version: 2,
        media_type: manifest_type.to_string(),
        config: Descriptor {
            media_type: config_type.to_string(),
            digest: config_digest.to_string(),
            size: config_size,
            platform: None,
        },
        layers,
    };
    let bytes = serde_json::to_vec_pretty(&m).expect("manifest serialises");
    (manifest_type.to_string(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(os: &str, arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", hex::encode([n; 32])),
            size: 1,
            platform: Some(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(str::to_string),
            }),
        }
    }

    #[test]
    fn platform_selection() {
        let idx = Index {
            manifests: vec![
                desc("unknown", "unknown", None, 0),
                desc("linux", "arm", Some("v7"), 1),
                desc("linux", "arm64", Some("v8"), 2),
                desc("linux", "amd64", None, 3),
                desc("linux", "arm", Some("v6"), 4),
            ],
        };
        let pick = |p: &str| {
            select_platform(&idx, &parse_platform(Some(p)).expect("platform"))
                .map(|d| d.digest.clone())
        };
        assert_eq!(pick("linux/amd64").expect("amd64"), idx.manifests[3].digest);
        assert_eq!(pick("linux/arm64").expect("arm64"), idx.manifests[2].digest);
        assert_eq!(pick("linux/arm/v6").expect("v6"), idx.manifests[4].digest);
        assert_eq!(pick("linux/arm").expect("any arm"), idx.manifests[1].digest);
        let err = pick("linux/s390x").expect_err("no s390x");
        assert_eq!(
            err.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
        assert!(parse_platform(Some("linux//x")).is_err());
        assert_eq!(
            parse_platform(Some("linux/x86_64"))
                .expect("alias")
                .architecture,
            "amd64"
        );
    }

    #[test]
    fn classify() {
        let img = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:00","size":1},"layers":[]}"#;
        assert!(matches!(
            Manifest::parse(OCI_MANIFEST, img).expect("oci"),
            Manifest::Image(_)
        ));
        assert!(matches!(
            Manifest::parse("application/json", img).expect("by shape"),
            Manifest::Image(_)
        ));
        assert!(matches!(
            Manifest::parse(DOCKER_LIST, br#"{"schemaVersion":2,"manifests":[]}"#).expect("list"),
            Manifest::Index(_)
        ));
        assert!(matches!(
            Manifest::parse("", br#"{"schemaVersion":1,"fsLayers":[]}"#),
            Err(Error::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn pushed_manifest_family() {
        let d = |n: u8| format!("sha256:{}", hex::encode([n; 32]));
        let (mt, bytes) = build_manifest(&d(1), 10, &[(d(2), DOCKER_LAYER_GZIP.into(), 5)]);
        assert_eq!(mt, DOCKER_MANIFEST);
        let m: ImageManifest = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(m.config.media_type, DOCKER_CONFIG);
        let (mt, bytes) = build_manifest(
            &d(1),
            10,
            &[
                (d(2), DOCKER_LAYER_GZIP.into(), 5),
                (d(3), OCI_LAYER.into(), 6),
            ],
        );
        assert_eq!(mt, OCI_MANIFEST);
        let m: ImageManifest = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(m.layers[0].media_type, OCI_LAYER_GZIP);
        assert_eq!(m.layers[1].media_type, OCI_LAYER);
        assert_eq!(m.config.media_type, OCI_CONFIG);
    }
}
