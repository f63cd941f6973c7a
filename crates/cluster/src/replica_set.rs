//! A shard of a collection in cluster mode: its replicas on this and other peers, presented to
//! the collection as one [`Shard`]. Writes go to every replica that takes writes and succeed
//! once `write_consistency_factor` of them applied it; a replica that could not be reached is
//! reported Dead to consensus (it missed the write) and recovered later. Reads go to one
//! Active replica, this peer's first, and fail over to the next when a peer is unreachable.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use qd_collection::operations::{Record, ShardHit, ShardSearch, ShardStats, UpdateOp, UpdateResult, WithSelectors};
use qd_collection::shard::{OptimizationInfo, Shard, ShardId, SnapshotSource};
use qd_collection::{CollectionError, LocalShards, Result};
use qd_core::filter::Filter;
use qd_core::json_path::JsonPath;
use qd_core::PointId;

use crate::node::NodeShared;
use crate::p2p::{P2pError, PeerReply, PeerRequest, ShardCall, ShardReply};
use crate::state::{PeerId, ReplicaState};

/// How long a peer may take to answer a read.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a peer may take to apply a write; one that does not answer in time (frozen,
/// partitioned) is marked Dead, so later writes do not wait for it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ReplicaSet {
    collection: String,
    id: ShardId,
    /// This peer's replica; it appears when a transfer brings the shard here and goes when
    /// the shard moves away.
    local: RwLock<Option<Arc<dyn Shard>>>,
    files: Option<Arc<LocalShards>>,
    node: Arc<NodeShared>,
    /// Ids written while this peer's replica receives a transfer (Partial): streamed records
    /// for them are older than what the live writes left, so the transfer skips them.
    dirty: Mutex<Option<HashSet<PointId>>>,
}

impl ReplicaSet {
    pub fn new(
        collection: &str,
        id: ShardId,
        local: Option<Arc<dyn Shard>>,
        files: Option<Arc<LocalShards>>,
        node: Arc<NodeShared>,
    ) -> Self {
        let set = ReplicaSet {
            collection: collection.to_string(),
            id,
            local: RwLock::new(None),
            files,
            node,
            dirty: Mutex::new(None),
        };
        if let Some(local) = local {
            set.attach(local);
        }
        set
    }

    pub fn local(&self) -> Option<Arc<dyn Shard>> {
        self.local.read().clone()
    }

    fn my_state(&self) -> Option<ReplicaState> {
        self.replicas().into_iter().find(|(p, _)| *p == self.node.me).map(|(_, s)| s)
    }

    /// Attach a local replica; one that is not Active yet remembers the ids written to it, so
    /// that its transfer keeps them.
    fn attach(&self, local: Arc<dyn Shard>) {
        self.track_unless_active();
        *self.local.write() = Some(local);
    }

    fn track_unless_active(&self) {
        if self.my_state().is_some_and(|s| s != ReplicaState::Active) {
            self.begin_tracking();
        }
    }

    /// Open this peer's replica when consensus placed one here and it is not open yet.
    pub fn ensure_local(&self) -> Result<Option<Arc<dyn Shard>>> {
        if let Some(l) = self.local() {
            return Ok(Some(l));
        }
        if self.my_state().is_none() {
            return Ok(None);
        }
        let Some(files) = &self.files else { return Ok(None) };
        let mut slot = self.local.write();
        if let Some(l) = slot.as_ref() {
            return Ok(Some(l.clone()));
        }
        let opened = files.open(self.id)?;
        self.track_unless_active();
        *slot = Some(opened.clone());
        tracing::info!(collection = %self.collection, shard = self.id, "opened a local replica");
        Ok(Some(opened))
    }

    /// Close and delete this peer's replica when consensus no longer places one here.
    pub fn drop_local_if_unplaced(&self) -> Result<()> {
        if self.my_state().is_some() {
            return Ok(());
        }
        let Some(local) = self.local.write().take() else { return Ok(()) };
        local.shutdown()?;
        drop(local);
        if let Some(files) = &self.files {
            files.remove(self.id)?;
        }
        tracing::info!(collection = %self.collection, shard = self.id, "removed the local replica");
        Ok(())
    }

    fn replicas(&self) -> Vec<(PeerId, ReplicaState)> {
        self.node.replicas(&self.collection, self.id)
    }

    /// Call the replica on `peer`, blocking this thread until it answers.
    fn remote(&self, peer: PeerId, call: ShardCall, timeout: Duration) -> std::result::Result<ShardReply, P2pError> {
        let uri = self.node.uri_of(peer).ok_or_else(|| P2pError::Unreachable {
            uri: format!("peer {peer}"),
            message: "not a member of the cluster".into(),
        })?;
        let request = PeerRequest::Shard { collection: self.collection.clone(), shard: self.id, call };
        match self.node.block_on(self.node.clients.call(&uri, request, timeout))? {
            PeerReply::Shard(reply) => Ok(reply),
            other => Err(P2pError::Remote(crate::p2p::WireError::Internal(format!("unexpected answer {other:?}")))),
        }
    }

    /// Start remembering ids written from now on (a transfer into this replica begins).
    pub fn begin_tracking(&self) {
        let mut dirty = self.dirty.lock();
        if dirty.is_none() {
            *dirty = Some(HashSet::new());
        }
    }

    /// Stop remembering and return the ids written since [`begin_tracking`](Self::begin_tracking).
    pub fn end_tracking(&self) -> HashSet<PointId> {
        self.dirty.lock().take().unwrap_or_default()
    }

    /// Remember the ids `op` writes, while a transfer into this replica runs.
    pub fn note_write(&self, op: &UpdateOp) {
        if let Some(dirty) = self.dirty.lock().as_mut() {
            dirty.extend(op.explicit_ids().unwrap_or_default());
        }
    }

    /// Whether `id` was written since tracking began.
    pub fn is_dirty(&self, id: &PointId) -> bool {
        self.dirty.lock().as_ref().is_some_and(|d| d.contains(id))
    }

    /// Run `read` on one replica that serves reads: this peer's, else the others in turn.
    fn read<T>(
        &self,
        local: impl Fn(&dyn Shard) -> Result<T>,
        call: impl Fn() -> ShardCall,
        unpack: impl Fn(ShardReply) -> Option<T>,
    ) -> Result<T> {
        let replicas = self.replicas();
        let me = self.node.me;
        if let Some(shard) = self.local() {
            if replicas.iter().any(|(p, s)| *p == me && s.serves_reads()) {
                return local(&*shard);
            }
        }
        let mut last_error = None;
        for (peer, state) in replicas {
            if peer == me || !state.serves_reads() {
                continue;
            }
            match self.remote(peer, call(), READ_TIMEOUT) {
                Ok(reply) => {
                    return unpack(reply).ok_or_else(|| CollectionError::Internal("mismatched shard reply".into()))
                }
                Err(P2pError::Unreachable { .. }) => {
                    last_error = Some(format!("peer {peer} unreachable"));
                }
                Err(P2pError::Remote(e)) => return Err(e.into()),
            }
        }
        Err(CollectionError::Unavailable(format!(
            "No active replica of shard {} of collection `{}` could serve the read{}",
            self.id,
            self.collection,
            last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default()
        )))
    }
}

impl Shard for ReplicaSet {
    fn id(&self) -> ShardId {
        self.id
    }

    fn update(&self, op: UpdateOp, wait: bool) -> Result<UpdateResult> {
        let me = self.node.me;
        let targets: Vec<(PeerId, ReplicaState)> =
            self.replicas().into_iter().filter(|(_, s)| s.takes_writes()).collect();
        if targets.is_empty() {
            return Err(CollectionError::Unavailable(format!(
                "The replica set for shard {} on peer {me} has no active replica",
                self.id
            )));
        }
        self.note_write(&op);
        let results: Vec<(PeerId, ReplicaState, std::result::Result<UpdateResult, P2pError>)> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = targets
                    .iter()
                    .map(|(peer, state)| {
                        let op = op.clone();
                        let (peer, state) = (*peer, *state);
                        scope.spawn(move || {
                            let result = if peer == me {
                                match self.ensure_local().ok().flatten() {
                                    Some(local) => local.update(op, wait).map_err(|e| P2pError::Remote(e.into())),
                                    None => Err(P2pError::Remote(crate::p2p::WireError::Unavailable(
                                        "this peer has no local replica".into(),
                                    ))),
                                }
                            } else {
                                match self.remote(peer, ShardCall::Update { op, wait }, WRITE_TIMEOUT) {
                                    Ok(ShardReply::Updated(r)) => Ok(r),
                                    Ok(_) => Err(P2pError::Remote(crate::p2p::WireError::Internal(
                                        "mismatched shard reply".into(),
                                    ))),
                                    Err(e) => Err(e),
                                }
                            };
                            (peer, state, result)
                        })
                    })
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            });
        let need = (self.node.write_consistency_factor(&self.collection) as usize).clamp(1, targets.len());
        let mut ok = None;
        let mut successes = 0;
        let mut active_success = false;
        let mut first_error = None;
        let mut unreachable = Vec::new();
        for (peer, state, result) in results {
            match result {
                Ok(r) => {
                    successes += 1;
                    active_success |= state == ReplicaState::Active;
                    ok.get_or_insert(r);
                }
                Err(e) => {
                    if matches!(e, P2pError::Unreachable { .. }) && peer != me {
                        unreachable.push(peer);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        if successes > 0 {
            // The replicas that missed this write are behind now: consensus marks them Dead
            // before the write is acknowledged; if that fails the write is not acknowledged.
            for peer in unreachable {
                if let Err(e) = self.node.mark_dead(&self.collection, self.id, peer) {
                    return Err(CollectionError::Unavailable(format!(
                        "the write reached some replicas of shard {} but replica on peer {peer} missed it and could \
                         not be marked Dead ({e}); retry",
                        self.id
                    )));
                }
            }
        }
        match (ok, first_error) {
            (Some(r), _) if successes >= need && active_success => Ok(r),
            (Some(_), _) if !active_success => Err(CollectionError::Unavailable(
                "Failed to apply operation to at least one `Active` replica. Consistency of this update is not \
                 guaranteed. Please retry."
                    .into(),
            )),
            (_, Some(e)) => Err(e.into()),
            (Some(r), None) => Ok(r),
            (None, None) => Err(CollectionError::Internal("no replica answered".into())),
        }
    }

    fn search(&self, req: &ShardSearch) -> Result<Vec<ShardHit>> {
        self.read(
            |s| s.search(req),
            || ShardCall::Search(req.clone()),
            |r| match r {
                ShardReply::Hits(h) => Some(h),
                _ => None,
            },
        )
    }

    fn retrieve(&self, ids: &[PointId], with: &WithSelectors) -> Result<Vec<Record>> {
        self.read(
            |s| s.retrieve(ids, with),
            || ShardCall::Retrieve { ids: ids.to_vec(), with: with.clone() },
            |r| match r {
                ShardReply::Records(r) => Some(r.into_iter().map(Record::from).collect()),
                _ => None,
            },
        )
    }

    fn scroll_ids(&self, from: Option<PointId>, filter: Option<&Filter>, limit: usize) -> Result<Vec<PointId>> {
        self.read(
            |s| s.scroll_ids(from, filter, limit),
            || ShardCall::ScrollIds { from, filter: filter.cloned(), limit },
            |r| match r {
                ShardReply::Ids(ids) => Some(ids),
                _ => None,
            },
        )
    }

    fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        self.read(
            |s| s.count(filter),
            || ShardCall::Count { filter: filter.cloned() },
            |r| match r {
                ShardReply::Count(n) => Some(n),
                _ => None,
            },
        )
    }

    fn order_entries(&self, key: &JsonPath, filter: Option<&Filter>) -> Result<Vec<(f64, PointId)>> {
        self.read(
            |s| s.order_entries(key, filter),
            || ShardCall::OrderEntries { key: key.clone(), filter: filter.cloned() },
            |r| match r {
                ShardReply::OrderEntries(e) => Some(e),
                _ => None,
            },
        )
    }

    fn facet(&self, key: &JsonPath, filter: Option<&Filter>) -> Result<Vec<(serde_json::Value, usize)>> {
        self.read(
            |s| s.facet(key, filter),
            || ShardCall::Facet { key: key.clone(), filter: filter.cloned() },
            |r| match r {
                ShardReply::Facet(f) => Some(f),
                _ => None,
            },
        )
    }

    fn sparse_df(&self, vector: &str, indices: &[u32]) -> Result<(Vec<usize>, usize)> {
        self.read(
            |s| s.sparse_df(vector, indices),
            || ShardCall::SparseDf { vector: vector.to_string(), indices: indices.to_vec() },
            |r| match r {
                ShardReply::SparseDf(d, n) => Some((d, n)),
                _ => None,
            },
        )
    }

    fn stats(&self) -> ShardStats {
        let stats = self.read(
            |s| Ok(s.stats()),
            || ShardCall::Stats,
            |r| match r {
                ShardReply::Stats(s) => Some(s),
                _ => None,
            },
        );
        match stats {
            Ok(s) => s,
            // No replica answers: the shard reports itself empty rather than failing info.
            Err(_) => match self.local() {
                Some(local) => local.stats(),
                None => ShardStats { shard_id: self.id, ..Default::default() },
            },
        }
    }

    fn vectors_changed(&self, params: &qd_core::config::CollectionParams) {
        if let Some(local) = self.local() {
            local.vectors_changed(params);
        }
    }

    fn optimizations(&self) -> (Option<OptimizationInfo>, Vec<OptimizationInfo>) {
        self.local().map(|l| l.optimizations()).unwrap_or_default()
    }

    fn shutdown(&self) -> Result<()> {
        self.local().map_or(Ok(()), |l| l.shutdown())
    }

    fn snapshot_source(&self) -> Option<SnapshotSource> {
        self.local().and_then(|l| l.snapshot_source())
    }
}
