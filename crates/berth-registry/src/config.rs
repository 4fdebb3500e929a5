//! Server configuration, read from a TOML file (TOML because the rest of the toolchain
//! already speaks it and it has no YAML-style surprises). Every key is optional; command
//! line flags override the file. Example:
//!
//! ```toml
//! addr = "127.0.0.1:5000"
//! root = "./registry-data"
//! read_only = false
//! delete_enabled = true
//! upload_expiry_secs = 86400        # purge uploads idle this long (default 24h)
//! upload_purge_interval_secs = 600
//! gc_grace_secs = 600               # POST /admin/gc default: spare blobs younger than this
//!
//! [tls]
//! cert = "/etc/berth-registry/cert.pem"
//! key = "/etc/berth-registry/key.pem"
//!
//! [auth]
//! htpasswd = "/etc/berth-registry/htpasswd"   # bcrypt entries only
//! mode = "token"                  # "basic" (default) or "token"
//! service = "berth-registry"
//! realm = "https://registry.example/token"    # default: <scheme>://<Host>/token
//! token_secret = "change me"      # HMAC-SHA256 key; random per process if absent
//! token_ttl_secs = 300
//! admins = ["alice"]              # may call POST /admin/gc
//!
//! [[auth.permissions]]
//! user = "alice"                  # a user, "*" (any authenticated user) or "anonymous"
//! repository = "team/*"           # exact name, or a glob where * matches anything
//! actions = ["pull", "push", "delete"]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Errors from loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Where TLS material lives.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How clients authenticate when auth is on.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// HTTP basic auth on every request.
    #[default]
    Basic,
    /// Docker's bearer-token flow against the built-in `/token` endpoint.
    Token,
}

/// An action on a repository.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    /// Parse a scope action; `*` means all.
    pub fn parse_list(s: &str) -> Vec<Action> {
        let mut out = Vec::new();
        for a in s.split(',') {
            match a.trim() {
                "pull" => out.push(Action::Pull),
                "push" => out.push(Action::Push),
                "delete" => out.push(Action::Delete),
                "*" => out.extend([Action::Pull, Action::Push, Action::Delete]),
                _ => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// One permission rule.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    pub user: String,
    pub repository: String,
    pub actions: Vec<Action>,
}

/// Authentication and authorization settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub htpasswd: Option<PathBuf>,
    pub mode: AuthMode,
    pub service: String,
    pub realm: Option<String>,
    pub token_secret: Option<String>,
    pub token_ttl_secs: u64,
    pub admins: Vec<String>,
    /// No rules: every authenticated user may do everything.
    pub permissions: Vec<Permission>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            htpasswd: None,
            mode: AuthMode::Basic,
            service: "berth-registry".to_string(),
            realm: None,
            token_secret: None,
            token_ttl_secs: 300,
            admins: Vec::new(),
            permissions: Vec::new(),
        }
    }
}

/// The whole server configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub read_only: bool,
    pub delete_enabled: bool,
    pub upload_expiry_secs: u64,
    pub upload_purge_interval_secs: u64,
    pub gc_grace_secs: u64,
    pub manifest_max_bytes: u64,
    pub tls: Option<TlsConfig>,
    pub auth: AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: "127.0.0.1:5000".parse().expect("default address parses"),
            root: PathBuf::from("./registry-data"),
            read_only: false,
            delete_enabled: true,
            upload_expiry_secs: 24 * 3600,
            upload_purge_interval_secs: 600,
            gc_grace_secs: 600,
            manifest_max_bytes: 4 << 20,
            tls: None,
            auth: AuthConfig::default(),
        }
    }
}

impl Config {
    /// Parse TOML text; `path` is for messages only.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read and parse a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Check cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.auth.mode == AuthMode::Token && self.auth.htpasswd.is_none() {
            return Err(ConfigError::Invalid(
                "auth.mode = \"token\" needs auth.htpasswd to authenticate users".into(),
            ));
        }
        if self.upload_expiry_secs == 0 {
            return Err(ConfigError::Invalid(
                "upload_expiry_secs must be > 0".into(),
            ));
        }
        Ok(())
    }

    pub fn upload_expiry(&self) -> Duration {
        Duration::from_secs(self.upload_expiry_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_example_parses() {
        let text = r#"
addr = "0.0.0.0:5001"
root = "/srv/reg"
read_only = true
upload_expiry_secs = 60
[tls]
cert = "c.pem"
key = "k.pem"
[auth]
htpasswd = "htpasswd"
mode = "token"
admins = ["alice"]
[[auth.permissions]]
user = "bob"
repository = "team/*"
actions = ["pull"]
"#;
        let cfg = Config::from_toml(text, Path::new("t.toml")).expect("parses");
        assert_eq!(cfg.addr.port(), 5001);
        assert!(cfg.read_only);
        assert_eq!(cfg.auth.mode, AuthMode::Token);
        assert_eq!(cfg.auth.permissions[0].actions, vec![Action::Pull]);
        assert_eq!(cfg.upload_expiry(), Duration::from_secs(60));
        assert_eq!(cfg.gc_grace_secs, 600, "defaults fill the rest");
    }

    #[test]
    fn rejects_bad_config() {
        assert!(Config::from_toml("bogus = 1", Path::new("x")).is_err());
        assert!(Config::from_toml("[auth]\nmode = \"token\"", Path::new("x")).is_err());
        assert_eq!(
            Action::parse_list("pull,push,bogus"),
            vec![Action::Pull, Action::Push]
        );
    }
}
