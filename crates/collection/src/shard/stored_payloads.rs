//! Payloads read from the shard's own database (`on_disk_payload`): a sealed segment serves
//! them from the point records instead of holding them in RAM. The backend's cache (RocksDB's
//! block cache, SQLite's page cache) is what keeps recently read ones in memory, bounded.

use std::sync::Arc;

use qd_core::{Payload, PointId};
use qd_segment::{PayloadReadError, PayloadSource};
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
    fn payload(&self, id: &PointId) -> Result<Option<Payload>, PayloadReadError> {
        let read = match self.store.get(Table::Points, &id.to_key()) {
            Ok(Some(bytes)) => PointRecord::decode_payload(&bytes).map(|r| r.payload).map_err(Box::from),
            Ok(None) => Ok(None),
            Err(e) => Err(Box::from(e)),
        };
        read.map_err(|cause| {
            // Queries read a failed payload as none; this is where it is reported.
            tracing::error!(shard = self.shard, point = %id, error = %cause, "payload could not be read from disk");
            PayloadReadError { point: *id, cause }
        })
    }
}
