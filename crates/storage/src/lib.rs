//! The storage seam: a narrow key-value interface ([`KvStore`]) with two real implementations,
//! SQLite (`rusqlite`, WAL journal) and RocksDB, plus the module that owns every on-disk name
//! ([`layout`]).
//!
//! Everything that must survive a restart goes through a [`KvStore`]. An atomic, durable batch
//! commit is this project's write-ahead log: when [`KvStore::write`] returns with `sync`, the
//! batch survives `kill -9` and power loss. This crate knows bytes only; it must never
//! interpret points, vectors or configs.

mod backend;
pub mod disk;
mod error;
pub mod faulty;
pub mod layout;
mod rocks;
mod sqlite;

pub use backend::{open_store, BackendKind, BatchOp, KvReadView, KvStore, ScanControl, Table, WriteBatch};
pub use error::{Resource, StorageError};
pub use layout::{StorageLayout, StorageMarker, FORMAT_VERSION};

#[cfg(test)]
mod conformance;
