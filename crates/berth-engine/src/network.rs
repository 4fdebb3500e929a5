//! Networks: the engine's network service over berth-network.
//!
//! This module owns three things:
//! - **Network objects in Docker's JSON** (`/networks/...`): create, list with filters,
//!   inspect with the attached containers, remove, prune. The library keeps the definitions,
//!   IPAM and the kernel side; this module only translates.
//! - **A container's attachments.** Each container has a [`ContainerNet`] record beside its
//!   data (`<data-root>/containers/<id>/network.json`, written atomically): the networks it
//!   belongs to with Docker's `EndpointSettings` (requested aliases and `--ip`). It lives in
//!   its own file rather than in the container record so that hot-plug connects can update
//!   it without rewriting the record other verbs own. While the container runs, the record
//!   with what the run attached (addresses, gateway, MAC, the host ports bound) is in its
//!   bundle folder on the exec root (`<exec-root>/containers/<id>/network.json`, no fsync):
//!   a start and an exit then write nothing to the data disk, where on this VM (ext4
//!   without a journal) every file made scans past every inode freed in the last minutes;
//!   the exec root outlives a daemon restart, which is when the running record is needed.
//!   Its endpoints in the library are keyed by the container id, and its namespace is
//!   named after the id too, so after a crash `reconcile` with the set of running
//!   container ids removes everything else.
//! - **What a networked container sees**: the namespace handed to the runtime
//!   ([`NetworkNs`]), `/etc/hosts` (own address, `--link` entries) and `/etc/resolv.conf`
//!   (the embedded DNS at 127.0.0.11 on user-defined networks, the host's resolvers on the
//!   default bridge, as docker does), written before the shim starts.
//!
//! Published ports: the library takes one host port per binding (0 = any free port); docker's
//! host port ranges (`-p 8000-8010:80`) are resolved here by probing the range for a free
//! port first.

use crate::container::state::Status;
use crate::container::Container;
use crate::filters::Filters;
use crate::models::{HostConfig, PortBinding as ApiPortBinding};
use crate::{util, Engine, EngineConfig, Error, Result};
use berth_network::{
    format_mac, CreateNetwork, EndpointRequest, ErrorKind as NetErrorKind, LinuxNetSys,
    ManagerConfig, NetSys, NetworkConfig, NetworkManager, PortBinding, Protocol,
};
use berth_runtime::spec::NetworkNs;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The embedded DNS server's address inside user-network containers.
pub const EMBEDDED_DNS: &str = "127.0.0.11";

impl From<berth_network::Error> for Error {
    fn from(e: berth_network::Error) -> Self {
        let msg = e.to_string();
        match (&e, e.kind()) {
            // docker answers 409 for a network that still has endpoints (see the brief of
            // `docker network rm`); the library files it under "forbidden".
            (berth_network::Error::ActiveEndpoints { .. }, _) => Error::Conflict(msg),
            (_, NetErrorKind::NotFound) => Error::NotFound(msg),
            (_, NetErrorKind::Conflict) => Error::Conflict(msg),
            (_, NetErrorKind::InvalidArgument) => Error::InvalidArgument(msg),
            (_, NetErrorKind::Forbidden) => Error::Forbidden(msg),
            (_, NetErrorKind::Internal) => Error::Internal(msg),
        }
    }
}

/// `IPAMConfig` of an endpoint (`--ip`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct EndpointIpamConfig {
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
    #[serde(rename = "LinkLocalIPs")]
    pub link_local_ips: Option<Vec<String>>,
}

/// Docker's `EndpointSettings`: what was asked for plus, while running, the attachment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamConfig>,
    #[serde(rename = "Links")]
    pub links: Option<Vec<String>>,
    #[serde(rename = "Aliases")]
    pub aliases: Option<Vec<String>>,
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
    #[serde(rename = "DriverOpts")]
    pub driver_opts: Option<BTreeMap<String, String>>,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Gateway")]
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    #[serde(rename = "DNSNames")]
    pub dns_names: Option<Vec<String>>,
}

impl EndpointSettings {
    /// Forgets what the last run attached (docker empties these on exit).
    fn clear_runtime(&mut self) {
        self.endpoint_id.clear();
        self.gateway.clear();
        self.ip_address.clear();
        self.ip_prefix_len = 0;
        self.ipv6_gateway.clear();
        self.global_ipv6_address.clear();
        self.global_ipv6_prefix_len = 0;
        self.dns_names = None;
        if self
            .ipam_config
            .as_ref()
            .is_none_or(|c| c.ipv4_address.is_empty())
        {
            self.mac_address.clear();
        }
    }

    fn requested_ip6(&self) -> Result<Option<std::net::Ipv6Addr>> {
        match self.ipam_config.as_ref().map(|c| c.ipv6_address.as_str()) {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| Error::InvalidArgument(format!("invalid IPv6 address: {s}"))),
        }
    }

    fn requested_ip(&self) -> Result<Option<Ipv4Addr>> {
        match self.ipam_config.as_ref().map(|c| c.ipv4_address.as_str()) {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| Error::InvalidArgument(format!("invalid IPv4 address: {s}"))),
        }
    }
}

/// One container's network attachments, persisted beside its data.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ContainerNet {
    /// The network of `NetworkMode` (resolved to its name), attached first so it gets
    /// `eth0` and the default route; empty for host, none and container modes.
    pub primary: String,
    /// Network name → settings.
    pub networks: BTreeMap<String, EndpointSettings>,
    /// `"80/tcp"` → the host bindings made by the current run.
    pub ports: BTreeMap<String, Vec<ApiPortBinding>>,
    /// The namespace file while running (empty otherwise).
    pub sandbox_key: String,
}

impl ContainerNet {
    /// Without what a run attached: the part kept on the data root.
    fn settings_only(&self) -> ContainerNet {
        let mut n = self.clone();
        for s in n.networks.values_mut() {
            s.clear_runtime();
        }
        n.ports.clear();
        n.sandbox_key.clear();
        n
    }
}

/// A `-p` binding as requested: host ports as a range, (0, 0) for "any".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedBinding {
    pub proto: Protocol,
    pub host_ip: Option<IpAddr>,
    pub host_ports: (u16, u16),
    pub container_port: u16,
}

/// `POST /networks/create`.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateBody {
    pub name: String,
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    pub ipam: Option<IpamBody>,
    pub options: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamBody {
    pub driver: String,
    pub config: Option<Vec<IpamPool>>,
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamPool {
    pub subnet: String,
    #[serde(rename = "IPRange")]
    pub ip_range: String,
    pub gateway: String,
    pub auxiliary_addresses: Option<BTreeMap<String, String>>,
}

/// `POST /networks/{id}/connect`.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkConnectBody {
    pub container: String,
    pub endpoint_config: Option<EndpointSettings>,
}

/// The network side of the engine: the library's manager plus the container records.
pub struct NetworkService {
    manager: NetworkManager,
    /// Loaded lazily from each container's `network.json`; written through.
    containers: Mutex<HashMap<String, ContainerNet>>,
}

/// A [`NetSys`] that applies no firewall rules (daemon.json `"iptables": false`): nft
/// scripts and legacy iptables calls are dropped, everything else is delegated.
struct NoFirewall(Arc<dyn NetSys>);

#[async_trait::async_trait]
impl NetSys for NoFirewall {
    async fn ensure_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
    ) -> std::result::Result<(), berth_network::sys::SysError> {
        self.0.ensure_bridge(name, mtu).await
    }
    async fn add_address(
        &self,
        link: &str,
        address: ipnet::IpNet,
    ) -> std::result::Result<(), berth_network::sys::SysError> {
        self.0.add_address(link, address).await
    }
    async fn link_exists(
        &self,
        name: &str,
    ) -> std::result::Result<bool, berth_network::sys::SysError> {
        self.0.link_exists(name).await
    }
    async fn delete_link(
        &self,
        name: &str,
    ) -> std::result::Result<(), berth_network::sys::SysError> {
        self.0.delete_link(name).await
    }
    async fn bridge_ports(
        &self,
        bridge: &str,
    ) -> std::result::Result<Vec<String>, berth_network::sys::SysError> {
        self.0.bridge_ports(bridge).await
    }
    async fn create_veth(
        &self,
        req: &berth_network::sys::VethRequest,
    ) -> std::result::Result<(), berth_network::sys::SysError> {
        self.0.create_veth(req).await
    }
    async fn configure_peer(
        &self,
        netns: &Path,
        cfg: &berth_network::sys::PeerConfig,
    ) -> std::result::Result<(), berth_network::sys::SysError> {
        self.0.configure_peer(netns, cfg).await
    }
    async fn host_routes(
        &self,
    ) -> std::result::Result<Vec<ipnet::Ipv4Net>, berth_network::sys::SysError> {
        self.0.host_routes().await
    }
    async fn nft_apply(
        &self,
        _script: &str,
    ) -> std::result::Result<(), berth_network::sys::SysError> {
        Ok(())
    }
    async fn nft_ruleset_json(&self) -> std::result::Result<String, berth_network::sys::SysError> {
        // An empty ruleset: no foreign chains to open up either.
        Ok(r#"{"nftables":[]}"#.to_string())
    }
    async fn iptables_legacy(
        &self,
        _ipv6: bool,
        _args: &[String],
    ) -> std::result::Result<Option<String>, berth_network::sys::SysError> {
        Ok(None)
    }
    async fn write_sysctl(
        &self,
        key: &str,
        value: &str,
    ) -> std::result::Result<(), berth_network::sys::SysError> {
        self.0.write_sysctl(key, value).await
    }
    async fn create_netns(
        &self,
        path: &Path,
    ) -> std::result::Result<(), berth_network::sys::SysError> {
        self.0.create_netns(path).await
    }
    async fn release_pool(&self) {
        self.0.release_pool().await
    }
    async fn delete_netns(
        &self,
        path: &Path,
    ) -> std::result::Result<(), berth_network::sys::SysError> {
        self.0.delete_netns(path).await
    }
    fn reserve_port(
        &self,
        proto: Protocol,
        ip: IpAddr,
        port: u16,
    ) -> std::result::Result<berth_network::sys::PortReservation, berth_network::sys::SysError>
    {
        self.0.reserve_port(proto, ip, port)
    }
    async fn bind_dns(
        &self,
        netns: &Path,
    ) -> std::result::Result<
        (std::net::UdpSocket, std::net::TcpListener),
        berth_network::sys::SysError,
    > {
        self.0.bind_dns(netns).await
    }
}

/// The library's configuration from the engine's.
pub fn manager_config(cfg: &EngineConfig) -> Result<ManagerConfig> {
    let mut m = ManagerConfig::new(&cfg.data_root, &cfg.exec_root);
    m.default_bridge = cfg.bridge.clone();
    m.bip = cfg.bip.clone();
    m.nft_table = cfg.nft_table.clone();
    if !cfg.default_address_pools.is_empty() {
        m.default_address_pools = cfg
            .default_address_pools
            .iter()
            .map(|(base, size)| {
                let base = base.parse().map_err(|_| {
                    Error::InvalidArgument(format!("invalid default-address-pools base {base:?}"))
                })?;
                Ok(berth_network::Pool { base, size: *size })
            })
            .collect::<Result<_>>()?;
    }
    if !cfg.dns.is_empty() {
        m.dns_upstreams = Some(
            cfg.dns
                .iter()
                .filter_map(|s| s.parse::<IpAddr>().ok())
                .map(|ip| std::net::SocketAddr::new(ip, 53))
                .collect(),
        );
    }
    Ok(m)
}

impl NetworkService {
    /// Opens the manager in the daemon's namespace and makes sure the predefined networks
    /// (bridge, host, none) and the default bridge exist.
    pub async fn open(cfg: &EngineConfig) -> Result<NetworkService> {
        let linux: Arc<dyn NetSys> = Arc::new(
            LinuxNetSys::new().map_err(|e| Error::Internal(format!("open netlink: {e}")))?,
        );
        let sys: Arc<dyn NetSys> = if cfg.iptables {
            linux
        } else {
            Arc::new(NoFirewall(linux))
        };
        let manager = NetworkManager::new(manager_config(cfg)?, sys)?;
        manager.ensure_default_bridge().await?;
        Ok(NetworkService {
            manager,
            containers: Mutex::new(HashMap::new()),
        })
    }

    pub fn manager(&self) -> &NetworkManager {
        &self.manager
    }
}

fn net_file(cfg: &EngineConfig, id: &str) -> PathBuf {
    cfg.container_data_dir(id).join("network.json")
}

/// The record of the current run (see the module docs).
fn running_net_file(cfg: &EngineConfig, id: &str) -> PathBuf {
    cfg.container_state_dir(id).join("network.json")
}

/// Whether a network mode has its own namespace with endpoints (bridge or user network).
fn mode_has_endpoints(mode: &str) -> bool {
    !matches!(mode, "host" | "none") && !mode.starts_with("container:")
}

/// `"80/tcp"` or `"80"` → (port, protocol).
pub fn parse_port_key(key: &str) -> Result<(u16, Protocol)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" | "" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => return Err(Error::InvalidArgument(format!("invalid proto: {proto}"))),
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::InvalidArgument(format!("invalid port specification: \"{key}\"")))?;
    Ok((port, proto))
}

/// `""` (any), `"8080"` or `"8000-8010"`.
fn parse_host_ports(s: &str) -> Result<(u16, u16)> {
    let bad = || Error::InvalidArgument(format!("invalid port specification: \"{s}\""));
    if s.is_empty() {
        return Ok((0, 0));
    }
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let lo: u16 = a.parse().map_err(|_| bad())?;
    let hi: u16 = b.parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

fn proto_str(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// The bindings a container asks for: `PortBindings`, plus every exposed port without one
/// when `PublishAllPorts` is set (on a random host port).
pub fn requested_bindings(
    hc: &HostConfig,
    exposed: Option<&BTreeMap<String, Value>>,
) -> Result<Vec<RequestedBinding>> {
    let mut out = Vec::new();
    let mut bound = HashSet::new();
    for (key, list) in hc.port_bindings.iter().flatten() {
        let (port, proto) = parse_port_key(key)?;
        bound.insert((port, proto));
        let list = list.clone().unwrap_or_default();
        let list = if list.is_empty() {
            vec![ApiPortBinding::default()]
        } else {
            list
        };
        for b in list {
            let host_ip = match b.host_ip.trim_matches(|c| c == '[' || c == ']') {
                "" => None,
                ip => Some(ip.parse::<IpAddr>().map_err(|_| {
                    Error::InvalidArgument(format!("invalid IP address: {}", b.host_ip))
                })?),
            };
            out.push(RequestedBinding {
                proto,
                host_ip,
                host_ports: parse_host_ports(&b.host_port)?,
                container_port: port,
            });
        }
    }
    if hc.publish_all_ports {
        for key in exposed.into_iter().flat_map(|m| m.keys()) {
            let (port, proto) = parse_port_key(key)?;
            if bound.insert((port, proto)) {
                out.push(RequestedBinding {
                    proto,
                    host_ip: None,
                    host_ports: (0, 0),
                    container_port: port,
                });
            }
        }
    }
    Ok(out)
}

/// Whether `ip:port` can be bound now (used to pick a free port from a range).
fn port_free(proto: Protocol, ip: Option<IpAddr>, port: u16) -> bool {
    let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let addr = std::net::SocketAddr::new(ip, port);
    match proto {
        Protocol::Udp => std::net::UdpSocket::bind(addr).is_ok(),
        _ => std::net::TcpListener::bind(addr).is_ok(),
    }
}

/// Resolves host port ranges to one free port each; single ports and "any" pass through.
fn resolve_ranges(reqs: &[RequestedBinding]) -> Result<Vec<PortBinding>> {
    let mut taken: HashSet<(Protocol, u16)> = HashSet::new();
    let mut out = Vec::new();
    for r in reqs {
        let (lo, hi) = r.host_ports;
        let port = if lo == hi {
            lo
        } else {
            (lo..=hi)
                .find(|p| !taken.contains(&(r.proto, *p)) && port_free(r.proto, r.host_ip, *p))
                .ok_or_else(|| {
                    Error::Conflict(format!(
                        "Bind for {}:{lo}-{hi} failed: port is already allocated",
                        r.host_ip
                            .map(|i| i.to_string())
                            .unwrap_or_else(|| "0.0.0.0".into())
                    ))
                })?
        };
        if port != 0 {
            taken.insert((r.proto, port));
        }
        out.push(PortBinding {
            proto: r.proto,
            host_ip: r.host_ip,
            host_port: port,
            container_port: r.container_port,
        });
    }
    Ok(out)
}

/// resolv.conf for a container on a user-defined network: the embedded DNS replaces the
/// nameservers (it forwards what it does not own), search and options are kept.
pub fn embedded_resolv_conf(base: &str) -> String {
    let mut out = format!("nameserver {EMBEDDED_DNS}\n");
    let mut has_options = false;
    for line in base.lines() {
        let word = line.split_whitespace().next();
        match word {
            Some("search") | Some("domain") => {
                out.push_str(line);
                out.push('\n');
            }
            Some("options") => {
                has_options = true;
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    if !has_options {
        out.push_str("options ndots:0\n");
    }
    out
}

/// `--link` as the API carries it (`name:alias` or the legacy `/name:/me/alias`) →
/// (container, alias).
pub fn parse_link(link: &str) -> (String, String) {
    let (name, alias) = link.split_once(':').unwrap_or((link, link));
    let name = name.trim_start_matches('/').to_string();
    let alias = alias.rsplit('/').next().unwrap_or(alias).to_string();
    (name, alias)
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    parts.try_into().ok()
}

fn network_json(n: &NetworkConfig, containers: Value) -> Value {
    let mut pools = Vec::new();
    if let Some(subnet) = n.subnet {
        let mut p = json!({"Subnet": subnet.to_string()});
        if let Some(gw) = n.gateway {
            p["Gateway"] = json!(gw.to_string());
        }
        if let Some(r) = n.ip_range {
            p["IPRange"] = json!(r.to_string());
        }
        if !n.aux_addresses.is_empty() {
            p["AuxiliaryAddresses"] = json!(n.aux_addresses);
        }
        pools.push(p);
    }
    if let Some(s6) = n.subnet6 {
        let mut p = json!({"Subnet": s6.to_string()});
        if let Some(gw6) = n.gateway6 {
            p["Gateway"] = json!(gw6.to_string());
        }
        pools.push(p);
    }
    let scope = "local";
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": if n.created.is_empty() { util::ZERO_TIME.to_string() } else { n.created.clone() },
        "Scope": scope,
        "Driver": n.driver,
        "EnableIPv4": true,
        "EnableIPv6": n.enable_ipv6,
        "IPAM": {
            "Driver": "default",
            // What the create request gave (the CLI sends `{}`; docker-py `null`).
            "Options": n.ipam_options,
            "Config": pools,
        },
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": n.options,
        "Labels": n.labels,
    })
}

fn is_builtin(n: &NetworkConfig) -> bool {
    n.is_default_bridge || !n.is_bridge()
}

impl Engine {
    fn net(&self) -> &NetworkService {
        &self.inner.network
    }

    /// The network manager (for the daemon's shutdown and tests).
    pub fn network_manager(&self) -> &NetworkManager {
        self.net().manager()
    }

    fn find_network(&self, name_or_id: &str) -> Result<NetworkConfig> {
        self.net()
            .manager
            .get(name_or_id)
            .ok_or_else(|| Error::NotFound(format!("network {name_or_id} not found")))
    }

    // ---- container records -------------------------------------------------------------

    /// The container's attachments: from memory, its file, or (for a container made before
    /// it had one) derived from its network mode.
    pub fn container_net(&self, c: &Container) -> ContainerNet {
        if let Some(n) = self
            .net()
            .containers
            .lock()
            .expect("container network lock poisoned")
            .get(&c.id)
        {
            return n.clone();
        }
        // The running record only while the container runs: an exit clears it, and a
        // crash between the exit and that leaves a stale one.
        let running = matches!(
            c.state.status(),
            Status::Running | Status::Paused | Status::Restarting
        );
        let loaded = running
            .then(|| std::fs::read(running_net_file(self.config(), &c.id)).ok())
            .flatten()
            .or_else(|| std::fs::read(net_file(self.config(), &c.id)).ok())
            .and_then(|b| serde_json::from_slice::<ContainerNet>(&b).ok())
            .unwrap_or_else(|| {
                let mode = c.host_config.network_mode.clone();
                let mut n = ContainerNet::default();
                if !mode.starts_with("container:") {
                    let name = self
                        .net()
                        .manager
                        .get(&mode)
                        .map(|cfg| cfg.name)
                        .unwrap_or(mode.clone());
                    if mode_has_endpoints(&mode) {
                        n.primary = name.clone();
                    }
                    n.networks.insert(name, EndpointSettings::default());
                }
                n
            });
        self.net()
            .containers
            .lock()
            .expect("container network lock poisoned")
            .insert(c.id.clone(), loaded.clone());
        loaded
    }

    fn save_container_net(&self, id: &str, n: &ContainerNet) -> Result<()> {
        self.write_container_net(id, n, true)
    }

    /// Writes the record. `durable`: the settings part, with fsync, to the data root (create,
    /// connect, disconnect); the running record follows when there is a run. Otherwise
    /// (a start's addresses, an exit's removal of them) only the running record on the exec
    /// root, without fsync: after a host crash the container is not running, so it is moot.
    fn write_container_net(&self, id: &str, n: &ContainerNet, durable: bool) -> Result<()> {
        let encode = |n: &ContainerNet| {
            serde_json::to_vec_pretty(n)
                .map_err(|e| Error::Internal(format!("encode network record of {id}: {e}")))
        };
        if durable {
            let path = net_file(self.config(), id);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
            }
            util::write_atomic(&path, &encode(&n.settings_only())?)
                .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        }
        let running = running_net_file(self.config(), id);
        if n.sandbox_key.is_empty() {
            match std::fs::remove_file(&running) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("remove {}", running.display()), e)),
            }
        } else {
            util::write_replace(&running, &encode(n)?)
                .map_err(|e| Error::io(format!("write {}", running.display()), e))?;
        }
        self.net()
            .containers
            .lock()
            .expect("container network lock poisoned")
            .insert(id.to_string(), n.clone());
        Ok(())
    }

    /// `create`: validates `NetworkMode`, `NetworkingConfig.EndpointsConfig` and the port
    /// options, and records the container's networks. Called once the name is reserved;
    /// create's own cleanup removes the file with the container's data dir.
    pub async fn prepare_container_network(
        &self,
        id: &str,
        config: &crate::models::ContainerConfig,
        hc: &HostConfig,
        networking: Option<&Value>,
    ) -> Result<()> {
        let mode = hc.network_mode.clone();
        requested_bindings(hc, config.exposed_ports.as_ref())?;
        for key in config.exposed_ports.iter().flat_map(|m| m.keys()) {
            parse_port_key(key)?;
        }
        let mut eps: BTreeMap<String, EndpointSettings> = BTreeMap::new();
        if let Some(map) = networking
            .and_then(|v| v.get("EndpointsConfig"))
            .and_then(Value::as_object)
        {
            for (k, v) in map {
                let s: EndpointSettings = if v.is_null() {
                    EndpointSettings::default()
                } else {
                    serde_json::from_value(v.clone()).map_err(|e| {
                        Error::InvalidArgument(format!("invalid EndpointsConfig for {k}: {e}"))
                    })?
                };
                eps.insert(k.clone(), s);
            }
        }
        let mut rec = ContainerNet::default();
        if let Some(other) = mode.strip_prefix("container:") {
            self.lookup(other)?;
        } else {
            let primary = self.find_network(&mode)?;
            let mut s = eps
                .remove(&mode)
                .or_else(|| eps.remove(&primary.name))
                .or_else(|| eps.remove(&primary.id))
                // The docker CLI keys the default network's settings as "default".
                .or_else(|| eps.remove("default"))
                .unwrap_or_default();
            if s.mac_address.is_empty() {
                s.mac_address = config.mac_address.clone().unwrap_or_default();
            }
            if mode_has_endpoints(&mode) && primary.is_bridge() {
                rec.primary = primary.name.clone();
            }
            validate_endpoint(&primary, &s)?;
            rec.networks.insert(primary.name.clone(), s);
            for (k, s) in eps {
                let n = self.find_network(&k)?;
                if !n.is_bridge() || !mode_has_endpoints(&mode) {
                    return Err(Error::InvalidArgument(format!(
                        "Container cannot be connected to network endpoints: {mode}, {k}"
                    )));
                }
                validate_endpoint(&n, &s)?;
                rec.networks.insert(n.name.clone(), s);
            }
        }
        self.save_container_net(id, &rec)
    }

    /// The first, quick half of a start's network set-up (before the shim): the namespace
    /// the container will join and, when it is a new one of the container's own, its path
    /// for [`Engine::attach_container_network`], the second half. The bundle needs only
    /// the namespace's path, so a start writes it while the second half runs. On error in
    /// either half the caller runs [`Engine::teardown_container_network`].
    pub async fn prepare_container_netns(
        &self,
        c: &Container,
    ) -> Result<(NetworkNs, Option<PathBuf>)> {
        let mode = c.host_config.network_mode.clone();
        let rec = self.container_net(c);
        if mode == "host" {
            return Ok((NetworkNs::Host, None));
        }
        if let Some(other) = mode.strip_prefix("container:") {
            let h = self.lookup(other)?;
            let o = h.snapshot();
            if o.state.status() != Status::Running && o.state.status() != Status::Paused {
                return Err(Error::Conflict(format!(
                    "cannot join network namespace of a non running container: {}",
                    o.id
                )));
            }
            // Share the other container's view of names as well as its interfaces.
            for (src, dst) in [
                (&o.hosts_path, &c.hosts_path),
                (&o.resolv_conf_path, &c.resolv_conf_path),
            ] {
                if let Ok(data) = std::fs::read(src) {
                    util::write_world_readable(dst, &data, true)
                        .map_err(|e| Error::io(format!("write {}", dst.display()), e))?;
                }
            }
            let netns = self.net().manager.config().netns_dir.join(&o.id);
            let path = if netns.exists() {
                netns
            } else {
                PathBuf::from(format!("/proc/{}/ns/net", o.state.pid))
            };
            return Ok((NetworkNs::Path(path), None));
        }
        if mode == "none" || rec.networks.is_empty() && rec.primary.is_empty() {
            return Ok((NetworkNs::New, None));
        }
        let t0 = std::time::Instant::now();
        let netns = self.net().manager.create_netns(&c.id).await?;
        tracing::debug!(id = %c.id, elapsed = ?t0.elapsed(), "network: namespace ready");
        Ok((NetworkNs::Path(netns.clone()), Some(netns)))
    }

    /// The second half of a start's network set-up, for the namespace at `netns`: the
    /// endpoints (first `NetworkMode`'s, so it gets `eth0` and the default route),
    /// published ports, DNS names, `/etc/hosts` and `/etc/resolv.conf`.
    pub async fn attach_container_network(&self, c: &Container, netns: PathBuf) -> Result<()> {
        let mut rec = self.container_net(c);
        rec.sandbox_key = netns.to_string_lossy().into_owned();
        rec.ports.clear();
        let mut order: Vec<String> = rec.networks.keys().cloned().collect();
        order.sort_by_key(|n| *n != rec.primary);
        let bindings = resolve_ranges(&requested_bindings(
            &c.host_config,
            c.config.exposed_ports.as_ref(),
        )?)?;
        let mut publish_done = false;
        for name in order {
            let settings = rec.networks.get(&name).cloned().unwrap_or_default();
            let cfg = self.find_network(&name)?;
            let publish = !publish_done && cfg.is_bridge();
            publish_done |= publish;
            let s = self
                .attach_endpoint(
                    c,
                    &cfg,
                    &netns,
                    settings,
                    if publish {
                        bindings.clone()
                    } else {
                        Vec::new()
                    },
                    &mut rec.ports,
                )
                .await?;
            rec.networks.insert(name, s);
        }
        self.write_container_net(&c.id, &rec, false)?;
        self.write_network_etc_files(c, &rec)?;
        Ok(())
    }

    async fn attach_endpoint(
        &self,
        c: &Container,
        cfg: &NetworkConfig,
        netns: &Path,
        mut s: EndpointSettings,
        bindings: Vec<PortBinding>,
        ports: &mut BTreeMap<String, Vec<ApiPortBinding>>,
    ) -> Result<EndpointSettings> {
        let aliases = s.aliases.clone().unwrap_or_default();
        let mut dns_names = vec![c.bare_name().to_string(), c.short_id().to_string()];
        dns_names.extend(aliases.iter().cloned());
        let ep = self
            .net()
            .manager
            .connect(EndpointRequest {
                network: cfg.id.clone(),
                endpoint_id: c.id.clone(),
                netns: netns.to_path_buf(),
                ifname: None,
                ipv4: s.requested_ip()?,
                ipv6: s.requested_ip6()?,
                // Like docker, `--dns` servers become the embedded resolver's upstreams
                // for this container (its resolv.conf names 127.0.0.11).
                dns_servers: c
                    .host_config
                    .dns
                    .iter()
                    .flatten()
                    .filter_map(|d| d.parse::<IpAddr>().ok())
                    .map(|ip| std::net::SocketAddr::new(ip, 53))
                    .collect(),
                aliases: aliases.clone(),
                dns_names: dns_names[..2].to_vec(),
                port_bindings: bindings,
                mac: parse_mac(&s.mac_address),
            })
            .await?;
        for b in &ep.host_ports {
            ports
                .entry(format!("{}/{}", b.container_port, proto_str(b.proto)))
                .or_default()
                .push(ApiPortBinding {
                    host_ip: b
                        .host_ip
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "0.0.0.0".into()),
                    host_port: b.host_port.to_string(),
                });
        }
        s.network_id = cfg.id.clone();
        s.endpoint_id = ep.endpoint_id.clone();
        s.ip_address = ep.ip.map(|i| i.to_string()).unwrap_or_default();
        s.ip_prefix_len = ep.prefix_len;
        s.gateway = ep.gateway.map(|g| g.to_string()).unwrap_or_default();
        s.global_ipv6_address = ep.ipv6.map(|i| i.to_string()).unwrap_or_default();
        s.global_ipv6_prefix_len = ep.prefix_len6;
        s.ipv6_gateway = ep.gateway6.map(|g| g.to_string()).unwrap_or_default();
        s.mac_address = ep.mac.as_ref().map(format_mac).unwrap_or_default();
        s.dns_names = cfg.has_dns().then_some(dns_names);
        if cfg.has_dns() {
            // Links on a user-defined network (the endpoint's, and `--link`s as dockerd
            // converts them) are names only this container resolves.
            let links: Vec<(String, String)> = s
                .links
                .iter()
                .flatten()
                .chain(c.host_config.links.iter().flatten())
                .map(|l| {
                    let (name, alias) = parse_link(l);
                    (alias, name)
                })
                .collect();
            self.net().manager.dns_server().add_links(netns, &links);
        }
        Ok(s)
    }

    /// `/etc/hosts` with the container's own address and its `--link`s, and the embedded
    /// DNS in `/etc/resolv.conf` when it is on a user-defined network. Rebuilt from the
    /// base files at every start and written once each, without fsync
    /// (`write_world_readable` not durable): these fsyncs were most of the network's cost
    /// on the start path.
    fn write_network_etc_files(&self, c: &Container, rec: &ContainerNet) -> Result<()> {
        let [hostname, (hosts_path, mut hosts), (resolv_path, mut resolv)] =
            crate::container::spec::etc_files(c, self.config())?;
        let own_ip = rec
            .networks
            .get(&rec.primary)
            .map(|s| s.ip_address.clone())
            .filter(|ip| !ip.is_empty())
            .or_else(|| {
                rec.networks
                    .values()
                    .map(|s| s.ip_address.clone())
                    .find(|ip| !ip.is_empty())
            });
        for link in c.host_config.links.iter().flatten() {
            let (name, alias) = parse_link(link);
            let Ok(h) = self.lookup(&name) else {
                continue;
            };
            let other = h.snapshot();
            let onet = self.container_net(&other);
            let ip = rec
                .networks
                .keys()
                .filter_map(|n| onet.networks.get(n))
                .chain(onet.networks.values())
                .map(|s| s.ip_address.clone())
                .find(|ip| !ip.is_empty());
            if let Some(ip) = ip {
                let mut names = vec![alias.clone()];
                if !names.contains(&other.short_id().to_string()) {
                    names.push(other.short_id().to_string());
                }
                if other.bare_name() != alias {
                    names.push(other.bare_name().to_string());
                }
                hosts.push_str(&format!("{ip}\t{}\n", names.join(" ")));
            }
        }
        if let Some(ip) = own_ip {
            let host = &c.config.hostname;
            if c.config.domainname.is_empty() {
                hosts.push_str(&format!("{ip}\t{host}\n"));
            } else {
                hosts.push_str(&format!("{ip}\t{host}.{} {host}\n", c.config.domainname));
            }
        }
        let user_net = rec
            .networks
            .keys()
            .filter_map(|n| self.net().manager.get(n))
            .any(|n| n.has_dns());
        if user_net {
            resolv = embedded_resolv_conf(&resolv);
        }
        for (path, data) in [hostname, (hosts_path, hosts), (resolv_path, resolv)] {
            // Create wrote the base files; rewriting an unchanged one (hostname, the default
            // bridge's resolv.conf) would only cost a file creation and a rename.
            if std::fs::read(path).ok().as_deref() == Some(data.as_bytes()) {
                continue;
            }
            util::write_world_readable(path, data.as_bytes(), false)
                .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        }
        Ok(())
    }

    /// After an exit (or a failed start): every endpoint of the container goes, then its
    /// namespace; the record keeps the networks but forgets the addresses. Idempotent.
    /// Nothing runs in the namespace any more, so the veths are deleted in the background
    /// (`release`): their addresses stay reserved until they are gone.
    pub async fn teardown_container_network(&self, id: &str) {
        let mgr = &self.net().manager;
        for n in mgr.list() {
            if mgr.endpoints(&n.id).iter().any(|e| e.endpoint_id == id) {
                if let Err(e) = mgr.release(&n.id, id).await {
                    tracing::warn!(container = %id, network = %n.name, "disconnect: {e}");
                }
            }
        }
        if let Err(e) = mgr.delete_netns(id).await {
            tracing::warn!(container = %id, "delete netns: {e}");
        }
        let cached = self
            .net()
            .containers
            .lock()
            .expect("container network lock poisoned")
            .get(id)
            .cloned();
        let rec = match cached {
            Some(r) => Some(r),
            None => self
                .lookup(id)
                .ok()
                .map(|h| self.container_net(&h.snapshot())),
        };
        // Without the run's part; the running record goes (when there is one: a cleared
        // cached record can still have one after a crash).
        if let Some(rec) = rec {
            if let Err(e) = self.write_container_net(id, &rec.settings_only(), false) {
                tracing::warn!(container = %id, "save network record: {e}");
            }
        }
    }

    /// `rm`: releases whatever is left and forgets the record.
    pub async fn forget_container_network(&self, id: &str) {
        self.teardown_container_network(id).await;
        self.net()
            .containers
            .lock()
            .expect("container network lock poisoned")
            .remove(id);
    }

    /// After live restore: drops endpoints, namespaces and ports of containers that are no
    /// longer running and restores DNS and port reservations of those that are.
    pub(crate) async fn reconcile_networks(&self) -> Result<()> {
        let live: HashSet<String> = self
            .all_handles()
            .iter()
            .filter(|h| matches!(h.status(), Status::Running | Status::Paused))
            .map(|h| h.id.clone())
            .collect();
        self.net().manager.reconcile(&live).await?;
        Ok(())
    }

    /// Daemon shutdown: when no container runs, removes the bridges, veths and firewall
    /// table (they are recreated at the next start); with live containers it keeps them,
    /// since those containers keep running across the restart.
    pub async fn shutdown_network(&self) {
        if self.all_handles().iter().any(|h| h.status().is_active()) {
            return;
        }
        if let Err(e) = self.net().manager.shutdown_cleanup().await {
            tracing::warn!("network cleanup at shutdown: {e}");
        }
    }

    // ---- inspect and list ---------------------------------------------------------------

    /// `NetworkSettings` of `docker inspect`.
    pub fn container_network_settings(&self, c: &Container) -> Value {
        let rec = self.container_net(c);
        let running = matches!(c.state.status(), Status::Running | Status::Paused);
        let mut ports = Map::new();
        if running {
            for key in c.config.exposed_ports.iter().flat_map(|m| m.keys()) {
                let key = if key.contains('/') {
                    key.clone()
                } else {
                    format!("{key}/tcp")
                };
                ports.insert(key, Value::Null);
            }
            for (k, v) in &rec.ports {
                ports.insert(k.clone(), json!(v));
            }
        }
        let default = rec
            .networks
            .iter()
            .find(|(n, _)| {
                self.net()
                    .manager
                    .get(n)
                    .is_some_and(|cfg| cfg.is_default_bridge)
            })
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        let sandbox_id = if rec.sandbox_key.is_empty() {
            String::new()
        } else {
            c.id.clone()
        };
        json!({
            "Bridge": "",
            "SandboxID": sandbox_id,
            "SandboxKey": rec.sandbox_key,
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SecondaryIPAddresses": Value::Null,
            "SecondaryIPv6Addresses": Value::Null,
            "EndpointID": default.endpoint_id,
            "Gateway": default.gateway,
            "GlobalIPv6Address": default.global_ipv6_address,
            "GlobalIPv6PrefixLen": default.global_ipv6_prefix_len,
            "IPAddress": default.ip_address,
            "IPPrefixLen": default.ip_prefix_len,
            "IPv6Gateway": default.ipv6_gateway,
            "MacAddress": default.mac_address,
            "Networks": rec.networks,
        })
    }

    /// `Ports` and `NetworkSettings` of a `docker ps` row.
    pub fn fill_summary_network(&self, c: &Container, v: &mut Value) {
        let rec = self.container_net(c);
        let mut ports = Vec::new();
        let mut published = HashSet::new();
        for (key, list) in &rec.ports {
            let Ok((port, proto)) = parse_port_key(key) else {
                continue;
            };
            published.insert(key.clone());
            for b in list {
                ports.push(json!({
                    "IP": b.host_ip,
                    "PrivatePort": port,
                    "PublicPort": b.host_port.parse::<u16>().unwrap_or(0),
                    "Type": proto_str(proto),
                }));
            }
        }
        for key in c.config.exposed_ports.iter().flat_map(|m| m.keys()) {
            if let Ok((port, proto)) = parse_port_key(key) {
                if !published.contains(&format!("{port}/{}", proto_str(proto))) {
                    ports.push(json!({"PrivatePort": port, "Type": proto_str(proto)}));
                }
            }
        }
        v["Ports"] = json!(ports);
        v["NetworkSettings"] = json!({"Networks": rec.networks});
    }

    /// The `network`, `publish` and `expose` filters of `docker ps`.
    pub fn container_matches_network_filters(&self, c: &Container, f: &Filters) -> bool {
        let rec = self.container_net(c);
        if f.has("network") {
            let ok = f.get("network").iter().any(|want| {
                rec.networks.iter().any(|(name, s)| {
                    name == want
                        || (!s.network_id.is_empty() && s.network_id.starts_with(want.as_str()))
                }) || (c.host_config.network_mode == *want)
            });
            if !ok {
                return false;
            }
        }
        let matches_port = |want: &str, port: u16, proto: Protocol| -> bool {
            let (p, wproto) = want.split_once('/').unwrap_or((want, ""));
            if !wproto.is_empty() && wproto != proto_str(proto) {
                return false;
            }
            match parse_host_ports(p) {
                Ok((lo, hi)) => (lo..=hi).contains(&port),
                Err(_) => false,
            }
        };
        if f.has("publish") {
            let ok = f.get("publish").iter().any(|want| {
                rec.ports.iter().any(|(key, list)| {
                    parse_port_key(key).is_ok_and(|(_, proto)| {
                        list.iter().any(|b| {
                            b.host_port
                                .parse::<u16>()
                                .is_ok_and(|hp| matches_port(want, hp, proto))
                        })
                    })
                })
            });
            if !ok {
                return false;
            }
        }
        if f.has("expose") {
            let mut keys: Vec<String> = c
                .config
                .exposed_ports
                .iter()
                .flat_map(|m| m.keys().cloned())
                .collect();
            keys.extend(rec.ports.keys().cloned());
            let ok = f.get("expose").iter().any(|want| {
                keys.iter().any(|k| {
                    parse_port_key(k).is_ok_and(|(port, proto)| matches_port(want, port, proto))
                })
            });
            if !ok {
                return false;
            }
        }
        true
    }

    // ---- /networks ----------------------------------------------------------------------

    /// `POST /networks/create`; returns the new id.
    pub async fn create_network(&self, body: NetworkCreateBody) -> Result<String> {
        if body.name.is_empty() {
            return Err(Error::InvalidArgument(
                "network name must not be empty".into(),
            ));
        }
        if body.ingress {
            return Err(Error::Forbidden(
                "ingress networks need swarm mode, which berth does not provide".into(),
            ));
        }
        let driver = match body.driver.as_str() {
            "" | "bridge" => "bridge".to_string(),
            d @ ("host" | "null") => {
                return Err(Error::Forbidden(format!(
                    "only one instance of \"{d}\" network is allowed"
                )))
            }
            d => return Err(Error::NotFound(format!("plugin \"{d}\" not found"))),
        };
        let mut req = CreateNetwork {
            name: body.name.clone(),
            driver: Some(driver),
            internal: body.internal,
            enable_ipv6: body.enable_ipv6.unwrap_or(false),
            attachable: body.attachable,
            options: body.options.clone().unwrap_or_default(),
            labels: body.labels.clone().unwrap_or_default(),
            ..Default::default()
        };
        if let Some(ipam) = &body.ipam {
            if !matches!(ipam.driver.as_str(), "" | "default") {
                return Err(Error::NotFound(format!(
                    "plugin \"{}\" not found",
                    ipam.driver
                )));
            }
            for pool in ipam.config.iter().flatten() {
                if pool.subnet.contains(':') {
                    if req.subnet6.is_some() {
                        return Err(Error::InvalidArgument(
                            "berth supports one IPv6 pool per network".into(),
                        ));
                    }
                    req.subnet6 = Some(pool.subnet.parse().map_err(|_| {
                        Error::InvalidArgument(format!("invalid subnet {}", pool.subnet))
                    })?);
                    if !pool.gateway.is_empty() {
                        req.gateway6 = Some(pool.gateway.parse().map_err(|_| {
                            Error::InvalidArgument(format!("invalid gateway {}", pool.gateway))
                        })?);
                    }
                    continue;
                }
                if req.subnet.is_some() {
                    return Err(Error::InvalidArgument(
                        "berth supports one IPv4 pool per network".into(),
                    ));
                }
                if !pool.subnet.is_empty() {
                    req.subnet = Some(pool.subnet.parse().map_err(|_| {
                        Error::InvalidArgument(format!("invalid subnet {}", pool.subnet))
                    })?);
                }
                if !pool.gateway.is_empty() {
                    req.gateway = Some(pool.gateway.parse().map_err(|_| {
                        Error::InvalidArgument(format!("invalid gateway {}", pool.gateway))
                    })?);
                }
                if !pool.ip_range.is_empty() {
                    req.ip_range = Some(pool.ip_range.parse().map_err(|_| {
                        Error::InvalidArgument(format!("invalid ip-range {}", pool.ip_range))
                    })?);
                }
                for (name, ip) in pool.auxiliary_addresses.iter().flatten() {
                    let addr = ip.parse().map_err(|_| {
                        Error::InvalidArgument(format!("invalid auxiliary address {name}={ip}"))
                    })?;
                    req.aux_addresses.insert(name.clone(), addr);
                }
            }
            req.ipam_options = ipam.options.clone();
        }
        let n = self.net().manager.create_network(req).await?;
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), n.name.clone());
        attrs.insert("type".to_string(), n.driver.clone());
        self.events().emit("network", "create", &n.id, attrs);
        Ok(n.id)
    }

    fn network_containers(&self, n: &NetworkConfig) -> Value {
        let mut out = Map::new();
        for ep in self.net().manager.endpoints(&n.id) {
            let name = self
                .lookup(&ep.endpoint_id)
                .map(|h| h.snapshot().bare_name().to_string())
                .unwrap_or_default();
            out.insert(
                ep.endpoint_id.clone(),
                json!({
                    "Name": name,
                    "EndpointID": ep.endpoint_id,
                    "MacAddress": ep.mac.as_ref().map(format_mac).unwrap_or_default(),
                    "IPv4Address": ep.ip.map(|ip| format!("{ip}/{}", ep.prefix_len)).unwrap_or_default(),
                    "IPv6Address": ep.ipv6.map(|ip| format!("{ip}/{}", ep.prefix_len6)).unwrap_or_default(),
                }),
            );
        }
        Value::Object(out)
    }

    /// `GET /networks` with docker's filters.
    pub fn list_networks(&self, f: &Filters) -> Result<Vec<Value>> {
        f.validate(&["name", "id", "driver", "label", "type", "dangling", "scope"])?;
        for t in f.get("type") {
            if t != "custom" && t != "builtin" {
                return Err(Error::InvalidArgument(format!(
                    "invalid filter: 'type'='{t}'"
                )));
            }
        }
        let mut out = Vec::new();
        for n in self.net().manager.list() {
            if f.has("name") && !f.get("name").iter().any(|w| n.name.contains(w.as_str())) {
                continue;
            }
            if f.has("id") && !f.get("id").iter().any(|w| n.id.starts_with(w.as_str())) {
                continue;
            }
            if f.has("driver") && !f.get("driver").contains(&n.driver) {
                continue;
            }
            if !f.match_labels("label", Some(&n.labels)) {
                continue;
            }
            if f.has("scope") && !f.get("scope").iter().any(|w| w == "local") {
                continue;
            }
            if f.has("type") {
                let t = if is_builtin(&n) { "builtin" } else { "custom" };
                if !f.get("type").iter().any(|w| w == t) {
                    continue;
                }
            }
            if let Some(d) = f.get("dangling").first() {
                let want = matches!(d.as_str(), "true" | "1");
                let dangling = !is_builtin(&n) && self.net().manager.endpoints(&n.id).is_empty();
                if want != dangling {
                    continue;
                }
            }
            out.push(network_json(&n, json!({})));
        }
        Ok(out)
    }

    /// `GET /networks/{id}`.
    pub fn inspect_network(&self, name_or_id: &str) -> Result<Value> {
        let n = self.find_network(name_or_id)?;
        let containers = self.network_containers(&n);
        Ok(network_json(&n, containers))
    }

    /// `DELETE /networks/{id}`.
    pub async fn remove_network(&self, name_or_id: &str) -> Result<()> {
        let n = self.find_network(name_or_id)?;
        self.net().manager.remove_network(&n.id).await?;
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), n.name.clone());
        attrs.insert("type".to_string(), n.driver.clone());
        self.events().emit("network", "destroy", &n.id, attrs);
        Ok(())
    }

    /// `POST /networks/prune`: custom networks without endpoints; returns their names.
    pub async fn prune_networks(&self, f: &Filters) -> Result<Vec<String>> {
        f.validate(&["label", "label!", "until"])?;
        let until = f
            .get("until")
            .first()
            .map(|u| crate::util::parse_time(u).map(|t| t.to_rfc3339()))
            .unwrap_or(None);
        let mut removed = Vec::new();
        for n in self.net().manager.list() {
            if is_builtin(&n) || !self.net().manager.endpoints(&n.id).is_empty() {
                continue;
            }
            if !f.match_labels("label", Some(&n.labels)) {
                continue;
            }
            if f.get("label!").iter().any(|l| {
                Filters(BTreeMap::from([("l".to_string(), vec![l.clone()])]))
                    .match_labels("l", Some(&n.labels))
            }) {
                continue;
            }
            if until.as_ref().is_some_and(|u| n.created > *u) {
                continue;
            }
            match self.remove_network(&n.id).await {
                Ok(()) => removed.push(n.name.clone()),
                Err(e) => tracing::warn!(network = %n.name, "prune: {e}"),
            }
        }
        Ok(removed)
    }

    /// `POST /networks/{id}/connect`: hot-plugs a running container (eth1, ...) or records
    /// the network for a created one (attached at its next start).
    pub async fn connect_network(&self, network: &str, body: NetworkConnectBody) -> Result<()> {
        let n = self.find_network(network)?;
        let h = self.lookup(&body.container)?;
        let _op = h.op.lock().await;
        let c = h.snapshot();
        let mode = c.host_config.network_mode.clone();
        if !mode_has_endpoints(&mode) || !n.is_bridge() {
            return Err(Error::Forbidden(
                "container sharing network namespace with another container or host cannot be connected to any other network".into(),
            ));
        }
        let mut rec = self.container_net(&c);
        if rec.networks.contains_key(&n.name) {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                c.bare_name(),
                n.name
            )));
        }
        let s = body.endpoint_config.unwrap_or_default();
        validate_endpoint(&n, &s)?;
        let s = if matches!(c.state.status(), Status::Running | Status::Paused)
            && !rec.sandbox_key.is_empty()
        {
            let netns = PathBuf::from(&rec.sandbox_key);
            let mut ports = BTreeMap::new();
            let s = self
                .attach_endpoint(&c, &n, &netns, s, Vec::new(), &mut ports)
                .await?;
            let lines = hosts_lines(&c, &s);
            if let Err(e) = edit_hosts_in_place(&c.hosts_path, |old| {
                let mut out = old.to_string();
                for l in &lines {
                    out.push_str(l);
                    out.push('\n');
                }
                out
            }) {
                tracing::warn!(container = %c.id, "update /etc/hosts on connect: {e}");
            }
            s
        } else {
            s
        };
        rec.networks.insert(n.name.clone(), s);
        if rec.primary.is_empty() {
            rec.primary = n.name.clone();
        }
        self.save_container_net(&c.id, &rec)?;
        let mut attrs = BTreeMap::new();
        attrs.insert("container".to_string(), c.id.clone());
        attrs.insert("name".to_string(), n.name.clone());
        attrs.insert("type".to_string(), n.driver.clone());
        self.events().emit("network", "connect", &n.id, attrs);
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_network(
        &self,
        network: &str,
        container: &str,
        force: bool,
    ) -> Result<()> {
        let n = match self.find_network(network) {
            Ok(n) => n,
            Err(e) if force => {
                // A forced disconnect from a network that is gone only cleans the record.
                let h = self.lookup(container)?;
                let c = h.snapshot();
                let mut rec = self.container_net(&c);
                if rec.networks.remove(network).is_some() {
                    self.save_container_net(&c.id, &rec)?;
                    return Ok(());
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let h = self.lookup(container)?;
        let _op = h.op.lock().await;
        let c = h.snapshot();
        let mut rec = self.container_net(&c);
        if !rec.networks.contains_key(&n.name) {
            return Err(Error::Forbidden(format!(
                "container {} is not connected to network {}",
                c.id, n.name
            )));
        }
        if !n.is_bridge() && !force {
            return Err(Error::Forbidden(format!(
                "container cannot be disconnected from {} network",
                n.name
            )));
        }
        self.net().manager.disconnect(&n.id, &c.id).await?;
        if let Some(s) = rec.networks.remove(&n.name) {
            let gone = hosts_lines(&c, &s);
            if !gone.is_empty() && matches!(c.state.status(), Status::Running | Status::Paused) {
                if let Err(e) = edit_hosts_in_place(&c.hosts_path, |old| {
                    old.lines()
                        .filter(|l| !gone.iter().any(|g| g == l))
                        .map(|l| format!("{l}\n"))
                        .collect()
                }) {
                    tracing::warn!(container = %c.id, "update /etc/hosts on disconnect: {e}");
                }
            }
        }
        if rec.primary == n.name {
            // Published ports went with the primary endpoint.
            rec.ports.clear();
        }
        self.save_container_net(&c.id, &rec)?;
        let mut attrs = BTreeMap::new();
        attrs.insert("container".to_string(), c.id.clone());
        attrs.insert("name".to_string(), n.name.clone());
        attrs.insert("type".to_string(), n.driver.clone());
        self.events().emit("network", "disconnect", &n.id, attrs);
        Ok(())
    }
}

/// The `/etc/hosts` lines a hot-plugged endpoint adds: its addresses for the container's
/// host name, as docker's sandbox does on connect.
fn hosts_lines(c: &Container, s: &EndpointSettings) -> Vec<String> {
    let host = &c.config.hostname;
    let names = if c.config.domainname.is_empty() {
        host.clone()
    } else {
        format!("{host}.{} {host}", c.config.domainname)
    };
    [&s.ip_address, &s.global_ipv6_address]
        .into_iter()
        .filter(|ip| !ip.is_empty())
        .map(|ip| format!("{ip}\t{names}"))
        .collect()
}

/// Rewrites a running container's `/etc/hosts` in place: it is bind-mounted into the
/// container, so replacing the file (a new inode) would not be seen inside.
fn edit_hosts_in_place(path: &Path, edit: impl FnOnce(&str) -> String) -> Result<()> {
    use std::io::Write as _;
    let old = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let new = edit(&old);
    if new == old {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    f.write_all(new.as_bytes())
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// docker's rules for endpoint options: aliases and a fixed address need a user network.
fn validate_endpoint(n: &NetworkConfig, s: &EndpointSettings) -> Result<()> {
    s.requested_ip()?;
    if s.requested_ip6()?.is_some() && !n.enable_ipv6 {
        return Err(Error::InvalidArgument(format!(
            "user specified IP address is supported only when connecting to networks with user configured subnets: network {} has no IPv6",
            n.name
        )));
    }
    if n.is_default_bridge || !n.is_bridge() {
        if s.aliases.as_ref().is_some_and(|a| !a.is_empty()) {
            return Err(Error::InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        if s.requested_ip()?.is_some() {
            return Err(Error::InvalidArgument(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
    }
    if !s.mac_address.is_empty() && parse_mac(&s.mac_address).is_none() {
        return Err(Error::InvalidArgument(format!(
            "invalid MAC address: {}",
            s.mac_address
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_keys_and_ranges() {
        assert_eq!(parse_port_key("80/tcp").unwrap(), (80, Protocol::Tcp));
        assert_eq!(parse_port_key("53/udp").unwrap(), (53, Protocol::Udp));
        assert_eq!(parse_port_key("8080").unwrap(), (8080, Protocol::Tcp));
        assert!(parse_port_key("0/tcp").is_err());
        assert!(parse_port_key("80/xyz").is_err());
        assert!(parse_port_key("abc").is_err());
        assert_eq!(parse_host_ports("").unwrap(), (0, 0));
        assert_eq!(parse_host_ports("8000-8010").unwrap(), (8000, 8010));
        assert!(parse_host_ports("9-1").is_err());
    }

    #[test]
    fn bindings_from_host_config() {
        let mut hc = HostConfig {
            port_bindings: Some(BTreeMap::from([
                (
                    "80/tcp".to_string(),
                    Some(vec![ApiPortBinding {
                        host_ip: "127.0.0.1".into(),
                        host_port: "8080".into(),
                    }]),
                ),
                ("53/udp".to_string(), None),
            ])),
            publish_all_ports: true,
            ..Default::default()
        };
        let exposed = BTreeMap::from([
            ("80/tcp".to_string(), json!({})),
            ("443/tcp".to_string(), json!({})),
        ]);
        let b = requested_bindings(&hc, Some(&exposed)).unwrap();
        assert_eq!(b.len(), 3);
        assert!(b.contains(&RequestedBinding {
            proto: Protocol::Udp,
            host_ip: None,
            host_ports: (0, 0),
            container_port: 53
        }));
        assert!(b.contains(&RequestedBinding {
            proto: Protocol::Tcp,
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_ports: (8080, 8080),
            container_port: 80
        }));
        assert!(b
            .iter()
            .any(|r| r.container_port == 443 && r.host_ports == (0, 0)));
        hc.port_bindings = Some(BTreeMap::from([(
            "80/tcp".to_string(),
            Some(vec![ApiPortBinding {
                host_ip: "nope".into(),
                host_port: "1".into(),
            }]),
        )]));
        assert!(requested_bindings(&hc, None).is_err());
    }

    #[test]
    fn ranges_resolve_to_a_free_port() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = held.local_addr().unwrap().port();
        let r = RequestedBinding {
            proto: Protocol::Tcp,
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_ports: (busy, busy.saturating_add(20)),
            container_port: 80,
        };
        let out = resolve_ranges(&[r.clone(), r]).unwrap();
        assert_ne!(out[0].host_port, busy);
        assert_ne!(out[0].host_port, out[1].host_port);
        let single = RequestedBinding {
            proto: Protocol::Tcp,
            host_ip: None,
            host_ports: (0, 0),
            container_port: 1,
        };
        assert_eq!(resolve_ranges(&[single]).unwrap()[0].host_port, 0);
    }

    #[test]
    fn resolv_conf_for_user_networks() {
        let out = embedded_resolv_conf("nameserver 1.1.1.1\nsearch example.com\n");
        assert_eq!(
            out,
            "nameserver 127.0.0.11\nsearch example.com\noptions ndots:0\n"
        );
        let out = embedded_resolv_conf("nameserver 1.1.1.1\noptions attempts:2\n");
        assert_eq!(out, "nameserver 127.0.0.11\noptions attempts:2\n");
    }

    #[test]
    fn links_and_macs() {
        assert_eq!(parse_link("db:mydb"), ("db".into(), "mydb".into()));
        assert_eq!(parse_link("/db:/web/mydb"), ("db".into(), "mydb".into()));
        assert_eq!(parse_link("db"), ("db".into(), "db".into()));
        assert_eq!(
            parse_mac("02:42:ac:11:00:02"),
            Some([2, 0x42, 0xac, 0x11, 0, 2])
        );
        assert_eq!(parse_mac("02:42"), None);
    }

    #[test]
    fn endpoint_rules() {
        let mut n = NetworkConfig {
            name: "bridge".into(),
            id: "x".into(),
            driver: "bridge".into(),
            subnet: None,
            gateway: None,
            ip_range: None,
            internal: false,
            bridge_name: "berth0".into(),
            enable_ipv6: false,
            subnet6: None,
            gateway6: None,
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
            is_default_bridge: true,
            created: String::new(),
            attachable: false,
            ipam_options: None,
            aux_addresses: BTreeMap::new(),
        };
        let aliased = EndpointSettings {
            aliases: Some(vec!["a".into()]),
            ..Default::default()
        };
        assert!(validate_endpoint(&n, &aliased).is_err());
        n.is_default_bridge = false;
        assert!(validate_endpoint(&n, &aliased).is_ok());
        let bad_ip = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: "10.0.0.300".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(validate_endpoint(&n, &bad_ip).is_err());
    }

    #[test]
    fn endpoint_settings_use_dockers_names() {
        let s: EndpointSettings = serde_json::from_value(json!({
            "Aliases": ["web"],
            "IPAMConfig": {"IPv4Address": "10.1.0.5"}
        }))
        .unwrap();
        assert_eq!(s.requested_ip().unwrap(), Some("10.1.0.5".parse().unwrap()));
        let v = serde_json::to_value(&s).unwrap();
        assert!(v.get("IPAddress").is_some());
        assert!(v.get("DNSNames").is_some());
        assert!(v.get("NetworkID").is_some());
    }
}
