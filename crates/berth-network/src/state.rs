//! Persistence of network state: one JSON file per network under the state dir, written
//! atomically (temp file, fsync, rename, fsync of the folder) so a crash leaves either the
//! old or the new file, never a torn one. The files hold the definition, the IPAM
//! allocations and the endpoints (with their host veth and resolved port bindings), which
//! is what start-up reconciliation needs to find and remove leftovers.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ipam::AddressPool;
use crate::types::{NetworkConfig, PortBinding};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse network state {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// One attached endpoint, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    pub endpoint_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    pub host_veth: String,
    pub ip: Ipv4Addr,
    /// The IPv6 address on networks with IPv6.
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    pub mac: [u8; 6],
    pub aliases: Vec<String>,
    pub dns_names: Vec<String>,
    /// Host ports as actually bound (random ports resolved).
    pub port_bindings: Vec<PortBinding>,
    pub default_route: bool,
    /// Per-namespace upstream resolvers of the embedded DNS (`--dns`), kept so a restarted
    /// daemon serves the namespace the same way.
    #[serde(default)]
    pub dns_servers: Vec<SocketAddr>,
}

/// One network, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    pub config: NetworkConfig,
    pub ipam: Option<AddressPool>,
    pub endpoints: BTreeMap<String, EndpointState>,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn file_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

/// Writes a network's state atomically.
pub fn save(dir: &Path, state: &NetworkState) -> Result<(), StateError> {
    fs::create_dir_all(dir).map_err(io("create state dir", dir))?;
    let path = file_of(dir, &state.config.id);
    let tmp = dir.join(format!(".{}.json.tmp", state.config.id));
    let data = serde_json::to_vec_pretty(state).map_err(|source| StateError::Parse {
        path: path.clone(),
        source,
    })?;
    let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(&data).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io("rename into place", &path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync state dir", dir))
}

/// Removes a network's state file; missing is fine.
pub fn remove(dir: &Path, id: &str) -> Result<(), StateError> {
    let path = file_of(dir, id);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", &path)(e)),
    }
}

/// Loads every network state file of the folder.
pub fn load_all(dir: &Path) -> Result<Vec<NetworkState>, StateError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read state dir", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("read state dir", dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let data = fs::read(&path).map_err(io("read", &path))?;
        let state = serde_json::from_slice(&data).map_err(|source| StateError::Parse {
            path: path.clone(),
            source,
        })?;
        out.push(state);
    }
    Ok(out)
}
