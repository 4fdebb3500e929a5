//! Docker image references, normalised as docker/distribution's `reference` package does.
//!
//! A reference is `[domain/]path[:tag][@digest]`. Normalisation fills in what the user
//! left out, exactly like `ParseNormalizedNamed` + `TagNameOnly`: no domain means
//! `docker.io`, a single path component on docker.io gets `library/`, and a name with
//! neither tag nor digest gets `:latest`. The first path component is a domain only if it
//! contains `.` or `:`, is `localhost`, or has upper-case letters (so `Foo/bar` is a
//! domain, and `foo/bar` is a Docker Hub user). The grammar is checked by hand rather than
//! with a regex crate: it is small and the error messages must match docker's.

use std::fmt;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a reference string was rejected; messages are docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    NotLowercase(String),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    #[error("invalid tag format: {0:?}")]
    InvalidTag(String),
    #[error("invalid digest format: {0:?}")]
    InvalidDigest(String),
}

/// A normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parse and normalise; a name with neither tag nor digest gets `latest`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Self::parse_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parse without adding a default tag: `busybox` stays name-only. Used where docker
    /// treats a bare name differently (save all tags of a repository).
    pub fn parse_named(s: &str) -> Result<Reference, ReferenceError> {
        if is_hex64(s) {
            return Err(ReferenceError::HexName(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote_name = match remainder.find(':') {
            Some(i) => &remainder[..i],
            None => &remainder,
        };
        // docker checks case before the grammar so the message names the repository
        if remote_name.to_lowercase() != remote_name {
            return Err(ReferenceError::NotLowercase(remote_name.to_string()));
        }
        let (rest, digest) = match remainder.find('@') {
            Some(i) => (&remainder[..i], Some(&remainder[i + 1..])),
            None => (remainder.as_str(), None),
        };
        let (path, tag) = match rest.rfind(':') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if !valid_path(path) || !valid_domain(&domain) {
            return Err(ReferenceError::InvalidFormat);
        }
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(ReferenceError::InvalidFormat);
            }
        }
        if let Some(d) = digest {
            if !valid_digest(d) {
                return Err(ReferenceError::InvalidFormat);
            }
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        Ok(Reference {
            domain,
            path: path.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// `repo` plus a separate tag (as the API's `?repo=&tag=` and `fromImage=&tag=`);
    /// a tag that looks like a digest becomes the digest. No tag means `latest`.
    pub fn parse_with_tag(repo: &str, tag: Option<&str>) -> Result<Reference, ReferenceError> {
        let mut r = Self::parse_named(repo)?;
        match tag.filter(|t| !t.is_empty()) {
            Some(t) if t.contains(':') => {
                if !valid_digest(t) {
                    return Err(ReferenceError::InvalidDigest(t.to_string()));
                }
                r.digest = Some(t.to_string());
            }
            Some(t) => {
                if !valid_tag(t) {
                    return Err(ReferenceError::InvalidTag(t.to_string()));
                }
                r.tag = Some(t.to_string());
            }
            None => {}
        }
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// A copy with the given tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// A copy with the given digest and no tag.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// Short form as docker prints it: `busybox:latest`, `myreg:5000/a/b:t`, `x@sha256:..`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The short repository name without tag or digest: `busybox`, `user/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The full name: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The full normalised string: `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        let mut s = self.name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// docker/distribution's `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.find('/') {
        Some(i) => {
            let first = &name[..i];
            if !first.contains(['.', ':']) && first != "localhost" && first.to_lowercase() == first
            {
                (DEFAULT_DOMAIN.to_string(), name.to_string())
            } else {
                (first.to_string(), name[i + 1..].to_string())
            }
        }
        None => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    if !alnum(b[0]) {
        return false;
    }
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run: one '.', one '_', two '_', or any number of '-'
        let start = i;
        if b[i] == b'.' {
            i += 1;
        } else if b[i] == b'_' {
            i += 1;
            if i < b.len() && b[i] == b'_' {
                i += 1;
            }
        } else if b[i] == b'-' {
            while i < b.len() && b[i] == b'-' {
                i += 1;
            }
        } else {
            return false;
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

fn valid_path(p: &str) -> bool {
    !p.is_empty() && p.split('/').all(valid_path_component)
}

/// `domain-component(.domain-component)*(:port)?` or a bracketed IPv6 address.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return false;
        };
        let ip = &rest[..end];
        if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        let after = &rest[end + 1..];
        (None, after.strip_prefix(':').map(Some).unwrap_or(Some("")))
    } else {
        match d.rfind(':') {
            Some(i) => (Some(&d[..i]), Some(&d[i + 1..])),
            None => (Some(d), None),
        }
    };
    if let Some(h) = host {
        let ok = !h.is_empty()
            && h.split('.').all(|c| {
                let b = c.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
            });
        if !ok {
            return false;
        }
    }
    match port {
        Some("") => host.is_none(),
        Some(p) => p.bytes().all(|b| b.is_ascii_digit()),
        None => true,
    }
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// `algorithm:hex`; sha256 must have 64 lower-case hex characters.
fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let alg_ok = !alg.is_empty()
        && alg.as_bytes()[0].is_ascii_alphabetic()
        && alg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.'));
    if !alg_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    alg != "sha256" || is_hex64(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalisation_table() {
        // (input, domain, path, tag, digest, familiar)
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
        );
        let cases: &[Case<'_>] = &[
            (
                "busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
                None,
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io",
                "library/busybox",
                Some("1.36"),
                None,
                "busybox:1.36",
            ),
            (
                "library/busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
                None,
                "busybox:latest",
            ),
            (
                "docker.io/library/busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
                None,
                "busybox:latest",
            ),
            (
                "index.docker.io/busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
                None,
                "busybox:latest",
            ),
            (
                "user/app:v1",
                "docker.io",
                "user/app",
                Some("v1"),
                None,
                "user/app:v1",
            ),
            (
                "docker.io/user/app",
                "docker.io",
                "user/app",
                Some("latest"),
                None,
                "user/app:latest",
            ),
            (
                "myreg:5000/a/b:t",
                "myreg:5000",
                "a/b",
                Some("t"),
                None,
                "myreg:5000/a/b:t",
            ),
            (
                "localhost/foo",
                "localhost",
                "foo",
                Some("latest"),
                None,
                "localhost/foo:latest",
            ),
            (
                "localhost:5000/foo:x",
                "localhost:5000",
                "foo",
                Some("x"),
                None,
                "localhost:5000/foo:x",
            ),
            (
                "example.com/a/b/c",
                "example.com",
                "a/b/c",
                Some("latest"),
                None,
                "example.com/a/b/c:latest",
            ),
            (
                "[::1]:5000/foo",
                "[::1]:5000",
                "foo",
                Some("latest"),
                None,
                "[::1]:5000/foo:latest",
            ),
            (
                "a.b-c__d---e",
                "docker.io",
                "library/a.b-c__d---e",
                Some("latest"),
                None,
                "a.b-c__d---e:latest",
            ),
        ];
        for (input, domain, path, tag, digest, familiar) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.domain(), *domain, "{input}");
            assert_eq!(r.path(), *path, "{input}");
            assert_eq!(r.tag(), *tag, "{input}");
            assert_eq!(r.digest(), *digest, "{input}");
            assert_eq!(r.familiar(), *familiar, "{input}");
            assert_eq!(r.to_string(), *familiar, "{input}");
        }
    }

    #[test]
    fn digests() {
        let r = Reference::parse(&format!("x@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.familiar(), format!("x@{D}"));
        assert_eq!(r.familiar_name(), "x");
        let r = Reference::parse(&format!("x:t@{D}")).unwrap();
        assert_eq!(r.tag(), Some("t"));
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.full(), format!("docker.io/library/x:t@{D}"));
        assert!(Reference::parse("x@sha256:abc").is_err());
    }

    #[test]
    fn rejects_upper_case_with_dockers_message() {
        let e = Reference::parse("Busybox").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        // upper case in the first component makes it a domain, then the path is checked
        let e = Reference::parse("Foo/Bar").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference format: repository name (Bar) must be lowercase"
        );
        // upper-case domain is fine
        let r = Reference::parse("Example.com/foo").unwrap();
        assert_eq!(r.domain(), "Example.com");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            ":",
            "a:",
            "a/",
            "/a",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "a:b:c",
            "a b",
            "a@",
            "a:-tag",
            "UPPER:Tag/x",
            "a:t@sha256:zz",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            Reference::parse("a b").unwrap_err().to_string(),
            "invalid reference format"
        );
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(
            Reference::parse(hex),
            Err(ReferenceError::HexName(_))
        ));
        let long = "a".repeat(300);
        assert_eq!(Reference::parse(&long), Err(ReferenceError::NameTooLong));
    }

    #[test]
    fn parse_with_tag_variants() {
        let r = Reference::parse_with_tag("busybox", Some("1.0")).unwrap();
        assert_eq!(r.familiar(), "busybox:1.0");
        let r = Reference::parse_with_tag("busybox", None).unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        let r = Reference::parse_with_tag("busybox", Some("")).unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        let r = Reference::parse_with_tag("busybox", Some(D)).unwrap();
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.tag(), None);
        assert!(Reference::parse_with_tag("busybox", Some("bad tag")).is_err());
        let r = Reference::parse_named("busybox").unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.familiar(), "busybox");
    }
}
