//! The firewall: berth's nftables table, generated as text from the manager's state.
//!
//! # Design
//!
//! **One table of our own, replaced whole.** Everything berth needs lives in `table ip
//! <name>` (default `berth`). Each change (a network or endpoint added or removed)
//! regenerates the complete table from the manager's state and applies it with a single
//! `nft -f -` transaction of the form `table ip T {}; delete table ip T; table ip T {...}`:
//! the kernel swaps old for new atomically, so there is never a moment without rules, rules
//! of a dead endpoint cannot linger, and crash recovery is "apply the state again". Nothing
//! here ever names another table, flushes the ruleset or touches `docker0`: a dockerd, an
//! iptables-nft `ip filter` table and other firewalls stay as they are. About 7 ms per
//! apply here, small next to a container start.
//!
//! **Chains.**
//! - `prerouting` (nat, dstnat) and `output` (nat, -100) send traffic whose destination is
//!   one of the host's own addresses (`fib daddr type local`) to `publish`, which DNATs
//!   published ports to the container. `output` covers connections made on the host itself,
//!   including to 127.0.0.1.
//! - `postrouting` (nat, srcnat): masquerade each non-internal subnet leaving through a
//!   non-bridge interface; masquerade 127.0.0.0/8 sources going into a bridge (a DNATed
//!   connection to 127.0.0.1:port would otherwise arrive in the container from a loopback
//!   address it cannot answer); masquerade hairpin traffic (a container reaching a published
//!   port of its own network through a host address), whose reply would otherwise bypass the
//!   un-DNAT.
//! - `forward` (filter, priority -10): internal networks drop whatever tries to leave or
//!   enter their bridge; DNATed and established traffic is accepted; traffic between two
//!   different berth bridges is dropped (isolation); traffic from a bridge is accepted;
//!   new connections from outside straight into a bridge are dropped (only published ports
//!   are reachable, as with docker 28).
//!
//! **IPv6.** Networks with IPv6 get the same model in a second table of ours, `table ip6
//! <name>` (present only while such a network exists): masquerade of the IPv6 subnet, DNAT
//! of published ports to the container's IPv6 address, the same forward policy. It is
//! generated and swapped in the same transaction as the IPv4 table. `::1` is left out of
//! the `output` DNAT: IPv6 has no `route_localnet`, so a packet from `::1` can never leave
//! `lo`; `-p [::1]:...` is therefore not reachable (docker uses its userland proxy there).
//!
//! **Why DNAT for 127.0.0.1 and not a userland proxy.** docker defaults to a proxy process
//! per published port for loopback. berth instead sets `route_localnet=1` on its bridges and
//! masquerades loopback sources into the bridge (docker's own `userland-proxy: false` mode):
//! no process or task per port, UDP and TCP alike, the container sees a real peer address of
//! the bridge, and nothing is left running when the daemon restarts. The host port is still
//! reserved with a bound (never listening) socket so a second binding of the same port fails
//! like docker's "port is already allocated".
//!
//! **Other firewalls' DROP policies.** An nft `accept` ends evaluation of one base chain
//! only; a packet still traverses every other base chain on the same hook, and a drop there
//! is final. After a dockerd has run, iptables' `FORWARD` policy is DROP (in a legacy
//! x_tables table, or in an iptables-nft `table ip filter`), which would silently kill all
//! forwarded container traffic. So for each bridge berth inserts `accept` rules for
//! `iifname/oifname <bridge>` into each foreign forward base chain whose policy is drop, and
//! into legacy iptables' `FORWARD` when its policy is DROP, each tagged with the comment
//! `berth:<table>:<bridge>`, and deletes exactly those rules on teardown. Accepting all of a
//! bridge's traffic there is safe because the policy decisions (isolation, internal,
//! inbound) are drops in our own table, and a drop anywhere wins.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde_json::Value;

use crate::types::Protocol;

/// One berth bridge as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// The IPv6 subnet when the network has IPv6.
    pub subnet6: Option<Ipv6Net>,
    pub internal: bool,
}

/// One published port after host-port resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRule {
    pub proto: Protocol,
    /// `None`: every local address of the family of `dest_ip`.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    /// The container's address; its family picks the table the rule goes into.
    pub dest_ip: IpAddr,
    pub dest_port: u16,
}

/// Everything the table is generated from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Firewall {
    pub bridges: Vec<BridgeRules>,
    pub publish: Vec<PublishRule>,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', ""))
}

fn name_set(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| quote(n)).collect();
    format!("{{ {} }}", quoted.join(", "))
}

/// The script that removes our tables (a no-op for one that does not exist).
pub fn teardown_script(table: &str) -> String {
    format!(
        "table ip {table} {{}}\ndelete table ip {table}\ntable ip6 {table} {{}}\ndelete table ip6 {table}\n"
    )
}

/// The script that atomically replaces our tables with ones generated from `fw`; with no
/// bridges it only removes them. The `ip6` table exists only when a bridge has IPv6.
pub fn ruleset_script(table: &str, fw: &Firewall) -> String {
    let mut s = teardown_script(table);
    if fw.bridges.is_empty() {
        return s;
    }
    family_table(&mut s, table, fw, Family::V4);
    if fw.bridges.iter().any(|b| b.subnet6.is_some()) {
        family_table(&mut s, table, fw, Family::V6);
    }
    s
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn table(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    fn has(self, ip: &IpAddr) -> bool {
        matches!(
            (self, ip),
            (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
        )
    }
}

fn family_table(s: &mut String, table: &str, fw: &Firewall, fam: Family) {
    let all: Vec<&str> = fw.bridges.iter().map(|b| b.bridge.as_str()).collect();
    let all_set = name_set(&all);
    let kw = fam.table();
    // `write!` into a String cannot fail; the results are ignored on purpose below.
    let _ = writeln!(s, "table {kw} {table} {{");

    s.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    fib daddr type local jump publish\n  }\n");
    // No DNAT from ::1: a packet with a loopback source cannot leave `lo` in IPv6.
    let output_match = match fam {
        Family::V4 => "",
        Family::V6 => "ip6 daddr != ::1 ",
    };
    let _ = writeln!(
        s,
        "  chain output {{\n    type nat hook output priority -100; policy accept;\n    {output_match}fib daddr type local jump publish\n  }}"
    );

    s.push_str("  chain publish {\n");
    for p in fw.publish.iter().filter(|p| fam.has(&p.dest_ip)) {
        if p.host_ip.is_some_and(|h| !fam.has(&h)) {
            continue;
        }
        let daddr = p
            .host_ip
            .map(|ip| format!("{kw} daddr {ip} "))
            .unwrap_or_default();
        let dest = match p.dest_ip {
            IpAddr::V4(ip) => format!("{ip}:{}", p.dest_port),
            IpAddr::V6(ip) => format!("[{ip}]:{}", p.dest_port),
        };
        let _ = writeln!(
            s,
            "    {daddr}{} dport {} dnat to {dest}",
            p.proto, p.host_port
        );
    }
    s.push_str("  }\n");

    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
    );
    for b in &fw.bridges {
        let br = quote(&b.bridge);
        let subnet = match fam {
            Family::V4 => b.subnet.trunc().to_string(),
            Family::V6 => match b.subnet6 {
                Some(s6) => s6.trunc().to_string(),
                None => continue,
            },
        };
        if !b.internal {
            let _ = writeln!(s, "    {kw} saddr {subnet} oifname != {br} masquerade");
        }
        if fam == Family::V4 {
            let _ = writeln!(s, "    oifname {br} ip saddr 127.0.0.0/8 masquerade");
        }
        let _ = writeln!(
            s,
            "    oifname {br} {kw} saddr {subnet} ct status dnat masquerade"
        );
    }
    s.push_str("  }\n");

    s.push_str("  chain forward {\n    type filter hook forward priority -10; policy accept;\n");
    for b in fw.bridges.iter().filter(|b| b.internal) {
        let br = quote(&b.bridge);
        let _ = writeln!(s, "    iifname {br} oifname != {br} drop");
        let _ = writeln!(s, "    oifname {br} iifname != {br} drop");
    }
    let _ = writeln!(s, "    oifname {all_set} ct status dnat accept");
    let _ = writeln!(s, "    ct state established,related accept");
    for b in &fw.bridges {
        let others: Vec<&str> = all
            .iter()
            .copied()
            .filter(|o| *o != b.bridge.as_str())
            .collect();
        if !others.is_empty() {
            let _ = writeln!(
                s,
                "    iifname {} oifname {} drop",
                quote(&b.bridge),
                name_set(&others)
            );
        }
    }
    let _ = writeln!(s, "    iifname {all_set} accept");
    let _ = writeln!(s, "    oifname {all_set} drop");
    s.push_str("  }\n}\n");
}

/// The comment that marks berth's rules in other tables' chains.
pub fn foreign_tag(table: &str, bridge: &str) -> String {
    format!("berth:{table}:{bridge}")
}

/// A base chain of another table that hooks forward with a drop policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignChain {
    pub family: String,
    pub table: String,
    pub chain: String,
}

/// A rule of ours found in a foreign chain, deleted by handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignRule {
    pub chain: ForeignChain,
    pub handle: u64,
    pub comment: String,
}

/// Parses `nft -j list ruleset`: forward base chains with policy drop outside `own_table`,
/// and rules carrying a comment that starts with `tag_prefix`.
pub fn parse_foreign(
    json: &str,
    own_table: &str,
    tag_prefix: &str,
) -> Result<(Vec<ForeignChain>, Vec<ForeignRule>), serde_json::Error> {
    let v: Value = serde_json::from_str(json)?;
    let mut chains = Vec::new();
    let mut rules = Vec::new();
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    for item in &items {
        if let Some(c) = item.get("chain") {
            let family = text(c, "family");
            let table = text(c, "table");
            let own = table == own_table && (family == "ip" || family == "ip6");
            let forward_drop = text(c, "hook") == "forward" && text(c, "policy") == "drop";
            // Names are spliced into scripts unquoted (nft 1.0 does not take quoted chain
            // names there), so anything but a plain identifier is left alone.
            let plain = |n: &str| {
                !n.is_empty()
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            };
            let name = text(c, "name");
            if forward_drop
                && !own
                && matches!(family.as_str(), "ip" | "ip6" | "inet")
                && plain(&table)
                && plain(&name)
            {
                chains.push(ForeignChain {
                    family,
                    table,
                    chain: name,
                });
            }
        } else if let Some(r) = item.get("rule") {
            let comment = text(r, "comment");
            if !comment.is_empty() && comment.starts_with(tag_prefix) {
                rules.push(ForeignRule {
                    chain: ForeignChain {
                        family: text(r, "family"),
                        table: text(r, "table"),
                        chain: text(r, "chain"),
                    },
                    handle: r.get("handle").and_then(Value::as_u64).unwrap_or(0),
                    comment,
                });
            }
        }
    }
    Ok((chains, rules))
}

/// The script inserting our accept rules for `bridge` at the top of a foreign chain.
pub fn foreign_insert_script(chain: &ForeignChain, bridge: &str, tag: &str) -> String {
    let br = quote(bridge);
    let mut s = String::new();
    for dir in ["iifname", "oifname"] {
        let _ = writeln!(
            s,
            "insert rule {} {} {} {dir} {br} counter accept comment {}",
            chain.family,
            chain.table,
            chain.chain,
            quote(tag)
        );
    }
    s
}

/// The script deleting rules of ours from foreign chains.
pub fn foreign_delete_script(rules: &[ForeignRule]) -> String {
    let mut s = String::new();
    for r in rules {
        let _ = writeln!(
            s,
            "delete rule {} {} {} handle {}",
            r.chain.family, r.chain.table, r.chain.chain, r.handle
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw() -> Firewall {
        Firewall {
            bridges: vec![
                BridgeRules {
                    bridge: "br-a".into(),
                    subnet: "172.18.0.0/16".parse().unwrap(),
                    subnet6: None,
                    internal: false,
                },
                BridgeRules {
                    bridge: "br-i".into(),
                    subnet: "172.19.0.0/16".parse().unwrap(),
                    subnet6: None,
                    internal: true,
                },
            ],
            publish: vec![
                PublishRule {
                    proto: Protocol::Tcp,
                    host_ip: None,
                    host_port: 8080,
                    dest_ip: "172.18.0.2".parse().unwrap(),
                    dest_port: 80,
                },
                PublishRule {
                    proto: Protocol::Udp,
                    host_ip: Some("127.0.0.1".parse().unwrap()),
                    host_port: 5353,
                    dest_ip: "172.18.0.3".parse().unwrap(),
                    dest_port: 53,
                },
            ],
        }
    }

    #[test]
    fn replaces_only_its_own_table() {
        let s = ruleset_script("berthx", &fw());
        assert!(s.starts_with("table ip berthx {}\ndelete table ip berthx\ntable ip6 berthx {}\ndelete table ip6 berthx\ntable ip berthx {"));
        assert!(
            !s.contains("table ip6 berthx {\n"),
            "no ip6 table without IPv6"
        );
        for line in s.lines() {
            if line.starts_with("table") || line.starts_with("delete") {
                assert!(line.contains("berthx"), "foreign statement: {line}");
            }
            assert!(!line.contains("flush"), "flush in: {line}");
        }
    }

    #[test]
    fn publishes_ports_with_dnat() {
        let s = ruleset_script("t", &fw());
        assert!(s.contains("    tcp dport 8080 dnat to 172.18.0.2:80\n"));
        assert!(s.contains("    ip daddr 127.0.0.1 udp dport 5353 dnat to 172.18.0.3:53\n"));
        assert!(s.contains("type nat hook output priority -100"));
        assert!(s.contains("oifname \"br-a\" ip saddr 127.0.0.0/8 masquerade"));
    }

    #[test]
    fn masquerades_only_non_internal_networks() {
        let s = ruleset_script("t", &fw());
        assert!(s.contains("ip saddr 172.18.0.0/16 oifname != \"br-a\" masquerade"));
        assert!(!s.contains("ip saddr 172.19.0.0/16 oifname != \"br-i\" masquerade"));
    }

    #[test]
    fn isolates_bridges_and_internal_networks() {
        let s = ruleset_script("t", &fw());
        let drop_a = s
            .find("iifname \"br-a\" oifname { \"br-i\" } drop")
            .unwrap();
        let drop_i = s
            .find("iifname \"br-i\" oifname { \"br-a\" } drop")
            .unwrap();
        let internal = s.find("iifname \"br-i\" oifname != \"br-i\" drop").unwrap();
        let accept = s.find("iifname { \"br-a\", \"br-i\" } accept").unwrap();
        assert!(internal < accept && drop_a < accept && drop_i < accept);
        assert!(s.contains("oifname \"br-i\" iifname != \"br-i\" drop"));
    }

    #[test]
    fn empty_state_removes_the_table() {
        let s = ruleset_script("t", &Firewall::default());
        assert_eq!(
            s,
            "table ip t {}\ndelete table ip t\ntable ip6 t {}\ndelete table ip6 t\n"
        );
    }

    #[test]
    fn ipv6_networks_get_an_ip6_table() {
        let mut f = fw();
        f.bridges[0].subnet6 = Some("fd00:42::/64".parse().unwrap());
        f.publish.push(PublishRule {
            proto: Protocol::Tcp,
            host_ip: None,
            host_port: 8080,
            dest_ip: "fd00:42::2".parse().unwrap(),
            dest_port: 80,
        });
        let s = ruleset_script("t", &f);
        let v6 = &s[s.find("table ip6 t {\n").expect("ip6 table")..];
        let v4 = &s[..s.find("table ip6 t {\n").unwrap()];
        assert!(
            v6.contains("tcp dport 8080 dnat to [fd00:42::2]:80\n"),
            "{v6}"
        );
        assert!(v6.contains("ip6 saddr fd00:42::/64 oifname != \"br-a\" masquerade"));
        assert!(v6.contains("ip6 daddr != ::1 fib daddr type local jump publish"));
        assert!(
            !v6.contains("172.18.0.2"),
            "IPv4 rules stay out of ip6: {v6}"
        );
        assert!(!v6.contains("127.0.0.0/8"));
        assert!(!v4.contains("fd00:42::"), "IPv6 rules stay out of ip: {v4}");
        assert!(v4.contains("tcp dport 8080 dnat to 172.18.0.2:80"));
    }

    #[test]
    fn finds_foreign_drop_chains_and_our_rules() {
        let json = r#"{"nftables":[{"metainfo":{"json_schema_version":1}},
          {"table":{"family":"ip","name":"filter","handle":1}},
          {"chain":{"family":"ip","table":"filter","name":"FORWARD","handle":2,"type":"filter","hook":"forward","prio":0,"policy":"drop"}},
          {"chain":{"family":"ip","table":"filter","name":"INPUT","handle":3,"type":"filter","hook":"input","prio":0,"policy":"drop"}},
          {"chain":{"family":"inet","table":"fw","name":"fwd","handle":2,"type":"filter","hook":"forward","prio":0,"policy":"accept"}},
          {"chain":{"family":"ip","table":"berth","name":"forward","handle":2,"type":"filter","hook":"forward","prio":-10,"policy":"drop"}},
          {"rule":{"family":"ip","table":"filter","chain":"FORWARD","handle":7,"comment":"berth:berth:br-a","expr":[]}},
          {"rule":{"family":"ip","table":"filter","chain":"FORWARD","handle":8,"comment":"someone else","expr":[]}}]}"#;
        let (chains, rules) = parse_foreign(json, "berth", "berth:berth:").unwrap();
        assert_eq!(
            chains,
            vec![ForeignChain {
                family: "ip".into(),
                table: "filter".into(),
                chain: "FORWARD".into()
            }]
        );
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].handle, 7);
        let del = foreign_delete_script(&rules);
        assert_eq!(del, "delete rule ip filter FORWARD handle 7\n");
        let ins = foreign_insert_script(&chains[0], "br-a", "berth:berth:br-a");
        assert!(ins.contains("insert rule ip filter FORWARD iifname \"br-a\" counter accept comment \"berth:berth:br-a\""));
        assert!(ins.contains("oifname \"br-a\""));
    }
}
