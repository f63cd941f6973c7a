//! A shard served from this process: one backend database, its segments, one update worker
//! thread that serialises writes, and one optimizer thread.
//!
//! Write path: the worker takes queued operations (several at a time: group commit), computes
//! their effects, commits all of them plus the new last-operation number as ONE synced batch,
//! then applies them to the segments and answers the callers. A crash before the commit loses
//! only unacknowledged work; after it, the data is on disk and reloads at start.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use qd_core::config::CollectionConfig;
use qd_core::filter::Filter;
use qd_core::PointId;
use qd_segment::{PayloadSource, SearchParams, Segment, SegmentIndex};
use qd_storage::{KvStore, ScanControl, Table, WriteBatch};

use super::effects::{self, Effects, Overlay};
use super::index_store;
use super::optimizer::{OptimizationInfo, Optimizer, OptimizerStatus, Signal};
use super::state::{ColumnSpec, ShardState};
use super::stored_payloads::StoredPayloads;
use super::vector_files;
use super::{Shard, ShardId};
use crate::collection::CollectionShared;
use crate::error::{CollectionError, Result};
use crate::operations::{
    PointSelection, Record, ShardHit, ShardSearch, ShardStats, UpdateOp, UpdateResult, UpdateStatus, WithSelectors,
};
use crate::record::PointRecord;

const META_LAST_OP: &[u8] = b"last_op";
use qd_storage::disk::MIN_FREE_DISK_BYTES;
/// Qdrant's default `full_scan_threshold` of a sparse index, in points: a filter selecting
/// fewer is answered by scoring its points one by one.
const DEFAULT_SPARSE_FULL_SCAN: usize = 5000;

/// The columns a shard's segments hold for a collection's vectors: dense, multi, sparse.
pub fn column_specs(params: &qd_core::config::CollectionParams) -> ColumnSpec {
    let mut out: ColumnSpec = params
        .vectors
        .iter()
        .map(|(n, p)| {
            let spec = match p.multivector_config {
                Some(_) => qd_segment::ColumnSpec::multi(n, p.size as usize, p.distance),
                None => qd_segment::ColumnSpec::dense(n, p.size as usize, p.distance),
            };
            spec.with_element(qd_segment::ElementType::for_datatype(p.datatype))
        })
        .collect();
    out.extend(params.sparse_iter().map(|(n, _)| qd_segment::ColumnSpec::sparse(n)));
    out
}
/// Most operations committed together in one batch.
const MAX_GROUP: usize = 128;

struct Job {
    op: UpdateOp,
    op_num: u64,
    reply: Option<SyncSender<Result<()>>>,
}

pub struct LocalShard {
    id: ShardId,
    store: Arc<dyn KvStore>,
    state: Arc<RwLock<ShardState>>,
    shared: Arc<CollectionShared>,
    /// Next operation number to hand out; the sender lock orders numbering and enqueueing.
    next_op: AtomicU64,
    applied_op: Arc<AtomicU64>,
    tx: Mutex<Option<Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    optimizer: Mutex<Option<JoinHandle<()>>>,
    signal: Arc<Signal>,
    status: Arc<OptimizerStatus>,
    failed: Arc<AtomicBool>,
    /// Set with `failed` when a commit panicked or failed for another reason than an exhausted
    /// resource (e.g. EIO from fsync): memory and disk may differ, only a restart
    /// (which reloads from disk) clears it.
    panicked: Arc<AtomicBool>,
    /// One recovery probe at a time (see [`LocalShard::recover`]).
    probe: Mutex<()>,
    /// The directory whose filesystem holds the shard's data (for the free-space check).
    data_dir: PathBuf,
    commit_gate: Arc<Mutex<()>>,
}

/// Read every persisted segment and every point record into memory; `on_disk` vectors of
/// sealed segments are mapped from their files when those are valid (the optimizer rewrites
/// missing or damaged ones), so they never all sit in RAM at once.
fn load_state(
    id: ShardId,
    store: &Arc<dyn KvStore>,
    columns: ColumnSpec,
    vectors_dir: &Path,
    config: &CollectionConfig,
    payloads: &Arc<dyn PayloadSource>,
) -> Result<ShardState> {
    let stored = index_store::load_segments(store)?;
    let next_id = stored.iter().map(|s| s.id + 1).max().unwrap_or(1);
    let mut state = ShardState::new(columns, next_id);
    // Where each point sat in a persisted segment, and with which version.
    let mut slots: HashMap<PointId, (usize, u32, u64)> = HashMap::new();
    let mut graphs = Vec::new();
    for (si, seg) in stored.into_iter().enumerate() {
        for (o, (pid, ver)) in seg.members.iter().enumerate() {
            slots.insert(*pid, (si, o as u32, *ver));
        }
        let mut restored = Segment::restore_sealed(seg.id, &state.columns, &seg.members);
        // Under `on_disk_payload` the records' payloads are counted, not held (the optimizer
        // moves them when the setting changes).
        if config.params.on_disk_payload {
            restored.payloads_to_disk(payloads.clone());
        }
        // Only valid files are mapped here (nothing is written before the points are loaded);
        // the optimizer writes missing or damaged ones afterwards.
        let remap = vector_files::prepare_existing(vectors_dir, seg.id, restored.data(), config);
        if let Err(e) = vector_files::commit(vectors_dir, &mut restored, remap) {
            tracing::info!(shard = id, segment = seg.id, reason = %e, "vector file not used; it will be rewritten");
        }
        state.sealed.push(restored);
        graphs.push((seg.graphs, seg.quantized, seg.sparse, seg.payload));
    }
    let live: HashSet<u64> = state.sealed.iter().map(Segment::id).collect();
    vector_files::remove_orphans(vectors_dir, &live);
    let mut err = None;
    store.scan(Table::Points, b"", None, &mut |k, v| {
        let decoded = PointId::from_key(k)
            .ok_or_else(|| CollectionError::Corrupt(format!("shard {id}: invalid point key {k:?}")))
            .and_then(|pid| PointRecord::decode(v).map(|r| (pid, r)));
        match decoded {
            Ok((pid, r)) => {
                match slots.get(&pid) {
                    Some(&(si, o, ver)) if ver == r.version => state.sealed[si].restore_slot(o, &r.vectors, r.payload),
                    _ => {
                        state.appendable.upsert(pid, r.version, &r.vectors, r.payload);
                    }
                }
                ScanControl::Continue
            }
            Err(e) => {
                err = Some(e);
                ScanControl::Stop
            }
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    for (seg, (graphs, quantized, mut sparse, payload)) in state.sealed.iter_mut().zip(graphs) {
        // An index persisted before sparse indexes were (or one that does not cover the
        // segment) is rebuilt from the loaded vectors: cheap, one pass over the non-zeros.
        for (name, col) in seg.data().sparse_columns() {
            // A column mapped from its file serves the file's index (`Segment::set_index`).
            if col.mapping().is_none() && sparse.get(name).is_none_or(|ix| ix.slots() != seg.slots()) {
                tracing::info!(
                    shard = id,
                    segment = seg.id(),
                    vector = name,
                    "sparse index not stored; built from the vectors"
                );
                sparse.insert(name.to_string(), qd_segment::InvertedIndex::build(col));
            }
        }
        seg.set_index(Arc::new(SegmentIndex { graphs, quantized, sparse, payload }));
    }
    Ok(state)
}

impl LocalShard {
    /// Open a shard over its database: load segments and points, start the update worker and
    /// the optimizer.
    pub fn open(
        id: ShardId,
        store: Arc<dyn KvStore>,
        shared: Arc<CollectionShared>,
        vectors_dir: PathBuf,
    ) -> Result<Self> {
        // Every write to the shard's database (update worker and optimizer) passes this gate,
        // so a snapshot can hold it for the moment it opens its read views (crate::snapshot).
        let commit_gate = Arc::new(Mutex::new(()));
        let store = crate::snapshot::gated_store(store, commit_gate.clone());
        let columns: ColumnSpec = column_specs(&shared.config.read().params);
        let config = shared.config.read().clone();
        let payloads = StoredPayloads::source(id, store.clone());
        let mut state = load_state(id, &store, columns, &vectors_dir, &config, &payloads)?;
        // The appendable segment's payload indexes are built before the shard serves.
        state.set_payload_indexes(&shared.payload_index_defs());
        state.index_appendable_payloads(usize::MAX);
        let state = Arc::new(RwLock::new(state));
        let last_op = match store.get(Table::Meta, META_LAST_OP)? {
            Some(b) => u64::from_le_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| CollectionError::Corrupt(format!("shard {id}: bad last_op value")))?,
            ),
            None => 0,
        };
        let applied_op = Arc::new(AtomicU64::new(last_op));
        let failed = Arc::new(AtomicBool::new(false));
        let panicked = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(Signal::default());
        let status = Arc::new(OptimizerStatus::default());
        let (tx, rx) = channel::<Job>();
        let spawn_err = |e: std::io::Error| CollectionError::Internal(format!("cannot start shard thread: {e}"));
        let worker = {
            let w = Worker {
                id,
                store: store.clone(),
                state: state.clone(),
                applied_op: applied_op.clone(),
                failed: failed.clone(),
                panicked: panicked.clone(),
                signal: signal.clone(),
            };
            std::thread::Builder::new()
                .name(format!("shard-{id}-updates"))
                .spawn(move || w.run(rx))
                .map_err(spawn_err)?
        };
        let data_dir = vectors_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| vectors_dir.clone());
        let optimizer = {
            let o = Optimizer {
                shard_id: id,
                store: store.clone(),
                state: state.clone(),
                shared: shared.clone(),
                status: status.clone(),
                signal: signal.clone(),
                vectors_dir,
                payloads,
            };
            std::thread::Builder::new()
                .name(format!("shard-{id}-optimizer"))
                .spawn(move || o.run())
                .map_err(spawn_err)?
        };
        signal.wake();
        Ok(LocalShard {
            id,
            store,
            state,
            shared,
            next_op: AtomicU64::new(last_op + 1),
            applied_op,
            tx: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            optimizer: Mutex::new(Some(optimizer)),
            signal,
            status,
            failed,
            panicked,
            probe: Mutex::new(()),
            data_dir,
            commit_gate,
        })
    }

    /// Running and recent optimizations of this shard.
    pub fn optimizations(&self) -> (Option<OptimizationInfo>, Vec<OptimizationInfo>) {
        let mut running = self.status.running.lock().clone();
        if let Some(r) = running.as_mut() {
            r.done = self.status.progress.load(Ordering::SeqCst);
        }
        (running, self.status.completed.lock().clone())
    }
}

/// The single writer of a shard.
struct Worker {
    id: ShardId,
    store: Arc<dyn KvStore>,
    state: Arc<RwLock<ShardState>>,
    applied_op: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    panicked: Arc<AtomicBool>,
    signal: Arc<Signal>,
}

fn reply(to: Option<SyncSender<Result<()>>>, r: Result<()>) {
    if let Some(tx) = to {
        let _ = tx.send(r);
    }
}

fn selects_by_filter(op: &UpdateOp) -> bool {
    matches!(
        op,
        UpdateOp::Delete(PointSelection::Filter(_))
            | UpdateOp::ClearPayload(PointSelection::Filter(_))
            | UpdateOp::SetPayload { selection: PointSelection::Filter(_), .. }
            | UpdateOp::OverwritePayload { selection: PointSelection::Filter(_), .. }
            | UpdateOp::DeletePayload { selection: PointSelection::Filter(_), .. }
            | UpdateOp::DeleteVectors { selection: PointSelection::Filter(_), .. }
    )
}

/// How long the update worker waits for a write before it releases free memory.
const WORKER_IDLE: std::time::Duration = std::time::Duration::from_millis(500);

impl Worker {
    fn run(self, rx: Receiver<Job>) {
        loop {
            // A writer idle for a while hands back what it freed (see `crate::memory`).
            let first = match rx.recv_timeout(WORKER_IDLE) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    crate::memory::release_free();
                    match rx.recv() {
                        Ok(job) => job,
                        Err(_) => break,
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let mut pending: Vec<(Job, Effects)> = Vec::new();
            // What the pending jobs wrote, point by point, kept as they are added (one copy of
            // each record, not one per later job).
            let mut written: HashMap<PointId, Option<PointRecord>> = HashMap::new();
            for job in jobs {
                // A filter is evaluated against applied state only: commit what is pending first.
                if selects_by_filter(&job.op) && !pending.is_empty() {
                    self.commit(std::mem::take(&mut pending));
                    written.clear();
                }
                // Checked after that commit: once one fails, nothing more is written until
                // LocalShard::recover has checked the disk.
                if self.failed.load(Ordering::SeqCst) {
                    let msg = format!("shard {} stopped after a storage failure", self.id);
                    reply(job.reply, Err(CollectionError::Unavailable(msg)));
                    continue;
                }
                // A panic while computing fails this operation only (nothing is written yet).
                let computed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let st = self.state.read();
                    effects::compute(&Overlay { base: &*st, pending: &written }, &job.op, job.op_num)
                }))
                .unwrap_or_else(|panic| {
                    let reason = crate::error::panic_message(&panic);
                    tracing::error!(shard = self.id, %reason, "update operation panicked");
                    Err(CollectionError::Internal(format!("update operation failed: {reason}")))
                });
                match computed {
                    Ok(effs) => {
                        for (pid, r) in &effs {
                            written.insert(*pid, r.clone());
                        }
                        pending.push((job, effs));
                    }
                    // The operation is rejected as a whole; its number is simply skipped.
                    Err(e) => reply(job.reply, Err(e)),
                }
            }
            if !pending.is_empty() {
                self.commit(pending);
            }
            self.signal.wrote();
        }
    }

    /// [`Self::commit_group`], where a panic stops the shard's writes (what was written and
    /// what is in memory may differ; a restart reloads from disk) instead of the process.
    fn commit(&self, group: Vec<(Job, Effects)>) {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.commit_group(group)));
        if let Err(panic) = run {
            let reason = crate::error::panic_message(&panic);
            tracing::error!(shard = self.id, %reason, "commit panicked; shard stops accepting writes");
            self.panicked.store(true, Ordering::SeqCst);
            self.failed.store(true, Ordering::SeqCst);
        }
    }

    /// Commit the effects of several operations as one durable batch, then make them visible.
    fn commit_group(&self, group: Vec<(Job, Effects)>) {
        let mut batch = WriteBatch::new();
        let mut last = self.applied_op.load(Ordering::SeqCst);
        for (job, effs) in &group {
            last = last.max(job.op_num);
            for (pid, rec) in effs {
                match rec {
                    Some(r) => batch.put(Table::Points, pid.to_key(), r.encode()),
                    None => batch.delete(Table::Points, pid.to_key()),
                }
            }
        }
        batch.put(Table::Meta, META_LAST_OP.to_vec(), last.to_le_bytes().to_vec());
        if let Err(e) = self.store.write(batch, true) {
            // The batch is atomic, so nothing of it applied, and memory was not touched. Writes
            // stop until a probe shows the backend takes writes again (LocalShard::recover):
            // a backend may refuse everything after a failed write until then. Any other
            // failure (an I/O error, a failed fsync) leaves the disk's state unknown: the shard
            // takes no more writes until a restart reloads it.
            if e.exhausted().is_none() {
                tracing::error!(shard = self.id, error = %e, "commit failed; shard stops taking writes until restart");
                self.panicked.store(true, Ordering::SeqCst);
            } else {
                tracing::error!(shard = self.id, error = %e, "commit failed; writes paused until the storage recovers");
            }
            self.failed.store(true, Ordering::SeqCst);
            let (message, resource) = (e.to_string(), e.exhausted());
            let mut source = Some(e);
            for (job, _) in group {
                // The first caller gets the backend's error with its cause; the others its text,
                // still saying which resource ran out.
                let source = source.take().unwrap_or_else(|| {
                    let cause = qd_storage::StorageError::io(
                        format!("shard {}", self.id),
                        std::io::Error::other(format!("commit failed: {message}")),
                    );
                    match resource {
                        Some(resource) => qd_storage::StorageError::Exhausted { resource, source: Box::new(cause) },
                        None => cause,
                    }
                });
                reply(job.reply, Err(CollectionError::CommitFailed { shard: self.id, source }));
            }
            return;
        }
        {
            let mut st = self.state.write();
            for (_, effs) in &group {
                st.apply(effs);
            }
        }
        self.applied_op.store(last, Ordering::SeqCst);
        for (job, _) in group {
            reply(job.reply, Ok(()));
        }
    }
}

/// Bytes of every segment's vector data, in RAM or mapped.
fn vector_data_bytes(st: &ShardState) -> usize {
    st.segments().map(|s| s.data().vector_bytes()).sum()
}

impl LocalShard {
    /// Refuse a write up front when the disk is nearly full (see [`MIN_FREE_DISK_BYTES`]).
    fn check_free_space(&self) -> Result<()> {
        crate::error::ensure_free_space(&self.data_dir, MIN_FREE_DISK_BYTES, "writes need")
    }

    /// After a failed commit: take writes again once the backend does. The failed batch wrote
    /// the last operation number atomically with its data, so an unchanged number on disk
    /// proves memory and disk still agree; a synced write of that same number then shows the
    /// backend accepts writes (space was freed). A commit that panicked, or a batch that
    /// reached the disk although its write reported an error, needs a restart to reload.
    fn recover(&self) -> Result<()> {
        let _one = self.probe.lock();
        if !self.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let restart = |why: &str| CollectionError::ShardStopped { shard: self.id, reason: why.to_string() };
        if self.panicked.load(Ordering::SeqCst) {
            return Err(restart("a commit that failed with the disk's state unknown"));
        }
        let applied = self.applied_op.load(Ordering::SeqCst);
        let on_disk =
            self.store.get(Table::Meta, META_LAST_OP)?.map(|b| b.as_slice().try_into().map(u64::from_le_bytes));
        match on_disk {
            Some(Ok(n)) if n == applied => {}
            None if applied == 0 => {}
            _ => return Err(restart("a failed commit that may have reached the disk")),
        }
        let mut probe = WriteBatch::new();
        probe.put(Table::Meta, META_LAST_OP.to_vec(), applied.to_le_bytes().to_vec());
        self.store.write(probe, true).map_err(|source| CollectionError::CommitFailed { shard: self.id, source })?;
        tracing::info!(shard = self.id, "storage takes writes again; shard resumes writes");
        self.failed.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// `filter` with its text matches bound to the collection's full-text indexes (borrowed as
    /// it is when none applies).
    fn bind<'a>(&self, filter: Option<&'a Filter>) -> Option<std::borrow::Cow<'a, Filter>> {
        let filter = filter?;
        Some(match filter.with_text_indexes(&self.shared.text_indexes()) {
            Some(bound) => std::borrow::Cow::Owned(bound),
            None => std::borrow::Cow::Borrowed(filter),
        })
    }
}

impl Shard for LocalShard {
    fn id(&self) -> ShardId {
        self.id
    }

    fn update(&self, op: UpdateOp, wait: bool) -> Result<UpdateResult> {
        self.check_free_space()?;
        if self.failed.load(Ordering::SeqCst) {
            self.recover()?;
        }
        // Both modes return only once the operation's batch is committed to the backend (the
        // shard's log): an acknowledged write survives kill -9 (see docs/ARCHITECTURE.md,
        // "Durability"). Each writer waits for its own operation, so the queue holds at most
        // one operation per writer in flight and a flood slows writers instead of growing.
        // `wait` only changes the status reported, as the operation is visible once committed.
        let text_indexes = self.shared.text_indexes();
        let op = if text_indexes.is_empty() { op } else { op.map_filters(&|f| f.with_text_indexes(&text_indexes)) };
        let (reply_tx, reply_rx) = sync_channel(1);
        let op_num = {
            let guard = self.tx.lock();
            let tx = guard.as_ref().ok_or(CollectionError::ShuttingDown)?;
            let op_num = self.next_op.fetch_add(1, Ordering::SeqCst);
            tx.send(Job { op, op_num, reply: Some(reply_tx) }).map_err(|_| CollectionError::ShuttingDown)?;
            op_num
        };
        reply_rx.recv().map_err(|_| {
            if self.failed.load(Ordering::SeqCst) {
                CollectionError::Unavailable(format!("shard {} stopped after a failure", self.id))
            } else {
                CollectionError::ShuttingDown
            }
        })??;
        let status = UpdateStatus::for_wait(wait);
        Ok(UpdateResult { operation_id: Some(op_num), status })
    }

    fn search(&self, req: &ShardSearch) -> Result<Vec<ShardHit>> {
        let (hnsw, full_scan_points) = {
            let cfg = self.shared.config.read();
            let hnsw = cfg.hnsw_for(&req.vector_name);
            let points = match cfg.params.sparse(&req.vector_name) {
                Some(sp) => {
                    sp.index.and_then(|ix| ix.full_scan_threshold).map_or(DEFAULT_SPARSE_FULL_SCAN, |t| t as usize)
                }
                None => {
                    // KiB of stored vectors, in the vector's storage type (as Qdrant counts).
                    let bytes = cfg
                        .params
                        .vectors
                        .get(&req.vector_name)
                        .map_or(4, |p| p.size as usize * qd_segment::ElementType::for_datatype(p.datatype).size());
                    hnsw.full_scan_threshold * 1024 / bytes.max(1)
                }
            };
            (hnsw, points)
        };
        let params = SearchParams {
            hnsw_ef: Some(req.settings.hnsw_ef.unwrap_or(hnsw.ef_construct)),
            exact: req.settings.exact,
            full_scan_points,
            quantization: req.settings.quantization,
        };
        // Reads run on rayon workers (shard fan-out) and the search itself fans out over
        // segments while holding this guard; a worker waiting for those jobs may steal another
        // read of this shard. A plain `read()` would queue behind a waiting writer, which waits
        // for the guard held lower on the same thread: deadlock. `read_recursive` never waits
        // while a read guard is held, and no writer of the state depends on rayon work.
        let st = self.state.read_recursive();
        Ok(st
            .search(
                &req.vector_name,
                &req.query,
                req.top,
                self.bind(req.filter.as_ref()).as_deref(),
                req.threshold,
                &params,
            )
            .into_iter()
            .map(|h| ShardHit {
                id: h.id,
                version: st.find(&h.id).and_then(|s| s.version(&h.id)).unwrap_or(0),
                score: h.score,
            })
            .collect())
    }

    fn retrieve(&self, ids: &[PointId], with: &WithSelectors) -> Result<Vec<Record>> {
        let st = self.state.read_recursive();
        ids.iter()
            .filter_map(|id| st.find(id).map(|s| (id, s)))
            .map(|(id, s)| {
                // A payload kept on disk is read only when one is asked for, and a failed read
                // fails the call: a record without its payload would be copied as such by a
                // shard transfer.
                let payload = if with.payload.is_none() {
                    None
                } else {
                    let stored = s.try_payload(id).map_err(|e| CollectionError::Internal(e.to_string()))?;
                    with.payload.apply(stored.as_deref())
                };
                Ok(Record {
                    id: *id,
                    payload,
                    vector: with.vector.apply(s.vectors(id)),
                    shard_key: None,
                    order_value: None,
                })
            })
            .collect()
    }

    fn scroll_ids(&self, from: Option<PointId>, filter: Option<&Filter>, limit: usize) -> Result<Vec<PointId>> {
        Ok(self.state.read_recursive().scroll(from.as_ref(), self.bind(filter).as_deref(), limit))
    }

    fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        Ok(self.state.read_recursive().count(self.bind(filter).as_deref()))
    }

    fn order_entries(
        &self,
        key: &qd_core::json_path::JsonPath,
        filter: Option<&Filter>,
    ) -> Result<Vec<(f64, PointId)>> {
        Ok(self.state.read_recursive().order_entries(key, self.bind(filter).as_deref()))
    }

    fn facet(
        &self,
        key: &qd_core::json_path::JsonPath,
        filter: Option<&Filter>,
    ) -> Result<Vec<(serde_json::Value, usize)>> {
        Ok(self.state.read_recursive().facet(key, self.bind(filter).as_deref()))
    }

    fn vectors_changed(&self, params: &qd_core::config::CollectionParams) {
        self.state.write().set_columns(column_specs(params));
    }

    fn sparse_df(&self, vector: &str, indices: &[u32]) -> Result<(Vec<usize>, usize)> {
        Ok(self.state.read_recursive().sparse_df(vector, indices))
    }

    fn stats(&self) -> ShardStats {
        let st = self.state.read_recursive();
        let (mut vectors, mut payload, mut index) = (0, 0, 0);
        let mut vectors_count = std::collections::BTreeMap::<String, usize>::new();
        for s in st.segments() {
            let (v, p, i) = s.ram_usage();
            vectors += v;
            payload += p;
            index += i;
            for (name, n) in s.live_vector_counts() {
                *vectors_count.entry(name.clone()).or_default() += n;
            }
        }
        ShardStats {
            shard_id: self.id,
            points_count: st.len(),
            indexed_vectors_count: st.sealed.iter().map(Segment::indexed_vector_count).sum(),
            segments_count: 1 + st.sealed.len(),
            ram_vectors_bytes: vectors,
            vector_data_bytes: vector_data_bytes(&st),
            ram_payload_bytes: payload,
            payload_data_bytes: st.segments().map(Segment::payload_bytes).sum(),
            ram_index_bytes: index,
            vectors_count,
            shard_key: None,
            disk_bytes: self.store.disk_usage_bytes() + st.sealed.iter().map(Segment::mapped_bytes).sum::<u64>(),
            last_operation_id: self.applied_op.load(Ordering::SeqCst),
            optimizing: self.status.running.lock().is_some() || self.pending_optimization(&st),
            optimizer_error: self.status.last_error.lock().clone(),
        }
    }

    fn stored_bytes(&self) -> (usize, usize) {
        let st = self.state.read_recursive();
        (vector_data_bytes(&st), st.segments().map(Segment::payload_bytes).sum())
    }

    fn optimizations(&self) -> (Option<OptimizationInfo>, Vec<OptimizationInfo>) {
        LocalShard::optimizations(self)
    }

    fn snapshot_source(&self) -> Option<super::SnapshotSource> {
        Some(super::SnapshotSource { store: self.store.clone(), commit_gate: self.commit_gate.clone() })
    }

    fn shutdown(&self) -> Result<()> {
        // Dropping the sender ends the worker once the queue is drained.
        self.tx.lock().take();
        if let Some(w) = self.worker.lock().take() {
            let _ = w.join();
        }
        self.signal.stop.store(true, Ordering::SeqCst);
        self.signal.wake();
        if let Some(o) = self.optimizer.lock().take() {
            let _ = o.join();
        }
        self.store.flush()?;
        Ok(())
    }
}

impl LocalShard {
    /// Work the optimizer will pick up: a sealed segment waiting for its index, or an
    /// appendable segment over the indexing threshold.
    fn pending_optimization(&self, st: &ShardState) -> bool {
        super::optimizer::has_work(
            st,
            &self.shared.config.read(),
            &self.shared.payload_index_defs(),
            self.signal.quiet(),
            &self.status.unmappable.lock(),
        )
    }
}

impl Drop for LocalShard {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
