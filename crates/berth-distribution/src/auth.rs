//! Credentials and authentication challenges.
//!
//! Credentials come from two places, as with dockerd: the `X-Registry-Auth` header the
//! client sends with each pull or push (base64url JSON of docker's `AuthConfig`), and,
//! when that is empty, the daemon user's `~/.docker/config.json` (`auths.<server>.auth`,
//! base64 `user:password`). Credential helpers and `credsStore` are not consulted.
//!
//! Challenges are the `WWW-Authenticate` values of a 401: `Basic realm=...` or
//! `Bearer realm=...,service=...,scope=...` (RFC 7235 auth-params, quoted or token values).

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Docker's `AuthConfig`: what `docker login` stores and `X-Registry-Auth` carries.
/// Go decodes JSON keys case-insensitively, so the capitalised forms are accepted too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default, alias = "Username")]
    pub username: String,
    #[serde(default, alias = "Password")]
    pub password: String,
    /// base64 `user:password`, an alternative to the two fields above.
    #[serde(default, alias = "Auth", skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, alias = "ServerAddress")]
    pub serveraddress: String,
    /// An OAuth2 refresh token from a previous login.
    #[serde(default, alias = "IdentityToken")]
    pub identitytoken: String,
    /// A bearer token to send as is.
    #[serde(default, alias = "RegistryToken")]
    pub registrytoken: String,
}

impl Credentials {
    pub fn basic(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_string(),
            password: password.to_string(),
            ..Credentials::default()
        }
    }

    /// Decode an `X-Registry-Auth` header. Docker encodes with base64url (padded); older
    /// clients used standard base64. Empty, `{}` or undecodable means "no credentials", as
    /// dockerd ignores a header it cannot decode.
    pub fn from_header(value: &str) -> Option<Credentials> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        let raw = URL_SAFE
            .decode(value)
            .or_else(|_| URL_SAFE_NO_PAD.decode(value))
            .or_else(|_| STANDARD.decode(value))
            .ok()?;
        let c: Credentials = serde_json::from_slice(&raw).ok()?;
        c.normalised()
    }

    /// Split `auth` into user and password when only it was given; `None` when nothing
    /// usable is left.
    fn normalised(mut self) -> Option<Credentials> {
        if self.username.is_empty() && !self.auth.is_empty() {
            if let Some((u, p)) = STANDARD
                .decode(self.auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                })
            {
                self.username = u;
                self.password = p;
            }
        }
        let usable = !self.username.is_empty()
            || !self.identitytoken.is_empty()
            || !self.registrytoken.is_empty();
        usable.then_some(self)
    }

    /// A stable key for caches: tokens fetched with one set of credentials must never be
    /// reused for a request made with another (or with none).
    pub(crate) fn cache_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            &self.username,
            &self.password,
            &self.identitytoken,
            &self.registrytoken,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..12])
    }

    pub(crate) fn basic_header(&self) -> Option<String> {
        (!self.username.is_empty()).then(|| {
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", self.username, self.password))
            )
        })
    }
}

/// The registry host a `serveraddress` or `auths` key names: scheme and path dropped,
/// Docker Hub's legacy names folded to `docker.io`.
pub fn normalise_server(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_lowercase();
    match host.as_str() {
        "" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// Credentials stored by `docker login` for registry `domain` (as in a reference:
/// `docker.io`, `127.0.0.1:5000`) in `$DOCKER_CONFIG/config.json` or
/// `~/.docker/config.json`.
pub fn stored_credentials(domain: &str) -> Option<Credentials> {
    let path = docker_config_path()?;
    let bytes = std::fs::read(&path).ok()?;
    stored_credentials_in(&bytes, domain)
}

/// [`stored_credentials`] over the bytes of a config file.
pub fn stored_credentials_in(config: &[u8], domain: &str) -> Option<Credentials> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let want = normalise_server(domain);
    for (key, entry) in auths {
        if normalise_server(key) != want {
            continue;
        }
        let mut c: Credentials = serde_json::from_value(entry.clone()).ok()?;
        c.serveraddress = key.clone();
        if let Some(c) = c.normalised() {
            return Some(c);
        }
    }
    None
}

/// One `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: String,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` value; `None` for schemes berth does not speak.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic {
            realm: get("realm").unwrap_or_default(),
        }),
        "bearer" => Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        }),
        _ => None,
    }
}

/// `k="v", k2=token, ...` with backslash escapes inside quotes. Commas inside quoted
/// values (scopes like `repository:a:pull,push`) stay in the value.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        if chars.peek() != Some(&'=') {
            continue;
        }
        chars.next();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="http://r/token",service="reg",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "http://r/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="berth-registry""#),
            Some(Challenge::Basic {
                realm: "berth-registry".into()
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer realm=http://x/t, service="a\"b""#),
            Some(Challenge::Bearer {
                realm: "http://x/t".into(),
                service: Some("a\"b".into()),
                scope: None,
            })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn header_decoding() {
        let json = r#"{"username":"u","password":"p+/?","serveraddress":"127.0.0.1:5000"}"#;
        let c = Credentials::from_header(&URL_SAFE.encode(json)).expect("credentials");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p+/?"));
        let c = Credentials::from_header(&STANDARD.encode(json)).expect("standard base64");
        assert_eq!(c.serveraddress, "127.0.0.1:5000");
        assert_eq!(Credentials::from_header(&URL_SAFE.encode("{}")), None);
        assert_eq!(Credentials::from_header("not base64!"), None);
        assert_eq!(Credentials::from_header(""), None);
        let c = Credentials::from_header(
            &URL_SAFE.encode(format!(r#"{{"auth":"{}"}}"#, STANDARD.encode("x:y:z"))),
        )
        .expect("auth field");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("x", "y:z"));
    }

    #[test]
    fn config_file_lookup() {
        let cfg = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"127.0.0.1:5000":{{"auth":"{}"}}}}}}"#,
            STANDARD.encode("hub:pw"),
            STANDARD.encode("local:pw2")
        );
        let c = stored_credentials_in(cfg.as_bytes(), "docker.io").expect("hub");
        assert_eq!(c.username, "hub");
        let c = stored_credentials_in(cfg.as_bytes(), "127.0.0.1:5000").expect("local");
        assert_eq!(c.password, "pw2");
        assert!(stored_credentials_in(cfg.as_bytes(), "127.0.0.1:5001").is_none());
        assert_eq!(
            normalise_server("https://Registry-1.docker.io/v2/"),
            "docker.io"
        );
        assert_eq!(normalise_server("http://localhost:5000"), "localhost:5000");
    }

    #[test]
    fn cache_keys_differ_by_secret() {
        assert_ne!(
            Credentials::basic("a", "b").cache_key(),
            Credentials::basic("a", "c").cache_key()
        );
    }
}
