use qd_core::ValidationError;
use qd_storage::StorageError;
use thiserror::Error;

/// Errors of the collection layer. The server maps each variant to one HTTP status in one place.
#[derive(Debug, Error)]
pub enum CollectionError {
    /// Client input that cannot be applied (HTTP 400).
    #[error("Bad request: {0}")]
    BadRequest(String),
    /// A collection, alias, point or snapshot that does not exist (HTTP 404).
    #[error("Not found: {0}")]
    NotFound(String),
    /// Creating something that already exists (HTTP 409).
    #[error("{0}")]
    AlreadyExists(String),
    /// The collection is still loading or is damaged (HTTP 503 while loading, 500 if broken).
    #[error("Service unavailable: {0}")]
    Unavailable(String),
    #[error("Storage error: {0}")]
    Storage(#[from] StorageError),
    /// On-disk data that cannot be decoded.
    #[error("Corrupt data: {0}")]
    Corrupt(String),
    /// A shard worker is gone (server shutting down).
    #[error("Service is shutting down")]
    ShuttingDown,
}

impl From<ValidationError> for CollectionError {
    fn from(e: ValidationError) -> Self {
        CollectionError::BadRequest(e.message)
    }
}

pub type Result<T, E = CollectionError> = std::result::Result<T, E>;
