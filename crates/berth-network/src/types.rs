//! Public data types of the network library: network definitions, the manager's
//! configuration, endpoint requests and results, port bindings.
//!
//! These are plain serde structs because the manager persists them as JSON and the engine
//! copies them into Engine API answers; they carry no behaviour beyond small helpers.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// The drivers berth implements.
pub const DRIVER_BRIDGE: &str = "bridge";
/// `--network host`: the container shares the daemon's network namespace.
pub const DRIVER_HOST: &str = "host";
/// `--network none`: a namespace with only `lo`.
pub const DRIVER_NULL: &str = "null";

/// Docker's option key naming the Linux bridge of a network.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// Docker's option key for the MTU of the bridge and the veths.
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";

/// A network definition, as persisted and as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub name: String,
    pub id: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// Sub-range of `subnet` from which dynamic addresses are taken (`--ip-range`).
    pub ip_range: Option<Ipv4Net>,
    /// `--internal`: no masquerade, no traffic leaves the bridge.
    pub internal: bool,
    /// Linux bridge name (`com.docker.network.bridge.name` or `br-<id12>`).
    pub bridge_name: String,
    pub enable_ipv6: bool,
    /// The IPv6 subnet when `enable_ipv6` (given, or a random ULA /64).
    pub subnet6: Option<Ipv6Net>,
    /// The bridge's IPv6 address (`::1` of `subnet6` unless given).
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// The daemon's default `bridge` network: no embedded DNS (docker's legacy links world).
    pub is_default_bridge: bool,
    /// RFC 3339 creation time, for `docker network inspect`.
    #[serde(default)]
    pub created: String,
    /// `--attachable`: recorded and reported (any berth network accepts `docker run`).
    #[serde(default)]
    pub attachable: bool,
    /// `IPAM.Options` as given at create (`null` when none were), reported by inspect.
    #[serde(default)]
    pub ipam_options: Option<BTreeMap<String, String>>,
    /// `--aux-address` name → address: reserved in the pool, never given to a container.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
}

impl NetworkConfig {
    /// Whether this network has a Linux bridge behind it.
    pub fn is_bridge(&self) -> bool {
        self.driver == DRIVER_BRIDGE
    }

    /// Whether containers on this network get the embedded DNS server.
    pub fn has_dns(&self) -> bool {
        self.is_bridge() && !self.is_default_bridge
    }

    /// The MTU from the driver options, when one is set and valid.
    pub fn mtu(&self) -> Option<u32> {
        self.options.get(OPT_MTU).and_then(|m| m.parse().ok())
    }
}

/// An address pool from which network subnets are carved (`default-address-pools`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub base: Ipv4Net,
    /// Prefix length of each subnet taken from `base`.
    pub size: u8,
}

impl Pool {
    /// Docker's built-in pools: 172.17.0.0/16 .. 172.31.0.0/16 in /16s, then
    /// 192.168.0.0/16 in /20s.
    pub fn docker_defaults() -> Vec<Pool> {
        vec![
            Pool {
                base: "172.17.0.0/16".parse().expect("literal subnet"),
                size: 16,
            },
            Pool {
                base: "172.18.0.0/15".parse().expect("literal subnet"),
                size: 16,
            },
            Pool {
                base: "172.20.0.0/14".parse().expect("literal subnet"),
                size: 16,
            },
            Pool {
                base: "172.24.0.0/14".parse().expect("literal subnet"),
                size: 16,
            },
            Pool {
                base: "172.28.0.0/14".parse().expect("literal subnet"),
                size: 16,
            },
            Pool {
                base: "192.168.0.0/16".parse().expect("literal subnet"),
                size: 20,
            },
        ]
    }
}

/// How the manager is set up by the daemon.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Where one JSON state file per network is written (data-root/network).
    pub state_dir: PathBuf,
    /// Where each network's runtime state (endpoints, allocations) is written
    /// (exec-root/network); see `state` for why it is not beside the definition.
    pub runtime_dir: PathBuf,
    /// Folder of the bind-mounted network namespaces (exec-root/netns).
    pub netns_dir: PathBuf,
    /// berth's own nftables table (`table ip <name>`); nothing else is touched.
    pub nft_table: String,
    /// Linux bridge of the default `bridge` network.
    pub default_bridge: String,
    /// `--bip`: the default bridge's gateway address with prefix, e.g. `10.99.0.1/24`.
    pub bip: Option<String>,
    pub default_address_pools: Vec<Pool>,
    /// Upstream resolvers for names the embedded DNS does not own; `None` reads
    /// `resolv_conf`.
    pub dns_upstreams: Option<Vec<SocketAddr>>,
    pub resolv_conf: PathBuf,
}

impl ManagerConfig {
    /// The daemon's defaults under the given data and exec roots.
    pub fn new(data_root: impl Into<PathBuf>, exec_root: impl Into<PathBuf>) -> Self {
        let exec_root = exec_root.into();
        ManagerConfig {
            state_dir: data_root.into().join("network"),
            runtime_dir: exec_root.join("network"),
            netns_dir: exec_root.join("netns"),
            nft_table: "berth".to_string(),
            default_bridge: "berth0".to_string(),
            bip: None,
            default_address_pools: Pool::docker_defaults(),
            dns_upstreams: None,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
        }
    }

    /// The folders of the network state files.
    pub fn state_dirs(&self) -> crate::state::Dirs<'_> {
        crate::state::Dirs {
            state: &self.state_dir,
            runtime: &self.runtime_dir,
        }
    }
}

/// `POST /networks/create`, already parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateNetwork {
    pub name: String,
    /// Generated (64 hex digits) when absent.
    pub id: Option<String>,
    /// Defaults to `bridge`.
    pub driver: Option<String>,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    pub internal: bool,
    pub enable_ipv6: bool,
    pub subnet6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    pub attachable: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// `IPAM.Options`, kept for inspect.
    pub ipam_options: Option<BTreeMap<String, String>>,
    /// `--aux-address` name → address, reserved in the IPv4 pool.
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

/// One `-p host_ip:host_port:container_port/proto`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortBinding {
    pub proto: Protocol,
    /// `None` (or 0.0.0.0) publishes on every host address.
    pub host_ip: Option<IpAddr>,
    /// 0 asks for a free port.
    pub host_port: u16,
    pub container_port: u16,
}

/// What the engine asks for when it attaches a container to a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRequest {
    /// Network name or id.
    pub network: String,
    /// Unique per network; the engine uses the container id.
    pub endpoint_id: String,
    /// The namespace file (from [`crate::NetworkManager::create_netns`]).
    pub netns: PathBuf,
    /// Interface name inside the namespace; `eth<N>` by order when absent.
    pub ifname: Option<String>,
    /// `--ip`.
    pub ipv4: Option<Ipv4Addr>,
    /// `--ip6` (only on networks with IPv6).
    pub ipv6: Option<Ipv6Addr>,
    /// Upstream resolvers the embedded DNS uses for this namespace (`--dns`); empty means
    /// the daemon's.
    pub dns_servers: Vec<SocketAddr>,
    pub aliases: Vec<String>,
    /// Names the embedded DNS answers for (container name, short id, aliases).
    pub dns_names: Vec<String>,
    pub port_bindings: Vec<PortBinding>,
    pub mac: Option<[u8; 6]>,
}

/// The result of a connect, for `NetworkSettings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network_id: String,
    pub endpoint_id: String,
    pub ifname: Option<String>,
    /// `None` on the host and null drivers.
    pub ip: Option<Ipv4Addr>,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
    pub ipv6: Option<Ipv6Addr>,
    pub prefix_len6: u8,
    pub gateway6: Option<Ipv6Addr>,
    /// The bindings actually made: random host ports resolved, unsupported ones left out.
    pub host_ports: Vec<PortBinding>,
    /// Whether this endpoint installed the namespace's default route.
    pub default_route: bool,
}

/// Formats a MAC address as docker prints it (`02:42:ac:11:00:02`).
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
