//! A cache of compiled seccomp filters, so the runtime compiles each profile once.
//!
//! Compiling Docker's default profile (about 350 syscall names, several architectures) with
//! libseccomp is the single most expensive step of `crun create` here: about 9 ms of CPU per
//! container, half of crun's total. crun accepts a precompiled filter through the
//! `run.oci.seccomp_bpf_data` annotation (base64 of the raw `struct sock_filter` array it
//! passes to `seccomp(SECCOMP_SET_MODE_FILTER)`; crun(1), "Extensions to OCI"), and when it
//! compiles a profile itself it leaves the result in its state directory as
//! `<runtime root>/<id>/seccomp.bpf` until `delete`. So the first container with a given
//! profile is created the normal way; its `seccomp.bpf` is then copied into the cache, and
//! later containers with the same profile carry the annotation instead.
//!
//! Correctness rules, since a wrong filter is a wrong sandbox:
//! - The key is a SHA-256 over the exact `linux.seccomp` section, the runtime binary and the
//!   kernel release: libseccomp's output depends on all three.
//! - Only crun understands the annotation (runc ignores it and compiles the JSON section,
//!   which is still in config.json), so other runtimes never use the cache.
//! - crun ignores the whole seccomp section when the annotation is set, so profiles with
//!   `flags` or a `listenerPath` (which the raw filter cannot express) bypass the cache, and
//!   an annotation the user set is never replaced.
//! - Entries are written atomically (temp file, rename) and must be a non-empty multiple of
//!   the 8-byte `sock_filter` size; anything else is treated as a miss and overwritten.
//! - The cache lives under the exec root, next to the other runtime state of this boot.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The crun annotation carrying a precompiled filter.
pub const BPF_ANNOTATION: &str = "run.oci.seccomp_bpf_data";

/// Size of one classic BPF instruction (`struct sock_filter`).
const SOCK_FILTER_SIZE: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum SeccompCacheError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("compiled seccomp filter {path} is not a whole number of instructions ({len} bytes)")]
    BadFilter { path: PathBuf, len: usize },
}

/// The cache directory (one file per profile key).
#[derive(Debug, Clone)]
pub struct SeccompCache {
    dir: PathBuf,
}

/// What [`SeccompCache::prepare`] did to a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// No seccomp section, a runtime other than crun, or a profile the annotation cannot
    /// carry: the runtime compiles the JSON section as usual.
    NotApplicable,
    /// The annotation was set from the cache.
    Hit,
    /// Not cached yet: after the runtime has created the container, call
    /// [`SeccompCache::fill`] with this entry.
    Miss(PathBuf),
}

impl SeccompCache {
    pub fn new(dir: impl Into<PathBuf>) -> SeccompCache {
        SeccompCache { dir: dir.into() }
    }

    /// The cache key of `spec` for `runtime`, if the cache may be used for it.
    pub fn key(spec: &Value, runtime: &Path, kernel_release: &str) -> Option<String> {
        if !is_crun(runtime) {
            return None;
        }
        let seccomp = spec.get("linux")?.get("seccomp")?;
        if seccomp.get("listenerPath").is_some()
            || seccomp
                .get("flags")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
        {
            return None;
        }
        if spec
            .get("annotations")
            .and_then(|a| a.get(BPF_ANNOTATION))
            .is_some()
        {
            return None;
        }
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(seccomp).expect("json value serializes"));
        h.update([0]);
        h.update(runtime.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(kernel_release.as_bytes());
        Some(hex(&h.finalize()))
    }

    /// Set the annotation on `spec` when its filter is cached; say where to store it when not.
    pub fn prepare(&self, spec: &mut Value, runtime: &Path) -> Prepared {
        let Some(key) = Self::key(spec, runtime, &kernel_release()) else {
            return Prepared::NotApplicable;
        };
        let entry = self.dir.join(format!("{key}.bpf"));
        match fs::read(&entry) {
            Ok(data) if valid_filter(&data) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
                if !spec["annotations"].is_object() {
                    spec["annotations"] = Value::Object(Default::default());
                }
                spec["annotations"][BPF_ANNOTATION] = Value::String(b64);
                Prepared::Hit
            }
            _ => Prepared::Miss(entry),
        }
    }

    /// Copy the filter the runtime compiled for container `id` into `entry`.
    pub fn fill(entry: &Path, runtime_root: &Path, id: &str) -> Result<(), SeccompCacheError> {
        let src = runtime_root.join(id).join("seccomp.bpf");
        let data = fs::read(&src).map_err(|source| SeccompCacheError::Io {
            op: "read",
            path: src.clone(),
            source,
        })?;
        if !valid_filter(&data) {
            return Err(SeccompCacheError::BadFilter {
                path: src,
                len: data.len(),
            });
        }
        let io_err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| SeccompCacheError::Io { op, path, source }
        };
        let dir = entry.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        // Unique per container: concurrent fills of one key never share a temp file. No
        // fsync: the cache is runtime state, and a torn entry fails `valid_filter` anyway.
        let tmp = dir.join(format!(".{id}.tmp"));
        fs::write(&tmp, &data).map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, entry).map_err(io_err("rename", entry))
    }
}

fn valid_filter(data: &[u8]) -> bool {
    !data.is_empty() && data.len().is_multiple_of(SOCK_FILTER_SIZE)
}

fn is_crun(runtime: &Path) -> bool {
    runtime
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "crun" || n.starts_with("crun-") || n.starts_with("crun."))
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({
            "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
            ]}}
        })
    }

    #[test]
    fn key_depends_on_profile_runtime_and_kernel() {
        let crun = Path::new("/usr/bin/crun");
        let a = SeccompCache::key(&spec(), crun, "6.1").expect("key");
        assert_eq!(a.len(), 64);
        assert_eq!(SeccompCache::key(&spec(), crun, "6.1"), Some(a.clone()));
        assert_ne!(SeccompCache::key(&spec(), crun, "6.2"), Some(a.clone()));
        assert_ne!(
            SeccompCache::key(&spec(), Path::new("/opt/crun"), "6.1"),
            Some(a.clone())
        );
        let mut other = spec();
        other["linux"]["seccomp"]["syscalls"][0]["names"] = json!(["write"]);
        assert_ne!(SeccompCache::key(&other, crun, "6.1"), Some(a));
    }

    #[test]
    fn not_applicable_cases() {
        let crun = Path::new("crun");
        assert!(SeccompCache::key(&spec(), Path::new("runc"), "6.1").is_none());
        assert!(SeccompCache::key(&json!({"linux": {}}), crun, "6.1").is_none());
        let mut s = spec();
        s["linux"]["seccomp"]["flags"] = json!(["SECCOMP_FILTER_FLAG_LOG"]);
        assert!(SeccompCache::key(&s, crun, "6.1").is_none());
        let mut s = spec();
        s["linux"]["seccomp"]["listenerPath"] = json!("/run/l.sock");
        assert!(SeccompCache::key(&s, crun, "6.1").is_none());
        let mut s = spec();
        s["annotations"] = json!({ BPF_ANNOTATION: "AAAA" });
        assert!(SeccompCache::key(&s, crun, "6.1").is_none());
        // An empty flags list changes nothing.
        let mut s = spec();
        s["linux"]["seccomp"]["flags"] = json!([]);
        assert!(SeccompCache::key(&s, crun, "6.1").is_some());
    }

    #[test]
    fn miss_fill_then_hit() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = SeccompCache::new(tmp.path().join("cache"));
        let crun = Path::new("/usr/bin/crun");
        let mut s = spec();
        let Prepared::Miss(entry) = cache.prepare(&mut s, crun) else {
            panic!("expected a miss");
        };
        assert!(s.get("annotations").is_none());

        // What crun leaves in its state dir: here two instructions.
        let root = tmp.path().join("runtime");
        fs::create_dir_all(root.join("c1")).expect("mkdir");
        let filter: Vec<u8> = (0u8..16).collect();
        fs::write(root.join("c1/seccomp.bpf"), &filter).expect("write");
        SeccompCache::fill(&entry, &root, "c1").expect("fill");

        let mut s = spec();
        s["annotations"] = json!({"other": "x"});
        assert_eq!(cache.prepare(&mut s, crun), Prepared::Hit);
        let b64 = s["annotations"][BPF_ANNOTATION]
            .as_str()
            .expect("annotation");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        assert_eq!(decoded, filter);
        assert_eq!(s["annotations"]["other"], "x");
    }

    #[test]
    fn torn_entries_are_misses_and_bad_filters_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = SeccompCache::new(tmp.path());
        let crun = Path::new("crun");
        let key = SeccompCache::key(&spec(), crun, &kernel_release()).expect("key");
        fs::write(tmp.path().join(format!("{key}.bpf")), [1u8, 2, 3]).expect("write");
        let mut s = spec();
        assert!(matches!(cache.prepare(&mut s, crun), Prepared::Miss(_)));

        let root = tmp.path().join("runtime");
        fs::create_dir_all(root.join("c2")).expect("mkdir");
        fs::write(root.join("c2/seccomp.bpf"), [0u8; 12]).expect("write");
        let err = SeccompCache::fill(&tmp.path().join("x.bpf"), &root, "c2").expect_err("bad");
        assert!(err.to_string().contains("12 bytes"), "{err}");
        assert!(SeccompCache::fill(&tmp.path().join("x.bpf"), &root, "none").is_err());
    }
}
