use qd_core::ValidationError;
use qd_storage::StorageError;
use thiserror::Error;

/// Errors of the collection layer. The server maps each variant to one HTTP status in one place.
#[derive(Debug, Error)]
pub enum CollectionError {
    /// Client input that cannot be applied (HTTP 400).
    #[error("Bad request: {0}")]
    BadRequest(String),
    /// A field out of its allowed range (HTTP 422, Qdrant's validation wording).
    #[error("Validation error in JSON body: [{0}]")]
    Invalid(String),
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
    /// A shard's batch of operations could not be written; nothing of it was applied. When the
    /// cause is a full disk the shard takes writes again as soon as space is freed.
    #[error("Service internal error: {source} (shard {shard}: the operation was not written)")]
    CommitFailed {
        shard: u32,
        #[source]
        source: StorageError,
    },
    /// A shard that stopped taking writes after a commit left the disk's state unknown (a
    /// panic, an I/O error such as a failed fsync): a restart reloads it from disk.
    #[error(
        "Service internal error: shard {shard} stopped taking writes after {reason}; restart the server to reload it"
    )]
    ShardStopped { shard: u32, reason: String },
    /// Refused before writing: the disk holding the data has less free space than a write
    /// needs (Qdrant's wording; searches keep working).
    #[error(
        "Service internal error: No space left on device: {free} bytes free under {path}, {purpose} at least {needed}; \
         free disk space and retry"
    )]
    NoSpace { path: std::path::PathBuf, free: u64, needed: u64, purpose: &'static str },
    /// A persisted segment index that cannot be read back (it is rebuilt from the points).
    #[error("Corrupt data: segment {segment:x} {part}: {source}")]
    IndexDecode {
        segment: u64,
        part: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored point record or shard value that fails this project's own format checks.
    #[error("Corrupt data: {0}")]
    Corrupt(String),
    /// A bug met while serving (a panic caught in a worker): HTTP 500, the server keeps running.
    #[error("Service internal error: {0}")]
    Internal(String),
    /// Strict mode's `read_rate_limit` / `write_rate_limit` ran out (HTTP 429, with when to retry).
    #[error("Rate limiting exceeded: {message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    /// A shard worker is gone (server shutting down).
    #[error("Service is shutting down")]
    ShuttingDown,
}

impl From<ValidationError> for CollectionError {
    fn from(e: ValidationError) -> Self {
        if e.rule {
            CollectionError::Invalid(e.message)
        } else {
            CollectionError::BadRequest(e.message)
        }
    }
}

impl CollectionError {
    /// The resource whose lack caused this error (a full disk), when one did: the same call
    /// can succeed once it is freed.
    pub fn exhausted(&self) -> Option<qd_storage::Resource> {
        match self {
            CollectionError::NoSpace { .. } => Some(qd_storage::Resource::Disk),
            CollectionError::Storage(e) | CollectionError::CommitFailed { source: e, .. } => e.exhausted(),
            _ => None,
        }
    }
}

pub type Result<T, E = CollectionError> = std::result::Result<T, E>;

/// [`CollectionError::NoSpace`] when the filesystem holding `path` has less than `needed`
/// bytes free (an unreadable figure does not refuse: the write itself will tell). `purpose`
/// completes the message: "writes need", "the snapshot needs about".
pub fn ensure_free_space(path: &std::path::Path, needed: u64, purpose: &'static str) -> Result<()> {
    match qd_storage::disk::free_bytes_near(path) {
        Some(free) if free < needed => {
            Err(CollectionError::NoSpace { path: path.to_path_buf(), free, needed, purpose })
        }
        _ => Ok(()),
    }
}

/// The message of a caught panic (`&str` or `String` payloads; others are named as such).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (None, Some(s)) => s.clone(),
        _ => "a panic without a message".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read_from_both_payload_kinds() {
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 1)).expect_err("panicked");
        assert_eq!(panic_message(&*caught), "boom 1");
        let caught = std::panic::catch_unwind(|| panic!("static")).expect_err("panicked");
        assert_eq!(panic_message(&*caught), "static");
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).expect_err("panicked");
        assert_eq!(panic_message(&*caught), "a panic without a message");
    }
}
