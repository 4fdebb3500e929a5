//! The crate-wide error type and its coarse kinds.
//!
//! The engine maps [`ErrorKind`] to an HTTP status, so the kind of every failure is decided
//! here, once. User-facing messages (not found, in use, invalid name) carry dockerd's exact
//! wording because clients match on them.

use crate::spec::SpecError;
use std::path::PathBuf;

/// Coarse class of a failure, for the engine's status mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The named volume does not exist (404).
    NotFound,
    /// The caller sent something malformed (400).
    InvalidArgument,
    /// The request conflicts with the current state, e.g. the volume is in use (409).
    Conflict,
    /// Anything else (500).
    Internal,
}

/// Errors of the volume store, the local driver and copy-up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing volume or driver; the message is user-facing ("get x: no such volume").
    #[error("{0}")]
    NotFound(String),
    /// Malformed input from the caller ("create x: invalid option: \"foo\"").
    #[error("{0}")]
    InvalidArgument(String),
    /// The operation conflicts with existing state (`remove x: volume is in use - [id]`).
    #[error("{0}")]
    Conflict(String),
    /// A mount specification or volume name was refused.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Mounting or unmounting a volume failed.
    #[error("{0}")]
    Mount(String),
    /// The metadata database failed.
    #[error("volume metadata: {0}")]
    Db(String),
    /// A stored record could not be decoded or encoded.
    #[error("volume metadata record {name}: {reason}")]
    Record { name: String, reason: String },
}

impl Error {
    /// The coarse kind the engine maps to a status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::InvalidArgument(_) | Error::Spec(_) => ErrorKind::InvalidArgument,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Io { .. } | Error::Mount(_) | Error::Db(_) | Error::Record { .. } => {
                ErrorKind::Internal
            }
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Error::Db(e.to_string())
    }
}

macro_rules! db_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Db(e.to_string())
            }
        }
    )*};
}
db_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
