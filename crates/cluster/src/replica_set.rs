//! A shard of a collection in cluster mode: its replicas on this and other peers, presented to
//! the collection as one [`Shard`]. Writes go to every replica that takes writes and succeed
//! once `write_consistency_factor` of them applied it; a replica that could not be reached is
//! reported Dead to consensus (it missed the write) and recovered later. Reads go to one
//! Active replica, this peer's first, and fail over to the next when a peer is unreachable;
//! a read with a `consistency` above one asks several and keeps what enough of them agree on.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use qd_collection::consistency::{self, ReadConsistency, ReadPlan};
use qd_collection::operations::{
    PointInsert, PointSelection, Record, ShardHit, ShardSearch, ShardStats, UpdateOp, UpdateResult, UpdateStatus,
    WithSelectors, WriteOrdering,
};
use qd_collection::shard::{OptimizationInfo, Shard, ShardId, SnapshotSource};
use qd_collection::{CollectionError, LocalShards, Result, StagedSnapshot};
use qd_core::filter::Filter;
use qd_core::json_path::JsonPath;
use qd_core::PointId;

use crate::copied_writes::{LiveWrite, OpCursor, OpId, RecentOps, Reflected, Since, KEEP_OPS_FOR, MAX_RECENT_OPS};
use crate::node::NodeShared;
use crate::p2p::{P2pError, PeerReply, PeerRequest, ShardCall, ShardReply, WireError};
use crate::state::{PeerId, ReplicaState, TransferMethod};

/// How long a peer may take to answer a read.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a peer may take to apply a write; one that does not answer in time (frozen,
/// partitioned) is marked Dead, so later writes do not wait for it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a write can be on its way to a replica: its coordinator's retries end after
/// [`WRITE_TIMEOUT`], and the last one may take as long again.
const WRITE_IN_FLIGHT: Duration = Duration::from_secs(20);

pub struct ReplicaSet {
    collection: String,
    id: ShardId,
    /// This peer's replica; it appears when a transfer brings the shard here and goes when
    /// the shard moves away.
    local: RwLock<Option<Arc<dyn Shard>>>,
    files: Option<Arc<LocalShards>>,
    node: Arc<NodeShared>,
    /// What live writes did to this peer's replica while it receives a copy (not Active).
    tracking: Mutex<Option<Tracking>>,
    /// What the last copy into this replica held, kept for [`WRITE_IN_FLIGHT`] after it
    /// ended: a write it held may still be on its way here.
    settled: Mutex<Option<(Instant, Reflected)>>,
    /// The writes this peer's replica applied lately, for copies read from it.
    applied: Mutex<AppliedOps>,
    /// Shared by live writes to the local replica, exclusive while a copied batch is written
    /// (a batch is filtered against the live writes and written as one step) and, on a
    /// source, while a batch is read or a snapshot's moment taken (the writes it holds are
    /// exactly those logged in `applied`; the source's writes wait for that read).
    stream_gate: RwLock<()>,
    /// Held while this peer sends an ordered (`medium`/`strong`) write to the replicas, so
    /// such writes reach every replica in one order.
    order: Mutex<()>,
}

/// The live writes a replica receiving a copy applied, so that copied (older) records do not
/// undo them.
#[derive(Default)]
struct Tracking {
    /// Points replaced whole live (upserts, deletes by id): copied records of them are older
    /// and are skipped.
    ids: HashSet<PointId>,
    /// Points a conditional upsert that may create points (insert-only, or with a filter)
    /// named live: the copy's end does not delete them as points the source lacks.
    touched: HashSet<PointId>,
    /// Writes whose effect depends on what the points hold (by filter, partial updates by
    /// id, conditional), in order: replayed over each copied batch that does not hold them
    /// (the source read its points before it applied them).
    partial: Vec<TrackedWrite>,
    /// Every live write, in order, while a snapshot transfer brings this replica: applied
    /// again over the installed snapshot unless it holds them.
    all: Option<Vec<TrackedWrite>>,
    /// What the copies held, so that writes they hold are not applied twice.
    reflected: Reflected,
}

/// A live write applied to a replica receiving a copy, as it was sent (not as narrowed).
#[derive(Clone)]
struct TrackedWrite {
    id: Option<OpId>,
    at: Instant,
    op: UpdateOp,
}

impl Tracking {
    /// A copy begins now. For a snapshot, writes applied here longer than [`WRITE_IN_FLIGHT`]
    /// ago are taken to have reached the source long before (or it missed them and was marked
    /// Dead, ending the copy), so the snapshot holds them; they are not replayed, nor
    /// remembered, any more. (Streamed batches ask the source instead, see `apply_copied`.)
    fn start_copy(&mut self, now: Instant) {
        if let Some(all) = self.all.as_mut() {
            all.retain(|w| now.saturating_duration_since(w.at) < WRITE_IN_FLIGHT);
        }
        self.reflected.start_copy();
    }
}

/// The ids of the writes a replica applied lately: those whose effect depends on what the
/// points hold (what a copied batch must know) and all (what a snapshot must know, and what
/// a retried write is recognised by).
struct AppliedOps {
    partial: RecentOps,
    all: RecentOps,
    /// Ids of the writes being applied now.
    in_flight: HashSet<OpId>,
}

impl Default for AppliedOps {
    fn default() -> Self {
        AppliedOps {
            partial: RecentOps::new(KEEP_OPS_FOR, MAX_RECENT_OPS),
            all: RecentOps::new(KEEP_OPS_FOR, MAX_RECENT_OPS),
            in_flight: HashSet::new(),
        }
    }
}

/// A live write's id reserved in [`AppliedOps::in_flight`] while it is applied.
struct InFlight<'a> {
    set: &'a ReplicaSet,
    id: Option<OpId>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.set.applied.lock().in_flight.remove(&id);
        }
    }
}

/// The answer to a write that needs nothing more done.
fn done(wait: bool) -> UpdateResult {
    UpdateResult { operation_id: None, status: UpdateStatus::for_wait(wait) }
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
            tracking: Mutex::new(None),
            settled: Mutex::new(None),
            applied: Mutex::new(AppliedOps::default()),
            stream_gate: RwLock::new(()),
            order: Mutex::new(()),
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
            let method = self.node.transfer_into(&self.collection, self.id);
            self.begin_tracking(method == Some(TransferMethod::Snapshot));
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
        // What live writes did to this replica goes with it (a later copy starts afresh).
        self.tracking.lock().take();
        self.settled.lock().take();
        *self.applied.lock() = AppliedOps::default();
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

    /// A write `call` on the replica of `peer`, blocking until it answers.
    fn remote_update(
        &self,
        peer: PeerId,
        call: ShardCall,
        timeout: Duration,
    ) -> std::result::Result<UpdateResult, P2pError> {
        match self.remote(peer, call, timeout)? {
            ShardReply::Updated(r) => Ok(r),
            _ => Err(P2pError::Remote(WireError::Internal("mismatched shard reply".into()))),
        }
    }

    /// Start remembering live writes (a copy into this replica begins), each whole when
    /// `whole` (a snapshot transfer). Writes remembered by an earlier, failed copy stay
    /// remembered.
    pub fn begin_tracking(&self, whole: bool) {
        let mut tracking = self.tracking.lock();
        let t = tracking.get_or_insert_with(|| Tracking {
            // Writes the previous copy held may still arrive.
            reflected: self.take_settled().unwrap_or_default(),
            ..Tracking::default()
        });
        if whole && t.all.is_none() {
            t.all = Some(Vec::new());
        }
    }

    /// Stop remembering (the replica is Active); what the copies held is kept a while, for
    /// writes still on their way.
    pub fn end_tracking(&self) {
        if let Some(t) = self.tracking.lock().take() {
            if !t.reflected.is_empty() {
                *self.settled.lock() = Some((Instant::now() + WRITE_IN_FLIGHT, t.reflected));
            }
        }
    }

    /// How far back a copy's first batch needs its source's log to reach: to this replica's
    /// oldest write waiting to be replayed, plus the time a write can be on its way.
    pub(crate) fn copy_window(&self) -> Duration {
        let now = Instant::now();
        let oldest = self.tracking.lock().as_ref().and_then(|t| t.partial.first().map(|w| w.at));
        oldest.map_or(Duration::ZERO, |at| now.saturating_duration_since(at)) + WRITE_IN_FLIGHT
    }

    /// What the last copy held, while writes it held may still arrive.
    fn take_settled(&self) -> Option<Reflected> {
        self.settled.lock().take().filter(|(until, _)| Instant::now() < *until).map(|(_, r)| r)
    }

    /// A new copy into this replica begins: its source reports afresh what it holds.
    pub(crate) fn start_copy(&self) {
        if let Some(t) = self.tracking.lock().as_mut() {
            t.start_copy(Instant::now());
        }
    }

    /// What live write `op_id` should still do here, given what the copies held.
    fn live_write(&self, op_id: Option<OpId>) -> LiveWrite {
        if let Some(t) = self.tracking.lock().as_ref() {
            return t.reflected.live(op_id);
        }
        let mut settled = self.settled.lock();
        match settled.as_ref() {
            Some((until, r)) if Instant::now() < *until => r.live(op_id),
            Some(_) => {
                settled.take();
                LiveWrite::All
            }
            None => LiveWrite::All,
        }
    }

    /// Log write `op_id` as applied to this peer's replica (`stream_gate` is held).
    fn log_applied(&self, op_id: Option<OpId>, partial: bool) {
        if let Some(id) = op_id {
            let now = Instant::now();
            let mut applied = self.applied.lock();
            applied.all.push(id, now);
            if partial {
                applied.partial.push(id, now);
            }
        }
    }

    /// Read the records of `ids` (whole) for a copy into another replica, with the
    /// state-dependent writes applied before the read, since `after`. Live writes wait
    /// meanwhile. A first batch's report is complete when the log still holds every write of
    /// the `window` before now; a later one when nothing was forgotten since the cursor.
    pub(crate) fn read_for_copy(
        &self,
        ids: &[PointId],
        after: Option<OpCursor>,
        window: Duration,
    ) -> Result<(Vec<Record>, Since)> {
        let _fence = self.stream_gate.write();
        let local =
            self.ensure_local()?.ok_or_else(|| CollectionError::NotFound("no local replica of this shard".into()))?;
        let with = WithSelectors::whole();
        let records = local.retrieve(ids, &with)?;
        let applied = self.applied.lock();
        let mut since = applied.partial.since(after);
        match after {
            // A log that does not reach back that far: the receiver decides by its writes' age.
            None => since.complete = applied.partial.covers(window, Instant::now()),
            Some(_) if !since.complete => tracing::warn!(
                collection = %self.collection,
                shard = self.id,
                "this replica no longer knows every write it applied since the copy's previous batch (restarted, or \
                 writes came faster than it remembers); the copy goes by the writes' age"
            ),
            Some(_) => {}
        }
        Ok((records, since))
    }

    /// Stop live writes to this peer's replica until the guard is dropped, and the ids of
    /// every write it holds by then (a snapshot's moment).
    pub(crate) fn fence_writes(&self) -> (parking_lot::RwLockWriteGuard<'_, ()>, Vec<OpId>) {
        let fence = self.stream_gate.write();
        let held = self.applied.lock().all.since(None).ids;
        (fence, held)
    }

    /// Apply a write its coordinator routed by the shard's replica set at `version` to this
    /// peer's replica. Refused as [`WireError::Stale`] when this peer applied a newer replica
    /// set: the coordinator may not have sent it to a replica added since.
    pub fn apply_routed(
        &self,
        op: UpdateOp,
        wait: bool,
        version: u64,
        op_id: Option<OpId>,
    ) -> std::result::Result<UpdateResult, WireError> {
        let _routing = self.node.routing_gate.read();
        let current = self.node.version(&self.collection, self.id);
        if version < current {
            return Err(WireError::Stale(current));
        }
        // Taken before the replica is: a snapshot being installed replaces it meanwhile, and
        // waits for every holder of the old one to let go.
        let _stream = self.stream_gate.read();
        let local = self
            .ensure_local()?
            .ok_or_else(|| WireError::NotFound(format!("shard {} has no replica on peer {}", self.id, self.node.me)))?;
        // A write sent again (its coordinator caught up with a newer replica set) that this
        // replica applied already: applying it twice could undo what came in between. One
        // still being applied here (the first call timed out on the coordinator) is refused:
        // the coordinator then marks this replica Dead, and a copy repairs it.
        if let Some(id) = op_id {
            let mut applied = self.applied.lock();
            if applied.all.contains(id) {
                return Ok(done(wait));
            }
            if !applied.in_flight.insert(id) {
                return Err(WireError::Unavailable(format!("write {id} is being applied on this replica already")));
            }
        }
        // Released however the write ends, a panic included.
        let _reserved = InFlight { set: self, id: op_id };
        Ok(self.apply_live(&*local, op, wait, op_id)?)
    }

    /// Apply live write `op_id` to this peer's replica `local` (`stream_gate` is held), except
    /// where a copy already brought it, and remember what it did while the replica receives a
    /// copy.
    fn apply_live(&self, local: &dyn Shard, op: UpdateOp, wait: bool, op_id: Option<OpId>) -> Result<UpdateResult> {
        let partial = !op.replaces_points();
        // A copy that already holds this write (it reached the source first) brought its
        // effect with the points it wrote.
        let live = self.live_write(op_id);
        let tracked = self.tracking.lock().as_ref().map(|t| {
            let touched = op.may_create_points().unwrap_or_default();
            let write = TrackedWrite { id: op_id, at: Instant::now(), op: op.clone() };
            let whole = t.all.is_some().then(|| write.clone());
            match op.replaced_points() {
                Some(ids) => (ids, touched, None, whole),
                None => (Vec::new(), touched, Some(write), whole),
            }
        });
        let to_apply = match live {
            LiveWrite::All => Some(op),
            LiveWrite::Outside(copied) => Some(op.outside_ids(&copied)),
            LiveWrite::Only(rest) => Some(op.within_ids(&rest)),
            LiveWrite::Skip => None,
        };
        let result = match to_apply {
            Some(op) => local.update(op, wait),
            None => Ok(done(wait)),
        };
        if result.is_ok() {
            self.log_applied(op_id, partial);
        }
        if let (Some((ids, touched, partial, whole)), Some(tracking)) = (tracked, self.tracking.lock().as_mut()) {
            if result.is_ok() {
                tracking.ids.extend(ids);
                tracking.touched.extend(touched);
                tracking.partial.extend(partial);
                if let (Some(all), Some(op)) = (tracking.all.as_mut(), whole) {
                    all.push(op);
                }
            } else {
                // What the failed write touched is copied again from the source.
                for id in &ids {
                    tracking.ids.remove(id);
                }
            }
        }
        result
    }

    /// Write a batch of records copied from the source into this peer's replica, keeping what
    /// live writes left: records of points replaced live are skipped, and live writes of the
    /// other kind that the source had not applied when it read the batch (`held` lists those
    /// it had, since the previous batch) are replayed over the rest. When that report is not
    /// `complete` (the source's log no longer reaches back far enough), writes applied here
    /// more than [`WRITE_IN_FLIGHT`] before the batch was `asked` for are taken to have reached
    /// the source by then, and are not replayed any more.
    pub(crate) fn apply_copied(
        &self,
        local: &dyn Shard,
        records: Vec<Record>,
        held: Vec<OpId>,
        complete: bool,
        asked: Instant,
    ) -> Result<()> {
        let _stream = self.stream_gate.write();
        let held: HashSet<OpId> = held.into_iter().collect();
        let (points, replay) = {
            let mut tracking = self.tracking.lock();
            if let (false, Some(t)) = (complete, tracking.as_mut()) {
                t.partial.retain(|w| w.at + WRITE_IN_FLIGHT >= asked);
            }
            let written = |id: &PointId| tracking.as_ref().is_some_and(|t| t.ids.contains(id));
            let points: Vec<PointInsert> = records
                .into_iter()
                .filter(|r| !written(&r.id))
                .map(|r| PointInsert { id: r.id, vectors: r.vector.unwrap_or_default(), payload: r.payload })
                .collect();
            let holds =
                |t: &Tracking, id: Option<OpId>| t.reflected.holds(id) || id.is_some_and(|id| held.contains(&id));
            let replay: Vec<UpdateOp> = tracking
                .as_ref()
                .map(|t| t.partial.iter().filter(|w| !holds(t, w.id)).map(|w| w.op.clone()).collect())
                .unwrap_or_default();
            (points, replay)
        };
        let ids: BTreeSet<PointId> = points.iter().map(|p| p.id).collect();
        if !points.is_empty() {
            local.update(UpdateOp::Upsert(points), true)?;
        }
        // Recorded once the points are written (they hold `held` whatever the replays do).
        if let Some(t) = self.tracking.lock().as_mut() {
            t.reflected.batch_copied(held, ids.iter().copied());
        }
        if !ids.is_empty() {
            for op in replay {
                local.update(op.within_ids(&ids), true)?;
            }
        }
        Ok(())
    }

    /// Replace this peer's replica with the shard snapshot in `archive` (copied from the
    /// source, verified against `sha256`, holding the writes `held`), then apply again every
    /// live write it received since the transfer began that the snapshot does not hold. Live
    /// writes wait meanwhile.
    pub(crate) fn install_snapshot(
        &self,
        archive: &mut dyn std::io::Read,
        size: u64,
        sha256: &str,
        held: Vec<OpId>,
    ) -> Result<()> {
        let files = self.files()?;
        let staged = files.stage(archive, Some(size), sha256)?;
        self.replace_local(
            || files.install(staged, self.id),
            |opened| {
                let replay: Vec<UpdateOp> = {
                    let mut tracking = self.tracking.lock();
                    let Some(t) = tracking.as_mut() else { return Ok(()) };
                    t.reflected.snapshot_installed(held);
                    let all = t.all.as_deref().unwrap_or_default();
                    all.iter().filter(|w| !t.reflected.holds(w.id)).map(|w| w.op.clone()).collect()
                };
                replay.into_iter().try_for_each(|op| opened.update(op, true).map(|_| ()))
            },
        )
    }

    /// Replace this peer's replica with shard `from` of a staged snapshot (a snapshot
    /// recovery). Live writes wait meanwhile.
    pub(crate) fn install_staged(&self, staged: &StagedSnapshot, from: ShardId) -> Result<()> {
        let files = self.files()?;
        self.replace_local(|| files.install_from(staged, from, self.id), |_| Ok(()))
    }

    fn files(&self) -> Result<&Arc<LocalShards>> {
        self.files.as_ref().ok_or_else(|| CollectionError::Internal("no shard files on this peer".into()))
    }

    /// Shut this peer's replica down, let `install` put new files in place, open them as the
    /// replica and run `then` on it; live writes and streamed batches wait until `then` is
    /// done (a replay in `then` must not interleave with live writes).
    fn replace_local(
        &self,
        install: impl FnOnce() -> Result<()>,
        then: impl FnOnce(&Arc<dyn Shard>) -> Result<()>,
    ) -> Result<()> {
        let files = self.files()?;
        let _stream = self.stream_gate.write();
        let mut slot = self.local.write();
        if let Some(old) = slot.take() {
            old.shutdown()?;
            // The old database must be closed (its last user gone) before its files are
            // replaced: an open one would go on writing and purging files in the new one.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Arc::strong_count(&old) > 1 {
                if Instant::now() >= deadline {
                    return Err(CollectionError::Unavailable("the replica being replaced is still in use".into()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        install()?;
        let opened = files.open(self.id)?;
        *slot = Some(opened.clone());
        drop(slot);
        then(&opened)
    }

    /// Delete from this peer's replica the points the source does not have (deleted while
    /// this replica was behind), except those written live since.
    pub(crate) fn delete_uncopied(&self, local: &dyn Shard, copied: &HashSet<PointId>) -> Result<()> {
        let _stream = self.stream_gate.write();
        let mut stale = Vec::new();
        let mut from = None;
        loop {
            let ids = local.scroll_ids(from, None, 4097)?;
            let next = ids.get(4096).copied();
            let tracking = self.tracking.lock();
            let written =
                |id: &PointId| tracking.as_ref().is_some_and(|t| t.ids.contains(id) || t.touched.contains(id));
            stale.extend(ids.into_iter().take(4096).filter(|id| !copied.contains(id) && !written(id)));
            match next {
                Some(n) => from = Some(n),
                None => break,
            }
        }
        if !stale.is_empty() {
            local.update(UpdateOp::Delete(PointSelection::Ids(stale)), true)?;
        }
        Ok(())
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
        // Until this peer has caught up after starting, its own replica's state may be stale:
        // it answers only when no other replica can.
        let local_active = replicas.iter().any(|(p, s)| *p == me && s.serves_reads());
        if local_active && self.node.caught_up() {
            if let Some(shard) = self.local() {
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
        if local_active {
            if let Some(shard) = self.local() {
                return local(&*shard);
            }
        }
        Err(CollectionError::Unavailable(format!(
            "No active replica of shard {} of collection `{}` could serve the read{}",
            self.id,
            self.collection,
            last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default()
        )))
    }

    /// One read under `consistency`: the plain read of one replica ([`ReplicaSet::read`]), or
    /// the answers of several ([`ReplicaSet::read_many`]) combined by `resolve`.
    fn read_resolved<T: Send>(
        &self,
        consistency: ReadConsistency,
        local: impl Fn(&dyn Shard) -> Result<T> + Sync,
        call: impl Fn() -> ShardCall + Sync,
        unpack: impl Fn(ShardReply) -> Option<T> + Sync,
        resolve: impl FnOnce(Vec<T>, ReadPlan) -> T,
    ) -> Result<T> {
        if consistency.is_single() {
            return self.read(local, call, unpack);
        }
        let (answers, plan) = self.read_many(consistency, local, call, unpack)?;
        Ok(resolve(answers, plan))
    }

    /// Run `read` on as many replicas that serve reads as `consistency` asks of the shard's
    /// replicas (this peer's first, once it has caught up; one that cannot be reached is
    /// replaced by another) and return their answers with the plan that resolves them (see
    /// [`qd_collection::consistency`]).
    fn read_many<T: Send>(
        &self,
        consistency: ReadConsistency,
        local: impl Fn(&dyn Shard) -> Result<T> + Sync,
        call: impl Fn() -> ShardCall + Sync,
        unpack: impl Fn(ShardReply) -> Option<T> + Sync,
    ) -> Result<(Vec<T>, ReadPlan)> {
        let me = self.node.me;
        let replicas = self.replicas();
        let serving: Vec<PeerId> = replicas.iter().filter(|(_, s)| s.serves_reads()).map(|(p, _)| *p).collect();
        let plan = consistency.plan(replicas.len());
        if serving.len() < plan.ask {
            return Err(CollectionError::Unavailable(format!(
                "The replica set for shard {} of collection `{}` does not have enough active replicas: \
                 read consistency {consistency:?} needs {}, {} of {} are active",
                self.id,
                self.collection,
                plan.ask,
                serving.len(),
                replicas.len()
            )));
        }
        // This peer's replica first while it is up to date; last (if at all needed) otherwise.
        let mut candidates: Vec<PeerId> = serving.iter().copied().filter(|p| *p != me).collect();
        if serving.contains(&me) {
            if self.node.caught_up() {
                candidates.insert(0, me);
            } else {
                candidates.push(me);
            }
        }
        let ask_one = |peer: PeerId| -> std::result::Result<T, Option<CollectionError>> {
            if peer == me {
                let shard = self.local().ok_or(None)?;
                return local(&*shard).map_err(Some);
            }
            match self.remote(peer, call(), READ_TIMEOUT) {
                Ok(reply) => {
                    unpack(reply).ok_or_else(|| Some(CollectionError::Internal("mismatched shard reply".into())))
                }
                Err(P2pError::Unreachable { .. }) => Err(None),
                Err(P2pError::Remote(e)) => Err(Some(e.into())),
            }
        };
        let mut answers = Vec::with_capacity(plan.ask);
        let mut next = candidates.into_iter();
        let mut last_error: Option<CollectionError> = None;
        while answers.len() < plan.ask {
            let batch: Vec<PeerId> = next.by_ref().take(plan.ask - answers.len()).collect();
            if batch.is_empty() {
                return Err(CollectionError::Unavailable(format!(
                    "read consistency {consistency:?} needs {} replicas of shard {} of collection `{}`, {} answered{}",
                    plan.ask,
                    self.id,
                    self.collection,
                    answers.len(),
                    last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default()
                )));
            }
            let results: Vec<std::result::Result<T, Option<CollectionError>>> = std::thread::scope(|s| {
                let handles: Vec<_> = batch.iter().map(|&peer| s.spawn(move || ask_one(peer))).collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| Err(Some(CollectionError::Internal("a read panicked".into()))))
                    })
                    .collect()
            });
            // A replica that fails is replaced by another while any is left (as one that
            // cannot be reached is).
            for r in results {
                match r {
                    Ok(answer) => answers.push(answer),
                    Err(Some(e)) => last_error = Some(e),
                    Err(None) => {}
                }
            }
        }
        Ok((answers, plan))
    }

    /// The peer that orders `medium`/`strong` writes of this shard: the first Active replica
    /// by peer id (`medium`), or the first replica whatever its state (`strong`: unavailable
    /// while that replica is not Active).
    fn write_leader(&self, ordering: WriteOrdering) -> Result<PeerId> {
        let replicas = self.replicas();
        let leader = match ordering {
            WriteOrdering::Strong => replicas.first().copied(),
            _ => replicas.iter().find(|(_, s)| *s == ReplicaState::Active).copied(),
        };
        match leader {
            Some((peer, ReplicaState::Active)) => Ok(peer),
            Some((peer, state)) => Err(CollectionError::Unavailable(format!(
                "the replica ordering writes to shard {} (peer {peer}) is {state:?}; retry, or write with ordering weak",
                self.id
            ))),
            None => Err(CollectionError::Unavailable(format!("shard {} has no active replica", self.id))),
        }
    }

    /// Send an ordered write on to every replica, one ordered write of this shard at a time
    /// (this peer orders the shard's writes).
    pub fn lead_write(&self, op: UpdateOp, wait: bool) -> Result<UpdateResult> {
        let _order = self.order.lock();
        self.update(op, wait)
    }

    /// Send one write (`op_id`) to every replica in `targets` in parallel (this peer's
    /// directly).
    fn send_write(
        &self,
        targets: &[(PeerId, ReplicaState)],
        op: &UpdateOp,
        wait: bool,
        version: u64,
        op_id: OpId,
    ) -> Vec<(PeerId, ReplicaState, std::result::Result<UpdateResult, P2pError>)> {
        let me = self.node.me;
        std::thread::scope(|scope| {
            let handles: Vec<_> = targets
                .iter()
                .map(|&(peer, state)| {
                    let op = op.clone();
                    scope.spawn(move || {
                        let result = if peer == me {
                            self.apply_routed(op, wait, version, Some(op_id)).map_err(P2pError::Remote)
                        } else {
                            let call = ShardCall::Update { op, wait, version, op_id: Some(op_id) };
                            self.remote_update(peer, call, WRITE_TIMEOUT)
                        };
                        (peer, state, result)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        })
    }

    /// Decide a write's outcome from its replicas' answers: it succeeds when
    /// `write_consistency_factor` replicas, one of them Active, applied it. Every replica that
    /// did not apply it is behind from then on: consensus marks it Dead before the write is
    /// acknowledged, and if that fails the write is not acknowledged.
    fn settle_write(
        &self,
        sent: usize,
        results: Vec<(PeerId, ReplicaState, std::result::Result<UpdateResult, P2pError>)>,
    ) -> Result<UpdateResult> {
        let need = (self.node.write_consistency_factor(&self.collection) as usize).clamp(1, sent);
        let mut ok = None;
        let mut successes = 0;
        let mut active_success = false;
        let mut first_error = None;
        let mut missed = Vec::new();
        for (peer, state, result) in results {
            match result {
                Ok(r) => {
                    successes += 1;
                    active_success |= state == ReplicaState::Active;
                    ok.get_or_insert(r);
                }
                Err(e) => {
                    missed.push(peer);
                    first_error.get_or_insert(e);
                }
            }
        }
        if successes > 0 {
            for peer in missed {
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
}

impl Shard for ReplicaSet {
    fn id(&self) -> ShardId {
        self.id
    }

    fn update(&self, op: UpdateOp, wait: bool) -> Result<UpdateResult> {
        let deadline = Instant::now() + WRITE_TIMEOUT;
        // One id for the write on every replica, whichever routing it is sent by.
        let op_id: OpId = rand::random();
        loop {
            let (replicas, version) = self.node.routing(&self.collection, self.id);
            let targets: Vec<(PeerId, ReplicaState)> = replicas.into_iter().filter(|(_, s)| s.takes_writes()).collect();
            if targets.is_empty() {
                return Err(CollectionError::Unavailable(format!(
                    "The replica set for shard {} on peer {} has no active replica",
                    self.id, self.node.me
                )));
            }
            let results = self.send_write(&targets, &op, wait, version, op_id);
            let newer = results
                .iter()
                .filter_map(|(_, _, r)| match r {
                    Err(P2pError::Remote(WireError::Stale(v))) => Some(*v),
                    _ => None,
                })
                .max();
            match newer {
                // A replica applied a newer replica set: catch up with it and send the write
                // again, to every replica of the new set (one that applied it already knows
                // its id and does not apply it twice).
                Some(v) if self.node.wait_version(&self.collection, self.id, v, deadline) => continue,
                Some(v) => {
                    return Err(CollectionError::Unavailable(format!(
                        "the replicas of shard {} changed and peer {} has not caught up with them (routing version \
                         {v}); retry",
                        self.id, self.node.me
                    )))
                }
                None => return self.settle_write(targets.len(), results),
            }
        }
    }

    fn update_ordered(&self, op: UpdateOp, wait: bool, ordering: WriteOrdering) -> Result<UpdateResult> {
        if ordering == WriteOrdering::Weak {
            return self.update(op, wait);
        }
        let leader = self.write_leader(ordering)?;
        if leader == self.node.me {
            return self.lead_write(op, wait);
        }
        // The leader's own fan-out may take WRITE_TIMEOUT per replica and a Dead marking.
        Ok(self.remote_update(leader, ShardCall::UpdateOrdered { op, wait }, WRITE_TIMEOUT * 3)?)
    }

    fn search(&self, req: &ShardSearch) -> Result<Vec<ShardHit>> {
        self.search_consistent(req, ReadConsistency::default())
    }

    fn retrieve(&self, ids: &[PointId], with: &WithSelectors) -> Result<Vec<Record>> {
        self.retrieve_consistent(ids, with, ReadConsistency::default())
    }

    fn scroll_ids(&self, from: Option<PointId>, filter: Option<&Filter>, limit: usize) -> Result<Vec<PointId>> {
        self.scroll_ids_consistent(from, filter, limit, ReadConsistency::default())
    }

    fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        self.count_consistent(filter, ReadConsistency::default())
    }

    fn order_entries(&self, key: &JsonPath, filter: Option<&Filter>) -> Result<Vec<(f64, PointId)>> {
        self.order_entries_consistent(key, filter, ReadConsistency::default())
    }

    fn facet(&self, key: &JsonPath, filter: Option<&Filter>) -> Result<Vec<(serde_json::Value, usize)>> {
        self.facet_consistent(key, filter, ReadConsistency::default())
    }

    fn search_consistent(&self, req: &ShardSearch, consistency: ReadConsistency) -> Result<Vec<ShardHit>> {
        self.read_resolved(
            consistency,
            |s| s.search(req),
            || ShardCall::Search(req.clone()),
            |r| match r {
                ShardReply::Hits(h) => Some(h),
                _ => None,
            },
            |answers, plan| {
                let mut hits = consistency::resolve(answers, plan, |h| h.id, |a, b| a.version == b.version);
                hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
                hits.truncate(req.top);
                hits
            },
        )
    }

    fn retrieve_consistent(
        &self,
        ids: &[PointId],
        with: &WithSelectors,
        consistency: ReadConsistency,
    ) -> Result<Vec<Record>> {
        self.read_resolved(
            consistency,
            |s| s.retrieve(ids, with),
            || ShardCall::Retrieve { ids: ids.to_vec(), with: with.clone() },
            |r| match r {
                ShardReply::Records(r) => Some(r.into_iter().map(Record::from).collect()),
                _ => None,
            },
            // Records agree when they are the same in every part asked for (payload maps
            // compare whatever their key order).
            |answers, plan| consistency::resolve(answers, plan, |r| r.id, |a, b| a == b),
        )
    }

    fn scroll_ids_consistent(
        &self,
        from: Option<PointId>,
        filter: Option<&Filter>,
        limit: usize,
        consistency: ReadConsistency,
    ) -> Result<Vec<PointId>> {
        self.read_resolved(
            consistency,
            |s| s.scroll_ids(from, filter, limit),
            || ShardCall::ScrollIds { from, filter: filter.cloned(), limit },
            |r| match r {
                ShardReply::Ids(ids) => Some(ids),
                _ => None,
            },
            |answers, plan| {
                let mut ids = consistency::resolve(answers, plan, |id| *id, |_, _| true);
                ids.sort();
                ids.truncate(limit);
                ids
            },
        )
    }

    fn order_entries_consistent(
        &self,
        key: &JsonPath,
        filter: Option<&Filter>,
        consistency: ReadConsistency,
    ) -> Result<Vec<(f64, PointId)>> {
        self.read_resolved(
            consistency,
            |s| s.order_entries(key, filter),
            || ShardCall::OrderEntries { key: key.clone(), filter: filter.cloned() },
            |r| match r {
                ShardReply::OrderEntries(e) => Some(e),
                _ => None,
            },
            // An entry agrees when the point has the same value at the key.
            |answers, plan| consistency::resolve(answers, plan, |e| e.1, |a, b| a.0.to_bits() == b.0.to_bits()),
        )
    }

    fn facet_consistent(
        &self,
        key: &JsonPath,
        filter: Option<&Filter>,
        consistency: ReadConsistency,
    ) -> Result<Vec<(serde_json::Value, usize)>> {
        self.read_resolved(
            consistency,
            |s| s.facet(key, filter),
            || ShardCall::Facet { key: key.clone(), filter: filter.cloned() },
            |r| match r {
                ShardReply::Facet(f) => Some(f),
                _ => None,
            },
            consistency::resolve_facets,
        )
    }

    fn count_consistent(&self, filter: Option<&Filter>, consistency: ReadConsistency) -> Result<usize> {
        self.read_resolved(
            consistency,
            |s| s.count(filter),
            || ShardCall::Count { filter: filter.cloned() },
            |r| match r {
                ShardReply::Count(n) => Some(n),
                _ => None,
            },
            consistency::resolve_count,
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
