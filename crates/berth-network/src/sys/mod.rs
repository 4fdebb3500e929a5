//! The narrow side-effect boundary of the network library.
//!
//! Everything that needs root or the kernel (netlink, nftables, sysctls, namespaces,
//! sockets in a namespace) goes through [`NetSys`]; the manager's logic above it (IPAM,
//! subnet choice, rule generation, bookkeeping) is then unit-testable with [`FakeNetSys`],
//! which records the calls. [`LinuxNetSys`] is the real implementation.
//!
//! All methods act on the network namespace the implementation was created in (the
//! daemon's), except those that take a namespace path.

mod fake;
mod linux;
pub mod netns;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use fake::FakeNetSys;
pub use linux::LinuxNetSys;

use crate::types::Protocol;

#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("netlink {op} failed: {detail}")]
    Netlink { op: String, detail: String },
    #[error("{program} failed ({status}): {stderr}")]
    Command {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{op}: {source}")]
    Os {
        op: String,
        source: nix::errno::Errno,
    },
    #[error("Bind for {ip}:{port} failed: port is already allocated")]
    PortAllocated { ip: IpAddr, port: u16 },
    #[error("namespace helper thread for {0} panicked")]
    HelperPanicked(PathBuf),
    #[error("link {0} not found")]
    LinkNotFound(String),
}

/// Host end of a veth pair, enslaved to a bridge; the peer is created directly inside the
/// endpoint's namespace under its final name (so a host `eth0` never clashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethRequest {
    pub host_name: String,
    pub bridge: String,
    pub netns: PathBuf,
    pub peer_name: String,
    pub mac: [u8; 6],
    pub mtu: Option<u32>,
}

/// How the peer is set up inside the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub ifname: String,
    pub address: Ipv4Net,
    /// Installs `default via <gateway>` when set.
    pub default_gateway: Option<Ipv4Addr>,
    /// The IPv6 address on networks with IPv6 (added without duplicate address
    /// detection, so it is usable at once).
    pub address6: Option<Ipv6Net>,
    /// Installs the IPv6 `default via <gateway>` when set.
    pub default_gateway6: Option<Ipv6Addr>,
}

/// A host port held by a bound socket so nobody else can take it while it is published.
#[derive(Debug)]
pub struct PortReservation {
    pub port: u16,
    /// Kept open for the reservation's lifetime; `None` in the fake.
    pub socket: Option<OwnedFd>,
}

#[async_trait]
pub trait NetSys: Send + Sync {
    /// Creates the bridge if it is missing and sets it up.
    async fn ensure_bridge(&self, name: &str, mtu: Option<u32>) -> Result<(), SysError>;
    /// Adds an address (IPv6 ones without duplicate address detection); an address
    /// already present is fine.
    async fn add_address(&self, link: &str, address: IpNet) -> Result<(), SysError>;
    async fn link_exists(&self, name: &str) -> Result<bool, SysError>;
    /// Deletes a link; a missing link is fine.
    async fn delete_link(&self, name: &str) -> Result<(), SysError>;
    /// Names of the links enslaved to `bridge`.
    async fn bridge_ports(&self, bridge: &str) -> Result<Vec<String>, SysError>;
    /// Creates the veth pair, enslaves the host end (hairpin on) and sets it up.
    async fn create_veth(&self, req: &VethRequest) -> Result<(), SysError>;
    /// Inside `netns`: address, up, optional default route.
    async fn configure_peer(&self, netns: &Path, cfg: &PeerConfig) -> Result<(), SysError>;
    /// Destinations of the host's IPv4 routes, default route excluded.
    async fn host_routes(&self) -> Result<Vec<Ipv4Net>, SysError>;
    /// Applies an nft script (`nft -f -`) in one transaction.
    async fn nft_apply(&self, script: &str) -> Result<(), SysError>;
    /// `nft -j list ruleset`.
    async fn nft_ruleset_json(&self) -> Result<String, SysError>;
    /// Runs legacy (x_tables) iptables (`ip6tables` when `ipv6`) with `args`; `Ok(None)`
    /// when there is none.
    async fn iptables_legacy(
        &self,
        ipv6: bool,
        args: &[String],
    ) -> Result<Option<String>, SysError>;
    /// Writes a sysctl such as `net/ipv4/ip_forward`.
    async fn write_sysctl(&self, key: &str, value: &str) -> Result<(), SysError>;
    /// Creates a new namespace bind-mounted at `path`, with `lo` up.
    async fn create_netns(&self, path: &Path) -> Result<(), SysError>;
    /// Unmounts and removes `path`; missing is fine.
    async fn delete_netns(&self, path: &Path) -> Result<(), SysError>;
    /// Binds (without listening) a socket on `ip:port`; port 0 picks a free one.
    fn reserve_port(
        &self,
        proto: Protocol,
        ip: IpAddr,
        port: u16,
    ) -> Result<PortReservation, SysError>;
    /// Binds UDP and TCP sockets on 127.0.0.11:53 inside `netns`.
    async fn bind_dns(&self, netns: &Path) -> Result<(UdpSocket, TcpListener), SysError>;
    /// Frees whatever was made ahead for later namespaces (veth pairs included) and makes
    /// no more: the network is being shut down.
    async fn release_pool(&self) {}
    /// The host end's name of the veth pair made ahead with the namespace at `netns`, if
    /// any: an endpoint that takes that name has its pair adopted without a rename.
    fn pooled_host_end(&self, _netns: &Path) -> Option<String> {
        None
    }
}
