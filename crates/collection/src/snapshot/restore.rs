//! Reading a collection snapshot: verifying it, and streaming it into new shard databases.
//!
//! The data goes into `collections/<new dir>/shards/<n>/` with the server's backend, in write
//! batches of a few MiB (never a whole shard in memory). Nothing is visible until the registry
//! switches the catalog entry to the new directory, which happens only after the whole archive
//! was read and every checksum and record count matched; on any error the caller removes the
//! new directory and the existing collection is untouched.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use qd_core::config::CollectionConfig;
use qd_storage::{open_store, KvStore, StorageError, StorageLayout, Table, WriteBatch};
use serde_json::Value;

use super::files::check_checksum;
use super::format::{
    check_format, invalid, parse_chunk_path, read_archive, read_records, ArchiveVisitor, CollectionManifest, ShardSum,
    COLLECTION_FORMAT,
};
use super::{Progress, ProgressFn};
use crate::catalog::CatalogEntry;
use crate::error::Result;

/// Bytes of keys and values buffered per shard before a write batch is committed.
const BATCH_BYTES: usize = 4 << 20;
/// Bytes buffered over all shards before every pending batch is committed (data files come
/// shard by shard, so normally one shard has a pending batch; this bounds the worst case).
const TOTAL_BATCH_BYTES: usize = 32 << 20;

/// How a restore treats what is already there.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// sha256 (hex) the archive must have; checked over every byte read.
    pub checksum: Option<String>,
    /// Replace an existing collection of the same name. The REST API always does (Qdrant's
    /// recover semantics); start-up restores and the CLI only with `--force-snapshot`/`--force`.
    pub replace_existing: bool,
    /// A start-up restore, run before collections are loaded: a collection still listed as
    /// loading may be replaced (at any other time that is refused with 503).
    pub at_startup: bool,
}

/// What reading a collection archive found.
#[derive(Debug, Clone)]
pub struct ArchiveReport {
    pub manifest: CollectionManifest,
    pub config: CollectionConfig,
    /// Archive size in bytes.
    pub size: u64,
    /// sha256 of the archive, when it was computed.
    pub sha256: Option<String>,
    /// Records of all tables of all shards.
    pub records: u64,
    pub shards: Vec<ShardSum>,
}

/// A restored collection directory, ready to be opened and switched in.
pub type Restored = ArchiveReport;

impl ArchiveReport {
    /// The catalog entry of the restored collection, named `name`, in directory `dir`: the
    /// snapshot's entry (config, payload indexes...) with fields unknown to it defaulted.
    pub fn catalog_entry(&self, name: &str, dir: &str) -> Result<CatalogEntry> {
        let mut v = match &self.manifest.catalog_entry {
            Some(Value::Object(o)) => o.clone(),
            _ => serde_json::Map::new(),
        };
        v.insert("name".into(), Value::String(name.to_string()));
        v.insert("dir".into(), Value::String(dir.to_string()));
        v.insert("config".into(), self.manifest.config.clone());
        v.insert("created_at".into(), Value::String(self.manifest.created_at.clone()));
        serde_json::from_value(Value::Object(v))
            .map_err(|e| invalid(format!("the collection's catalog entry in manifest.json is unreadable: {e}")))
    }
}

/// Where the records of an archive go.
trait Sink {
    fn begin(&mut self, manifest: &CollectionManifest, config: &CollectionConfig) -> Result<()>;
    fn record(&mut self, shard: u32, table: Table, key: Vec<u8>, value: Vec<u8>) -> Result<()>;
}

struct CollectionVisitor<'s> {
    sink: &'s mut dyn Sink,
    head: Option<(CollectionManifest, CollectionConfig)>,
    counts: BTreeMap<u32, BTreeMap<String, u64>>,
    records: u64,
}

impl ArchiveVisitor for CollectionVisitor<'_> {
    fn manifest(&mut self, v: Value) -> Result<()> {
        check_format(&v, COLLECTION_FORMAT)?;
        let m: CollectionManifest =
            serde_json::from_value(v).map_err(|e| invalid(format!("manifest.json is unreadable: {e}")))?;
        let config: CollectionConfig = serde_json::from_value(m.config.clone())
            .map_err(|e| invalid(format!("the collection config in manifest.json is unreadable: {e}")))?;
        let unique: std::collections::BTreeSet<u32> = m.shard_ids.iter().copied().collect();
        if m.shard_ids.len() != m.shard_number as usize || unique.len() != m.shard_ids.len() {
            return Err(invalid(format!(
                "manifest.json lists shard ids {:?} for {} shards",
                m.shard_ids, m.shard_number
            )));
        }
        if m.shard_number > 65536 {
            return Err(invalid(format!("implausible shard count {}", m.shard_number)));
        }
        self.sink.begin(&m, &config)?;
        self.counts = m
            .shard_ids
            .iter()
            .map(|id| (*id, Table::ALL.iter().map(|t| (t.name().to_string(), 0)).collect()))
            .collect();
        self.head = Some((m, config));
        Ok(())
    }

    fn file(&mut self, path: &str, data: &mut dyn Read) -> Result<Option<u64>> {
        let shard = parse_chunk_path(path).ok_or_else(|| invalid(format!("unexpected file {path:?} in archive")))?;
        let Some(counts) = self.counts.get_mut(&shard) else {
            return Err(invalid(format!("{path}: shard {shard} does not exist in this snapshot")));
        };
        let sink = &mut *self.sink;
        let n = read_records(data, path, &mut |t, k, v| {
            if let Some(c) = counts.get_mut(t.name()) {
                *c += 1;
            }
            sink.record(shard, t, k, v)
        })?;
        self.records += n;
        Ok(Some(n))
    }
}

/// Read a whole collection archive, feeding `sink`, and check it end to end.
fn read_collection(
    source: &mut dyn Read,
    total: Option<u64>,
    checksum: Option<&str>,
    hash_always: bool,
    sink: &mut dyn Sink,
    progress: ProgressFn<'_>,
) -> Result<ArchiveReport> {
    let mut v = CollectionVisitor { sink, head: None, counts: BTreeMap::new(), records: 0 };
    let summary = {
        let mut report = |bytes: u64| progress(Progress { bytes, total, records: 0 });
        read_archive(source, checksum.is_some() || hash_always, &mut v, &mut report)?
    };
    let Some((manifest, config)) = v.head else {
        return Err(invalid("manifest.json is missing"));
    };
    let found: Vec<ShardSum> = v.counts.into_iter().map(|(shard_id, records)| ShardSum { shard_id, records }).collect();
    let mut listed = summary.checksums.shards.clone();
    listed.sort_by_key(|s| s.shard_id);
    if listed != found {
        return Err(invalid(format!(
            "record counts differ from checksums.json (listed {:?}, found {:?})",
            summary.checksums.shards, found
        )));
    }
    check_checksum(checksum, summary.sha256.as_deref())?;
    Ok(ArchiveReport {
        manifest,
        config,
        size: summary.size,
        sha256: summary.sha256,
        records: v.records,
        shards: found,
    })
}

struct NullSink;

impl Sink for NullSink {
    fn begin(&mut self, _: &CollectionManifest, _: &CollectionConfig) -> Result<()> {
        Ok(())
    }
    fn record(&mut self, _: u32, _: Table, _: Vec<u8>, _: Vec<u8>) -> Result<()> {
        Ok(())
    }
}

/// Read a collection archive completely and check every checksum, record frame and count,
/// without writing anything. The archive's sha256 is always computed.
pub fn verify_collection(
    source: &mut dyn Read,
    checksum: Option<&str>,
    progress: ProgressFn<'_>,
) -> Result<ArchiveReport> {
    read_collection(source, None, checksum, true, &mut NullSink, progress)
}

/// Writes batches on its own thread, so that reading, checking and parsing the archive (the
/// caller's thread) and writing the databases run in parallel. At most two batches wait.
struct Writer {
    tx: Option<std::sync::mpsc::SyncSender<(Arc<dyn KvStore>, WriteBatch)>>,
    thread: Option<std::thread::JoinHandle<std::result::Result<(), StorageError>>>,
}

impl Writer {
    fn start() -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Arc<dyn KvStore>, WriteBatch)>(2);
        let thread = std::thread::Builder::new()
            .name("snapshot-restore".into())
            .spawn(move || {
                for (store, batch) in rx {
                    store.write_bulk(batch)?;
                }
                Ok(())
            })
            .map_err(|e| StorageError::io("snapshot-restore thread", e))?;
        Ok(Writer { tx: Some(tx), thread: Some(thread) })
    }

    fn submit(&mut self, store: &Arc<dyn KvStore>, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let sent = self.tx.as_ref().map(|tx| tx.send((store.clone(), batch)).is_ok()).unwrap_or(false);
        if sent {
            Ok(())
        } else {
            // The thread stopped on an error: report it.
            self.finish()?;
            Err(StorageError::Corrupt { what: "restore".into(), detail: "writer thread stopped".into() }.into())
        }
    }

    /// Wait until every submitted batch is written.
    fn finish(&mut self) -> Result<()> {
        self.tx.take();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => Ok(r?),
            Some(Err(_)) => {
                Err(StorageError::Corrupt { what: "restore".into(), detail: "writer thread panicked".into() }.into())
            }
            None => Ok(()),
        }
    }
}

struct StoreSink<'a> {
    layout: &'a StorageLayout,
    dir_id: &'a str,
    /// By shard id: the new database and its pending batch with its size.
    stores: BTreeMap<u32, (Arc<dyn KvStore>, WriteBatch, usize)>,
    /// Bytes pending over all shards.
    pending: usize,
    writer: Writer,
}

impl Sink for StoreSink<'_> {
    fn begin(&mut self, m: &CollectionManifest, _: &CollectionConfig) -> Result<()> {
        for sid in &m.shard_ids {
            let path = self.layout.shard_db_path(self.dir_id, *sid);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| StorageError::io(parent, e))?;
            }
            self.stores.insert(*sid, (open_store(self.layout.backend(), &path)?, WriteBatch::new(), 0));
        }
        Ok(())
    }

    fn record(&mut self, shard: u32, table: Table, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        let Some((store, batch, bytes)) = self.stores.get_mut(&shard) else {
            return Err(invalid(format!("record for unknown shard {shard}")));
        };
        let size = key.len() + value.len() + 16;
        *bytes += size;
        self.pending += size;
        batch.put(table, key, value);
        // Bulk writes (not synced, maybe not logged): the final flush makes everything durable
        // before the catalog switch, and a crash before that leaves an unreferenced directory
        // that the next start removes.
        if *bytes >= BATCH_BYTES {
            self.pending -= *bytes;
            *bytes = 0;
            let b = std::mem::take(batch);
            let store = store.clone();
            self.writer.submit(&store, b)?;
        }
        if self.pending >= TOTAL_BATCH_BYTES {
            for (store, batch, bytes) in self.stores.values_mut() {
                *bytes = 0;
                self.writer.submit(store, std::mem::take(batch))?;
            }
            self.pending = 0;
        }
        Ok(())
    }
}

/// Stream a collection archive into new shard databases under `collections/<dir_id>/`.
/// On error the directory may hold partial data: the caller removes it.
pub fn restore_into_dir(
    layout: &StorageLayout,
    dir_id: &str,
    source: &mut dyn Read,
    total: Option<u64>,
    checksum: Option<&str>,
    progress: ProgressFn<'_>,
) -> Result<Restored> {
    let mut sink = StoreSink { layout, dir_id, stores: BTreeMap::new(), pending: 0, writer: Writer::start()? };
    let read = read_collection(source, total, checksum, false, &mut sink, progress);
    let written = sink.writer.finish();
    let report = read?;
    written?;
    for (store, batch, _) in std::mem::take(&mut sink.stores).into_values() {
        store.write_bulk(batch)?;
        // Durable from here (bulk writes may have skipped the write-ahead log).
        store.flush()?;
    }
    // The stores close here, before the registry opens the shards again.
    drop(sink);
    Ok(report)
}
