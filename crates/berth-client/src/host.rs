//! Where the daemon lives: `-H` first, then `BERTH_HOST`, then `DOCKER_HOST`, then the
//! default socket. Only `unix://` and plain-HTTP `tcp://` are understood; `tcp://` without a
//! port gets docker's 2375.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The default daemon socket of berthd.
pub const DEFAULT_HOST: &str = "unix:///run/berth.sock";

/// A parsed daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` reachable over plain HTTP.
    Tcp(String),
}

impl Host {
    /// Parse `unix:///path`, `tcp://host[:port]`, `http://host[:port]` or a bare socket path.
    pub fn parse(s: &str) -> Result<Host> {
        let invalid = |reason: &str| Error::InvalidHost {
            host: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid("empty socket path"));
            }
            return Ok(Host::Unix(PathBuf::from(path)));
        }
        let rest = s
            .strip_prefix("tcp://")
            .or_else(|| s.strip_prefix("http://"));
        if let Some(rest) = rest {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() {
                return Err(invalid("empty address"));
            }
            if rest.contains('/') {
                return Err(invalid("paths are not supported in tcp hosts"));
            }
            let has_port = match rest.rfind(':') {
                Some(i) => !rest.ends_with(']') && rest[i + 1..].parse::<u16>().is_ok(),
                None => false,
            };
            return Ok(Host::Tcp(if has_port {
                rest.to_string()
            } else {
                format!("{rest}:2375")
            }));
        }
        if s.starts_with('/') {
            return Ok(Host::Unix(PathBuf::from(s)));
        }
        Err(invalid("protocol not supported, use unix:// or tcp://"))
    }

    /// Resolve the host the way the CLI does: the flag, then `BERTH_HOST`, then
    /// `DOCKER_HOST`, then [`DEFAULT_HOST`]. Empty variables count as unset.
    pub fn from_env(flag: Option<&str>) -> Result<Host> {
        if let Some(f) = flag.filter(|f| !f.is_empty()) {
            return Host::parse(f);
        }
        for var in ["BERTH_HOST", "DOCKER_HOST"] {
            if let Ok(v) = std::env::var(var) {
                if !v.is_empty() {
                    return Host::parse(&v);
                }
            }
        }
        Host::parse(DEFAULT_HOST)
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(
            Host::parse("unix:///run/x.sock").expect("valid"),
            Host::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Host::parse("tcp://127.0.0.1:2376").expect("valid"),
            Host::Tcp("127.0.0.1:2376".into())
        );
        assert_eq!(
            Host::parse("tcp://localhost").expect("valid"),
            Host::Tcp("localhost:2375".into())
        );
        assert_eq!(
            Host::parse("/tmp/s.sock").expect("valid"),
            Host::Unix("/tmp/s.sock".into())
        );
        assert!(Host::parse("ssh://x").is_err());
        assert!(Host::parse("unix://").is_err());
    }

    #[test]
    fn display_roundtrips() {
        for h in ["unix:///run/berth.sock", "tcp://1.2.3.4:5"] {
            assert_eq!(Host::parse(h).expect("valid").to_string(), h);
        }
    }
}
