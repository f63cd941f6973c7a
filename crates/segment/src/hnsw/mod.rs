//! HNSW graph index over dense `f32` vectors (or multivectors, see below).
//!
//! Layout (hnswlib-like, compact):
//! - level 0: one flat array of fixed-size link blocks, `m0 + 1` `u32`s per node
//!   (`[count, n1, .., n_m0]`, `m0 = 2 * m`), so a node's links are one contiguous read;
//! - upper levels: one flat array of `m + 1`-slot blocks; only nodes with a level above 0 own
//!   blocks (`levels[i]` consecutive blocks starting at `upper_start[i]`);
//! - group ("payload") links from [`HnswGraph::add_group_links`] live in a separate CSR array
//!   (`extra_start`/`extra`) that is followed only by filtered searches. Keeping them apart
//!   leaves the main graph and its unfiltered search exactly as built, and costs memory only
//!   for nodes that got extra links.
//!
//! Link slots are `AtomicU32` so the parallel build can read lists without locking while other
//! threads rewrite them under a per-node lock (a reader may see a mix of old and new ids, all
//! valid nodes, which is harmless for a greedy search). Relaxed atomic loads compile to plain
//! loads, so the finished graph is searched at full speed through the same representation.
//!
//! Construction follows the usual HNSW algorithm: random levels with `mult = 1/ln(m)`, greedy
//! descent on upper levels, `ef_construct` beam search per level, neighbour selection by the
//! diversity heuristic, back-links with heuristic re-pruning when a list is full. All levels
//! are drawn up front from `seed`; node 0 is the first entry point and a node whose level
//! tops the current one becomes the entry once linked (its insertion holds a global lock;
//! that happens about log(n) times). A one-thread build is deterministic.
//!
//! Searches reuse pooled scratch (visited list with generation counters plus the two heaps).
//!
//! Multivectors (ColBERT-style late interaction): every graph routine is generic over how two
//! stored items are scored ([`PairScore`]). A dense graph scores vectors with the metric's
//! kernel; a multivector graph ([`HnswGraph::build_multi`] and the other `_multi` methods)
//! scores whole points with max-sim ([`MaxSimScorer`]), so its links (and their binary form)
//! are those of any other graph. The graph does not record which score it was built with: the
//! caller must search it with the same one.

mod build;
mod links;
mod multi;
pub(crate) mod persist;
mod search;
pub(crate) mod visited;

#[cfg(test)]
mod multi_tests;
#[cfg(test)]
mod tests;

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize};

use qd_core::Distance;

use crate::elements::Elems;

use links::Links;
use visited::ScratchPool;

pub use multi::{MaxSimScorer, PairScore};
pub use persist::GraphError;
pub use search::{exact_search, exact_search_by, exact_search_multi, OffsetScorer};

/// Read access to the vectors being indexed, by dense internal offset `0..len`.
///
/// For a multivector graph, `vector(offset)` is the point's rows (row-major, `rows * inner_dim`
/// floats, a number of rows that may differ per point); the row width is passed to the `_multi`
/// methods, and `dim()` only serves as the item stride of [`VectorSource::as_contiguous`].
///
/// Items come in their storage type ([`Elems`]); scoring decodes them to `f32` where they are
/// not. A float32 source that is one contiguous array should also offer
/// [`VectorSource::as_contiguous`], the graph's fastest path.
pub trait VectorSource: Sync {
    fn dim(&self) -> usize;
    fn len(&self) -> usize;
    fn vector(&self, offset: u32) -> Elems<'_>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The whole store as one contiguous row-major slice (`len * dim` values), when it is one.
    /// Lets the graph index vectors directly instead of a virtual call per vector. A source
    /// whose items are not all `dim` floats long (multivectors with varying row counts) must
    /// return `None`.
    fn as_contiguous(&self) -> Option<&[f32]> {
        None
    }
}

/// Contiguous in-memory vector store: row `i` is `data[i * dim..(i + 1) * dim]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DenseVectors {
    pub dim: usize,
    pub data: Vec<f32>,
}

impl DenseVectors {
    pub fn new(dim: usize) -> Self {
        DenseVectors { dim, data: Vec::new() }
    }

    pub fn with_capacity(dim: usize, rows: usize) -> Self {
        DenseVectors { dim, data: Vec::with_capacity(dim * rows) }
    }

    /// Wraps existing row-major data; `data.len()` must be a multiple of `dim`.
    pub fn from_data(dim: usize, data: Vec<f32>) -> Option<Self> {
        if data.len().checked_rem(dim) != Some(0) {
            return None;
        }
        Some(DenseVectors { dim, data })
    }

    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Appends one vector (truncated or zero-padded to `dim`); returns its offset.
    pub fn push(&mut self, v: &[f32]) -> u32 {
        let offset = self.len() as u32;
        let take = v.len().min(self.dim);
        self.data.extend_from_slice(&v[..take]);
        self.data.resize(self.data.len() + (self.dim - take), 0.0);
        offset
    }

    pub fn get(&self, offset: u32) -> Option<&[f32]> {
        let start = offset as usize * self.dim;
        self.data.get(start..start + self.dim)
    }

    /// Row `offset`; panics when out of range.
    pub fn row(&self, offset: u32) -> &[f32] {
        let start = offset as usize * self.dim;
        &self.data[start..start + self.dim]
    }

    /// Overwrites vector `offset` in place; false when out of range.
    pub fn set(&mut self, offset: u32, v: &[f32]) -> bool {
        let dim = self.dim;
        let start = offset as usize * dim;
        match self.data.get_mut(start..start + dim) {
            Some(row) => {
                let take = v.len().min(dim);
                row[..take].copy_from_slice(&v[..take]);
                row[take..].fill(0.0);
                true
            }
            None => false,
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.data.capacity() * std::mem::size_of::<f32>()
    }
}

impl VectorSource for DenseVectors {
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        DenseVectors::len(self)
    }
    /// Panics when `offset` is out of range (the graph only asks for offsets below `len`).
    fn vector(&self, offset: u32) -> Elems<'_> {
        Elems::F32(self.row(offset))
    }
    fn as_contiguous(&self) -> Option<&[f32]> {
        Some(&self.data)
    }
}

/// Build parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node on upper levels; level 0 holds `2 * m`. Values below 2 are raised to 2.
    pub m: usize,
    /// Beam width while building.
    pub ef_construct: usize,
    /// Build threads; 0 = all cores.
    pub max_threads: usize,
    /// Seed of the level generator.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams { m: 16, ef_construct: 100, max_threads: 0, seed: 42 }
    }
}

/// The build (or group-link build) was stopped through its `stop` flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("HNSW build cancelled")]
pub struct Cancelled;

/// A built HNSW graph over offsets `0..len`. Vectors are not stored here: every call that
/// scores takes the [`VectorSource`] the graph was built from.
pub struct HnswGraph {
    links: Links,
    /// Entry point: a node of the highest level (meaningless when empty).
    entry: u32,
    ef_construct: usize,
    max_threads: usize,
    seed: u64,
    /// Group links (CSR): node `i`'s extra neighbours are `extra[extra_start[i]..extra_start[i+1]]`.
    /// Both empty when no group links were added.
    extra_start: Vec<u32>,
    extra: Vec<u32>,
    /// Tags of the groups whose links a groups-only graph holds (sorted, see
    /// [`HnswGraph::tag_groups`]); empty otherwise.
    group_tags: Vec<u64>,
    /// Search scratch (visited list + heaps), reused across searches.
    pool: ScratchPool,
}

impl std::fmt::Debug for HnswGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswGraph")
            .field("len", &self.len())
            .field("m", &self.links.m)
            .field("max_level", &self.links.max_level)
            .field("extra_links", &self.extra.len())
            .finish()
    }
}

impl Clone for HnswGraph {
    fn clone(&self) -> Self {
        HnswGraph {
            links: self.links.clone(),
            entry: self.entry,
            ef_construct: self.ef_construct,
            max_threads: self.max_threads,
            seed: self.seed,
            extra_start: self.extra_start.clone(),
            extra: self.extra.clone(),
            group_tags: self.group_tags.clone(),
            pool: ScratchPool::new(self.len()),
        }
    }
}

impl HnswGraph {
    /// Parallel build over all offsets of `src` (a rayon pool of `params.max_threads`).
    /// Vectors must already be preprocessed (Cosine: normalised). `progress` is incremented
    /// once per inserted point; setting `stop` makes the build return `Err(Cancelled)` soon.
    pub fn build(
        src: &dyn VectorSource,
        distance: Distance,
        params: &HnswParams,
        progress: &AtomicUsize,
        stop: &AtomicBool,
    ) -> Result<HnswGraph, Cancelled> {
        build::build_graph(src, distance.scorer(), params, None, progress, stop)
    }

    /// A graph over all offsets of `src` that keeps this graph's links for the first `len()`
    /// offsets (which must hold the same vectors) and inserts only the rest: merging a small
    /// segment into a large one costs the small one's insertions, not a full rebuild. Group
    /// links are not carried over (add them again). Falls back to a full build when `m`
    /// differs or `src` is shorter than this graph.
    pub fn extend(
        &self,
        src: &dyn VectorSource,
        distance: Distance,
        params: &HnswParams,
        progress: &AtomicUsize,
        stop: &AtomicBool,
    ) -> Result<HnswGraph, Cancelled> {
        build::build_graph(src, distance.scorer(), params, Some(self), progress, stop)
    }

    /// Top-`k` offsets by internal score (larger is better), best first, searching level 0
    /// with a beam of `max(ef, k)`. `query` must be preprocessed like the indexed vectors.
    /// Only offsets `0..len()` are searched (vectors appended to `src` after the build are
    /// not); if `src` holds fewer vectors than the graph, this falls back to [`exact_search`].
    ///
    /// `accept` filters during traversal: rejected nodes are still traversed (and scored) but
    /// never returned, and the search keeps expanding until it holds `ef` accepted results or
    /// runs out of candidates, so recall holds under selective filters at the cost of more
    /// work (a filter matching very few points should use [`exact_search`] instead). Filtered
    /// searches also follow the group links from [`HnswGraph::add_group_links`].
    ///
    /// `entries` starts the search on level 0 at those offsets, one beam each (results
    /// merged), instead of descending from the top level: how a
    /// [groups-only](HnswGraph::groups_only) graph is searched, from one member of each group
    /// the filter can match.
    #[allow(clippy::too_many_arguments)]
    pub fn search(
        &self,
        src: &dyn VectorSource,
        distance: Distance,
        query: &[f32],
        k: usize,
        ef: usize,
        accept: Option<&(dyn Fn(u32) -> bool + Sync)>,
        entries: Option<&[u32]>,
    ) -> Vec<(u32, f32)> {
        search::search_graph(self, src, distance, query, k, ef, accept, entries).0
    }

    /// [`HnswGraph::search`] with a pluggable per-offset scorer (e.g. quantized codes) instead
    /// of full-precision vectors. `scorer` must score every offset `0..len()`.
    pub fn search_with<S: OffsetScorer + ?Sized>(
        &self,
        scorer: &S,
        k: usize,
        ef: usize,
        accept: Option<&(dyn Fn(u32) -> bool + Sync)>,
        entries: Option<&[u32]>,
    ) -> Vec<(u32, f32)> {
        search::search_graph_by(self, scorer, k, ef, accept, entries).0
    }

    /// A graph over `n` offsets with no links of its own (Qdrant's `m = 0`, which turns the
    /// global graph off), for [`HnswGraph::add_group_links`] to add the per-group (per-tenant)
    /// graphs to. Its connected parts are the groups, so a search must enter each group the
    /// filter can match (`entries`); one without entries scans exactly.
    pub fn groups_only(n: usize, params: &HnswParams) -> HnswGraph {
        HnswGraph::from_links(Links::unlinked(n), 0, params)
    }

    /// A graph of `links` entered at `entry`, built with `params`, without group links yet.
    fn from_links(links: Links, entry: u32, params: &HnswParams) -> HnswGraph {
        let n = links.len();
        HnswGraph {
            links,
            entry,
            ef_construct: params.ef_construct,
            max_threads: params.max_threads,
            seed: params.seed,
            extra_start: Vec::new(),
            extra: Vec::new(),
            group_tags: Vec::new(),
            pool: ScratchPool::new(n),
        }
    }

    /// Record which groups this graph's group links cover, by tags the caller derives from
    /// each group's identity (e.g. [`crate::payload_index::group_tag`]): a search may enter a
    /// groups-only graph only through groups it holds ([`HnswGraph::has_group`]). Persisted
    /// with the graph.
    pub fn tag_groups(&mut self, tags: impl IntoIterator<Item = u64>) {
        self.group_tags.extend(tags);
        self.group_tags.sort_unstable();
        self.group_tags.dedup();
    }

    /// Whether a group with this tag was linked ([`HnswGraph::tag_groups`]).
    pub fn has_group(&self, tag: u64) -> bool {
        self.group_tags.binary_search(&tag).is_ok()
    }

    /// Whether this graph has group links only ([`HnswGraph::groups_only`]).
    pub fn is_groups_only(&self) -> bool {
        self.links.m0 == 0
    }

    /// Extra links for filtered search (Qdrant's `payload_m`). For each group of offsets (the
    /// points sharing one payload-index value) a small HNSW graph restricted to the group is
    /// built with `m = payload_m`, and its level-0 links that the main graph lacks are stored
    /// as extra links (a separate CSR array, see the module docs), followed only by filtered
    /// searches. Calling it again merges more links in. On `Err(Cancelled)` the graph is
    /// unchanged.
    pub fn add_group_links(
        &mut self,
        src: &dyn VectorSource,
        distance: Distance,
        groups: &[Vec<u32>],
        payload_m: usize,
        stop: &AtomicBool,
    ) -> Result<(), Cancelled> {
        build::add_group_links(self, src, distance.scorer(), groups, payload_m, stop)
    }

    /// [`HnswGraph::build`] over multivectors: `src.vector(i)` is point `i`'s rows (row-major,
    /// `inner_dim` floats each, at least one row per point; Cosine rows normalised one by one),
    /// and two points are compared by max-sim with the newly inserted point as the query
    /// (see [`MaxSimScorer`]). Search the result with [`HnswGraph::search_multi`].
    pub fn build_multi(
        src: &dyn VectorSource,
        distance: Distance,
        inner_dim: usize,
        params: &HnswParams,
        progress: &AtomicUsize,
        stop: &AtomicBool,
    ) -> Result<HnswGraph, Cancelled> {
        build::build_graph(src, MaxSimScorer::new(distance, inner_dim), params, None, progress, stop)
    }

    /// [`HnswGraph::extend`] for a graph from [`HnswGraph::build_multi`].
    pub fn extend_multi(
        &self,
        src: &dyn VectorSource,
        distance: Distance,
        inner_dim: usize,
        params: &HnswParams,
        progress: &AtomicUsize,
        stop: &AtomicBool,
    ) -> Result<HnswGraph, Cancelled> {
        build::build_graph(src, MaxSimScorer::new(distance, inner_dim), params, Some(self), progress, stop)
    }

    /// [`HnswGraph::search`] of a graph from [`HnswGraph::build_multi`]: top-`k` offsets by
    /// max-sim of the query multivector `query` (row-major, `inner_dim`-wide rows, each row
    /// preprocessed like the stored ones) against each point's rows, best first. Falls back to
    /// [`exact_search_multi`] when `src` holds fewer points than the graph.
    #[allow(clippy::too_many_arguments)]
    pub fn search_multi(
        &self,
        src: &dyn VectorSource,
        distance: Distance,
        inner_dim: usize,
        query: &[f32],
        k: usize,
        ef: usize,
        accept: Option<&(dyn Fn(u32) -> bool + Sync)>,
        entries: Option<&[u32]>,
    ) -> Vec<(u32, f32)> {
        search::search_graph_multi(self, src, distance, inner_dim, query, k, ef, accept, entries).0
    }

    /// [`HnswGraph::add_group_links`] for a graph from [`HnswGraph::build_multi`].
    pub fn add_group_links_multi(
        &mut self,
        src: &dyn VectorSource,
        distance: Distance,
        inner_dim: usize,
        groups: &[Vec<u32>],
        payload_m: usize,
        stop: &AtomicBool,
    ) -> Result<(), Cancelled> {
        build::add_group_links(self, src, MaxSimScorer::new(distance, inner_dim), groups, payload_m, stop)
    }

    /// Number of indexed points (offsets `0..len`).
    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Links per node on upper levels (level 0 holds twice as many).
    pub fn m(&self) -> usize {
        self.links.m
    }

    /// Highest level of the graph (0 for a flat graph).
    pub fn max_level(&self) -> usize {
        self.links.max_level
    }

    /// Number of group links stored (see [`HnswGraph::add_group_links`]).
    pub fn extra_link_count(&self) -> usize {
        self.extra.len()
    }

    /// Neighbours of `node` at `level` (empty when out of range); for inspection and tests.
    pub fn neighbors(&self, node: u32, level: usize) -> Vec<u32> {
        if (node as usize) >= self.len() || level > self.links.level_of(node) {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.links.for_each(node, level, |n| out.push(n));
        out
    }

    /// Bytes held by the graph structure (links, levels, group links); excludes vectors and
    /// the transient search scratch.
    pub fn memory_bytes(&self) -> usize {
        self.links.memory_bytes() + (self.extra_start.capacity() + self.extra.capacity()) * std::mem::size_of::<u32>()
    }

    /// Streams the versioned, CRC-32-checked binary form to `w`.
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        persist::write_graph(self, w)
    }

    /// Reads what [`HnswGraph::write_to`] wrote. Corrupt or truncated input gives an error.
    pub fn read_from(r: &mut dyn Read) -> Result<HnswGraph, GraphError> {
        persist::read_graph(r)
    }
}
