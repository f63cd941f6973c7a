//! The background optimizer of one shard: turns a large appendable segment into a sealed,
//! HNSW-indexed one, and vacuums sealed segments with many deleted points. Searches keep
//! running on the old segments while it works; the result is swapped in under a short lock.
//!
//! Index builds read the segment's immutable data through an `Arc` without holding the shard
//! lock; tombstones that arrive meanwhile are kept on the segment itself, so no write is lost.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use qd_core::config::{CollectionConfig, QuantizationConfig};
use qd_core::json_path::JsonPath;
use qd_core::{Payload, PointId};
use qd_segment::hnsw::{HnswGraph, HnswParams, VectorSource};
use qd_segment::payload_index::group_tag;
use qd_segment::{
    FieldIndex, IndexKind, IndexSpec, InvertedIndex, PayloadIndexDef, PayloadReadError, PayloadSource,
    QuantizedVectors, Segment, SegmentData, SegmentIndex,
};
use qd_storage::{KvStore, WriteBatch};
use serde::Serialize;
use serde_json::Value;

use super::index_store;
use super::state::ShardState;
use super::vector_files;
use crate::collection::CollectionShared;

/// One optimization, running or finished, as `/optimizations` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct OptimizationInfo {
    pub name: String,
    pub segment_id: u64,
    pub points: usize,
    pub done: usize,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why an optimization did not complete. It is reported in `/optimizations` and the collection
/// info, and the optimizer backs off before trying again.
#[derive(Debug, thiserror::Error)]
pub enum OptimizerError {
    /// The shard is stopping.
    #[error("HNSW build cancelled")]
    Cancelled,
    /// Too little free disk space for the task's output; nothing was written.
    #[error("No space left on device: {free} bytes free, the {task} needs about {needed}")]
    NoSpace { task: &'static str, free: u64, needed: u64 },
    /// The finished index could not be encoded for storage.
    #[error("encoding the index: {0}")]
    Encode(#[source] crate::error::CollectionError),
    /// The storage refused the result.
    #[error("writing the index: {0}")]
    Storage(#[from] qd_storage::StorageError),
    /// A payload kept on disk, needed to build an index or a merged segment, could not be read.
    #[error("reading payloads: {0}")]
    PayloadRead(#[from] qd_segment::PayloadReadError),
}

impl From<qd_segment::hnsw::Cancelled> for OptimizerError {
    fn from(_: qd_segment::hnsw::Cancelled) -> Self {
        OptimizerError::Cancelled
    }
}

/// How long the optimizer waits before planning again after `failures` failed tasks in a row:
/// doubling from half a second up to a minute, so a full disk is not refilled by retries.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.saturating_sub(1).min(7))).min(MAX_BACKOFF)
}
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Shared between the optimizer thread and readers of its progress.
#[derive(Default)]
pub struct OptimizerStatus {
    pub running: Mutex<Option<OptimizationInfo>>,
    pub progress: AtomicUsize,
    pub completed: Mutex<Vec<OptimizationInfo>>,
    pub last_error: Mutex<Option<String>>,
    /// Segments whose vector files could not be written or mapped (not retried until restart;
    /// their vectors stay in RAM).
    pub unmappable: Mutex<HashSet<u64>>,
}

/// Wakes the optimizer after writes and stops it at shutdown; remembers when the shard last
/// wrote so that work worth doing only on a quiet shard can wait for it.
pub struct Signal {
    pub stop: AtomicBool,
    flag: Mutex<bool>,
    cv: Condvar,
    last_write: Mutex<Instant>,
}

impl Default for Signal {
    fn default() -> Self {
        Signal {
            stop: AtomicBool::new(false),
            flag: Mutex::new(false),
            cv: Condvar::new(),
            last_write: Mutex::new(Instant::now()),
        }
    }
}

impl Signal {
    pub fn wake(&self) {
        *self.flag.lock() = true;
        self.cv.notify_one();
    }
    /// A write was committed: wake the optimizer and restart the quiet period.
    pub fn wrote(&self) {
        *self.last_write.lock() = Instant::now();
        self.wake();
    }
    pub fn quiet(&self) -> bool {
        self.last_write.lock().elapsed() >= QUIET_AFTER
    }
    fn wait(&self, timeout: Duration) {
        let mut f = self.flag.lock();
        if !*f {
            self.cv.wait_for(&mut f, timeout);
        }
        *f = false;
    }
}

pub struct Optimizer {
    pub shard_id: u32,
    pub store: Arc<dyn KvStore>,
    pub state: Arc<RwLock<ShardState>>,
    pub shared: Arc<CollectionShared>,
    pub status: Arc<OptimizerStatus>,
    pub signal: Arc<Signal>,
    /// Where `on_disk` vectors of sealed segments are written.
    pub vectors_dir: PathBuf,
    /// Where sealed segments read their payloads from under `on_disk_payload`.
    pub payloads: Arc<dyn PayloadSource>,
}

/// Hand the memory the allocator holds free back to the system, once a burst of optimizations
/// is over: builds, merges and the ingest before them free far more than they keep, and the
/// allocator would otherwise hold on to it (the process RSS would stay at its peak).
fn release_free_memory() {
    crate::memory::release_free();
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

const COMPLETED_KEPT: usize = 16;

impl Optimizer {
    pub fn run(self) {
        // Work queued behind a task that succeeded runs at once; after a failure (a full disk,
        // a panic) the next try waits `backoff(failures)`, which writes do not cut short.
        let mut failures = 0u32;
        let mut failed_at = Instant::now();
        let mut worked = false;
        while !self.signal.stop.load(Ordering::SeqCst) {
            let config = self.shared.config.read().clone();
            let task = self.plan(&config);
            // Not for an appendable segment about to be sealed: sealing drops its indexes.
            let behind = !matches!(task, Some(Task::SealAndIndex)) && self.index_appendable_payloads();
            let wait = backoff(failures).saturating_sub(failed_at.elapsed());
            if failures > 0 && !wait.is_zero() {
                self.signal.wait(wait.min(Duration::from_millis(500)));
                continue;
            }
            let Some(task) = task else {
                if behind {
                    continue;
                }
                if std::mem::take(&mut worked) {
                    release_free_memory();
                }
                self.signal.wait(Duration::from_millis(500));
                continue;
            };
            worked = true;
            // A panic fails this task (reported as the optimizer's error, retried like a
            // failed task) and never ends the thread or the process.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.check_space(&task)?;
                self.execute(task, &config)
            }));
            let error = match run {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(panic) => {
                    let reason = crate::error::panic_message(&panic);
                    tracing::error!(shard = self.shard_id, %reason, "optimization panicked");
                    *self.status.running.lock() = None;
                    Some(format!("optimization panicked: {reason}"))
                }
            };
            match error {
                None => failures = 0,
                Some(e) => {
                    failures = failures.saturating_add(1);
                    failed_at = Instant::now();
                    *self.status.last_error.lock() = Some(e);
                }
            }
        }
    }

    /// Refuse a task whose output would not fit on the disk with the writes' reserve left
    /// (its size estimated from the vectors and payloads it rewrites).
    fn check_space(&self, task: &Task) -> Result<(), OptimizerError> {
        let (name, bytes) = {
            let st = self.state.read();
            let size = |s: &Segment| (s.data().vector_bytes() + s.payload_bytes()) as u64;
            let sealed = |id: &u64| st.sealed.iter().find(|s| s.id() == *id).map(size).unwrap_or(0);
            match task {
                Task::SealAndIndex => ("indexing", size(&st.appendable)),
                Task::Index(id) => ("indexing", sealed(id)),
                Task::Rebuild(ids) => ("merge", ids.iter().map(sealed).sum()),
                Task::Requantize(id) => ("quantization", sealed(id) / 4),
                Task::IndexPayload(id) => ("payload indexing", sealed(id) / 4),
                Task::Remap(id) => ("vector file", sealed(id)),
                Task::Drop(_) | Task::MovePayloads(_) => return Ok(()),
            }
        };
        let needed = bytes.saturating_add(qd_storage::disk::MIN_FREE_DISK_BYTES);
        match qd_storage::disk::free_bytes_near(&self.vectors_dir) {
            Some(free) if free < needed => Err(OptimizerError::NoSpace { task: name, free, needed }),
            _ => Ok(()),
        }
    }

    /// Have the appendable segment keep the payload indexes the schema declares, and catch
    /// them up where the write path left work (rebuilds, a field declared on a full segment):
    /// one step per hold of the write lock, so reads and writes go on between, for at most
    /// [`CATCH_UP_SLICE`], so that other tasks are planned between slices even under a stream
    /// of writes. Returns whether work is left.
    fn index_appendable_payloads(&self) -> bool {
        let defs = self.shared.payload_index_defs();
        if self.state.read().payload_indexes_differ(&defs) {
            self.state.write().set_payload_indexes(&defs);
        }
        let started = Instant::now();
        while !self.signal.stop.load(Ordering::SeqCst) && started.elapsed() < CATCH_UP_SLICE {
            if !self.state.read().appendable.payload_indexes_behind()
                || !self.state.write().index_appendable_payloads(1)
            {
                return false;
            }
        }
        self.state.read().appendable.payload_indexes_behind()
    }

    /// The next thing worth doing, if any.
    fn plan(&self, config: &CollectionConfig) -> Option<Task> {
        let defs = self.shared.payload_index_defs();
        plan(&self.state.read(), config, &defs, self.signal.quiet(), &self.status.unmappable.lock())
    }

    fn execute(&self, task: Task, config: &CollectionConfig) -> Result<(), OptimizerError> {
        let started = Instant::now();
        let (name, seg_id, data) = match task {
            Task::SealAndIndex => {
                let mut st = self.state.write();
                let fresh = st.new_appendable();
                let mut old = std::mem::replace(&mut st.appendable, fresh);
                old.seal();
                // The room it reserved while growing (up to half its vectors) is given back
                // now: sealed, it never grows again. A copy of at most `indexing_threshold` KiB
                // of vectors, under the lock.
                old.shrink_to_fit();
                let (id, data) = (old.id(), old.data().clone());
                st.sealed.push(old);
                if without_global_graphs(st.appendable.data(), config)
                    && matches!(merge_task(&st, config), Some(Task::Rebuild(ids)) if ids.contains(&id))
                {
                    // A merge rebuilds it next, graphs and all: indexing it now would be
                    // wasted (see `plan`).
                    return Ok(());
                }
                ("indexing", id, data)
            }
            Task::Index(id) => {
                let st = self.state.read();
                let Some(s) = st.sealed.iter().find(|s| s.id() == id) else { return Ok(()) };
                ("indexing", id, s.data().clone())
            }
            Task::Rebuild(ids) => {
                // Sealed segments only ever lose points (every write goes to the appendable
                // segment), so live points are copied from clones (shared data, own deletion
                // marks) with no lock held: reads and writes go on during the copy, and the
                // swap in `rebuild` drops the points that died meanwhile.
                let (mut sources, columns, fresh_id) = {
                    let mut st = self.state.write();
                    let sources: Vec<Segment> = st.sealed.iter().filter(|s| ids.contains(&s.id())).cloned().collect();
                    if sources.len() != ids.len() {
                        return Ok(());
                    }
                    st.next_segment_id += 1;
                    (sources, st.columns.clone(), st.next_segment_id - 1)
                };
                // The largest source whose graphs cover all its slots goes first: its offsets
                // stay the same in the merged segment, so its graphs are extended, not rebuilt.
                sources.sort_by_key(|s| std::cmp::Reverse((reusable_index(s).is_some(), s.slots())));
                let base = reusable_index(&sources[0]);
                // An `is_tenant` field orders the points by tenant where no global graph is
                // built (`m: 0`): a global graph would be built from points inserted tenant by
                // tenant, and a base's graph could not be extended.
                let groups_only = without_global_graphs(sources[0].data(), config);
                let tenant = self
                    .shared
                    .payload_schema
                    .read()
                    .iter()
                    .find(|(_, spec)| spec.is_tenant())
                    .and_then(|(field, _)| field.parse::<JsonPath>().ok())
                    .filter(|_| groups_only);
                let base = base.filter(|_| tenant.is_none());
                let fresh = compact(&sources, &columns, fresh_id, tenant.as_ref())?;
                drop(sources);
                return self.rebuild(&ids, fresh, base, config, started);
            }
            Task::Requantize(id) => return self.requantize(id, config, started),
            Task::IndexPayload(id) => return self.reindex_payload(id, started),
            Task::Remap(id) => {
                self.remap(id, config);
                return Ok(());
            }
            Task::MovePayloads(id) => return self.move_payloads(id, config.params.on_disk_payload),
            Task::Drop(id) => {
                let mut batch = WriteBatch::new();
                index_store::delete_segment(&mut batch, id);
                self.store.write(batch, true)?;
                self.state.write().sealed.retain(|s| s.id() != id);
                vector_files::remove_segment(&self.vectors_dir, id);
                return Ok(());
            }
        };
        self.begin(name, seg_id, data.len());
        let result = self.build_index(&data, None, config).and_then(|index| {
            // Vector files are written and checked before the index commits, without the lock.
            let remap = self.prepare_vectors(seg_id, &data, &index, config);
            let mut batch = WriteBatch::new();
            index_store::put_segment(&mut batch, seg_id, &data, &index, |n| remap.maps_sparse(n))
                .map_err(OptimizerError::Encode)?;
            self.store.write(batch, true)?;
            Ok((index, remap))
        });
        // Mapping swaps the segment's storage in place: no other reference to its data may
        // be alive.
        drop(data);
        match result {
            Ok((index, remap)) => {
                let mut st = self.state.write();
                let mut held = None;
                if let Some(s) = st.sealed.iter_mut().find(|s| s.id() == seg_id) {
                    s.set_index(Arc::new(index));
                    self.commit_vectors(s, remap);
                    held = self.payloads_to_disk(s, config);
                }
                drop(st);
                drop(held);
                self.finish(started, None);
                Ok(())
            }
            Err(e) => {
                self.finish(started, Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// Prepare a segment's `on_disk` vector storage (files written and checked) with no lock
    /// held.
    fn prepare_vectors(
        &self,
        seg_id: u64,
        data: &SegmentData,
        index: &SegmentIndex,
        config: &CollectionConfig,
    ) -> vector_files::Remapping {
        let may_map = !self.status.unmappable.lock().contains(&seg_id);
        vector_files::prepare(&self.vectors_dir, seg_id, data, index, config, may_map)
    }

    /// Swap the prepared storage in; a failure is reported, leaves the vectors in RAM and is
    /// not retried for this segment until restart.
    fn commit_vectors(&self, seg: &mut Segment, remap: vector_files::Remapping) {
        if let Err(e) = vector_files::commit(&self.vectors_dir, seg, remap) {
            tracing::warn!(shard = self.shard_id, segment = seg.id(), error = %e, "vectors stay in RAM");
            self.status.unmappable.lock().insert(seg.id());
        }
    }

    /// Bring an indexed segment's vector storage in line with `on_disk` (changed by PATCH, or
    /// a file missing after a restore). The file work runs without the lock.
    fn remap(&self, seg_id: u64, config: &CollectionConfig) {
        let (data, index) = {
            let st = self.state.read();
            let Some(s) = st.sealed.iter().find(|s| s.id() == seg_id) else { return };
            let Some(index) = s.index() else { return };
            (s.data().clone(), index.clone())
        };
        let remap = self.prepare_vectors(seg_id, &data, &index, config);
        let newly_mapped = remap.sparse_mapped();
        // Swapping storage in place needs the only references to the data and index.
        drop((data, index));
        let mut st = self.state.write();
        let Some(s) = st.sealed.iter_mut().find(|s| s.id() == seg_id) else { return };
        self.commit_vectors(s, remap);
        let mapped: Vec<String> = newly_mapped
            .into_iter()
            .filter(|n| s.data().sparse_column(n).is_some_and(|c| c.mapping().is_some()))
            .collect();
        drop(st);
        // An inverted index now served from its file need not stay in the database too (a
        // restart would decode it only to drop it). The file is durable already.
        if !mapped.is_empty() {
            let mut batch = WriteBatch::new();
            for name in &mapped {
                index_store::delete_sparse(&mut batch, seg_id, name);
            }
            if let Err(e) = self.store.write(batch, true) {
                tracing::warn!(shard = self.shard_id, segment = seg_id, error = %e, "stored sparse index kept");
            }
        }
    }

    /// Under `on_disk_payload`, let an indexed segment read its payloads from the database;
    /// gives back what RAM held, to be dropped after the lock is released.
    fn payloads_to_disk(&self, seg: &mut Segment, config: &CollectionConfig) -> Option<Vec<Option<Payload>>> {
        if !config.params.on_disk_payload || seg.data().payloads_on_disk() {
            return None;
        }
        seg.payloads_to_disk(self.payloads.clone())
    }

    /// Bring an indexed segment's payload storage in line with `on_disk_payload` (changed by
    /// PATCH). Payloads going back to RAM are read without the lock, from a clone of the
    /// segment (shared data, its own deletion marks: dead slots are not read).
    fn move_payloads(&self, seg_id: u64, on_disk: bool) -> Result<(), OptimizerError> {
        let moved = if on_disk {
            let mut st = self.state.write();
            let Some(s) = st.sealed.iter_mut().find(|s| s.id() == seg_id) else { return Ok(()) };
            let held = s.payloads_to_disk(self.payloads.clone());
            drop(st);
            held.is_some()
        } else {
            let seg = {
                let st = self.state.read();
                let Some(s) = st.sealed.iter().find(|s| s.id() == seg_id) else { return Ok(()) };
                s.clone()
            };
            let payloads = seg.read_payloads()?;
            drop(seg);
            let mut st = self.state.write();
            let Some(s) = st.sealed.iter_mut().find(|s| s.id() == seg_id) else { return Ok(()) };
            s.payloads_to_ram(payloads)
        };
        if !moved {
            // The optimizer's own clone of the data was still alive: plan again shortly.
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Replace sealed segments `old_ids` by one indexed segment holding their live points
    /// (vacuum for one source, merge for several).
    fn rebuild(
        &self,
        old_ids: &[u64],
        mut fresh: Segment,
        base: Option<Arc<SegmentIndex>>,
        config: &CollectionConfig,
        started: Instant,
    ) -> Result<(), OptimizerError> {
        self.begin(if old_ids.len() == 1 { "vacuum" } else { "merge" }, fresh.id(), fresh.len());
        let data = fresh.data().clone();
        let result = self.build_index(&data, base.as_deref(), config).and_then(|index| {
            let remap = self.prepare_vectors(fresh.id(), &data, &index, config);
            let mut batch = WriteBatch::new();
            index_store::put_segment(&mut batch, fresh.id(), &data, &index, |n| remap.maps_sparse(n))
                .map_err(OptimizerError::Encode)?;
            for id in old_ids {
                index_store::delete_segment(&mut batch, *id);
            }
            self.store.write(batch, true)?;
            Ok((index, remap))
        });
        match result {
            Ok((index, remap)) => {
                fresh.set_index(Arc::new(index));
                let members: Vec<_> = data.members().map(|(id, _)| id).collect();
                drop(data);
                // `fresh` is not shared yet: its storage is swapped before the lock is taken.
                self.commit_vectors(&mut fresh, remap);
                drop(self.payloads_to_disk(&mut fresh, config));
                // Points deleted or rewritten while we worked are no longer live in the sources.
                // They are found under the read lock; the write lock redoes it only if a source
                // lost more points in between (sealed segments only ever lose points).
                let dead_now = |st: &ShardState| -> (Vec<PointId>, usize) {
                    let sources: Vec<&Segment> = st.sealed.iter().filter(|s| old_ids.contains(&s.id())).collect();
                    let dead = members.iter().filter(|id| !sources.iter().any(|s| s.contains(id))).copied().collect();
                    (dead, sources.iter().map(|s| s.deleted_count()).sum())
                };
                let (mut dead, marks) = dead_now(&self.state.read());
                let mut st = self.state.write();
                let marks_now: usize =
                    st.sealed.iter().filter(|s| old_ids.contains(&s.id())).map(Segment::deleted_count).sum();
                if marks_now != marks {
                    dead = dead_now(&st).0;
                }
                // A vector added or dropped while we worked.
                fresh.set_columns(&st.columns);
                for id in &dead {
                    fresh.delete(id);
                }
                st.sealed.retain(|s| !old_ids.contains(&s.id()));
                st.sealed.push(fresh);
                drop(st);
                for id in old_ids {
                    vector_files::remove_segment(&self.vectors_dir, *id);
                }
                self.finish(started, None);
                Ok(())
            }
            Err(e) => {
                self.finish(started, Some(e.to_string()));
                Err(e)
            }
        }
    }

    fn begin(&self, name: &str, segment_id: u64, points: usize) {
        self.status.progress.store(0, Ordering::SeqCst);
        *self.status.running.lock() = Some(OptimizationInfo {
            name: name.to_string(),
            segment_id,
            points,
            done: 0,
            started_at: now(),
            finished_at: None,
            duration_sec: None,
            error: None,
        });
    }

    fn finish(&self, started: Instant, error: Option<String>) {
        if let Some(e) = &error {
            tracing::error!(shard = self.shard_id, error = %e, "optimization failed");
        }
        let Some(mut info) = self.status.running.lock().take() else { return };
        info.done = self.status.progress.load(Ordering::SeqCst);
        info.finished_at = Some(now());
        info.duration_sec = Some(started.elapsed().as_secs_f64());
        info.error = error.clone();
        *self.status.last_error.lock() = error;
        tracing::info!(shard = self.shard_id, op = %info.name, points = info.points, secs = info.duration_sec, "optimization finished");
        let mut done = self.status.completed.lock();
        done.push(info);
        let excess = done.len().saturating_sub(COMPLETED_KEPT);
        done.drain(..excess);
    }

    /// HNSW graphs for every vector column, plus extra links per payload-index value. Graphs
    /// of `base` (an index over a prefix of `data`'s offsets) are extended instead of rebuilt.
    fn build_index(
        &self,
        data: &SegmentData,
        base: Option<&SegmentIndex>,
        config: &CollectionConfig,
    ) -> Result<SegmentIndex, OptimizerError> {
        let _turn = self.build_turn()?;
        let defs = self.shared.payload_index_defs();
        // Payloads are read once (they may be on disk), for the payload indexes; the groups
        // come from their postings, and each vector keeps those large enough for its own
        // full-scan threshold.
        let payload = build_payload_indexes(data, &defs, None, &|_| true)?;
        let groups = payload_groups(&payload);
        let mut graphs = BTreeMap::new();
        for (name, col) in data.columns() {
            if col.len() == 0 {
                continue;
            }
            let hnsw = config.hnsw_for(name);
            let payload_m = hnsw.payload_m.unwrap_or(hnsw.m);
            let full_scan_points = hnsw.full_scan_threshold * 1024 / (col.dim() * col.element().size()).max(1);
            // A group of every point needs no links of its own beside a global graph.
            let (tags, large): (Vec<u64>, Vec<Vec<u32>>) = groups
                .iter()
                .filter(|(_, g)| g.len() >= full_scan_points && (hnsw.m == 0 || g.len() < data.len()))
                .map(|(tag, g)| (*tag, g.to_vec()))
                .unzip();
            let params = build_params(&hnsw);
            let (progress, stop) = (&self.status.progress, &self.signal.stop);
            let mut graph = if hnsw.m > 0 {
                match base.and_then(|b| b.graphs.get(name)).filter(|g| !g.is_groups_only()) {
                    Some(g) => g.extend(col, col.distance, &params, progress, stop),
                    None => HnswGraph::build(col, col.distance, &params, progress, stop),
                }?
            } else if payload_m > 0 && !large.is_empty() {
                // `m: 0` with `payload_m`: no global graph, one per large group (tenant).
                HnswGraph::groups_only(col.len(), &params)
            } else {
                continue;
            };
            if !large.is_empty() {
                graph.add_group_links(col, col.distance, &large, payload_m, stop)?;
            }
            if graph.is_groups_only() {
                // Searches enter it only through the groups it linked.
                graph.tag_groups(tags);
            }
            graphs.insert(name.to_string(), graph);
        }
        // Multivectors: a graph scored by max-sim between points (as Qdrant indexes them); a
        // base graph over a prefix of the offsets is extended.
        for (name, col) in data.multi_columns() {
            let hnsw = config.hnsw_for(name);
            if col.is_empty() || hnsw.m == 0 {
                continue;
            }
            let params = build_params(&hnsw);
            let (progress, stop) = (&self.status.progress, &self.signal.stop);
            let graph = match base.and_then(|b| b.graphs.get(name)) {
                Some(g) => g.extend_multi(col, col.distance, col.dim(), &params, progress, stop),
                None => HnswGraph::build_multi(col, col.distance, col.dim(), &params, progress, stop),
            }?;
            graphs.insert(name.to_string(), graph);
        }
        let sparse = data.sparse_columns().map(|(name, col)| (name.to_string(), InvertedIndex::build(col))).collect();
        Ok(SegmentIndex { graphs, quantized: quantize(data, config), sparse, payload })
    }

    /// Wait for this process's index-build turn: a build already uses every core
    /// (`max_indexing_threads` 0), so builds of several shards at once would only oversubscribe
    /// the CPU and slow the writes that run beside them. Gives up when the shard stops.
    fn build_turn(&self) -> Result<parking_lot::MutexGuard<'static, ()>, OptimizerError> {
        static BUILD_TURN: Mutex<()> = Mutex::new(());
        loop {
            if let Some(g) = BUILD_TURN.try_lock_for(Duration::from_millis(100)) {
                return Ok(g);
            }
            if self.signal.stop.load(Ordering::SeqCst) {
                return Err(OptimizerError::Cancelled);
            }
        }
    }

    /// Rebuild only the quantized vectors of an indexed segment (after the quantization config
    /// changed); the graphs are kept.
    fn requantize(&self, seg_id: u64, config: &CollectionConfig, started: Instant) -> Result<(), OptimizerError> {
        self.rebuild_part(seg_id, "quantization", started, |data, old, batch| {
            let quantized = quantize(data, config);
            index_store::put_quantized(batch, seg_id, &quantized);
            Ok(SegmentIndex { quantized, ..old.clone() })
        })
    }

    /// Rebuild only the payload indexes of an indexed segment (after an index was created or
    /// dropped); graphs and the rest are kept.
    /// Indexes kept are reused, new ones index the live slots only.
    fn reindex_payload(&self, seg_id: u64, started: Instant) -> Result<(), OptimizerError> {
        let defs = self.shared.payload_index_defs();
        let live = {
            let st = self.state.read();
            st.sealed.iter().find(|s| s.id() == seg_id).map(Segment::live_slots).unwrap_or_default()
        };
        self.rebuild_part(seg_id, "payload_index", started, |data, old, batch| {
            let keep = |o: u32| live.get(o as usize).copied().unwrap_or(false);
            let payload = build_payload_indexes(data, &defs, Some(&old.payload), &keep)?;
            index_store::put_payload(batch, seg_id, &payload);
            Ok(SegmentIndex { payload, ..old.clone() })
        })
    }

    /// Replace one part of an indexed segment's index, reported as optimization `name`: `part`
    /// builds the new index from the segment's data and old index, adding what it persists to
    /// the batch, which is written before the new index is attached.
    fn rebuild_part(
        &self,
        seg_id: u64,
        name: &str,
        started: Instant,
        part: impl FnOnce(&SegmentData, &SegmentIndex, &mut WriteBatch) -> Result<SegmentIndex, OptimizerError>,
    ) -> Result<(), OptimizerError> {
        let (data, old) = {
            let st = self.state.read();
            let Some(s) = st.sealed.iter().find(|s| s.id() == seg_id) else { return Ok(()) };
            let Some(ix) = s.index() else { return Ok(()) };
            (s.data().clone(), ix.clone())
        };
        self.begin(name, seg_id, data.len());
        let mut batch = WriteBatch::new();
        let written =
            part(&data, &old, &mut batch).and_then(|index| Ok(self.store.write(batch, true).map(|()| index)?));
        let index = match written {
            Ok(index) => index,
            Err(e) => {
                self.finish(started, Some(e.to_string()));
                return Err(e);
            }
        };
        let mut st = self.state.write();
        if let Some(s) = st.sealed.iter_mut().find(|s| s.id() == seg_id) {
            s.set_index(Arc::new(index));
        }
        drop(st);
        self.status.progress.store(data.len(), Ordering::SeqCst);
        self.finish(started, None);
        Ok(())
    }
}

/// The payload indexes `defs` declares over `data`: those `reuse` already holds with the same
/// type and settings are kept, the others are built in one pass over the slots `keep` keeps
/// (each payload read once, however many indexes are built).
fn build_payload_indexes(
    data: &SegmentData,
    defs: &[PayloadIndexDef],
    reuse: Option<&BTreeMap<String, FieldIndex>>,
    keep: &dyn Fn(u32) -> bool,
) -> Result<BTreeMap<String, FieldIndex>, PayloadReadError> {
    let mut out = BTreeMap::new();
    let mut to_build = Vec::new();
    for d in defs {
        let key = d.key();
        match reuse.and_then(|r| r.get(&key)).filter(|f| f.slots() == data.len() && d.matches(f)) {
            Some(kept) => {
                out.insert(key, kept.clone());
            }
            None => to_build.push((key, d)),
        }
    }
    let specs: Vec<IndexSpec<'_>> = to_build.iter().map(|(_, d)| d.spec()).collect();
    let built = FieldIndex::build_all(&specs, data, keep)?;
    out.extend(to_build.into_iter().map(|(key, _)| key).zip(built));
    Ok(out)
}

/// Whether a segment's payload indexes differ from those `defs` declares (a text index also
/// by its analysis settings).
fn payload_stale(s: &Segment, defs: &[PayloadIndexDef]) -> bool {
    let Some(ix) = s.index() else { return false };
    defs.len() != ix.payload.len() || defs.iter().any(|d| ix.payload.get(&d.key()).is_none_or(|f| !d.matches(f)))
}

/// Vector names of `data` whose effective config asks for quantization, with whether it is
/// binary.
fn wants_quantized<'a>(
    data: &'a SegmentData,
    config: &'a CollectionConfig,
) -> impl Iterator<Item = (&'a str, bool)> + 'a {
    let dense = data.columns().filter(|(_, col)| col.len() > 0).map(|(name, _)| name);
    let multi = data.multi_columns().filter(|(_, col)| !col.is_empty()).map(|(name, _)| name);
    dense.chain(multi).filter_map(|name| config.quantization_for(name).map(|q| (name, q.is_binary())))
}

/// Int8 codes (or sign bits) for every column, dense or multivector, whose effective config
/// asks for quantization.
fn quantize(data: &SegmentData, config: &CollectionConfig) -> BTreeMap<String, QuantizedVectors> {
    let mut out = BTreeMap::new();
    for (name, _) in wants_quantized(data, config) {
        let q = match (config.quantization_for(name), data.column(name), data.multi_column(name)) {
            (Some(QuantizationConfig::Scalar(s)), Some(col), _) => {
                QuantizedVectors::build(col, col.distance, s.quantile())
            }
            (Some(QuantizationConfig::Binary(_)), Some(col), _) => QuantizedVectors::build_binary(col, col.distance),
            (Some(QuantizationConfig::Scalar(s)), None, Some(col)) => QuantizedVectors::build_multi(col, s.quantile()),
            (Some(QuantizationConfig::Binary(_)), None, Some(col)) => QuantizedVectors::build_multi_binary(col),
            _ => continue,
        };
        out.insert(name.to_string(), q);
    }
    out
}

/// Whether an indexed segment's quantized vectors disagree with the config (enabled,
/// disabled or switched between scalar and binary since it was built).
fn quantization_stale(s: &Segment, config: &CollectionConfig) -> bool {
    let Some(ix) = s.index() else { return false };
    let wanted: Vec<(&str, bool)> = wants_quantized(s.data(), config).collect();
    wanted.len() != ix.quantized.len()
        || wanted.iter().any(|(n, binary)| ix.quantized.get(*n).is_none_or(|q| q.is_binary() != *binary))
}

/// The longest the optimizer works on the appendable segment's payload indexes before
/// planning its other tasks again.
const CATCH_UP_SLICE: Duration = Duration::from_millis(200);

/// How long a shard must go without writes before its appendable remainder is indexed.
const QUIET_AFTER: Duration = Duration::from_secs(2);

/// The next optimization a shard needs, if any (also tells whether the collection is yellow).
///
/// Besides Qdrant's rules (seal + index over `indexing_threshold`, vacuum, merge), a shard
/// that has been `quiet` (no writes for [`QUIET_AFTER`]) also indexes an appendable segment
/// holding more than a tenth of `full_scan_threshold`: that remainder would otherwise be
/// scanned exactly by every search until the next write fills it up, and with several shards
/// each shard keeps such a remainder.
fn plan(
    state: &ShardState,
    config: &CollectionConfig,
    defs: &[PayloadIndexDef],
    quiet: bool,
    unmappable: &HashSet<u64>,
) -> Option<Task> {
    let opt = &config.optimizer_config;

    let appendable_kb = state.appendable.data().vector_bytes() / 1024;
    if let Some(t) = opt.indexing_threshold.filter(|t| *t > 0 && !state.appendable.is_empty()) {
        let remainder_kb = (config.hnsw_config.full_scan_threshold / 10).max(1).min(t);
        if appendable_kb >= t || (quiet && appendable_kb >= remainder_kb) {
            return Some(Task::SealAndIndex);
        }
    }
    // Segments a merge will rebuild anyway are not indexed first where no global graph
    // could be extended.
    let deferred: Vec<u64> = match merge_task(state, config) {
        Some(Task::Rebuild(ids)) if without_global_graphs(state.appendable.data(), config) => ids,
        _ => Vec::new(),
    };
    for s in &state.sealed {
        if s.is_empty() {
            return Some(Task::Drop(s.id()));
        }
        if s.index().is_none() {
            if deferred.contains(&s.id()) {
                continue;
            }
            return Some(Task::Index(s.id()));
        }
        if quantization_stale(s, config) {
            return Some(Task::Requantize(s.id()));
        }
        if payload_stale(s, defs) {
            return Some(Task::IndexPayload(s.id()));
        }
        if !vector_files::in_place(s, config, !unmappable.contains(&s.id())) {
            return Some(Task::Remap(s.id()));
        }
        if s.data().payloads_on_disk() != config.params.on_disk_payload {
            return Some(Task::MovePayloads(s.id()));
        }
        let slots = s.slots();
        if slots >= opt.vacuum_min_vector_number
            && slots > 0
            && s.deleted_count() as f64 / slots as f64 > opt.deleted_threshold
        {
            return Some(Task::Rebuild(vec![s.id()]));
        }
    }
    merge_task(state, config)
}

/// Too many sealed segments: the two smallest to merge, if the result stays under the limit.
/// Automatic target: the cores shared by the collection's shards on this node, so that a
/// search visits about as many graphs whatever the shard count.
fn merge_task(state: &ShardState, config: &CollectionConfig) -> Option<Task> {
    let opt = &config.optimizer_config;
    let target = match opt.default_segment_number {
        0 => {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
            (cores / config.params.shard_number.max(1) as usize).max(1)
        }
        n => n,
    };
    if state.sealed.len() <= target {
        return None;
    }
    let max_kb = opt.max_segment_size.unwrap_or(DEFAULT_MAX_SEGMENT_KB);
    // Sizes in bytes of live vector data (a segment's bytes scaled by its live share).
    let live_bytes = |s: &Segment| s.data().vector_bytes() * s.len() / s.slots().max(1);
    let mut by_size: Vec<(usize, u64)> = state.sealed.iter().map(|s| (live_bytes(s), s.id())).collect();
    by_size.sort_unstable();
    let [(a, ida), (b, idb), ..] = by_size[..] else { return None };
    // Merging into a segment without tombstones extends its graph (cost of the smaller one);
    // otherwise both are rebuilt, which is worth it only between segments of similar size, or
    // when one more segment than the target would remain anyway.
    let extendable = state.sealed.iter().any(|s| s.id() == idb && reusable_index(s).is_some());
    let worth_it = extendable || a * 4 >= b || state.sealed.len() > target + 1;
    ((a + b) / 1024 <= max_kb && worth_it).then(|| Task::Rebuild(vec![ida, idb]))
}

/// Whether no vector of the shard gets a global graph (`m: 0` for every dense and multivector
/// column): a merge then rebuilds every graph it keeps, so a segment about to be merged is
/// better indexed by the merge, once.
fn without_global_graphs(data: &SegmentData, config: &CollectionConfig) -> bool {
    let mut names = data.columns().map(|(n, _)| n).chain(data.multi_columns().map(|(n, _)| n));
    names.all(|name| config.hnsw_for(name).m == 0)
}

/// Whether the optimizer has work pending for this shard state (`quiet`: whether the shard has
/// gone quiet, so that its appendable remainder is due for indexing).
pub fn has_work(
    state: &ShardState,
    config: &CollectionConfig,
    defs: &[PayloadIndexDef],
    quiet: bool,
    unmappable: &HashSet<u64>,
) -> bool {
    plan(state, config, defs, quiet, unmappable).is_some()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Task {
    SealAndIndex,
    Index(u64),
    /// Vacuum (one source) or merge (several) into one new indexed segment.
    Rebuild(Vec<u64>),
    Drop(u64),
    /// Rebuild the quantized vectors of an indexed segment (quantization config changed).
    Requantize(u64),
    /// Rebuild the payload indexes of an indexed segment (a payload index was created or dropped).
    IndexPayload(u64),
    /// Move an indexed segment's vectors to or from their memory-mapped files (`on_disk`).
    Remap(u64),
    /// Move an indexed segment's payloads to or from the database (`on_disk_payload`).
    MovePayloads(u64),
}

/// Graph build parameters of a vector's HNSW config (a fixed seed: builds are reproducible).
fn build_params(hnsw: &qd_core::config::HnswConfig) -> HnswParams {
    HnswParams { m: hnsw.m, ef_construct: hnsw.ef_construct, max_threads: hnsw.max_indexing_threads, seed: 42 }
}

/// Largest segment a merge may produce when `max_segment_size` is not set, in KiB of vectors.
const DEFAULT_MAX_SEGMENT_KB: usize = 256 * 1024;

/// The index of a sealed segment without tombstones whose graphs cover every slot: a merge
/// that puts this segment first can extend its graphs.
fn reusable_index(s: &Segment) -> Option<Arc<SegmentIndex>> {
    let ix = s.index()?;
    let complete = s.deleted_count() == 0 && ix.graphs.values().all(|g| g.len() == s.slots());
    complete.then(|| ix.clone())
}

/// A sealed segment holding the live points of `sources` (same versions), in the order given,
/// or grouped by their value at `tenant` (the first string there; points without one first,
/// the order given kept within a group), with the shard's current columns (a vector added
/// since a source was sealed is kept).
fn compact(
    sources: &[Segment],
    columns: &[qd_segment::ColumnSpec],
    id: u64,
    tenant: Option<&JsonPath>,
) -> Result<Segment, PayloadReadError> {
    let mut live: Vec<(usize, PointId, u64)> = Vec::new();
    for (i, seg) in sources.iter().enumerate() {
        live.extend(seg.data().members().filter(|(pid, _)| seg.contains(pid)).map(|(pid, v)| (i, pid, v)));
    }
    if let Some(path) = tenant {
        // Each point's tenant from its source's index of the field where it has one (no
        // payload read), else from its payload; then the points in key order (payloads are
        // not all held at once).
        let field = path.to_string();
        let indexed: Vec<Option<(Vec<u32>, Vec<String>)>> =
            sources.iter().map(|s| tenant_of_slots(s, &field)).collect();
        let mut keyed = Vec::with_capacity(live.len());
        for (i, pid, version) in live {
            // `Some(key)`: the index tells; `None`: the payload does.
            let known = indexed[i].as_ref().and_then(|(slot_value, values)| {
                let at = *slot_value.get(sources[i].slot_of(&pid)? as usize)?;
                values.get(at as usize).map(|v| Some(Cow::Borrowed(v.as_str())))
            });
            let key = match known {
                Some(key) => key,
                None => sources[i].try_payload(&pid)?.and_then(|p| {
                    path.values_flat(&p).into_iter().find_map(|v| v.as_str().map(|s| Cow::Owned(s.to_owned())))
                }),
            };
            keyed.push((key, (i, pid, version)));
        }
        keyed.sort_by(|a: &(Option<Cow<'_, str>>, _), b| a.0.cmp(&b.0));
        live = keyed.into_iter().map(|(_, point)| point).collect();
    }
    let mut fresh = Segment::new(id, columns);
    for (i, pid, version) in live {
        let seg = &sources[i];
        let payload = seg.try_payload(&pid)?.map(std::borrow::Cow::into_owned);
        fresh.upsert(pid, version, &seg.vectors(&pid), payload);
    }
    fresh.seal();
    fresh.shrink_to_fit();
    Ok(fresh)
}

/// A slot whose tenant the index cannot tell (none, or several values): read from its payload.
const TENANT_UNKNOWN: u32 = u32::MAX;

/// For a segment whose keyword or uuid index of `field` covers its slots: each slot's position
/// in the index's values ([`TENANT_UNKNOWN`] for a slot with none or several), and the values.
fn tenant_of_slots(seg: &Segment, field: &str) -> Option<(Vec<u32>, Vec<String>)> {
    let ix =
        seg.index()?.payload.get(field).filter(|ix| {
            ix.slots() == seg.slots() && matches!(ix.kind(), Some(IndexKind::Keyword | IndexKind::Uuid))
        })?;
    const UNSEEN: u32 = u32::MAX - 1;
    let mut slot_value = vec![UNSEEN; seg.slots()];
    let mut values = Vec::new();
    for (value, posting) in ix.value_groups() {
        let Value::String(v) = value else { continue };
        let at = u32::try_from(values.len()).ok().filter(|&at| at < UNSEEN)?;
        values.push(v);
        for &o in posting {
            if let Some(slot) = slot_value.get_mut(o as usize) {
                *slot = if *slot == UNSEEN { at } else { TENANT_UNKNOWN };
            }
        }
    }
    slot_value.iter_mut().filter(|s| **s == UNSEEN).for_each(|s| *s = TENANT_UNKNOWN);
    Some((slot_value, values))
}

/// Offsets grouped by value of each keyword, uuid, integer and bool payload index (groups of
/// at least two points, the indexes' postings), each with its [`group_tag`], in the order of
/// the fields and the values' JSON text so that builds from the same data link alike; callers
/// keep those large enough that a filtered search on them would walk the graph (smaller ones
/// are scanned exactly).
fn payload_groups(payload: &BTreeMap<String, FieldIndex>) -> Vec<(u64, &[u32])> {
    let mut out = Vec::new();
    for (field, ix) in payload {
        let mut values = ix.value_groups();
        values.sort_by_cached_key(|(v, _)| v.to_string());
        out.extend(values.into_iter().filter(|(_, p)| p.len() >= 2).map(|(v, p)| (group_tag(field, &v), p)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::PayloadIndexSpec;

    /// A merge with a tenant field groups each tenant's live points together (points without
    /// a tenant first), keeping the sources' order within a tenant; without one it keeps the
    /// sources' order. Every live point is copied with its version and payload.
    #[test]
    fn compact_groups_points_by_tenant() {
        use qd_core::vectors::{NamedVectors, Vector};
        let cols = vec![qd_segment::ColumnSpec::dense("", 2, qd_core::Distance::Dot)];
        let tenant_of = |i: u64| (!i.is_multiple_of(7)).then(|| ["b", "a", "c"][(i % 3) as usize]);
        let segment = |id: u64, ids: std::ops::Range<u64>| {
            let mut s = Segment::new(id, &cols);
            for i in ids {
                let v = NamedVectors::from([(String::new(), Vector::Dense(vec![i as f32, 1.0]))]);
                let payload =
                    tenant_of(i).map(|t| serde_json::json!({"t": t, "i": i}).as_object().cloned().expect("map"));
                s.upsert(PointId::Num(i), i + 100, &v, payload);
            }
            s.seal();
            s
        };
        let a = segment(1, 0..30);
        let mut b = segment(2, 30..60);
        b.delete(&PointId::Num(31));
        let num = |p: PointId| match p {
            PointId::Num(n) => n,
            PointId::Uuid(_) => unreachable!("numeric ids"),
        };
        let path: JsonPath = "t".parse().expect("path");
        let fresh = compact(&[a.clone(), b.clone()], &cols, 3, Some(&path)).expect("in RAM");
        let order: Vec<u64> = fresh.data().members().map(|(p, _)| num(p)).collect();
        let mut want: Vec<u64> = (0..60).filter(|&i| i != 31).collect();
        want.sort_by_key(|&i| tenant_of(i));
        assert_eq!(order, want);
        for (p, version) in fresh.data().members() {
            assert_eq!(version, num(p) + 100);
            let t = fresh.payload(&p).and_then(|pl| pl.get("t").and_then(|v| v.as_str().map(str::to_owned)));
            assert_eq!(t.as_deref(), tenant_of(num(p)));
            assert_eq!(fresh.vectors(&p), b.vectors(&p).into_iter().chain(a.vectors(&p)).collect());
        }
        // The same order when the sources' tenant indexes give the keys instead of their
        // payloads (one of them with a tombstone).
        let with_index = |s: &Segment, kind: IndexKind| {
            let mut s = s.clone();
            let ix = FieldIndex::build(kind, &path, s.data()).expect("in RAM");
            let payload = BTreeMap::from([("t".to_string(), ix)]);
            s.set_index(Arc::new(SegmentIndex { payload, ..Default::default() }));
            s
        };
        let (ia, ib) = (with_index(&a, IndexKind::Keyword), with_index(&b, IndexKind::Keyword));
        assert!(tenant_of_slots(&ia, "t").is_some() && tenant_of_slots(&ib, "t").is_some(), "the indexes are used");
        let from_index = compact(&[ia, ib], &cols, 5, Some(&path)).expect("in RAM");
        assert_eq!(from_index.data().members().map(|(p, _)| num(p)).collect::<Vec<_>>(), want);
        // An index of another kind at the path is not used.
        assert!(tenant_of_slots(&with_index(&a, IndexKind::Integer), "t").is_none());
        let plain = compact(&[a, b], &cols, 4, None).expect("in RAM");
        let order: Vec<u64> = plain.data().members().map(|(p, _)| num(p)).collect();
        assert_eq!(order, (0..60).filter(|&i| i != 31).collect::<Vec<_>>());
    }

    /// Where no global graph is built (`m: 0`), sealed segments a merge is about to rebuild are
    /// not indexed first; with a global graph (extended by merges) they are.
    #[test]
    fn segments_about_to_merge_are_indexed_by_the_merge_without_global_graphs() {
        use qd_core::config::{CollectionDefaults, CreateCollection};
        use qd_core::vectors::{NamedVectors, Vector};
        let config = |m: usize| {
            let req: CreateCollection = serde_json::from_value(serde_json::json!({
                "vectors": {"size": 2, "distance": "Dot"},
                "hnsw_config": {"m": m, "payload_m": 16},
                "optimizers_config": {"default_segment_number": 1, "indexing_threshold": 0}
            }))
            .expect("request");
            req.into_config(&CollectionDefaults::default()).expect("config")
        };
        let columns = super::super::local::column_specs(&config(0).params);
        let mut state = ShardState::new(columns.clone(), 10);
        for (id, n) in [(1u64, 40u64), (2, 60)] {
            let mut seg = Segment::new(id, &columns);
            for i in 0..n {
                let v = NamedVectors::from([(String::new(), Vector::Dense(vec![i as f32, 1.0]))]);
                seg.upsert(PointId::Num(id * 1000 + i), 1, &v, None);
            }
            seg.seal();
            state.sealed.push(seg);
        }
        let schema = Vec::new();
        let none = HashSet::new();
        let task = |state: &ShardState, m: usize| plan(state, &config(m), &schema, false, &none);
        assert_eq!(task(&state, 0), Some(Task::Rebuild(vec![1, 2])));
        assert_eq!(task(&state, 16), Some(Task::Index(1)));
        // With one sealed segment there is no merge to wait for.
        state.sealed.pop();
        assert_eq!(task(&state, 0), Some(Task::Index(1)));
    }

    #[test]
    fn failed_tasks_back_off_doubling_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(5), Duration::from_secs(8));
        assert_eq!(backoff(8), Duration::from_secs(60));
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_payload_reindex_keeps_unchanged_indexes_and_builds_the_rest() {
        use qd_core::vectors::{NamedVectors, Vector};
        let mut seg = Segment::new(1, &[qd_segment::ColumnSpec::dense("", 1, qd_core::Distance::Dot)]);
        for i in 0..10u64 {
            let v = NamedVectors::from([(String::new(), Vector::Dense(vec![1.0]))]);
            let p = serde_json::json!({"a": format!("x{}", i % 3), "b": i});
            seg.upsert(qd_core::PointId::Num(i), 1, &v, p.as_object().cloned());
        }
        let spec = |t: &str| PayloadIndexSpec { data_type: t.into(), params: None };
        let mut schema = BTreeMap::from([("a".to_string(), spec("keyword"))]);
        let defs = |schema: &BTreeMap<String, PayloadIndexSpec>| {
            crate::collection::payload_index_defs(schema, &Default::default())
        };
        // The first build indexes slot 0 only, so a kept index is recognisable.
        let first = build_payload_indexes(seg.data(), &defs(&schema), None, &|o| o == 0).expect("in RAM");
        schema.insert("b".into(), spec("integer"));
        let again = build_payload_indexes(seg.data(), &defs(&schema), Some(&first), &|_| true).expect("in RAM");
        assert_eq!(again["a"].to_bytes(), first["a"].to_bytes(), "kept as it was");
        assert_eq!(again["b"].kind(), Some(IndexKind::Integer));
        assert_eq!(
            again["b"].to_bytes(),
            FieldIndex::build(IndexKind::Integer, &"b".parse().expect("path"), seg.data()).expect("in RAM").to_bytes()
        );
        // A changed type is built again.
        schema.insert("a".into(), spec("integer"));
        let retyped = build_payload_indexes(seg.data(), &defs(&schema), Some(&again), &|_| true).expect("in RAM");
        assert_eq!(retyped["a"].kind(), Some(IndexKind::Integer));
    }
}
