//! SQLite backend: one database file, one SQL table per [`Table`], WAL journal with
//! `synchronous=FULL` so a committed transaction survives a crash or power loss.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::backend::scan_lower;
use crate::backend::{
    path_size, prefix_end, BackendKind, BatchOp, KvReadView, KvStore, ScanControl, Table, WriteBatch,
};
use crate::error::StorageError;

pub struct SqliteStore {
    path: PathBuf,
    /// Idle read-only connections for `get` (payloads kept on disk are read during searches,
    /// from several threads at once): in WAL mode a reader never waits for the writer's
    /// transactions, nor for other readers. All [`READERS`] are opened with the store, so they
    /// stay bound to this database file even if its directory is renamed or replaced later (a
    /// shard restore); when all are busy the writer connection serves the read.
    readers: Mutex<Vec<Connection>>,
    /// The writer connection: writes are serialised by the shard anyway; scans run here too.
    /// Declared after the readers, so it closes last: the last connection to close checkpoints
    /// the WAL, which a read-only one cannot.
    conn: Mutex<Connection>,
}

/// Read-only connections per database.
const READERS: usize = 4;

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    // A small page cache each: the writer connection keeps the large one.
    c.execute_batch("PRAGMA cache_size=-4096;")?;
    Ok(c)
}

fn table_sql(t: Table) -> &'static str {
    match t {
        Table::Meta => "kv_meta",
        Table::Points => "kv_points",
        Table::Index => "kv_index",
    }
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let conn = Connection::open(path)?;
        // journal_mode returns a row, so it is queried rather than executed.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Corrupt {
                what: path.display().to_string(),
                detail: format!("could not switch SQLite to WAL journal mode (got {mode})"),
            });
        }
        conn.execute_batch(
            "PRAGMA synchronous=FULL;
             PRAGMA foreign_keys=OFF;
             PRAGMA cache_size=-65536;
             PRAGMA wal_autocheckpoint=4096;
             PRAGMA journal_size_limit=67108864;",
        )?;
        for t in Table::ALL {
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {} (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL)",
                table_sql(t)
            ))?;
        }
        let readers = (0..READERS).map(|_| open_reader(path)).collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(SqliteStore { path: path.to_path_buf(), conn: Mutex::new(conn), readers: Mutex::new(readers) })
    }

    /// Run `read` on an idle read-only connection, or on the writer connection when every
    /// reader is busy.
    fn with_reader<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StorageError> {
        let idle = self.readers.lock().pop();
        let Some(conn) = idle else { return Ok(read(&self.conn.lock())?) };
        let out = read(&conn);
        self.readers.lock().push(conn);
        Ok(out?)
    }
}

impl KvStore for SqliteStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&format!("SELECT v FROM {} WHERE k = ?1", table_sql(table)))?;
            stmt.query_row(params![key], |r| r.get::<_, Vec<u8>>(0)).optional()
        })
    }

    fn write(&self, batch: WriteBatch, _sync: bool) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        // synchronous=FULL makes every commit durable; an unsynced commit would only save the
        // fsync of the WAL, which SQLite cannot skip per transaction without changing the
        // connection-wide pragma, so both paths are durable here.
        write_tx(&mut self.conn.lock(), &batch).map_err(StorageError::classified)
    }

    fn write_bulk(&self, batch: WriteBatch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Without fsyncs; `flush` (a checkpoint with synchronous=FULL, which syncs the WAL and
        // then the database) makes the data durable.
        let mut conn = self.conn.lock();
        conn.execute_batch("PRAGMA synchronous=OFF")?;
        let r = write_tx(&mut conn, &batch);
        conn.execute_batch("PRAGMA synchronous=FULL")?;
        r.map_err(StorageError::classified)
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        start: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> ScanControl,
    ) -> Result<(), StorageError> {
        scan_conn(&self.conn.lock(), table, prefix, start, visit)
    }

    fn flush(&self) -> Result<(), StorageError> {
        let conn = self.conn.lock();
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).map_err(|e| StorageError::from(e).classified())
    }

    fn read_view(&self) -> Result<Box<dyn KvReadView + '_>, StorageError> {
        // A second, read-only connection: in WAL mode its read transaction sees the database
        // as of its first read and never blocks the writer connection.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("BEGIN DEFERRED")?;
        // The snapshot is taken by the first read inside the transaction.
        conn.query_row(&format!("SELECT count(*) FROM {}", table_sql(Table::Meta)), [], |_| Ok(()))?;
        Ok(Box::new(SqliteView { conn }))
    }

    fn disk_usage_bytes(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        path_size(&self.path) + path_size(Path::new(&wal))
    }
}

fn scan_conn(
    conn: &Connection,
    table: Table,
    prefix: &[u8],
    start: Option<&[u8]>,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> ScanControl,
) -> Result<(), StorageError> {
    let lower = scan_lower(prefix, start);
    let t = table_sql(table);
    let end = prefix_end(prefix);
    let mut stmt = match end {
        Some(_) => conn.prepare_cached(&format!("SELECT k, v FROM {t} WHERE k >= ?1 AND k < ?2 ORDER BY k"))?,
        None => conn.prepare_cached(&format!("SELECT k, v FROM {t} WHERE k >= ?1 ORDER BY k"))?,
    };
    let mut rows = match &end {
        Some(e) => stmt.query(params![lower, e])?,
        None => stmt.query(params![lower])?,
    };
    while let Some(row) = rows.next()? {
        let k = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
        let v = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        if visit(k, v) == ScanControl::Stop {
            break;
        }
    }
    Ok(())
}

/// A read transaction on its own connection (rolled back when the view is dropped).
struct SqliteView {
    conn: Connection,
}

impl KvReadView for SqliteView {
    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        start: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> ScanControl,
    ) -> Result<(), StorageError> {
        scan_conn(&self.conn, table, prefix, start, visit)
    }
}

fn write_tx(conn: &mut Connection, batch: &WriteBatch) -> Result<(), StorageError> {
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for op in &batch.ops {
            match op {
                BatchOp::Put { table, key, value } => {
                    let mut st = tx.prepare_cached(&format!(
                        "INSERT INTO {} (k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                        table_sql(*table)
                    ))?;
                    st.execute(params![key, value])?;
                }
                BatchOp::Delete { table, key } => {
                    let mut st = tx.prepare_cached(&format!("DELETE FROM {} WHERE k = ?1", table_sql(*table)))?;
                    st.execute(params![key])?;
                }
                BatchOp::DeletePrefix { table, prefix } => match prefix_end(prefix) {
                    Some(end) => {
                        let mut st =
                            tx.prepare_cached(&format!("DELETE FROM {} WHERE k >= ?1 AND k < ?2", table_sql(*table)))?;
                        st.execute(params![prefix, end])?;
                    }
                    None => {
                        let mut st = tx.prepare_cached(&format!("DELETE FROM {} WHERE k >= ?1", table_sql(*table)))?;
                        st.execute(params![prefix])?;
                    }
                },
            }
        }
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads on the read-only connections (or the writer's, when all are busy) see every
    /// committed write at once, from more threads than readers while the writer commits.
    #[test]
    fn readers_see_each_commit_and_overlap_writes() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = std::sync::Arc::new(SqliteStore::open(&dir.path().join("db.sqlite")).expect("open"));
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0u32..200 {
                    let mut b = WriteBatch::new();
                    b.put(Table::Points, b"k".to_vec(), i.to_le_bytes().to_vec());
                    store.write(b, true).expect("write");
                    let got = store.get(Table::Points, b"k").expect("get").expect("present");
                    assert_eq!(got, i.to_le_bytes(), "a get after a commit sees it");
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            for _ in 0..12 {
                s.spawn(|| {
                    let mut last = 0u32;
                    while !done.load(std::sync::atomic::Ordering::SeqCst) {
                        if let Some(v) = store.get(Table::Points, b"k").expect("get") {
                            let now = u32::from_le_bytes(v.try_into().expect("four bytes"));
                            assert!(now >= last, "a reader never goes back in time");
                            last = now;
                        }
                    }
                });
            }
        });
        assert_eq!(store.readers.lock().len(), READERS, "every reader is given back");
        assert_eq!(store.get(Table::Points, b"missing").expect("get"), None);
    }
}
