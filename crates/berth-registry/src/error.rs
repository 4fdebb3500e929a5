//! Registry errors and their wire form: the spec's error codes and HTTP statuses, mapped in
//! exactly one place ([`RegistryError::code`], [`RegistryError::status`]).
//!
//! The body is `{"errors":[{"code":"BLOB_UNKNOWN","message":"...","detail":...}]}`.
//! Out-of-order chunks use `BLOB_UPLOAD_INVALID` with 416 as distribution does; storage
//! failures are 500 with the non-spec code `UNKNOWN`, which distribution also emits.

use http::StatusCode;
use serde_json::{json, Value};

use crate::digest::Digest;
use crate::storage::StorageError;

/// Every way a registry request can fail.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(Digest),
    #[error("blob upload unknown to registry: {0}")]
    UploadUnknown(String),
    #[error("blob upload invalid: {0}")]
    UploadInvalid(String),
    #[error(
        "chunk out of order for upload {id}: upload is at offset {size}, chunk starts at {got}"
    )]
    RangeInvalid { id: String, size: u64, got: u64 },
    #[error("requested range not satisfiable for blob of {size} bytes: {range}")]
    RangeNotSatisfiable { range: String, size: u64 },
    #[error(
        "provided digest did not match uploaded content: expected {expected}, computed {actual}"
    )]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("invalid digest {0:?}")]
    DigestInvalid(String),
    #[error("manifest references a blob unknown to the repository: {0}")]
    ManifestBlobUnknown(Digest),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest of {size} bytes exceeds the limit of {limit} bytes")]
    ManifestTooLarge { size: u64, limit: u64 },
    #[error("manifest unknown to registry: {0}")]
    ManifestUnknown(String),
    #[error("invalid repository name {0:?}")]
    NameInvalid(String),
    #[error("invalid tag {0:?}")]
    TagInvalid(String),
    #[error("repository name not known to registry: {0}")]
    NameUnknown(String),
    #[error("invalid query parameter {name}={value:?}")]
    BadParameter { name: String, value: String },
    #[error("authentication required")]
    Unauthorized {
        /// The `WWW-Authenticate` challenge to send.
        challenge: String,
    },
    #[error("requested access to the resource is denied")]
    Denied,
    #[error("the operation is unsupported: {0}")]
    Unsupported(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("storage failure: {0}")]
    Storage(StorageError),
}

impl From<StorageError> for RegistryError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::BlobNotFound(d) => RegistryError::BlobUnknown(d),
            StorageError::UploadNotFound(id) => RegistryError::UploadUnknown(id),
            StorageError::RangeMismatch { id, size, got } => {
                RegistryError::RangeInvalid { id, size, got }
            }
            StorageError::DigestMismatch { expected, actual } => {
                RegistryError::DigestMismatch { expected, actual }
            }
            StorageError::Body { id, message } => {
                RegistryError::UploadInvalid(format!("upload {id}: {message}"))
            }
            other => RegistryError::Storage(other),
        }
    }
}

impl RegistryError {
    /// The spec's error code.
    pub fn code(&self) -> &'static str {
        use RegistryError::*;
        match self {
            BlobUnknown(_) => "BLOB_UNKNOWN",
            UploadUnknown(_) => "BLOB_UPLOAD_UNKNOWN",
            UploadInvalid(_) | RangeInvalid { .. } => "BLOB_UPLOAD_INVALID",
            RangeNotSatisfiable { .. } => "BLOB_UNKNOWN",
            DigestMismatch { .. } | DigestInvalid(_) => "DIGEST_INVALID",
            ManifestBlobUnknown(_) => "MANIFEST_BLOB_UNKNOWN",
            ManifestInvalid(_) | ManifestTooLarge { .. } => "MANIFEST_INVALID",
            ManifestUnknown(_) => "MANIFEST_UNKNOWN",
            NameInvalid(_) => "NAME_INVALID",
            TagInvalid(_) => "MANIFEST_INVALID",
            NameUnknown(_) => "NAME_UNKNOWN",
            BadParameter { .. } => "UNSUPPORTED",
            Unauthorized { .. } => "UNAUTHORIZED",
            Denied => "DENIED",
            Unsupported(_) => "UNSUPPORTED",
            NotFound(_) => "NOT_FOUND",
            Storage(_) => "UNKNOWN",
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        use RegistryError::*;
        match self {
            BlobUnknown(_) | UploadUnknown(_) | ManifestUnknown(_) | NameUnknown(_)
            | NotFound(_) => StatusCode::NOT_FOUND,
            RangeInvalid { .. } | RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            UploadInvalid(_)
            | DigestMismatch { .. }
            | DigestInvalid(_)
            | ManifestBlobUnknown(_)
            | ManifestInvalid(_)
            | NameInvalid(_)
            | TagInvalid(_)
            | BadParameter { .. } => StatusCode::BAD_REQUEST,
            ManifestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Denied => StatusCode::FORBIDDEN,
            Unsupported(_) => StatusCode::METHOD_NOT_ALLOWED,
            Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Structured `detail` for the error body, where there is something useful to say.
    pub fn detail(&self) -> Value {
        use RegistryError::*;
        match self {
            BlobUnknown(d) | ManifestBlobUnknown(d) => json!({ "digest": d.to_string() }),
            DigestMismatch { expected, actual } => {
                json!({ "expected": expected.to_string(), "actual": actual.to_string() })
            }
            RangeInvalid { size, got, .. } => json!({ "offset": size, "requested": got }),
            ManifestUnknown(r) => json!({ "reference": r }),
            NameInvalid(n) | NameUnknown(n) => json!({ "name": n }),
            ManifestTooLarge { size, limit } => json!({ "size": size, "limit": limit }),
            _ => Value::Null,
        }
    }

    /// The JSON error body.
    pub fn body(&self) -> Value {
        json!({ "errors": [{
            "code": self.code(),
            "message": self.to_string(),
            "detail": self.detail(),
        }]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let d = Digest::sha256_of(b"");
        let e = RegistryError::BlobUnknown(d.clone());
        assert_eq!(
            (e.code(), e.status()),
            ("BLOB_UNKNOWN", StatusCode::NOT_FOUND)
        );
        assert_eq!(e.body()["errors"][0]["detail"]["digest"], d.to_string());
        let e = RegistryError::RangeInvalid {
            id: "x".into(),
            size: 1,
            got: 2,
        };
        assert_eq!(e.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(
            RegistryError::Unsupported("read-only".into()).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let e: RegistryError = StorageError::UploadNotFound("u".into()).into();
        assert_eq!(e.code(), "BLOB_UPLOAD_UNKNOWN");
    }
}
