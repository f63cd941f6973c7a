//! The [`KvStore`] trait every backend implements, and the tables a database holds.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::StorageError;

/// Which engine stores the bytes. Chosen at server start with `--storage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Sqlite,
    Rocksdb,
}

impl BackendKind {
    pub const ALL: [BackendKind; 2] = [BackendKind::Sqlite, BackendKind::Rocksdb];

    pub fn name(&self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Rocksdb => "rocksdb",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sqlite" => Ok(BackendKind::Sqlite),
            "rocksdb" | "rocks" => Ok(BackendKind::Rocksdb),
            _ => Err(StorageError::UnknownBackend(s.to_string())),
        }
    }
}

/// Logical key spaces inside one database (a SQLite table or a RocksDB column family each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// Small named values: configs, counters, the last applied operation number.
    Meta,
    /// One record per point, keyed by the encoded point id.
    Points,
    /// Persisted index data (segment descriptors, HNSW graphs in chunks).
    Index,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Meta, Table::Points, Table::Index];

    pub fn name(&self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Points => "points",
            Table::Index => "index",
        }
    }
}

/// One change inside a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    Put {
        table: Table,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        table: Table,
        key: Vec<u8>,
    },
    /// Delete every key that starts with `prefix`.
    DeletePrefix {
        table: Table,
        prefix: Vec<u8>,
    },
}

/// A set of changes applied atomically: after a crash either all of them are visible or none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<BatchOp>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&mut self, table: Table, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Put { table, key: key.into(), value: value.into() });
    }
    pub fn delete(&mut self, table: Table, key: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Delete { table, key: key.into() });
    }
    pub fn delete_prefix(&mut self, table: Table, prefix: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::DeletePrefix { table, prefix: prefix.into() });
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn extend(&mut self, other: WriteBatch) {
        self.ops.extend(other.ops);
    }
}

/// Returned by a scan callback: keep going or stop early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanControl {
    Continue,
    Stop,
}

/// A durable, ordered key-value store: the one seam between the engine and the disk.
///
/// Implementations must keep keys in byte-wise order within a table, apply a [`WriteBatch`]
/// atomically, and make a batch written with `sync = true` durable before returning.
pub trait KvStore: Send + Sync {
    fn kind(&self) -> BackendKind;
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Apply the batch atomically; with `sync`, durable (fsync'd) on return.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError>;
    /// Visit `(key, value)` pairs with keys starting with `prefix`, in key order, starting at
    /// `start` (inclusive) when given.
    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        start: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> ScanControl,
    ) -> Result<(), StorageError>;
    /// Apply a batch as part of a bulk load into a database nobody reads yet (a restore):
    /// atomic, but it may skip the write-ahead log, so it is durable only after [`flush`].
    /// Defaults to an unsynced [`write`].
    ///
    /// [`flush`]: KvStore::flush
    /// [`write`]: KvStore::write
    fn write_bulk(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.write(batch, false)
    }
    /// Push everything buffered to disk.
    fn flush(&self) -> Result<(), StorageError>;
    /// A consistent, read-only point-in-time view of every table (used by snapshots): writes
    /// committed after this returns are not visible through the view, and the view never
    /// blocks writers. Opening it is cheap (a RocksDB snapshot, or a SQLite read transaction on
    /// a second connection).
    fn read_view(&self) -> Result<Box<dyn KvReadView + '_>, StorageError>;
    /// Bytes this database occupies on disk.
    fn disk_usage_bytes(&self) -> u64;
}

/// A point-in-time view of a [`KvStore`] (see [`KvStore::read_view`]).
pub trait KvReadView: Send {
    /// Like [`KvStore::scan`], over the state at the moment the view was opened.
    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        start: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> ScanControl,
    ) -> Result<(), StorageError>;
}

/// Open (creating if missing) the database of `kind` at `path` (a file for SQLite, a directory
/// for RocksDB; see [`crate::layout`] for the names).
pub fn open_store(kind: BackendKind, path: &Path) -> Result<Arc<dyn KvStore>, StorageError> {
    match kind {
        BackendKind::Sqlite => Ok(Arc::new(crate::sqlite::SqliteStore::open(path)?)),
        BackendKind::Rocksdb => Ok(Arc::new(crate::rocks::RocksStore::open(path)?)),
    }
}

/// Where a scan begins: `start` when it lies past `prefix`, else the prefix itself.
pub(crate) fn scan_lower<'a>(prefix: &'a [u8], start: Option<&'a [u8]>) -> &'a [u8] {
    match start {
        Some(s) if s > prefix => s,
        _ => prefix,
    }
}

/// Smallest key greater than every key starting with `prefix` (None if there is none).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Recursive size of a file or directory; missing paths count 0.
pub(crate) fn path_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path).map(|rd| rd.flatten().map(|e| path_size(&e.path())).sum()).unwrap_or(0)
    } else {
        meta.len()
    }
}
