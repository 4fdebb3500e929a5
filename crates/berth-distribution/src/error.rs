//! The crate's error type and how registry failures read to a user.
//!
//! Registry errors keep the registry's own error code (`MANIFEST_UNKNOWN`, `DENIED`, ...)
//! so callers can phrase them as docker does (moby's `translatePullError`): the engine
//! maps [`Error::kind`] to a status, and [`Error::pull_message`] gives docker's wording
//! for a failed pull.

use berth_image::Reference;

/// Coarse class of a failure, for the engine's status mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The repository, tag or manifest does not exist, or access was denied (404).
    NotFound,
    /// The registry refused the credentials (401).
    Unauthorized,
    /// The caller asked for something malformed (400).
    InvalidArgument,
    /// Network, TLS, protocol or storage failure (500).
    Internal,
}

/// Registry client failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request never got an HTTP answer (DNS, connect, TLS, reset).
    #[error("{method} {url}: {source}")]
    Transport {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an error status; `code` is its error code when it sent
    /// the OCI error body.
    #[error("{}", registry_text(.code, .message, *.status))]
    Registry {
        url: String,
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// Credentials were refused (login, token endpoint).
    #[error("{0}")]
    Unauthorized(String),
    /// A reply did not follow the protocol (bad JSON, missing Location, wrong digest).
    #[error("{0}")]
    Protocol(String),
    /// No entry of an index matches the wanted platform.
    #[error("no matching manifest for {0} in the manifest list entries")]
    NoMatchingPlatform(String),
    /// The manifest has a media type berth cannot pull (schema 1, artifacts).
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// A caller-supplied value was malformed (platform, reference, server address).
    #[error("{0}")]
    InvalidArgument(String),
    /// A blob download broke off and the retries did not get it further; the bytes that
    /// arrived are kept in the content store's ingest area for the next pull to resume.
    #[error("download of {digest} stopped at {have} of {size} bytes, kept to resume on the next pull: {source}")]
    Interrupted {
        digest: String,
        have: u64,
        size: u64,
        #[source]
        source: Box<Error>,
    },
    /// Local image storage failed.
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    /// Local content store failed (digest mismatch included).
    #[error(transparent)]
    Content(#[from] berth_image::content::ContentError),
    /// Reading a local file (a layer being pushed) failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn registry_text(code: &Option<String>, message: &str, status: u16) -> String {
    match code {
        // errcode.Error's format in docker/distribution: "manifest unknown: <message>"
        Some(c) => format!("{}: {message}", c.to_lowercase().replace('_', " ")),
        None if message.is_empty() => format!("unexpected status {status}"),
        None => format!("unexpected status {status}: {message}"),
    }
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The registry's error code, when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Registry { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Registry { status, code, .. } => match code.as_deref() {
                Some("MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "DENIED" | "UNAUTHORIZED") => {
                    ErrorKind::NotFound
                }
                Some("BLOB_UNKNOWN") => ErrorKind::NotFound,
                _ if *status == 404 || *status == 401 || *status == 403 => ErrorKind::NotFound,
                _ => ErrorKind::Internal,
            },
            Error::Unauthorized(_) => ErrorKind::Unauthorized,
            Error::NoMatchingPlatform(_) => ErrorKind::NotFound,
            Error::InvalidArgument(_) | Error::UnsupportedMediaType(_) => {
                ErrorKind::InvalidArgument
            }
            Error::Image(e) => match e.kind() {
                berth_image::ErrorKind::NotFound => ErrorKind::NotFound,
                berth_image::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            _ => ErrorKind::Internal,
        }
    }

    /// Docker's wording for a pull of `r` that failed with this error.
    pub fn pull_message(&self, r: &Reference) -> String {
        let status = match self {
            Error::Registry { status, .. } => *status,
            _ => 0,
        };
        match (self.code(), status) {
            (Some("DENIED" | "UNAUTHORIZED"), _) | (None, 401 | 403) => format!(
                "pull access denied for {}, repository does not exist or may require 'docker login': {self}",
                r.familiar_name()
            ),
            (Some("MANIFEST_UNKNOWN"), _) | (None, 404) => {
                format!("manifest for {} not found: {self}", r.familiar())
            }
            (Some("NAME_UNKNOWN"), _) => {
                format!("repository {} not found: {self}", r.familiar_name())
            }
            _ => self.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(status: u16, code: Option<&str>, message: &str) -> Error {
        Error::Registry {
            url: "http://r/v2/x/manifests/1".into(),
            status,
            code: code.map(str::to_string),
            message: message.into(),
        }
    }

    #[test]
    fn docker_wording() {
        let r = Reference::parse("127.0.0.1:5000/a/b:1").expect("reference");
        assert_eq!(
            reg(404, Some("MANIFEST_UNKNOWN"), "manifest unknown").pull_message(&r),
            "manifest for 127.0.0.1:5000/a/b:1 not found: manifest unknown: manifest unknown"
        );
        assert_eq!(
            reg(401, Some("UNAUTHORIZED"), "authentication required").pull_message(&r),
            "pull access denied for 127.0.0.1:5000/a/b, repository does not exist or may require 'docker login': unauthorized: authentication required"
        );
        assert_eq!(
            reg(404, Some("NAME_UNKNOWN"), "repository name not known to registry")
                .pull_message(&r),
            "repository 127.0.0.1:5000/a/b not found: name unknown: repository name not known to registry"
        );
        assert_eq!(
            reg(404, Some("MANIFEST_UNKNOWN"), "x").kind(),
            ErrorKind::NotFound
        );
        assert_eq!(reg(500, None, "").kind(), ErrorKind::Internal);
        assert_eq!(reg(500, None, "").to_string(), "unexpected status 500");
    }
}
