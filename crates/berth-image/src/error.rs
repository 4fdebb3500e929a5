//! The crate-wide error type and its coarse kinds.
//!
//! Every module has its own error enum; they all convert into [`Error`], whose
//! [`ErrorKind`] is what the engine maps to an HTTP status. The mapping from a module's
//! error to a kind lives here, in one place, so the wire status of a failure is decided
//! once.

use std::path::PathBuf;

/// Coarse class of a failure, for the engine's status mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The named object does not exist (404).
    NotFound,
    /// The caller sent something malformed (400).
    InvalidArgument,
    /// The request conflicts with the current state (409).
    Conflict,
    /// Anything else (500).
    Internal,
}

/// Errors returned by the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing image, tag or layer; the message is user-facing ("No such image: x").
    #[error("{0}")]
    NotFound(String),
    /// Malformed input from the caller.
    #[error("{0}")]
    InvalidArgument(String),
    /// The operation conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// Stored data does not match what it claims to be.
    #[error("{0}")]
    Corrupt(String),
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The metadata database failed.
    #[error("image metadata: {0}")]
    Db(String),
    /// A reference could not be parsed.
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),
    /// A `--change` instruction was invalid.
    #[error(transparent)]
    Change(#[from] crate::changes::ChangeError),
    /// A layer could not be applied.
    #[error(transparent)]
    Apply(#[from] crate::apply::ApplyError),
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] crate::content::ContentError),
    /// A container layer could not be turned into a tar.
    #[error(transparent)]
    Diff(#[from] crate::diff::DiffError),
    /// The snapshotter failed.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// An archive given to `load` is malformed.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
}

impl Error {
    /// The coarse kind the engine maps to a status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::InvalidArgument(_) | Error::Reference(_) | Error::Change(_) => {
                ErrorKind::InvalidArgument
            }
            Error::Archive(crate::archive::ArchiveError::Write(_)) => ErrorKind::Internal,
            Error::Archive(_) => ErrorKind::InvalidArgument,
            Error::Apply(e) if e.is_bad_input() => ErrorKind::InvalidArgument,
            Error::Content(crate::content::ContentError::NotFound(_)) => ErrorKind::NotFound,
            Error::Content(crate::content::ContentError::DigestMismatch { .. }) => {
                ErrorKind::InvalidArgument
            }
            Error::Snapshot(crate::snapshot::SnapshotError::NotFound(_)) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
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
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_cross_threads() {
        send_sync::<Error>();
        send_sync::<crate::ImageStore>();
        send_sync::<crate::Image>();
        send_sync::<crate::RwLayer>();
    }

    #[test]
    fn kinds() {
        assert_eq!(Error::NotFound("x".into()).kind(), ErrorKind::NotFound);
        assert_eq!(Error::Conflict("x".into()).kind(), ErrorKind::Conflict);
        assert_eq!(Error::Corrupt("x".into()).kind(), ErrorKind::Internal);
        let e: Error = crate::reference::ReferenceError::InvalidFormat.into();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e: Error = crate::apply::ApplyError::Unsafe {
            entry: "../x".into(),
            reason: "r",
        }
        .into();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("../x"));
    }
}
