//! A segment: a set of points laid out for search.
//!
//! Points get dense internal offsets; vectors of each name live in one contiguous array, payloads
//! in a parallel vector. A segment is *appendable* (takes upserts in place, searched exactly) or
//! *sealed* (its data never changes again, only tombstones; it may carry an HNSW index per vector
//! name). The immutable part sits behind an `Arc`, so an index can be built from it on another
//! thread while the shard keeps deleting points (tombstones live outside the `Arc`).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use qd_core::config::QuantizationSearchParams;
use qd_core::filter::{Condition, Filter, PointView};
use qd_core::json_path::JsonPath;

use crate::id_map::IdMap;
use crate::live_index::{same_defs, LiveIndex, PayloadIndexDef};
use crate::payload_index::{facet_key, group_tag, intersect, order_value, union_sorted, FieldIndex, OffsetSet};
use qd_core::vectors::{MultiDenseVector, NamedVectors, SparseVector, Vector};
use qd_core::{Distance, Payload, PointId};

use crate::elements::{row_to_store, ElemVec, ElementType, Elems};
use crate::hnsw::visited::prefetch_bytes;
use crate::hnsw::{exact_search_by, HnswGraph, OffsetScorer, VectorSource};
use crate::hnsw::{MaxSimScorer, PairScore};
use crate::mapped::MappedVectors;
use crate::multi::MultiColumn;
use crate::multi_file::MappedMulti;
use crate::payloads::{PayloadReadError, PayloadSource, Payloads};
use crate::quantized::QuantizedVectors;
use crate::sparse::{InvertedIndex, ScoreFloor, SparseColumn, SparseRef};
use crate::sparse_file::MappedSparse;

/// Rows prefetched ahead of the one scored, in an exact scan of payload index candidates.
const PREFETCH_AHEAD: usize = 8;

/// What kind of vector a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Dense,
    Multi,
    Sparse,
}

/// One vector column a segment holds: name, kind, dimension (of each row for multivectors; 0
/// for sparse) and metric (Dot for sparse).
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub kind: ColumnKind,
    pub dim: usize,
    pub distance: Distance,
    /// How dense and multivector components are held (float32 for sparse).
    pub element: ElementType,
}

impl ColumnSpec {
    pub fn dense(name: &str, dim: usize, distance: Distance) -> Self {
        ColumnSpec { name: name.to_string(), kind: ColumnKind::Dense, dim, distance, element: ElementType::F32 }
    }
    pub fn multi(name: &str, dim: usize, distance: Distance) -> Self {
        ColumnSpec { name: name.to_string(), kind: ColumnKind::Multi, dim, distance, element: ElementType::F32 }
    }
    pub fn sparse(name: &str) -> Self {
        ColumnSpec {
            name: name.to_string(),
            kind: ColumnKind::Sparse,
            dim: 0,
            distance: Distance::Dot,
            element: ElementType::F32,
        }
    }
    /// The same column holding components as `element`.
    pub fn with_element(mut self, element: ElementType) -> Self {
        self.element = element;
        self
    }
}

/// A stored vector of any kind, borrowed from its column.
#[derive(Debug, Clone, Copy)]
pub enum VectorRef<'a> {
    Dense(Elems<'a>),
    /// Flat rows of a multivector.
    Multi(Elems<'a>),
    Sparse(SparseRef<'a>),
}

/// Where a column's vectors live: the heap, in the column's storage type, or a memory-mapped
/// float32 file (`on_disk: true`, sealed segments only; see [`crate::mapped`]).
#[derive(Debug, Clone)]
enum ColumnStore {
    Ram(ElemVec),
    Mapped(Arc<MappedVectors>),
}

/// One named vector column: contiguous storage plus a presence flag per slot.
#[derive(Debug, Clone)]
pub struct VectorColumn {
    pub distance: Distance,
    dim: usize,
    element: ElementType,
    store: ColumnStore,
    present: Vec<bool>,
}

impl VectorColumn {
    pub fn new(dim: usize, distance: Distance) -> Self {
        Self::with_element(dim, distance, ElementType::F32)
    }

    /// An empty column holding components as `element` on the heap.
    pub fn with_element(dim: usize, distance: Distance, element: ElementType) -> Self {
        VectorColumn { distance, dim, element, store: ColumnStore::Ram(ElemVec::new(element)), present: Vec::new() }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How components are held, on the heap or in a mapped file.
    pub fn element(&self) -> ElementType {
        self.element
    }

    /// All slots' vectors, contiguous (zeros where a slot has no vector), as scoring reads
    /// them (Cosine `uint8` rows normalised; [`Elems::stored`] gives the whole numbers).
    pub fn data(&self) -> Elems<'_> {
        let stored = match &self.store {
            ColumnStore::Ram(v) => v.as_elems(),
            ColumnStore::Mapped(m) => m.data(),
        };
        stored.scored_as(self.distance, self.dim)
    }

    /// Presence flag per slot.
    pub fn present(&self) -> &[bool] {
        &self.present
    }

    /// Whether the vectors are memory-mapped from a file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.store, ColumnStore::Mapped(_))
    }

    fn ensure_len(&mut self, slots: usize) {
        if let ColumnStore::Ram(v) = &mut self.store {
            if self.present.len() < slots {
                self.present.resize(slots, false);
                v.resize(slots * self.dim);
            }
        }
    }

    /// Write one slot. A mapped column is immutable (its file was written from the very
    /// records a restore replays), so writes to it are ignored.
    fn set(&mut self, offset: u32, v: Option<&[f32]>) {
        self.ensure_len(offset as usize + 1);
        let ColumnStore::Ram(store) = &mut self.store else { return };
        let o = offset as usize;
        let dim = self.dim;
        match v {
            Some(v) if v.len() == dim => {
                store.write(o * dim, &row_to_store(store.kind(), self.distance, v));
                self.present[o] = true;
            }
            _ => {
                store.zero(o * dim, dim);
                self.present[o] = false;
            }
        }
    }

    /// Serve the vectors from `m` instead of the heap; refused (false) unless it has this
    /// column's shape.
    fn map(&mut self, m: MappedVectors) -> bool {
        if m.dim() != self.dim || m.slots() != self.present.len() || m.element() != self.element {
            return false;
        }
        self.present = m.present();
        self.store = ColumnStore::Mapped(Arc::new(m));
        true
    }

    /// The mapping the vectors are served from, if any.
    pub fn mapping(&self) -> Option<Arc<MappedVectors>> {
        match &self.store {
            ColumnStore::Mapped(m) => Some(m.clone()),
            ColumnStore::Ram(_) => None,
        }
    }

    /// Serve the vectors from the heap again, from `data` (a copy of the mapped vectors made
    /// beforehand); refused (false) if its length or type does not match.
    fn unmap(&mut self, data: ElemVec) -> bool {
        if data.len() != self.present.len() * self.dim || data.kind() != self.element {
            return false;
        }
        self.store = ColumnStore::Ram(data);
        true
    }

    pub fn get(&self, offset: u32) -> Option<Elems<'_>> {
        if self.present.get(offset as usize).copied().unwrap_or(false) {
            let o = offset as usize * self.dim;
            self.data().get(o, o + self.dim)
        } else {
            None
        }
    }

    fn shrink_to_fit(&mut self) {
        if let ColumnStore::Ram(v) = &mut self.store {
            v.shrink_to_fit();
        }
        self.present.shrink_to_fit();
    }

    /// Heap bytes (a mapped column holds only its presence flags there).
    pub fn ram_bytes(&self) -> usize {
        let vectors = match &self.store {
            ColumnStore::Ram(v) => v.capacity_bytes(),
            ColumnStore::Mapped(_) => 0,
        };
        vectors + self.present.capacity()
    }

    /// Bytes of the mapped file, 0 for a heap column.
    pub fn mapped_bytes(&self) -> usize {
        match &self.store {
            ColumnStore::Ram(_) => 0,
            ColumnStore::Mapped(m) => m.file_bytes(),
        }
    }
}

impl VectorSource for VectorColumn {
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        self.present.len()
    }
    fn vector(&self, offset: u32) -> Elems<'_> {
        let o = offset as usize * self.dim;
        self.data().slice(o, o + self.dim)
    }
    fn as_contiguous(&self) -> Option<&[f32]> {
        self.data().as_f32()
    }
}

/// The part of a segment that never changes once it is sealed.
#[derive(Debug, Clone, Default)]
pub struct SegmentData {
    ids: IdMap,
    offsets: Vec<PointId>,
    versions: Vec<u64>,
    payloads: Payloads,
    vectors: BTreeMap<String, VectorColumn>,
    multi: BTreeMap<String, MultiColumn>,
    sparse: BTreeMap<String, SparseColumn>,
}

impl SegmentData {
    pub fn len(&self) -> usize {
        self.offsets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
    pub fn column(&self, name: &str) -> Option<&VectorColumn> {
        self.vectors.get(name)
    }
    /// Dense columns (what graphs, quantization and mapped files are built from).
    pub fn columns(&self) -> impl Iterator<Item = (&str, &VectorColumn)> {
        self.vectors.iter().map(|(k, v)| (k.as_str(), v))
    }
    pub fn multi_column(&self, name: &str) -> Option<&MultiColumn> {
        self.multi.get(name)
    }
    pub fn multi_columns(&self) -> impl Iterator<Item = (&str, &MultiColumn)> {
        self.multi.iter().map(|(k, v)| (k.as_str(), v))
    }
    pub fn sparse_column(&self, name: &str) -> Option<&SparseColumn> {
        self.sparse.get(name)
    }
    pub fn sparse_columns(&self) -> impl Iterator<Item = (&str, &SparseColumn)> {
        self.sparse.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// The specs of every column, dense, multi and sparse.
    pub fn column_specs(&self) -> Vec<ColumnSpec> {
        let mut out: Vec<ColumnSpec> = self
            .vectors
            .iter()
            .map(|(n, c)| ColumnSpec::dense(n, c.dim(), c.distance).with_element(c.element()))
            .collect();
        out.extend(self.multi.iter().map(|(n, c)| ColumnSpec::multi(n, c.dim(), c.distance).with_element(c.element())));
        out.extend(self.sparse.keys().map(|n| ColumnSpec::sparse(n)));
        out
    }
    /// Vector `name` of slot `offset`, of whatever kind the column is.
    pub fn vector_ref(&self, name: &str, offset: u32) -> Option<VectorRef<'_>> {
        if let Some(c) = self.vectors.get(name) {
            return c.get(offset).map(VectorRef::Dense);
        }
        if let Some(c) = self.multi.get(name) {
            return c.get(offset).map(VectorRef::Multi);
        }
        self.sparse.get(name).and_then(|c| c.get(offset)).map(VectorRef::Sparse)
    }
    fn set_vectors(&mut self, offset: u32, vectors: &NamedVectors) {
        for (name, col) in self.vectors.iter_mut() {
            col.set(
                offset,
                match vectors.get(name) {
                    Some(Vector::Dense(v)) => Some(v.as_slice()),
                    _ => None,
                },
            );
        }
        for (name, col) in self.multi.iter_mut() {
            col.set(
                offset,
                match vectors.get(name) {
                    Some(Vector::Multi(v)) => Some(v),
                    _ => None,
                },
            );
        }
        for (name, col) in self.sparse.iter_mut() {
            col.set(
                offset,
                match vectors.get(name) {
                    Some(Vector::Sparse(v)) => Some(v),
                    _ => None,
                },
            );
        }
    }
    fn ensure_len(&mut self, slots: usize) {
        for col in self.vectors.values_mut() {
            col.ensure_len(slots);
        }
        for col in self.multi.values_mut() {
            col.ensure_len(slots);
        }
        for col in self.sparse.values_mut() {
            col.ensure_len(slots);
        }
    }
    /// Bytes of vector data (what the optimizer's KiB thresholds count): dense floats of every
    /// slot, stored multivector rows, 8 bytes per stored sparse non-zero. Constant time: the
    /// optimizer asks on every plan.
    pub fn vector_bytes(&self) -> usize {
        let dense: usize = self.vectors.values().map(|c| c.dim() * c.element().size() * self.offsets.len()).sum();
        let multi: usize = self.multi.values().map(MultiColumn::stored_bytes).sum();
        let sparse: usize = self.sparse.values().map(|c| c.stored_values() * 8).sum();
        dense + multi + sparse
    }
    /// Slot `offset`'s payload: borrowed from RAM, or read from the payload source; a failed
    /// read is none (the source reports it). What persists or rewrites payloads uses
    /// [`Self::try_payload_at`].
    pub fn payload_at(&self, offset: u32) -> Option<Cow<'_, Payload>> {
        self.try_payload_at(offset).ok().flatten()
    }

    /// Slot `offset`'s payload, or why it could not be read.
    pub fn try_payload_at(&self, offset: u32) -> Result<Option<Cow<'_, Payload>>, PayloadReadError> {
        let o = offset as usize;
        match (self.offsets.get(o), self.versions.get(o)) {
            (Some(id), Some(&version)) => self.payloads.get(o, id, version),
            _ => Ok(None),
        }
    }

    /// Whether payloads are read from a [`PayloadSource`] rather than held in RAM.
    pub fn payloads_on_disk(&self) -> bool {
        self.payloads.on_disk()
    }

    /// `(id, version)` of every slot in offset order (what a persisted index refers to).
    pub fn members(&self) -> impl Iterator<Item = (PointId, u64)> + '_ {
        self.offsets.iter().copied().zip(self.versions.iter().copied())
    }

    /// CRC-32 over the members in slot order: identifies this segment's content in files
    /// derived from it (see [`crate::mapped`]).
    pub fn members_digest(&self) -> u32 {
        let mut c = crate::hnsw::persist::Crc32::new();
        for (id, version) in self.members() {
            c.update(&id.to_key());
            c.update(&version.to_le_bytes());
        }
        c.finish()
    }
}

/// HNSW graphs (dense and multivectors), quantized vectors and sparse inverted indexes of a
/// sealed segment, by vector name.
#[derive(Debug, Default, Clone)]
pub struct SegmentIndex {
    pub graphs: BTreeMap<String, HnswGraph>,
    /// Int8 codes of the vectors whose config asks for scalar quantization.
    pub quantized: BTreeMap<String, QuantizedVectors>,
    pub sparse: BTreeMap<String, InvertedIndex>,
    /// Payload indexes by field path (as [`JsonPath`] displays it).
    pub payload: BTreeMap<String, FieldIndex>,
}

impl SegmentIndex {
    pub fn ram_bytes(&self) -> usize {
        self.graphs.values().map(HnswGraph::memory_bytes).sum::<usize>()
            + self.quantized.values().map(QuantizedVectors::ram_bytes).sum::<usize>()
            + self.sparse.values().map(InvertedIndex::ram_bytes).sum::<usize>()
            + self.payload.values().map(FieldIndex::ram_bytes).sum::<usize>()
    }
}

/// How a segment evaluates one filter: the top-level `must` conditions that its payload
/// indexes answer become a candidate set (intersected), and only what remains is read from
/// the payload, for candidates only. Without indexes the whole filter is read from payloads.
pub(crate) struct FilterPlan<'a> {
    /// Offsets (ascending, dead ones included) that can pass; `None`: any offset can.
    candidates: Option<(Vec<u32>, OffsetSet)>,
    /// What the indexes did not answer (`None`: nothing left to check).
    pub(crate) residual: Option<std::borrow::Cow<'a, Filter>>,
    /// The whole filter, for candidates the appendable segment's indexes are unsure of
    /// ([`LiveIndex::is_unsure`]); `None` where the indexes are sure of every slot.
    recheck: Option<&'a Filter>,
}

impl FilterPlan<'_> {
    /// Candidate offsets, when the indexes narrowed them down.
    pub(crate) fn candidate_list(&self) -> Option<&[u32]> {
        self.candidates.as_ref().map(|(list, _)| list.as_slice())
    }
}

/// How one search uses a segment's graph.
enum Route<'g> {
    /// Score the filter's candidates (or every point) one by one.
    Exact,
    /// Search the graph: from its top, or, for a groups-only graph, from these offsets.
    Graph(&'g HnswGraph, Option<Vec<u32>>),
}

/// A scored hit inside one segment; `score` is the internal (larger-is-better) score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentHit {
    pub id: PointId,
    pub offset: u32,
    pub score: f32,
}

/// Orders hits by score, ties broken by id (smaller id ranks first) so results are deterministic.
#[derive(PartialEq)]
struct HeapHit(SegmentHit);
impl Eq for HeapHit {}
impl PartialOrd for HeapHit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapHit {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.score.total_cmp(&other.0.score).then_with(|| other.0.id.cmp(&self.0.id))
    }
}

/// The best `k` hits seen so far (a min-heap on [`HeapHit`] order).
struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<HeapHit>>,
}

impl TopK {
    fn new(k: usize) -> Self {
        // Capacity grows with real hits: `k` comes from the request and may be huge.
        TopK { k, heap: BinaryHeap::with_capacity(k.min(4096) + 1) }
    }

    /// Score a hit must reach to get in, once the heap is full.
    fn worst_score(&self) -> Option<f32> {
        if self.heap.len() < self.k {
            return None;
        }
        self.heap.peek().map(|Reverse(w)| w.0.score)
    }

    fn push(&mut self, hit: SegmentHit) {
        let hit = HeapHit(hit);
        if self.heap.len() < self.k {
            self.heap.push(Reverse(hit));
        } else if self.heap.peek().is_some_and(|Reverse(worst)| hit > *worst) {
            self.heap.pop();
            self.heap.push(Reverse(hit));
        }
    }

    fn into_sorted(self) -> Vec<SegmentHit> {
        let mut out: Vec<SegmentHit> = self.heap.into_iter().map(|Reverse(h)| h.0).collect();
        sort_hits(&mut out);
        out
    }
}

/// How a segment should run one nearest-neighbour search.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchParams {
    pub hnsw_ef: Option<usize>,
    pub exact: bool,
    /// Below this many candidate points, filtered searches scan exactly instead of walking
    /// the graph (Qdrant's full_scan_threshold, converted from KiB to points).
    pub full_scan_points: usize,
    /// `params.quantization` (`None`: defaults, i.e. use quantized vectors where they exist
    /// and rescore with the originals).
    pub quantization: Option<QuantizationSearchParams>,
}

#[derive(Debug, Clone)]
pub struct Segment {
    id: u64,
    data: Arc<SegmentData>,
    deleted: Vec<bool>,
    live: usize,
    /// Live points holding each named vector (for sparse ones the `n` of IDF), kept on every
    /// change so neither a query nor a metrics scrape need count them.
    live_vectors: BTreeMap<String, usize>,
    sealed: bool,
    index: Option<Arc<SegmentIndex>>,
    /// An appendable segment's payload indexes, kept while points are written.
    pub(crate) live_index: Option<LiveIndex>,
}

/// A point of a segment seen through the filter's eyes. A payload served from disk is read
/// once, the first time a condition asks for it.
pub struct SegmentPoint<'a> {
    data: &'a SegmentData,
    offset: u32,
    loaded: OnceCell<Option<Payload>>,
}

impl<'a> SegmentPoint<'a> {
    fn new(data: &'a SegmentData, offset: u32) -> Self {
        SegmentPoint { data, offset, loaded: OnceCell::new() }
    }
}

impl PointView for SegmentPoint<'_> {
    fn id(&self) -> PointId {
        self.data.offsets[self.offset as usize]
    }
    fn payload(&self) -> Option<&Payload> {
        if let Some(read) = self.loaded.get() {
            return read.as_ref();
        }
        match self.data.payload_at(self.offset) {
            Some(Cow::Borrowed(p)) => Some(p),
            read => self.loaded.get_or_init(|| read.map(Cow::into_owned)).as_ref(),
        }
    }
    fn has_vector(&self, name: &str) -> bool {
        self.data.vector_ref(name, self.offset).is_some()
    }
}

impl Segment {
    /// An empty appendable segment with one column per configured vector.
    pub fn new(id: u64, columns: &[ColumnSpec]) -> Self {
        let mut data = SegmentData::default();
        for c in columns {
            match c.kind {
                ColumnKind::Dense => {
                    data.vectors.insert(c.name.clone(), VectorColumn::with_element(c.dim, c.distance, c.element));
                }
                ColumnKind::Multi => {
                    data.multi.insert(c.name.clone(), MultiColumn::with_element(c.dim, c.distance, c.element));
                }
                ColumnKind::Sparse => {
                    data.sparse.insert(c.name.clone(), SparseColumn::default());
                }
            }
        }
        Segment {
            id,
            data: Arc::new(data),
            deleted: Vec::new(),
            live: 0,
            live_vectors: BTreeMap::new(),
            sealed: false,
            index: None,
            live_index: None,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Live (not deleted) points.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Slots including tombstones.
    pub fn slots(&self) -> usize {
        self.data.len()
    }

    /// Per slot, whether it holds a live point (not a tombstone).
    pub fn live_slots(&self) -> Vec<bool> {
        (0..self.data.len()).map(|o| !self.deleted.get(o).copied().unwrap_or(false)).collect()
    }

    pub fn deleted_count(&self) -> usize {
        self.data.len() - self.live
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// Stop taking upserts; from now on only tombstones change (payload indexes, if any, are
    /// built for the sealed segment as a whole).
    pub fn seal(&mut self) {
        self.sealed = true;
        self.live_index = None;
    }

    /// The payload indexes an appendable segment keeps while points are written (see
    /// [`LiveIndex`]). Fields defined as before keep what is built; [`Self::index_payloads`]
    /// builds the rest.
    pub fn set_payload_indexes(&mut self, defs: &[PayloadIndexDef]) {
        if self.sealed || same_defs(self.live_index.as_ref().map_or(&[][..], LiveIndex::defs), defs) {
            return;
        }
        match &mut self.live_index {
            _ if defs.is_empty() => self.live_index = None,
            Some(ix) => ix.set_defs(defs.to_vec()),
            None => self.live_index = Some(LiveIndex::new(defs.to_vec())),
        }
    }

    /// The write path's share of keeping the appendable segment's payload indexes: the new
    /// slots of a write, and joining chunks (see [`LiveIndex::index_tail`]).
    pub fn index_new_payloads(&mut self) -> Result<(), PayloadReadError> {
        match &mut self.live_index {
            Some(ix) if ix.tail_due(self.data.len() as u32) => ix.index_tail(&self.data),
            _ => Ok(()),
        }
    }

    /// Whether the appendable segment's payload indexes lag behind its writes by enough to
    /// be worth [`Self::index_payloads`].
    pub fn payload_indexes_behind(&self) -> bool {
        self.live_index.as_ref().is_some_and(|ix| ix.behind(self.data.len() as u32))
    }

    /// Bring the appendable segment's payload indexes up to date, a step at a time until about
    /// `budget` payloads were read; returns whether work is left.
    pub fn index_payloads(&mut self, budget: usize) -> Result<bool, PayloadReadError> {
        match &mut self.live_index {
            Some(ix) => ix.catch_up(&self.data, budget),
            None => Ok(false),
        }
    }

    /// Gives back the room a segment reserved while growing (up to half of what its arrays
    /// hold), for one that will not grow again, and keeps its id map as one array
    /// ([`IdMap::freeze`]). Copies the vectors, so callers do it outside
    /// the shard lock, or on a segment as small as the appendable one when it is sealed; a
    /// segment whose data is shared (an index build is reading it) is left as is.
    pub fn shrink_to_fit(&mut self) {
        let Some(data) = Arc::get_mut(&mut self.data) else { return };
        data.ids.freeze();
        data.offsets.shrink_to_fit();
        data.versions.shrink_to_fit();
        data.payloads.shrink_to_fit();
        data.vectors.values_mut().for_each(VectorColumn::shrink_to_fit);
        data.multi.values_mut().for_each(MultiColumn::shrink_to_fit);
        data.sparse.values_mut().for_each(SparseColumn::shrink_to_fit);
        self.deleted.shrink_to_fit();
    }

    pub fn data(&self) -> &Arc<SegmentData> {
        &self.data
    }

    pub fn index(&self) -> Option<&Arc<SegmentIndex>> {
        self.index.as_ref()
    }

    /// Attach the segment's index. A sparse column already served from a mapped file (mapped
    /// at start-up, before the index was loaded) serves its inverted index from that file too.
    pub fn set_index(&mut self, mut index: Arc<SegmentIndex>) {
        for (name, col) in &self.data.sparse {
            let Some(m) = col.mapping() else { continue };
            if index.sparse.get(name).is_none_or(|ix| !ix.is_mapped()) {
                Arc::make_mut(&mut index).sparse.insert(name.clone(), InvertedIndex::mapped(m.clone()));
            }
        }
        self.index = Some(index);
    }

    /// Serve sparse vector `name` (its vectors and, once indexed, its inverted index) from a
    /// mapped file of this sealed segment. False under the conditions of
    /// [`Segment::map_column`], or if another `Arc` to the segment's index is alive.
    pub fn map_sparse(&mut self, name: &str, m: Arc<MappedSparse>) -> bool {
        if !self.sealed || self.index.as_mut().is_some_and(|ix| Arc::get_mut(ix).is_none()) {
            return false;
        }
        let Some(col) = Arc::get_mut(&mut self.data).and_then(|d| d.sparse.get_mut(name)) else { return false };
        if !col.map(m.clone()) {
            return false;
        }
        if let Some(ix) = self.index.as_mut().and_then(Arc::get_mut) {
            ix.sparse.insert(name.to_string(), InvertedIndex::mapped(m));
        }
        true
    }

    /// Serve sparse vector `name` from the heap again: `column` and `index` are heap copies
    /// made beforehand. False under the conditions of [`Segment::map_sparse`] or if the
    /// copies do not cover the segment's slots.
    pub fn unmap_sparse(&mut self, name: &str, column: SparseColumn, index: InvertedIndex) -> bool {
        if column.len() != self.slots() || index.slots() != self.slots() {
            return false;
        }
        if self.index.as_mut().is_some_and(|ix| Arc::get_mut(ix).is_none()) {
            return false;
        }
        let Some(col) = Arc::get_mut(&mut self.data).and_then(|d| d.sparse.get_mut(name)) else { return false };
        *col = column;
        if let Some(ix) = self.index.as_mut().and_then(Arc::get_mut) {
            ix.sparse.insert(name.to_string(), index);
        }
        true
    }

    /// Serve column `name` from a memory-mapped file of this (sealed) segment's vectors
    /// (opened and checked beforehand, without any lock held). False if the segment is
    /// appendable, the file's shape does not match, or another `Arc` to the segment's data is
    /// alive (swapping would then copy the whole segment: callers drop theirs first).
    pub fn map_column(&mut self, name: &str, m: MappedVectors) -> bool {
        if !self.sealed {
            return false;
        }
        Arc::get_mut(&mut self.data).and_then(|d| d.vectors.get_mut(name)).is_some_and(|c| c.map(m))
    }

    /// Serve column `name` from the heap again, from `data` (copied from the mapping
    /// beforehand); false under the same conditions as [`Segment::map_column`].
    pub fn unmap_column(&mut self, name: &str, data: ElemVec) -> bool {
        Arc::get_mut(&mut self.data).and_then(|d| d.vectors.get_mut(name)).is_some_and(|c| c.unmap(data))
    }

    /// Serve multivector `name` from a mapped file of this sealed segment; false under the
    /// conditions of [`Segment::map_column`].
    pub fn map_multi(&mut self, name: &str, m: Arc<MappedMulti>) -> bool {
        if !self.sealed {
            return false;
        }
        Arc::get_mut(&mut self.data).and_then(|d| d.multi.get_mut(name)).is_some_and(|c| c.map(m))
    }

    /// Serve multivector `name` from the heap again: `column` is a heap copy made beforehand
    /// over the same slots; false otherwise or under the conditions of [`Segment::map_column`].
    pub fn unmap_multi(&mut self, name: &str, column: MultiColumn) -> bool {
        let Some(col) = Arc::get_mut(&mut self.data).and_then(|d| d.multi.get_mut(name)) else { return false };
        if column.len() != col.len() || column.dim() != col.dim() {
            return false;
        }
        *col = column;
        true
    }

    fn live_offset(&self, id: &PointId) -> Option<u32> {
        self.data.ids.get(id).filter(|&o| !self.deleted[o as usize])
    }

    pub fn contains(&self, id: &PointId) -> bool {
        self.live_offset(id).is_some()
    }

    pub fn version(&self, id: &PointId) -> Option<u64> {
        self.live_offset(id).map(|o| self.data.versions[o as usize])
    }

    /// Insert or overwrite a point (appendable segments only). Vectors must be validated and
    /// preprocessed already. Returns false on a sealed segment.
    pub fn upsert(&mut self, id: PointId, version: u64, vectors: &NamedVectors, payload: Option<Payload>) -> bool {
        if self.sealed {
            return false;
        }
        if let Some(o) = self.live_offset(&id) {
            self.count_vectors(o, false);
        }
        let data = Arc::make_mut(&mut self.data);
        let offset = match data.ids.get(&id) {
            Some(o) => o,
            None => {
                let o = data.offsets.len() as u32;
                data.offsets.push(id);
                data.versions.push(0);
                data.payloads.push_slot();
                data.ids.insert(id, o);
                self.deleted.push(true);
                o
            }
        };
        let o = offset as usize;
        data.versions[o] = version;
        // A slot whose payload did not change (a vector update) keeps its indexed values.
        let indexed = |ix: &&mut LiveIndex| offset < ix.covered() && !data.payloads.holds(o, payload.as_ref());
        if let Some(ix) = self.live_index.as_mut().filter(indexed) {
            ix.touch(offset);
        }
        data.payloads.set(o, payload);
        data.set_vectors(offset, vectors);
        if self.deleted[o] {
            self.deleted[o] = false;
            self.live += 1;
        }
        self.count_vectors(offset, true);
        true
    }

    /// Count slot `o`'s vectors (every kind) into (`add`) or out of the live counts.
    fn count_vectors(&mut self, o: u32, add: bool) {
        let data = &self.data;
        let held = data
            .vectors
            .iter()
            .filter(|(_, c)| c.get(o).is_some())
            .map(|(n, _)| n)
            .chain(data.multi.iter().filter(|(_, c)| c.get(o).is_some()).map(|(n, _)| n))
            .chain(data.sparse.iter().filter(|(_, c)| c.get(o).is_some()).map(|(n, _)| n));
        for name in held {
            match self.live_vectors.get_mut(name) {
                Some(n) => *n = if add { *n + 1 } else { n.saturating_sub(1) },
                None if add => {
                    self.live_vectors.insert(name.clone(), 1);
                }
                None => {}
            }
        }
    }

    /// Live points holding vector `name` (any kind), kept on every change: what `/metrics`
    /// and IDF read instead of counting.
    pub fn live_vector_count(&self, name: &str) -> usize {
        self.live_vectors.get(name).copied().unwrap_or(0)
    }

    /// [`Self::live_vector_count`] of every vector name held by a live point.
    pub fn live_vector_counts(&self) -> &BTreeMap<String, usize> {
        &self.live_vectors
    }

    pub fn delete(&mut self, id: &PointId) -> bool {
        match self.live_offset(id) {
            Some(o) => {
                self.count_vectors(o, false);
                self.deleted[o as usize] = true;
                self.live -= 1;
                true
            }
            None => false,
        }
    }

    /// A live point's payload; a failed read from disk is none (see [`Self::try_payload`]).
    pub fn payload(&self, id: &PointId) -> Option<Cow<'_, Payload>> {
        self.live_offset(id).and_then(|o| self.data.payload_at(o))
    }

    /// A live point's payload, or why it could not be read.
    pub fn try_payload(&self, id: &PointId) -> Result<Option<Cow<'_, Payload>>, PayloadReadError> {
        match self.live_offset(id) {
            Some(o) => self.data.try_payload_at(o),
            None => Ok(None),
        }
    }

    /// The payload of every slot, read from the payload source for live slots (dead ones get
    /// none): what moving them back to RAM needs.
    pub fn read_payloads(&self) -> Result<Vec<Option<Payload>>, PayloadReadError> {
        (0..self.data.len() as u32)
            .map(|o| {
                if self.deleted[o as usize] {
                    return Ok(None);
                }
                Ok(self.data.try_payload_at(o)?.map(Cow::into_owned))
            })
            .collect()
    }

    /// Serve this segment's payloads from `source` (`on_disk_payload`); gives back what RAM
    /// held, to be dropped outside the shard lock. `None` (nothing changed) while another
    /// reference to the data is alive (an index build reading it): moving would copy it.
    pub fn payloads_to_disk(&mut self, source: Arc<dyn PayloadSource>) -> Option<Vec<Option<Payload>>> {
        Arc::get_mut(&mut self.data).map(|d| d.payloads.move_to(source))
    }

    /// Hold `payloads` (one per slot, as [`Self::read_payloads`] gives them) in RAM
    /// again. False (nothing changed) if they do not fit the slots or the data is shared.
    pub fn payloads_to_ram(&mut self, payloads: Vec<Option<Payload>>) -> bool {
        let slots = self.data.len();
        match Arc::get_mut(&mut self.data) {
            Some(d) if payloads.len() == slots => {
                d.payloads.move_to_ram(payloads);
                true
            }
            _ => false,
        }
    }

    /// All vectors of a live point, by name.
    pub fn vectors(&self, id: &PointId) -> NamedVectors {
        let mut out = NamedVectors::new();
        if let Some(o) = self.live_offset(id) {
            for (name, col) in &self.data.vectors {
                if let Some(v) = col.get(o) {
                    out.insert(name.clone(), Vector::Dense(v.stored().to_vec()));
                }
            }
            for (name, col) in &self.data.multi {
                if let Some(v) = col.get_owned(o) {
                    out.insert(name.clone(), Vector::Multi(v));
                }
            }
            for (name, col) in &self.data.sparse {
                if let Some(v) = col.get(o) {
                    out.insert(name.clone(), Vector::Sparse(v.to_owned()));
                }
            }
        }
        out
    }

    pub fn point_view(&self, id: &PointId) -> Option<SegmentPoint<'_>> {
        self.live_offset(id).map(|offset| SegmentPoint::new(&self.data, offset))
    }

    /// Split `filter` into what this segment's payload indexes answer and what is left.
    pub(crate) fn plan<'f>(&self, filter: Option<&'f Filter>) -> FilterPlan<'f> {
        let Some(f) = filter else { return FilterPlan { candidates: None, residual: None, recheck: None } };
        let whole = || FilterPlan { candidates: None, residual: Some(std::borrow::Cow::Borrowed(f)), recheck: None };
        let sealed = self
            .index
            .as_ref()
            .map(|ix| &ix.payload)
            .filter(|p| !p.is_empty() && p.values().all(|i| i.slots() == self.data.len()));
        let live = self.live_index.as_ref();
        if sealed.is_none() && live.is_none() {
            return whole();
        }
        let answer = |key: String, check| match (sealed, live) {
            (Some(ix), _) => ix.get(&key)?.answer(check),
            (None, Some(ix)) => ix.answer(&key, check),
            (None, None) => None,
        };
        let mut candidates: Option<Vec<u32>> = None;
        let mut rest = Vec::new();
        for c in &f.must {
            let answered = match c {
                Condition::Field(fc) => answer(fc.key.to_string(), &fc.check),
                _ => None,
            };
            match answered {
                Some(list) => {
                    candidates = Some(match candidates {
                        None => list,
                        Some(prev) => intersect(&prev, &list),
                    })
                }
                None => rest.push(c.clone()),
            }
        }
        let Some(mut list) = candidates else { return whole() };
        // Slots the appendable segment's indexes are unsure of are candidates of every
        // condition, checked on the whole filter.
        let recheck = live.map(|ix| {
            list = union_sorted(&list, &ix.unsure(self.data.len() as u32));
            f
        });
        let residual = Filter { must: rest, ..f.clone() };
        let residual = (!residual.is_empty()).then_some(std::borrow::Cow::Owned(residual));
        let set = OffsetSet::new(self.data.len(), &list);
        FilterPlan { candidates: Some((list, set)), residual, recheck }
    }

    /// Whether a live offset passes a planned filter.
    fn passes(&self, offset: u32, plan: &FilterPlan<'_>) -> bool {
        !self.deleted[offset as usize]
            && plan.candidates.as_ref().is_none_or(|(_, set)| set.contains(offset))
            && self.passes_rest(offset, plan)
    }

    /// Whether a candidate of a planned filter passes what the indexes did not answer: the
    /// residual, or the whole filter for a slot the appendable segment's indexes are unsure of.
    fn passes_rest(&self, offset: u32, plan: &FilterPlan<'_>) -> bool {
        let rest = match plan.recheck {
            Some(whole) if self.is_unsure(offset) => Some(whole),
            _ => plan.residual.as_deref(),
        };
        rest.is_none_or(|f| f.check(&SegmentPoint::new(&self.data, offset)))
    }

    /// Whether slot `o` is missing from, or stale in, the appendable segment's payload indexes.
    fn is_unsure(&self, o: u32) -> bool {
        self.live_index.as_ref().is_some_and(|ix| ix.is_unsure(o))
    }

    /// Live ids in ascending order starting at `from` (inclusive), passing the filter.
    pub fn scroll(&self, from: Option<&PointId>, filter: Option<&Filter>, limit: usize) -> Vec<PointId> {
        let plan = self.plan(filter);
        self.data.ids.iter_from(from).filter(|&(_, o)| self.passes(o, &plan)).take(limit).map(|(id, _)| id).collect()
    }

    /// Number of live points passing the filter.
    pub fn count(&self, filter: Option<&Filter>) -> usize {
        match filter {
            None => self.live,
            Some(_) => {
                let plan = self.plan(filter);
                self.offsets_of(&plan).filter(|&o| self.passes(o, &plan)).count()
            }
        }
    }

    /// The offsets a planned filter can pass: its candidates, or every slot.
    fn offsets_of<'p>(&self, plan: &'p FilterPlan<'_>) -> Box<dyn Iterator<Item = u32> + 'p> {
        match plan.candidate_list() {
            Some(list) => Box::new(list.iter().copied()),
            None => Box::new(0..self.data.len() as u32),
        }
    }

    /// The payload index of `key`, if this segment has one covering all its slots.
    fn payload_index(&self, key: &JsonPath) -> Option<&FieldIndex> {
        self.index.as_ref()?.payload.get(&key.to_string()).filter(|ix| ix.slots() == self.data.len())
    }

    /// The slots an answer read from the payload indexes must still read from the payload:
    /// those the appendable segment's indexes are unsure of (none in a sealed segment).
    fn unsure_slots(&self) -> Box<dyn Iterator<Item = u32>> {
        let unsure = self.live_index.as_ref().map(|ix| ix.unsure(self.data.len() as u32));
        Box::new(unsure.unwrap_or_default().into_iter())
    }

    /// Counts of the values at `key` among live points passing the filter, each point counted
    /// once per distinct value (as [`facet_key`] tells values apart): from the key's payload
    /// index when it holds every such value, else from the payloads.
    pub fn facet(&self, key: &JsonPath, filter: Option<&Filter>) -> Vec<(serde_json::Value, usize)> {
        let plan = self.plan(filter);
        let mut counts: BTreeMap<(u8, String), (serde_json::Value, usize)> = BTreeMap::new();
        let indexed = match &self.live_index {
            Some(ix) => ix.facet_values(&key.to_string()),
            None => self.payload_index(key).and_then(FieldIndex::facet_values),
        };
        let from_payload = match indexed {
            Some(values) => {
                for (v, postings) in values {
                    let n = postings.iter().filter(|&&o| !self.is_unsure(o) && self.passes(o, &plan)).count();
                    if let Some(k) = facet_key(&v).filter(|_| n > 0) {
                        counts.entry(k).or_insert_with(|| (v, 0)).1 += n;
                    }
                }
                self.unsure_slots()
            }
            None => self.offsets_of(&plan),
        };
        for o in from_payload.filter(|&o| self.passes(o, &plan)) {
            let Some(p) = self.data.payload_at(o) else { continue };
            let p: &Payload = &p;
            let mut seen = std::collections::HashSet::new();
            for v in key.values_flat(p) {
                if let Some(k) = facet_key(v) {
                    if seen.insert(k.clone()) {
                        counts.entry(k).or_insert_with(|| (v.clone(), 0)).1 += 1;
                    }
                }
            }
        }
        counts.into_values().collect()
    }

    /// `(order value, id)` of every live point passing the filter, once per distinct value it
    /// holds at `key` (see [`order_value`]): from the key's payload index when it holds every such
    /// value, else from the payloads; in no particular order.
    pub fn order_entries(&self, key: &JsonPath, filter: Option<&Filter>) -> Vec<(f64, PointId)> {
        let plan = self.plan(filter);
        let mut out = Vec::new();
        let indexed = match &self.live_index {
            Some(ix) => ix.order_entries(&key.to_string()),
            None => self.payload_index(key).and_then(FieldIndex::order_entries),
        };
        let from_payload = match indexed {
            Some(entries) => {
                out.extend(
                    entries
                        .into_iter()
                        .filter(|&(_, o)| !self.is_unsure(o) && self.passes(o, &plan))
                        .map(|(x, o)| (x, self.data.offsets[o as usize])),
                );
                self.unsure_slots()
            }
            None => self.offsets_of(&plan),
        };
        for o in from_payload.filter(|&o| self.passes(o, &plan)) {
            let Some(p) = self.data.payload_at(o) else { continue };
            let p: &Payload = &p;
            let mut seen: Vec<f64> = Vec::new();
            for x in key.values_flat(p).into_iter().filter_map(order_value) {
                if !seen.contains(&x) {
                    seen.push(x);
                    out.push((x, self.data.offsets[o as usize]));
                }
            }
        }
        out
    }

    /// Estimated number of live points passing the filter (see [`Segment::estimate`]).
    pub fn estimate_count(&self, filter: &Filter) -> usize {
        self.estimate(&self.plan(Some(filter)))
    }

    /// Number of live points passing a planned filter: exact when few candidates are left,
    /// otherwise the candidates scaled by the live share of the slots when indexes answered all
    /// of it, or from a deterministic sample of the candidates (or of every slot, without them).
    fn estimate(&self, plan: &FilterPlan<'_>) -> usize {
        // Candidates still checked on their payload (the residual, or unsure slots).
        let reads = plan.residual.is_some() || plan.recheck.is_some();
        // Each sampled point whose payload is on disk costs a database read: fewer samples.
        let sample = if self.data.payloads_on_disk() && reads { 128 } else { 512 };
        let pool = plan.candidate_list().map_or(self.data.len(), <[u32]>::len);
        if pool <= sample * 2 {
            return self.offsets_of(plan).filter(|&o| self.passes(o, plan)).count();
        }
        if !reads {
            return pool * self.live / self.data.len().max(1);
        }
        let step = pool / sample;
        let at = |i: usize| plan.candidate_list().map_or(i as u32, |l| l[i]);
        let hits = (0..sample).filter(|i| self.passes(at(i * step), plan)).count();
        hits * pool / sample
    }

    /// Exact top-`k` under any scoring function of the stored vector (larger is better; `None`
    /// means the point is no hit); `threshold` drops hits scoring below it.
    pub fn search_scored(
        &self,
        vector: &str,
        scorer: &dyn Fn(VectorRef<'_>) -> Option<f32>,
        k: usize,
        filter: Option<&Filter>,
        threshold: Option<f32>,
    ) -> Vec<SegmentHit> {
        if k == 0 {
            return Vec::new();
        }
        let mut top = TopK::new(k);
        let plan = self.plan(filter);
        for offset in self.offsets_of(&plan) {
            let Some(v) = self.data.vector_ref(vector, offset) else { continue };
            if !self.passes(offset, &plan) {
                continue;
            }
            let Some(score) = scorer(v) else { continue };
            if threshold.is_some_and(|t| score < t) {
                continue;
            }
            let hit = SegmentHit { id: self.data.offsets[offset as usize], offset, score };
            top.push(hit);
        }
        top.into_sorted()
    }

    /// Nearest neighbours of a preprocessed query: through the HNSW graph when the segment has
    /// one and the filter is not so selective that scanning its matches is cheaper; exactly
    /// otherwise.
    pub fn search_nearest(
        &self,
        vector: &str,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        threshold: Option<f32>,
        params: &SearchParams,
    ) -> Vec<SegmentHit> {
        let Some(col) = self.data.vectors.get(vector) else { return Vec::new() };
        let distance = col.distance;
        let graph = self.index.as_ref().and_then(|ix| ix.graphs.get(vector));
        let plan = self.plan(filter);
        let accept = |o: u32| col.get(o).is_some() && self.passes(o, &plan);
        let route = self.route(graph, filter, &plan, params);
        let qp = params.quantization.unwrap_or_default();
        let quantized = self.index.as_ref().and_then(|ix| ix.quantized.get(vector)).filter(|q| {
            !q.is_multi() && !params.exact && !qp.ignore && k > 0 && q.len() >= self.data.len() && q.dim() == col.dim()
        });
        if let Some(qv) = quantized {
            let exact = |o: u32| Some(col.vector(o).with_f32(|v| col.distance.score(query, v)));
            let scorer = qv.query(query);
            return self.search_quantized(&scorer, &route, self.data.len(), &accept, &exact, k, threshold, params);
        }
        let Route::Graph(graph, entries) = route else {
            return self.scan_nearest(col, query, k, &plan, threshold);
        };
        let ef = params.hnsw_ef.unwrap_or(0).max(k);
        graph
            .search(col, distance, query, k, ef, Some(&accept), entries.as_deref())
            .into_iter()
            .filter(|(_, s)| threshold.is_none_or(|t| *s >= t))
            .map(|(offset, score)| SegmentHit { id: self.data.offsets[offset as usize], offset, score })
            .collect()
    }

    /// How a search of this segment uses `graph` (see [`Route`]): exactly when there is no
    /// graph, `exact` is asked, or the filter passes fewer than `full_scan_points` points; a
    /// groups-only graph also needs the filter to name its groups ([`Segment::group_entries`]).
    fn route<'g>(
        &self,
        graph: Option<&'g HnswGraph>,
        filter: Option<&Filter>,
        plan: &FilterPlan<'_>,
        params: &SearchParams,
    ) -> Route<'g> {
        let Some(g) = graph.filter(|_| !params.exact) else { return Route::Exact };
        let Some(f) = filter else {
            return if g.is_groups_only() { Route::Exact } else { Route::Graph(g, None) };
        };
        if self.estimate(plan) < params.full_scan_points {
            return Route::Exact;
        }
        if !g.is_groups_only() {
            return Route::Graph(g, None);
        }
        match self.group_entries(g, f) {
            Some(entries) => Route::Graph(g, Some(entries)),
            None => Route::Exact,
        }
    }

    /// Where to enter a groups-only graph so that every point `filter` passes is reachable:
    /// one member of each group named by a `must` match on an indexed keyword, uuid, integer
    /// or bool field whose groups the graph all linked ([`HnswGraph::has_group`]): the points
    /// the filter passes lie in those groups, and each linked group is connected. `None` when
    /// no condition names only linked groups (a value too small when the graph was built, or a
    /// field indexed since): the search then scans exactly.
    fn group_entries(&self, g: &HnswGraph, filter: &Filter) -> Option<Vec<u32>> {
        filter.must.iter().find_map(|c| {
            let Condition::Field(fc) = c else { return None };
            let field = fc.key.to_string();
            let groups = self.payload_index(&fc.key)?.value_postings(&fc.check)?;
            let mut entries = Vec::with_capacity(groups.len());
            for (value, posting) in groups {
                // Any member reaches the whole group (dead ones keep their links).
                let Some(&first) = posting.first() else { continue };
                if !g.has_group(group_tag(&field, &value)) {
                    return None;
                }
                entries.push(first);
            }
            Some(entries)
        })
    }

    /// Exact nearest neighbours by a tight loop over the contiguous column (the score function
    /// resolved once); same results and tie order as [`Segment::search_scored`].
    fn scan_nearest(
        &self,
        col: &VectorColumn,
        query: &[f32],
        k: usize,
        plan: &FilterPlan<'_>,
        threshold: Option<f32>,
    ) -> Vec<SegmentHit> {
        if k == 0 {
            return Vec::new();
        }
        let scorer = col.distance.scorer();
        let dim = col.dim();
        let data = col.data();
        let mut top = TopK::new(k);
        let mut consider = |o: usize| {
            if self.deleted[o] || !col.present[o] {
                return;
            }
            let score = data.slice(o * dim, (o + 1) * dim).with_f32(|v| scorer.score(query, v));
            if threshold.is_some_and(|t| score < t) || top.worst_score().is_some_and(|w| score < w) {
                return;
            }
            let offset = o as u32;
            if !self.passes_rest(offset, plan) {
                return;
            }
            top.push(SegmentHit { id: self.data.offsets[o], offset, score });
        };
        // Candidates from the payload indexes already passed the indexed conditions. They are
        // scattered over the column, so each row is prefetched a few candidates ahead (the
        // hardware prefetcher only follows the sequential scan): a scan of 10 % of 100k
        // 128-d rows is otherwise bound by memory latency.
        match plan.candidate_list() {
            Some(list) => {
                for (i, &o) in list.iter().enumerate() {
                    if let Some(&next) = list.get(i + PREFETCH_AHEAD) {
                        let (from, to) = (next as usize * dim, (next as usize + 1) * dim);
                        if to <= data.len() {
                            let row = data.slice(from, to);
                            prefetch_bytes(row.as_ptr(), row.byte_len());
                        }
                    }
                    consider(o as usize);
                }
            }
            None => (0..self.deleted.len().min(col.present.len())).for_each(consider),
        }
        top.into_sorted()
    }

    /// Candidates by quantized score (`scorer`, through `graph` when given, else a scan of
    /// offsets `0..n`), then, unless `rescore` is off, `ceil(k * oversampling)` of them rescored
    /// with the original vectors (`exact`; dense vectors and multivectors alike).
    #[allow(clippy::too_many_arguments)]
    fn search_quantized<S: OffsetScorer>(
        &self,
        scorer: &S,
        route: &Route<'_>,
        n: usize,
        accept: &(dyn Fn(u32) -> bool + Sync),
        exact: &dyn Fn(u32) -> Option<f32>,
        k: usize,
        threshold: Option<f32>,
        params: &SearchParams,
    ) -> Vec<SegmentHit> {
        let qp = params.quantization.unwrap_or_default();
        let rescore = qp.rescore();
        let fetch = if rescore { ((k as f64) * qp.oversampling()).ceil() as usize } else { k }.max(k);
        let candidates = match route {
            Route::Graph(g, entries) => {
                g.search_with(scorer, fetch, params.hnsw_ef.unwrap_or(0).max(fetch), Some(accept), entries.as_deref())
            }
            Route::Exact => exact_search_by(scorer, n, fetch, Some(accept)),
        };
        let mut hits: Vec<SegmentHit> = candidates
            .into_iter()
            .filter_map(|(offset, s)| {
                let score = if rescore { exact(offset)? } else { s };
                Some(SegmentHit { id: self.data.offsets[offset as usize], offset, score })
            })
            .filter(|h| threshold.is_none_or(|t| h.score >= t))
            .collect();
        sort_hits(&mut hits);
        hits.truncate(k);
        hits
    }

    /// Bytes of RAM held by vectors, payloads held in RAM (estimated from JSON size) and the index.
    pub fn ram_usage(&self) -> (usize, usize, usize) {
        let vectors = self.data.vectors.values().map(VectorColumn::ram_bytes).sum::<usize>()
            + self.data.multi.values().map(MultiColumn::ram_bytes).sum::<usize>()
            + self.data.sparse.values().map(SparseColumn::ram_bytes).sum::<usize>();
        let index =
            self.index.as_ref().map_or(0, |i| i.ram_bytes()) + self.live_index.as_ref().map_or(0, LiveIndex::ram_bytes);
        (vectors, self.data.payloads.ram_bytes(), index)
    }

    /// Bytes of stored payloads (estimated from JSON size; a counter, constant time).
    pub fn payload_bytes(&self) -> usize {
        self.data.payloads.bytes()
    }

    /// Bytes of memory-mapped vector files this segment serves from.
    pub fn mapped_bytes(&self) -> u64 {
        let dense: u64 = self.data.vectors.values().map(|c| c.mapped_bytes() as u64).sum();
        let multi: u64 = self.data.multi.values().map(|c| c.mapped_bytes() as u64).sum();
        dense + multi + self.data.sparse.values().map(|c| c.mapped_bytes() as u64).sum::<u64>()
    }

    /// Metric of a column (Dot for sparse vectors), `None` if the segment has no such column.
    pub fn distance(&self, vector: &str) -> Option<Distance> {
        self.data
            .vectors
            .get(vector)
            .map(|c| c.distance)
            .or_else(|| self.data.multi.get(vector).map(|c| c.distance))
            .or_else(|| self.data.sparse.get(vector).map(|_| Distance::Dot))
    }

    /// Live points holding vector `name` (its column found once, not per slot: a per-slot
    /// lookup by name was most of the cost of collection info).
    fn live_with_vector(&self, name: &str) -> usize {
        let slots = 0..self.data.len() as u32;
        let live = |o: &u32| !self.deleted[*o as usize];
        if let Some(c) = self.data.vectors.get(name) {
            return slots.filter(live).filter(|&o| c.get(o).is_some()).count();
        }
        if let Some(c) = self.data.multi.get(name) {
            return slots.filter(live).filter(|&o| c.get(o).is_some()).count();
        }
        match self.data.sparse.get(name) {
            Some(c) => slots.filter(live).filter(|&o| c.get(o).is_some()).count(),
            None => 0,
        }
    }

    /// Live points with a vector indexed by a graph or a sparse inverted index.
    pub fn indexed_vector_count(&self) -> usize {
        match &self.index {
            None => 0,
            Some(ix) => ix.graphs.keys().chain(ix.sparse.keys()).map(|n| self.live_with_vector(n)).sum(),
        }
    }

    /// Exact max-sim top-`k` for a multivector query (rows preprocessed), through the graph
    /// when the segment has one for this vector and no exact search is asked for.
    pub fn search_multi(
        &self,
        vector: &str,
        query: &MultiDenseVector,
        k: usize,
        filter: Option<&Filter>,
        threshold: Option<f32>,
        params: &SearchParams,
    ) -> Vec<SegmentHit> {
        let Some(col) = self.data.multi.get(vector) else { return Vec::new() };
        if k == 0 || query.dim() != col.dim() {
            return Vec::new();
        }
        let q = query.flat();
        let graph = self.index.as_ref().and_then(|ix| ix.graphs.get(vector));
        let plan = self.plan(filter);
        let accept = |o: u32| col.get(o).is_some() && self.passes(o, &plan);
        let route = self.route(graph, filter, &plan, params);
        let qp = params.quantization.unwrap_or_default();
        let quantized = self.index.as_ref().and_then(|ix| ix.quantized.get(vector)).filter(|qv| {
            qv.is_multi() && !params.exact && !qp.ignore && qv.len() >= col.len() && qv.dim() == col.dim()
        });
        if let Some(qv) = quantized {
            let max_sim = MaxSimScorer::new(col.distance, col.dim());
            let exact = |o: u32| col.get(o).map(|rows| rows.with_f32(|rows| max_sim.score(q, rows)));
            let scorer = qv.query_multi(q);
            return self.search_quantized(&scorer, &route, col.len(), &accept, &exact, k, threshold, params);
        }
        if let Route::Graph(graph, entries) = route {
            let ef = params.hnsw_ef.unwrap_or(0).max(k);
            return graph
                .search_multi(col, col.distance, col.dim(), q, k, ef, Some(&accept), entries.as_deref())
                .into_iter()
                .filter(|(_, s)| threshold.is_none_or(|t| *s >= t))
                .map(|(offset, score)| SegmentHit { id: self.data.offsets[offset as usize], offset, score })
                .collect();
        }
        let scorer = MaxSimScorer::new(col.distance, col.dim());
        self.search_scored(
            vector,
            &|v| match v {
                VectorRef::Multi(rows) => Some(rows.with_f32(|r| scorer.score(q, r))),
                _ => None,
            },
            k,
            filter,
            threshold,
        )
    }

    /// Top-`k` by sparse dot product (points sharing no index with the query are no hits):
    /// through the inverted index on a sealed segment, unless a filter selects fewer than
    /// `full_scan_points` points, which are then scored one by one (as on appendable ones).
    /// `floor`, shared with the other segments of the same search, lets the index skip what
    /// another segment's k-th best already beats.
    #[allow(clippy::too_many_arguments)]
    pub fn search_sparse(
        &self,
        vector: &str,
        query: &SparseVector,
        k: usize,
        filter: Option<&Filter>,
        threshold: Option<f32>,
        full_scan_points: usize,
        floor: Option<&ScoreFloor>,
    ) -> Vec<SegmentHit> {
        let Some(col) = self.data.sparse.get(vector) else { return Vec::new() };
        if k == 0 || query.is_empty() {
            return Vec::new();
        }
        let index = self.index.as_ref().and_then(|ix| ix.sparse.get(vector)).filter(|ix| ix.slots() == self.data.len());
        let plan = self.plan(filter);
        let index = index.filter(|_| filter.is_none() || self.estimate(&plan) >= full_scan_points);
        let Some(index) = index else {
            return self.search_scored(
                vector,
                &|v| match v {
                    VectorRef::Sparse(s) => {
                        let (score, any) = s.dot(query);
                        any.then_some(score)
                    }
                    _ => None,
                },
                k,
                filter,
                threshold,
            );
        };
        let mut top = TopK::new(k);
        // The score a hit must reach: the threshold asked for, then the k-th best so far.
        let needed = std::cell::Cell::new(threshold);
        let floor_or = |t: Option<f32>| match (t, floor.and_then(ScoreFloor::get)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        index.search(
            query,
            || floor_or(needed.get()),
            |offset, score| {
                if self.deleted[offset as usize] || col.get(offset).is_none() {
                    return;
                }
                if needed.get().is_some_and(|t| score < t) {
                    return;
                }
                if filter.is_some() && !self.passes(offset, &plan) {
                    return;
                }
                top.push(SegmentHit { id: self.data.offsets[offset as usize], offset, score });
                if let Some(w) = top.worst_score() {
                    needed.set(Some(threshold.map_or(w, |t| t.max(w))));
                    if let Some(f) = floor {
                        f.raise(w);
                    }
                }
            },
        );
        top.into_sorted()
    }

    /// Per index of `indices`: live points of this segment whose sparse vector `vector` holds
    /// it (document frequency for IDF), plus the live points having that vector at all.
    pub fn sparse_df(&self, vector: &str, indices: &[u32]) -> (Vec<usize>, usize) {
        let mut df = vec![0usize; indices.len()];
        let Some(col) = self.data.sparse.get(vector) else { return (df, 0) };
        let live = |o: u32| !self.deleted[o as usize] && col.get(o).is_some();
        let with_vector = self.live_vectors.get(vector).copied().unwrap_or(0);
        match self.index.as_ref().and_then(|ix| ix.sparse.get(vector)).filter(|ix| ix.slots() == self.data.len()) {
            Some(ix) => {
                for (d, &i) in df.iter_mut().zip(indices) {
                    *d = ix.posting_offsets(i).iter().filter(|&&o| live(o)).count();
                }
            }
            None => {
                for o in (0..self.data.len() as u32).filter(|&o| live(o)) {
                    if let Some(v) = col.get(o) {
                        for (d, &i) in df.iter_mut().zip(indices) {
                            if v.contains(i) {
                                *d += 1;
                            }
                        }
                    }
                }
            }
        }
        (df, with_vector)
    }

    /// A sealed segment restored from disk: slots in the persisted order, all dead until
    /// [`Segment::restore_slot`] fills them from point records.
    pub fn restore_sealed(id: u64, columns: &[ColumnSpec], members: &[(PointId, u64)]) -> Self {
        let mut seg = Segment::new(id, columns);
        let data = Arc::make_mut(&mut seg.data);
        data.ids = IdMap::frozen(members.iter().enumerate().map(|(o, (pid, _))| (*pid, o as u32)));
        for (pid, ver) in members {
            data.offsets.push(*pid);
            data.versions.push(*ver);
            data.payloads.push_slot();
        }
        data.ensure_len(members.len());
        seg.deleted = vec![true; members.len()];
        seg.sealed = true;
        seg
    }

    /// Fill slot `offset` of a restored sealed segment with the point's current record.
    pub fn restore_slot(&mut self, offset: u32, vectors: &NamedVectors, payload: Option<Payload>) {
        let o = offset as usize;
        if o >= self.data.offsets.len() {
            return;
        }
        if !self.deleted[o] {
            self.count_vectors(offset, false);
        }
        let data = Arc::make_mut(&mut self.data);
        data.payloads.set(o, payload);
        data.set_vectors(offset, vectors);
        if self.deleted[o] {
            self.deleted[o] = false;
            self.live += 1;
        }
        self.count_vectors(offset, true);
    }

    /// Bring the columns in line with `columns`: columns no longer listed are dropped (with
    /// their graphs and indexes), new ones are added empty on an appendable segment (a sealed
    /// one simply has no vectors of a name it never saw).
    pub fn set_columns(&mut self, columns: &[ColumnSpec]) {
        let keep = |name: &str| columns.iter().any(|c| c.name == name);
        let specs = self.data.column_specs();
        let stale = specs.iter().any(|c| !columns.contains(c));
        let missing = !self.sealed && columns.iter().any(|c| !specs.contains(c));
        if !stale && !missing {
            return;
        }
        let slots = self.data.len();
        let data = Arc::make_mut(&mut self.data);
        for c in specs.iter().filter(|c| !columns.contains(c)) {
            data.vectors.remove(&c.name);
            data.multi.remove(&c.name);
            data.sparse.remove(&c.name);
        }
        if !self.sealed {
            for c in columns.iter().filter(|c| !specs.contains(c)) {
                match c.kind {
                    ColumnKind::Dense => {
                        data.vectors.insert(c.name.clone(), VectorColumn::with_element(c.dim, c.distance, c.element));
                    }
                    ColumnKind::Multi => {
                        data.multi.insert(c.name.clone(), MultiColumn::with_element(c.dim, c.distance, c.element));
                    }
                    ColumnKind::Sparse => {
                        data.sparse.insert(c.name.clone(), SparseColumn::default());
                    }
                }
            }
            data.ensure_len(slots);
        }
        if let Some(ix) = &self.index {
            let ix = SegmentIndex {
                graphs: ix.graphs.iter().filter(|(n, _)| keep(n)).map(|(n, g)| (n.clone(), g.clone())).collect(),
                quantized: ix.quantized.iter().filter(|(n, _)| keep(n)).map(|(n, q)| (n.clone(), q.clone())).collect(),
                sparse: ix.sparse.iter().filter(|(n, _)| keep(n)).map(|(n, q)| (n.clone(), q.clone())).collect(),
                payload: ix.payload.clone(),
            };
            self.index = Some(Arc::new(ix));
        }
        self.live_vectors.clear();
        for o in 0..slots as u32 {
            if !self.deleted[o as usize] {
                self.count_vectors(o, true);
            }
        }
    }

    /// Offset of an id in this segment's slots, dead or alive.
    pub fn slot_of(&self, id: &PointId) -> Option<u32> {
        self.data.ids.get(id)
    }
}

/// Sort best first: score descending, then id ascending.
pub fn sort_hits(hits: &mut [SegmentHit]) {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vecs(v: &[f32]) -> NamedVectors {
        NamedVectors::from([(String::new(), Vector::Dense(v.to_vec()))])
    }

    /// A deterministic stream of values in [0, 1).
    fn uniform(mut state: u64) -> impl FnMut() -> f32 {
        move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32) / (1u64 << 24) as f32
        }
    }

    fn dense2() -> Vec<ColumnSpec> {
        vec![ColumnSpec::dense("", 2, Distance::Dot)]
    }

    #[test]
    fn upsert_overwrite_delete_search() {
        let mut s = Segment::new(1, &dense2());
        s.upsert(PointId::Num(1), 1, &vecs(&[1.0, 0.0]), None);
        s.upsert(PointId::Num(2), 2, &vecs(&[0.0, 1.0]), None);
        s.upsert(PointId::Num(3), 3, &vecs(&[0.5, 0.5]), None);
        assert_eq!(s.len(), 3);
        let dot = |q: [f32; 2]| {
            move |v: VectorRef<'_>| match v {
                VectorRef::Dense(v) => Some(v.with_f32(|v| Distance::Dot.score(&q, v))),
                _ => None,
            }
        };
        let hits = s.search_scored("", &dot([1.0, 0.0]), 2, None, None);
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![PointId::Num(1), PointId::Num(3)]);
        s.upsert(PointId::Num(1), 4, &vecs(&[0.0, 0.1]), None);
        assert_eq!(s.version(&PointId::Num(1)), Some(4));
        assert!(s.delete(&PointId::Num(3)));
        assert!(!s.delete(&PointId::Num(3)));
        assert_eq!(s.search_scored("", &dot([1.0, 0.0]), 3, None, None).len(), 2);
        assert_eq!(s.scroll(None, None, 10), vec![PointId::Num(1), PointId::Num(2)]);
        assert_eq!(s.scroll(Some(&PointId::Num(2)), None, 10), vec![PointId::Num(2)]);
        assert_eq!(s.search_scored("", &dot([0.0, 1.0]), 3, None, Some(0.5)).len(), 1);
        // re-upsert of a deleted id revives its slot
        s.upsert(PointId::Num(3), 5, &vecs(&[1.0, 1.0]), None);
        assert_eq!((s.len(), s.slots()), (3, 3));
    }

    #[test]
    fn sparse_statistics_follow_writes() {
        use qd_core::vectors::SparseVector;
        let sv = |i: &[u32]| {
            NamedVectors::from([(
                "s".to_string(),
                Vector::Sparse(SparseVector { indices: i.to_vec(), values: vec![1.0; i.len()] }),
            )])
        };
        let mut s = Segment::new(1, &[ColumnSpec::sparse("s")]);
        s.upsert(PointId::Num(1), 1, &sv(&[1, 2]), None);
        s.upsert(PointId::Num(2), 2, &sv(&[2]), None);
        s.upsert(PointId::Num(3), 3, &NamedVectors::new(), None);
        assert_eq!(s.sparse_df("s", &[1, 2, 3]), (vec![1, 2, 0], 2));
        s.upsert(PointId::Num(1), 4, &sv(&[3]), None);
        assert_eq!(s.sparse_df("s", &[1, 2, 3]), (vec![0, 1, 1], 2));
        s.delete(&PointId::Num(2));
        s.upsert(PointId::Num(3), 5, &sv(&[2]), None);
        assert_eq!(s.sparse_df("s", &[1, 2, 3]), (vec![0, 1, 1], 2));
        // Dropping the column clears its statistics.
        s.set_columns(&[]);
        assert_eq!(s.sparse_df("s", &[2]), (vec![0], 0));
    }

    #[test]
    fn live_vector_counts_follow_writes() {
        let cols = [ColumnSpec::dense("d", 2, Distance::Dot), ColumnSpec::multi("m", 2, Distance::Dot)];
        let mut s = Segment::new(1, &cols);
        let both = NamedVectors::from([
            ("d".to_string(), Vector::Dense(vec![1.0, 0.0])),
            (
                "m".to_string(),
                Vector::Multi(MultiDenseVector::new(vec![vec![1.0, 0.0], vec![0.0, 1.0]]).expect("multi")),
            ),
        ]);
        let dense_only = NamedVectors::from([("d".to_string(), Vector::Dense(vec![0.0, 1.0]))]);
        s.upsert(PointId::Num(1), 1, &both, None);
        s.upsert(PointId::Num(2), 2, &dense_only, None);
        s.upsert(PointId::Num(3), 3, &NamedVectors::new(), None);
        let counts = |s: &Segment| (s.live_vector_count("d"), s.live_vector_count("m"));
        assert_eq!(counts(&s), (2, 1));
        s.upsert(PointId::Num(1), 4, &dense_only, None);
        assert_eq!(counts(&s), (2, 0));
        s.delete(&PointId::Num(2));
        assert_eq!(counts(&s), (1, 0));
        s.upsert(PointId::Num(3), 5, &both, None);
        assert_eq!(counts(&s), (2, 1));
        s.set_columns(&cols[..1]);
        assert_eq!(counts(&s), (2, 0));
    }

    #[test]
    fn typed_columns_store_less_and_answer_like_float32() {
        use crate::hnsw::{HnswGraph, HnswParams};
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        let (dim, n) = (16, 400u64);
        let mut next = uniform(7u64);
        let f16 = |x: f32| qd_core::config::half_precision(x * 2.0 - 1.0);
        let u8v = |x: f32| (x * 255.0) as u8 as f32;
        for (element, round) in [(ElementType::F16, &f16 as &dyn Fn(f32) -> f32), (ElementType::U8, &u8v)] {
            let cols = [ColumnSpec::dense("", dim, Distance::Dot), ColumnSpec::multi("m", 4, Distance::Euclid)];
            let typed_cols: Vec<ColumnSpec> = cols.iter().map(|c| c.clone().with_element(element)).collect();
            let (mut plain, mut typed) = (Segment::new(1, &cols), Segment::new(2, &typed_cols));
            for i in 0..n {
                let d: Vec<f32> = (0..dim).map(|_| round(next())).collect();
                let rows: Vec<Vec<f32>> = (0..1 + i % 3).map(|_| (0..4).map(|_| round(next())).collect()).collect();
                let v = NamedVectors::from([
                    (String::new(), Vector::Dense(d)),
                    ("m".to_string(), Vector::Multi(MultiDenseVector::new(rows).expect("rows"))),
                ]);
                plain.upsert(PointId::Num(i), 1, &v, None);
                typed.upsert(PointId::Num(i), 1, &v, None);
            }
            typed.delete(&PointId::Num(5));
            plain.delete(&PointId::Num(5));
            for i in [0, 7, 399] {
                assert_eq!(plain.vectors(&PointId::Num(i)), typed.vectors(&PointId::Num(i)), "{element:?}");
            }
            let q: Vec<f32> = (0..dim).map(|_| round(next())).collect();
            let p = SearchParams::default();
            let ids = |h: Vec<SegmentHit>| h.into_iter().map(|h| (h.id, h.score)).collect::<Vec<_>>();
            let want = ids(plain.search_nearest("", &q, 10, None, None, &p));
            assert_eq!(want, ids(typed.search_nearest("", &q, 10, None, None, &p)), "{element:?}");
            let mq = MultiDenseVector::new(vec![q[..4].to_vec(), q[4..8].to_vec()]).expect("query");
            let want = ids(plain.search_multi("m", &mq, 10, None, None, &p));
            assert_eq!(want, ids(typed.search_multi("m", &mq, 10, None, None, &p)), "{element:?}");
            // A one-thread build is deterministic: the same graph from decoded components.
            let params = HnswParams { max_threads: 1, ..HnswParams::default() };
            let build = |s: &Segment| {
                let col = s.data().column("").expect("column");
                HnswGraph::build(col, Distance::Dot, &params, &AtomicUsize::new(0), &AtomicBool::new(false))
                    .expect("graph")
            };
            let (g1, g2) = (build(&plain), build(&typed));
            assert!((0..n as u32).all(|o| g1.neighbors(o, 0) == g2.neighbors(o, 0)), "{element:?}");
            let (c1, c2) = (plain.data().column("").expect("c1"), typed.data().column("").expect("c2"));
            assert_eq!(
                g1.search(c1, Distance::Dot, &q, 10, 40, None, None),
                g2.search(c2, Distance::Dot, &q, 10, 40, None, None)
            );
            // Memory: 2 or 1 bytes per component instead of 4 (presence flags aside).
            let shrink = 4 / element.size();
            assert_eq!(c2.data().byte_len() * shrink, c1.data().byte_len());
            assert!(c2.ram_bytes() < c1.ram_bytes() / shrink + c1.present().len() * 2);
            let (m1, m2) = (plain.data().multi_column("m").expect("m1"), typed.data().multi_column("m").expect("m2"));
            assert_eq!(m2.stored_bytes() * shrink, m1.stored_bytes());
        }
    }

    /// Graph search and exact scan time per storage type over one graph (run with
    /// `cargo test --release -p qd-segment typed_search_speed -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn typed_search_speed() {
        use crate::hnsw::{HnswGraph, HnswParams};
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        use std::time::Instant;
        let (dim, n) = (384, 20_000u64);
        let mut next = uniform(11u64);
        let rows: Vec<Vec<f32>> = (0..n).map(|_| (0..dim).map(|_| (next() * 255.0).floor()).collect()).collect();
        let queries: Vec<Vec<f32>> = (0..500).map(|_| (0..dim).map(|_| (next() * 255.0).floor()).collect()).collect();
        let mut graph = None;
        for element in [ElementType::F32, ElementType::F16, ElementType::U8] {
            let mut s = Segment::new(1, &[ColumnSpec::dense("", dim, Distance::Euclid).with_element(element)]);
            for (i, r) in rows.iter().enumerate() {
                s.upsert(PointId::Num(i as u64), 1, &vecs(r), None);
            }
            let col = s.data().column("").expect("column");
            let g = graph.get_or_insert_with(|| {
                HnswGraph::build(
                    col,
                    Distance::Euclid,
                    &HnswParams::default(),
                    &AtomicUsize::new(0),
                    &AtomicBool::new(false),
                )
                .expect("graph")
            });
            let t = Instant::now();
            let mut sink = 0.0;
            for q in &queries {
                sink += g.search(col, Distance::Euclid, q, 10, 64, None, None)[0].1;
            }
            let graph_us = t.elapsed().as_secs_f64() * 1e6 / queries.len() as f64;
            let t = Instant::now();
            for q in &queries[..50] {
                sink += s.search_nearest("", q, 10, None, None, &SearchParams { exact: true, ..Default::default() })[0]
                    .score;
            }
            let scan_us = t.elapsed().as_secs_f64() * 1e6 / 50.0;
            println!("{element:?}: graph ef=64 {graph_us:.0} us/query, exact scan {scan_us:.0} us/query ({sink})");
        }
    }

    #[test]
    fn shrinking_keeps_data_and_frees_reserved_room() {
        let cols = [ColumnSpec::dense("", 8, Distance::Dot).with_element(ElementType::F16)];
        let mut s = Segment::new(1, &cols);
        for i in 0..1500u64 {
            s.upsert(PointId::Num(i), 1, &vecs(&[i as f32; 8]), None);
        }
        s.seal();
        let before = s.ram_usage();
        let want = s.vectors(&PointId::Num(1234));
        let shared = s.data().clone();
        s.shrink_to_fit();
        assert_eq!(s.ram_usage(), before, "data shared with an index build is left alone");
        drop(shared);
        s.shrink_to_fit();
        let col = s.data().column("").expect("column");
        assert_eq!(col.ram_bytes(), 1500 * 8 * 2 + 1500);
        assert_eq!(s.vectors(&PointId::Num(1234)), want);
    }

    /// A groups-only graph (`m = 0` with `payload_m`) is used only for filters that name the
    /// linked groups, entered at one accepted member of each; anything else scans exactly.
    #[test]
    fn groups_only_graph_routes_by_the_filters_groups() {
        use crate::hnsw::HnswParams;
        use crate::payload_index::{IndexKind, IndexSpec};
        use qd_core::filter::{AnyVariants, FieldCheck, FieldCondition, Match, MatchValue};
        use std::sync::atomic::AtomicBool;
        let cols = vec![ColumnSpec::dense("", 8, Distance::Dot)];
        let mut s = Segment::new(1, &cols);
        let mut next = uniform(3);
        // Tenants a (1,500 points), b (1,400) and c (100), interleaved.
        let tenant = |i: u64| match i % 30 {
            0 => "c",
            x if x % 2 == 1 => "a",
            _ => "b",
        };
        for i in 0..3000u64 {
            let v: Vec<f32> = (0..8).map(|_| next() - 0.5).collect();
            let payload = serde_json::json!({"t": tenant(i), "k": if i % 2 == 0 { "even" } else { "odd" }, "x": i});
            s.upsert(PointId::Num(i), 1, &vecs(&v), Some(payload.as_object().cloned().expect("object")));
        }
        s.seal();
        let t: JsonPath = "t".parse().expect("path");
        let k: JsonPath = "k".parse().expect("path");
        let specs = [IndexSpec::Plain(IndexKind::Keyword, &t), IndexSpec::Plain(IndexKind::Keyword, &k)];
        let built = FieldIndex::build_all(&specs, s.data(), &|_| true).expect("in RAM");
        let group = |name: &str| -> Vec<u32> { (0..3000u32).filter(|&o| tenant(o as u64) == name).collect() };
        let col = s.data().column("").expect("column");
        let mut g = HnswGraph::groups_only(3000, &HnswParams { max_threads: 1, ..HnswParams::default() });
        g.add_group_links(col, Distance::Dot, &[group("a"), group("b")], 16, &AtomicBool::new(false)).expect("links");
        let tag = |v: &str| group_tag("t", &serde_json::Value::String(v.to_string()));
        g.tag_groups([tag("a"), tag("b")]);
        // `k` is indexed too (as if after the build): its groups were never linked, though
        // every point has group links of `t`.
        let payload: BTreeMap<String, FieldIndex> = ["t", "k"].map(String::from).into_iter().zip(built).collect();
        s.set_index(Arc::new(SegmentIndex {
            graphs: BTreeMap::from([(String::new(), g)]),
            payload,
            ..Default::default()
        }));

        let params = SearchParams { full_scan_points: 500, hnsw_ef: Some(64), ..Default::default() };
        let is = |v: &str| {
            Condition::Field(FieldCondition {
                key: t.clone(),
                check: FieldCheck::Match(Match::Value(MatchValue::Keyword(v.to_string()))),
            })
        };
        let any = |v: &[&str]| {
            Condition::Field(FieldCondition {
                key: t.clone(),
                check: FieldCheck::Match(Match::Any(AnyVariants::Keywords(v.iter().map(|x| x.to_string()).collect()))),
            })
        };
        let must = |c: Vec<Condition>| Filter { must: c, ..Default::default() };
        let route = |f: Option<&Filter>| {
            let graph = s.index().and_then(|ix| ix.graphs.get(""));
            let plan = s.plan(f);
            match s.route(graph, f, &plan, &params) {
                Route::Exact => None,
                Route::Graph(_, entries) => Some(entries),
            }
        };
        assert_eq!(route(None), None, "unfiltered: no global graph");
        assert_eq!(route(Some(&must(vec![is("a")]))), Some(Some(vec![1])));
        assert_eq!(route(Some(&must(vec![any(&["b", "a", "b"])]))), Some(Some(vec![1, 2])));
        assert_eq!(route(Some(&must(vec![any(&["a", "c"])]))), None, "c was too small to be linked");
        assert_eq!(route(Some(&must(vec![is("c")]))), None, "few points: exact");
        let x_range =
            serde_json::from_value::<Filter>(serde_json::json!({"must": [{"key": "x", "range": {"gte": 2}}]}))
                .expect("filter");
        assert_eq!(route(Some(&x_range)), None, "no group named");
        let even = Filter {
            must: vec![Condition::Field(FieldCondition {
                key: k.clone(),
                check: FieldCheck::Match(Match::Value(MatchValue::Keyword("even".into()))),
            })],
            ..Default::default()
        };
        assert_eq!(route(Some(&even)), None, "a field whose groups were not linked");
        assert_eq!(route(Some(&must(vec![is("a"), any(&["a", "a"])]))), Some(Some(vec![1])));
        let exact = SearchParams { exact: true, ..params };
        let mut found = 0;
        for _ in 0..20 {
            let q: Vec<f32> = (0..8).map(|_| next() - 0.5).collect();
            let f = must(vec![is("b")]);
            let want = s.search_nearest("", &q, 10, Some(&f), None, &exact);
            let got = s.search_nearest("", &q, 10, Some(&f), None, &params);
            assert!(got.iter().all(|h| tenant(h.offset as u64) == "b"));
            found += got.iter().filter(|h| want.iter().any(|w| w.id == h.id)).count();
            assert_eq!(
                s.search_nearest("", &q, 10, None, None, &params),
                s.search_nearest("", &q, 10, None, None, &exact)
            );
        }
        assert!(found >= 190, "recall {found}/200");
    }

    #[test]
    fn sealed_segment_takes_only_tombstones() {
        let mut s = Segment::new(1, &dense2());
        s.upsert(PointId::Num(1), 1, &vecs(&[1.0, 0.0]), None);
        s.seal();
        assert!(!s.upsert(PointId::Num(2), 2, &vecs(&[0.0, 1.0]), None));
        let shared = s.data().clone();
        assert!(s.delete(&PointId::Num(1)));
        assert_eq!(s.len(), 0);
        assert_eq!(shared.len(), 1, "data shared with an index builder is untouched");
    }
}
