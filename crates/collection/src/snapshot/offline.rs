//! Snapshots of a storage directory with the server stopped (`qdrant snapshot ...`), and
//! inspection of snapshot files without reading their data.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use qd_storage::{open_store, BackendKind, KvStore, StorageError, StorageLayout};
use serde_json::{json, Value};

use super::create::{write_collection, CollectionSource};
use super::format::{invalid, manifest_format, Checksums, CHECKSUMS, FULL_FORMAT, MANIFEST};
use super::full::write_full;
use super::{no_progress, ProgressFn};
use crate::catalog::{Catalog, CatalogEntry};
use crate::error::{CollectionError, Result};

/// A storage directory opened for reading by an offline tool.
pub struct OfflineStorage {
    layout: StorageLayout,
    catalog: Catalog,
}

impl OfflineStorage {
    /// Open an existing storage root; the backend is the one it was created with.
    pub fn open(root: &Path) -> Result<Self> {
        let marker = StorageLayout::read_marker(root)?.ok_or_else(|| {
            CollectionError::NotFound(format!("{} holds no storage (no storage.json)", root.display()))
        })?;
        let layout = StorageLayout::open_or_init(root, marker.backend)?;
        let catalog = Catalog::new(open_store(marker.backend, &layout.catalog_path()).map_err(busy)?);
        Ok(OfflineStorage { layout, catalog })
    }

    pub fn backend(&self) -> BackendKind {
        self.layout.backend()
    }

    pub fn layout(&self) -> &StorageLayout {
        &self.layout
    }

    pub fn collections(&self) -> Result<Vec<CatalogEntry>> {
        self.catalog
            .collections()?
            .into_iter()
            .map(|e| e.map_err(|(name, reason)| CollectionError::Corrupt(format!("collection {name}: {reason}"))))
            .collect()
    }

    pub fn entry(&self, name: &str) -> Result<CatalogEntry> {
        self.collections()?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| CollectionError::NotFound(format!("Collection `{name}` doesn't exist!")))
    }

    /// The shard databases of a collection, by shard id.
    fn stores(&self, entry: &CatalogEntry) -> Result<Vec<(u32, Arc<dyn KvStore>)>> {
        let mut ids: Vec<u32> = if entry.config.params.sharding_method == Some(qd_core::config::ShardingMethod::Custom)
        {
            entry.shard_keys.iter().flat_map(|k| k.shards.iter().copied()).collect()
        } else {
            (0..entry.config.params.shard_number).collect()
        };
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|sid| {
                let path = self.layout.shard_db_path(&entry.dir, sid);
                if !path.exists() {
                    return Err(CollectionError::Corrupt(format!("shard database {} is missing", path.display())));
                }
                let store = open_store(self.layout.backend(), &path).map_err(busy)?;
                Ok((sid, store))
            })
            .collect()
    }

    /// Write collection `name`'s snapshot into `out`.
    pub fn snapshot_collection<W: Write>(
        &self,
        name: &str,
        out: W,
        dest: &Path,
        progress: ProgressFn<'_>,
    ) -> Result<(W, u64, String)> {
        let entry = self.entry(name)?;
        let stores = self.stores(&entry)?;
        let views = stores.iter().map(|(id, s)| s.read_view().map(|v| (*id, v))).collect::<Result<Vec<_>, _>>()?;
        let src = CollectionSource { entry: entry.clone(), backend: self.backend(), views };
        write_collection(out, &src, dest, progress)
    }

    /// Write a full snapshot (every collection and alias) into `out`.
    pub fn snapshot_full<W: Write>(&self, out: W, dest: &Path, progress: ProgressFn<'_>) -> Result<(W, u64, String)> {
        let names: Vec<String> = self.collections()?.into_iter().map(|e| e.name).collect();
        let aliases = self.catalog.aliases()?.into_iter().filter(|(_, c)| names.contains(c)).collect();
        let tmp = self.layout.tmp_dir();
        write_full(
            out,
            &names,
            aliases,
            &tmp,
            dest,
            &mut |i, w, p| self.snapshot_collection(&names[i], w, p, &mut no_progress).map(|_| ()),
            progress,
        )
    }
}

/// A RocksDB lock error means a running server holds the database.
fn busy(e: StorageError) -> StorageError {
    match e {
        StorageError::Rocks(r) if r.to_string().contains("lock") => StorageError::Corrupt {
            what: "storage".into(),
            detail: format!("{r} (is the server still running? stop it first)"),
        },
        other => other,
    }
}

/// The manifest (first entry) of a snapshot file, read without touching the rest.
pub fn read_manifest(source: &mut dyn Read) -> Result<Value> {
    let mut archive = tar::Archive::new(BufReader::new(source));
    let mut entries = archive.entries().map_err(|e| invalid(format!("not a tar archive: {e}")))?;
    let mut first = entries
        .next()
        .ok_or_else(|| invalid("empty archive"))?
        .map_err(|e| invalid(format!("damaged archive: {e}")))?;
    let path = first.path().map_err(|e| invalid(e.to_string()))?.to_string_lossy().into_owned();
    if path != MANIFEST {
        return Err(invalid(format!("first entry is {path:?}, expected {MANIFEST}: not a snapshot of this server")));
    }
    let mut bytes = Vec::new();
    first.by_ref().take(64 << 20).read_to_end(&mut bytes).map_err(|e| invalid(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{MANIFEST} is not JSON: {e}")))
}

/// Whether a snapshot file is a full-storage snapshot (by its manifest).
pub fn is_full_snapshot(path: &Path) -> Result<bool> {
    let mut f = File::open(path).map_err(|e| CollectionError::NotFound(format!("{}: {e}", path.display())))?;
    Ok(manifest_format(&read_manifest(&mut f)?) == FULL_FORMAT)
}

/// Summary of a snapshot file from its manifest and `checksums.json`, skipping the data
/// (seeks over it): fast whatever the size. Checks nothing: see `verify` for that.
pub fn inspect(path: &Path) -> Result<Value> {
    let f = File::open(path).map_err(|e| CollectionError::NotFound(format!("{}: {e}", path.display())))?;
    let size = f.metadata().map_err(|e| StorageError::io(path, e))?.len();
    let mut archive = tar::Archive::new(f);
    let entries = archive.entries_with_seek().map_err(|e| invalid(format!("not a tar archive: {e}")))?;
    let mut manifest = Value::Null;
    let mut checksums: Option<Checksums> = None;
    let mut files = 0u64;
    for (i, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| invalid(format!("damaged or truncated archive: {e}")))?;
        let p = entry.path().map_err(|e| invalid(e.to_string()))?.to_string_lossy().into_owned();
        files += 1;
        if i == 0 || p == CHECKSUMS {
            let mut bytes = Vec::new();
            entry.by_ref().take(64 << 20).read_to_end(&mut bytes).map_err(|e| invalid(e.to_string()))?;
            if i == 0 {
                if p != MANIFEST {
                    return Err(invalid(format!("first entry is {p:?}, expected {MANIFEST}")));
                }
                manifest = serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{MANIFEST}: {e}")))?;
            } else {
                checksums = Some(serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{CHECKSUMS}: {e}")))?);
            }
        }
    }
    let (data_bytes, records) = checksums
        .as_ref()
        .map(|c| (c.files.iter().map(|f| f.size).sum::<u64>(), c.files.iter().filter_map(|f| f.records).sum::<u64>()))
        .unwrap_or_default();
    Ok(json!({
        "file": path.display().to_string(),
        "size": size,
        "entries": files,
        "complete": checksums.is_some(),
        "manifest": manifest,
        "data_bytes": data_bytes,
        "records": records,
        "shards": checksums.map(|c| serde_json::to_value(c.shards).unwrap_or_default()).unwrap_or_default(),
    }))
}
