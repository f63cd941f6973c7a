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
    /// The disk is full or the process is out of file descriptors: nothing of the failed
    /// operation took effect, and the same operation can succeed once the resource is freed.
    #[error("{}: {source}", resource.message())]
    Exhausted {
        resource: Resource,
        #[source]
        source: Box<StorageError>,
    },
}

/// A resource the operating system ran out of (see [`StorageError::Exhausted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// ENOSPC, SQLITE_FULL, RocksDB's NoSpace.
    Disk,
    /// EMFILE / ENFILE.
    OpenFiles,
}

impl Resource {
    /// The wording users search for (the operating system's own).
    pub fn message(&self) -> &'static str {
        match self {
            Resource::Disk => "No space left on device",
            Resource::OpenFiles => "Too many open files",
        }
    }

    /// The resource an OS error number names, if it is one of them.
    fn from_errno(code: i32) -> Option<Resource> {
        match code {
            libc::ENOSPC | libc::EDQUOT => Some(Resource::Disk),
            libc::EMFILE | libc::ENFILE => Some(Resource::OpenFiles),
            _ => None,
        }
    }

    /// The resource a backend's error text names (RocksDB reports errno as text only).
    fn from_text(text: &str) -> Option<Resource> {
        if text.contains("No space left on device") || text.contains("NoSpace") {
            Some(Resource::Disk)
        } else if text.contains("Too many open files") {
            Some(Resource::OpenFiles)
        } else {
            None
        }
    }
}

use crate::backend::BackendKind;

impl StorageError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io { path: path.into(), source }
    }

    /// The resource this error says ran out, if any.
    pub fn exhausted(&self) -> Option<Resource> {
        match self {
            StorageError::Exhausted { resource, .. } => Some(*resource),
            StorageError::Io { source, .. } => source.raw_os_error().and_then(Resource::from_errno),
            StorageError::Sqlite(e) => match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DiskFull) => Some(Resource::Disk),
                Some(rusqlite::ErrorCode::CannotOpen) => Resource::from_text(&e.to_string()),
                _ => None,
            },
            StorageError::Rocks(e) => Resource::from_text(e.as_ref()),
            _ => None,
        }
    }

    /// This error, wrapped as [`StorageError::Exhausted`] when it says a resource ran out, so
    /// callers can tell "free space and retry" from damage.
    pub fn classified(self) -> StorageError {
        match (&self, self.exhausted()) {
            (StorageError::Exhausted { .. }, _) | (_, None) => self,
            (_, Some(resource)) => StorageError::Exhausted { resource, source: Box::new(self) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausted_resources_are_recognised_in_every_backend_error() {
        let enospc = StorageError::io("/x", std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(enospc.exhausted(), Some(Resource::Disk));
        let emfile = StorageError::io("/x", std::io::Error::from_raw_os_error(libc::EMFILE));
        assert_eq!(emfile.exhausted(), Some(Resource::OpenFiles));
        let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        assert_eq!(StorageError::Sqlite(full).exhausted(), Some(Resource::Disk));
        let other = StorageError::Corrupt { what: "x".into(), detail: "No space left on device".into() };
        assert_eq!(other.exhausted(), None, "damage is never mistaken for a full disk");
        let eacces = StorageError::io("/x", std::io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(eacces.exhausted(), None);
    }

    #[test]
    fn classified_errors_keep_their_cause_and_say_what_ran_out() {
        let e = StorageError::io("/data/x", std::io::Error::from_raw_os_error(libc::ENOSPC)).classified();
        assert!(matches!(e, StorageError::Exhausted { resource: Resource::Disk, .. }));
        assert!(e.to_string().starts_with("No space left on device: I/O error on /data/x"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
        // Classifying twice does not nest.
        let again = e.classified();
        assert!(
            matches!(&again, StorageError::Exhausted { source, .. } if !matches!(**source, StorageError::Exhausted { .. }))
        );
        let plain = StorageError::UnknownBackend("x".into()).classified();
        assert!(matches!(plain, StorageError::UnknownBackend(_)));
    }
}
