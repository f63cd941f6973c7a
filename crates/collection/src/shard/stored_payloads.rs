//! Payloads read from the shard's own database (`on_disk_payload`): a sealed segment serves
//! them from the point records instead of holding them in RAM. Recently read ones stay decoded
//! in a small cache per shard ([`CACHE_BYTES`]), beside the backend's own (RocksDB's block
//! cache, SQLite's page cache).

use std::sync::Arc;

use qd_core::{Payload, PointId};
use qd_segment::{PayloadCache, PayloadReadError, PayloadSource};
use qd_storage::{KvStore, Table};

use crate::record::PointRecord;
use crate::shard::ShardId;

/// Bytes of decoded payloads (estimated JSON size) each shard keeps after reading them.
pub(crate) const CACHE_BYTES: usize = 8 << 20;

/// The payload of each point as its record in the `points` table holds it.
pub(crate) struct StoredPayloads {
    shard: ShardId,
    store: Arc<dyn KvStore>,
    cache: PayloadCache,
}

impl StoredPayloads {
    pub(crate) fn source(shard: ShardId, store: Arc<dyn KvStore>) -> Arc<dyn PayloadSource> {
        Arc::new(StoredPayloads { shard, store, cache: PayloadCache::new(CACHE_BYTES) })
    }
}

impl std::fmt::Debug for StoredPayloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredPayloads(shard {})", self.shard)
    }
}

impl PayloadSource for StoredPayloads {
    fn payload(&self, id: &PointId, version: u64) -> Result<Option<Payload>, PayloadReadError> {
        if let Some(hit) = self.cache.get(id, version) {
            return Ok(hit);
        }
        let read = match self.store.get(Table::Points, &id.to_key()) {
            Ok(Some(bytes)) => PointRecord::decode_payload(&bytes).map(Some).map_err(Box::from),
            Ok(None) => Ok(None),
            Err(e) => Err(Box::from(e)),
        };
        // Only the asked version is cached: another one means the point is being rewritten
        // (the slot asking is about to be tombstoned), and its record is answered as it is.
        read.map(|record| match record {
            Some(r) if r.version == version => {
                self.cache.insert(id, version, r.payload.clone());
                r.payload
            }
            Some(r) => r.payload,
            None => None,
        })
        .map_err(|cause| {
            // Queries read a failed payload as none; this is where it is reported.
            tracing::error!(shard = self.shard, point = %id, error = %cause, "payload could not be read from disk");
            PayloadReadError { point: *id, cause }
        })
    }
}
