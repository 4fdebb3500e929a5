//! The embedded DNS server that containers on user-defined networks reach at 127.0.0.11.
//!
//! Like docker, the listener lives inside each container's network namespace, but it is
//! served by the daemon: a helper thread enters the namespace, binds UDP and TCP sockets on
//! 127.0.0.11:53 and hands the file descriptors back; tokio tasks of the daemon then serve
//! them (a socket stays in the namespace it was created in, whichever thread uses it). So
//! no process and no NAT rule per container, and a namespace is served as long as one of
//! its endpoints is on a network with DNS.
//!
//! Answers: A records for the names (container name, short id, aliases, also
//! `<name>.<network>`) of endpoints on the networks the asking namespace is attached to,
//! and nothing from any other network; AAAA records for those of the endpoints that have
//! an IPv6 address; other types (and AAAA without one) are empty NOERROR answers.
//! Everything else is forwarded to the upstream resolvers: the namespace's own (a
//! container's `--dns` servers, as docker does) or else the daemon's (from
//! /etc/resolv.conf). The forwarding happens from the daemon's namespace, so even a
//! loopback resolver of the host (127.0.0.53) works; with no upstream, or on internal-only
//! namespaces, the answer is SERVFAIL.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

const TTL: u32 = 600;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("register dns sockets for {netns}: {source}")]
    Socket {
        netns: PathBuf,
        source: std::io::Error,
    },
    #[error("read resolver config {path}: {source}")]
    ResolvConf {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Parses the `nameserver` lines of a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some("nameserver"), Some(ip)) => ip.parse().ok().map(|ip| SocketAddr::new(ip, 53)),
                _ => None,
            }
        })
        .collect()
}

/// Reads upstream resolvers from a resolv.conf file.
pub fn read_resolv_conf(path: &Path) -> Result<Vec<SocketAddr>, DnsError> {
    let text = std::fs::read_to_string(path).map_err(|source| DnsError::ResolvConf {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_resolv_conf(&text))
}

#[derive(Debug, Clone)]
struct EndpointRecord {
    names: Vec<String>,
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
}

#[derive(Debug, Default)]
struct NetworkRecords {
    name: String,
    internal: bool,
    endpoints: BTreeMap<String, EndpointRecord>,
}

#[derive(Debug, Default)]
struct Table {
    networks: HashMap<String, NetworkRecords>,
    /// netns → network ids it is attached to (with DNS).
    attached: HashMap<PathBuf, BTreeSet<String>>,
    /// netns → its endpoint links (alias → linked container's name): names only that
    /// namespace resolves, as Docker's links on user-defined networks.
    links: HashMap<PathBuf, HashMap<String, String>>,
}

struct Inner {
    table: RwLock<Table>,
    upstreams: Vec<SocketAddr>,
    /// netns → its own upstreams (`--dns`), replacing `upstreams` for that namespace.
    netns_upstreams: Mutex<HashMap<PathBuf, Vec<SocketAddr>>>,
    listeners: Mutex<HashMap<PathBuf, Vec<JoinHandle<()>>>>,
}

/// The embedded DNS server; cheap to clone.
#[derive(Clone)]
pub struct DnsServer {
    inner: Arc<Inner>,
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        DnsServer {
            inner: Arc::new(Inner {
                table: RwLock::default(),
                upstreams,
                netns_upstreams: Mutex::default(),
                listeners: Mutex::default(),
            }),
        }
    }

    fn table_read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.inner.table.read().expect("dns table lock poisoned")
    }

    fn table_write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.inner.table.write().expect("dns table lock poisoned")
    }

    /// Publishes `names` → `ip` on a network and attaches `netns` to it.
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &self,
        network_id: &str,
        network_name: &str,
        internal: bool,
        endpoint_id: &str,
        netns: &Path,
        names: &[String],
        ip: Ipv4Addr,
        ip6: Option<Ipv6Addr>,
    ) {
        let mut t = self.table_write();
        let net = t.networks.entry(network_id.to_string()).or_default();
        net.name = normalize(network_name);
        net.internal = internal;
        net.endpoints.insert(
            endpoint_id.to_string(),
            EndpointRecord {
                names: names
                    .iter()
                    .map(|n| normalize(n))
                    .filter(|n| !n.is_empty())
                    .collect(),
                ip,
                ip6,
            },
        );
        t.attached
            .entry(netns.to_path_buf())
            .or_default()
            .insert(network_id.to_string());
    }

    /// Removes an endpoint's records and detaches its namespace from the network. Returns
    /// whether the namespace is still attached to any DNS network.
    pub fn unregister(&self, network_id: &str, endpoint_id: &str, netns: &Path) -> bool {
        let mut t = self.table_write();
        if let Some(net) = t.networks.get_mut(network_id) {
            net.endpoints.remove(endpoint_id);
            if net.endpoints.is_empty() {
                t.networks.remove(network_id);
            }
        }
        let still = match t.attached.get_mut(netns) {
            Some(set) => {
                set.remove(network_id);
                !set.is_empty()
            }
            None => false,
        };
        if !still {
            t.attached.remove(netns);
        }
        still
    }

    /// Sets the upstream resolvers of one namespace (empty: the daemon's).
    pub fn set_upstreams(&self, netns: &Path, upstreams: Vec<SocketAddr>) {
        let mut map = self
            .inner
            .netns_upstreams
            .lock()
            .expect("dns upstreams lock poisoned");
        if upstreams.is_empty() {
            map.remove(netns);
        } else {
            map.insert(netns.to_path_buf(), upstreams);
        }
    }

    fn upstreams_for(&self, netns: &Path) -> Vec<SocketAddr> {
        self.inner
            .netns_upstreams
            .lock()
            .expect("dns upstreams lock poisoned")
            .get(netns)
            .cloned()
            .unwrap_or_else(|| self.inner.upstreams.clone())
    }

    /// The IPv4 addresses `name` resolves to for a container in `netns`.
    pub fn resolve(&self, netns: &Path, name: &str) -> Vec<Ipv4Addr> {
        self.lookup(netns, name).into_iter().map(|r| r.ip).collect()
    }

    /// The IPv6 addresses `name` resolves to for a container in `netns`.
    pub fn resolve6(&self, netns: &Path, name: &str) -> Vec<Ipv6Addr> {
        let mut out = Vec::new();
        for ip6 in self.lookup(netns, name).into_iter().filter_map(|r| r.ip6) {
            if !out.contains(&ip6) {
                out.push(ip6);
            }
        }
        out
    }

    /// The records `name` names for a container in `netns`, one per distinct IPv4 address.
    fn lookup(&self, netns: &Path, name: &str) -> Vec<EndpointRecord> {
        let name = normalize(name);
        let t = self.table_read();
        let Some(nets) = t.attached.get(netns) else {
            return Vec::new();
        };
        // A link alias of this namespace stands for the linked container's name.
        let name = t
            .links
            .get(netns)
            .and_then(|l| l.get(&name))
            .cloned()
            .unwrap_or(name);
        let mut out: Vec<EndpointRecord> = Vec::new();
        for id in nets {
            let Some(net) = t.networks.get(id) else {
                continue;
            };
            // `web.mynet` is `web` on network `mynet`.
            let local = name
                .strip_suffix(&net.name)
                .and_then(|n| n.strip_suffix('.'))
                .unwrap_or(&name);
            for ep in net.endpoints.values() {
                if ep.names.iter().any(|n| n == &name || n == local)
                    && !out.iter().any(|r| r.ip == ep.ip)
                {
                    out.push(ep.clone());
                }
            }
        }
        out
    }

    fn may_forward(&self, netns: &Path) -> bool {
        let t = self.table_read();
        t.attached.get(netns).is_some_and(|nets| {
            nets.iter()
                .any(|id| t.networks.get(id).is_some_and(|n| !n.internal))
        })
    }

    /// Builds the answer to one query from `netns`, forwarding when the name is not ours.
    /// `None` when the query cannot be parsed (dropped, as resolvers do).
    pub async fn answer(&self, netns: &Path, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let msg = Message::from_vec(query).ok()?;
        if msg.metadata.message_type != MessageType::Query {
            return None;
        }
        let id = msg.metadata.id;
        let Some(q) = msg.queries.first().cloned() else {
            return Message::error_msg(id, msg.metadata.op_code, ResponseCode::FormErr)
                .to_vec()
                .ok();
        };
        if msg.metadata.op_code == OpCode::Query {
            let name = q.name().to_ascii();
            let found = self.lookup(netns, &name);
            if !found.is_empty() {
                let mut resp = Message::response(id, OpCode::Query);
                resp.metadata.recursion_desired = msg.metadata.recursion_desired;
                resp.metadata.recursion_available = true;
                resp.metadata.authoritative = true;
                resp.add_query(q.clone());
                for r in &found {
                    let data = match q.query_type() {
                        RecordType::A => Some(RData::A(A(r.ip))),
                        RecordType::AAAA => r.ip6.map(|ip6| RData::AAAA(AAAA(ip6))),
                        _ => None,
                    };
                    if let Some(data) = data {
                        resp.add_answer(Record::from_rdata(q.name().clone(), TTL, data));
                    }
                }
                return resp.to_vec().ok();
            }
        }
        if self.may_forward(netns) {
            for upstream in &self.upstreams_for(netns) {
                let reply = if tcp {
                    forward_tcp(*upstream, query).await
                } else {
                    forward_udp(*upstream, query).await
                };
                if let Some(reply) = reply {
                    return Some(reply);
                }
            }
        }
        let mut fail = Message::error_msg(id, msg.metadata.op_code, ResponseCode::ServFail);
        fail.metadata.recursion_desired = msg.metadata.recursion_desired;
        fail.add_query(q);
        fail.to_vec().ok()
    }

    /// Starts serving the sockets bound inside `netns` (replacing earlier ones).
    pub fn serve(
        &self,
        netns: &Path,
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
    ) -> Result<(), DnsError> {
        let err = |source| DnsError::Socket {
            netns: netns.to_path_buf(),
            source,
        };
        let udp = Arc::new(UdpSocket::from_std(udp).map_err(err)?);
        let tcp = TcpListener::from_std(tcp).map_err(err)?;
        let key = netns.to_path_buf();
        let udp_task = {
            let server = self.clone();
            let key = key.clone();
            tokio::spawn(async move { server.serve_udp(key, udp).await })
        };
        let tcp_task = {
            let server = self.clone();
            tokio::spawn(async move { server.serve_tcp(key, tcp).await })
        };
        let old = self
            .inner
            .listeners
            .lock()
            .expect("dns listeners lock poisoned")
            .insert(netns.to_path_buf(), vec![udp_task, tcp_task]);
        for task in old.into_iter().flatten() {
            task.abort();
        }
        Ok(())
    }

    /// Whether `netns` has a listener.
    pub fn is_serving(&self, netns: &Path) -> bool {
        self.inner
            .listeners
            .lock()
            .expect("dns listeners lock poisoned")
            .contains_key(netns)
    }

    /// Stops every listener (the manager is going away).
    pub fn stop_all(&self) {
        let all: Vec<_> = self
            .inner
            .listeners
            .lock()
            .expect("dns listeners lock poisoned")
            .drain()
            .collect();
        for (_, tasks) in all {
            for task in tasks {
                task.abort();
            }
        }
    }

    /// Adds link aliases `netns` resolves: `(alias, target name)`; they last until
    /// [`DnsServer::stop`] for that namespace.
    pub fn add_links(&self, netns: &Path, links: &[(String, String)]) {
        if links.is_empty() {
            return;
        }
        let mut t = self.table_write();
        let map = t.links.entry(netns.to_path_buf()).or_default();
        for (alias, target) in links {
            map.insert(normalize(alias), normalize(target));
        }
    }

    /// Stops serving `netns` (closing its sockets) and forgets its upstreams and links.
    pub fn stop(&self, netns: &Path) {
        self.table_write().links.remove(netns);
        self.set_upstreams(netns, Vec::new());
        let tasks = self
            .inner
            .listeners
            .lock()
            .expect("dns listeners lock poisoned")
            .remove(netns);
        for task in tasks.into_iter().flatten() {
            task.abort();
        }
    }

    async fn serve_udp(self, netns: PathBuf, sock: Arc<UdpSocket>) {
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, peer) = match sock.recv_from(&mut buf).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(netns = %netns.display(), error = %e, "dns udp receive failed");
                    return;
                }
            };
            let query = buf[..n].to_vec();
            let server = self.clone();
            let sock = sock.clone();
            let netns = netns.clone();
            tokio::spawn(async move {
                if let Some(reply) = server.answer(&netns, &query, false).await {
                    // A lost reply is retried by the client's resolver.
                    let _ = sock.send_to(&reply, peer).await;
                }
            });
        }
    }

    async fn serve_tcp(self, netns: PathBuf, listener: TcpListener) {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(netns = %netns.display(), error = %e, "dns tcp accept failed");
                    return;
                }
            };
            let server = self.clone();
            let netns = netns.clone();
            tokio::spawn(async move { server.serve_tcp_conn(&netns, stream).await });
        }
    }

    async fn serve_tcp_conn(&self, netns: &Path, mut stream: TcpStream) {
        while let Some(query) = read_framed(&mut stream).await {
            let Some(reply) = self.answer(netns, &query, true).await else {
                return;
            };
            if write_framed(&mut stream, &reply).await.is_none() {
                return;
            }
        }
    }
}

async fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let len = tokio::time::timeout(UPSTREAM_TIMEOUT * 4, stream.read_u16())
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; usize::from(len)];
    tokio::time::timeout(UPSTREAM_TIMEOUT, stream.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(buf)
}

async fn write_framed(stream: &mut TcpStream, msg: &[u8]) -> Option<()> {
    let len = u16::try_from(msg.len()).ok()?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    stream.write_all(&out).await.ok()
}

async fn forward_udp(upstream: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal address")
    } else {
        "[::]:0".parse().expect("literal address")
    };
    let sock = UdpSocket::bind(bind).await.ok()?;
    sock.connect(upstream).await.ok()?;
    sock.send(query).await.ok()?;
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

async fn forward_tcp(upstream: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let mut stream = tokio::time::timeout(UPSTREAM_TIMEOUT, TcpStream::connect(upstream))
        .await
        .ok()?
        .ok()?;
    write_framed(&mut stream, query).await?;
    read_framed(&mut stream).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn query(name: &str, ty: RecordType) -> Vec<u8> {
        let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_str(name).unwrap(), ty));
        m.to_vec().unwrap()
    }

    fn a_records(reply: &[u8]) -> (ResponseCode, Vec<Ipv4Addr>) {
        let m = Message::from_vec(reply).unwrap();
        let ips = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        (m.metadata.response_code, ips)
    }

    fn server() -> DnsServer {
        let s = DnsServer::new(Vec::new());
        let ns1 = Path::new("/run/ns1");
        let ns2 = Path::new("/run/ns2");
        let ns3 = Path::new("/run/ns3");
        s.register(
            "n1",
            "front",
            false,
            "e1",
            ns1,
            &["web".into(), "abc123".into()],
            Ipv4Addr::new(10, 0, 0, 2),
            Some("fd00:1::2".parse().unwrap()),
        );
        s.register(
            "n1",
            "front",
            false,
            "e2",
            ns2,
            &["Db".into(), "alias1".into()],
            Ipv4Addr::new(10, 0, 0, 3),
            None,
        );
        s.register(
            "n2",
            "back",
            false,
            "e3",
            ns3,
            &["secret".into()],
            Ipv4Addr::new(10, 1, 0, 2),
            None,
        );
        s
    }

    #[test]
    fn resolves_only_names_on_shared_networks() {
        let s = server();
        let ns1 = Path::new("/run/ns1");
        assert_eq!(s.resolve(ns1, "db"), vec![Ipv4Addr::new(10, 0, 0, 3)]);
        assert_eq!(s.resolve(ns1, "ALIAS1."), vec![Ipv4Addr::new(10, 0, 0, 3)]);
        assert_eq!(s.resolve(ns1, "db.front"), vec![Ipv4Addr::new(10, 0, 0, 3)]);
        assert_eq!(s.resolve(ns1, "abc123"), vec![Ipv4Addr::new(10, 0, 0, 2)]);
        assert!(s.resolve(ns1, "secret").is_empty());
        assert!(s.resolve(Path::new("/run/other"), "web").is_empty());
    }

    #[test]
    fn link_aliases_resolve_only_in_their_namespace() {
        let s = server();
        let ns1 = Path::new("/run/ns1");
        s.add_links(ns1, &[("Bar".into(), "db".into())]);
        assert_eq!(s.resolve(ns1, "bar"), vec![Ipv4Addr::new(10, 0, 0, 3)]);
        assert!(s.resolve(Path::new("/run/ns2"), "bar").is_empty());
        s.stop(ns1);
        assert!(s.resolve(ns1, "bar").is_empty());
    }

    #[test]
    fn unregister_detaches() {
        let s = server();
        let ns2 = Path::new("/run/ns2");
        assert!(!s.unregister("n1", "e2", ns2));
        assert!(s.resolve(Path::new("/run/ns1"), "db").is_empty());
        assert!(s.resolve(ns2, "web").is_empty());
    }

    #[tokio::test]
    async fn answers_a_and_empty_aaaa() {
        let s = server();
        let ns1 = Path::new("/run/ns1");
        let reply = s
            .answer(ns1, &query("db.", RecordType::A), false)
            .await
            .unwrap();
        assert_eq!(
            a_records(&reply),
            (ResponseCode::NoError, vec![Ipv4Addr::new(10, 0, 0, 3)])
        );
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(m.metadata.id, 4242);
        let reply = s
            .answer(ns1, &query("db.", RecordType::AAAA), false)
            .await
            .unwrap();
        assert_eq!(a_records(&reply), (ResponseCode::NoError, vec![]));
        // web has an IPv6 address: AAAA answers it, A still answers the IPv4 one.
        let reply = s
            .answer(ns1, &query("web.", RecordType::AAAA), false)
            .await
            .unwrap();
        let m = Message::from_vec(&reply).unwrap();
        let v6: Vec<Ipv6Addr> = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect();
        assert_eq!(v6, vec!["fd00:1::2".parse::<Ipv6Addr>().unwrap()]);
        assert_eq!(s.resolve6(ns1, "web"), v6);
    }

    #[tokio::test]
    async fn unknown_names_without_upstream_fail() {
        let s = server();
        let reply = s
            .answer(
                Path::new("/run/ns1"),
                &query("example.org.", RecordType::A),
                false,
            )
            .await
            .unwrap();
        assert_eq!(a_records(&reply).0, ResponseCode::ServFail);
        assert!(s
            .answer(Path::new("/run/ns1"), b"garbage", false)
            .await
            .is_none());
    }

    #[tokio::test]
    async fn forwards_unknown_names_upstream() {
        // A fake upstream on loopback that answers every query with 192.0.2.7.
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            let (n, peer) = upstream.recv_from(&mut buf).await.unwrap();
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::response(q.metadata.id, OpCode::Query);
            let question = q.queries[0].clone();
            r.add_answer(Record::from_rdata(
                question.name().clone(),
                5,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
            ));
            r.add_query(question);
            upstream.send_to(&r.to_vec().unwrap(), peer).await.unwrap();
        });
        // The daemon has no upstream; the namespace's own (`--dns`) is used.
        let s = DnsServer::new(Vec::new());
        let ns = Path::new("/run/nsx");
        s.set_upstreams(ns, vec![addr]);
        s.register(
            "n",
            "net",
            false,
            "e",
            ns,
            &["me".into()],
            Ipv4Addr::new(10, 0, 0, 2),
            Some("fd00:1::2".parse().unwrap()),
        );
        let reply = s
            .answer(ns, &query("example.org.", RecordType::A), false)
            .await
            .unwrap();
        assert_eq!(
            a_records(&reply),
            (ResponseCode::NoError, vec![Ipv4Addr::new(192, 0, 2, 7)])
        );
        // Internal-only namespaces never forward.
        let s = DnsServer::new(vec![addr]);
        s.register(
            "n",
            "net",
            true,
            "e",
            ns,
            &["me".into()],
            Ipv4Addr::new(10, 0, 0, 2),
            Some("fd00:1::2".parse().unwrap()),
        );
        let reply = s
            .answer(ns, &query("example.org.", RecordType::A), false)
            .await
            .unwrap();
        assert_eq!(a_records(&reply).0, ResponseCode::ServFail);
    }

    #[test]
    fn parses_resolv_conf() {
        let text = "# x\nsearch example\nnameserver 10.0.0.53\nnameserver ::1\noptions ndots:0\nnameserver bogus\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec!["10.0.0.53:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }
}
