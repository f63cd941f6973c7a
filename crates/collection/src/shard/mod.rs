//! Shards: the unit of storage, ordering and (later) placement.
//!
//! [`Shard`] is the interface the collection talks to. It assumes nothing about where the shard
//! lives: [`LocalShard`] serves it from this process; a remote shard (cluster mode) would serve
//! the same calls over the network (see docs/ARCHITECTURE.md). Calls are blocking; the server
//! runs them on its blocking pool.

mod effects;
#[cfg(test)]
mod fault_tests;
mod index_store;
mod local;
#[cfg(test)]
mod merge_tests;
pub mod optimizer;
mod state;
mod stored_payloads;
mod vector_files;

pub use local::LocalShard;
pub use optimizer::OptimizationInfo;
pub use state::merge_facets;

use qd_core::filter::Filter;
use qd_core::PointId;

use crate::consistency::ReadConsistency;
use crate::error::Result;
use crate::operations::{Record, ShardHit, ShardSearch, ShardStats, UpdateOp, UpdateResult, WithSelectors};

pub type ShardId = u32;

/// What a snapshot needs from a shard served by this process (see `crate::snapshot`): its
/// database, and the lock its update worker holds while committing a group. A snapshot holds
/// the gates of all shards of a collection only while it opens one read view per shard, so
/// the views show every shard at the same instant; writes pause for that moment only.
#[derive(Clone)]
pub struct SnapshotSource {
    pub store: std::sync::Arc<dyn qd_storage::KvStore>,
    pub commit_gate: std::sync::Arc<parking_lot::Mutex<()>>,
}

pub trait Shard: Send + Sync {
    fn id(&self) -> ShardId;
    /// Apply an update. With `wait`, returns once it is durable and visible to reads.
    fn update(&self, op: UpdateOp, wait: bool) -> Result<UpdateResult>;
    /// Apply an update with Qdrant's write `ordering`. A shard held once has one order of
    /// writes, so only replicated shards act on it.
    fn update_ordered(
        &self,
        op: UpdateOp,
        wait: bool,
        ordering: crate::operations::WriteOrdering,
    ) -> Result<UpdateResult> {
        let _ = ordering;
        self.update(op, wait)
    }
    /// Top `req.top` hits by internal score, best first.
    fn search(&self, req: &ShardSearch) -> Result<Vec<ShardHit>>;
    /// Points by id, in the order given; unknown ids are skipped.
    fn retrieve(&self, ids: &[PointId], with: &WithSelectors) -> Result<Vec<Record>>;
    /// Ids in ascending order from `from` (inclusive) passing the filter, at most `limit`.
    fn scroll_ids(&self, from: Option<PointId>, filter: Option<&Filter>, limit: usize) -> Result<Vec<PointId>>;
    fn count(&self, filter: Option<&Filter>) -> Result<usize>;
    /// [`Shard::search`] over the replicas `consistency` asks, keeping the hits enough of them
    /// return (see [`crate::consistency`]). A shard held once is read once.
    fn search_consistent(&self, req: &ShardSearch, consistency: ReadConsistency) -> Result<Vec<ShardHit>> {
        let _ = consistency;
        self.search(req)
    }
    /// [`Shard::retrieve`] under `consistency`, as [`Shard::search_consistent`].
    fn retrieve_consistent(
        &self,
        ids: &[PointId],
        with: &WithSelectors,
        consistency: ReadConsistency,
    ) -> Result<Vec<Record>> {
        let _ = consistency;
        self.retrieve(ids, with)
    }
    /// [`Shard::scroll_ids`] under `consistency`, as [`Shard::search_consistent`].
    fn scroll_ids_consistent(
        &self,
        from: Option<PointId>,
        filter: Option<&Filter>,
        limit: usize,
        consistency: ReadConsistency,
    ) -> Result<Vec<PointId>> {
        let _ = consistency;
        self.scroll_ids(from, filter, limit)
    }
    /// [`Shard::order_entries`] under `consistency`, as [`Shard::search_consistent`].
    fn order_entries_consistent(
        &self,
        key: &qd_core::json_path::JsonPath,
        filter: Option<&Filter>,
        consistency: ReadConsistency,
    ) -> Result<Vec<(f64, PointId)>> {
        let _ = consistency;
        self.order_entries(key, filter)
    }
    /// [`Shard::facet`] under `consistency`, as [`Shard::search_consistent`].
    fn facet_consistent(
        &self,
        key: &qd_core::json_path::JsonPath,
        filter: Option<&Filter>,
        consistency: ReadConsistency,
    ) -> Result<Vec<(serde_json::Value, usize)>> {
        let _ = consistency;
        self.facet(key, filter)
    }
    /// [`Shard::count`] under `consistency`, as [`Shard::search_consistent`].
    fn count_consistent(&self, filter: Option<&Filter>, consistency: ReadConsistency) -> Result<usize> {
        let _ = consistency;
        self.count(filter)
    }
    /// `(order value, id)` of the points passing the filter, once per distinct value at `key`.
    fn order_entries(&self, key: &qd_core::json_path::JsonPath, filter: Option<&Filter>)
        -> Result<Vec<(f64, PointId)>>;
    /// Counts of the values at `key` among points passing the filter (each point once per value).
    fn facet(
        &self,
        key: &qd_core::json_path::JsonPath,
        filter: Option<&Filter>,
    ) -> Result<Vec<(serde_json::Value, usize)>>;
    /// IDF statistics of sparse vector `vector`: per index of `indices` the live points holding
    /// it, and the live points holding the vector at all.
    fn sparse_df(&self, vector: &str, indices: &[u32]) -> Result<(Vec<usize>, usize)>;
    fn stats(&self) -> ShardStats;
    /// Bytes of stored vectors (in RAM or mapped) and of payloads: what strict mode's storage
    /// caps compare, asked on every write while they are set, so without the IO `stats` does.
    fn stored_bytes(&self) -> (usize, usize) {
        let s = self.stats();
        (s.vector_data_bytes, s.payload_data_bytes)
    }
    /// The collection's vectors changed (one added or dropped): reshape the segments.
    fn vectors_changed(&self, params: &qd_core::config::CollectionParams);
    /// The running optimization (if any) and recently finished ones.
    fn optimizations(&self) -> (Option<OptimizationInfo>, Vec<OptimizationInfo>);
    /// Stop accepting updates, finish queued ones, flush to disk.
    fn shutdown(&self) -> Result<()>;
    /// The shard's local database, for snapshots; `None` for a shard served elsewhere.
    fn snapshot_source(&self) -> Option<SnapshotSource> {
        None
    }
}
