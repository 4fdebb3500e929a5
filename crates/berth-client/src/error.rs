//! The one error type of the client: transport failures, and daemon answers that were not
//! 2xx. The latter carry the HTTP status and the daemon's `message` so that the CLI can print
//! docker's `Error response from daemon: MESSAGE` and choose exit codes by status.

/// Everything that can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `-H` / `DOCKER_HOST` value could not be understood.
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },
    /// The socket or TCP endpoint could not be reached. The text is docker's own (capital
    /// letter and all) because scripts and users match on it; the cause is in `source`.
    #[error("Cannot connect to the berth daemon at {host}. Is the berth daemon running?")]
    Connect {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange itself failed (connection reset, malformed response).
    #[error("request {method} {path} failed: {source}")]
    Http {
        method: String,
        path: String,
        #[source]
        source: hyper::Error,
    },
    /// The daemon answered with a non-2xx status; `message` is its JSON `message` field
    /// (or the raw body when it was not JSON).
    #[error("{message}")]
    Api { status: u16, message: String },
    /// A body that should have been JSON was not.
    #[error("invalid json in response to {path}: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// A hijack request was answered without switching protocols.
    #[error("unable to upgrade {path} to a raw stream, received status {status}")]
    NoUpgrade { path: String, status: u16 },
    /// A request could not be built (bad header value, bad URI).
    #[error("invalid request {path}: {reason}")]
    Request { path: String, reason: String },
    /// Reading or writing a raw (hijacked) stream failed.
    #[error("stream i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The HTTP status when the daemon answered with an error, else `None`.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a 404 answer (no such container, image, network, ...).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, Error>;
