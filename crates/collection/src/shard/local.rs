//! A shard served from this process: one backend database, the in-memory segment, and one
//! update worker thread that serialises writes.
//!
//! Write path: the worker takes queued operations (several at a time: group commit), computes
//! their effects, commits all of them plus the new last-operation number as ONE synced batch,
//! then applies them to the segment and answers the callers. A crash before the commit loses
//! only unacknowledged work; after it, the data is on disk and reloads at start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use qd_core::filter::Filter;
use qd_core::vectors::vectors_to_json;
use qd_core::{Distance, PointId};
use qd_segment::Segment;
use qd_storage::{KvStore, ScanControl, Table, WriteBatch};

use super::effects::{self, Effects, Overlay};
use super::{Shard, ShardId};
use crate::error::{CollectionError, Result};
use crate::operations::{
    PointSelection, Record, ShardHit, ShardSearch, ShardStats, UpdateOp, UpdateResult, UpdateStatus, WithSelectors,
};
use crate::record::PointRecord;

const META_LAST_OP: &[u8] = b"last_op";
/// Most operations committed together in one batch.
const MAX_GROUP: usize = 128;

struct Job {
    op: UpdateOp,
    op_num: u64,
    reply: Option<SyncSender<Result<()>>>,
}

/// Vector columns a shard's segments hold: (name, dim, distance).
pub type ColumnSpec = Vec<(String, usize, Distance)>;

pub struct LocalShard {
    id: ShardId,
    store: Arc<dyn KvStore>,
    segment: Arc<RwLock<Segment>>,
    /// Next operation number to hand out; the sender lock orders numbering and enqueueing.
    next_op: AtomicU64,
    applied_op: Arc<AtomicU64>,
    tx: Mutex<Option<Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    failed: Arc<AtomicBool>,
}

impl LocalShard {
    /// Open a shard over its database, loading every stored point into memory.
    pub fn open(id: ShardId, store: Arc<dyn KvStore>, columns: &ColumnSpec) -> Result<Self> {
        let mut segment = Segment::new(columns.iter().map(|(n, d, dist)| (n.as_str(), *d, *dist)));
        let mut err = None;
        store.scan(Table::Points, b"", None, &mut |k, v| {
            let decoded = PointId::from_key(k)
                .ok_or_else(|| CollectionError::Corrupt(format!("shard {id}: invalid point key {k:?}")))
                .and_then(|pid| PointRecord::decode(v).map(|r| (pid, r)));
            match decoded {
                Ok((pid, r)) => {
                    segment.upsert(pid, r.version, &r.vectors, r.payload);
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
        let last_op = match store.get(Table::Meta, META_LAST_OP)? {
            Some(b) => u64::from_le_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| CollectionError::Corrupt(format!("shard {id}: bad last_op value")))?,
            ),
            None => 0,
        };
        let segment = Arc::new(RwLock::new(segment));
        let applied_op = Arc::new(AtomicU64::new(last_op));
        let failed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel::<Job>();
        let worker = {
            let (store, segment, applied_op, failed) =
                (store.clone(), segment.clone(), applied_op.clone(), failed.clone());
            std::thread::Builder::new()
                .name(format!("shard-{id}-updates"))
                .spawn(move || update_worker(id, rx, store, segment, applied_op, failed))
                .map_err(|e| CollectionError::Corrupt(format!("cannot start update worker: {e}")))?
        };
        Ok(LocalShard {
            id,
            store,
            segment,
            next_op: AtomicU64::new(last_op + 1),
            applied_op,
            tx: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            failed,
        })
    }
}

/// The single writer of a shard.
fn update_worker(
    id: ShardId,
    rx: Receiver<Job>,
    store: Arc<dyn KvStore>,
    segment: Arc<RwLock<Segment>>,
    applied_op: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut pending: Vec<(Job, Effects)> = Vec::new();
        for job in jobs {
            if failed.load(Ordering::SeqCst) {
                reply(
                    job.reply,
                    Err(CollectionError::Unavailable(format!("shard {id} stopped after a storage failure"))),
                );
                continue;
            }
            let needs_clean_state = matches!(
                &job.op,
                UpdateOp::Delete(PointSelection::Filter(_))
                    | UpdateOp::ClearPayload(PointSelection::Filter(_))
                    | UpdateOp::SetPayload { selection: PointSelection::Filter(_), .. }
                    | UpdateOp::OverwritePayload { selection: PointSelection::Filter(_), .. }
                    | UpdateOp::DeletePayload { selection: PointSelection::Filter(_), .. }
                    | UpdateOp::DeleteVectors { selection: PointSelection::Filter(_), .. }
            );
            if needs_clean_state && !pending.is_empty() {
                commit_group(id, &store, &segment, &applied_op, &failed, std::mem::take(&mut pending));
            }
            let computed = {
                let seg = segment.read();
                let mut overlay = Overlay { base: &*seg, pending: HashMap::new() };
                for (_, effs) in &pending {
                    for (pid, r) in effs {
                        overlay.pending.insert(*pid, r.clone());
                    }
                }
                effects::compute(&overlay, &job.op, job.op_num)
            };
            match computed {
                Ok(effs) => pending.push((job, effs)),
                Err(e) => {
                    // The operation is rejected as a whole; its number is simply skipped.
                    reply(job.reply, Err(e));
                }
            }
        }
        if !pending.is_empty() {
            commit_group(id, &store, &segment, &applied_op, &failed, pending);
        }
    }
}

fn reply(to: Option<SyncSender<Result<()>>>, r: Result<()>) {
    if let Some(tx) = to {
        let _ = tx.send(r);
    }
}

/// Commit the effects of several operations as one durable batch, then make them visible.
fn commit_group(
    id: ShardId,
    store: &Arc<dyn KvStore>,
    segment: &Arc<RwLock<Segment>>,
    applied_op: &AtomicU64,
    failed: &AtomicBool,
    group: Vec<(Job, Effects)>,
) {
    let mut batch = WriteBatch::new();
    let mut last = applied_op.load(Ordering::SeqCst);
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
    if let Err(e) = store.write(batch, true) {
        // After a failed commit the disk state is unknown: refuse further writes (poisoned)
        // rather than pretend; the shard reloads cleanly from disk after a restart.
        tracing::error!(shard = id, error = %e, "commit failed; shard stops accepting writes");
        failed.store(true, Ordering::SeqCst);
        for (job, _) in group {
            reply(
                job.reply,
                Err(CollectionError::Storage(qd_storage::StorageError::Corrupt {
                    what: format!("shard {id}"),
                    detail: format!("commit failed: {e}"),
                })),
            );
        }
        return;
    }
    {
        let mut seg = segment.write();
        for (_, effs) in &group {
            for (pid, rec) in effs {
                match rec {
                    Some(r) => seg.upsert(*pid, r.version, &r.vectors, r.payload.clone()),
                    None => {
                        seg.delete(pid);
                    }
                }
            }
        }
    }
    applied_op.store(last, Ordering::SeqCst);
    for (job, _) in group {
        reply(job.reply, Ok(()));
    }
}

impl Shard for LocalShard {
    fn id(&self) -> ShardId {
        self.id
    }

    fn update(&self, op: UpdateOp, wait: bool) -> Result<UpdateResult> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(CollectionError::Unavailable(format!("shard {} stopped after a storage failure", self.id)));
        }
        let (reply_tx, reply_rx) = if wait {
            let (t, r) = sync_channel(1);
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let op_num = {
            let guard = self.tx.lock();
            let tx = guard.as_ref().ok_or(CollectionError::ShuttingDown)?;
            let op_num = self.next_op.fetch_add(1, Ordering::SeqCst);
            tx.send(Job { op, op_num, reply: reply_tx }).map_err(|_| CollectionError::ShuttingDown)?;
            op_num
        };
        match reply_rx {
            Some(rx) => {
                rx.recv().map_err(|_| CollectionError::ShuttingDown)??;
                Ok(UpdateResult { operation_id: Some(op_num), status: UpdateStatus::Completed })
            }
            None => Ok(UpdateResult { operation_id: Some(op_num), status: UpdateStatus::Acknowledged }),
        }
    }

    fn search(&self, req: &ShardSearch) -> Result<Vec<ShardHit>> {
        let seg = self.segment.read();
        let Some(distance) = seg.distance(&req.vector_name) else {
            return Ok(Vec::new());
        };
        let scorer = |v: &[f32]| req.query.score(distance, v);
        Ok(seg
            .search_scored(&req.vector_name, &scorer, req.top, req.filter.as_ref(), req.threshold)
            .into_iter()
            .map(|h| ShardHit { id: h.id, version: seg.version(&h.id).unwrap_or(0), score: h.score })
            .collect())
    }

    fn retrieve(&self, ids: &[PointId], with: &WithSelectors) -> Result<Vec<Record>> {
        let seg = self.segment.read();
        Ok(ids
            .iter()
            .filter(|id| seg.contains(id))
            .map(|id| Record {
                id: *id,
                payload: with.payload.apply(seg.payload(id)),
                vector: with.vector.apply(seg.vectors(id)).map(|v| vectors_to_json(&v)),
                shard_key: None,
                order_value: None,
            })
            .collect())
    }

    fn scroll_ids(&self, from: Option<PointId>, filter: Option<&Filter>, limit: usize) -> Result<Vec<PointId>> {
        Ok(self.segment.read().scroll(from.as_ref(), filter, limit))
    }

    fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        Ok(self.segment.read().count(filter))
    }

    fn stats(&self) -> ShardStats {
        let seg = self.segment.read();
        let (ram_vectors_bytes, ram_payload_bytes) = seg.ram_usage();
        ShardStats {
            shard_id: self.id,
            points_count: seg.len(),
            indexed_vectors_count: 0,
            segments_count: 1,
            ram_vectors_bytes,
            ram_payload_bytes,
            disk_bytes: self.store.disk_usage_bytes(),
            last_operation_id: self.applied_op.load(Ordering::SeqCst),
        }
    }

    fn shutdown(&self) -> Result<()> {
        // Dropping the sender ends the worker once the queue is drained.
        self.tx.lock().take();
        if let Some(w) = self.worker.lock().take() {
            let _ = w.join();
        }
        self.store.flush()?;
        Ok(())
    }
}

impl Drop for LocalShard {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
