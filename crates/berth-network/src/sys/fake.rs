//! A recording [`NetSys`] for unit tests: it keeps links in memory, remembers every call
//! and every nft script, and can be told which routes the host has and which ports are
//! taken.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ipnet::{IpNet, Ipv4Net};

use super::{NetSys, PeerConfig, PortReservation, SysError, VethRequest};
use crate::types::Protocol;

/// In-memory stand-in for the kernel.
#[derive(Debug)]
pub struct FakeNetSys {
    calls: Mutex<Vec<String>>,
    /// link name → master bridge.
    links: Mutex<BTreeMap<String, Option<String>>>,
    routes: Mutex<Vec<Ipv4Net>>,
    /// (protocol, IPv6?, port).
    taken_ports: Mutex<BTreeSet<(Protocol, bool, u16)>>,
    next_port: AtomicU16,
    nft_scripts: Mutex<Vec<String>>,
    ruleset_json: Mutex<String>,
    /// When set, deleting that link waits for a permit (to observe work in flight).
    delete_gate: Mutex<Option<(String, Arc<tokio::sync::Semaphore>)>>,
}

impl Default for FakeNetSys {
    fn default() -> Self {
        FakeNetSys {
            calls: Mutex::default(),
            links: Mutex::default(),
            routes: Mutex::default(),
            taken_ports: Mutex::default(),
            next_port: AtomicU16::new(32768),
            nft_scripts: Mutex::default(),
            ruleset_json: Mutex::new(r#"{"nftables":[]}"#.to_string()),
            delete_gate: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock()
        .expect("fake netsys mutex poisoned by a panicking test")
}

impl FakeNetSys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pretends the host routes these subnets.
    pub fn set_host_routes(&self, routes: Vec<Ipv4Net>) {
        *lock(&self.routes) = routes;
    }

    /// Pretends another process holds this port (in both families).
    pub fn take_port(&self, proto: Protocol, port: u16) {
        let mut taken = lock(&self.taken_ports);
        taken.insert((proto, false, port));
        taken.insert((proto, true, port));
    }

    /// What `nft -j list ruleset` returns.
    pub fn set_ruleset_json(&self, json: &str) {
        *lock(&self.ruleset_json) = json.to_string();
    }

    /// From now on `delete_link(name)` waits for a permit of the returned semaphore.
    pub fn gate_delete_of(&self, name: &str) -> Arc<tokio::sync::Semaphore> {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        *lock(&self.delete_gate) = Some((name.to_string(), gate.clone()));
        gate
    }

    /// Every call so far, as short strings such as `create_veth vethX br0 eth0`.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    /// Every nft script applied so far.
    pub fn nft_scripts(&self) -> Vec<String> {
        lock(&self.nft_scripts).clone()
    }

    /// Current links (name → master).
    pub fn links(&self) -> BTreeMap<String, Option<String>> {
        lock(&self.links).clone()
    }

    fn record(&self, call: String) {
        lock(&self.calls).push(call);
    }
}

#[async_trait]
impl NetSys for FakeNetSys {
    async fn ensure_bridge(&self, name: &str, mtu: Option<u32>) -> Result<(), SysError> {
        self.record(format!("ensure_bridge {name} {mtu:?}"));
        lock(&self.links).entry(name.to_string()).or_insert(None);
        Ok(())
    }

    async fn add_address(&self, link: &str, address: IpNet) -> Result<(), SysError> {
        self.record(format!("add_address {link} {address}"));
        if !lock(&self.links).contains_key(link) {
            return Err(SysError::LinkNotFound(link.to_string()));
        }
        Ok(())
    }

    async fn link_exists(&self, name: &str) -> Result<bool, SysError> {
        Ok(lock(&self.links).contains_key(name))
    }

    async fn delete_link(&self, name: &str) -> Result<(), SysError> {
        let gate = lock(&self.delete_gate).clone();
        if let Some((_, gate)) = gate.filter(|(n, _)| n == name) {
            gate.acquire()
                .await
                .expect("fake delete gate closed")
                .forget();
        }
        self.record(format!("delete_link {name}"));
        lock(&self.links).remove(name);
        Ok(())
    }

    async fn bridge_ports(&self, bridge: &str) -> Result<Vec<String>, SysError> {
        Ok(lock(&self.links)
            .iter()
            .filter(|(_, m)| m.as_deref() == Some(bridge))
            .map(|(n, _)| n.clone())
            .collect())
    }

    async fn create_veth(&self, req: &VethRequest) -> Result<(), SysError> {
        self.record(format!(
            "create_veth {} {} {}",
            req.host_name, req.bridge, req.peer_name
        ));
        let mut links = lock(&self.links);
        if !links.contains_key(&req.bridge) {
            return Err(SysError::LinkNotFound(req.bridge.clone()));
        }
        links.insert(req.host_name.clone(), Some(req.bridge.clone()));
        Ok(())
    }

    async fn configure_peer(&self, netns: &Path, cfg: &PeerConfig) -> Result<(), SysError> {
        self.record(format!(
            "configure_peer {} {} {} {:?}",
            netns.display(),
            cfg.ifname,
            cfg.address,
            cfg.default_gateway
        ));
        if let Some(a6) = cfg.address6 {
            self.record(format!(
                "configure_peer6 {} {} {a6} {:?}",
                netns.display(),
                cfg.ifname,
                cfg.default_gateway6
            ));
        }
        Ok(())
    }

    async fn host_routes(&self) -> Result<Vec<Ipv4Net>, SysError> {
        Ok(lock(&self.routes).clone())
    }

    async fn nft_apply(&self, script: &str) -> Result<(), SysError> {
        self.record("nft_apply".to_string());
        lock(&self.nft_scripts).push(script.to_string());
        Ok(())
    }

    async fn nft_ruleset_json(&self) -> Result<String, SysError> {
        Ok(lock(&self.ruleset_json).clone())
    }

    async fn iptables_legacy(
        &self,
        ipv6: bool,
        args: &[String],
    ) -> Result<Option<String>, SysError> {
        let program = if ipv6 { "ip6tables" } else { "iptables" };
        self.record(format!("{program}_legacy {}", args.join(" ")));
        Ok(None)
    }

    async fn write_sysctl(&self, key: &str, value: &str) -> Result<(), SysError> {
        self.record(format!("sysctl {key}={value}"));
        Ok(())
    }

    async fn create_netns(&self, path: &Path) -> Result<(), SysError> {
        self.record(format!("create_netns {}", path.display()));
        Ok(())
    }

    async fn delete_netns(&self, path: &Path) -> Result<(), SysError> {
        self.record(format!("delete_netns {}", path.display()));
        Ok(())
    }

    fn reserve_port(
        &self,
        proto: Protocol,
        ip: IpAddr,
        port: u16,
    ) -> Result<PortReservation, SysError> {
        let mut taken = lock(&self.taken_ports);
        let v6 = ip.is_ipv6();
        let port = if port == 0 {
            loop {
                let p = self.next_port.fetch_add(1, Ordering::Relaxed);
                if !taken.contains(&(proto, v6, p)) {
                    break p;
                }
            }
        } else {
            port
        };
        if !taken.insert((proto, v6, port)) {
            return Err(SysError::PortAllocated { ip, port });
        }
        self.record(format!("reserve_port {proto} {ip}:{port}"));
        Ok(PortReservation { port, socket: None })
    }

    async fn bind_dns(&self, netns: &Path) -> Result<(UdpSocket, TcpListener), SysError> {
        self.record(format!("bind_dns {}", netns.display()));
        // Real sockets on an ephemeral loopback port so the server code can run unchanged.
        let io = |source| SysError::Io {
            op: "bind fake dns socket",
            path: PathBuf::from("127.0.0.1:0"),
            source,
        };
        let udp = UdpSocket::bind("127.0.0.1:0").map_err(io)?;
        let tcp = TcpListener::bind("127.0.0.1:0").map_err(io)?;
        udp.set_nonblocking(true).map_err(io)?;
        tcp.set_nonblocking(true).map_err(io)?;
        Ok((udp, tcp))
    }
}
