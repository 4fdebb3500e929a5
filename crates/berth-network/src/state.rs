//! Persistence of network state: one JSON file per network under the state dir, written
//! atomically (temp file, rename) so a crash leaves either the old or the new file, never a
//! torn one. The files hold the definition, the IPAM allocations and the endpoints (with
//! their host veth and resolved port bindings), which is what start-up reconciliation
//! needs to find and remove leftovers.
//!
//! **Two files, two kinds of durability.** A network's definition is written once, when
//! the network is made, to `<id>.json` with fsync of the file and the folder ([`save`]).
//! Endpoint changes (every container start and exit) go to `<id>.run.json` through
//! [`save_runtime`]: rename without fsync, because those fsyncs cost milliseconds per
//! container on a busy disk and buy nothing. A daemon crash loses no page-cache write, and
//! after a host crash no container runs any more, so reconciliation drops every endpoint
//! anyway; the only risk of a lost or torn runtime file (possible on power loss on file
//! systems without ext4's rename heuristics) is then handled at load: the durable
//! definition is used instead, with no endpoints and the allocations it was made with.

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

fn runtime_file_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}{RUNTIME_SUFFIX}"))
}

const RUNTIME_SUFFIX: &str = ".run.json";

fn write_file(
    dir: &Path,
    path: &Path,
    state: &NetworkState,
    durable: bool,
) -> Result<(), StateError> {
    fs::create_dir_all(dir).map_err(io("create state dir", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let data = serde_json::to_vec_pretty(state).map_err(|source| StateError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(&data).map_err(io("write", &tmp))?;
    if durable {
        f.sync_all().map_err(io("fsync", &tmp))?;
    }
    drop(f);
    fs::rename(&tmp, path).map_err(io("rename into place", path))?;
    if durable {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync state dir", dir))?;
    }
    Ok(())
}

/// Writes a network's state durably (fsync); for the definition, when a network is made.
/// A runtime file of an earlier network with the same id would shadow it, so it goes.
pub fn save(dir: &Path, state: &NetworkState) -> Result<(), StateError> {
    remove_file(&runtime_file_of(dir, &state.config.id))?;
    write_file(dir, &file_of(dir, &state.config.id), state, true)
}

/// Writes a network's current state (endpoints, allocations) without fsync; see the
/// module docs for why that is enough.
pub fn save_runtime(dir: &Path, state: &NetworkState) -> Result<(), StateError> {
    write_file(dir, &runtime_file_of(dir, &state.config.id), state, false)
}

fn remove_file(path: &Path) -> Result<(), StateError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", path)(e)),
    }
}

/// Removes a network's state files; missing is fine.
pub fn remove(dir: &Path, id: &str) -> Result<(), StateError> {
    remove_file(&runtime_file_of(dir, id))?;
    remove_file(&file_of(dir, id))
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
        if name.starts_with('.') || !name.ends_with(".json") || name.ends_with(RUNTIME_SUFFIX) {
            continue;
        }
        let data = fs::read(&path).map_err(io("read", &path))?;
        let mut state: NetworkState =
            serde_json::from_slice(&data).map_err(|source| StateError::Parse {
                path: path.clone(),
                source,
            })?;
        let run = runtime_file_of(dir, &state.config.id);
        match fs::read(&run) {
            Ok(data) => match serde_json::from_slice::<NetworkState>(&data) {
                Ok(current) if current.config.id == state.config.id => state = current,
                Ok(_) | Err(_) => {
                    // Only a host crash tears this file, and then no container survived:
                    // the definition with no endpoints is the truth.
                    tracing::warn!(path = %run.display(), "unreadable network runtime state, using the definition");
                    state.endpoints.clear();
                    if let Some(pool) = state.ipam.as_mut() {
                        pool.allocated.retain(|_, owner| owner.starts_with("aux:"));
                    }
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("read", &run)(e)),
        }
        out.push(state);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::AddressPool;
    use std::collections::BTreeMap;

    fn network(id: &str) -> NetworkState {
        let mut pool = AddressPool::new("10.1.0.0/24".parse().unwrap(), None, None).expect("pool");
        pool.allocated
            .insert("10.1.0.9".parse().unwrap(), "aux:x".into());
        NetworkState {
            config: crate::types::NetworkConfig {
                name: id.into(),
                id: id.into(),
                driver: "bridge".into(),
                subnet: Some(pool.subnet),
                gateway: Some(pool.gateway),
                ip_range: None,
                internal: false,
                bridge_name: format!("br-{id}"),
                enable_ipv6: false,
                subnet6: None,
                gateway6: None,
                options: BTreeMap::new(),
                labels: BTreeMap::new(),
                is_default_bridge: false,
                created: String::new(),
                attachable: false,
                ipam_options: None,
                aux_addresses: BTreeMap::new(),
            },
            ipam: Some(pool),
            endpoints: BTreeMap::new(),
        }
    }

    fn endpoint(id: &str) -> EndpointState {
        EndpointState {
            endpoint_id: id.into(),
            netns: PathBuf::from("/run/x"),
            ifname: "eth0".into(),
            host_veth: "vethx".into(),
            ip: "10.1.0.2".parse().unwrap(),
            ip6: None,
            mac: [2, 0x42, 10, 1, 0, 2],
            aliases: Vec::new(),
            dns_names: Vec::new(),
            port_bindings: Vec::new(),
            default_route: true,
            dns_servers: Vec::new(),
        }
    }

    #[test]
    fn runtime_state_shadows_the_definition_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = network("n1");
        save(dir.path(), &st).unwrap();
        st.endpoints.insert("c1".into(), endpoint("c1"));
        st.ipam
            .as_mut()
            .unwrap()
            .allocated
            .insert("10.1.0.2".parse().unwrap(), "c1".into());
        save_runtime(dir.path(), &st).unwrap();
        let loaded = load_all(dir.path()).unwrap();
        assert_eq!(loaded, vec![st.clone()]);
        remove(dir.path(), "n1").unwrap();
        assert!(load_all(dir.path()).unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn torn_runtime_state_falls_back_to_the_definition() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = network("n2");
        // A definition written by an older berth, endpoints included.
        st.endpoints.insert("c1".into(), endpoint("c1"));
        st.ipam
            .as_mut()
            .unwrap()
            .allocated
            .insert("10.1.0.2".parse().unwrap(), "c1".into());
        save(dir.path(), &st).unwrap();
        fs::write(dir.path().join("n2.run.json"), b"").unwrap();
        let loaded = load_all(dir.path()).unwrap();
        assert_eq!(loaded.len(), 1);
        assert!(loaded[0].endpoints.is_empty());
        let allocated = &loaded[0].ipam.as_ref().unwrap().allocated;
        assert_eq!(allocated.len(), 1, "{allocated:?}");
        assert_eq!(allocated.values().next().unwrap(), "aux:x");
    }
}
