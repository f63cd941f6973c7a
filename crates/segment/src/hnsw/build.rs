//! Parallel graph construction and group ("payload") links.

use std::sync::atomic::{
    AtomicBool, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

use parking_lot::Mutex;
use rayon::prelude::*;

use super::links::{random_levels, Links};
use super::multi::PairScore;
use super::search::{flat, greedy, search_layer, Dyn, Vecs};
use super::visited::{Near, Scratch, ScratchPool};
use super::{Cancelled, HnswGraph, HnswParams, VectorSource};
use crate::elements::Elems;

/// Groups at least this large build their sub-graph with parallel insertion.
const PARALLEL_GROUP_MIN: usize = 4096;

/// Runs `f(parallel)` inside a rayon pool of `threads` threads (0 = all cores); with one
/// thread (or if the pool cannot be created) `f(false)` runs on the calling thread.
fn in_pool<R: Send>(threads: usize, f: impl FnOnce(bool) -> R + Send) -> R {
    if threads == 1 {
        return f(false);
    }
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(|| f(true)),
        Err(_) => f(false),
    }
}

/// Builds a graph over all offsets of `src` under the pair score `scorer` (see
/// [`HnswGraph::build`]); with `base`, extends that graph (see [`HnswGraph::extend`]).
pub(crate) fn build_graph<P: PairScore>(
    src: &dyn VectorSource,
    scorer: P,
    params: &HnswParams,
    base: Option<&HnswGraph>,
    progress: &AtomicUsize,
    stop: &AtomicBool,
) -> Result<HnswGraph, Cancelled> {
    let base = base.map(|g| (&g.links, g.entry));
    let (links, entry) = in_pool(params.max_threads, |parallel| {
        let p = BuildParams { m: params.m, ef_construct: params.ef_construct, seed: params.seed, parallel };
        match flat(src) {
            Some(f) => build_with(&f, src.len(), scorer, &p, base, progress, stop),
            None => build_with(&Dyn(src), src.len(), scorer, &p, base, progress, stop),
        }
    })?;
    Ok(HnswGraph::from_links(links, entry, params))
}

/// Builds the links of a graph over `src`; `parallel` inserts with `par_iter` on the current
/// rayon pool. Returns the links and the entry point.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_links<P: PairScore>(
    src: &dyn VectorSource,
    scorer: P,
    m: usize,
    ef_construct: usize,
    seed: u64,
    progress: &AtomicUsize,
    stop: &AtomicBool,
    parallel: bool,
) -> Result<(Links, u32), Cancelled> {
    let p = BuildParams { m, ef_construct, seed, parallel };
    match flat(src) {
        Some(f) => build_with(&f, src.len(), scorer, &p, None, progress, stop),
        None => build_with(&Dyn(src), src.len(), scorer, &p, None, progress, stop),
    }
}

struct BuildParams {
    m: usize,
    ef_construct: usize,
    seed: u64,
    parallel: bool,
}

/// Inserts nodes `0..n` into a fresh graph, or, given `base` (the links and entry point of a
/// graph over the first `base.len()` vectors), keeps those links and inserts only the rest.
fn build_with<V: Vecs, P: PairScore>(
    vecs: &V,
    n: usize,
    scorer: P,
    p: &BuildParams,
    base: Option<(&Links, u32)>,
    progress: &AtomicUsize,
    stop: &AtomicBool,
) -> Result<(Links, u32), Cancelled> {
    let m = p.m.max(2);
    let m0 = 2 * m;
    // New nodes of an extension draw their levels from a stream of their own (same seed,
    // shifted); if the base cannot be extended (shape, or an unaddressable size), build anew.
    let extended = base.filter(|(l, _)| l.m == m && l.len() <= n && l.len() > 0).and_then(|(old, entry)| {
        let b = old.len();
        let extra = random_levels(n - b, m, p.seed.wrapping_add(b as u64));
        old.extended(&extra).map(|links| (links, entry, b))
    });
    let (links, entry, first) = match extended {
        Some(e) => e,
        None => {
            let levels = random_levels(n, m, p.seed);
            // Only a gigantic graph could overflow the upper array; it then stays flat (still correct).
            let links = match Links::new(m, m0, levels) {
                Some(l) => l,
                None => Links::new(m, m0, vec![0; n]).ok_or(Cancelled)?,
            };
            (links, 0, 0)
        }
    };
    if n == 0 {
        return Ok((links, 0));
    }
    // The entry point starts as node 0 (or the base graph's); a node whose level tops the
    // current one becomes the new entry once linked (as in the original algorithm).
    let builder = Builder {
        links,
        vecs,
        scorer,
        ef_construct: p.ef_construct.max(m),
        top: AtomicU64::new(0),
        top_lock: Mutex::new(()),
        locks: (0..n).map(|_| Mutex::new(())).collect(),
        scratch: ScratchPool::new(n),
    };
    builder.top.store(pack_top(entry, builder.links.level_of(entry)), Relaxed);
    progress.fetch_add(first, Relaxed);
    let insert = |i: usize| -> Result<(), Cancelled> {
        if stop.load(Relaxed) {
            return Err(Cancelled);
        }
        if i != 0 {
            let mut s = builder.scratch.get();
            builder.insert(i as u32, &mut s);
            builder.scratch.put(s);
        }
        progress.fetch_add(1, Relaxed);
        Ok(())
    };
    let start = if first == 0 {
        insert(0)?;
        1
    } else {
        first
    };
    if p.parallel {
        (start..n).into_par_iter().with_min_len(16).try_for_each(insert)?;
    } else {
        (start..n).try_for_each(insert)?;
    }
    let (entry, _) = unpack_top(builder.top.load(Relaxed));
    Ok((builder.links, entry))
}

fn pack_top(entry: u32, level: usize) -> u64 {
    ((level as u64) << 32) | entry as u64
}

fn unpack_top(v: u64) -> (u32, usize) {
    (v as u32, (v >> 32) as usize)
}

struct Builder<'a, V, P> {
    links: Links,
    vecs: &'a V,
    scorer: P,
    ef_construct: usize,
    /// Current entry point and its level (`pack_top`).
    top: AtomicU64,
    /// Held for the whole insertion of a node that raises the top level.
    top_lock: Mutex<()>,
    /// One lock per node, held while its lists are written.
    locks: Vec<Mutex<()>>,
    scratch: ScratchPool,
}

impl<V: Vecs, P: PairScore> Builder<'_, V, P> {
    fn insert(&self, q: u32, s: &mut Scratch) {
        let links = &self.links;
        let qv = self.vecs.owned(q);
        let qv: &[f32] = &qv;
        let lq = links.level_of(q);
        let (mut entry, mut top) = unpack_top(self.top.load(Acquire));
        let _raise = if lq > top {
            let guard = self.top_lock.lock();
            (entry, top) = unpack_top(self.top.load(Acquire));
            (lq > top).then_some(guard)
        } else {
            None
        };
        let mut cur = Near { score: self.vecs.with(entry, |v| self.scorer.score(qv, v)), id: entry };
        for level in (lq + 1..=top).rev() {
            cur = greedy(links, self.vecs, self.scorer, qv, cur, level, Some(&self.locks));
        }
        let mut selected = std::mem::take(&mut s.selected);
        for level in (0..=lq.min(top)).rev() {
            search_layer(
                links,
                self.vecs,
                self.scorer,
                qv,
                cur,
                self.ef_construct,
                level,
                None,
                None,
                Some(&self.locks),
                s,
            );
            s.sorted.clear();
            s.sorted.extend(s.results.drain().filter(|f| f.id != q).map(|f| Near { score: f.score, id: f.id }));
            if s.sorted.is_empty() {
                continue;
            }
            s.sorted.sort_unstable_by(|a, b| b.cmp(a));
            let best = s.sorted[0];
            select_heuristic(self.vecs, self.scorer, &s.sorted, links.m, &mut selected);
            {
                let _guard = self.locks[q as usize].lock();
                links.write(q, level, selected.iter().map(|x| x.id));
            }
            for e in &selected {
                self.add_link(e.id, q, e.score, level, s);
            }
            cur = best;
        }
        s.selected = selected;
        if lq > top {
            self.top.store(pack_top(q, lq), Release);
        }
    }

    /// Adds `q` to `e`'s list at `level`; a full list is re-pruned with the heuristic over its
    /// current neighbours plus `q`.
    fn add_link(&self, e: u32, q: u32, score: f32, level: usize, s: &mut Scratch) {
        let links = &self.links;
        let cap = links.cap(level);
        let _guard = self.locks[e as usize].lock();
        let block = links.block(e, level);
        let cnt = (block[0].load(Relaxed) as usize).min(cap);
        if block[1..1 + cnt].iter().any(|x| x.load(Relaxed) == q) {
            return;
        }
        if cnt < cap {
            block[1 + cnt].store(q, Relaxed);
            block[0].store(cnt as u32 + 1, Relaxed);
            return;
        }
        let ev = self.vecs.owned(e);
        s.sorted.clear();
        s.sorted.push(Near { score, id: q });
        for slot in &block[1..1 + cnt] {
            let id = slot.load(Relaxed);
            s.sorted.push(Near { score: self.vecs.with(id, |v| self.scorer.score(&ev, v)), id });
        }
        s.sorted.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = std::mem::take(&mut s.tmp);
        select_heuristic(self.vecs, self.scorer, &s.sorted, cap, &mut out);
        links.write(e, level, out.iter().map(|x| x.id));
        s.tmp = out;
    }
}

/// HNSW neighbour-selection heuristic: walk candidates best first and keep one only if it is
/// closer to the base point than to every neighbour kept so far (score to base >= score to
/// each kept one), up to `max` neighbours. Fewer than `max` candidates are all kept.
fn select_heuristic<V: Vecs, P: PairScore>(vecs: &V, scorer: P, sorted: &[Near], max: usize, out: &mut Vec<Near>) {
    out.clear();
    if sorted.len() < max {
        out.extend_from_slice(sorted);
        return;
    }
    for c in sorted {
        if out.len() >= max {
            break;
        }
        let cv = vecs.owned(c.id);
        if out.iter().all(|kept| vecs.with(kept.id, |k| scorer.score(&cv, k)) <= c.score) {
            out.push(*c);
        }
    }
}

/// The vectors of one group, re-indexed `0..ids.len()`.
struct SubSource<'a> {
    src: &'a dyn VectorSource,
    ids: &'a [u32],
}

impl VectorSource for SubSource<'_> {
    fn dim(&self) -> usize {
        self.src.dim()
    }
    fn len(&self) -> usize {
        self.ids.len()
    }
    fn vector(&self, offset: u32) -> Elems<'_> {
        self.src.vector(self.ids[offset as usize])
    }
}

pub(crate) fn add_group_links<P: PairScore>(
    g: &mut HnswGraph,
    src: &dyn VectorSource,
    scorer: P,
    groups: &[Vec<u32>],
    payload_m: usize,
    stop: &AtomicBool,
) -> Result<(), Cancelled> {
    let n = g.len().min(src.len());
    if payload_m == 0 || n == 0 || groups.is_empty() {
        return Ok(());
    }
    let ef_construct = g.ef_construct;
    let seed = g.seed;
    let one_group = |(gi, group): (usize, &Vec<u32>), parallel: bool| -> Result<Vec<(u32, u32)>, Cancelled> {
        let mut ids: Vec<u32> = group.iter().copied().filter(|&i| (i as usize) < n).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() < 2 {
            return Ok(Vec::new());
        }
        let sub = SubSource { src, ids: &ids };
        let group_seed = seed ^ (gi as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let (links, _) = build_links(
            &sub,
            scorer,
            payload_m,
            ef_construct,
            group_seed,
            &AtomicUsize::new(0),
            stop,
            parallel && ids.len() >= PARALLEL_GROUP_MIN,
        )?;
        let mut pairs = Vec::with_capacity(ids.len() * payload_m);
        for (local, &global) in ids.iter().enumerate() {
            links.for_each(local as u32, 0, |nb| pairs.push((global, ids[nb as usize])));
        }
        Ok(pairs)
    };
    let per_group = in_pool(g.max_threads, |parallel| -> Result<Vec<Vec<(u32, u32)>>, Cancelled> {
        if parallel {
            groups.par_iter().enumerate().map(|x| one_group(x, true)).collect()
        } else {
            groups.iter().enumerate().map(|x| one_group(x, false)).collect()
        }
    })?;
    if stop.load(Relaxed) {
        return Err(Cancelled);
    }

    let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(per_group.iter().map(Vec::len).sum::<usize>() + g.extra.len());
    pairs.extend(per_group.into_iter().flatten());
    if !g.extra.is_empty() {
        for node in 0..g.len() {
            let (a, b) = (g.extra_start[node] as usize, g.extra_start[node + 1] as usize);
            pairs.extend(g.extra[a..b].iter().map(|&nb| (node as u32, nb)));
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    let links = &g.links;
    pairs.retain(|&(a, b)| {
        let mut present = a == b;
        links.for_each(a, 0, |x| present |= x == b);
        !present
    });

    let mut start = Vec::with_capacity(g.len() + 1);
    let mut ids = Vec::with_capacity(pairs.len());
    let mut p = 0usize;
    for node in 0..g.len() as u32 {
        start.push(ids.len() as u32);
        while p < pairs.len() && pairs[p].0 == node {
            ids.push(pairs[p].1);
            p += 1;
        }
    }
    start.push(ids.len() as u32);
    if ids.is_empty() {
        start.clear();
    }
    start.shrink_to_fit();
    ids.shrink_to_fit();
    g.extra_start = start;
    g.extra = ids;
    Ok(())
}
