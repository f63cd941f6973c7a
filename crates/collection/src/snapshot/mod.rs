//! Snapshots: one file holding everything of a collection (config, points, vectors, payloads,
//! indexes), or of a whole storage, independent of the storage backend.
//!
//! * [`format`]: the archive (a versioned tar: `manifest.json`, data files of framed
//!   `(table, key, value)` records, `checksums.json`), written and read in one streaming pass.
//!   docs/snapshot-format.md describes it byte by byte.
//! * [`create`]: a consistent point-in-time snapshot of a live collection (the shards' commit
//!   gates are held only while one read view per shard is opened; searches never wait).
//! * [`restore`]: streams an archive into fresh shard databases of the server's backend in a
//!   new collection directory; the registry then switches the catalog entry atomically
//!   (`Registry::restore_collection`).
//! * [`files`]: snapshot files under the snapshots path: names, listing, deletion, which local
//!   paths a restore may read.
//! * [`full`]: full-storage snapshots (every collection plus aliases).
//! * [`offline`]: the same on a storage directory with the server stopped (the CLI).

pub mod create;
pub mod files;
pub mod format;
pub mod full;
pub mod offline;
pub mod restore;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use parking_lot::Mutex;
use qd_storage::{BackendKind, KvReadView, KvStore, ScanControl, StorageError, Table, WriteBatch};

pub use create::{snapshot_collection, snapshot_shard, snapshot_shard_fenced, write_collection, CollectionSource};
pub use files::{SnapshotDescription, SnapshotDir};
pub use format::FORMAT_VERSION;
pub use restore::{verify_collection, ArchiveReport, RestoreOptions, Restored};

/// Progress of a long operation: bytes written or read so far, of `total` when known.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub bytes: u64,
    pub total: Option<u64>,
    pub records: u64,
}

/// A callback receiving [`Progress`] now and then (about every data file).
pub type ProgressFn<'a> = &'a mut dyn FnMut(Progress);

/// A no-op progress callback.
pub fn no_progress(_: Progress) {}

/// Wrap a shard's store so that every write holds `gate` (see [`crate::shard::SnapshotSource`]).
pub fn gated_store(inner: Arc<dyn KvStore>, gate: Arc<Mutex<()>>) -> Arc<dyn KvStore> {
    Arc::new(GatedStore { inner, gate })
}

struct GatedStore {
    inner: Arc<dyn KvStore>,
    gate: Arc<Mutex<()>>,
}

impl KvStore for GatedStore {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(table, key)
    }
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        let _g = self.gate.lock();
        self.inner.write(batch, sync)
    }
    fn write_bulk(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let _g = self.gate.lock();
        self.inner.write_bulk(batch)
    }
    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        start: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> ScanControl,
    ) -> Result<(), StorageError> {
        self.inner.scan(table, prefix, start, visit)
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
    fn read_view(&self) -> Result<Box<dyn KvReadView + '_>, StorageError> {
        self.inner.read_view()
    }
    fn disk_usage_bytes(&self) -> u64 {
        self.inner.disk_usage_bytes()
    }
}

/// Time as snapshot names carry it (UTC): `2024-03-04-12-00-00`.
pub fn name_timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d-%H-%M-%S").to_string()
}

/// Time as `creation_time` shows it (UTC, like Qdrant): `2024-03-04T12:00:00`.
pub fn creation_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}
