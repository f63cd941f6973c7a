use std::path::PathBuf;

use thiserror::Error;

/// Errors of the storage layer. Every variant says which file or key space it concerns.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("RocksDB error: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("unknown storage backend {0:?}: expected \"sqlite\" or \"rocksdb\"")]
    UnknownBackend(String),
    #[error(
        "storage at {path} was created with the {found} backend but the server was started with --storage {requested}; \
         start with --storage {found}, or move the data with a snapshot"
    )]
    BackendMismatch { path: PathBuf, found: BackendKind, requested: BackendKind },
    #[error("storage at {path} has format version {found}, this server reads version {supported}")]
    UnsupportedFormat { path: PathBuf, found: u32, supported: u32 },
    #[error("corrupt data in {what}: {detail}")]
    Corrupt { what: String, detail: String },
}

use crate::backend::BackendKind;

impl StorageError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io { path: path.into(), source }
    }
}
