//! Engine configuration: what berthd's flags and daemon.json resolve to.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// Path or name of the default OCI runtime binary ("crun").
    pub runtime: String,
    /// Other runtimes selectable with `--runtime NAME` (daemon.json `runtimes`).
    pub runtimes: BTreeMap<String, String>,
    /// The berth-shim binary.
    pub shim_binary: PathBuf,
    /// The init used for `--init` (tini-static by default).
    pub init_binary: Option<PathBuf>,
    /// Parent cgroup for containers ("berth"; each daemon in tests uses its own).
    pub cgroup_parent: String,
    /// Default log options for the json-file driver (`max-size`, `max-file`).
    pub log_opts: BTreeMap<String, String>,
    /// daemon.json `default-ulimits`.
    pub default_ulimits: Vec<crate::models::Ulimit>,
    /// daemon.json `default-shm-size` in bytes.
    pub default_shm_size: i64,
    pub dns: Vec<String>,
    pub debug: bool,
    /// daemon.json `insecure-registries`: `host[:port]` or CIDR entries reached over
    /// plain HTTP (or HTTPS without certificate checks).
    pub insecure_registries: Vec<String>,
    /// daemon.json `registry-mirrors`: Docker Hub mirrors tried before Hub on pulls.
    pub registry_mirrors: Vec<String>,
    /// daemon.json `max-concurrent-downloads` / `max-concurrent-uploads`: layers a pull
    /// or push transfers at once (0: docker's 3 and 5).
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    /// Linux bridge of the default `bridge` network (`--bridge`, daemon.json `bridge`).
    pub bridge: String,
    /// `--bip`: the default bridge's gateway address with prefix, e.g. `10.99.0.1/24`.
    pub bip: Option<String>,
    /// daemon.json `default-address-pools` as (base CIDR, subnet size); empty: docker's.
    pub default_address_pools: Vec<(String, u8)>,
    /// berth's own nftables table (`table ip <name>`).
    pub nft_table: String,
    /// daemon.json `iptables`: false installs no firewall rules (no NAT, no publishing).
    pub iptables: bool,
}

impl EngineConfig {
    pub fn new(data_root: PathBuf, exec_root: PathBuf) -> EngineConfig {
        EngineConfig {
            data_root,
            exec_root,
            runtime: "crun".into(),
            runtimes: BTreeMap::new(),
            shim_binary: default_sibling("berth-shim"),
            init_binary: [
                "/usr/bin/tini-static",
                "/usr/bin/docker-init",
                "/usr/libexec/docker/docker-init",
            ]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
            cgroup_parent: "berth".into(),
            log_opts: BTreeMap::new(),
            default_ulimits: Vec::new(),
            default_shm_size: 64 * 1024 * 1024,
            dns: Vec::new(),
            debug: false,
            insecure_registries: Vec::new(),
            registry_mirrors: Vec::new(),
            max_concurrent_downloads: 0,
            max_concurrent_uploads: 0,
            bridge: "berth0".into(),
            bip: None,
            default_address_pools: Vec::new(),
            nft_table: "berth".into(),
            iptables: true,
        }
    }

    pub fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("runtime")
    }

    /// Compiled seccomp filters, one per profile (runtime state: cleared with the exec root).
    pub fn seccomp_cache_dir(&self) -> PathBuf {
        self.exec_root.join("seccomp-cache")
    }

    pub fn container_state_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("containers").join(id)
    }

    pub fn container_data_dir(&self, id: &str) -> PathBuf {
        self.data_root.join("containers").join(id)
    }

    /// A container's `hostname`, `hosts` and `resolv.conf`: on the exec root, because they
    /// are rebuilt at every start, and each file made on this VM's data disk (ext4 without
    /// a journal) costs a scan past every inode freed in the last minutes. Removed with the
    /// container; a start writes again whatever a reboot took.
    pub fn container_etc_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("etc").join(id)
    }
}

/// A binary shipped next to the running executable (target/debug/berth-shim beside berthd),
/// else found on PATH.
pub fn default_sibling(name: &str) -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join(name);
            if p.exists() {
                return p;
            }
            // test binaries live in target/debug/deps
            if let Some(up) = dir.parent() {
                let p = up.join(name);
                if p.exists() {
                    return p;
                }
            }
        }
    }
    PathBuf::from(name)
}
