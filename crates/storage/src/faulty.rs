//! A [`KvStore`] wrapper that fails chosen writes the way a full disk or an exhausted file
//! table does, so the engine's commit-failure branches are tested against real backends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::backend::{BackendKind, KvReadView, KvStore, ScanControl, Table, WriteBatch};
use crate::error::{Resource, StorageError};

/// Which writes fail, and with what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The resource reported as exhausted; None: a plain I/O error (EIO, as a failed fsync).
    pub resource: Option<Resource>,
    /// The first failing write, counted from 1 over writes and flushes since the fault was set.
    pub from: u64,
    /// How many writes fail from there (`u64::MAX`: until [`FaultyStore::clear`]).
    pub count: u64,
}

/// Passes everything to the wrapped store, except the writes and flushes its [`Fault`] names,
/// which fail with the OS error of the exhausted resource before reaching the store (so, as on
/// a real full disk, nothing of them is applied).
pub struct FaultyStore {
    inner: Arc<dyn KvStore>,
    fault: Mutex<Option<Fault>>,
    /// Writes and flushes seen since the fault was set.
    seen: AtomicU64,
    /// Writes and flushes failed so far.
    failed: AtomicU64,
    /// Point reads (`get`) fail with EIO while set.
    failing_reads: std::sync::atomic::AtomicBool,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn KvStore>) -> Self {
        FaultyStore {
            inner,
            fault: Mutex::new(None),
            seen: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            failing_reads: Default::default(),
        }
    }

    /// Fail writes as `fault` says, counting from now.
    pub fn set(&self, fault: Fault) {
        self.seen.store(0, Ordering::SeqCst);
        *self.fault.lock() = Some(fault);
    }

    /// Fail every `get` with EIO (a bad sector under a payload kept on disk), or stop failing.
    pub fn fail_reads(&self, fail: bool) {
        self.failing_reads.store(fail, Ordering::SeqCst);
    }

    /// Let every write through again (the disk has space again).
    pub fn clear(&self) {
        *self.fault.lock() = None;
    }

    /// Writes and flushes failed so far.
    pub fn failures(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// The error for this write or flush, when the fault names it.
    fn check(&self) -> Result<(), StorageError> {
        let Some(fault) = *self.fault.lock() else { return Ok(()) };
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if n < fault.from || n - fault.from >= fault.count {
            return Ok(());
        }
        self.failed.fetch_add(1, Ordering::SeqCst);
        let errno = match fault.resource {
            Some(Resource::Disk) => libc::ENOSPC,
            Some(Resource::OpenFiles) => libc::EMFILE,
            None => libc::EIO,
        };
        Err(StorageError::io("injected fault", std::io::Error::from_raw_os_error(errno)).classified())
    }
}

impl KvStore for FaultyStore {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if self.failing_reads.load(Ordering::SeqCst) {
            return Err(StorageError::io("injected read fault", std::io::Error::from_raw_os_error(libc::EIO)));
        }
        self.inner.get(table, key)
    }
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        self.check()?;
        self.inner.write(batch, sync)
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
    fn write_bulk(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.check()?;
        self.inner.write_bulk(batch)
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.check()?;
        self.inner.flush()
    }
    fn read_view(&self) -> Result<Box<dyn KvReadView + '_>, StorageError> {
        self.inner.read_view()
    }
    fn disk_usage_bytes(&self) -> u64 {
        self.inner.disk_usage_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::open_store;

    #[test]
    fn the_named_writes_fail_and_apply_nothing_on_both_backends() {
        for kind in BackendKind::ALL {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = FaultyStore::new(open_store(kind, &dir.path().join("db")).expect("open"));
            let put = |k: &str| {
                let mut b = WriteBatch::new();
                b.put(Table::Points, k.as_bytes().to_vec(), b"v".to_vec());
                store.write(b, true)
            };
            store.set(Fault { resource: Some(Resource::Disk), from: 2, count: 2 });
            put("a").expect("first write passes");
            let err = put("b").expect_err("second write fails");
            assert_eq!(err.exhausted(), Some(Resource::Disk), "{kind}");
            assert!(err.to_string().starts_with("No space left on device"), "{err}");
            assert!(store.flush().is_err(), "the third operation (a flush) fails too");
            put("c").expect("the fault is over");
            assert_eq!(store.failures(), 2);
            assert_eq!(store.get(Table::Points, b"b").expect("get"), None, "a failed write applies nothing");
            assert!(store.get(Table::Points, b"c").expect("get").is_some());

            store.set(Fault { resource: Some(Resource::OpenFiles), from: 1, count: u64::MAX });
            let err = put("d").expect_err("fails until cleared");
            assert_eq!(err.exhausted(), Some(Resource::OpenFiles));
            store.clear();
            put("d").expect("cleared");
            store.set(Fault { resource: None, from: 1, count: 1 });
            assert_eq!(put("e").expect_err("EIO").exhausted(), None, "an I/O error is not a full disk");
        }
    }
}
