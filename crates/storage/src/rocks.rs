//! RocksDB backend: one database directory, one column family per [`Table`]. A synced write
//! fsyncs RocksDB's own WAL before returning.

use std::path::{Path, PathBuf};

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, WriteOptions, DB};

use crate::backend::scan_lower;
use crate::backend::{
    path_size, prefix_end, BackendKind, BatchOp, KvReadView, KvStore, ScanControl, Table, WriteBatch,
};
use crate::error::StorageError;

pub struct RocksStore {
    path: PathBuf,
    db: DB,
}

fn cf_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o.set_write_buffer_size(32 << 20);
    o
}

impl RocksStore {
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        ensure_space_to_open(path)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(2);
        opts.set_max_total_wal_size(64 << 20);
        let cfs = Table::ALL.iter().map(|t| ColumnFamilyDescriptor::new(t.name(), cf_options()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(RocksStore { path: path.to_path_buf(), db })
    }

    fn cf(&self, t: Table) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.db.cf_handle(t.name()).ok_or_else(|| StorageError::Corrupt {
            what: self.path.display().to_string(),
            detail: format!("column family {} is missing", t.name()),
        })
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
    let needed = logs.saturating_add(crate::disk::MIN_FREE_DISK_BYTES);
    match crate::disk::free_bytes_near(path) {
        Some(free) if free < needed => {
            let why = std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("{free} bytes free, opening the database needs about {needed}"),
            );
            Err(StorageError::Exhausted {
                resource: crate::error::Resource::Disk,
                source: Box::new(StorageError::io(path, why)),
            })
        }
        _ => Ok(()),
    }
}

impl RocksStore {
    fn write_opts(&self, batch: WriteBatch, wo: &WriteOptions) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut wb = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                BatchOp::Put { table, key, value } => wb.put_cf(self.cf(*table)?, key, value),
                BatchOp::Delete { table, key } => wb.delete_cf(self.cf(*table)?, key),
                BatchOp::DeletePrefix { table, prefix } => {
                    let cf = self.cf(*table)?;
                    match prefix_end(prefix) {
                        Some(end) => wb.delete_range_cf(cf, prefix.as_slice(), end.as_slice()),
                        None => {
                            // Prefix of all 0xff bytes: no upper bound exists, delete key by key.
                            for item in self.db.iterator_cf(cf, IteratorMode::From(prefix, Direction::Forward)) {
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
        self.db.write_opt(wb, wo).map_err(|e| StorageError::from(e).classified())
    }
}

impl KvStore for RocksStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Rocksdb
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(self.cf(table)?, key)?)
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
        let cf = self.cf(table)?;
        for item in self.db.iterator_cf(cf, IteratorMode::From(lower, Direction::Forward)) {
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
        let flushed = || -> Result<(), StorageError> {
            for t in Table::ALL {
                self.db.flush_cf(self.cf(t)?)?;
            }
            Ok(self.db.flush_wal(true)?)
        };
        flushed().map_err(StorageError::classified)
    }

    fn read_view(&self) -> Result<Box<dyn KvReadView + '_>, StorageError> {
        Ok(Box::new(RocksView { store: self, snap: self.db.snapshot() }))
    }

    fn disk_usage_bytes(&self) -> u64 {
        path_size(&self.path)
    }
}

/// A RocksDB snapshot: iterators opened on it see the database as it was when it was taken.
struct RocksView<'a> {
    store: &'a RocksStore,
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
        let cf = self.store.cf(table)?;
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
