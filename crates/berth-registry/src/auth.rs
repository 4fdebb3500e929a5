//! Authentication (htpasswd with bcrypt) and authorization (per-repository permissions),
//! plus the bearer tokens of Docker's token flow.
//!
//! Tokens are JWTs signed with HMAC-SHA256 (`alg: HS256`) using `auth.token_secret`, or a
//! random per-process key when none is configured (tokens then die with the process, and
//! clients simply fetch new ones). The registry is both issuer and verifier, so a shared-key
//! MAC is enough; clients treat the token as opaque. Claims follow distribution's token
//! spec: `iss`, `sub`, `aud` (the service), `exp`, `nbf`, `iat`, `jti` and
//! `access: [{type, name, actions}]`.
//!
//! bcrypt is deliberately slow (~50 ms at cost 10) and basic-auth clients send credentials
//! on every request, so successful verifications are cached keyed by user and a SHA-256 of
//! the password; the cache is dropped whenever the htpasswd file is reloaded.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::{Action, AuthConfig, Permission};
use crate::digest::Digest;

/// Errors from loading auth material or checking credentials and tokens.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading htpasswd file {path}: {source}")]
    ReadHtpasswd {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("htpasswd file {path} line {line}: {message}")]
    BadHtpasswd {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("invalid username or password for {0:?}")]
    BadCredentials(String),
    #[error("malformed authorization header")]
    BadHeader,
    #[error("invalid token: {0}")]
    BadToken(String),
}

/// Users and their bcrypt hashes.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

impl Htpasswd {
    /// Parse `user:$2y$...` lines; blank lines and `#` comments are skipped.
    pub fn parse(text: &str, path: &Path) -> Result<Htpasswd, AuthError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: &str| AuthError::BadHtpasswd {
                path: path.to_path_buf(),
                line: i + 1,
                message: message.to_string(),
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| bad("no ':' separator"))?;
            if !hash.starts_with("$2") {
                return Err(bad("only bcrypt ($2a$, $2b$, $2y$) hashes are supported"));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Htpasswd { users })
    }

    pub fn load(path: &Path) -> Result<Htpasswd, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::ReadHtpasswd {
            path: path.to_path_buf(),
            source,
        })?;
        Htpasswd::parse(&text, path)
    }

    fn hash_of(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }
}

/// One grant in a token: actions on a named resource.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// JWT claims of a registry token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    pub access: Vec<Access>,
}

impl Claims {
    /// Whether the token grants `action` on repository `repo`.
    pub fn allows(&self, repo: &str, action: Action) -> bool {
        self.access.iter().any(|a| {
            a.kind == "repository"
                && a.name == repo
                && a.actions.iter().any(|x| x == action.as_str() || x == "*")
        })
    }

    pub fn allows_catalog(&self) -> bool {
        self.access
            .iter()
            .any(|a| a.kind == "registry" && a.name == "catalog")
    }
}

/// A requested scope such as `repository:library/busybox:pull,push`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Scope {
    /// Parse one scope; the name may not contain ':' (repository names cannot).
    pub fn parse(s: &str) -> Option<Scope> {
        let (kind, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        Some(Scope {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: actions.split(',').map(str::to_string).collect(),
        })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Match a repository against a permission pattern: `*` matches any run of characters.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| rec(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && rec(rest, &n[1..]),
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

/// The identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User(String),
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::User(u) => u,
        }
    }
}

/// The authenticator and authorizer.
pub struct Auth {
    cfg: AuthConfig,
    htpasswd: Option<Htpasswd>,
    secret: Vec<u8>,
    verified: Mutex<HashSet<(String, Digest)>>,
}

impl Auth {
    /// Build from config, loading the htpasswd file when one is configured.
    pub fn new(cfg: AuthConfig) -> Result<Auth, AuthError> {
        let htpasswd = cfg.htpasswd.as_deref().map(Htpasswd::load).transpose()?;
        let secret = match &cfg.token_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => rand::random::<[u8; 32]>().to_vec(),
        };
        Ok(Auth {
            cfg,
            htpasswd,
            secret,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Whether authentication is required at all.
    pub fn enabled(&self) -> bool {
        self.htpasswd.is_some()
    }

    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// Check a user's password (blocking: bcrypt; call from a blocking thread).
    pub fn verify_password(&self, user: &str, password: &str) -> Result<(), AuthError> {
        let bad = || AuthError::BadCredentials(user.to_string());
        let htpasswd = self.htpasswd.as_ref().ok_or_else(bad)?;
        let hash = htpasswd.hash_of(user).ok_or_else(bad)?;
        let key = (user.to_string(), Digest::sha256_of(password.as_bytes()));
        if self
            .verified
            .lock()
            .expect("auth cache lock poisoned")
            .contains(&key)
        {
            return Ok(());
        }
        if bcrypt::verify(password, hash).unwrap_or(false) {
            self.verified
                .lock()
                .expect("auth cache lock poisoned")
                .insert(key);
            Ok(())
        } else {
            Err(bad())
        }
    }

    /// Decode an `Authorization: Basic ...` value into user and password.
    pub fn parse_basic(header: &str) -> Result<(String, String), AuthError> {
        let b64 = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or(AuthError::BadHeader)?;
        let raw = STANDARD
            .decode(b64.trim())
            .map_err(|_| AuthError::BadHeader)?;
        let s = String::from_utf8(raw).map_err(|_| AuthError::BadHeader)?;
        let (u, p) = s.split_once(':').ok_or(AuthError::BadHeader)?;
        Ok((u.to_string(), p.to_string()))
    }

    fn rules_for<'a>(&'a self, who: &'a Principal) -> impl Iterator<Item = &'a Permission> {
        self.cfg.permissions.iter().filter(move |p| match who {
            Principal::Anonymous => p.user == "anonymous",
            Principal::User(u) => p.user == *u || p.user == "*",
        })
    }

    /// The actions `who` may perform on `repo` according to the configuration.
    pub fn permitted(&self, who: &Principal, repo: &str) -> Vec<Action> {
        if !self.enabled() {
            return vec![Action::Pull, Action::Push, Action::Delete];
        }
        if self.cfg.permissions.is_empty() {
            return match who {
                Principal::User(_) => vec![Action::Pull, Action::Push, Action::Delete],
                Principal::Anonymous => Vec::new(),
            };
        }
        let mut out: Vec<Action> = self
            .rules_for(who)
            .filter(|p| glob_match(&p.repository, repo))
            .flat_map(|p| p.actions.iter().copied())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether anonymous clients have any rule at all (then `/token` serves them).
    pub fn anonymous_allowed(&self) -> bool {
        self.cfg.permissions.iter().any(|p| p.user == "anonymous")
    }

    pub fn is_admin(&self, who: &Principal) -> bool {
        !self.enabled() || matches!(who, Principal::User(u) if self.cfg.admins.contains(u))
    }

    /// Issue a token for `who` covering the requested scopes, each narrowed to what the
    /// configuration permits. Returns the token and its lifetime in seconds.
    pub fn issue_token(&self, who: &Principal, scopes: &[Scope]) -> (String, u64) {
        let mut access = Vec::new();
        for s in scopes {
            match s.kind.as_str() {
                "repository" => {
                    let allowed = self.permitted(who, &s.name);
                    let mut granted: Vec<String> = Action::parse_list(&s.actions.join(","))
                        .into_iter()
                        .filter(|a| allowed.contains(a))
                        .map(|a| a.as_str().to_string())
                        .collect();
                    granted.dedup();
                    access.push(Access {
                        kind: s.kind.clone(),
                        name: s.name.clone(),
                        actions: granted,
                    });
                }
                "registry" if s.name == "catalog" && matches!(who, Principal::User(_)) => {
                    access.push(Access {
                        kind: s.kind.clone(),
                        name: s.name.clone(),
                        actions: vec!["*".to_string()],
                    });
                }
                _ => {}
            }
        }
        let now = now_secs();
        let ttl = self.cfg.token_ttl_secs.max(1);
        let claims = Claims {
            iss: "berth-registry".to_string(),
            sub: match who {
                Principal::Anonymous => String::new(),
                Principal::User(u) => u.clone(),
            },
            aud: self.cfg.service.clone(),
            exp: now + ttl,
            nbf: now.saturating_sub(5),
            iat: now,
            jti: crate::storage::fs::random_id(),
            access,
        };
        (self.sign(&claims), ttl)
    }

    fn mac(&self) -> hmac::Hmac<Sha256> {
        <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .expect("hmac accepts keys of any length")
    }

    fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// Verify a token's signature, audience and validity window.
    pub fn verify_token(&self, token: &str) -> Result<Claims, AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::BadToken("not three dot-separated parts".into()));
        };
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| AuthError::BadToken("signature is not base64url".into()))?;
        let mut mac = self.mac();
        mac.update(format!("{h}.{p}").as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| AuthError::BadToken("bad signature".into()))?;
        let payload = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| AuthError::BadToken("payload is not base64url".into()))?;
        let claims: Claims = serde_json::from_slice(&payload)
            .map_err(|e| AuthError::BadToken(format!("claims: {e}")))?;
        let now = now_secs();
        if claims.exp < now {
            return Err(AuthError::BadToken("expired".into()));
        }
        if claims.nbf > now + 5 {
            return Err(AuthError::BadToken("not yet valid".into()));
        }
        if claims.aud != self.cfg.service {
            return Err(AuthError::BadToken(format!(
                "audience {:?} is not this service",
                claims.aud
            )));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_with(perms: Vec<Permission>) -> (Auth, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = bcrypt::hash("secret", 4).expect("hash");
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, format!("alice:{hash}\n# comment\n")).expect("write");
        let cfg = AuthConfig {
            htpasswd: Some(path),
            permissions: perms,
            ..AuthConfig::default()
        };
        (Auth::new(cfg).expect("auth"), dir)
    }

    #[test]
    fn passwords() {
        let (a, _d) = auth_with(vec![]);
        a.verify_password("alice", "secret").expect("good password");
        a.verify_password("alice", "secret").expect("cached");
        assert!(a.verify_password("alice", "wrong").is_err());
        assert!(a.verify_password("bob", "secret").is_err());
        assert!(Htpasswd::parse("x:{SHA}abc", Path::new("h")).is_err());
        let hdr = format!("Basic {}", STANDARD.encode("alice:se:cret"));
        assert_eq!(
            Auth::parse_basic(&hdr).expect("parse"),
            ("alice".to_string(), "se:cret".to_string())
        );
    }

    #[test]
    fn permissions_and_tokens() {
        let (a, _d) = auth_with(vec![
            Permission {
                user: "alice".into(),
                repository: "team/*".into(),
                actions: vec![Action::Pull, Action::Push],
            },
            Permission {
                user: "anonymous".into(),
                repository: "public".into(),
                actions: vec![Action::Pull],
            },
        ]);
        let alice = Principal::User("alice".into());
        assert_eq!(
            a.permitted(&alice, "team/x/y"),
            vec![Action::Pull, Action::Push]
        );
        assert!(a.permitted(&alice, "other").is_empty());
        assert_eq!(
            a.permitted(&Principal::Anonymous, "public"),
            vec![Action::Pull]
        );
        let scopes = [
            Scope::parse("repository:team/app:pull,push,delete").expect("scope"),
            Scope::parse("repository:other:pull").expect("scope"),
        ];
        let (tok, _) = a.issue_token(&alice, &scopes);
        let c = a.verify_token(&tok).expect("verify");
        assert!(c.allows("team/app", Action::Push));
        assert!(!c.allows("team/app", Action::Delete));
        assert!(!c.allows("other", Action::Pull));
        let mut forged = tok.clone();
        forged.push('x');
        assert!(a.verify_token(&forged).is_err());
        assert!(glob_match("a*c", "abbc") && !glob_match("a*c", "abd"));
    }
}
