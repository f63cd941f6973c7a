//! Multivector (max-sim) tests: the scorer against a naive double loop, recall of the graph
//! against exact max-sim, filters, extension, group links and the binary form, and that the
//! generic paths agree with the dense ones where they must.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use qd_core::Distance;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::search::search_graph_multi;
use super::tests::{build, clustered, params, subset};
use super::*;
use crate::elements::Elems;

/// In-memory multivector store for these tests (the segment's own is `crate::multi::MultiColumn`): point `i` holds rows `starts[i]..starts[i + 1]` of `data`
/// (row-major, `dim` floats per row), a variable number of rows per point. As a
/// [`VectorSource`], `vector(i)` is the point's `rows * dim` floats and `dim()` the row width.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiVectors {
    pub dim: usize,
    /// `len + 1` row indexes, starting at 0.
    starts: Vec<usize>,
    data: Vec<f32>,
}

impl MultiVectors {
    pub fn new(dim: usize) -> Self {
        MultiVectors { dim, starts: vec![0], data: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Appends one point from its row-major rows (a trailing partial row is dropped); returns
    /// its offset.
    pub fn push(&mut self, rows: &[f32]) -> u32 {
        let offset = self.len() as u32;
        let whole = rows.len().checked_div(self.dim).unwrap_or(0);
        self.data.extend_from_slice(&rows[..whole * self.dim]);
        self.starts.push(self.starts.last().copied().unwrap_or(0) + whole);
        offset
    }

    /// The rows of point `offset` (row-major), `None` when out of range.
    pub fn get(&self, offset: u32) -> Option<&[f32]> {
        let i = offset as usize;
        let (&a, &b) = (self.starts.get(i)?, self.starts.get(i + 1)?);
        self.data.get(a * self.dim..b * self.dim)
    }

    /// The rows of point `offset`, empty when out of range.
    pub fn row(&self, offset: u32) -> &[f32] {
        self.get(offset).unwrap_or(&[])
    }
}

impl VectorSource for MultiVectors {
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        MultiVectors::len(self)
    }
    /// Empty when `offset` is out of range (the graph only asks for offsets below `len`).
    fn vector(&self, offset: u32) -> Elems<'_> {
        Elems::F32(self.row(offset))
    }
}

const ALL: [Distance; 4] = [Distance::Cosine, Distance::Dot, Distance::Euclid, Distance::Manhattan];

/// `n` multivectors of `dim`-wide rows (a row count drawn from `rows` per point), each row
/// preprocessed for `d`. Like a document's token embeddings, a point has a topic (one of 20)
/// and each of its rows comes from one of the topic's 3 row clusters (40 in all), spread along
/// 4 random directions plus a little noise. Clusters and topics depend only on `dim`, so data
/// and queries drawn with different seeds share them.
fn multi_clustered(n: usize, dim: usize, rows: RangeInclusive<usize>, seed: u64, d: Distance) -> MultiVectors {
    const CLUSTERS: usize = 40;
    const TOPICS: usize = 20;
    const PER_TOPIC: usize = 3;
    const INTRINSIC: usize = 4;
    let mut crng = StdRng::seed_from_u64(dim as u64 * 104_729 + 3);
    let centres: Vec<Vec<f32>> =
        (0..CLUSTERS).map(|_| (0..dim).map(|_| crng.gen_range(-1.0f32..1.0)).collect()).collect();
    let dirs: Vec<Vec<Vec<f32>>> = (0..CLUSTERS)
        .map(|_| (0..INTRINSIC).map(|_| (0..dim).map(|_| crng.gen_range(-0.5f32..0.5)).collect()).collect())
        .collect();
    let topics: Vec<Vec<usize>> =
        (0..TOPICS).map(|_| (0..PER_TOPIC).map(|_| crng.gen_range(0..CLUSTERS)).collect()).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = MultiVectors::new(dim);
    let mut point = Vec::new();
    let mut v = vec![0.0f32; dim];
    for _ in 0..n {
        let topic = &topics[rng.gen_range(0..TOPICS)];
        point.clear();
        for _ in 0..rng.gen_range(rows.clone()) {
            let c = topic[rng.gen_range(0..PER_TOPIC)];
            v.copy_from_slice(&centres[c]);
            for dir in &dirs[c] {
                let w: f32 = (0..3).map(|_| rng.gen_range(-0.5f32..0.5)).sum();
                v.iter_mut().zip(dir).for_each(|(x, y)| *x += w * y);
            }
            v.iter_mut().for_each(|x| *x += rng.gen_range(-0.02f32..0.02));
            d.preprocess(&mut v);
            point.extend_from_slice(&v);
        }
        out.push(&point);
    }
    out
}

/// Max-sim written out: every row pair scored with the textbook formula.
fn naive_max_sim(d: Distance, dim: usize, a: &[f32], b: &[f32]) -> f32 {
    let sim = |x: &[f32], y: &[f32]| -> f32 {
        match d {
            Distance::Cosine | Distance::Dot => x.iter().zip(y).map(|(p, q)| p * q).sum(),
            Distance::Euclid => -x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum::<f32>(),
            Distance::Manhattan => -x.iter().zip(y).map(|(p, q)| (p - q).abs()).sum::<f32>(),
        }
    };
    let mut total = 0.0;
    for i in 0..a.len() / dim {
        let mut best = f32::NEG_INFINITY;
        for j in 0..b.len() / dim {
            best = best.max(sim(&a[i * dim..(i + 1) * dim], &b[j * dim..(j + 1) * dim]));
        }
        total += best;
    }
    total
}

fn random_rows(rng: &mut StdRng, rows: usize, dim: usize, d: Distance) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * dim);
    for _ in 0..rows {
        let mut v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        d.preprocess(&mut v);
        out.extend_from_slice(&v);
    }
    out
}

fn build_multi(data: &dyn VectorSource, d: Distance, dim: usize, p: &HnswParams) -> HnswGraph {
    let progress = AtomicUsize::new(0);
    let g = HnswGraph::build_multi(data, d, dim, p, &progress, &AtomicBool::new(false)).expect("not cancelled");
    assert_eq!(progress.load(Ordering::Relaxed), data.len());
    assert_eq!(g.len(), data.len());
    g
}

/// Mean recall@k of the graph against exact max-sim, and the mean number of scored points.
fn multi_recall(
    g: &HnswGraph,
    data: &MultiVectors,
    queries: &MultiVectors,
    d: Distance,
    k: usize,
    ef: usize,
    accept: Option<&(dyn Fn(u32) -> bool + Sync)>,
) -> (f64, f64) {
    let dim = data.dim;
    let (mut hits, mut total, mut scored) = (0usize, 0usize, 0usize);
    for q in 0..queries.len() as u32 {
        let qv = queries.row(q);
        let truth: HashSet<u32> = exact_search_multi(data, d, dim, qv, k, accept).into_iter().map(|x| x.0).collect();
        let (got, s) = search_graph_multi(g, data, d, dim, qv, k, ef, accept, None);
        assert_eq!(got, g.search_multi(data, d, dim, qv, k, ef, accept, None));
        scored += s;
        if let Some(f) = accept {
            assert!(got.iter().all(|x| f(x.0)), "a rejected point was returned");
        }
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "not sorted best first");
        hits += got.iter().filter(|x| truth.contains(&x.0)).count();
        total += truth.len();
    }
    (hits as f64 / total.max(1) as f64, scored as f64 / queries.len().max(1) as f64)
}

#[test]
fn max_sim_matches_naive_double_loop() {
    let mut rng = StdRng::seed_from_u64(1);
    for d in ALL {
        for dim in [1, 3, 16, 33] {
            let sc = MaxSimScorer::new(d, dim);
            for _ in 0..30 {
                let (ra, rb) = (rng.gen_range(1..=6), rng.gen_range(1..=6));
                let a = random_rows(&mut rng, ra, dim, d);
                let b = random_rows(&mut rng, rb, dim, d);
                let want = naive_max_sim(d, dim, &a, &b);
                let got = sc.score(&a, &b);
                assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{d:?} dim {dim}: {got} vs {want}");
            }
        }
    }
    // One row each is the plain score; a trailing partial row is ignored; no query rows score
    // 0 and a point without rows scores -inf.
    let sc = MaxSimScorer::new(Distance::Euclid, 2);
    assert_eq!(sc.score(&[1.0, 2.0], &[4.0, 6.0]), Distance::Euclid.score(&[1.0, 2.0], &[4.0, 6.0]));
    assert_eq!(sc.score(&[1.0, 2.0, 9.0], &[4.0, 6.0, 9.0]), -25.0);
    assert_eq!(sc.score(&[], &[4.0, 6.0]), 0.0);
    assert_eq!(sc.score(&[1.0, 2.0], &[]), f32::NEG_INFINITY);
    assert_eq!(MaxSimScorer::new(Distance::Dot, 0).score(&[1.0], &[1.0]), 0.0);
    // Asymmetric: two query rows near the one point row score twice.
    let sc = MaxSimScorer::new(Distance::Dot, 1);
    assert_eq!(sc.score(&[1.0, 1.0], &[1.0]), 2.0);
    assert_eq!(sc.score(&[1.0], &[1.0, 1.0]), 1.0);
}

#[test]
fn exact_multi_search_matches_sorting() {
    let d = Distance::Manhattan;
    let data = multi_clustered(300, 8, 1..=5, 2, d);
    let q = data.row(17).to_vec();
    let sc = MaxSimScorer::new(d, 8);
    let mut all: Vec<(u32, f32)> = (0..300u32).map(|i| (i, sc.score(&q, data.row(i)))).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    assert_eq!(exact_search_multi(&data, d, 8, &q, 7, None), all[..7].to_vec());
    assert_eq!(all[0].0, 17);
    let accept = |i: u32| i.is_multiple_of(3);
    let want: Vec<(u32, f32)> = all.iter().copied().filter(|x| x.0.is_multiple_of(3)).take(7).collect();
    assert_eq!(exact_search_multi(&data, d, 8, &q, 7, Some(&accept)), want);
    assert!(exact_search_multi(&data, d, 8, &q, 0, None).is_empty());
}

/// 2,000 points for Cosine; the other metrics on 1,000 points with a smaller `ef_construct`
/// (max-sim builds are slow in debug builds).
#[test]
fn multi_recall_all_metrics() {
    for (d, n, ef_construct) in [
        (Distance::Cosine, 2000, 100),
        (Distance::Dot, 1000, 64),
        (Distance::Euclid, 1000, 64),
        (Distance::Manhattan, 1000, 64),
    ] {
        let data = multi_clustered(n, 16, 2..=8, 1, d);
        let queries = multi_clustered(100, 16, 2..=8, 1_000_001, d);
        let g = build_multi(&data, d, 16, &params(16, ef_construct, 2));
        let (r, scored) = multi_recall(&g, &data, &queries, d, 10, 64, None);
        eprintln!("multivector {d:?}: recall@10 {r:.4} at ef 64, scored {scored:.0} of {n}");
        assert!(r >= 0.9, "{d:?}: recall {r}");
    }
}

#[test]
fn multi_filtered_search_returns_only_accepted() {
    let d = Distance::Cosine;
    let data = multi_clustered(2000, 16, 2..=8, 3, d);
    let queries = multi_clustered(60, 16, 2..=8, 3_000_003, d);
    let mut g = build_multi(&data, d, 16, &params(16, 100, 2));
    for pct in [5.0, 30.0] {
        let mask = subset(data.len(), pct, 5);
        let accept = |i: u32| mask[i as usize];
        let (r, scored) = multi_recall(&g, &data, &queries, d, 10, 64, Some(&accept));
        eprintln!("multivector filter {pct}%: recall@10 {r:.4}, scored {scored:.0}");
        assert!(r >= 0.9, "filter {pct}%: recall {r}");
    }
    // Group links over multivectors: a 2% value, searched at a small ef.
    let mask = subset(data.len(), 2.0, 6);
    let group: Vec<u32> = (0..data.len() as u32).filter(|&i| mask[i as usize]).collect();
    let accept = |i: u32| mask[i as usize];
    let (r_plain, _) = multi_recall(&g, &data, &queries, d, 10, 10, Some(&accept));
    g.add_group_links_multi(&data, d, 16, &[group], 8, &AtomicBool::new(false)).expect("not cancelled");
    assert!(g.extra_link_count() > 0);
    let (r_links, _) = multi_recall(&g, &data, &queries, d, 10, 10, Some(&accept));
    eprintln!("multivector 2% filter at ef 10: recall {r_plain:.4} plain, {r_links:.4} with group links");
    assert!(r_links >= 0.9 && r_links >= r_plain, "group links {r_links} vs plain {r_plain}");
    let none = |_: u32| false;
    assert!(g.search_multi(&data, d, 16, queries.row(0), 10, 64, Some(&none), None).is_empty());
}

#[test]
fn extending_a_multivector_graph() {
    let d = Distance::Dot;
    let all = multi_clustered(2000, 16, 2..=8, 4, d);
    let queries = multi_clustered(60, 16, 2..=8, 4_000_004, d);
    let mut first = MultiVectors::new(16);
    for i in 0..1400u32 {
        first.push(all.row(i));
    }
    let p = params(16, 64, 2);
    let small = build_multi(&first, d, 16, &p);
    let progress = AtomicUsize::new(0);
    let grown = small.extend_multi(&all, d, 16, &p, &progress, &AtomicBool::new(false)).expect("not cancelled");
    assert_eq!((grown.len(), progress.load(Ordering::Relaxed)), (2000, 2000));
    let (r, _) = multi_recall(&grown, &all, &queries, d, 10, 64, None);
    eprintln!("extended multivector graph: recall@10 {r:.4}");
    assert!(r >= 0.9, "recall {r}");
}

#[test]
fn multi_graph_round_trips() {
    let d = Distance::Euclid;
    let data = multi_clustered(1000, 16, 2..=8, 5, d);
    let queries = multi_clustered(30, 16, 2..=8, 5_000_005, d);
    let mut g = build_multi(&data, d, 16, &params(8, 60, 2));
    let groups: Vec<Vec<u32>> = (0..3).map(|v| (0..1000u32).filter(|i| i % 5 == v).collect()).collect();
    g.add_group_links_multi(&data, d, 16, &groups, 8, &AtomicBool::new(false)).expect("not cancelled");
    let mut bytes = Vec::new();
    g.write_to(&mut bytes).expect("write");
    let back = HnswGraph::read_from(&mut bytes.as_slice()).expect("read");
    assert_eq!((back.len(), back.max_level(), back.extra_link_count()), (g.len(), g.max_level(), g.extra_link_count()));
    let accept = |i: u32| i % 5 == 1;
    for q in 0..queries.len() as u32 {
        let qv = queries.row(q);
        assert_eq!(
            g.search_multi(&data, d, 16, qv, 10, 40, None, None),
            back.search_multi(&data, d, 16, qv, 10, 40, None, None)
        );
        assert_eq!(
            g.search_multi(&data, d, 16, qv, 10, 40, Some(&accept), None),
            back.search_multi(&data, d, 16, qv, 10, 40, Some(&accept), None)
        );
    }
    let mut again = Vec::new();
    back.write_to(&mut again).expect("write");
    assert_eq!(bytes, again);
}

/// One row per point makes max-sim the plain score: a one-thread multivector build (virtual
/// access, max-sim) then gives exactly the dense graph (contiguous access, kernel).
#[test]
fn one_row_multivectors_give_the_dense_graph() {
    let d = Distance::Cosine;
    let dense = clustered(1500, 16, 20, 6, d);
    let mut multi = MultiVectors::new(16);
    for i in 0..dense.len() as u32 {
        multi.push(dense.row(i));
    }
    let p = params(8, 60, 1);
    let gd = build(&dense, d, &p);
    let gm = build_multi(&multi, d, 16, &p);
    for node in 0..1500u32 {
        assert_eq!(gd.neighbors(node, 0), gm.neighbors(node, 0), "node {node}");
    }
    let q = dense.row(3);
    assert_eq!(gd.search(&dense, d, q, 10, 32, None, None), gm.search_multi(&multi, d, 16, q, 10, 32, None, None));
}

/// A store with the same number of rows per point may be contiguous (`as_contiguous`, read
/// directly); it must give the same graph as the same points behind virtual access.
#[test]
fn contiguous_and_virtual_multivector_sources_agree() {
    let d = Distance::Euclid;
    let multi = multi_clustered(800, 8, 4..=4, 7, d);
    let mut flat = DenseVectors::new(32);
    for i in 0..multi.len() as u32 {
        flat.push(multi.row(i));
    }
    let p = params(8, 50, 1);
    let a = build_multi(&flat, d, 8, &p);
    let b = build_multi(&multi, d, 8, &p);
    for node in 0..800u32 {
        assert_eq!(a.neighbors(node, 0), b.neighbors(node, 0), "node {node}");
    }
    let q = multi.row(11);
    assert_eq!(a.search_multi(&flat, d, 8, q, 5, 20, None, None), b.search_multi(&multi, d, 8, q, 5, 20, None, None));
    assert_eq!(exact_search_multi(&flat, d, 8, q, 5, None), exact_search_multi(&multi, d, 8, q, 5, None));
}

#[test]
fn multi_edge_cases() {
    let d = Distance::Dot;
    let empty = MultiVectors::new(4);
    let g = build_multi(&empty, d, 4, &params(16, 100, 2));
    assert!(g.is_empty());
    assert!(g.search_multi(&empty, d, 4, &[1.0, 0.0, 0.0, 0.0], 10, 10, None, None).is_empty());
    // The store drops a trailing partial row and answers out-of-range offsets with no rows.
    let mut m = MultiVectors::new(2);
    assert_eq!(m.push(&[1.0, 0.0, 0.0, 1.0, 5.0]), 0);
    assert_eq!(m.push(&[0.5, 0.5]), 1);
    assert_eq!(m.get(0), Some(&[1.0, 0.0, 0.0, 1.0][..]));
    assert_eq!((m.get(2), m.row(9)), (None, &[][..]));
    // A source shorter than the graph falls back to exact max-sim instead of panicking.
    let data = multi_clustered(60, 4, 1..=3, 8, d);
    let g = build_multi(&data, d, 4, &params(4, 10, 1));
    let mut short = MultiVectors::new(4);
    for i in 0..40u32 {
        short.push(data.row(i));
    }
    let q = data.row(3);
    assert_eq!(g.search_multi(&short, d, 4, q, 3, 10, None, None), exact_search_multi(&short, d, 4, q, 3, None));
    // Cancelled builds.
    let stop = AtomicBool::new(true);
    let r = HnswGraph::build_multi(&data, d, 4, &params(4, 10, 2), &AtomicUsize::new(0), &stop);
    assert!(matches!(r, Err(Cancelled)));
}
