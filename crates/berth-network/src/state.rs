//! Persistence of network state: one JSON file per network, written atomically (temp
//! file, rename) so a crash leaves either the old or the new file, never a torn one. The
//! files hold the definition, the IPAM allocations and the endpoints (with their host veth
//! and resolved port bindings), which is what start-up reconciliation needs to find and
//! remove leftovers.
//!
//! **Two files, two kinds of durability, two roots.** A network's definition is written
//! once, when the network is made, to `<data-root>/network/<id>.json` with fsync of the file
//! and the folder ([`save`]). Endpoint changes (every container start and exit) go to
//! `<exec-root>/network/<id>.run.json` through [`save_runtime`], without fsync: the exec root
//! outlives a daemon restart (live restore reads it back) but not a host reboot, after which
//! no container runs and reconciliation would drop every endpoint anyway. On this VM's data
//! disk (ext4 without a journal) each rename there cost an inode allocation that scans past
//! every inode freed in the last minutes; the exec root is usually a tmpfs. A runtime file
//! that is missing (after a reboot) or torn means the durable definition is used, with no
//! endpoints and the allocations it was made with. A runtime file left in the data root by
//! an older berth is still read, and moved to the exec root.

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

/// Where a network's files live: the definitions (`<data-root>/network`) and the runtime
/// state (`<exec-root>/network`).
#[derive(Debug, Clone, Copy)]
pub struct Dirs<'a> {
    pub state: &'a Path,
    pub runtime: &'a Path,
}

/// Writes a network's state durably (fsync); for the definition, when a network is made.
/// A runtime file of an earlier network with the same id would shadow it, so it goes.
pub fn save(dirs: Dirs, state: &NetworkState) -> Result<(), StateError> {
    remove_runtime(dirs, &state.config.id)?;
    write_file(
        dirs.state,
        &file_of(dirs.state, &state.config.id),
        state,
        true,
    )
}

/// Writes a network's current state (endpoints, allocations) without fsync; see the
/// module docs for why that is enough.
pub fn save_runtime(dirs: Dirs, state: &NetworkState) -> Result<(), StateError> {
    let path = runtime_file_of(dirs.runtime, &state.config.id);
    write_file(dirs.runtime, &path, state, false)
}

/// The runtime file in both places (the data root held it before berth moved it).
fn remove_runtime(dirs: Dirs, id: &str) -> Result<(), StateError> {
    remove_file(&runtime_file_of(dirs.runtime, id))?;
    remove_file(&runtime_file_of(dirs.state, id))
}

fn remove_file(path: &Path) -> Result<(), StateError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", path)(e)),
    }
}

/// Removes a network's state files; missing is fine.
pub fn remove(dirs: Dirs, id: &str) -> Result<(), StateError> {
    remove_runtime(dirs, id)?;
    remove_file(&file_of(dirs.state, id))
}

/// Loads every network: each definition, shadowed by its runtime state where there is one.
pub fn load_all(dirs: Dirs) -> Result<Vec<NetworkState>, StateError> {
    let dir = dirs.state;
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
        let mut run = runtime_file_of(dirs.runtime, &state.config.id);
        let legacy = runtime_file_of(dir, &state.config.id);
        if !run.exists() && legacy.exists() {
            run = legacy.clone();
        }
        match fs::read(&run) {
            Ok(data) => match serde_json::from_slice::<NetworkState>(&data) {
                Ok(current) if current.config.id == state.config.id => {
                    state = current;
                    if run == legacy {
                        save_runtime(dirs, &state)?;
                        remove_file(&legacy)?;
                    }
                }
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

    /// A data root and an exec root of their own.
    struct Roots {
        _tmp: tempfile::TempDir,
        data: PathBuf,
        exec: PathBuf,
    }

    impl Roots {
        fn new() -> Roots {
            let tmp = tempfile::tempdir().unwrap();
            Roots {
                data: tmp.path().join("data"),
                exec: tmp.path().join("exec"),
                _tmp: tmp,
            }
        }

        fn dirs(&self) -> Dirs<'_> {
            Dirs {
                state: &self.data,
                runtime: &self.exec,
            }
        }
    }

    #[test]
    fn runtime_state_shadows_the_definition_until_removed() {
        let r = Roots::new();
        let (d, data, exec) = (r.dirs(), &r.data, &r.exec);
        let mut st = network("n1");
        save(d, &st).unwrap();
        st.endpoints.insert("c1".into(), endpoint("c1"));
        st.ipam
            .as_mut()
            .unwrap()
            .allocated
            .insert("10.1.0.2".parse().unwrap(), "c1".into());
        save_runtime(d, &st).unwrap();
        assert!(
            exec.join("n1.run.json").exists(),
            "runtime state on the exec root"
        );
        assert!(!data.join("n1.run.json").exists());
        let loaded = load_all(d).unwrap();
        assert_eq!(loaded, vec![st.clone()]);
        remove(d, "n1").unwrap();
        assert!(load_all(d).unwrap().is_empty());
        assert_eq!(fs::read_dir(data).unwrap().count(), 0);
        assert_eq!(fs::read_dir(exec).unwrap().count(), 0);
    }

    #[test]
    fn a_reboot_leaves_the_definition() {
        let r = Roots::new();
        let (d, exec) = (r.dirs(), &r.exec);
        let st = network("n3");
        save(d, &st).unwrap();
        let mut running = st.clone();
        running.endpoints.insert("c1".into(), endpoint("c1"));
        save_runtime(d, &running).unwrap();
        fs::remove_dir_all(exec).unwrap();
        assert_eq!(load_all(d).unwrap(), vec![st]);
    }

    #[test]
    fn a_runtime_file_in_the_data_root_is_read_and_moved() {
        let r = Roots::new();
        let (d, data, exec) = (r.dirs(), &r.data, &r.exec);
        let mut st = network("n4");
        save(d, &st).unwrap();
        st.endpoints.insert("c1".into(), endpoint("c1"));
        // What an older berth wrote.
        fs::write(data.join("n4.run.json"), serde_json::to_vec(&st).unwrap()).unwrap();
        assert_eq!(load_all(d).unwrap(), vec![st.clone()]);
        assert!(!data.join("n4.run.json").exists());
        assert!(exec.join("n4.run.json").exists());
        assert_eq!(load_all(d).unwrap(), vec![st]);
    }

    #[test]
    fn torn_runtime_state_falls_back_to_the_definition() {
        let r = Roots::new();
        let (d, exec) = (r.dirs(), &r.exec);
        let mut st = network("n2");
        // A definition written by an older berth, endpoints included.
        st.endpoints.insert("c1".into(), endpoint("c1"));
        st.ipam
            .as_mut()
            .unwrap()
            .allocated
            .insert("10.1.0.2".parse().unwrap(), "c1".into());
        save(d, &st).unwrap();
        fs::create_dir_all(exec).unwrap();
        fs::write(exec.join("n2.run.json"), b"").unwrap();
        let loaded = load_all(d).unwrap();
        assert_eq!(loaded.len(), 1);
        assert!(loaded[0].endpoints.is_empty());
        let allocated = &loaded[0].ipam.as_ref().unwrap().allocated;
        assert_eq!(allocated.len(), 1, "{allocated:?}");
        assert_eq!(allocated.values().next().unwrap(), "aux:x");
    }
}
