//! Writing a collection snapshot.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use qd_storage::{BackendKind, KvReadView, ScanControl, StorageError, Table};

use super::format::{
    chunk_path, push_record, table_tag, ArchiveWriter, CollectionManifest, ShardSum, CHUNK_BYTES, COLLECTION_FORMAT,
    FORMAT_VERSION, MANIFEST,
};
use super::{Progress, ProgressFn};
use crate::catalog::CatalogEntry;
use crate::collection::Collection;
use crate::error::{CollectionError, Result};

/// The catalog entry without what a restore chooses itself (`name`, `dir`).
fn entry_extras(entry: &CatalogEntry) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(entry).map_err(|e| CollectionError::Internal(format!("serialising: {e}")))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("name");
        o.remove("dir");
    }
    Ok(v)
}

/// What a collection snapshot is made of: its identity and one read view per shard, all
/// taken at the same instant.
pub struct CollectionSource<'a> {
    /// The collection's catalog entry (name, config, created_at, payload indexes...).
    pub entry: CatalogEntry,
    pub backend: BackendKind,
    /// (shard id, read view), by shard id.
    pub views: Vec<(u32, Box<dyn KvReadView + 'a>)>,
}

fn write_err(dest: &Path, e: std::io::Error) -> CollectionError {
    CollectionError::Storage(StorageError::io(dest, e))
}

/// Snapshot a live collection into `out`. Writes pause only while the shards' read views are
/// opened (all shards' commit gates are held for that moment, so every shard is captured at
/// the same instant); searches never wait. Returns the writer, size and sha256.
pub fn snapshot_collection<W: Write>(
    collection: &Collection,
    out: W,
    dest: &Path,
    progress: ProgressFn<'_>,
) -> Result<(W, u64, String)> {
    snapshot_shards(collection, None, out, dest, progress, || ())
}

/// Snapshot one shard of a live collection (same archive format, holding that shard only).
pub fn snapshot_shard<W: Write>(
    collection: &Collection,
    shard_id: u32,
    out: W,
    dest: &Path,
    progress: ProgressFn<'_>,
) -> Result<(W, u64, String)> {
    snapshot_shards(collection, Some(shard_id), out, dest, progress, || ())
}

/// [`snapshot_shard`], with `fence` run just before the shard's moment is taken and what it
/// returns dropped right after: a caller that routes writes to the shard holds them back
/// there, so it knows which writes the snapshot holds.
pub fn snapshot_shard_fenced<W: Write, G>(
    collection: &Collection,
    shard_id: u32,
    out: W,
    dest: &Path,
    progress: ProgressFn<'_>,
    fence: impl FnOnce() -> G,
) -> Result<(W, u64, String)> {
    snapshot_shards(collection, Some(shard_id), out, dest, progress, fence)
}

fn snapshot_shards<W: Write, G>(
    collection: &Collection,
    only: Option<u32>,
    out: W,
    dest: &Path,
    progress: ProgressFn<'_>,
    fence: impl FnOnce() -> G,
) -> Result<(W, u64, String)> {
    let all = collection.shards();
    let shards: Vec<_> = all.iter().filter(|s| only.is_none_or(|id| s.id() == id)).cloned().collect();
    if let (Some(id), true) = (only, shards.is_empty()) {
        return Err(CollectionError::NotFound(format!(
            "Shard {id} of collection `{}` does not exist",
            collection.name()
        )));
    }
    // A whole-collection snapshot holds the shards stored on this node (in cluster mode, each
    // peer its own replicas, as Qdrant does); a shard snapshot needs that shard here.
    let sources = shards
        .iter()
        .filter(|s| only.is_some() || s.snapshot_source().is_some())
        .map(|s| {
            s.snapshot_source().map(|src| (s.id(), src)).ok_or_else(|| {
                CollectionError::BadRequest(format!("shard {} is not stored on this node; cannot snapshot it", s.id()))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if sources.is_empty() {
        return Err(CollectionError::BadRequest(format!(
            "no shard of collection `{}` is stored on this node",
            collection.name()
        )));
    }
    let backend = sources.first().map(|(_, s)| s.store.kind()).unwrap_or(BackendKind::Rocksdb);
    let (views, entry) = {
        // Taken before the commit gates: what it holds back may be waiting for one of them.
        let _fence = fence();
        // Lock in shard order; update workers hold one gate at a time, so this cannot deadlock.
        let _gates: Vec<_> = sources.iter().map(|(_, s)| s.commit_gate.lock()).collect();
        let views =
            sources.iter().map(|(id, s)| s.store.read_view().map(|v| (*id, v))).collect::<Result<Vec<_>, _>>()?;
        (views, collection.catalog_entry())
    };
    let ids: Vec<u32> = views.iter().map(|(id, _)| *id).collect();
    let now: Vec<u32> = collection
        .shards()
        .iter()
        .filter(|s| s.snapshot_source().is_some())
        .map(|s| s.id())
        .filter(|id| only.is_none_or(|o| o == *id))
        .collect();
    if now != ids {
        return Err(CollectionError::Unavailable(format!(
            "the shards of collection `{}` changed while the snapshot started; retry",
            collection.name()
        )));
    }
    let src = CollectionSource { entry, backend, views };
    write_collection(out, &src, dest, progress)
}

/// Write the archive of `src` into `out` (see [`super::format`]). `dest` names the output in
/// error messages.
pub fn write_collection<W: Write>(
    out: W,
    src: &CollectionSource<'_>,
    dest: &Path,
    progress: ProgressFn<'_>,
) -> Result<(W, u64, String)> {
    let now = chrono::Utc::now();
    let manifest = CollectionManifest {
        format: COLLECTION_FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        collection: src.entry.name.clone(),
        created_at: src.entry.created_at.clone(),
        snapshot_created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        config: serde_json::to_value(&src.entry.config)
            .map_err(|e| CollectionError::Internal(format!("serialising: {e}")))?,
        catalog_entry: Some(entry_extras(&src.entry)?),
        shard_number: src.views.len() as u32,
        shard_ids: src.views.iter().map(|(id, _)| *id).collect(),
        source_backend: src.backend.name().to_string(),
        software_version: env!("CARGO_PKG_VERSION").to_string(),
        tables: Table::ALL.iter().map(|t| (table_tag(*t), t.name().to_string())).collect(),
    };
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| CollectionError::Internal(format!("serialising: {e}")))?;
    let mut aw = ArchiveWriter::new(out, now.timestamp().max(0) as u64);
    aw.add(MANIFEST, &json, None).map_err(|e| write_err(dest, e))?;

    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES + (64 << 10));
    let mut shards = Vec::with_capacity(src.views.len());
    let mut total_records = 0u64;
    for (sid, view) in &src.views {
        let sid = *sid;
        let mut seq = 0u32;
        let mut in_chunk = 0u64;
        let mut counts = BTreeMap::new();
        for table in Table::ALL {
            let mut n = 0u64;
            let mut failed: Option<std::io::Error> = None;
            view.scan(table, b"", None, &mut |k, v| {
                push_record(&mut buf, table, k, v);
                in_chunk += 1;
                n += 1;
                if buf.len() >= CHUNK_BYTES {
                    let data = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK_BYTES + (64 << 10)));
                    if let Err(e) = aw.add_owned(&chunk_path(sid, seq), data, Some(in_chunk)) {
                        failed = Some(e);
                        return ScanControl::Stop;
                    }
                    total_records += in_chunk;
                    seq += 1;
                    in_chunk = 0;
                    progress(Progress { bytes: aw.bytes(), total: None, records: total_records });
                }
                ScanControl::Continue
            })?;
            if let Some(e) = failed {
                return Err(write_err(dest, e));
            }
            counts.insert(table.name().to_string(), n);
        }
        if !buf.is_empty() {
            let data = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK_BYTES + (64 << 10)));
            aw.add_owned(&chunk_path(sid, seq), data, Some(in_chunk)).map_err(|e| write_err(dest, e))?;
            total_records += in_chunk;
            progress(Progress { bytes: aw.bytes(), total: None, records: total_records });
        }
        shards.push(ShardSum { shard_id: sid, records: counts });
    }
    aw.finish(shards).map_err(|e| write_err(dest, e))
}
