//! Graph traversal (shared by build and query) and brute-force search.

use std::borrow::Cow;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;
use qd_core::Distance;

use super::links::Links;
use super::multi::{MaxSimScorer, PairScore};
use super::visited::{prefetch_bytes, prefetch_ptr, prefetch_slice, Far, Near, Scratch};
use super::{HnswGraph, VectorSource};
use crate::elements::Elems;

/// A filter as the public API takes it.
pub(crate) type Accept<'a> = Option<&'a (dyn Fn(u32) -> bool + Sync)>;

/// Vector access, monomorphised for a contiguous float32 store (no virtual call, no decode)
/// and the general case (items in any storage type, decoded for scoring).
pub(crate) trait Vecs: Sync {
    /// Runs `f` on item `i` as float32.
    fn with<R>(&self, i: u32, f: impl FnOnce(&[f32]) -> R) -> R;
    /// Item `i` as float32, kept for several scores (borrowed where it is stored so).
    fn owned(&self, i: u32) -> Cow<'_, [f32]>;
    /// A hint that item `i` is read next.
    fn prefetch(&self, i: u32);
}

pub(crate) struct Flat<'a> {
    data: &'a [f32],
    dim: usize,
}

impl Flat<'_> {
    #[inline(always)]
    fn get(&self, i: u32) -> &[f32] {
        let s = i as usize * self.dim;
        &self.data[s..s + self.dim]
    }
}

impl Vecs for Flat<'_> {
    #[inline(always)]
    fn with<R>(&self, i: u32, f: impl FnOnce(&[f32]) -> R) -> R {
        f(self.get(i))
    }
    #[inline(always)]
    fn owned(&self, i: u32) -> Cow<'_, [f32]> {
        Cow::Borrowed(self.get(i))
    }
    #[inline(always)]
    fn prefetch(&self, i: u32) {
        prefetch_slice(self.get(i));
    }
}

pub(crate) struct Dyn<'a>(pub &'a dyn VectorSource);

impl Vecs for Dyn<'_> {
    #[inline(always)]
    fn with<R>(&self, i: u32, f: impl FnOnce(&[f32]) -> R) -> R {
        self.0.vector(i).with_f32(f)
    }
    fn owned(&self, i: u32) -> Cow<'_, [f32]> {
        match self.0.vector(i) {
            Elems::F32(s) => Cow::Borrowed(s),
            other => Cow::Owned(other.to_vec()),
        }
    }
    #[inline(always)]
    fn prefetch(&self, i: u32) {
        let v = self.0.vector(i);
        prefetch_bytes(v.as_ptr(), v.byte_len());
    }
}

/// The contiguous view of `src`, when it has a consistent one.
pub(crate) fn flat(src: &dyn VectorSource) -> Option<Flat<'_>> {
    let dim = src.dim();
    let data = src.as_contiguous()?;
    if dim == 0 || data.len() < src.len().checked_mul(dim)? {
        return None;
    }
    Some(Flat { data, dim })
}

/// Scores nodes by offset against one fixed query (larger is better). The traversal is
/// generic over it: full-precision vectors ([`F32Scorer`]) are one implementation, quantized
/// codes (`crate::quantized`) another.
pub trait OffsetScorer: Sync {
    fn score(&self, offset: u32) -> f32;
    /// A hint that `offset` is scored next (prefetch its data).
    #[inline(always)]
    fn prefetch(&self, _offset: u32) {}
}

/// Full-precision scoring of `query` against the stored items of `vecs` (dense vectors or
/// multivectors, as `scorer` reads them).
pub(crate) struct F32Scorer<'a, V: Vecs, P: PairScore> {
    pub vecs: &'a V,
    pub scorer: P,
    pub query: &'a [f32],
}

impl<V: Vecs, P: PairScore> OffsetScorer for F32Scorer<'_, V, P> {
    #[inline(always)]
    fn score(&self, offset: u32) -> f32 {
        self.vecs.with(offset, |v| self.scorer.score(self.query, v))
    }
    #[inline(always)]
    fn prefetch(&self, offset: u32) {
        self.vecs.prefetch(offset);
    }
}

/// Group links in CSR form, followed by filtered searches.
#[derive(Clone, Copy)]
pub(crate) struct Extra<'a> {
    pub start: &'a [u32],
    pub ids: &'a [u32],
}

/// Greedy 1-NN walk on one level: move to the best neighbour until none improves.
#[inline]
pub(crate) fn greedy<V: Vecs, P: PairScore>(
    links: &Links,
    vecs: &V,
    scorer: P,
    query: &[f32],
    cur: Near,
    level: usize,
    locks: Option<&[Mutex<()>]>,
) -> Near {
    greedy_by(links, &F32Scorer { vecs, scorer, query }, cur, level, locks)
}

/// [`greedy`] under any [`OffsetScorer`].
#[inline]
pub(crate) fn greedy_by<S: OffsetScorer + ?Sized>(
    links: &Links,
    sc: &S,
    mut cur: Near,
    level: usize,
    locks: Option<&[Mutex<()>]>,
) -> Near {
    loop {
        let mut changed = false;
        let _guard = locks.map(|l| l[cur.id as usize].lock());
        let block = links.block(cur.id, level);
        let cnt = (block[0].load(Relaxed) as usize).min(block.len() - 1);
        for slot in &block[1..1 + cnt] {
            let id = slot.load(Relaxed);
            let score = sc.score(id);
            if score > cur.score {
                cur = Near { score, id };
                changed = true;
            }
        }
        if !changed {
            return cur;
        }
    }
}

/// Beam search of width `ef` on one level from `entry`. Leaves up to `ef` results in
/// `s.results` (worst on top) and returns how many vectors were scored.
///
/// With `accept`, rejected nodes are expanded like any other but never enter the results,
/// and the search does not stop on the score bound until it holds `ef` accepted results.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_layer<V: Vecs, P: PairScore>(
    links: &Links,
    vecs: &V,
    scorer: P,
    query: &[f32],
    entry: Near,
    ef: usize,
    level: usize,
    accept: Accept<'_>,
    extra: Option<Extra<'_>>,
    locks: Option<&[Mutex<()>]>,
    s: &mut Scratch,
) -> usize {
    search_layer_by(links, &F32Scorer { vecs, scorer, query }, entry, ef, level, accept, extra, locks, s)
}

/// [`search_layer`] under any [`OffsetScorer`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_layer_by<S: OffsetScorer + ?Sized>(
    links: &Links,
    sc: &S,
    entry: Near,
    ef: usize,
    level: usize,
    accept: Accept<'_>,
    extra: Option<Extra<'_>>,
    locks: Option<&[Mutex<()>]>,
    s: &mut Scratch,
) -> usize {
    let ef = ef.max(1);
    s.visited.reset(links.len());
    s.candidates.clear();
    s.results.clear();
    s.visited.check_and_mark(entry.id);
    s.candidates.push(entry);
    let filtered = accept.is_some();
    let mut lower = f32::NEG_INFINITY;
    if accept.is_none_or(|f| f(entry.id)) {
        s.results.push(Far { score: entry.score, id: entry.id });
        lower = entry.score;
    }
    let mut scored = 1usize;
    while let Some(c) = s.candidates.pop() {
        if c.score < lower && (!filtered || s.results.len() >= ef) {
            break;
        }
        if let Some(next) = s.candidates.peek() {
            prefetch_ptr(links.block(next.id, level).as_ptr() as *const u8);
        }
        // Collect unvisited neighbours first, then score them with the next vector prefetched.
        s.pending.clear();
        let guard = locks.map(|l| l[c.id as usize].lock());
        let block = links.block(c.id, level);
        let cnt = (block[0].load(Relaxed) as usize).min(block.len() - 1);
        for slot in &block[1..1 + cnt] {
            let id = slot.load(Relaxed);
            if !s.visited.check_and_mark(id) {
                s.pending.push(id);
            }
        }
        drop(guard);
        if let Some(x) = extra {
            let i = c.id as usize;
            if let (Some(&a), Some(&b)) = (x.start.get(i), x.start.get(i + 1)) {
                for &id in x.ids.get(a as usize..b as usize).unwrap_or(&[]) {
                    if !s.visited.check_and_mark(id) {
                        s.pending.push(id);
                    }
                }
            }
        }
        if let Some(&first) = s.pending.first() {
            sc.prefetch(first);
        }
        for j in 0..s.pending.len() {
            let id = s.pending[j];
            if let Some(&next) = s.pending.get(j + 1) {
                sc.prefetch(next);
            }
            let score = sc.score(id);
            scored += 1;
            if s.results.len() < ef || score > lower {
                s.candidates.push(Near { score, id });
                if accept.is_none_or(|f| f(id)) {
                    s.results.push(Far { score, id });
                    if s.results.len() > ef {
                        s.results.pop();
                    }
                    if let Some(w) = s.results.peek() {
                        lower = w.score;
                    }
                }
            }
        }
    }
    scored
}

/// Query entry: returns the top `k` and the number of vectors scored.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_graph(
    g: &HnswGraph,
    src: &dyn VectorSource,
    distance: Distance,
    query: &[f32],
    k: usize,
    ef: usize,
    accept: Accept<'_>,
    entries: Option<&[u32]>,
) -> (Vec<(u32, f32)>, usize) {
    search_graph_with(g, src, distance.scorer(), query, k, ef, accept, entries)
}

/// [`search_graph`] for a graph over multivectors of `dim`-wide rows (max-sim).
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_graph_multi(
    g: &HnswGraph,
    src: &dyn VectorSource,
    distance: Distance,
    dim: usize,
    query: &[f32],
    k: usize,
    ef: usize,
    accept: Accept<'_>,
    entries: Option<&[u32]>,
) -> (Vec<(u32, f32)>, usize) {
    search_graph_with(g, src, MaxSimScorer::new(distance, dim), query, k, ef, accept, entries)
}

/// Graph search of `query` against the items of `src` under the pair score `scorer`.
#[allow(clippy::too_many_arguments)]
fn search_graph_with<P: PairScore>(
    g: &HnswGraph,
    src: &dyn VectorSource,
    scorer: P,
    query: &[f32],
    k: usize,
    ef: usize,
    accept: Accept<'_>,
    entries: Option<&[u32]>,
) -> (Vec<(u32, f32)>, usize) {
    let n = g.len();
    if n == 0 || k == 0 {
        return (Vec::new(), 0);
    }
    if src.len() < n {
        // The source lost vectors the graph indexes: traversal could index out of range.
        let scored = src.len();
        return (exact_search_with(src, scorer, query, k, accept), scored);
    }
    match flat(src) {
        Some(f) => search_graph_by(g, &F32Scorer { vecs: &f, scorer, query }, k, ef, accept, entries),
        None => search_graph_by(g, &F32Scorer { vecs: &Dyn(src), scorer, query }, k, ef, accept, entries),
    }
}

/// Graph search under any [`OffsetScorer`] (which must score every offset `0..g.len()`):
/// down the levels from the graph's entry point, or, given `entries`, on level 0 from each.
pub(crate) fn search_graph_by<S: OffsetScorer + ?Sized>(
    g: &HnswGraph,
    sc: &S,
    k: usize,
    ef: usize,
    accept: Accept<'_>,
    entries: Option<&[u32]>,
) -> (Vec<(u32, f32)>, usize) {
    if g.is_empty() || k == 0 {
        return (Vec::new(), 0);
    }
    if entries.is_none() && g.is_groups_only() {
        // Entered nowhere, a groups-only graph would reach one group only.
        return (exact_search_by(sc, g.len(), k, accept), g.len());
    }
    let links = &g.links;
    let mut scored = 1usize;
    let starts: Vec<Near> = match entries {
        Some(list) => {
            scored = list.len();
            // Each entry first walks greedily to a point of its group near the query.
            let mut starts = Vec::with_capacity(list.len());
            for &id in list.iter().filter(|&&id| (id as usize) < g.len()) {
                let (near, n) = greedy_extra(g, sc, Near { score: sc.score(id), id }, accept);
                scored += n;
                starts.push(near);
            }
            starts
        }
        None => {
            let mut cur = Near { score: sc.score(g.entry), id: g.entry };
            for level in (1..=links.max_level).rev() {
                cur = greedy_by(links, sc, cur, level, None);
            }
            vec![cur]
        }
    };
    let extra = if accept.is_some() && !g.extra.is_empty() {
        Some(Extra { start: &g.extra_start, ids: &g.extra })
    } else {
        None
    };
    // One beam per start: a beam shared by the groups of a groups-only graph would drop a
    // group whose start scores below the other groups' results before walking it.
    let mut out: Vec<(u32, f32)> = Vec::new();
    for &start in &starts {
        let mut s = g.pool.get();
        scored += search_layer_by(links, sc, start, ef.max(k), 0, accept, extra, None, &mut s);
        out.extend(s.results.drain().map(|f| (f.id, f.score)));
        g.pool.put(s);
    }
    if starts.len() > 1 {
        // Groups may share points (a point holding several of the values).
        out.sort_unstable_by_key(|&(id, _)| id);
        out.dedup_by_key(|&mut (id, _)| id);
    }
    sort_best_first(&mut out);
    out.truncate(k);
    (out, scored)
}

/// Greedy walk over group links from `cur` until no accepted neighbour scores better (a
/// point's links may lead into other groups it belongs to; accepted points stay within the
/// filter's); returns the point reached and the number of vectors scored.
fn greedy_extra<S: OffsetScorer + ?Sized>(g: &HnswGraph, sc: &S, mut cur: Near, accept: Accept<'_>) -> (Near, usize) {
    let mut scored = 0;
    loop {
        let i = cur.id as usize;
        let (Some(&a), Some(&b)) = (g.extra_start.get(i), g.extra_start.get(i + 1)) else { return (cur, scored) };
        let mut best = cur;
        for &id in g.extra.get(a as usize..b as usize).unwrap_or(&[]) {
            let score = sc.score(id);
            scored += 1;
            if score > best.score && accept.is_none_or(|f| f(id)) {
                best = Near { score, id };
            }
        }
        if best.id == cur.id {
            return (cur, scored);
        }
        cur = best;
    }
}

/// Score descending, then offset ascending.
pub(crate) fn sort_best_first(v: &mut [(u32, f32)]) {
    v.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
}

/// Brute-force top-`k` over all offsets of `src` (for small segments and ground truth), best
/// first, with the same score and tie order as the graph search.
pub fn exact_search(
    src: &dyn VectorSource,
    distance: Distance,
    query: &[f32],
    k: usize,
    accept: Option<&(dyn Fn(u32) -> bool + Sync)>,
) -> Vec<(u32, f32)> {
    exact_search_with(src, distance.scorer(), query, k, accept)
}

/// [`exact_search`] over multivectors: top-`k` offsets of `src` by max-sim of the query
/// multivector `query` (row-major, `dim`-wide rows, each row preprocessed like the stored
/// ones) against each point's rows, best first (see [`MaxSimScorer`]).
pub fn exact_search_multi(
    src: &dyn VectorSource,
    distance: Distance,
    dim: usize,
    query: &[f32],
    k: usize,
    accept: Option<&(dyn Fn(u32) -> bool + Sync)>,
) -> Vec<(u32, f32)> {
    exact_search_with(src, MaxSimScorer::new(distance, dim), query, k, accept)
}

fn exact_search_with<P: PairScore>(
    src: &dyn VectorSource,
    scorer: P,
    query: &[f32],
    k: usize,
    accept: Accept<'_>,
) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    match flat(src) {
        Some(f) => exact_search_by(&F32Scorer { vecs: &f, scorer, query }, src.len(), k, accept),
        None => exact_search_by(&F32Scorer { vecs: &Dyn(src), scorer, query }, src.len(), k, accept),
    }
}

/// Brute-force top-`k` over offsets `0..n` under any [`OffsetScorer`], best first.
pub fn exact_search_by<S: OffsetScorer + ?Sized>(
    sc: &S,
    n: usize,
    k: usize,
    accept: Option<&(dyn Fn(u32) -> bool + Sync)>,
) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Far> = BinaryHeap::with_capacity(k.min(n) + 1);
    for i in 0..n as u32 {
        if accept.is_some_and(|f| !f(i)) {
            continue;
        }
        let score = sc.score(i);
        let item = Far { score, id: i };
        if heap.len() < k {
            heap.push(item);
        } else if let Some(mut worst) = heap.peek_mut() {
            // `Far` orders worse-as-greater; replace when the new one ranks better.
            if item < *worst {
                *worst = item;
            }
        }
    }
    let mut out: Vec<(u32, f32)> = heap.into_iter().map(|f| (f.id, f.score)).collect();
    sort_best_first(&mut out);
    out
}
