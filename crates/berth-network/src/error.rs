//! The library's error type, gathering the module errors, and the coarse kinds the API
//! layer maps to HTTP statuses.

use crate::dns::DnsError;
use crate::ipam::IpamError;
use crate::proxy::ProxyError;
use crate::state::StateError;
use crate::sys::SysError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network {0} not found")]
    NetworkNotFound(String),
    #[error("network with name {0} already exists")]
    NameConflict(String),
    #[error("{0} is a pre-defined network and cannot be removed")]
    Predefined(String),
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    ActiveEndpoints { name: String, id: String },
    #[error("endpoint {endpoint} already exists in network {network}")]
    EndpointExists { endpoint: String, network: String },
    #[error("bridge {bridge} is already used by network {network}")]
    BridgeInUse { bridge: String, network: String },
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
}

/// What kind of failure an [`Error`] is, for the API's status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    InvalidArgument,
    Forbidden,
    Internal,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NetworkNotFound(_) => ErrorKind::NotFound,
            Error::NameConflict(_) | Error::EndpointExists { .. } | Error::BridgeInUse { .. } => {
                ErrorKind::Conflict
            }
            Error::Predefined(_) | Error::ActiveEndpoints { .. } => ErrorKind::Forbidden,
            Error::Invalid(_) => ErrorKind::InvalidArgument,
            Error::Ipam(e) => match e {
                IpamError::PoolOverlap(_) | IpamError::PoolOverlap6(_) => ErrorKind::Forbidden,
                IpamError::AddressInUse { .. } | IpamError::AddressInUse6 { .. } => {
                    ErrorKind::Conflict
                }
                IpamError::NoAvailablePool | IpamError::Exhausted(_) | IpamError::Exhausted6(_) => {
                    ErrorKind::Internal
                }
                _ => ErrorKind::InvalidArgument,
            },
            Error::Sys(SysError::PortAllocated { .. }) => ErrorKind::Conflict,
            Error::Sys(_) | Error::Dns(_) | Error::State(_) | Error::Proxy(_) => {
                ErrorKind::Internal
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
