//! The real [`NetSys`]: rtnetlink for links, addresses and routes, the `nft` binary for
//! nftables, `/proc/sys` for sysctls, helper threads for namespaces.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use ipnet::{IpNet, Ipv4Net};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage, State};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};
use rustix::net::{AddressFamily, SocketType};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::netns::NetnsPool;
use super::{netns, NetSys, PeerConfig, PortReservation, SysError, VethRequest};
use crate::types::Protocol;

/// The kernel's errno inside an rtnetlink error, if it carries one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

fn nl_err(op: impl Into<String>, e: rtnetlink::Error) -> SysError {
    SysError::Netlink {
        op: op.into(),
        detail: e.to_string(),
    }
}

/// Index of the link called `name`, `None` when there is none.
pub(crate) async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, SysError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl_err(format!("get link {name}"), e)),
    }
}

async fn require_index(handle: &Handle, name: &str) -> Result<u32, SysError> {
    link_index(handle, name)
        .await?
        .ok_or_else(|| SysError::LinkNotFound(name.to_string()))
}

/// A pooled peer waiting for `configure_peer`: the endpoint's MAC and MTU, and the peer's
/// index in its namespace.
struct PendingPeer {
    mac: [u8; 6],
    mtu: Option<u32>,
    index: u32,
}

/// Address, up, default routes for the peer `cfg.ifname`, through `handle` (a connection
/// inside its namespace); a pooled peer (`pooled`) gets the endpoint's
/// MAC (and name, when it is not [`netns::POOLED_PEER`]) first, while it is still down.
async fn configure_peer_with(
    handle: &Handle,
    cfg: &PeerConfig,
    pooled: Option<PendingPeer>,
) -> Result<(), SysError> {
    let index = match &pooled {
        Some(p) => p.index,
        None => require_index(handle, &cfg.ifname).await?,
    };
    if let Some(PendingPeer { mac, mtu, .. }) = pooled {
        let mut link = LinkUnspec::new_with_index(index).address(mac.to_vec());
        if cfg.ifname != netns::POOLED_PEER {
            link = link.name(cfg.ifname.clone());
        }
        if let Some(mtu) = mtu {
            link = link.mtu(mtu);
        }
        handle
            .link()
            .set(link.build())
            .execute()
            .await
            .map_err(|e| nl_err(format!("rename pooled peer to {}", cfg.ifname), e))?;
    }
    add_address_at(handle, index, &cfg.ifname, IpNet::V4(cfg.address)).await?;
    if let Some(a6) = cfg.address6 {
        add_address_at(handle, index, &cfg.ifname, IpNet::V6(a6)).await?;
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| nl_err(format!("set {} up", cfg.ifname), e))?;
    wait_link_ready(handle, &cfg.ifname).await;
    if let Some(gw) = cfg.default_gateway {
        let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build();
        add_route(handle, route, || format!("add default route via {gw}")).await?;
    }
    if let Some(gw) = cfg.default_gateway6 {
        let route = RouteMessageBuilder::<Ipv6Addr>::new().gateway(gw).build();
        add_route(handle, route, || format!("add ipv6 default route via {gw}")).await?;
    }
    Ok(())
}

/// Adds `route`; one that exists already is fine. `what` names it in the error.
async fn add_route(
    handle: &Handle,
    route: rtnetlink::packet_route::route::RouteMessage,
    what: impl FnOnce() -> String,
) -> Result<(), SysError> {
    match handle.route().add(route).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(nl_err(what(), e)),
    }
}

/// A host-side name for a pooled veth pair: `veth` and seven hex digits, like an
/// endpoint's, renamed to the endpoint's when one takes the pair.
pub(crate) fn pooled_host_name() -> String {
    use rand::Rng;
    format!("veth{:08x}", rand::rng().random::<u32>())[..11].to_string()
}

/// In the namespace `handle` talks to: a veth pair, both ends down, `peer` here and `host`
/// in the namespace of `home_fd` (see [`netns::Pooled`]). Returns `peer`'s index.
pub(crate) async fn create_pooled_pair(
    handle: &Handle,
    peer: &str,
    host: &str,
    home_fd: std::os::fd::RawFd,
) -> Result<u32, SysError> {
    let other = LinkUnspec::new_with_name(host).setns_by_fd(home_fd).build();
    let msg = LinkVeth::new(peer, host)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(other)))
        .build();
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| nl_err(format!("create pooled veth {host}"), e))?;
    require_index(handle, peer).await
}

pub(crate) async fn set_link_up(handle: &Handle, name: &str) -> Result<(), SysError> {
    let index = require_index(handle, name).await?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| nl_err(format!("set {name} up"), e))
}

/// Waits (briefly) until the kernel has activated `name`'s queueing discipline.
///
/// A veth's carrier comes on when its second end goes up, but the device keeps the `noop`
/// qdisc, which drops every packet, until the kernel's link-watch work runs. That work is
/// asynchronous and, on a loaded machine, can run after the container's first packet (a
/// `ping -c1` right at start lost its only echo request). Both ends' events are handled in
/// the same run, so the container side being ready means the pair is.
async fn wait_link_ready(handle: &Handle, name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let mut links = handle.link().get().match_name(name.to_string()).execute();
        let ready = match links.try_next().await {
            Ok(Some(msg)) => {
                msg.attributes
                    .iter()
                    .any(|a| matches!(a, LinkAttribute::OperState(State::Up)))
                    && !msg
                        .attributes
                        .iter()
                        .any(|a| matches!(a, LinkAttribute::Qdisc(q) if q == "noop"))
            }
            // Gone or unreadable: the caller's next step reports it.
            _ => true,
        };
        if ready || std::time::Instant::now() >= deadline {
            if !ready {
                tracing::debug!(link = name, "link not ready after 2 s; going on");
            }
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

async fn add_address_on(handle: &Handle, link: &str, address: IpNet) -> Result<(), SysError> {
    let index = require_index(handle, link).await?;
    add_address_at(handle, index, link, address).await
}

/// [`add_address_on`] for a link whose index is known (`link` names it in errors).
async fn add_address_at(
    handle: &Handle,
    index: u32,
    link: &str,
    address: IpNet,
) -> Result<(), SysError> {
    let mut req = handle
        .address()
        .add(index, address.addr(), address.prefix_len());
    if address.addr().is_ipv6() {
        // Duplicate address detection would keep the address "tentative" (unusable) for a
        // second or more; the addresses come from our own IPAM, so skip it as docker does.
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(nl_err(format!("add address {address} to {link}"), e)),
    }
}

fn link_name(msg: &LinkMessage) -> Option<String> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

/// Opens an rtnetlink connection and drives it on a new thread named `name`; the handle
/// works from any runtime.
///
/// The kernel handles a request inside the `sendmsg` that carries it, and deleting a veth
/// waits out RCU grace periods there (`rcu_barrier`, 5 to 25 ms here). Driven on the
/// daemon's runtime, that froze a worker thread for the duration, and with it the tasks
/// queued behind it on that worker (an exit waiting for its shim's answer, so a
/// `docker run --rm` waiting for its removal). Other requests take about a millisecond
/// (creating a veth waits for one expedited grace period) and stay on the runtime: a
/// thread for them cost more idle memory than it saved.
fn netlink_thread(name: &str) -> Result<Handle, SysError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    // A new thread starts in its creator's network namespace, so the socket (made there)
    // talks to the namespace the caller is in.
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                match rtnetlink::new_connection() {
                    Ok((conn, handle, _)) => {
                        let _ = tx.send(Ok(handle));
                        // Ends once every handle is dropped.
                        conn.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(netlink_open_err)?;
    rx.recv()
        .map_err(|_| netlink_open_err(std::io::Error::other("netlink thread ended")))?
        .map_err(netlink_open_err)
}

fn netlink_open_err(source: std::io::Error) -> SysError {
    SysError::Io {
        op: "open netlink socket",
        path: PathBuf::from("rtnetlink"),
        source,
    }
}

/// The real implementation, bound to the network namespace it was created in.
pub struct LinuxNetSys {
    handle: Handle,
    /// Link deletions only, driven on their own thread: each waits out RCU grace periods
    /// in the kernel.
    deleter: Handle,
    nft: PathBuf,
    pool: Arc<NetnsPool>,
    /// Namespaces taken from the pool with a veth pair whose host end no endpoint has yet.
    pooled: std::sync::Mutex<std::collections::HashMap<PathBuf, netns::PooledVeth>>,
    /// Namespaces whose pooled peer still has its pool name and MAC, waiting for
    /// `configure_peer` to give it the endpoint's (with the endpoint's MTU, if any).
    pending_peers: std::sync::Mutex<std::collections::HashMap<PathBuf, PendingPeer>>,
}

/// Namespaces kept ready: enough for a burst of starts while the filler catches up.
const NETNS_POOL_SIZE: usize = 2;

impl LinuxNetSys {
    /// Opens two netlink connections in the calling thread's namespace: one driven on the
    /// current tokio runtime (must be called inside one) for everything but link
    /// deletions, and one on a thread of its own for those (see [`netlink_thread`]), so a
    /// start never queues behind the teardown of the container before it.
    pub fn new() -> Result<Self, SysError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(netlink_open_err)?;
        tokio::spawn(conn);
        let deleter = netlink_thread("berth-nl-delete")?;
        let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("nft"));
        Ok(LinuxNetSys {
            handle,
            deleter,
            nft,
            pool: NetnsPool::with_veths(NETNS_POOL_SIZE),
            pooled: Default::default(),
            pending_peers: Default::default(),
        })
    }

    /// Gives the pooled pair whose host end has `index` to the endpoint of `req`: the host
    /// end renamed (it is still down), put on the bridge and up, hairpin on; the namespace
    /// end is renamed and readdressed by `configure_peer`. A veth's creation (two device
    /// registrations, about a millisecond of kernel work) is then off the start's path.
    async fn adopt_pooled_veth(
        &self,
        index: u32,
        veth: netns::PooledVeth,
        req: &VethRequest,
    ) -> Result<(), SysError> {
        let host_end = veth.host_end.as_str();
        let master = match nix::net::if_::if_nametoindex(req.bridge.as_str()) {
            Ok(i) => i,
            Err(_) => require_index(&self.handle, &req.bridge).await?,
        };
        // One message: the kernel renames (still down) if the endpoint has a name of its
        // own, enslaves, then sets it up.
        let mut link = LinkUnspec::new_with_index(index);
        if req.host_name != host_end {
            link = link.name(req.host_name.clone());
        }
        let mut link = link.controller(master).up();
        if let Some(mtu) = req.mtu {
            link = link.mtu(mtu);
        }
        self.handle
            .link()
            .set(link.build())
            .execute()
            .await
            .map_err(|e| {
                nl_err(
                    format!("attach pooled veth {host_end} as {}", req.host_name),
                    e,
                )
            })?;
        self.pending_peers
            .lock()
            .expect("pooled veth lock poisoned")
            .insert(
                req.netns.clone(),
                PendingPeer {
                    mac: req.mac,
                    mtu: req.mtu,
                    index: veth.peer_index,
                },
            );
        self.set_hairpin(index, &req.host_name).await
    }

    /// Hairpin lets a container reach itself through a published port (DNAT back out of
    /// the port it came in on).
    async fn set_hairpin(&self, index: u32, name: &str) -> Result<(), SysError> {
        self.handle
            .link()
            .set_port(LinkBridgePort::new(index).hairpin(true).build())
            .execute()
            .await
            .map_err(|e| nl_err(format!("set hairpin on {name}"), e))
    }

    async fn run(
        &self,
        program: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, SysError> {
        let name = program.display().to_string();
        let mut child = Command::new(program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SysError::Spawn {
                program: name.clone(),
                source,
            })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .await
                .map_err(|source| SysError::Spawn {
                    program: name.clone(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| SysError::Spawn {
                program: name.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(SysError::Command {
                program: name,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The legacy (x_tables) iptables or ip6tables binary, if one is installed.
    async fn legacy_iptables(&self, ipv6: bool) -> Option<PathBuf> {
        let program = if ipv6 { "ip6tables" } else { "iptables" };
        for dir in ["/usr/sbin", "/sbin"] {
            let candidate = PathBuf::from(format!("{dir}/{program}-legacy"));
            if candidate.exists() {
                return Some(candidate);
            }
        }
        for dir in ["/usr/sbin", "/sbin"] {
            let candidate = PathBuf::from(format!("{dir}/{program}"));
            let path = candidate.as_path();
            if path.exists() {
                if let Ok(v) = self.run(path, &["-V"], None).await {
                    if v.contains("legacy") {
                        return Some(path.to_path_buf());
                    }
                }
            }
        }
        None
    }
}

#[async_trait]
impl NetSys for LinuxNetSys {
    async fn ensure_bridge(&self, name: &str, mtu: Option<u32>) -> Result<(), SysError> {
        if link_index(&self.handle, name).await?.is_none() {
            let mut builder = LinkBridge::new(name);
            if let Some(mtu) = mtu {
                builder = builder.mtu(mtu);
            }
            match self.handle.link().add(builder.build()).execute().await {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => return Err(nl_err(format!("create bridge {name}"), e)),
            }
        }
        set_link_up(&self.handle, name).await
    }

    async fn add_address(&self, link: &str, address: IpNet) -> Result<(), SysError> {
        add_address_on(&self.handle, link, address).await
    }

    async fn link_exists(&self, name: &str) -> Result<bool, SysError> {
        Ok(link_index(&self.handle, name).await?.is_some())
    }

    async fn delete_link(&self, name: &str) -> Result<(), SysError> {
        let Some(index) = link_index(&self.deleter, name).await? else {
            return Ok(());
        };
        match self.deleter.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(nl_err(format!("delete link {name}"), e)),
        }
    }

    async fn bridge_ports(&self, bridge: &str) -> Result<Vec<String>, SysError> {
        let Some(master) = link_index(&self.handle, bridge).await? else {
            return Ok(Vec::new());
        };
        let links: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_err("list links", e))?;
        Ok(links
            .iter()
            .filter(|m| {
                m.attributes
                    .iter()
                    .any(|a| matches!(a, LinkAttribute::Controller(i) if *i == master))
            })
            .filter_map(link_name)
            .collect())
    }

    fn pooled_host_end(&self, netns: &Path) -> Option<String> {
        self.pooled
            .lock()
            .expect("pooled veth lock poisoned")
            .get(netns)
            .map(|v| v.host_end.clone())
    }

    async fn create_veth(&self, req: &VethRequest) -> Result<(), SysError> {
        let pooled = self
            .pooled
            .lock()
            .expect("pooled veth lock poisoned")
            .remove(&req.netns);
        if let Some(veth) = pooled {
            let host_end = veth.host_end.clone();
            let index = match nix::net::if_::if_nametoindex(host_end.as_str()) {
                Ok(i) => Some(i),
                Err(_) => link_index(&self.handle, &host_end).await?,
            };
            let adopted = match index {
                Some(i) => self.adopt_pooled_veth(i, veth, req).await,
                None => Err(SysError::LinkNotFound(host_end.clone())),
            };
            match adopted {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // A fresh pair works as well, once the pooled one (whose namespace end
                    // holds the name) is gone: deleting either end deletes both.
                    tracing::debug!(error = %e, "pooled veth {host_end} not usable");
                    self.pending_peers
                        .lock()
                        .expect("pooled veth lock poisoned")
                        .remove(&req.netns);
                    if let Some(i) = index {
                        match self.deleter.link().del(i).execute().await {
                            Ok(()) => {}
                            Err(e) if errno(&e) == Some(libc::ENODEV) => {}
                            Err(e) => {
                                return Err(nl_err(format!("delete pooled veth {host_end}"), e))
                            }
                        }
                    }
                }
            }
        }
        let ns = std::fs::File::open(&req.netns).map_err(|source| SysError::Io {
            op: "open netns",
            path: req.netns.clone(),
            source,
        })?;
        // An ioctl on a socket, not a netlink round trip through the connection task.
        let master = match nix::net::if_::if_nametoindex(req.bridge.as_str()) {
            Ok(i) => i,
            Err(_) => require_index(&self.handle, &req.bridge).await?,
        };
        // The peer is created straight inside the namespace under its final name.
        let mut peer = LinkUnspec::new_with_name(&req.peer_name)
            .setns_by_fd(ns.as_raw_fd())
            .address(req.mac.to_vec());
        let mut host = LinkVeth::new(&req.host_name, &req.peer_name)
            .controller(master)
            .up();
        if let Some(mtu) = req.mtu {
            peer = peer.mtu(mtu);
            host = host.mtu(mtu);
        }
        let msg = host
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| nl_err(format!("create veth {}", req.host_name), e))?;
        drop(ns);
        let index = require_index(&self.handle, &req.host_name).await?;
        self.set_hairpin(index, &req.host_name).await
    }

    async fn configure_peer(&self, netns: &Path, cfg: &PeerConfig) -> Result<(), SysError> {
        let cfg = cfg.clone();
        let pooled = self
            .pending_peers
            .lock()
            .expect("pooled veth lock poisoned")
            .remove(netns);
        netns::netlink_in(netns, move |handle| async move {
            configure_peer_with(&handle, &cfg, pooled).await
        })
        .await
    }

    async fn host_routes(&self) -> Result<Vec<Ipv4Net>, SysError> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let routes: Vec<_> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_err("list routes", e))?;
        let mut out = Vec::new();
        for r in routes {
            let len = r.header.destination_prefix_length;
            if len == 0 {
                continue;
            }
            for a in &r.attributes {
                if let RouteAttribute::Destination(RouteAddress::Inet(ip)) = a {
                    if !ip.is_loopback() {
                        if let Ok(net) = Ipv4Net::new(*ip, len) {
                            out.push(net.trunc());
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    async fn nft_apply(&self, script: &str) -> Result<(), SysError> {
        self.run(&self.nft, &["-f", "-"], Some(script))
            .await
            .map(|_| ())
    }

    async fn nft_ruleset_json(&self) -> Result<String, SysError> {
        self.run(&self.nft, &["-j", "list", "ruleset"], None).await
    }

    async fn iptables_legacy(
        &self,
        ipv6: bool,
        args: &[String],
    ) -> Result<Option<String>, SysError> {
        let Some(bin) = self.legacy_iptables(ipv6).await else {
            return Ok(None);
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&bin, &args, None).await.map(Some)
    }

    async fn write_sysctl(&self, key: &str, value: &str) -> Result<(), SysError> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        tokio::fs::write(&path, value)
            .await
            .map_err(|source| SysError::Io {
                op: "write sysctl",
                path,
                source,
            })
    }

    async fn create_netns(&self, path: &Path) -> Result<(), SysError> {
        if let Some(veth) = netns::create(path, Some(&self.pool)).await? {
            self.pooled
                .lock()
                .expect("pooled veth lock poisoned")
                .insert(path.to_path_buf(), veth);
        }
        Ok(())
    }

    async fn release_pool(&self) {
        let pool = self.pool.clone();
        let made = tokio::task::spawn_blocking(move || pool.close())
            .await
            .unwrap_or_default();
        for p in made {
            if let Some(v) = p.veth {
                if let Err(e) = self.delete_link(&v.host_end).await {
                    tracing::warn!(error = %e, "deleting pooled veth {}", v.host_end);
                }
            }
        }
        let taken: Vec<netns::PooledVeth> = self
            .pooled
            .lock()
            .expect("pooled veth lock poisoned")
            .drain()
            .map(|(_, v)| v)
            .collect();
        for v in taken {
            let _ = self.delete_link(&v.host_end).await;
        }
    }

    async fn delete_netns(&self, path: &Path) -> Result<(), SysError> {
        // An unused pooled pair goes with its namespace.
        self.pooled
            .lock()
            .expect("pooled veth lock poisoned")
            .remove(path);
        self.pending_peers
            .lock()
            .expect("pooled veth lock poisoned")
            .remove(path);
        netns::delete(path)
    }

    fn reserve_port(
        &self,
        proto: Protocol,
        ip: IpAddr,
        port: u16,
    ) -> Result<PortReservation, SysError> {
        let ty = match proto {
            Protocol::Tcp => SocketType::STREAM,
            Protocol::Udp => SocketType::DGRAM,
            Protocol::Sctp => SocketType::SEQPACKET,
        };
        let protocol = match proto {
            Protocol::Sctp => Some(rustix::net::ipproto::SCTP),
            _ => None,
        };
        let os = |op: String| {
            move |e: rustix::io::Errno| SysError::Os {
                op,
                source: nix::errno::Errno::from_raw(e.raw_os_error()),
            }
        };
        let family = if ip.is_ipv6() {
            AddressFamily::INET6
        } else {
            AddressFamily::INET
        };
        let fd = rustix::net::socket_with(family, ty, rustix::net::SocketFlags::CLOEXEC, protocol)
            .map_err(os(format!("socket for {proto} port {port}")))?;
        if ip.is_ipv6() {
            // `[::]` must not also take the IPv4 port: that one has its own reservation.
            rustix::net::sockopt::set_ipv6_v6only(&fd, true)
                .map_err(os(format!("set v6only for {ip}:{port}/{proto}")))?;
        }
        match rustix::net::bind(&fd, &SocketAddr::new(ip, port)) {
            Ok(()) => {}
            Err(rustix::io::Errno::ADDRINUSE) => return Err(SysError::PortAllocated { ip, port }),
            Err(e) => return Err(os(format!("bind {ip}:{port}/{proto}"))(e)),
        }
        let bound = rustix::net::getsockname(&fd)
            .map_err(os(format!("getsockname {ip}:{port}/{proto}")))?;
        let bound = SocketAddr::try_from(bound)
            .map_err(|e| os(format!("getsockname {ip}:{port}/{proto}"))(e))?;
        Ok(PortReservation {
            port: bound.port(),
            socket: Some(fd),
        })
    }

    async fn bind_dns(&self, netns: &Path) -> Result<(UdpSocket, TcpListener), SysError> {
        netns::run_in(netns, || {
            let addr = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 11), 53);
            let io = |source| SysError::Io {
                op: "bind dns socket",
                path: PathBuf::from(addr.to_string()),
                source,
            };
            let udp = UdpSocket::bind(addr).map_err(io)?;
            let tcp = TcpListener::bind(addr).map_err(io)?;
            udp.set_nonblocking(true).map_err(io)?;
            tcp.set_nonblocking(true).map_err(io)?;
            Ok((udp, tcp))
        })
        .await
    }
}
