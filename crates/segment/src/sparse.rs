//! Sparse vectors of a segment: the forward store (one sparse vector per slot) and, for sealed
//! segments, an inverted index (one posting list of `(offset, value)` per dimension).
//!
//! Scores are exact dot products over the indices a stored vector shares with the query, as in
//! Qdrant; a point sharing no index with the query is not a hit. The inverted index only makes
//! finding those points cheaper: it accumulates each query dimension's postings into a per-slot
//! score array, so the work is the total length of the query's posting lists, not the segment.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::Arc;

use qd_core::vectors::SparseVector;

use crate::sparse_file::MappedSparse;

/// Forward store: per slot a range of the flat `indices`/`values` arrays (`len == 0`: none).
/// An overwrite in an appendable segment appends and leaves the old range unused until the
/// segment is compacted. A sealed segment's column may instead be served from a memory-mapped
/// file (`index.on_disk: true`, see [`crate::sparse_file`]); only the presence flags stay in RAM.
#[derive(Debug, Clone, Default)]
pub struct SparseColumn {
    present: Vec<bool>,
    store: Forward,
}

/// Where a column's vectors live.
#[derive(Debug, Clone)]
enum Forward {
    Heap { slots: Vec<(u64, u32)>, indices: Vec<u32>, values: Vec<f32> },
    Mapped(Arc<MappedSparse>),
}

impl Default for Forward {
    fn default() -> Self {
        Forward::Heap { slots: Vec::new(), indices: Vec::new(), values: Vec::new() }
    }
}

/// A stored sparse vector, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SparseRef<'a> {
    pub indices: &'a [u32],
    pub values: &'a [f32],
}

impl SparseRef<'_> {
    pub fn to_owned(self) -> SparseVector {
        SparseVector { indices: self.indices.to_vec(), values: self.values.to_vec() }
    }

    /// Dot product with `q` over shared indices, and whether any index is shared.
    pub fn dot(&self, q: &SparseVector) -> (f32, bool) {
        let (mut i, mut j, mut sum, mut any) = (0, 0, 0.0f32, false);
        while i < self.indices.len() && j < q.indices.len() {
            match self.indices[i].cmp(&q.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.values[i] * q.values[j];
                    any = true;
                    i += 1;
                    j += 1;
                }
            }
        }
        (sum, any)
    }

    pub fn contains(&self, index: u32) -> bool {
        self.indices.binary_search(&index).is_ok()
    }
}

impl SparseColumn {
    pub fn len(&self) -> usize {
        self.present.len()
    }

    pub fn is_empty(&self) -> bool {
        self.present.is_empty()
    }

    pub(crate) fn ensure_len(&mut self, len: usize) {
        if let Forward::Heap { slots, .. } = &mut self.store {
            if self.present.len() < len {
                slots.resize(len, (0, 0));
                self.present.resize(len, false);
            }
        }
    }

    /// Write one slot. `None`: the slot has no sparse vector; `Some(empty)` is a present,
    /// empty vector (as in Qdrant), which scores against nothing. A mapped column is
    /// immutable (its file was written from the very records a restore replays), so writes
    /// to it are ignored.
    pub(crate) fn set(&mut self, offset: u32, v: Option<&SparseVector>) {
        self.ensure_len(offset as usize + 1);
        let Forward::Heap { slots, indices, values } = &mut self.store else { return };
        let o = offset as usize;
        match v {
            Some(v) => {
                let start = indices.len() as u64;
                indices.extend_from_slice(&v.indices);
                values.extend_from_slice(&v.values);
                slots[o] = (start, v.indices.len() as u32);
                self.present[o] = true;
            }
            None => {
                slots[o] = (0, 0);
                self.present[o] = false;
            }
        }
    }

    pub fn get(&self, offset: u32) -> Option<SparseRef<'_>> {
        let o = offset as usize;
        if !self.present.get(o).copied().unwrap_or(false) {
            return None;
        }
        match &self.store {
            Forward::Heap { slots, indices, values } => {
                let (start, len) = slots[o];
                let (s, e) = (start as usize, start as usize + len as usize);
                Some(SparseRef { indices: &indices[s..e], values: &values[s..e] })
            }
            Forward::Mapped(m) => Some(m.forward(offset)),
        }
    }

    /// Stored non-zeros (including ranges left behind by overwrites).
    pub fn stored_values(&self) -> usize {
        match &self.store {
            Forward::Heap { indices, .. } => indices.len(),
            Forward::Mapped(m) => m.forward_len(),
        }
    }

    /// Gives back reserved heap space beyond what the column holds.
    pub(crate) fn shrink_to_fit(&mut self) {
        if let Forward::Heap { slots, indices, values } = &mut self.store {
            slots.shrink_to_fit();
            indices.shrink_to_fit();
            values.shrink_to_fit();
        }
        self.present.shrink_to_fit();
    }

    /// Heap bytes (a mapped column holds only its presence flags there).
    pub fn ram_bytes(&self) -> usize {
        let store = match &self.store {
            Forward::Heap { slots, indices, values } => {
                slots.capacity() * 12 + indices.capacity() * 4 + values.capacity() * 4
            }
            Forward::Mapped(_) => 0,
        };
        store + self.present.capacity()
    }

    /// The mapping the column is served from, if any.
    pub fn mapping(&self) -> Option<&Arc<MappedSparse>> {
        match &self.store {
            Forward::Mapped(m) => Some(m),
            Forward::Heap { .. } => None,
        }
    }

    /// Bytes of the mapped file (it also holds the inverted index), 0 for a heap column.
    pub fn mapped_bytes(&self) -> usize {
        self.mapping().map_or(0, |m| m.file_bytes())
    }

    /// Serve the vectors from `m`; refused (false) unless it has this column's slot count.
    pub(crate) fn map(&mut self, m: Arc<MappedSparse>) -> bool {
        if m.slots() != self.present.len() {
            return false;
        }
        self.present = m.present();
        self.store = Forward::Mapped(m);
        true
    }

    /// A heap copy of the column, each vector's range packed after the previous one's.
    pub fn to_heap(&self) -> SparseColumn {
        let mut out = SparseColumn::default();
        out.ensure_len(self.len());
        for o in 0..self.len() as u32 {
            if let Some(v) = self.get(o) {
                let Forward::Heap { slots, indices, values } = &mut out.store else { break };
                slots[o as usize] = (indices.len() as u64, v.indices.len() as u32);
                indices.extend_from_slice(v.indices);
                values.extend_from_slice(v.values);
                out.present[o as usize] = true;
            }
        }
        out
    }
}

/// Posting lists of a sealed segment's sparse column (CSR): the postings of dimension
/// `dims[i]` are `offsets/values[starts[i]..starts[i + 1]]`, in offset order. Each list also
/// keeps its largest and smallest value, the bounds that let a top-k search skip postings.
/// The flat arrays live on the heap or in a memory-mapped file (`index.on_disk: true`, see
/// [`crate::sparse_file`]); the per-dimension table stays in RAM either way.
#[derive(Debug, Clone, Default)]
pub struct InvertedIndex {
    slots: usize,
    dims: HashMap<u32, Posting>,
    store: Postings,
}

/// Where an index's posting lists live.
#[derive(Debug, Clone)]
enum Postings {
    Heap { offsets: Vec<u32>, values: Vec<f32> },
    Mapped(Arc<MappedSparse>),
}

impl Default for Postings {
    fn default() -> Self {
        Postings::Heap { offsets: Vec::new(), values: Vec::new() }
    }
}

/// Where one dimension's postings lie in the flat arrays, and their value range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Posting {
    pub(crate) start: u64,
    pub(crate) len: u32,
    pub(crate) max: f32,
    pub(crate) min: f32,
}

/// The best k-th score any segment of a search has reached so far, shared by the segments
/// searched in parallel: every point lives in one segment, so one segment's k-th best is a
/// floor for the combined top-k, and the others may skip what cannot reach it.
#[derive(Debug)]
pub struct ScoreFloor(AtomicU32);

impl Default for ScoreFloor {
    fn default() -> Self {
        ScoreFloor(AtomicU32::new(f32::NEG_INFINITY.to_bits()))
    }
}

impl ScoreFloor {
    /// The floor, `None` until some segment has `k` hits.
    pub fn get(&self) -> Option<f32> {
        let v = f32::from_bits(self.0.load(AtomicOrdering::Relaxed));
        (v > f32::NEG_INFINITY).then_some(v)
    }

    /// Raise the floor to `score` if that is higher.
    pub fn raise(&self, score: f32) {
        let _ = self.0.fetch_update(AtomicOrdering::Relaxed, AtomicOrdering::Relaxed, |old| {
            (score > f32::from_bits(old)).then_some(score.to_bits())
        });
    }
}

/// Offsets accumulated together: one batch's scores (16 KiB) stay in the L1 cache.
const BATCH: usize = 4096;

/// Per-thread scratch reused across searches: one batch's scores and which of them were touched.
struct Accumulator {
    scores: Vec<f32>,
    touched: Vec<u64>,
    candidates: Vec<u32>,
}

thread_local! {
    static ACCUMULATOR: RefCell<Accumulator> =
        RefCell::new(Accumulator { scores: vec![0.0; BATCH], touched: vec![0; BATCH / 64], candidates: vec![0; BATCH] });
}

/// One query dimension's walk through its posting list.
struct Cursor<'a> {
    offsets: &'a [u32],
    values: &'a [f32],
    pos: usize,
    weight: f32,
    /// The most this list can add to any point's score (never below 0: a point missing from
    /// the list gets 0 from it).
    bound: f32,
}

impl Cursor<'_> {
    fn next_offset(&self) -> Option<u32> {
        self.offsets.get(self.pos).copied()
    }

    /// Move to the first posting at or after `target` by galloping from the current one: it
    /// touches memory near the cursor only (a binary search over the whole rest of a long list
    /// missed the cache at every step).
    fn advance_to(&mut self, target: u32) {
        let rest = &self.offsets[self.pos..];
        if rest.first().is_none_or(|&o| o >= target) {
            return;
        }
        let mut lo = 0;
        let mut step = 1;
        while lo + step < rest.len() && rest[lo + step] < target {
            lo += step;
            step *= 2;
        }
        let hi = (lo + step + 1).min(rest.len());
        self.pos += lo + rest[lo..hi].partition_point(|&o| o < target);
    }

    /// [`Cursor::advance_to`] `target`, and its contribution if the list holds `target`.
    fn seek(&mut self, target: u32) -> Option<f32> {
        self.advance_to(target);
        (self.offsets.get(self.pos) == Some(&target)).then(|| self.weight * self.values[self.pos])
    }
}

/// The score a slot needs so that, with up to `rest` more from lists not yet added, it might
/// reach `threshold`. Bounds are sums of rounded products, so the cut sits a little lower
/// than exact arithmetic would put it: a slot is dropped only when it clearly cannot make it.
fn cutoff(rest: f32, threshold: f32) -> f32 {
    threshold - rest - 1e-5 * (threshold.abs() + rest.abs())
}

/// Compare floats as integers: for a positive `cut` and a finite `s`, `s >= cut` exactly when
/// their bit patterns compare so as signed integers (negative floats are negative integers).
/// Unlike a float compare, this compiles to branch-free code in the scans below, which would
/// otherwise mispredict on every few slots.
fn reaches_bits(s: f32, cut_bits: i32) -> u32 {
    ((s.to_bits() as i32) >= cut_bits) as u32
}

/// Collect (in slot order, into `candidates`) the slots of `scores` reaching the positive
/// `cut`, zeroing every other score; returns how many there are.
fn scan_reaching(scores: &mut [f32], candidates: &mut [u32], cut: f32) -> usize {
    debug_assert!(cut > 0.0 && candidates.len() >= scores.len());
    let cut_bits = cut.to_bits() as i32;
    let mut n = 0;
    for (i, s) in scores.iter_mut().enumerate() {
        let keep = reaches_bits(*s, cut_bits);
        candidates[n] = i as u32;
        n += keep as usize;
        *s = f32::from_bits(s.to_bits() & keep.wrapping_neg());
    }
    n
}

/// Keep (in order, at the front of `candidates`) the slots whose score reaches `cut`, zeroing
/// the scores of the others; returns how many were kept.
fn keep_reaching(scores: &mut [f32], candidates: &mut [u32], cut: f32) -> usize {
    let mut m = 0;
    if cut > 0.0 {
        let cut_bits = cut.to_bits() as i32;
        for j in 0..candidates.len() {
            let i = candidates[j];
            let s = &mut scores[i as usize];
            let keep = reaches_bits(*s, cut_bits);
            candidates[m] = i;
            m += keep as usize;
            *s = f32::from_bits(s.to_bits() & keep.wrapping_neg());
        }
    } else {
        for j in 0..candidates.len() {
            let i = candidates[j];
            if scores[i as usize] >= cut {
                candidates[m] = i;
                m += 1;
            } else {
                scores[i as usize] = 0.0;
            }
        }
    }
    m
}

impl InvertedIndex {
    /// Build from every slot of `column` (dead slots included: search skips them).
    pub fn build(column: &SparseColumn) -> Self {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for o in 0..column.len() as u32 {
            if let Some(v) = column.get(o) {
                for &i in v.indices {
                    *counts.entry(i).or_default() += 1;
                }
            }
        }
        let mut keys: Vec<u32> = counts.keys().copied().collect();
        keys.sort_unstable();
        let mut starts: HashMap<u32, (u64, u32)> = HashMap::with_capacity(counts.len());
        let mut pos = 0u64;
        for k in keys {
            let n = counts[&k];
            starts.insert(k, (pos, 0));
            pos += n as u64;
        }
        let mut offsets = vec![0u32; pos as usize];
        let mut values = vec![0f32; pos as usize];
        for o in 0..column.len() as u32 {
            if let Some(v) = column.get(o) {
                for (&i, &x) in v.indices.iter().zip(v.values) {
                    if let Some((start, filled)) = starts.get_mut(&i) {
                        let at = (*start + *filled as u64) as usize;
                        offsets[at] = o;
                        values[at] = x;
                        *filled += 1;
                    }
                }
            }
        }
        let dims = starts.into_iter().map(|(dim, (start, len))| (dim, Posting::over(&values, start, len))).collect();
        InvertedIndex { slots: column.len(), dims, store: Postings::Heap { offsets, values } }
    }

    /// The index held in a mapped file.
    pub fn mapped(m: Arc<MappedSparse>) -> Self {
        InvertedIndex { slots: m.slots(), dims: m.dims(), store: Postings::Mapped(m) }
    }

    /// A heap copy of the index.
    pub fn to_heap(&self) -> Self {
        let (offsets, values) = (self.offsets().to_vec(), self.values().to_vec());
        InvertedIndex { slots: self.slots, dims: self.dims.clone(), store: Postings::Heap { offsets, values } }
    }

    /// Whether the postings are served from a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.store, Postings::Mapped(_))
    }

    /// Number of slots the index was built over.
    pub fn slots(&self) -> usize {
        self.slots
    }

    fn offsets(&self) -> &[u32] {
        match &self.store {
            Postings::Heap { offsets, .. } => offsets,
            Postings::Mapped(m) => m.posting_offsets(),
        }
    }

    fn values(&self) -> &[f32] {
        match &self.store {
            Postings::Heap { values, .. } => values,
            Postings::Mapped(m) => m.posting_values(),
        }
    }

    /// Each dimension with its postings (offsets and values), in dimension order.
    pub(crate) fn lists(&self) -> Vec<(u32, Posting, &[u32], &[f32])> {
        let mut dims: Vec<(u32, Posting)> = self.dims.iter().map(|(d, p)| (*d, *p)).collect();
        dims.sort_unstable_by_key(|d| d.0);
        dims.into_iter()
            .map(|(d, p)| {
                let (offsets, values) = self.postings(d);
                (d, p, offsets, values)
            })
            .collect()
    }

    fn postings(&self, dim: u32) -> (&[u32], &[f32]) {
        match self.dims.get(&dim) {
            Some(p) => {
                let (s, e) = (p.start as usize, p.start as usize + p.len as usize);
                (&self.offsets()[s..e], &self.values()[s..e])
            }
            None => (&[], &[]),
        }
    }

    /// Offsets whose vector holds `dim` (dead ones included).
    pub fn posting_offsets(&self, dim: u32) -> &[u32] {
        self.postings(dim).0
    }

    /// Call `f(offset, score)`, in offset order and with the exact dot product, for every slot
    /// sharing an index with `query` that could still reach `threshold()`: the score the caller
    /// needs to beat (its k-th best so far, or a score threshold), asked for as the search goes.
    /// A slot whose best possible score is clearly below it is skipped; `None` skips nothing.
    ///
    /// The walk goes over the offsets in batches of [`BATCH`], accumulating the postings of each
    /// query dimension into a small score array. Once the threshold is known, the dimensions
    /// whose combined upper bounds cannot reach it on their own stop being walked (a point
    /// found only there cannot make it); they are looked up, by galloping, only for points the
    /// other dimensions found and whose bound still reaches the threshold. On Zipf-like data,
    /// where frequent terms carry small weights, the long lists are the ones left out.
    pub fn search(
        &self,
        query: &SparseVector,
        mut threshold: impl FnMut() -> Option<f32>,
        mut f: impl FnMut(u32, f32),
    ) {
        let mut cursors: Vec<Cursor<'_>> = query
            .indices
            .iter()
            .zip(&query.values)
            .filter_map(|(&dim, &weight)| {
                let p = self.dims.get(&dim)?;
                let (offsets, values) = self.postings(dim);
                let best = if weight >= 0.0 { weight * p.max } else { weight * p.min };
                Some(Cursor { offsets, values, pos: 0, weight, bound: best.max(0.0) })
            })
            .collect();
        if cursors.is_empty() {
            return;
        }
        // Smallest bounds first: the lists that can be left out form a prefix.
        cursors.sort_by(|a, b| a.bound.total_cmp(&b.bound));
        let prefix: Vec<f32> = cursors
            .iter()
            .scan(0.0f32, |sum, c| {
                *sum += c.bound;
                Some(*sum)
            })
            .collect();
        // `skipped`: how many leading cursors are no longer walked; only grows, as the
        // threshold only rises.
        let mut skipped = 0usize;
        ACCUMULATOR.with(|acc| {
            let mut acc = acc.borrow_mut();
            let Accumulator { scores, touched, candidates } = &mut *acc;
            let (scores, touched, candidates) =
                (scores.as_mut_slice(), touched.as_mut_slice(), candidates.as_mut_slice());
            loop {
                let t = threshold();
                if let Some(t) = t {
                    while skipped < cursors.len() && cutoff(prefix[skipped], t) > 0.0 {
                        skipped += 1;
                    }
                }
                let (left_out, walked) = cursors.split_at_mut(skipped);
                let Some(lo) = walked.iter().filter_map(Cursor::next_offset).min() else { break };
                let hi = lo.saturating_add(BATCH as u32);
                // Once the threshold is positive, a slot no walked list touched (score 0) cannot
                // reach it, so the batch is scanned by score alone; before that, which slots
                // were touched is tracked (a touched slot is a hit even at score 0).
                let positive = t.filter(|&t| t > 0.0);
                for c in walked.iter_mut() {
                    let (offs, vals, w) = (c.offsets, c.values, c.weight);
                    let mut p = c.pos;
                    if positive.is_some() {
                        while let Some(&o) = offs.get(p).filter(|&&o| o < hi) {
                            scores[(o - lo) as usize] += w * vals[p];
                            p += 1;
                        }
                    } else {
                        while let Some(&o) = offs.get(p).filter(|&&o| o < hi) {
                            let i = (o - lo) as usize;
                            scores[i] += w * vals[p];
                            touched[i / 64] |= 1 << (i % 64);
                            p += 1;
                        }
                    }
                    c.pos = p;
                }
                let left_bound = if skipped > 0 { prefix[skipped - 1] } else { 0.0 };
                // Candidates: slots whose bound still reaches the threshold.
                let mut n = 0;
                match positive {
                    // Branch-free: the scan goes over every slot of the batch.
                    Some(t) => {
                        let cut = cutoff(left_bound, t);
                        n = scan_reaching(scores, candidates, cut);
                    }
                    None => {
                        let cut = t.map(|t| cutoff(left_bound, t));
                        for (w, word) in touched.iter_mut().enumerate() {
                            let mut bits = std::mem::take(word);
                            while bits != 0 {
                                let i = w * 64 + bits.trailing_zeros() as usize;
                                bits &= bits - 1;
                                if cut.is_some_and(|c| scores[i] < c) {
                                    scores[i] = 0.0;
                                } else {
                                    candidates[n] = i as u32;
                                    n += 1;
                                }
                            }
                        }
                    }
                }
                // The left-out lists, largest bound first, add to the candidates only; a
                // candidate drops out once what is left cannot lift it to the threshold.
                let mut remaining = left_bound;
                for c in left_out.iter_mut().rev() {
                    // Postings before `lo` belong to points no walked list holds: skipped.
                    c.advance_to(lo);
                    let start = c.pos;
                    if n == 0 {
                        c.advance_to(hi);
                        continue;
                    }
                    // Few candidates against a dense list: jump to each; otherwise walk the
                    // batch's postings and add those that land on a candidate.
                    let expected = c.offsets.len() * BATCH / self.slots.max(1);
                    if n * 8 < expected {
                        for &i in candidates[..n].iter() {
                            if let Some(x) = c.seek(lo + i) {
                                scores[i as usize] += x;
                            }
                        }
                        c.advance_to(hi);
                    } else {
                        for &i in candidates[..n].iter() {
                            touched[i as usize / 64] |= 1 << (i % 64);
                        }
                        let (offs, vals, w) = (c.offsets, c.values, c.weight);
                        let mut p = start;
                        while let Some(&o) = offs.get(p).filter(|&&o| o < hi) {
                            let i = (o - lo) as usize;
                            if touched[i / 64] & (1 << (i % 64)) != 0 {
                                scores[i] += w * vals[p];
                            }
                            p += 1;
                        }
                        for &i in candidates[..n].iter() {
                            touched[i as usize / 64] = 0;
                        }
                        c.pos = p;
                    }
                    remaining -= c.bound;
                    if let Some(t) = t {
                        n = keep_reaching(scores, &mut candidates[..n], cutoff(remaining.max(0.0), t));
                    }
                }
                for &i in &candidates[..n] {
                    f(lo + i, std::mem::take(&mut scores[i as usize]));
                }
            }
        });
    }

    /// Heap bytes (a mapped index holds only its per-dimension table there).
    pub fn ram_bytes(&self) -> usize {
        let lists = match &self.store {
            Postings::Heap { offsets, values } => offsets.capacity() * 4 + values.capacity() * 4,
            Postings::Mapped(_) => 0,
        };
        lists + self.dims.capacity() * 28
    }

    /// Serialise: magic, version, slots, dim count, per dim (dim, len), then postings; CRC-32
    /// of everything before it at the end.
    pub fn to_bytes(&self) -> Vec<u8> {
        let lists = self.lists();
        let mut out = Vec::with_capacity(32 + lists.len() * 8 + self.offsets().len() * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(self.slots as u64).to_le_bytes());
        out.extend_from_slice(&(lists.len() as u64).to_le_bytes());
        for (dim, p, _, _) in &lists {
            out.extend_from_slice(&dim.to_le_bytes());
            out.extend_from_slice(&p.len.to_le_bytes());
        }
        for (_, _, offsets, values) in &lists {
            for o in offsets.iter() {
                out.extend_from_slice(&o.to_le_bytes());
            }
            for v in values.iter() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        let mut crc = crate::hnsw::persist::Crc32::new();
        crc.update(&out);
        out.extend_from_slice(&crc.finish().to_le_bytes());
        out
    }

    /// Read back what [`InvertedIndex::to_bytes`] wrote; any damage is an error.
    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        if b.len() < 28 || &b[..8] != MAGIC {
            return Err("not a sparse index (bad magic or truncated)".into());
        }
        let (body, tail) = b.split_at(b.len() - 4);
        let mut crc = crate::hnsw::persist::Crc32::new();
        crc.update(body);
        if crc.finish().to_le_bytes() != tail {
            return Err("sparse index checksum mismatch".into());
        }
        let u32_at = |p: usize| body.get(p..p + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
        let u64_at = |p: usize| {
            body.get(p..p + 8).map(|s| {
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                u64::from_le_bytes(a)
            })
        };
        let trunc = || "sparse index truncated".to_string();
        if u32_at(8) != Some(1) {
            return Err("sparse index version is unknown".into());
        }
        let slots = u64_at(12).ok_or_else(trunc)? as usize;
        let ndims = u64_at(20).ok_or_else(trunc)? as usize;
        let mut pos = 28;
        let mut dims = HashMap::with_capacity(ndims.min(body.len() / 8));
        let mut order = Vec::with_capacity(ndims.min(body.len() / 8));
        let mut total = 0u64;
        for _ in 0..ndims {
            let dim = u32_at(pos).ok_or_else(trunc)?;
            let len = u32_at(pos + 4).ok_or_else(trunc)?;
            dims.insert(dim, (total, len));
            order.push(len);
            total += len as u64;
            pos += 8;
        }
        if body.len() != pos + total as usize * 8 {
            return Err("sparse index length does not match its posting counts".into());
        }
        let mut offsets = Vec::with_capacity(total as usize);
        let mut values = Vec::with_capacity(total as usize);
        for len in order {
            for _ in 0..len {
                let o = u32_at(pos).ok_or_else(trunc)?;
                if o as usize >= slots {
                    return Err(format!("sparse index posting {o} beyond {slots} slots"));
                }
                offsets.push(o);
                pos += 4;
            }
            for _ in 0..len {
                values.push(f32::from_bits(u32_at(pos).ok_or_else(trunc)?));
                pos += 4;
            }
        }
        let dims = dims.into_iter().map(|(dim, (start, len))| (dim, Posting::over(&values, start, len))).collect();
        Ok(InvertedIndex { slots, dims, store: Postings::Heap { offsets, values } })
    }
}

impl Posting {
    /// The posting list `values[start..start + len]` with its value range.
    pub(crate) fn over(values: &[f32], start: u64, len: u32) -> Self {
        let vals = &values[start as usize..start as usize + len as usize];
        let max = vals.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let min = vals.iter().copied().fold(f32::INFINITY, f32::min);
        Posting { start, len, max, min }
    }
}

const MAGIC: &[u8; 8] = b"QDSPIX01";

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(pairs: &[(u32, f32)]) -> SparseVector {
        SparseVector::new(pairs.iter().map(|p| p.0).collect(), pairs.iter().map(|p| p.1).collect()).expect("valid")
    }

    fn column(vs: &[Option<SparseVector>]) -> SparseColumn {
        let mut c = SparseColumn::default();
        for (o, v) in vs.iter().enumerate() {
            c.set(o as u32, v.as_ref());
        }
        c
    }

    #[test]
    fn index_scores_equal_forward_dot_products() {
        // Deterministic pseudo-random vectors over a small vocabulary.
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        let vs: Vec<Option<SparseVector>> = (0..300)
            .map(|i| {
                if i % 17 == 0 {
                    return None;
                }
                let mut pairs: Vec<(u32, f32)> =
                    (0..(next() % 12)).map(|_| (next() % 50, (next() % 100) as f32 / 10.0)).collect();
                pairs.sort_by_key(|p| p.0);
                pairs.dedup_by_key(|p| p.0);
                Some(sv(&pairs))
            })
            .collect();
        let col = column(&vs);
        let ix = InvertedIndex::build(&col);
        let ix2 = InvertedIndex::from_bytes(&ix.to_bytes()).expect("round trip");
        let q = sv(&[(1, 0.5), (7, 2.0), (33, 1.0), (49, -1.0)]);
        for index in [&ix, &ix2] {
            let mut got = Vec::new();
            index.search(&q, || None, |o, s| got.push((o, s)));
            let want: Vec<(u32, f32)> = (0..vs.len() as u32)
                .filter_map(|o| {
                    col.get(o).and_then(|v| {
                        let (s, any) = v.dot(&q);
                        any.then_some((o, s))
                    })
                })
                .collect();
            assert_eq!(got.len(), want.len());
            for ((o1, s1), (o2, s2)) in got.iter().zip(&want) {
                assert_eq!(o1, o2);
                assert!((s1 - s2).abs() < 1e-4, "{s1} vs {s2}");
            }
        }
        // The accumulator is clean for the next search.
        let mut n = 0;
        ix.search(&sv(&[(1000, 1.0)]), || None, |_, _| n += 1);
        assert_eq!(n, 0);
    }

    /// Zipf-like corpus: frequent dimensions with small weights, rare ones with large weights,
    /// a few negative values; `n` vectors of about `nnz` non-zeros over `vocab` dimensions.
    fn zipf_corpus(n: usize, nnz: usize, vocab: u32, seed: u64) -> Vec<Option<SparseVector>> {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64) / ((1u64 << 53) as f64)
        };
        // Inverse of the continuous 1/(r + 10) law over ranks 0..vocab.
        let (a, b) = (10f64, vocab as f64 + 10.0);
        (0..n)
            .map(|_| {
                let mut pairs: Vec<(u32, f32)> = (0..nnz)
                    .map(|_| {
                        let r = (a * (b / a).powf(next()) - a) as u32;
                        let sign = if next() < 0.05 { -1.0 } else { 1.0 };
                        let w = sign * (0.1 + next()) * (1.0 + (r as f64).ln_1p());
                        (r.min(vocab - 1), w as f32)
                    })
                    .collect();
                pairs.sort_by_key(|p| p.0);
                pairs.dedup_by_key(|p| p.0);
                Some(sv(&pairs))
            })
            .collect()
    }

    /// Top-`k` through [`InvertedIndex::search`] the way a segment runs it: the threshold handed
    /// to the index is the larger of `min_score` and the k-th best so far (ties by offset).
    fn top_k(ix: &InvertedIndex, q: &SparseVector, k: usize, min_score: Option<f32>) -> Vec<(u32, f32)> {
        let top = RefCell::new(Vec::<(u32, f32)>::new());
        let needed = || {
            let top = top.borrow();
            let worst = (top.len() == k).then(|| top[k - 1].1);
            match (worst, min_score) {
                (Some(w), Some(m)) => Some(w.max(m)),
                (w, m) => w.or(m),
            }
        };
        ix.search(q, needed, |o, s| {
            if min_score.is_some_and(|m| s < m) {
                return;
            }
            let mut top = top.borrow_mut();
            if top.len() == k && s < top[k - 1].1 {
                return;
            }
            top.push((o, s));
            top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            top.truncate(k);
        });
        top.into_inner()
    }

    #[test]
    fn pruned_top_k_equals_brute_force() {
        let vs = zipf_corpus(12_000, 60, 3_000, 11);
        let col = column(&vs);
        let ix = InvertedIndex::build(&col);
        let queries = zipf_corpus(60, 20, 3_000, 99);
        for (qi, q) in queries.iter().flatten().enumerate() {
            let mut all: Vec<(u32, f32)> = (0..vs.len() as u32)
                .filter_map(|o| {
                    col.get(o).and_then(|v| {
                        let (s, any) = v.dot(q);
                        any.then_some((o, s))
                    })
                })
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for k in [1, 10, 100] {
                // Half way between the 6th and 7th best: no score sits on the threshold, where
                // a different summation order could decide either way.
                let min_score = (qi % 3 == 0 && all.len() > 6).then(|| (all[5].1 + all[6].1) / 2.0);
                let want: Vec<(u32, f32)> =
                    all.iter().copied().filter(|x| min_score.is_none_or(|m| x.1 >= m)).take(k).collect();
                let got = top_k(&ix, q, k, min_score);
                assert_eq!(got.len(), want.len(), "query {qi}, k {k}");
                for (g, w) in got.iter().zip(&want) {
                    assert!((g.1 - w.1).abs() <= 1e-4 * w.1.abs().max(1.0), "query {qi}, k {k}: {g:?} vs {w:?}");
                }
                // Same points, allowing for order among near-equal scores.
                let last = want.last().map_or(f32::INFINITY, |x| x.1);
                for g in &got {
                    assert!(want.iter().any(|w| w.0 == g.0) || (g.1 - last).abs() <= 1e-4, "query {qi}: {g:?}");
                }
            }
        }
    }

    /// `cargo test -p qd-segment --release --lib -- --ignored --nocapture sparse_search_speed`
    #[test]
    #[ignore]
    fn sparse_search_speed() {
        let vs = zipf_corpus(100_000, 120, 30_000, 5);
        let col = column(&vs);
        let ix = InvertedIndex::build(&col);
        let queries: Vec<SparseVector> = zipf_corpus(1_000, 30, 30_000, 77).into_iter().flatten().collect();
        let t = std::time::Instant::now();
        let mut hits = 0;
        for q in &queries {
            hits += top_k(&ix, q, 10, None).len();
        }
        let pruned = t.elapsed();
        let t = std::time::Instant::now();
        let mut touched = 0;
        for q in &queries {
            ix.search(q, || None, |_, _| touched += 1);
        }
        let full = t.elapsed();
        eprintln!(
            "100k docs x ~120 nnz, 1000 queries: top-10 pruned {:.3} ms/query ({hits} hits), every hit {:.3} ms/query ({} per query)",
            pruned.as_secs_f64(),
            full.as_secs_f64(),
            touched / queries.len()
        );
    }

    #[test]
    fn score_floor_only_rises() {
        let f = ScoreFloor::default();
        assert_eq!(f.get(), None);
        f.raise(-2.0);
        assert_eq!(f.get(), Some(-2.0));
        f.raise(1.5);
        f.raise(0.5);
        assert_eq!(f.get(), Some(1.5));
    }

    #[test]
    fn damaged_bytes_are_refused() {
        let col = column(&[Some(sv(&[(1, 1.0), (2, 2.0)])), Some(sv(&[(2, 3.0)]))]);
        let bytes = InvertedIndex::build(&col).to_bytes();
        for cut in [0, 10, 30, bytes.len() - 1] {
            assert!(InvertedIndex::from_bytes(&bytes[..cut]).is_err());
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert!(InvertedIndex::from_bytes(&flipped).is_err());
    }

    #[test]
    fn overwrite_and_remove() {
        let mut c = SparseColumn::default();
        c.set(0, Some(&sv(&[(1, 1.0)])));
        c.set(0, Some(&sv(&[(2, 5.0)])));
        assert_eq!(c.get(0).map(|v| v.to_owned()), Some(sv(&[(2, 5.0)])));
        c.set(0, None);
        assert!(c.get(0).is_none());
        c.set(3, Some(&SparseVector::default()));
        assert!(c.get(3).is_some_and(|v| v.indices.is_empty()), "an empty sparse vector is present");
    }
}
