//! berth-network: docker's networking model as a library.
//!
//! Network definitions and IPAM ([`ipam`]), Linux bridges and veth pairs through netlink,
//! network namespaces, berth's own nftables table ([`nft`]) for masquerade, published
//! ports and isolation, and the embedded DNS server ([`dns`]). It knows nothing about
//! containers: an endpoint is an id plus a namespace path. [`NetworkManager`] is the entry
//! point; side effects go through [`NetSys`] so the logic is testable with [`FakeNetSys`].

pub mod dns;
pub mod error;
pub mod ipam;
mod manager;
pub mod nft;
pub mod proxy;
pub mod state;
pub mod sys;
pub mod types;

pub use error::{Error, ErrorKind, Result};
pub use manager::{mac_for_ip, NetworkManager};
pub use sys::{FakeNetSys, LinuxNetSys, NetSys};
pub use types::*;
