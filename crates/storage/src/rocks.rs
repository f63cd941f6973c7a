//! RocksDB backend: one database directory, one column family per [`Table`]. A synced write
//! fsyncs RocksDB's own WAL before returning.
//!
//! On a disk too full to open a database for writing, an existing database is opened read-only
//! (its logs replayed in memory, nothing written), so reads are served; the first write after
//! space is back opens it for writing and every later call goes there.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use parking_lot::Mutex;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, WriteOptions, DB};

use crate::backend::scan_lower;
use crate::backend::{
    path_size, prefix_end, BackendKind, BatchOp, KvReadView, KvStore, ScanControl, Table, WriteBatch,
};
use crate::error::StorageError;

pub struct RocksStore {
    path: PathBuf,
    /// The database as opened at start: read-write, or read-only on a full disk.
    opened: DB,
    /// Set once a read-only database has been opened again for writing.
    writable: OnceLock<DB>,
    /// Serialises attempts to open for writing.
    upgrading: Mutex<()>,
    read_only: bool,
    /// The last write that failed: cleared only by a write that succeeds and was sent to RocksDB
    /// after that failure was recorded. RocksDB's log writer then holds that error, and syncing
    /// it (`flush_wal`) trips an assertion that aborts the process in Debian's librocksdb:
    /// `flush` does not touch the database meanwhile. (Closing the database does not sync it:
    /// every write but a snapshot restore's goes through the log, and a restore flushes itself.)
    failed_write: Mutex<Option<FailedWrite>>,
    /// Numbers the recorded failures.
    failures: std::sync::atomic::AtomicU64,
    /// Writes hold it shared from their start until their outcome is recorded; `flush` holds it
    /// exclusively, so it sees every finished write's outcome and no write fails during it.
    flush_gate: parking_lot::RwLock<()>,
}

/// What `flush` says while writes fail.
#[derive(Clone)]
struct FailedWrite {
    generation: u64,
    message: String,
    resource: Option<crate::error::Resource>,
}

fn cf_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o.set_write_buffer_size(32 << 20);
    o
}

impl RocksStore {
    /// Open for writing, or (an existing database on a disk without room to open it for
    /// writing) read-only; a new database on a full disk is refused.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        match ensure_space_to_open(path) {
            Ok(()) => Ok(Self::with(path, open_writable(path)?, false)),
            Err(full) if path.join("CURRENT").exists() => Self::open_read_only(path).map_err(|_| full),
            Err(full) => Err(full),
        }
    }

    /// An existing database, read-only until the first write finds room to open it for writing.
    fn open_read_only(path: &Path) -> Result<Self, StorageError> {
        let names = Table::ALL.iter().map(|t| t.name());
        let db = DB::open_cf_for_read_only(&db_options(), path, names, false)?;
        Ok(Self::with(path, db, true))
    }

    fn with(path: &Path, opened: DB, read_only: bool) -> Self {
        RocksStore {
            path: path.to_path_buf(),
            opened,
            writable: OnceLock::new(),
            upgrading: Mutex::new(()),
            read_only,
            failed_write: Mutex::new(None),
            failures: std::sync::atomic::AtomicU64::new(0),
            flush_gate: parking_lot::RwLock::new(()),
        }
    }

    /// Whether writes still wait for room to open the database for writing.
    pub fn is_read_only(&self) -> bool {
        self.read_only && self.writable.get().is_none()
    }

    /// The instance every call uses: the writable one once there is one.
    fn db(&self) -> &DB {
        self.writable.get().unwrap_or(&self.opened)
    }

    /// Before a write: a database opened read-only is opened for writing if the disk now has
    /// room, or the write is refused as the disk being full.
    fn ensure_writable(&self) -> Result<(), StorageError> {
        if !self.is_read_only() {
            return Ok(());
        }
        let _one = self.upgrading.lock();
        if self.writable.get().is_some() {
            return Ok(());
        }
        ensure_space_to_open(&self.path)?;
        let db = open_writable(&self.path)?;
        // Only this thread sets it, under `upgrading`.
        let _ = self.writable.set(db);
        Ok(())
    }

    /// The handle of table `t` in `db`: always from the instance the call then uses (a handle of
    /// one instance must never reach the other).
    fn cf<'d>(&self, db: &'d DB, t: Table) -> Result<&'d rocksdb::ColumnFamily, StorageError> {
        db.cf_handle(t.name()).ok_or_else(|| StorageError::Corrupt {
            what: self.path.display().to_string(),
            detail: format!("column family {} is missing", t.name()),
        })
    }
}

fn db_options() -> Options {
    let mut opts = Options::default();
    opts.set_max_background_jobs(2);
    opts.set_keep_log_file_num(2);
    opts.set_max_total_wal_size(64 << 20);
    opts
}

fn open_writable(path: &Path) -> Result<DB, StorageError> {
    let mut opts = db_options();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = Table::ALL.iter().map(|t| ColumnFamilyDescriptor::new(t.name(), cf_options()));
    Ok(DB::open_cf_descriptors(&opts, path, cfs)?)
}

impl RocksStore {
    /// A batch is refused before it reaches RocksDB unless the disk has room for it twice (log
    /// and table file) beside the reserve: a log write that fails for space leaves RocksDB's log
    /// writer in an error state, and Debian's librocksdb (built with assertions) has been seen
    /// to abort the process on it while recovering by itself.
    fn ensure_room_for(&self, batch: &WriteBatch) -> Result<(), StorageError> {
        let bytes: u64 = batch
            .ops
            .iter()
            .map(|op| match op {
                BatchOp::Put { key, value, .. } => key.len() + value.len(),
                BatchOp::Delete { key, .. } => key.len(),
                BatchOp::DeletePrefix { prefix, .. } => prefix.len(),
            } as u64)
            .sum();
        let needed = bytes.saturating_mul(2).saturating_add(crate::disk::MIN_FREE_DISK_BYTES);
        ensure_free(&self.path, needed, &format!("a write of {bytes} bytes"))
    }
}

/// [`StorageError::Exhausted`] (disk) unless the filesystem holding `path` has `needed` bytes
/// free for `what` (an unreadable figure does not refuse).
fn ensure_free(path: &Path, needed: u64, what: &str) -> Result<(), StorageError> {
    match crate::disk::free_bytes_near(path) {
        Some(free) if free < needed => {
            let why = std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("{free} bytes free, {what} needs about {needed}"),
            );
            Err(StorageError::Exhausted {
                resource: crate::error::Resource::Disk,
                source: Box::new(StorageError::io(path, why)),
            })
        }
        _ => Ok(()),
    }
}

/// Opening replays the write-ahead logs into new table files and starts a new log and
/// manifest. On a full disk the distribution's RocksDB then stops the whole process on a failed
/// assertion, so a database is not opened without room for that (the caller retries later).
fn ensure_space_to_open(path: &Path) -> Result<(), StorageError> {
    let logs: u64 = std::fs::read_dir(path)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    ensure_free(path, logs.saturating_add(crate::disk::MIN_FREE_DISK_BYTES), "opening the database")
}

impl RocksStore {
    fn write_opts(&self, batch: WriteBatch, wo: &WriteOptions) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.ensure_writable()?;
        self.ensure_room_for(&batch)?;
        let _writing = self.flush_gate.read();
        let db = self.db();
        let mut wb = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                BatchOp::Put { table, key, value } => wb.put_cf(self.cf(db, *table)?, key, value),
                BatchOp::Delete { table, key } => wb.delete_cf(self.cf(db, *table)?, key),
                BatchOp::DeletePrefix { table, prefix } => {
                    let cf = self.cf(db, *table)?;
                    match prefix_end(prefix) {
                        Some(end) => wb.delete_range_cf(cf, prefix.as_slice(), end.as_slice()),
                        None => {
                            // Prefix of all 0xff bytes: no upper bound exists, delete key by key.
                            for item in db.iterator_cf(cf, IteratorMode::From(prefix, Direction::Forward)) {
                                let (k, _) = item?;
                                if !k.starts_with(prefix) {
                                    break;
                                }
                                wb.delete_cf(cf, k);
                            }
                        }
                    }
                }
            }
        }
        // The failure on record when this write is sent: only its success may clear that one.
        let seen = self.failed_write.lock().as_ref().map(|f| f.generation);
        let written = db.write_opt(wb, wo).map_err(|e| StorageError::from(e).classified());
        let mut failed = self.failed_write.lock();
        match &written {
            Err(e) => {
                let generation = self.failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                *failed = Some(FailedWrite { generation, message: e.to_string(), resource: e.exhausted() });
            }
            Ok(()) if seen.is_some() && failed.as_ref().map(|f| f.generation) == seen => *failed = None,
            Ok(()) => {}
        }
        written
    }
}

impl KvStore for RocksStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Rocksdb
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let db = self.db();
        Ok(db.get_cf(self.cf(db, table)?, key)?)
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.write_opts(batch, &wo)
    }

    fn write_bulk(&self, batch: WriteBatch) -> Result<(), StorageError> {
        // No WAL: the data reaches disk with the memtable flush in `flush`.
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        self.write_opts(batch, &wo)
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        start: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> ScanControl,
    ) -> Result<(), StorageError> {
        let lower = scan_lower(prefix, start);
        let db = self.db();
        let cf = self.cf(db, table)?;
        for item in db.iterator_cf(cf, IteratorMode::From(lower, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            if visit(&k, &v) == ScanControl::Stop {
                break;
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        if self.is_read_only() {
            // Nothing was written since the read-only open.
            return Ok(());
        }
        let _alone = self.flush_gate.write();
        if let Some(failed) = self.failed_write.lock().clone() {
            let why = std::io::Error::other(format!("not flushed while writes fail: {}", failed.message));
            let err = StorageError::io(&self.path, why);
            return Err(match failed.resource {
                Some(resource) => StorageError::Exhausted { resource, source: Box::new(err) },
                None => err,
            });
        }
        let db = self.db();
        let flushed = || -> Result<(), StorageError> {
            for t in Table::ALL {
                db.flush_cf(self.cf(db, t)?)?;
            }
            Ok(db.flush_wal(true)?)
        };
        flushed().map_err(StorageError::classified)
    }

    fn read_view(&self) -> Result<Box<dyn KvReadView + '_>, StorageError> {
        let db = self.db();
        Ok(Box::new(RocksView { store: self, db, snap: db.snapshot() }))
    }

    fn disk_usage_bytes(&self) -> u64 {
        path_size(&self.path)
    }
}

/// A RocksDB snapshot: iterators opened on it see the database as it was when it was taken.
struct RocksView<'a> {
    store: &'a RocksStore,
    /// The instance the snapshot was taken from: table handles come from it too.
    db: &'a DB,
    snap: rocksdb::Snapshot<'a>,
}

impl KvReadView for RocksView<'_> {
    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        start: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> ScanControl,
    ) -> Result<(), StorageError> {
        let lower = scan_lower(prefix, start);
        let cf = self.store.cf(self.db, table)?;
        // A full-table copy: read ahead, and keep the block cache for the server's own reads.
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        ro.set_readahead_size(4 << 20);
        let mut it = self.snap.raw_iterator_cf_opt(cf, ro);
        it.seek(lower);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            if !k.starts_with(prefix) || visit(k, v) == ScanControl::Stop {
                break;
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database opened read-only (as on a full disk) serves what was written, including what
    /// only its log held; the first write opens it for writing, and all later calls see it.
    #[test]
    fn read_only_open_serves_reads_and_upgrades_on_write() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        {
            let s = RocksStore::open(&path).expect("open");
            let mut b = WriteBatch::new();
            b.put(Table::Meta, b"a".to_vec(), b"1".to_vec());
            s.write(b, true).expect("write");
        }
        let s = RocksStore::open_read_only(&path).expect("read-only open");
        assert!(s.is_read_only());
        assert_eq!(s.get(Table::Meta, b"a").expect("get"), Some(b"1".to_vec()));
        s.flush().expect("nothing to flush");
        let mut b = WriteBatch::new();
        b.put(Table::Meta, b"b".to_vec(), b"2".to_vec());
        s.write(b, true).expect("write after upgrade");
        assert!(!s.is_read_only());
        assert_eq!(s.get(Table::Meta, b"a").expect("get"), Some(b"1".to_vec()));
        assert_eq!(s.get(Table::Meta, b"b").expect("get"), Some(b"2".to_vec()));
        let mut seen = Vec::new();
        s.scan(Table::Meta, b"", None, &mut |k, _| {
            seen.push(k.to_vec());
            ScanControl::Continue
        })
        .expect("scan");
        assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec()]);
        s.flush().expect("flush");
        drop(s);
        let again = RocksStore::open(&path).expect("reopen");
        assert_eq!(again.get(Table::Meta, b"b").expect("get"), Some(b"2".to_vec()));
    }
}
