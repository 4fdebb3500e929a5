//! [`NetworkManager`]: docker's networking model on top of IPAM, the firewall generator,
//! the embedded DNS and the [`NetSys`] side effects.
//!
//! It owns network definitions and endpoints (an id plus a namespace path), never
//! containers. Mutating operations are serialized by one async lock: each one updates the
//! in-memory state, does the kernel work, persists the network's JSON file and regenerates
//! berth's nftables table from the whole state. An endpoint is persisted once its veth
//! exists: a crash in between leaves a veth on one of our bridges that no record owns, and
//! [`NetworkManager::reconcile`] deletes exactly those (its address was never persisted).
//! Reads (`list`, `get`) take only a short synchronous lock and never wait for an
//! operation.
//!
//! # Cheap attach and detach
//!
//! A container on a bridge costs an attach at start and a detach at exit, and `docker run
//! --rm` waits for both, so they avoid the slow kernel paths where docker semantics allow:
//! - **The firewall is applied only when it changes.** The table is generated from the
//!   state; the script last applied is remembered and an identical one is not applied again
//!   (an endpoint without published ports does not change it). Each `nft` run is a process
//!   and a whole-table swap, 7 to 30 ms here. Start-up reconciliation always applies.
//! - **Veths of exited containers are deleted in the background.** Deleting a veth waits
//!   for RCU grace periods in the kernel (about 20 ms here). On the exit path
//!   ([`NetworkManager::release`]) the endpoint leaves the state, DNS and firewall at once and
//!   the veth is deleted by a task; until that task is done its addresses are *draining*:
//!   never handed to another endpoint (an explicit `--ip` of one waits for the task), so an
//!   address is never on two links at once. A crash mid-way leaves a veth that no endpoint
//!   owns, which reconciliation deletes before any new attach. `network disconnect` of a
//!   running container stays synchronous (the interface must be gone when it returns).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::Rng;

use crate::dns::{read_resolv_conf, DnsServer};
use crate::error::{Error, Result};
use crate::ipam::{self, AddressPool};
use crate::nft::{self, BridgeRules, Firewall, PublishRule};
use crate::proxy::TcpProxy;
use crate::state::{self, EndpointState, NetworkState};
use crate::sys::{NetSys, PeerConfig, PortReservation, VethRequest};
use crate::types::Protocol;
use crate::types::{
    CreateNetwork, Endpoint, EndpointRequest, ManagerConfig, NetworkConfig, PortBinding,
    DRIVER_BRIDGE, DRIVER_HOST, DRIVER_NULL, OPT_BRIDGE_NAME,
};

struct Inner {
    cfg: ManagerConfig,
    sys: Arc<dyn NetSys>,
    networks: Mutex<BTreeMap<String, NetworkState>>,
    op: tokio::sync::Mutex<()>,
    dns: DnsServer,
    /// (network id, endpoint id) → sockets holding its published host ports.
    ports: Mutex<HashMap<(String, String), Reserved>>,
    /// The nft script applied last; `None` when unknown (never applied, or failed).
    applied: Mutex<Option<String>>,
    /// Host veth → addresses that stay reserved until its background deletion is done;
    /// shared with the deleting tasks.
    draining: Arc<Mutex<HashMap<String, Drain>>>,
}

/// What holds an endpoint's published host ports: bound sockets, and the IPv6 loopback
/// proxies (whose listeners are the reservations of their ports).
#[derive(Debug, Default)]
struct Reserved {
    _sockets: Vec<PortReservation>,
    _proxies: Vec<TcpProxy>,
}

/// A veth being deleted in the background and the addresses it held.
struct Drain {
    network_id: String,
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
    /// Turns `true` when the veth is gone.
    done: tokio::sync::watch::Receiver<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Listener tasks hold only the DNS server, not the manager: stop them explicitly
        // so a dropped manager leaves no sockets in container namespaces.
        self.dns.stop_all();
    }
}

/// The network subsystem of the daemon; `Send + Sync`, cheap to clone.
#[derive(Clone)]
pub struct NetworkManager {
    inner: Arc<Inner>,
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Civil-from-days (Howard Hinnant), to avoid a date crate for one timestamp.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// docker's MAC scheme: 02:42 followed by the IPv4 address.
pub fn mac_for_ip(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// The IPAM owner standing for a draining address during one allocation.
const DRAINING: &str = "draining veth";

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl NetworkManager {
    /// Loads the persisted networks; nothing is applied to the kernel until
    /// [`ensure_default_bridge`](Self::ensure_default_bridge) or
    /// [`reconcile`](Self::reconcile).
    pub fn new(cfg: ManagerConfig, sys: Arc<dyn NetSys>) -> Result<Self> {
        let mut networks = BTreeMap::new();
        for st in state::load_all(cfg.state_dirs())? {
            networks.insert(st.config.id.clone(), st);
        }
        let upstreams = match &cfg.dns_upstreams {
            Some(list) => list.clone(),
            None => read_resolv_conf(&cfg.resolv_conf).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "embedded dns has no upstream resolvers");
                Vec::new()
            }),
        };
        Ok(NetworkManager {
            inner: Arc::new(Inner {
                dns: DnsServer::new(upstreams),
                cfg,
                sys,
                networks: Mutex::new(networks),
                op: tokio::sync::Mutex::new(()),
                ports: Mutex::default(),
                applied: Mutex::default(),
                draining: Arc::default(),
            }),
        })
    }

    fn nets(&self) -> MutexGuard<'_, BTreeMap<String, NetworkState>> {
        self.inner
            .networks
            .lock()
            .expect("network state lock poisoned")
    }

    fn ports(&self) -> MutexGuard<'_, HashMap<(String, String), Reserved>> {
        self.inner
            .ports
            .lock()
            .expect("port reservation lock poisoned")
    }

    fn draining(&self) -> MutexGuard<'_, HashMap<String, Drain>> {
        self.inner.draining.lock().expect("draining lock poisoned")
    }

    /// Waits until the background deletions of the veths that `matches` selects are done.
    async fn wait_drains(&self, matches: impl Fn(&Drain) -> bool) {
        let waiting: Vec<tokio::sync::watch::Receiver<bool>> = self
            .draining()
            .values()
            .filter(|d| matches(d))
            .map(|d| d.done.clone())
            .collect();
        for mut rx in waiting {
            // An error means the task is gone, which it only is once it is done.
            let _ = rx.wait_for(|done| *done).await;
        }
    }

    /// The manager's configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.cfg
    }

    /// The embedded DNS server (for inspection and tests).
    pub fn dns_server(&self) -> &DnsServer {
        &self.inner.dns
    }

    /// All networks, ordered by name.
    pub fn list(&self) -> Vec<NetworkConfig> {
        let mut out: Vec<NetworkConfig> = self.nets().values().map(|s| s.config.clone()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// A network by exact name, full id or unique id prefix (docker's lookup order).
    pub fn get(&self, name_or_id: &str) -> Option<NetworkConfig> {
        self.find(name_or_id).map(|s| s.config)
    }

    fn find(&self, name_or_id: &str) -> Option<NetworkState> {
        let nets = self.nets();
        if let Some(s) = nets.get(name_or_id) {
            return Some(s.clone());
        }
        if let Some(s) = nets.values().find(|s| s.config.name == name_or_id) {
            return Some(s.clone());
        }
        if name_or_id.is_empty() {
            return None;
        }
        let mut prefixed = nets
            .values()
            .filter(|s| s.config.id.starts_with(name_or_id));
        match (prefixed.next(), prefixed.next()) {
            (Some(s), None) => Some(s.clone()),
            _ => None,
        }
    }

    /// Endpoints attached to a network (for `docker network inspect`).
    pub fn endpoints(&self, name_or_id: &str) -> Vec<Endpoint> {
        let Some(st) = self.find(name_or_id) else {
            return Vec::new();
        };
        st.endpoints
            .values()
            .map(|e| endpoint_view(&st, e))
            .collect()
    }

    fn save(&self, st: &NetworkState) -> Result<()> {
        state::save(self.inner.cfg.state_dirs(), st)?;
        Ok(())
    }

    fn put(&self, st: NetworkState) -> Result<()> {
        self.save(&st)?;
        self.nets().insert(st.config.id.clone(), st);
        Ok(())
    }

    /// Subnets the host already routes plus those of our networks.
    async fn taken_subnets(&self) -> Result<Vec<Ipv4Net>> {
        let mut taken = self.inner.sys.host_routes().await?;
        taken.extend(self.nets().values().filter_map(|s| s.config.subnet));
        Ok(taken)
    }

    /// Creates the default `bridge` network (and the predefined `host` and `none`) when
    /// missing, and makes sure its bridge, address and rules exist.
    pub async fn ensure_default_bridge(&self) -> Result<NetworkConfig> {
        let _op = self.inner.op.lock().await;
        for (name, driver) in [("host", DRIVER_HOST), ("none", DRIVER_NULL)] {
            if self.find(name).is_none() {
                let cfg = NetworkConfig {
                    name: name.to_string(),
                    id: random_hex(32),
                    driver: driver.to_string(),
                    subnet: None,
                    gateway: None,
                    ip_range: None,
                    internal: false,
                    bridge_name: String::new(),
                    enable_ipv6: false,
                    subnet6: None,
                    gateway6: None,
                    options: BTreeMap::new(),
                    labels: BTreeMap::new(),
                    is_default_bridge: false,
                    created: now_rfc3339(),
                    attachable: false,
                    ipam_options: None,
                    aux_addresses: BTreeMap::new(),
                };
                self.put(NetworkState {
                    config: cfg,
                    ipam: None,
                    endpoints: BTreeMap::new(),
                })?;
            }
        }
        let existing = self
            .nets()
            .values()
            .find(|s| s.config.is_default_bridge)
            .cloned();
        let st = match existing {
            Some(st) => st,
            None => {
                let (subnet, gateway) = match &self.inner.cfg.bip {
                    Some(bip) => {
                        let net: Ipv4Net = bip
                            .parse()
                            .map_err(|_| Error::Invalid(format!("invalid bip {bip}")))?;
                        (
                            net.trunc(),
                            Some(net.addr()).filter(|a| *a != net.network()),
                        )
                    }
                    None => {
                        // The default bridge's own route (left by an earlier run whose
                        // state was lost) must not push it off its subnet.
                        let taken = self.taken_subnets().await?;
                        (
                            ipam::select_subnet(&self.inner.cfg.default_address_pools, &taken)?,
                            None,
                        )
                    }
                };
                let pool = AddressPool::new(subnet, gateway, None)?;
                let mut options = BTreeMap::new();
                options.insert(
                    "com.docker.network.bridge.default_bridge".into(),
                    "true".into(),
                );
                options.insert("com.docker.network.bridge.enable_icc".into(), "true".into());
                options.insert(
                    "com.docker.network.bridge.enable_ip_masquerade".into(),
                    "true".into(),
                );
                options.insert(
                    OPT_BRIDGE_NAME.into(),
                    self.inner.cfg.default_bridge.clone(),
                );
                let cfg = NetworkConfig {
                    name: "bridge".into(),
                    id: random_hex(32),
                    driver: DRIVER_BRIDGE.into(),
                    subnet: Some(pool.subnet),
                    gateway: Some(pool.gateway),
                    ip_range: None,
                    internal: false,
                    bridge_name: self.inner.cfg.default_bridge.clone(),
                    enable_ipv6: false,
                    subnet6: None,
                    gateway6: None,
                    options,
                    labels: BTreeMap::new(),
                    is_default_bridge: true,
                    created: now_rfc3339(),
                    attachable: false,
                    ipam_options: None,
                    aux_addresses: BTreeMap::new(),
                };
                let st = NetworkState {
                    config: cfg,
                    ipam: Some(pool),
                    endpoints: BTreeMap::new(),
                };
                self.put(st.clone())?;
                st
            }
        };
        self.setup_bridge(&st.config).await?;
        self.reapply_firewall().await?;
        Ok(st.config)
    }

    /// `docker network create`.
    pub async fn create_network(&self, req: CreateNetwork) -> Result<NetworkConfig> {
        let _op = self.inner.op.lock().await;
        if req.name.is_empty() {
            return Err(Error::Invalid("network name must not be empty".into()));
        }
        if self
            .find(&req.name)
            .is_some_and(|s| s.config.name == req.name)
        {
            return Err(Error::NameConflict(req.name));
        }
        let driver = req.driver.clone().unwrap_or_else(|| DRIVER_BRIDGE.into());
        if driver != DRIVER_BRIDGE {
            return Err(Error::Invalid(format!(
                "only one instance of \"{driver}\" network is allowed, or the driver is not supported"
            )));
        }
        let id = match req.id {
            Some(id) if valid_id(&id) => id,
            Some(id) => return Err(Error::Invalid(format!("invalid network id {id:?}"))),
            None => random_hex(32),
        };
        if self.nets().contains_key(&id) {
            return Err(Error::NameConflict(id));
        }
        let subnet = match req.subnet {
            Some(subnet) => {
                let subnet = subnet.trunc();
                if self
                    .nets()
                    .values()
                    .filter_map(|s| s.config.subnet)
                    .any(|o| ipam::overlaps(&o, &subnet))
                {
                    return Err(ipam::IpamError::PoolOverlap(subnet).into());
                }
                subnet
            }
            None => {
                if req.gateway.is_some() || req.ip_range.is_some() {
                    return Err(Error::Invalid(
                        "gateway and ip-range need an explicit subnet".into(),
                    ));
                }
                let taken = self.taken_subnets().await?;
                ipam::select_subnet(&self.inner.cfg.default_address_pools, &taken)?
            }
        };
        let mut pool = AddressPool::new(subnet, req.gateway, req.ip_range)?;
        for (name, ip) in &req.aux_addresses {
            if !pool.subnet.contains(ip) {
                return Err(Error::Invalid(format!(
                    "auxiliary address {name}={ip} is not in subnet {}",
                    pool.subnet
                )));
            }
            pool.allocated.insert(*ip, format!("aux:{name}"));
        }
        let bridge_name = match req.options.get(OPT_BRIDGE_NAME) {
            Some(b) if !b.is_empty() && b.len() <= 15 && valid_id(b) => b.clone(),
            Some(b) => return Err(Error::Invalid(format!("invalid bridge name {b:?}"))),
            None => format!("br-{}", &id[..id.len().min(12)]),
        };
        if let Some(other) = self
            .nets()
            .values()
            .find(|s| s.config.is_bridge() && s.config.bridge_name == bridge_name)
        {
            return Err(Error::BridgeInUse {
                bridge: bridge_name,
                network: other.config.name.clone(),
            });
        }
        let (subnet6, gateway6) = if req.enable_ipv6 {
            let taken6: Vec<Ipv6Net> = self
                .nets()
                .values()
                .filter(|s| s.config.enable_ipv6)
                .filter_map(|s| s.config.subnet6)
                .collect();
            let wanted = match req.subnet6 {
                Some(s6) => {
                    if taken6.iter().any(|o| ipam::overlaps6(o, &s6)) {
                        return Err(ipam::IpamError::PoolOverlap6(s6.trunc()).into());
                    }
                    s6
                }
                None => ipam::random_ula_subnet(&taken6),
            };
            let (s6, gw6) = ipam::subnet6_with_gateway(wanted, req.gateway6)?;
            (Some(s6), Some(gw6))
        } else {
            // Recorded for the API only, as docker does without EnableIPv6.
            (req.subnet6, None)
        };
        let cfg = NetworkConfig {
            name: req.name,
            id,
            driver,
            subnet: Some(pool.subnet),
            gateway: Some(pool.gateway),
            ip_range: req.ip_range,
            internal: req.internal,
            bridge_name,
            enable_ipv6: req.enable_ipv6,
            subnet6,
            gateway6,
            options: req.options,
            labels: req.labels,
            is_default_bridge: false,
            created: now_rfc3339(),
            attachable: req.attachable,
            ipam_options: req.ipam_options,
            aux_addresses: req.aux_addresses,
        };
        self.put(NetworkState {
            config: cfg.clone(),
            ipam: Some(pool),
            endpoints: BTreeMap::new(),
        })?;
        let applied = async {
            self.setup_bridge(&cfg).await?;
            self.apply_firewall().await
        }
        .await;
        if let Err(e) = applied {
            self.nets().remove(&cfg.id);
            self.teardown_bridge(&cfg).await;
            // The firewall is regenerated from the state without this network.
            if let Err(e2) = self.apply_firewall().await {
                tracing::warn!(error = %e2, "firewall rollback failed");
            }
            if let Err(e2) = state::remove(self.inner.cfg.state_dirs(), &cfg.id) {
                tracing::warn!(error = %e2, "state rollback failed");
            }
            return Err(e);
        }
        Ok(cfg)
    }

    /// `docker network rm`: refused for predefined networks and while endpoints exist.
    pub async fn remove_network(&self, name_or_id: &str) -> Result<()> {
        let _op = self.inner.op.lock().await;
        let st = self
            .find(name_or_id)
            .ok_or_else(|| Error::NetworkNotFound(name_or_id.to_string()))?;
        if st.config.is_default_bridge || !st.config.is_bridge() {
            return Err(Error::Predefined(st.config.name));
        }
        if !st.endpoints.is_empty() {
            return Err(Error::ActiveEndpoints {
                name: st.config.name,
                id: st.config.id,
            });
        }
        let net_id = st.config.id.clone();
        self.wait_drains(|d| d.network_id == net_id).await;
        self.nets().remove(&st.config.id);
        self.apply_firewall().await?;
        self.teardown_bridge(&st.config).await;
        state::remove(self.inner.cfg.state_dirs(), &st.config.id)?;
        Ok(())
    }

    /// Kernel side of a bridge network: the bridge, its gateway address, forwarding
    /// sysctls and accept rules in foreign forward chains that drop by default.
    async fn setup_bridge(&self, cfg: &NetworkConfig) -> Result<()> {
        let sys = &self.inner.sys;
        let (Some(subnet), Some(gw)) = (cfg.subnet, cfg.gateway) else {
            return Err(Error::Invalid(format!(
                "network {} has no subnet",
                cfg.name
            )));
        };
        sys.ensure_bridge(&cfg.bridge_name, cfg.mtu()).await?;
        let addr = Ipv4Net::new(gw, subnet.prefix_len())
            .map_err(|_| Error::Invalid(format!("bad prefix for {subnet}")))?;
        sys.add_address(&cfg.bridge_name, IpNet::V4(addr)).await?;
        sys.write_sysctl("net/ipv4/ip_forward", "1").await?;
        if let Some((s6, gw6)) = v6_of(cfg) {
            let addr6 = Ipv6Net::new(gw6, s6.prefix_len())
                .map_err(|_| Error::Invalid(format!("bad prefix for {s6}")))?;
            sys.add_address(&cfg.bridge_name, IpNet::V6(addr6)).await?;
            // What dockerd does for IPv6 networks too; without it nothing is routed
            // between the bridge and the host's other interfaces.
            sys.write_sysctl("net/ipv6/conf/all/forwarding", "1")
                .await?;
        }
        // Published ports reached through 127.0.0.1 are DNATed into the bridge; the kernel
        // drops loopback-sourced packets on a non-loopback device unless this is set.
        sys.write_sysctl(
            &format!("net/ipv4/conf/{}/route_localnet", cfg.bridge_name),
            "1",
        )
        .await?;
        self.allow_in_foreign_chains(&cfg.bridge_name, v6_of(cfg).is_some())
            .await
    }

    async fn teardown_bridge(&self, cfg: &NetworkConfig) {
        if let Err(e) = self.remove_foreign_rules(&cfg.bridge_name).await {
            tracing::warn!(bridge = %cfg.bridge_name, error = %e, "removing foreign accept rules failed");
        }
        if let Err(e) = self.inner.sys.delete_link(&cfg.bridge_name).await {
            tracing::warn!(bridge = %cfg.bridge_name, error = %e, "deleting bridge failed");
        }
    }

    fn tag_prefix(&self) -> String {
        format!("berth:{}:", self.inner.cfg.nft_table)
    }

    /// Accept rules for `bridge` in other firewalls' forward chains that drop by default:
    /// nft chains of any family, legacy iptables' `FORWARD` and, for a network with IPv6,
    /// legacy ip6tables' `FORWARD` (whose DROP policy a dockerd with IPv6 leaves too).
    async fn allow_in_foreign_chains(&self, bridge: &str, ipv6: bool) -> Result<()> {
        let sys = &self.inner.sys;
        let tag = nft::foreign_tag(&self.inner.cfg.nft_table, bridge);
        let json = sys.nft_ruleset_json().await?;
        let (chains, rules) =
            nft::parse_foreign(&json, &self.inner.cfg.nft_table, &self.tag_prefix())
                .map_err(|e| Error::Invalid(format!("unparsable nft ruleset: {e}")))?;
        let mut script = String::new();
        for chain in &chains {
            if !rules.iter().any(|r| &r.chain == chain && r.comment == tag) {
                script.push_str(&nft::foreign_insert_script(chain, bridge, &tag));
            }
        }
        if !script.is_empty() {
            sys.nft_apply(&script).await?;
        }
        // Legacy x_tables FORWARD is invisible to nft; same rules through iptables.
        self.legacy_allow(false, bridge, &tag).await?;
        if ipv6 {
            self.legacy_allow(true, bridge, &tag).await?;
        }
        Ok(())
    }

    async fn legacy_allow(&self, ipv6: bool, bridge: &str, tag: &str) -> Result<()> {
        let sys = &self.inner.sys;
        let Some(rules) = sys
            .iptables_legacy(ipv6, &["-S".into(), "FORWARD".into()])
            .await?
        else {
            return Ok(());
        };
        if rules.lines().any(|l| l.trim() == "-P FORWARD DROP") && !rules.contains(tag) {
            for dir in ["-i", "-o"] {
                let args: Vec<String> = [
                    "-I",
                    "FORWARD",
                    dir,
                    bridge,
                    "-m",
                    "comment",
                    "--comment",
                    tag,
                    "-j",
                    "ACCEPT",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                sys.iptables_legacy(ipv6, &args).await?;
            }
        }
        Ok(())
    }

    async fn remove_foreign_rules(&self, bridge: &str) -> Result<()> {
        let sys = &self.inner.sys;
        let tag = nft::foreign_tag(&self.inner.cfg.nft_table, bridge);
        let json = sys.nft_ruleset_json().await?;
        let (_, rules) = nft::parse_foreign(&json, &self.inner.cfg.nft_table, &self.tag_prefix())
            .map_err(|e| Error::Invalid(format!("unparsable nft ruleset: {e}")))?;
        let ours: Vec<_> = rules.into_iter().filter(|r| r.comment == tag).collect();
        if !ours.is_empty() {
            sys.nft_apply(&nft::foreign_delete_script(&ours)).await?;
        }
        // Rules of ours in either family, whatever the network has now.
        for ipv6 in [false, true] {
            self.legacy_remove(ipv6, &tag).await?;
        }
        Ok(())
    }

    async fn legacy_remove(&self, ipv6: bool, tag: &str) -> Result<()> {
        let sys = &self.inner.sys;
        let Some(rules) = sys
            .iptables_legacy(ipv6, &["-S".into(), "FORWARD".into()])
            .await?
        else {
            return Ok(());
        };
        // `iptables -S` prints the comment quoted (`--comment "berth:..."`); our tags have
        // no spaces, so dropping the quotes gives back the argv that made it.
        let unquote = |w: &str| w.trim_matches('"').to_string();
        for line in rules
            .lines()
            .filter(|l| l.split_whitespace().any(|w| unquote(w) == tag))
        {
            let mut args: Vec<String> = line.split_whitespace().map(unquote).collect();
            if args.first().map(String::as_str) == Some("-A") {
                args[0] = "-D".into();
                sys.iptables_legacy(ipv6, &args).await?;
            }
        }
        Ok(())
    }

    /// The firewall model of the current state.
    pub fn firewall(&self) -> Firewall {
        let nets = self.nets();
        let mut fw = Firewall::default();
        for st in nets.values().filter(|s| s.config.is_bridge()) {
            let Some(subnet) = st.config.subnet else {
                continue;
            };
            fw.bridges.push(BridgeRules {
                bridge: st.config.bridge_name.clone(),
                subnet,
                subnet6: v6_of(&st.config).map(|(s6, _)| s6),
                internal: st.config.internal,
            });
            if st.config.internal {
                continue;
            }
            for ep in st.endpoints.values() {
                for b in &ep.port_bindings {
                    let host_ip = b.host_ip.filter(|ip| !ip.is_unspecified());
                    // An unspecified host address publishes on both families (like
                    // docker's 0.0.0.0 plus [::]); a specific one on its own family.
                    let dests = [Some(IpAddr::V4(ep.ip)), ep.ip6.map(IpAddr::V6)];
                    for dest_ip in dests.into_iter().flatten() {
                        if host_ip.is_some_and(|h| h.is_ipv4() != dest_ip.is_ipv4()) {
                            continue;
                        }
                        fw.publish.push(PublishRule {
                            proto: b.proto,
                            host_ip,
                            host_port: b.host_port,
                            dest_ip,
                            dest_port: b.container_port,
                        });
                    }
                }
            }
        }
        fw
    }

    /// Applies the table generated from the state unless it is what was applied last.
    async fn apply_firewall(&self) -> Result<()> {
        self.sync_firewall(false).await
    }

    /// Applies the table even when it looks unchanged (someone may have removed it).
    async fn reapply_firewall(&self) -> Result<()> {
        self.sync_firewall(true).await
    }

    async fn sync_firewall(&self, force: bool) -> Result<()> {
        let script = nft::ruleset_script(&self.inner.cfg.nft_table, &self.firewall());
        {
            let mut applied = self.inner.applied.lock().expect("firewall lock poisoned");
            if !force && applied.as_deref() == Some(script.as_str()) {
                return Ok(());
            }
            // Forgotten first: after a failure the kernel state is unknown.
            *applied = None;
        }
        self.inner.sys.nft_apply(&script).await?;
        *self.inner.applied.lock().expect("firewall lock poisoned") = Some(script);
        Ok(())
    }

    fn netns_path(&self, id: &str) -> Result<PathBuf> {
        if !valid_id(id) {
            return Err(Error::Invalid(format!("invalid namespace id {id:?}")));
        }
        Ok(self.inner.cfg.netns_dir.join(id))
    }

    /// Creates `<netns_dir>/<id>`, a bind-mounted network namespace with `lo` up.
    /// Idempotent: an existing namespace file is returned as is.
    pub async fn create_netns(&self, id: &str) -> Result<PathBuf> {
        let path = self.netns_path(id)?;
        if is_netns_file(&path) {
            return Ok(path);
        }
        self.inner.sys.create_netns(&path).await?;
        Ok(path)
    }

    /// Removes a namespace file; idempotent.
    pub async fn delete_netns(&self, id: &str) -> Result<()> {
        let path = self.netns_path(id)?;
        self.inner.dns.stop(&path);
        self.inner.sys.delete_netns(&path).await?;
        Ok(())
    }

    /// Attaches an endpoint to a network: veth into the bridge, address from IPAM, default
    /// route (first network of the namespace), published ports and DNS records.
    pub async fn connect(&self, req: EndpointRequest) -> Result<Endpoint> {
        let _op = self.inner.op.lock().await;
        let st = self
            .find(&req.network)
            .ok_or_else(|| Error::NetworkNotFound(req.network.clone()))?;
        if !st.config.is_bridge() {
            // host and none: the engine uses the host namespace or a bare one.
            return Ok(Endpoint {
                network_id: st.config.id.clone(),
                endpoint_id: req.endpoint_id,
                ifname: None,
                ip: None,
                prefix_len: 0,
                gateway: None,
                mac: None,
                ipv6: None,
                prefix_len6: 0,
                gateway6: None,
                host_ports: Vec::new(),
                default_route: false,
            });
        }
        if st.endpoints.contains_key(&req.endpoint_id) {
            return Err(Error::EndpointExists {
                endpoint: req.endpoint_id,
                network: st.config.name,
            });
        }
        let net_id = st.config.id.clone();
        // An address asked for by `--ip` that an exited container's veth still holds is
        // free once that veth is gone: wait for it rather than fail.
        if req.ipv4.is_some() || req.ipv6.is_some() {
            self.wait_drains(|d| {
                d.network_id == net_id
                    && (req.ipv4 == Some(d.ip) || (d.ip6.is_some() && req.ipv6 == d.ip6))
            })
            .await;
        }
        let (drain4, drain6): (Vec<Ipv4Addr>, Vec<Ipv6Addr>) = {
            let draining = self.draining();
            let mine = || draining.values().filter(|d| d.network_id == net_id);
            (
                mine().map(|d| d.ip).collect(),
                mine().filter_map(|d| d.ip6).collect(),
            )
        };
        let (same_ns, has_default) = {
            let nets = self.nets();
            let eps: Vec<&EndpointState> = nets
                .values()
                .flat_map(|s| s.endpoints.values())
                .filter(|e| e.netns == req.netns)
                .collect();
            (eps.len(), eps.iter().any(|e| e.default_route))
        };
        let ifname = req
            .ifname
            .clone()
            .unwrap_or_else(|| format!("eth{same_ns}"));
        let mut pool = st.ipam.clone().ok_or_else(|| {
            Error::Invalid(format!("network {} has no address pool", st.config.name))
        })?;
        let ip6 = match v6_of(&st.config) {
            Some((s6, gw6)) => {
                let used: Vec<(Ipv6Addr, String)> = st
                    .endpoints
                    .values()
                    .filter_map(|e| e.ip6.map(|ip| (ip, e.endpoint_id.clone())))
                    .chain(drain6.iter().map(|ip| (*ip, DRAINING.to_string())))
                    .collect();
                Some(ipam::allocate6(s6, gw6, &used, req.ipv6)?)
            }
            None if req.ipv6.is_some() => {
                return Err(Error::Invalid(format!(
                    "user specified IPv6 address needs a network with IPv6 enabled ({})",
                    st.config.name
                )))
            }
            None => None,
        };
        // Draining addresses are held for the allocation only, never persisted.
        let held: Vec<Ipv4Addr> = drain4
            .into_iter()
            .filter(|ip| !pool.allocated.contains_key(ip))
            .collect();
        for ip in &held {
            pool.allocated.insert(*ip, DRAINING.to_string());
        }
        let ip = pool.allocate(&req.endpoint_id, req.ipv4);
        for ip in &held {
            pool.allocated.remove(ip);
        }
        let ip = ip?;
        let default_route = !st.config.internal && !has_default;
        let ep = EndpointState {
            endpoint_id: req.endpoint_id.clone(),
            netns: req.netns.clone(),
            ifname: ifname.clone(),
            // The pooled pair's own name (`veth` and 7 hex digits as well) when the
            // namespace came with one: a rename costs an RCU grace period on the start path.
            host_veth: self
                .inner
                .sys
                .pooled_host_end(&req.netns)
                .unwrap_or_else(|| format!("veth{}", &random_hex(4)[..7])),
            ip,
            ip6,
            mac: req.mac.unwrap_or_else(|| mac_for_ip(ip)),
            aliases: req.aliases.clone(),
            dns_names: req.dns_names.clone(),
            port_bindings: Vec::new(),
            default_route,
            dns_servers: req.dns_servers.clone(),
        };
        // In memory now (a failed attach rolls it back through `detach`); on disk once the
        // veth exists, see the module docs for why that order is crash-safe.
        {
            let mut nets = self.nets();
            let entry = nets
                .get_mut(&net_id)
                .ok_or_else(|| Error::NetworkNotFound(req.network.clone()))?;
            entry.ipam = Some(pool);
            entry.endpoints.insert(ep.endpoint_id.clone(), ep.clone());
        }
        match self
            .attach(&st.config, ep.clone(), &req.port_bindings)
            .await
        {
            Ok(endpoint) => Ok(endpoint),
            Err(e) => {
                self.detach(&net_id, &ep.endpoint_id).await;
                Err(e)
            }
        }
    }

    async fn attach(
        &self,
        cfg: &NetworkConfig,
        mut ep: EndpointState,
        bindings: &[PortBinding],
    ) -> Result<Endpoint> {
        let sys = &self.inner.sys;
        let t0 = std::time::Instant::now();
        let subnet = cfg
            .subnet
            .ok_or_else(|| Error::Invalid(format!("network {} has no subnet", cfg.name)))?;
        sys.create_veth(&VethRequest {
            host_name: ep.host_veth.clone(),
            bridge: cfg.bridge_name.clone(),
            netns: ep.netns.clone(),
            peer_name: ep.ifname.clone(),
            mac: ep.mac,
            mtu: cfg.mtu(),
        })
        .await?;
        tracing::debug!(endpoint = %ep.endpoint_id, elapsed = ?t0.elapsed(), "attach: veth created");
        sys.configure_peer(
            &ep.netns,
            &PeerConfig {
                ifname: ep.ifname.clone(),
                address: Ipv4Net::new(ep.ip, subnet.prefix_len())
                    .map_err(|_| Error::Invalid(format!("bad prefix for {subnet}")))?,
                default_gateway: if ep.default_route { cfg.gateway } else { None },
                address6: match (ep.ip6, v6_of(cfg)) {
                    (Some(ip6), Some((s6, _))) => Some(
                        Ipv6Net::new(ip6, s6.prefix_len())
                            .map_err(|_| Error::Invalid(format!("bad prefix for {s6}")))?,
                    ),
                    _ => None,
                },
                default_gateway6: if ep.default_route && ep.ip6.is_some() {
                    cfg.gateway6
                } else {
                    None
                },
            },
        )
        .await?;
        tracing::debug!(endpoint = %ep.endpoint_id, elapsed = ?t0.elapsed(), "attach: peer configured");
        if !cfg.internal {
            let (resolved, held) = self.reserve_ports(bindings, ep.ip6)?;
            ep.port_bindings = resolved;
            self.ports()
                .insert((cfg.id.clone(), ep.endpoint_id.clone()), held);
        }
        {
            let mut nets = self.nets();
            let entry = nets
                .get_mut(&cfg.id)
                .ok_or_else(|| Error::NetworkNotFound(cfg.name.clone()))?;
            entry.endpoints.insert(ep.endpoint_id.clone(), ep.clone());
            state::save_runtime(self.inner.cfg.state_dirs(), entry)?;
        }
        self.apply_firewall().await?;
        tracing::debug!(endpoint = %ep.endpoint_id, elapsed = ?t0.elapsed(), "attach: state saved, firewall applied");
        if cfg.has_dns() {
            self.register_dns(cfg, &ep).await?;
        }
        let st = self
            .find(&cfg.id)
            .ok_or_else(|| Error::NetworkNotFound(cfg.name.clone()))?;
        Ok(endpoint_view(&st, &ep))
    }

    /// Binds a socket on each host port so nobody else takes it (random ports resolved).
    /// For an endpoint with an IPv6 address (`ip6`), a binding on every address also holds
    /// the IPv6 port, and IPv6 TCP reservations that can see `::1` become proxies to the
    /// container (see [`crate::proxy`]); on failure everything reserved so far is freed.
    fn reserve_ports(
        &self,
        bindings: &[PortBinding],
        ip6: Option<Ipv6Addr>,
    ) -> Result<(Vec<PortBinding>, Reserved)> {
        let mut resolved = Vec::new();
        // On an early return `held` drops here, closing what was reserved so far.
        let mut held = Reserved::default();
        let sys = &self.inner.sys;
        for b in bindings {
            let ip = b.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let r = sys.reserve_port(b.proto, ip, b.host_port)?;
            let port = r.port;
            resolved.push(PortBinding {
                host_port: port,
                ..b.clone()
            });
            let mut v6 = match ip {
                IpAddr::V6(_) => Some(r),
                IpAddr::V4(_) => {
                    held._sockets.push(r);
                    None
                }
            };
            if b.host_ip.is_none() && v6.is_none() && ip6.is_some() {
                let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
                v6 = Some(sys.reserve_port(b.proto, any6, port)?);
            }
            let Some(mut r6) = v6 else {
                continue;
            };
            let sees_loopback = matches!(ip, IpAddr::V4(_))
                || ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                || ip == IpAddr::V6(Ipv6Addr::LOCALHOST);
            match (ip6, b.proto, sees_loopback, r6.socket.take()) {
                (Some(container6), Protocol::Tcp, true, Some(socket)) => {
                    let target =
                        std::net::SocketAddr::new(IpAddr::V6(container6), b.container_port);
                    held._proxies.push(TcpProxy::spawn(socket, target)?);
                }
                (_, _, _, socket) => {
                    r6.socket = socket;
                    held._sockets.push(r6);
                }
            }
        }
        Ok((resolved, held))
    }

    async fn register_dns(&self, cfg: &NetworkConfig, ep: &EndpointState) -> Result<()> {
        let dns = &self.inner.dns;
        let mut names = ep.dns_names.clone();
        names.extend(ep.aliases.iter().cloned());
        dns.register(
            &cfg.id,
            &cfg.name,
            cfg.internal,
            &ep.endpoint_id,
            &ep.netns,
            &names,
            ep.ip,
            ep.ip6,
        );
        dns.set_upstreams(&ep.netns, ep.dns_servers.clone());
        if !dns.is_serving(&ep.netns) {
            let (udp, tcp) = self.inner.sys.bind_dns(&ep.netns).await?;
            dns.serve(&ep.netns, udp, tcp)?;
        }
        Ok(())
    }

    /// Detaches an endpoint; idempotent (a missing network or endpoint is success). Its
    /// interface is gone when this returns.
    pub async fn disconnect(&self, network: &str, endpoint_id: &str) -> Result<()> {
        let _op = self.inner.op.lock().await;
        let Some(st) = self.find(network) else {
            return Ok(());
        };
        self.detach(&st.config.id, endpoint_id).await;
        self.apply_firewall().await
    }

    /// [`disconnect`](Self::disconnect) for an endpoint whose container has exited: the
    /// same bookkeeping, but its veth is deleted in the background and its addresses stay
    /// reserved until that is done (see the module docs).
    pub async fn release(&self, network: &str, endpoint_id: &str) -> Result<()> {
        let _op = self.inner.op.lock().await;
        let Some(st) = self.find(network) else {
            return Ok(());
        };
        if let Some(ep) = self.forget_endpoint(&st.config.id, endpoint_id) {
            let (tx, rx) = tokio::sync::watch::channel(false);
            self.draining().insert(
                ep.host_veth.clone(),
                Drain {
                    network_id: st.config.id.clone(),
                    ip: ep.ip,
                    ip6: ep.ip6,
                    done: rx,
                },
            );
            let sys = self.inner.sys.clone();
            let draining = self.inner.draining.clone();
            tokio::spawn(async move {
                // Deleting the host end removes the peer in the namespace too.
                if let Err(e) = sys.delete_link(&ep.host_veth).await {
                    tracing::warn!(veth = %ep.host_veth, error = %e, "deleting veth failed");
                }
                draining
                    .lock()
                    .expect("draining lock poisoned")
                    .remove(&ep.host_veth);
                let _ = tx.send(true);
            });
        }
        self.apply_firewall().await
    }

    /// Undoes everything of one endpoint, best effort, and persists the state. The
    /// firewall is left to the caller (which regenerates it once).
    async fn detach(&self, net_id: &str, endpoint_id: &str) {
        let Some(ep) = self.forget_endpoint(net_id, endpoint_id) else {
            return;
        };
        // Deleting the host end removes the peer in the namespace too.
        if let Err(e) = self.inner.sys.delete_link(&ep.host_veth).await {
            tracing::warn!(veth = %ep.host_veth, error = %e, "deleting veth failed");
        }
    }

    /// The bookkeeping half of a detach: the endpoint leaves the state (persisted), IPAM,
    /// port reservations and DNS. Returns it when it existed; its veth is the caller's.
    fn forget_endpoint(&self, net_id: &str, endpoint_id: &str) -> Option<EndpointState> {
        let removed = {
            let mut nets = self.nets();
            let entry = nets.get_mut(net_id)?;
            let ep = entry.endpoints.remove(endpoint_id);
            if let Some(pool) = entry.ipam.as_mut() {
                pool.release_owner(endpoint_id);
            }
            if let Err(e) = state::save_runtime(self.inner.cfg.state_dirs(), entry) {
                tracing::warn!(network = net_id, error = %e, "saving network state failed");
            }
            ep
        };
        self.ports()
            .remove(&(net_id.to_string(), endpoint_id.to_string()));
        let ep = removed?;
        if !self.inner.dns.unregister(net_id, endpoint_id, &ep.netns) {
            self.inner.dns.stop(&ep.netns);
        }
        Some(ep)
    }

    /// After a crash or restart: removes endpoints not in `live` (with their veths, IPs,
    /// ports, DNS records and rules), namespace files whose id is not in `live`, and veths
    /// on our bridges that no endpoint owns; restores bridges, port reservations and DNS
    /// listeners of the live endpoints, then regenerates the firewall.
    pub async fn reconcile(&self, live: &HashSet<String>) -> Result<()> {
        let _op = self.inner.op.lock().await;
        self.wait_drains(|_| true).await;
        let dead: Vec<(String, String)> = self
            .nets()
            .values()
            .flat_map(|s| {
                s.endpoints
                    .keys()
                    .filter(|id| !live.contains(*id))
                    .map(|id| (s.config.id.clone(), id.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (net, ep) in &dead {
            self.detach(net, ep).await;
        }
        let snapshot: Vec<NetworkState> = self.nets().values().cloned().collect();
        for st in snapshot.iter().filter(|s| s.config.is_bridge()) {
            self.setup_bridge(&st.config).await?;
            let owned: HashSet<&str> = st
                .endpoints
                .values()
                .map(|e| e.host_veth.as_str())
                .collect();
            for port in self.inner.sys.bridge_ports(&st.config.bridge_name).await? {
                if !owned.contains(port.as_str()) {
                    self.inner.sys.delete_link(&port).await?;
                }
            }
            for ep in st.endpoints.values() {
                let key = (st.config.id.clone(), ep.endpoint_id.clone());
                if !st.config.internal && !self.ports().contains_key(&key) {
                    match self.reserve_ports(&ep.port_bindings, ep.ip6) {
                        Ok((_, held)) => {
                            self.ports().insert(key, held);
                        }
                        Err(e) => {
                            tracing::warn!(endpoint = %ep.endpoint_id, error = %e, "re-reserving ports failed")
                        }
                    }
                }
                if st.config.has_dns() && is_netns_file(&ep.netns) {
                    self.register_dns(&st.config, ep).await?;
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.inner.cfg.netns_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !live.contains(&name) {
                    let path = entry.path();
                    self.inner.dns.stop(&path);
                    self.inner.sys.delete_netns(&path).await?;
                }
            }
        }
        self.reapply_firewall().await
    }

    /// Removes everything this manager made in the kernel (bridges, veths, foreign rules,
    /// the nft table, DNS listeners) while keeping the persisted state; for daemon tests
    /// and `berthd --cleanup`.
    pub async fn shutdown_cleanup(&self) -> Result<()> {
        let _op = self.inner.op.lock().await;
        self.wait_drains(|_| true).await;
        let snapshot: Vec<NetworkState> = self.nets().values().cloned().collect();
        for st in snapshot.iter().filter(|s| s.config.is_bridge()) {
            for ep in st.endpoints.values() {
                self.inner.dns.stop(&ep.netns);
                self.inner.sys.delete_link(&ep.host_veth).await?;
            }
            self.teardown_bridge(&st.config).await;
        }
        self.ports().clear();
        self.inner.sys.release_pool().await;
        *self.inner.applied.lock().expect("firewall lock poisoned") = None;
        self.inner
            .sys
            .nft_apply(&nft::teardown_script(&self.inner.cfg.nft_table))
            .await?;
        Ok(())
    }
}

fn endpoint_view(st: &NetworkState, ep: &EndpointState) -> Endpoint {
    Endpoint {
        network_id: st.config.id.clone(),
        endpoint_id: ep.endpoint_id.clone(),
        ifname: Some(ep.ifname.clone()),
        ip: Some(ep.ip),
        prefix_len: st.config.subnet.map(|s| s.prefix_len()).unwrap_or(0),
        gateway: st.config.gateway,
        mac: Some(ep.mac),
        ipv6: ep.ip6,
        prefix_len6: match (ep.ip6, v6_of(&st.config)) {
            (Some(_), Some((s6, _))) => s6.prefix_len(),
            _ => 0,
        },
        gateway6: ep.ip6.and(st.config.gateway6),
        host_ports: ep.port_bindings.clone(),
        default_route: ep.default_route,
    }
}

/// The IPv6 subnet and gateway of a network that has IPv6 configured.
fn v6_of(cfg: &NetworkConfig) -> Option<(Ipv6Net, Ipv6Addr)> {
    match (cfg.enable_ipv6, cfg.subnet6, cfg.gateway6) {
        (true, Some(s6), Some(gw6)) => Some((s6, gw6)),
        _ => None,
    }
}

/// Whether `path` is a bind-mounted namespace (an nsfs inode), not a plain file.
fn is_netns_file(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::sys::FakeNetSys;

    fn setup() -> (
        tempfile::TempDir,
        ManagerConfig,
        Arc<FakeNetSys>,
        NetworkManager,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ManagerConfig::new(dir.path().join("data"), dir.path().join("exec"));
        cfg.dns_upstreams = Some(Vec::new());
        let sys = Arc::new(FakeNetSys::new());
        sys.set_host_routes(vec![
            "172.17.0.0/16".parse().unwrap(),
            "192.0.2.0/24".parse().unwrap(),
        ]);
        let mgr = NetworkManager::new(cfg.clone(), sys.clone()).unwrap();
        (dir, cfg, sys, mgr)
    }

    fn req(network: &str, id: &str) -> EndpointRequest {
        EndpointRequest {
            network: network.into(),
            endpoint_id: id.into(),
            netns: PathBuf::from(format!("/run/test/{id}")),
            dns_names: vec![id.into()],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn default_bridge_skips_host_routed_subnets() {
        let (_d, _c, sys, mgr) = setup();
        let def = mgr.ensure_default_bridge().await.unwrap();
        assert_eq!(def.subnet, Some("172.18.0.0/16".parse().unwrap()));
        assert_eq!(def.gateway, Some("172.18.0.1".parse().unwrap()));
        assert_eq!(def.bridge_name, "berth0");
        assert!(sys
            .calls()
            .contains(&"add_address berth0 172.18.0.1/16".to_string()));
        assert!(sys
            .calls()
            .contains(&"sysctl net/ipv4/ip_forward=1".to_string()));
        assert!(sys
            .calls()
            .contains(&"sysctl net/ipv4/conf/berth0/route_localnet=1".to_string()));
        // Idempotent; host and none exist too.
        assert_eq!(mgr.ensure_default_bridge().await.unwrap().id, def.id);
        let names: Vec<String> = mgr.list().into_iter().map(|n| n.name).collect();
        assert_eq!(names, vec!["bridge", "host", "none"]);
        assert!(mgr.remove_network("bridge").await.is_err());
        assert!(mgr.remove_network("host").await.is_err());
    }

    #[tokio::test]
    async fn aux_addresses_are_reserved_and_kept() {
        let (_d, _c, _sys, mgr) = setup();
        mgr.ensure_default_bridge().await.unwrap();
        let aux = BTreeMap::from([("a".to_string(), "10.7.0.2".parse().unwrap())]);
        let n = mgr
            .create_network(CreateNetwork {
                name: "aux".into(),
                subnet: Some("10.7.0.0/24".parse().unwrap()),
                aux_addresses: aux.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(n.aux_addresses, aux);
        let e = mgr.connect(req("aux", "c1")).await.unwrap();
        assert_eq!(e.ip, Some("10.7.0.3".parse().unwrap()));
        let outside = mgr
            .create_network(CreateNetwork {
                name: "bad".into(),
                subnet: Some("10.8.0.0/24".parse().unwrap()),
                aux_addresses: BTreeMap::from([("x".to_string(), "10.9.0.1".parse().unwrap())]),
                ..Default::default()
            })
            .await;
        assert!(outside.is_err());
    }

    #[tokio::test]
    async fn bip_sets_the_default_subnet() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ManagerConfig::new(dir.path().join("d"), dir.path().join("e"));
        cfg.bip = Some("10.99.0.1/24".into());
        cfg.dns_upstreams = Some(Vec::new());
        let mgr = NetworkManager::new(cfg, Arc::new(FakeNetSys::new())).unwrap();
        let def = mgr.ensure_default_bridge().await.unwrap();
        assert_eq!(def.subnet, Some("10.99.0.0/24".parse().unwrap()));
        assert_eq!(def.gateway, Some("10.99.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn create_validates_and_persists() {
        let (_d, cfg, sys, mgr) = setup();
        mgr.ensure_default_bridge().await.unwrap();
        let a = mgr
            .create_network(CreateNetwork {
                name: "a".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(a.subnet, Some("172.19.0.0/16".parse().unwrap()));
        assert_eq!(a.bridge_name, format!("br-{}", &a.id[..12]));
        let dup = mgr
            .create_network(CreateNetwork {
                name: "a".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(dup.kind(), ErrorKind::Conflict);
        let overlap = mgr
            .create_network(CreateNetwork {
                name: "b".into(),
                subnet: Some("172.19.3.0/24".parse().unwrap()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(overlap
            .to_string()
            .contains("Pool overlaps with other one on this address space"));
        let gw = mgr
            .create_network(CreateNetwork {
                name: "c".into(),
                subnet: Some("10.5.0.0/24".parse().unwrap()),
                gateway: Some("10.6.0.1".parse().unwrap()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(gw.kind(), ErrorKind::InvalidArgument);
        let named = mgr
            .create_network(CreateNetwork {
                name: "d".into(),
                subnet: Some("10.5.0.0/24".parse().unwrap()),
                options: [(OPT_BRIDGE_NAME.to_string(), "mybr".to_string())].into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(named.bridge_name, "mybr");
        assert!(sys.links().contains_key("mybr"));
        // A new manager sees the same networks.
        let again = NetworkManager::new(cfg, sys.clone()).unwrap();
        assert_eq!(again.get("d").unwrap(), named);
        assert_eq!(again.get(&a.id[..10]).unwrap().name, "a");
    }

    #[tokio::test]
    async fn connect_allocates_routes_publishes_and_disconnect_releases() {
        let (_d, _c, sys, mgr) = setup();
        mgr.ensure_default_bridge().await.unwrap();
        let net = mgr
            .create_network(CreateNetwork {
                name: "n".into(),
                subnet: Some("10.8.0.0/24".parse().unwrap()),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut r = req("n", "c1");
        r.port_bindings = vec![
            PortBinding {
                proto: Protocol::Tcp,
                host_ip: None,
                host_port: 0,
                container_port: 80,
            },
            PortBinding {
                proto: Protocol::Udp,
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 5353,
                container_port: 53,
            },
        ];
        let e1 = mgr.connect(r).await.unwrap();
        assert_eq!(e1.ip, Some("10.8.0.2".parse().unwrap()));
        assert_eq!(e1.mac, Some([0x02, 0x42, 10, 8, 0, 2]));
        assert_eq!(e1.ifname.as_deref(), Some("eth0"));
        assert!(e1.default_route);
        assert_ne!(e1.host_ports[0].host_port, 0);
        assert_eq!(e1.host_ports[1].host_port, 5353);
        let script = sys.nft_scripts().last().unwrap().clone();
        assert!(script.contains(&format!(
            "tcp dport {} dnat to 10.8.0.2:80",
            e1.host_ports[0].host_port
        )));
        assert!(script.contains("ip daddr 127.0.0.1 udp dport 5353 dnat to 10.8.0.2:53"));
        assert!(mgr.dns_server().is_serving(Path::new("/run/test/c1")));

        // The same namespace on a second network: eth1, no second default route.
        let mut second = req("bridge", "c1");
        second.netns = PathBuf::from("/run/test/c1");
        let e1b = mgr.connect(second).await.unwrap();
        assert_eq!(e1b.ifname.as_deref(), Some("eth1"));
        assert!(!e1b.default_route);
        assert!(sys
            .calls()
            .iter()
            .any(|c| c.starts_with("configure_peer /run/test/c1 eth1") && c.ends_with("None")));

        // --ip honoured and validated.
        let mut r2 = req("n", "c2");
        r2.ipv4 = Some("10.8.0.2".parse().unwrap());
        assert_eq!(
            mgr.connect(r2).await.unwrap_err().kind(),
            ErrorKind::Conflict
        );
        let mut r2 = req("n", "c2");
        r2.ipv4 = Some("10.8.0.50".parse().unwrap());
        assert_eq!(
            mgr.connect(r2).await.unwrap().ip,
            Some("10.8.0.50".parse().unwrap())
        );
        // The failed attempt left nothing behind.
        assert_eq!(mgr.endpoints("n").len(), 2);

        // A taken host port fails the connect and rolls it back.
        let mut r3 = req("n", "c3");
        r3.port_bindings = vec![PortBinding {
            proto: Protocol::Tcp,
            host_ip: None,
            host_port: 5353,
            container_port: 1,
        }];
        sys.take_port(Protocol::Tcp, 5353);
        let err = mgr.connect(r3).await.unwrap_err();
        assert!(
            err.to_string().contains("port is already allocated"),
            "{err}"
        );
        assert_eq!(mgr.endpoints("n").len(), 2);

        assert_eq!(
            mgr.remove_network("n").await.unwrap_err().kind(),
            ErrorKind::Forbidden
        );
        mgr.disconnect("n", "c1").await.unwrap();
        mgr.disconnect("n", "c1").await.unwrap();
        let script = sys.nft_scripts().last().unwrap().clone();
        assert!(!script.contains("dnat to 10.8.0.2"));
        // Still attached to `bridge` (no DNS there), so the listener goes.
        assert!(!mgr.dns_server().is_serving(Path::new("/run/test/c1")));
        mgr.disconnect("n", "c2").await.unwrap();
        mgr.remove_network(&net.id).await.unwrap();
        assert!(!sys.links().contains_key(&net.bridge_name));
        assert!(mgr.get("n").is_none());
    }

    #[tokio::test]
    async fn internal_networks_get_no_route_and_no_ports() {
        let (_d, _c, sys, mgr) = setup();
        mgr.create_network(CreateNetwork {
            name: "i".into(),
            internal: true,
            ..Default::default()
        })
        .await
        .unwrap();
        let mut r = req("i", "c");
        r.port_bindings = vec![PortBinding {
            proto: Protocol::Tcp,
            host_ip: None,
            host_port: 8080,
            container_port: 80,
        }];
        let e = mgr.connect(r).await.unwrap();
        assert!(!e.default_route);
        assert!(e.host_ports.is_empty());
        let script = sys.nft_scripts().last().unwrap().clone();
        assert!(!script.contains("dnat to"));
        assert!(script.contains("oifname != \"br-"), "{script}");
    }

    #[tokio::test]
    async fn accept_rules_go_into_foreign_drop_chains() {
        let (_d, cfg, sys, mgr) = setup();
        sys.set_ruleset_json(
            r#"{"nftables":[{"chain":{"family":"ip","table":"filter","name":"FORWARD","hook":"forward","policy":"drop"}}]}"#,
        );
        let def = mgr.ensure_default_bridge().await.unwrap();
        let tag = nft::foreign_tag(&cfg.nft_table, &def.bridge_name);
        let inserted = sys.nft_scripts().iter().any(|s| {
            s.contains("insert rule ip filter FORWARD iifname \"berth0\"") && s.contains(&tag)
        });
        assert!(inserted, "{:?}", sys.nft_scripts());
    }

    #[tokio::test]
    async fn ipv6_networks_address_bridge_and_endpoints() {
        let (_d, _c, sys, mgr) = setup();
        let net = mgr
            .create_network(CreateNetwork {
                name: "v6".into(),
                enable_ipv6: true,
                subnet6: Some("fd00:77::/64".parse().unwrap()),
                attachable: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(net.attachable);
        assert_eq!(net.gateway6, Some("fd00:77::1".parse().unwrap()));
        let calls = sys.calls();
        assert!(calls.contains(&format!("add_address {} fd00:77::1/64", net.bridge_name)));
        assert!(calls.contains(&"sysctl net/ipv6/conf/all/forwarding=1".to_string()));
        let overlap = mgr
            .create_network(CreateNetwork {
                name: "v6b".into(),
                enable_ipv6: true,
                subnet6: Some("fd00:77::/64".parse().unwrap()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(overlap.kind(), ErrorKind::Forbidden);
        let mut r = req("v6", "c1");
        r.port_bindings = vec![PortBinding {
            proto: Protocol::Tcp,
            host_ip: None,
            host_port: 8088,
            container_port: 80,
        }];
        r.dns_servers = vec!["192.0.2.53:53".parse().unwrap()];
        let e = mgr.connect(r).await.unwrap();
        // The IPv6 side of the port is held too.
        assert!(sys
            .calls()
            .contains(&"reserve_port tcp :::8088".to_string()));
        assert_eq!(e.ipv6, Some("fd00:77::2".parse().unwrap()));
        assert_eq!(e.prefix_len6, 64);
        assert_eq!(e.gateway6, Some("fd00:77::1".parse().unwrap()));
        assert!(sys
            .calls()
            .contains(&"configure_peer6 /run/test/c1 eth0 fd00:77::2/64 Some(fd00:77::1)".into()));
        let script = sys.nft_scripts().last().unwrap().clone();
        assert!(
            script.contains("tcp dport 8088 dnat to [fd00:77::2]:80"),
            "{script}"
        );
        assert_eq!(
            mgr.dns_server().resolve6(Path::new("/run/test/c1"), "c1"),
            vec!["fd00:77::2".parse::<Ipv6Addr>().unwrap()]
        );
        let mut r2 = req("v6", "c2");
        r2.ipv6 = Some("fd00:77::2".parse().unwrap());
        assert_eq!(
            mgr.connect(r2).await.unwrap_err().kind(),
            ErrorKind::Conflict
        );
        let mut r3 = req("bridge", "c3");
        r3.ipv6 = Some("fd00:77::9".parse().unwrap());
        mgr.ensure_default_bridge().await.unwrap();
        assert_eq!(
            mgr.connect(r3).await.unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        // A random ULA subnet when none is given.
        let auto = mgr
            .create_network(CreateNetwork {
                name: "v6auto".into(),
                enable_ipv6: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(auto.subnet6.unwrap().prefix_len(), 64);
        assert_eq!(auto.subnet6.unwrap().network().octets()[0], 0xfd);
    }

    #[tokio::test]
    async fn firewall_is_applied_only_when_it_changes() {
        let (_d, _c, sys, mgr) = setup();
        mgr.ensure_default_bridge().await.unwrap();
        let applied = || sys.nft_scripts().len();
        let before = applied();
        mgr.connect(req("bridge", "c1")).await.unwrap();
        mgr.release("bridge", "c1").await.unwrap();
        assert_eq!(applied(), before, "no ports, same table: no nft run");
        let mut r = req("bridge", "c2");
        r.port_bindings = vec![PortBinding {
            proto: Protocol::Tcp,
            host_ip: None,
            host_port: 8081,
            container_port: 80,
        }];
        mgr.connect(r).await.unwrap();
        assert_eq!(applied(), before + 1);
        assert!(sys.nft_scripts().last().unwrap().contains("dport 8081"));
        mgr.disconnect("bridge", "c2").await.unwrap();
        assert_eq!(applied(), before + 2);
        // Reconciliation applies even an unchanged table (it may have been removed).
        mgr.reconcile(&HashSet::new()).await.unwrap();
        assert_eq!(applied(), before + 3);
    }

    #[tokio::test]
    async fn released_addresses_stay_reserved_until_the_veth_is_gone() {
        let (_d, _c, sys, mgr) = setup();
        mgr.create_network(CreateNetwork {
            name: "d".into(),
            subnet: Some("10.9.0.0/29".parse().unwrap()),
            enable_ipv6: true,
            subnet6: Some("fd00:99::/64".parse().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
        let first = mgr.connect(req("d", "c1")).await.unwrap();
        let veth = mgr
            .inner
            .networks
            .lock()
            .unwrap()
            .values()
            .find(|s| s.config.name == "d")
            .unwrap()
            .endpoints["c1"]
            .host_veth
            .clone();
        let gate = sys.gate_delete_of(&veth);
        mgr.release("d", "c1").await.unwrap();
        // Gone from the network at once, its veth not yet.
        assert!(mgr.endpoints("d").is_empty());
        assert!(sys.links().contains_key(&veth));
        // Not handed out again meanwhile, in either family, even after a wrap-around.
        for id in ["c2", "c3", "c4", "c5", "c6"] {
            let e = mgr.connect(req("d", id)).await.unwrap();
            assert_ne!(e.ip, first.ip, "{id}");
            assert_ne!(e.ipv6, first.ipv6, "{id}");
            mgr.disconnect("d", id).await.unwrap();
        }
        // An explicit request for it waits for the deletion instead of failing.
        let mut again = req("d", "c7");
        again.ipv4 = first.ip;
        let waiting = tokio::spawn({
            let mgr = mgr.clone();
            async move { mgr.connect(again).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        gate.add_permits(1);
        let e = waiting.await.unwrap().unwrap();
        assert_eq!(e.ip, first.ip);
        assert!(!sys.links().contains_key(&veth));
        assert!(mgr.draining().is_empty());
    }

    #[tokio::test]
    async fn host_and_null_connects_are_no_ops() {
        let (_d, _c, sys, mgr) = setup();
        mgr.ensure_default_bridge().await.unwrap();
        let before = sys.calls().len();
        let e = mgr.connect(req("host", "h")).await.unwrap();
        assert_eq!(e.ip, None);
        let e = mgr.connect(req("none", "n")).await.unwrap();
        assert_eq!(e.ip, None);
        assert_eq!(sys.calls().len(), before);
    }
}
