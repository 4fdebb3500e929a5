//! Engine errors and their kinds.
//!
//! Every failure the engine reports carries an [`ErrorKind`]; berth-api maps kinds to HTTP
//! statuses in exactly one place. Messages are what Docker says where scripts depend on the
//! wording ("No such container: x", "Conflict. The container name ...").

use thiserror::Error;

/// The category of a failure, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A parameter or body was wrong (HTTP 400).
    InvalidArgument,
    /// The object does not exist (HTTP 404).
    NotFound,
    /// The object's state forbids the operation (HTTP 409).
    Conflict,
    /// Nothing to do: already started, already stopped (HTTP 304).
    NotModified,
    /// Not supported by this engine or configuration (HTTP 501/503).
    Unavailable,
    /// Forbidden by policy (HTTP 403).
    Forbidden,
    /// A real failure inside the engine or the system (HTTP 500).
    Internal,
}

#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotModified(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Internal(String),
    #[error("metadata store: {0}")]
    Store(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    #[error(transparent)]
    Volume(#[from] berth_volume::Error),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::NotModified(_) => ErrorKind::NotModified,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Internal(_) | Error::Store(_) | Error::Io { .. } => ErrorKind::Internal,
            Error::Image(e) => match e.kind() {
                berth_image::ErrorKind::NotFound => ErrorKind::NotFound,
                berth_image::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                berth_image::ErrorKind::Conflict => ErrorKind::Conflict,
                _ => ErrorKind::Internal,
            },
            Error::Volume(e) => match e.kind() {
                berth_volume::ErrorKind::NotFound => ErrorKind::NotFound,
                berth_volume::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                berth_volume::ErrorKind::Conflict => ErrorKind::Conflict,
                berth_volume::ErrorKind::Internal => ErrorKind::Internal,
            },
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn no_such_container(name: &str) -> Self {
        Error::NotFound(format!("No such container: {name}"))
    }
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Error::Store(e.to_string())
    }
}

macro_rules! store_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self { Error::Store(e.to_string()) }
        }
    )*};
}
store_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

pub type Result<T, E = Error> = std::result::Result<T, E>;
