//! Payloads read from the shard's own database (`on_disk_payload`): a sealed segment serves
//! them from the point records instead of holding them in RAM. The backend's cache (RocksDB's
//! block cache, SQLite's page cache) is what keeps recently read ones in memory, bounded.

use std::sync::Arc;

use qd_core::{Payload, PointId};
use qd_segment::PayloadSource;
use qd_storage::{KvStore, Table};

use crate::record::PointRecord;
use crate::shard::ShardId;

/// The payload of each point as its record in the `points` table holds it.
pub(crate) struct StoredPayloads {
    shard: ShardId,
    store: Arc<dyn KvStore>,
}

impl StoredPayloads {
    pub(crate) fn source(shard: ShardId, store: Arc<dyn KvStore>) -> Arc<dyn PayloadSource> {
        Arc::new(StoredPayloads { shard, store })
    }
}

impl std::fmt::Debug for StoredPayloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredPayloads(shard {})", self.shard)
    }
}

impl PayloadSource for StoredPayloads {
    fn payload(&self, id: &PointId) -> Option<Payload> {
        let read =
            self.store.get(Table::Points, &id.to_key()).map_err(|e| e.to_string()).and_then(|bytes| {
                bytes.map(|b| PointRecord::decode_payload(&b).map_err(|e| e.to_string())).transpose()
            });
        match read {
            Ok(record) => record.and_then(|r| r.payload),
            Err(e) => {
                // A query cannot fail on one point's payload: it is reported and read as none.
                tracing::error!(shard = self.shard, point = %id, error = %e, "payload could not be read from disk");
                None
            }
        }
    }
}
