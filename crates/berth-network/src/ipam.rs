//! IP address management: choosing a subnet for a new network from the address pools, and
//! handing out addresses inside one network.
//!
//! Pure logic with no side effects: the manager feeds it the subnets already in use (other
//! networks and the host's routes) and persists the [`AddressPool`] of each network. Dynamic
//! allocation walks forward from the last address handed out, like docker's bitmap
//! allocator, so a just-released address is not reused at once (a stale ARP entry or DNS
//! answer then hits nobody rather than the wrong container).
//!
//! IPv6 is simpler on purpose: a network's IPv6 subnet is given or a random ULA /64
//! (RFC 4193: collisions are improbable, and there is no pool to exhaust), and endpoint
//! addresses are derived from the endpoints already on the network, lowest free first,
//! so nothing beyond the endpoints themselves needs persisting.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::types::Pool;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    NoAvailablePool,
    #[error("invalid pool request: Pool overlaps with other one on this address space ({0})")]
    PoolOverlap(Ipv4Net),
    #[error("subnet {0} is too small: no usable host address")]
    SubnetTooSmall(Ipv4Net),
    #[error("gateway {gateway} is not a usable host address of subnet {subnet}")]
    GatewayOutsideSubnet { gateway: Ipv4Addr, subnet: Ipv4Net },
    #[error("ip-range {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet { range: Ipv4Net, subnet: Ipv4Net },
    #[error(
        "invalid address {ip}: it does not belong to any of this network's subnets ({subnet})"
    )]
    AddressOutsideSubnet { ip: Ipv4Addr, subnet: Ipv4Net },
    #[error("invalid address {ip}: it is outside the network's ip-range {range}")]
    AddressOutsideRange { ip: Ipv4Addr, range: Ipv4Net },
    #[error("address {ip} is reserved (network, broadcast or gateway address)")]
    AddressReserved { ip: Ipv4Addr },
    #[error("address already in use: {ip} (held by endpoint {owner})")]
    AddressInUse { ip: Ipv4Addr, owner: String },
    #[error("no available addresses on network with subnet {0}")]
    Exhausted(Ipv4Net),
    #[error("invalid pool request: Pool overlaps with other one on this address space ({0})")]
    PoolOverlap6(Ipv6Net),
    #[error("invalid IPv6 subnet {0}: berth needs a prefix of /64 to /120")]
    BadSubnet6(Ipv6Net),
    #[error(
        "invalid address {ip}: it does not belong to any of this network's subnets ({subnet})"
    )]
    AddressOutsideSubnet6 { ip: Ipv6Addr, subnet: Ipv6Net },
    #[error("address already in use: {ip} (held by endpoint {owner})")]
    AddressInUse6 { ip: Ipv6Addr, owner: String },
    #[error("no available addresses on network with subnet {0}")]
    Exhausted6(Ipv6Net),
}

/// A random unique local /64 (`fdXX:XXXX:XXXX:YYYY::/64`) overlapping none of `taken`.
pub fn random_ula_subnet(taken: &[Ipv6Net]) -> Ipv6Net {
    let mut rng = rand::rng();
    loop {
        let mut octets = [0u8; 16];
        octets[0] = 0xfd;
        rng.fill(&mut octets[1..8]);
        let net = Ipv6Net::new(Ipv6Addr::from(octets), 64).expect("64 is a valid prefix");
        if !taken.iter().any(|t| overlaps6(t, &net)) {
            return net;
        }
    }
}

/// Whether two IPv6 subnets share any address.
pub fn overlaps6(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Checks an IPv6 subnet and returns it with its gateway (`gateway`, or the first host).
pub fn subnet6_with_gateway(
    subnet: Ipv6Net,
    gateway: Option<Ipv6Addr>,
) -> Result<(Ipv6Net, Ipv6Addr), IpamError> {
    let subnet = subnet.trunc();
    if !(64..=120).contains(&subnet.prefix_len()) {
        return Err(IpamError::BadSubnet6(subnet));
    }
    let gw = gateway.unwrap_or_else(|| offset6(subnet, 1));
    if !subnet.contains(&gw) || gw == subnet.network() {
        return Err(IpamError::AddressOutsideSubnet6 { ip: gw, subnet });
    }
    Ok((subnet, gw))
}

fn offset6(subnet: Ipv6Net, n: u128) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()).wrapping_add(n))
}

/// An IPv6 address for an endpoint: `requested` when it is free and inside the subnet,
/// otherwise the lowest address that is neither the subnet's first (the anycast router
/// address), the gateway nor in `used` (address, owner).
pub fn allocate6(
    subnet: Ipv6Net,
    gateway: Ipv6Addr,
    used: &[(Ipv6Addr, String)],
    requested: Option<Ipv6Addr>,
) -> Result<Ipv6Addr, IpamError> {
    if let Some(ip) = requested {
        if !subnet.contains(&ip) || ip == subnet.network() {
            return Err(IpamError::AddressOutsideSubnet6 { ip, subnet });
        }
        if let Some((_, owner)) = used.iter().find(|(u, _)| *u == ip) {
            return Err(IpamError::AddressInUse6 {
                ip,
                owner: owner.clone(),
            });
        }
        if ip == gateway {
            return Err(IpamError::AddressInUse6 {
                ip,
                owner: "gateway".into(),
            });
        }
        return Ok(ip);
    }
    let hosts = 1u128 << (128 - u32::from(subnet.prefix_len()));
    // A scan bounded by the endpoints present: one of the first `used + 2` candidates is
    // free (pigeonhole), so this never walks a /64.
    let bound = (used.len() as u128 + 3).min(hosts);
    (1..bound)
        .map(|n| offset6(subnet, n))
        .find(|ip| *ip != gateway && !used.iter().any(|(u, _)| u == ip))
        .ok_or(IpamError::Exhausted6(subnet))
}

/// Whether two subnets share any address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first subnet of the pools that overlaps none of `taken` (other networks' subnets and
/// the host's routes).
pub fn select_subnet(pools: &[Pool], taken: &[Ipv4Net]) -> Result<Ipv4Net, IpamError> {
    for pool in pools {
        let Ok(subnets) = pool.base.subnets(pool.size.max(pool.base.prefix_len())) else {
            continue;
        };
        for candidate in subnets {
            if !taken.iter().any(|t| overlaps(t, &candidate)) {
                return Ok(candidate);
            }
        }
    }
    Err(IpamError::NoAvailablePool)
}

/// The conventional gateway of a subnet: its first host address.
pub fn default_gateway(subnet: &Ipv4Net) -> Result<Ipv4Addr, IpamError> {
    if subnet.prefix_len() >= 31 {
        return Err(IpamError::SubnetTooSmall(*subnet));
    }
    Ok(Ipv4Addr::from(u32::from(subnet.network()) + 1))
}

/// Checks a user-given subnet / gateway / ip-range triple and fills in the gateway.
pub fn validate(
    subnet: &Ipv4Net,
    gateway: Option<Ipv4Addr>,
    ip_range: Option<&Ipv4Net>,
) -> Result<Ipv4Addr, IpamError> {
    let subnet = subnet.trunc();
    let gateway = match gateway {
        Some(gw) => {
            if !is_host_address(&subnet, gw) {
                return Err(IpamError::GatewayOutsideSubnet {
                    gateway: gw,
                    subnet,
                });
            }
            gw
        }
        None => default_gateway(&subnet)?,
    };
    if let Some(range) = ip_range {
        if !subnet.contains(range) {
            return Err(IpamError::RangeOutsideSubnet {
                range: *range,
                subnet,
            });
        }
    }
    Ok(gateway)
}

fn is_host_address(subnet: &Ipv4Net, ip: Ipv4Addr) -> bool {
    subnet.contains(&ip)
        && (subnet.prefix_len() >= 31 || (ip != subnet.network() && ip != subnet.broadcast()))
}

/// The addresses of one network: who holds what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPool {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub range: Option<Ipv4Net>,
    /// address → endpoint id.
    pub allocated: BTreeMap<Ipv4Addr, String>,
    /// Last dynamically allocated address; the next search starts after it.
    pub last: Option<Ipv4Addr>,
}

impl AddressPool {
    pub fn new(
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        range: Option<Ipv4Net>,
    ) -> Result<Self, IpamError> {
        let gateway = validate(&subnet, gateway, range.as_ref())?;
        Ok(AddressPool {
            subnet: subnet.trunc(),
            gateway,
            range,
            allocated: BTreeMap::new(),
            last: None,
        })
    }

    /// Allocates `requested` (`--ip`, validated) or the next free address for `owner`.
    /// An owner asking again gets the address it already holds.
    pub fn allocate(
        &mut self,
        owner: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = requested {
            self.check_requested(ip)?;
            match self.allocated.get(&ip) {
                Some(holder) if holder == owner => return Ok(ip),
                Some(holder) => {
                    return Err(IpamError::AddressInUse {
                        ip,
                        owner: holder.clone(),
                    })
                }
                None => {}
            }
            self.allocated.insert(ip, owner.to_string());
            return Ok(ip);
        }
        if let Some((ip, _)) = self.allocated.iter().find(|(_, o)| o.as_str() == owner) {
            return Ok(*ip);
        }
        let span = self.range.unwrap_or(self.subnet);
        let first = u32::from(span.network());
        let count = 1u64 << (32 - span.prefix_len());
        let start = match self.last {
            Some(last) if span.contains(&last) => u64::from(u32::from(last) - first) + 1,
            _ => 0,
        };
        for step in 0..count {
            let offset = (start + step) % count;
            let ip = Ipv4Addr::from(first + offset as u32);
            if self.is_free_host(ip) {
                self.allocated.insert(ip, owner.to_string());
                self.last = Some(ip);
                return Ok(ip);
            }
        }
        Err(IpamError::Exhausted(self.subnet))
    }

    fn check_requested(&self, ip: Ipv4Addr) -> Result<(), IpamError> {
        if !self.subnet.contains(&ip) {
            return Err(IpamError::AddressOutsideSubnet {
                ip,
                subnet: self.subnet,
            });
        }
        if let Some(range) = self.range {
            if !range.contains(&ip) {
                return Err(IpamError::AddressOutsideRange { ip, range });
            }
        }
        if ip == self.gateway || !is_host_address(&self.subnet, ip) {
            return Err(IpamError::AddressReserved { ip });
        }
        Ok(())
    }

    fn is_free_host(&self, ip: Ipv4Addr) -> bool {
        ip != self.gateway && is_host_address(&self.subnet, ip) && !self.allocated.contains_key(&ip)
    }

    /// Releases every address `owner` holds; returns them.
    pub fn release_owner(&mut self, owner: &str) -> Vec<Ipv4Addr> {
        let held: Vec<Ipv4Addr> = self
            .allocated
            .iter()
            .filter(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in &held {
            self.allocated.remove(ip);
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_subnets_and_addresses() {
        let a = random_ula_subnet(&[]);
        assert_eq!(a.prefix_len(), 64);
        assert_eq!(a.network().octets()[0], 0xfd);
        assert!(random_ula_subnet(&[a]) != a);
        let net: Ipv6Net = "fd00:42::/64".parse().unwrap();
        let (net, gw) = subnet6_with_gateway(net, None).unwrap();
        assert_eq!(gw, "fd00:42::1".parse::<Ipv6Addr>().unwrap());
        assert!(subnet6_with_gateway("fd00::/48".parse().unwrap(), None).is_err());
        assert!(subnet6_with_gateway(net, Some("fd00:43::1".parse().unwrap())).is_err());
        let used = vec![("fd00:42::2".parse().unwrap(), "e1".to_string())];
        assert_eq!(
            allocate6(net, gw, &used, None).unwrap(),
            "fd00:42::3".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            allocate6(net, gw, &[], None).unwrap(),
            "fd00:42::2".parse::<Ipv6Addr>().unwrap()
        );
        assert!(matches!(
            allocate6(net, gw, &used, Some("fd00:42::2".parse().unwrap())),
            Err(IpamError::AddressInUse6 { .. })
        ));
        assert!(matches!(
            allocate6(net, gw, &used, Some("fd00:99::2".parse().unwrap())),
            Err(IpamError::AddressOutsideSubnet6 { .. })
        ));
        assert_eq!(
            allocate6(net, gw, &used, Some("fd00:42::99".parse().unwrap())).unwrap(),
            "fd00:42::99".parse::<Ipv6Addr>().unwrap()
        );
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn selects_first_pool_subnet_not_taken() {
        let pools = Pool::docker_defaults();
        assert_eq!(select_subnet(&pools, &[]).unwrap(), net("172.17.0.0/16"));
        // A dockerd's docker0 route and one of our networks are skipped.
        let taken = [net("172.17.0.0/16"), net("172.18.0.0/16")];
        assert_eq!(select_subnet(&pools, &taken).unwrap(), net("172.19.0.0/16"));
        // A host route inside a candidate disqualifies the whole candidate.
        let taken = [net("172.17.5.0/24")];
        assert_eq!(select_subnet(&pools, &taken).unwrap(), net("172.18.0.0/16"));
        // A broad host route covering the candidates disqualifies them all.
        let taken = [net("172.16.0.0/12")];
        assert_eq!(
            select_subnet(&pools, &taken).unwrap(),
            net("192.168.0.0/20")
        );
    }

    #[test]
    fn pools_exhausted() {
        let pools = [Pool {
            base: net("10.9.0.0/23"),
            size: 24,
        }];
        let taken = [net("10.9.0.0/24"), net("10.9.1.0/24")];
        assert_eq!(
            select_subnet(&pools, &taken),
            Err(IpamError::NoAvailablePool)
        );
    }

    #[test]
    fn validates_gateway_and_range() {
        let s = net("10.1.0.0/24");
        assert_eq!(
            validate(&s, None, None).unwrap(),
            "10.1.0.1".parse::<Ipv4Addr>().unwrap()
        );
        assert!(matches!(
            validate(&s, Some("10.2.0.1".parse().unwrap()), None),
            Err(IpamError::GatewayOutsideSubnet { .. })
        ));
        assert!(matches!(
            validate(&s, Some("10.1.0.255".parse().unwrap()), None),
            Err(IpamError::GatewayOutsideSubnet { .. })
        ));
        assert!(matches!(
            validate(&s, None, Some(&net("10.1.1.0/25"))),
            Err(IpamError::RangeOutsideSubnet { .. })
        ));
        assert!(validate(
            &s,
            Some("10.1.0.254".parse().unwrap()),
            Some(&net("10.1.0.128/25"))
        )
        .is_ok());
    }

    #[test]
    fn never_hands_out_an_address_twice() {
        let mut pool = AddressPool::new(net("10.1.0.0/29"), None, None).unwrap();
        // Usable: .1 (gateway) .2 .. .6; .0 and .7 reserved.
        let mut seen = Vec::new();
        for i in 0..5 {
            let ip = pool.allocate(&format!("ep{i}"), None).unwrap();
            assert!(!seen.contains(&ip), "{ip} handed out twice");
            assert_ne!(ip, pool.gateway);
            seen.push(ip);
        }
        assert_eq!(
            pool.allocate("ep9", None),
            Err(IpamError::Exhausted(net("10.1.0.0/29")))
        );
        // The same owner asking again keeps its address.
        assert_eq!(pool.allocate("ep0", None).unwrap(), seen[0]);
        // Release, then the freed address comes back.
        assert_eq!(pool.release_owner("ep2"), vec![seen[2]]);
        assert_eq!(pool.allocate("ep10", None).unwrap(), seen[2]);
    }

    #[test]
    fn allocation_moves_forward_after_release() {
        let mut pool = AddressPool::new(net("10.1.0.0/24"), None, None).unwrap();
        let a = pool.allocate("a", None).unwrap();
        assert_eq!(a, "10.1.0.2".parse::<Ipv4Addr>().unwrap());
        pool.release_owner("a");
        let b = pool.allocate("b", None).unwrap();
        assert_eq!(b, "10.1.0.3".parse::<Ipv4Addr>().unwrap());
    }

    #[test]
    fn requested_address_is_validated() {
        let mut pool =
            AddressPool::new(net("10.1.0.0/24"), None, Some(net("10.1.0.128/25"))).unwrap();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(matches!(
            pool.allocate("x", Some(ip("10.2.0.5"))),
            Err(IpamError::AddressOutsideSubnet { .. })
        ));
        assert!(matches!(
            pool.allocate("x", Some(ip("10.1.0.5"))),
            Err(IpamError::AddressOutsideRange { .. })
        ));
        assert_eq!(
            pool.allocate("x", Some(ip("10.1.0.200"))).unwrap(),
            ip("10.1.0.200")
        );
        assert!(matches!(
            pool.allocate("y", Some(ip("10.1.0.200"))),
            Err(IpamError::AddressInUse { .. })
        ));
        assert_eq!(
            pool.allocate("x", Some(ip("10.1.0.200"))).unwrap(),
            ip("10.1.0.200")
        );
        // Dynamic addresses come from the range only.
        let d = pool.allocate("z", None).unwrap();
        assert!(net("10.1.0.128/25").contains(&d));
        let mut whole = AddressPool::new(net("10.1.0.0/24"), None, None).unwrap();
        assert!(matches!(
            whole.allocate("g", Some(ip("10.1.0.1"))),
            Err(IpamError::AddressReserved { .. })
        ));
        assert!(matches!(
            whole.allocate("g", Some(ip("10.1.0.255"))),
            Err(IpamError::AddressReserved { .. })
        ));
    }

    #[test]
    fn pool_round_trips_through_json() {
        let mut pool = AddressPool::new(net("10.1.0.0/24"), None, None).unwrap();
        pool.allocate("a", None).unwrap();
        let text = serde_json::to_string(&pool).unwrap();
        let back: AddressPool = serde_json::from_str(&text).unwrap();
        assert_eq!(back, pool);
    }
}
