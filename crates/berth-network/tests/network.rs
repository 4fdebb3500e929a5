//! Root integration tests against the real kernel: bridges, veths, namespaces, nftables,
//! published ports and the embedded DNS. Each test lives in its own sandbox namespace.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::time::Duration;

use berth_network::sys::netns;
use berth_network::{CreateNetwork, EndpointRequest, NetworkManager, PortBinding, Protocol};
use common::*;

async fn attach(
    mgr: &NetworkManager,
    network: &str,
    id: &str,
    names: &[&str],
    ports: Vec<PortBinding>,
) -> (std::path::PathBuf, Ipv4Addr, Vec<PortBinding>) {
    let ns = mgr.create_netns(id).await.expect("create netns");
    let ep = mgr
        .connect(EndpointRequest {
            network: network.into(),
            endpoint_id: id.into(),
            netns: ns.clone(),
            dns_names: names.iter().map(|s| s.to_string()).collect(),
            port_bindings: ports,
            ..Default::default()
        })
        .await
        .expect("connect");
    (ns, ep.ip.expect("bridge endpoint has an ip"), ep.host_ports)
}

/// A TCP server inside `ns` on port 80 that answers each connection with `reply`.
async fn serve_in(ns: &Path, reply: &'static str) {
    let listener = netns::run_in(ns, || {
        std::net::TcpListener::bind("0.0.0.0:80").map_err(|source| {
            berth_network::sys::SysError::Io {
                op: "bind test server",
                path: "0.0.0.0:80".into(),
                source,
            }
        })
    })
    .await
    .expect("listener in netns");
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(reply.as_bytes());
        }
    });
}

fn fetch(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

async fn nslookup(ns: &Path, name: &str) -> String {
    let (ns, name) = (ns.to_path_buf(), name.to_string());
    tokio::task::spawn_blocking(move || nslookup_blocking(&ns, &name))
        .await
        .expect("nslookup thread")
}

fn nslookup_blocking(ns: &Path, name: &str) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["busybox", "nslookup", name, "127.0.0.11"])
        .output()
        .expect("nslookup");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bridge_ping_isolation_dns_ports_and_cleanup() {
    if !require_root() {
        return;
    }
    sandbox(|| async {
        let env = Env::new();
        let mgr = env.manager();
        let def = mgr.ensure_default_bridge().await.expect("default bridge");
        assert!(def.is_default_bridge);
        assert_eq!(sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");

        let front = mgr
            .create_network(CreateNetwork {
                name: "front".into(),
                ..Default::default()
            })
            .await
            .expect("create front");
        let back = mgr
            .create_network(CreateNetwork {
                name: "back".into(),
                subnet: Some("10.123.0.0/24".parse().unwrap()),
                ..Default::default()
            })
            .await
            .expect("create back");
        assert_ne!(front.subnet, def.subnet);
        // Overlap with an existing network is refused.
        let err = mgr
            .create_network(CreateNetwork {
                name: "dup".into(),
                subnet: Some("10.123.0.128/25".parse().unwrap()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Pool overlaps"), "{err}");

        let (ns_a, ip_a, ports) = attach(
            &mgr,
            "front",
            "ctra",
            &["web", "ctra"],
            vec![PortBinding {
                proto: Protocol::Tcp,
                host_ip: None,
                host_port: 0,
                container_port: 80,
            }],
        )
        .await;
        let (ns_b, ip_b, _) = attach(&mgr, "front", "ctrb", &["db"], vec![]).await;
        let (ns_c, ip_c, _) = attach(&mgr, "back", "ctrc", &["other"], vec![]).await;
        assert_ne!(ip_a, ip_b);

        // Same network: reachable; the container's gateway is the bridge.
        assert!(reaches(&ns_a, ip_b), "ping a -> b");
        assert!(reaches(&ns_b, front.gateway.unwrap()), "ping b -> gateway");
        // Different networks: isolated both ways.
        assert!(!ping(&ns_a, ip_c), "a reached c across networks");
        assert!(!ping(&ns_c, ip_a), "c reached a across networks");

        // Embedded DNS: names on the same network only.
        let out = nslookup(&ns_a, "db").await;
        assert!(out.contains(&ip_b.to_string()), "nslookup db: {out}");
        let out = nslookup(&ns_b, "web").await;
        assert!(out.contains(&ip_a.to_string()), "nslookup web: {out}");
        let out = nslookup(&ns_a, "other").await;
        assert!(
            !out.contains(&ip_c.to_string()),
            "leaked across networks: {out}"
        );

        // Published port: via loopback and via a host address of the sandbox.
        let host_port = ports[0].host_port;
        assert_ne!(host_port, 0);
        serve_in(&ns_a, "hello from a").await;
        sh("ip link add hostif0 type veth peer name hostif1 && ip addr add 10.77.0.1/24 dev hostif0 && ip link set hostif1 up && ip link set hostif0 up");
        let via_lo = tokio::task::spawn_blocking(move || fetch(&format!("127.0.0.1:{host_port}")))
            .await
            .unwrap();
        assert_eq!(via_lo.as_deref(), Some("hello from a"));
        let via_host =
            tokio::task::spawn_blocking(move || fetch(&format!("10.77.0.1:{host_port}")))
                .await
                .unwrap();
        assert_eq!(via_host.as_deref(), Some("hello from a"));
        // From another container on the same network through the gateway (hairpin NAT).
        let gw = front.gateway.unwrap();
        let from_b = try_sh(&format!(
            "nsenter --net={} busybox nc -w 2 {gw} {host_port} </dev/null | grep -q 'hello from a'",
            ns_b.display()
        ));
        assert!(from_b, "published port via gateway from b");
        // The host port is reserved: binding it again fails.
        let taken = std::net::TcpListener::bind(("0.0.0.0", host_port));
        assert!(taken.is_err(), "published port {host_port} not reserved");

        // Teardown: disconnect is idempotent, remove refuses while endpoints exist.
        assert!(mgr.remove_network("front").await.is_err());
        for (net, id) in [("front", "ctra"), ("front", "ctrb"), ("back", "ctrc")] {
            mgr.disconnect(net, id).await.expect("disconnect");
            mgr.disconnect(net, id).await.expect("disconnect again");
            mgr.delete_netns(id).await.expect("delete netns");
            mgr.delete_netns(id).await.expect("delete netns again");
        }
        assert!(
            std::net::TcpListener::bind(("0.0.0.0", host_port)).is_ok(),
            "port not released"
        );
        let table = env.cfg.nft_table.clone();
        let rules = sh(&format!("nft list table ip {table}"));
        assert!(!rules.contains("dnat to"), "dnat rule left: {rules}");
        mgr.remove_network("front").await.expect("remove front");
        mgr.remove_network(&back.id).await.expect("remove back");
        assert!(mgr.remove_network("bridge").await.is_err());
        assert!(!links().contains(&front.bridge_name));
        // Pairs the namespace pool made ahead (down, on no bridge) stay until shutdown.
        assert!(!endpoint_veths(), "veth left: {}", links());
        mgr.shutdown_cleanup().await.expect("cleanup");
        assert!(
            !try_sh(&format!("nft list table ip {table}")),
            "nft table left"
        );
        assert!(
            !links().contains("veth"),
            "veth left after shutdown: {}",
            links()
        );
        assert!(!links().contains(&def.bridge_name));
        assert_eq!(std::fs::read_dir(env.netns_dir()).unwrap().count(), 0);
    });
}

#[test]
fn masquerade_works_under_a_foreign_forward_drop_policy() {
    if !require_root() {
        return;
    }
    sandbox(|| async {
        let env = Env::new();
        // What a dockerd leaves behind (iptables-nft): FORWARD policy DROP.
        sh("nft add table ip filter && nft add chain ip filter FORWARD '{ type filter hook forward priority 0; policy drop; }'");
        // An "outside" namespace behind an uplink of the sandbox host.
        let outside = env.dir.path().join("outside");
        let sys = berth_network::LinuxNetSys::new().unwrap();
        berth_network::NetSys::create_netns(&sys, &outside)
            .await
            .unwrap();
        sh(&format!(
            "ip link add up0 type veth peer name o0 && ip link set o0 netns {} && ip addr add 10.251.0.1/24 dev up0 && ip link set up0 up",
            outside.display()
        ));
        sh(&format!(
            "nsenter --net={} sh -c 'ip addr add 10.251.0.2/24 dev o0 && ip link set o0 up'",
            outside.display()
        ));
        let mgr = env.manager();
        mgr.create_network(CreateNetwork {
            name: "net".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let (ns, _, _) = attach(&mgr, "net", "ctr", &["ctr"], vec![]).await;
        // The outside namespace has no route back to the container subnet: only a
        // masqueraded packet can get an answer.
        assert!(
            reaches(&ns, "10.251.0.2"),
            "masqueraded ping through a DROP forward policy"
        );
        let ruleset = sh("nft list chain ip filter FORWARD");
        assert!(
            ruleset.contains(&format!("berth:{}:", env.cfg.nft_table)),
            "{ruleset}"
        );

        // Internal networks never leave their bridge.
        mgr.create_network(CreateNetwork {
            name: "int".into(),
            internal: true,
            ..Default::default()
        })
        .await
        .unwrap();
        let (ns_i, _, _) = attach(&mgr, "int", "ctri", &["ctri"], vec![]).await;
        assert!(
            !ping(&ns_i, "10.251.0.2"),
            "internal network reached outside"
        );

        for (net, id) in [("net", "ctr"), ("int", "ctri")] {
            mgr.disconnect(net, id).await.unwrap();
            mgr.delete_netns(id).await.unwrap();
            mgr.remove_network(net).await.unwrap();
        }
        let ruleset = sh("nft list chain ip filter FORWARD");
        assert!(!ruleset.contains("berth:"), "foreign rule left: {ruleset}");
        mgr.shutdown_cleanup().await.unwrap();
        berth_network::NetSys::delete_netns(&sys, &outside)
            .await
            .unwrap();
    });
}

#[test]
fn reconcile_removes_dead_endpoints_after_restart() {
    if !require_root() {
        return;
    }
    sandbox(|| async {
        let env = Env::new();
        let mgr = env.manager();
        mgr.create_network(CreateNetwork {
            name: "app".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let (ns_live, ip_live, _) = attach(&mgr, "app", "live1", &["live"], vec![]).await;
        let (_ns_dead, ip_dead, _) = attach(&mgr, "app", "dead1", &["dead"], vec![]).await;
        let dead_veth = mgr
            .endpoints("app")
            .into_iter()
            .find(|e| e.endpoint_id == "dead1")
            .map(|e| e.ip)
            .unwrap();
        assert_eq!(dead_veth, Some(ip_dead));
        drop(mgr);

        // A "restarted daemon": new manager from the persisted state.
        let mgr = env.manager();
        let live: HashSet<String> = ["live1".to_string()].into();
        mgr.reconcile(&live).await.expect("reconcile");
        let eps = mgr.endpoints("app");
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].ip, Some(ip_live));
        assert!(!env.netns_dir().join("dead1").exists(), "dead netns left");
        let bridge = mgr.get("app").unwrap().bridge_name;
        let ports = sh(&format!("ip -o link show master {bridge}"));
        assert_eq!(ports.lines().count(), 1, "ports of {bridge}: {ports}");
        // DNS listeners come back for live endpoints.
        let out = nslookup(&ns_live, "live").await;
        assert!(out.contains(&ip_live.to_string()), "{out}");
        // The dead endpoint's address is free again for an explicit request.
        let ns2 = mgr.create_netns("again").await.unwrap();
        let ep = mgr
            .connect(EndpointRequest {
                network: "app".into(),
                endpoint_id: "again".into(),
                netns: ns2,
                ipv4: Some(ip_dead),
                ..Default::default()
            })
            .await
            .expect("reuse released ip");
        assert_eq!(ep.ip, Some(ip_dead));

        // Nothing live: everything goes.
        mgr.reconcile(&HashSet::new()).await.unwrap();
        assert!(mgr.endpoints("app").is_empty());
        assert_eq!(std::fs::read_dir(env.netns_dir()).unwrap().count(), 0);
        mgr.remove_network("app").await.unwrap();
        mgr.shutdown_cleanup().await.unwrap();
        // The first manager's pooled pairs went with its namespaces when it was dropped;
        // the kernel frees those asynchronously.
        for _ in 0..200 {
            if !links().contains("veth") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!links().contains("veth"), "veth left: {}", links());
        assert!(!try_sh(&format!("nft list table ip {}", env.cfg.nft_table)));
    });
}

#[test]
fn legacy_drop_policy_with_br_netfilter_and_ipv6() {
    if !require_root() {
        return;
    }
    if !std::path::Path::new("/usr/sbin/iptables-legacy").exists()
        || !std::path::Path::new("/usr/sbin/ip6tables-legacy").exists()
    {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("iptables-legacy is needed under CI");
        }
        eprintln!("skipping: no iptables-legacy");
        return;
    }
    sandbox(|| async {
        let env = Env::new();
        // The state a dockerd leaves: legacy x_tables FORWARD policy DROP (ip6tables too,
        // with IPv6 on), and bridged frames sent through iptables (br_netfilter; all of it
        // per namespace here).
        sh("iptables-legacy -P FORWARD DROP");
        sh("ip6tables-legacy -P FORWARD DROP");
        sh("sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1");
        let outside = env.dir.path().join("outside");
        let sys = berth_network::LinuxNetSys::new().unwrap();
        berth_network::NetSys::create_netns(&sys, &outside)
            .await
            .unwrap();
        sh(&format!(
            "ip link add up0 type veth peer name o0 && ip link set o0 netns {} && ip addr add 10.252.0.1/24 dev up0 && ip -6 addr add fd99:1::1/64 dev up0 nodad && ip link set up0 up",
            outside.display()
        ));
        sh(&format!(
            "nsenter --net={} sh -c 'ip addr add 10.252.0.2/24 dev o0 && ip -6 addr add fd99:1::2/64 dev o0 nodad && ip link set o0 up'",
            outside.display()
        ));
        let mgr = env.manager();
        let net = mgr
            .create_network(CreateNetwork {
                name: "v6".into(),
                enable_ipv6: true,
                subnet6: Some("fd00:5a5a::/64".parse().unwrap()),
                ..Default::default()
            })
            .await
            .unwrap();
        let (a, a_ip, _) = attach(&mgr, "v6", "a", &["a"], vec![]).await;
        let (b, b_ip, _) = attach(&mgr, "v6", "b", &["b"], vec![]).await;
        assert!(
            reaches(&a, b_ip),
            "container to container under FORWARD DROP"
        );
        assert!(reaches(&b, a_ip));
        assert!(reaches(&a, "10.252.0.2"), "masqueraded IPv4 to the outside");
        let legacy = sh("iptables-legacy -S FORWARD");
        assert!(legacy.contains(&net.bridge_name), "{legacy}");
        let legacy6 = sh("ip6tables-legacy -S FORWARD");
        assert!(legacy6.contains(&net.bridge_name), "{legacy6}");

        // IPv6: addresses on the bridge and in the namespaces, usable at once (no DAD).
        let addrs = sh(&format!("ip -6 addr show dev {}", net.bridge_name));
        assert!(addrs.contains("fd00:5a5a::1/64"), "{addrs}");
        let eps = mgr.endpoints("v6");
        let b6 = eps
            .iter()
            .find(|e| e.endpoint_id == "b")
            .and_then(|e| e.ipv6)
            .expect("b has an IPv6 address");
        let ping6 = |from: &Path, ip: &str| {
            try_sh(&format!(
                "nsenter --net={} busybox ping -6 -c1 -W2 {ip} >/dev/null 2>&1",
                from.display()
            ))
        };
        assert!(ping6(&a, &b6.to_string()), "IPv6 between containers");
        assert!(ping6(&a, "fd00:5a5a::1"), "IPv6 to the gateway");
        let routes = sh(&format!("nsenter --net={} ip -6 route", a.display()));
        assert!(routes.contains("default via fd00:5a5a::1"), "{routes}");
        // The outside has no route to fd00:5a5a::/64: only a masqueraded ping is answered.
        assert!(ping6(&a, "fd99:1::2"), "masqueraded IPv6 to the outside");
        // AAAA from the embedded DNS.
        assert_eq!(mgr.dns_server().resolve6(&a, "b"), vec![b6]);

        for id in ["a", "b"] {
            mgr.disconnect("v6", id).await.unwrap();
            mgr.delete_netns(id).await.unwrap();
        }
        mgr.remove_network("v6").await.unwrap();
        let legacy = sh("iptables-legacy -S FORWARD");
        assert!(!legacy.contains("berth:"), "legacy rule left: {legacy}");
        let legacy6 = sh("ip6tables-legacy -S FORWARD");
        assert!(
            !legacy6.contains("berth:"),
            "legacy ip6 rule left: {legacy6}"
        );
        mgr.shutdown_cleanup().await.unwrap();
        let tables = sh("nft list tables");
        assert!(!tables.contains(&env.cfg.nft_table), "{tables}");
        berth_network::NetSys::delete_netns(&sys, &outside)
            .await
            .unwrap();
    });
}

#[test]
fn pooled_namespaces_have_lo_up_and_are_refilled() {
    if !require_root() {
        return;
    }
    sandbox(|| async {
        let env = Env::new();
        let pool = netns::NetnsPool::new(2);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pool.len() < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pool.len(), 2, "pool did not fill");
        let path = env.netns_dir().join("pooled");
        netns::create(&path, Some(&pool)).await.expect("create");
        let lo = sh(&format!(
            "nsenter --net={} ip -o link show lo",
            path.display()
        ));
        assert!(lo.contains("UP"), "{lo}");
        let links = sh(&format!("nsenter --net={} ip -o link show", path.display()));
        assert_eq!(
            links.lines().count(),
            1,
            "a fresh namespace has only lo: {links}"
        );
        let ours = std::fs::read_link("/proc/thread-self/ns/net").expect("own ns");
        let theirs = sh(&format!(
            "nsenter --net={} readlink /proc/self/ns/net",
            path.display()
        ));
        assert_ne!(ours.to_string_lossy(), theirs.trim());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pool.len() < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pool.len(), 2, "pool was not refilled");
        netns::delete(&path).expect("delete");
        assert!(!path.exists());
    });
}

/// `ip -o link` inside the namespace at `ns`.
fn links_in(ns: &Path) -> String {
    sh(&format!("nsenter --net={} ip -o link show", ns.display()))
}

#[test]
fn pooled_veth_pairs_serve_first_endpoints() {
    if !require_root() {
        return;
    }
    sandbox(|| async {
        let env = Env::new();
        let mgr = env.manager();
        mgr.ensure_default_bridge().await.expect("default bridge");
        let other = mgr
            .create_network(CreateNetwork {
                name: "other".into(),
                ..Default::default()
            })
            .await
            .expect("create other");
        // The pool fills in the background: wait until it has made its pairs (down, on
        // no bridge, in this namespace).
        let pooled = || {
            links()
                .lines()
                .filter(|l| l.contains(": veth") && !l.contains(" master "))
                .count()
        };
        for _ in 0..200 {
            if pooled() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(pooled() >= 2, "pool made no pairs: {}", links());

        // A first endpoint gets a pooled pair: lo and eth0 only, with the endpoint's MAC
        // and address, and traffic flows through the bridge.
        let (ns, ip, _) = attach(&mgr, "bridge", "pa", &[], Vec::new()).await;
        let inside = links_in(&ns);
        assert_eq!(inside.lines().count(), 2, "{inside}");
        let ep = mgr
            .endpoints("bridge")
            .into_iter()
            .find(|e| e.endpoint_id == "pa")
            .expect("endpoint");
        let mac = ep.mac.expect("mac");
        let mac = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        assert!(inside.contains("eth0") && inside.contains(&mac), "{inside}");
        let (ns2, _ip2, _) = attach(&mgr, "bridge", "pb", &[], Vec::new()).await;
        assert!(
            try_sh(&format!(
                "nsenter --net={} busybox ping -c1 -W2 {ip}",
                ns2.display()
            )),
            "ping between pooled endpoints"
        );
        // A second network on the same namespace: a fresh pair, eth1.
        mgr.connect(EndpointRequest {
            network: other.id.clone(),
            endpoint_id: "pa".into(),
            netns: ns.clone(),
            ..Default::default()
        })
        .await
        .expect("connect other");
        let inside = links_in(&ns);
        assert_eq!(inside.lines().count(), 3, "{inside}");
        assert!(inside.contains("eth1"), "{inside}");
        // A first endpoint with a name of its own: the pooled end is renamed.
        let ns3 = mgr.create_netns("pc").await.expect("netns");
        mgr.connect(EndpointRequest {
            network: "bridge".into(),
            endpoint_id: "pc".into(),
            netns: ns3.clone(),
            ifname: Some("lan0".into()),
            ..Default::default()
        })
        .await
        .expect("connect named");
        let inside = links_in(&ns3);
        assert_eq!(inside.lines().count(), 2, "{inside}");
        assert!(
            inside.contains("lan0") && !inside.contains("eth0"),
            "{inside}"
        );

        for (net, id) in [
            ("bridge", "pa"),
            (other.id.as_str(), "pa"),
            ("bridge", "pb"),
            ("bridge", "pc"),
        ] {
            mgr.disconnect(net, id).await.expect("disconnect");
        }
        for id in ["pa", "pb", "pc"] {
            mgr.delete_netns(id).await.expect("delete netns");
        }
        mgr.remove_network("other").await.expect("remove other");
        mgr.shutdown_cleanup().await.expect("cleanup");
        assert!(!links().contains("veth"), "veth left: {}", links());
    });
}
