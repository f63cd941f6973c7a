//! HNSW tests: recall against brute force, filters, group links, threads, cancellation and
//! the binary form. Fixed seeds; sizes kept small enough for debug builds (the long benchmark
//! is `#[ignore]`d: `cargo test -p qd-segment --release -- --ignored --nocapture bench`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use qd_core::Distance;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::persist::Crc32;
use super::search::search_graph;
use super::*;

/// `n` points around `clusters` random centres, preprocessed for `d`. Like real embeddings the
/// data has a low intrinsic dimension: each cluster spreads along 8 random directions, plus a
/// little isotropic noise. (Isotropic noise in all of 64+ dimensions is far harder for any
/// ANN index than real data, hnswlib included.)
pub(super) fn clustered(n: usize, dim: usize, clusters: usize, seed: u64, d: Distance) -> DenseVectors {
    const INTRINSIC: usize = 8;
    // Centres and directions depend only on the dimension, so data and queries drawn with
    // different seeds share them.
    let mut crng = StdRng::seed_from_u64(dim as u64 * 7919 + clusters as u64);
    let centres: Vec<Vec<f32>> =
        (0..clusters).map(|_| (0..dim).map(|_| crng.gen_range(-1.0f32..1.0)).collect()).collect();
    let dirs: Vec<Vec<Vec<f32>>> = (0..clusters)
        .map(|_| (0..INTRINSIC).map(|_| (0..dim).map(|_| crng.gen_range(-0.5f32..0.5)).collect()).collect())
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = DenseVectors::with_capacity(dim, n);
    let mut v = vec![0.0f32; dim];
    for _ in 0..n {
        let c = rng.gen_range(0..clusters);
        v.copy_from_slice(&centres[c]);
        for dir in &dirs[c] {
            // Sum of uniforms: cheap bell-shaped weight.
            let w: f32 = (0..3).map(|_| rng.gen_range(-0.5f32..0.5)).sum();
            v.iter_mut().zip(dir).for_each(|(x, y)| *x += w * y);
        }
        v.iter_mut().for_each(|x| *x += rng.gen_range(-0.02f32..0.02));
        d.preprocess(&mut v);
        out.push(&v);
    }
    out
}

pub(super) fn params(m: usize, ef_construct: usize, threads: usize) -> HnswParams {
    HnswParams { m, ef_construct, max_threads: threads, seed: 7 }
}

pub(super) fn build(data: &DenseVectors, d: Distance, p: &HnswParams) -> HnswGraph {
    let progress = AtomicUsize::new(0);
    let g = HnswGraph::build(data, d, p, &progress, &AtomicBool::new(false)).expect("not cancelled");
    assert_eq!(progress.load(Ordering::Relaxed), data.len());
    assert_eq!(g.len(), data.len());
    g
}

/// Mean recall@k of the graph against brute force, and the mean number of scored vectors.
fn recall(
    g: &HnswGraph,
    data: &DenseVectors,
    queries: &DenseVectors,
    d: Distance,
    k: usize,
    ef: usize,
    accept: Option<&(dyn Fn(u32) -> bool + Sync)>,
) -> (f64, f64) {
    let mut hits = 0usize;
    let mut total = 0usize;
    let mut scored = 0usize;
    for q in 0..queries.len() as u32 {
        let qv = queries.row(q);
        let truth: HashSet<u32> = exact_search(data, d, qv, k, accept).into_iter().map(|x| x.0).collect();
        let (got, s) = search_graph(g, data, d, qv, k, ef, accept, None);
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

/// One build thread, so the graph (and the recall asserted) is the same on every run; parallel
/// builds are checked in `one_and_two_threads_both_good`.
fn check_recall(d: Distance, dim: usize, n: usize) {
    let data = clustered(n, dim, 40, 1, d);
    let queries = clustered(100, dim, 40, 1_000_001, d);
    let g = build(&data, d, &params(16, 100, 1));
    let (r, scored) = recall(&g, &data, &queries, d, 10, 64, None);
    eprintln!("{d:?} dim {dim} n {n}: recall@10 {r:.4} scored {scored:.0}");
    assert!(r >= 0.95, "{d:?}: recall {r}");
}

#[test]
fn recall_cosine() {
    check_recall(Distance::Cosine, 64, 6000);
}

#[test]
fn recall_dot() {
    check_recall(Distance::Dot, 32, 6000);
}

#[test]
fn recall_euclid() {
    check_recall(Distance::Euclid, 128, 5000);
}

#[test]
fn recall_manhattan() {
    check_recall(Distance::Manhattan, 32, 3000);
}

#[test]
fn one_and_two_threads_both_good() {
    let d = Distance::Cosine;
    let data = clustered(4000, 48, 30, 2, d);
    let queries = clustered(100, 48, 30, 2_000_002, d);
    let g1 = build(&data, d, &params(12, 80, 1));
    let g2 = build(&data, d, &params(12, 80, 2));
    let (r1, _) = recall(&g1, &data, &queries, d, 10, 64, None);
    let (r2, _) = recall(&g2, &data, &queries, d, 10, 64, None);
    eprintln!("1 thread {r1:.4}, 2 threads {r2:.4}");
    assert!(r1 >= 0.95 && r2 >= 0.95, "{r1} {r2}");
    // Single-threaded builds are deterministic.
    let g1b = build(&data, d, &params(12, 80, 1));
    for node in (0..data.len() as u32).step_by(97) {
        assert_eq!(g1.neighbors(node, 0), g1b.neighbors(node, 0));
    }
    // Links are within capacity, in range and never self-loops.
    for g in [&g1, &g2] {
        for node in 0..g.len() as u32 {
            for level in 0..=g.links.level_of(node) {
                let nb = g.neighbors(node, level);
                assert!(nb.len() <= if level == 0 { 24 } else { 12 });
                assert!(nb.iter().all(|&x| (x as usize) < g.len() && x != node));
            }
        }
    }
}

/// Filter sets: `pct`% of points, drawn at random (like one payload value).
#[test]
fn extending_a_graph_keeps_its_links_and_recall() {
    let d = Distance::Cosine;
    let all = clustered(6000, 48, 30, 3, d);
    let queries = clustered(100, 48, 30, 3_000_003, d);
    let first = DenseVectors::from_data(48, all.data[..4000 * 48].to_vec()).expect("rows");
    let p = params(16, 100, 2);
    let small = build(&first, d, &p);
    let progress = AtomicUsize::new(0);
    let grown = small.extend(&all, d, &p, &progress, &AtomicBool::new(false)).expect("not cancelled");
    assert_eq!(grown.len(), 6000);
    assert_eq!(progress.load(Ordering::Relaxed), 6000, "progress counts the kept nodes too");
    // Old nodes keep their levels; their lists start from the old graph's (new nodes may
    // have been linked in since, so only check that every node has neighbours).
    for node in 0..6000u32 {
        assert!(!grown.neighbors(node, 0).is_empty(), "node {node} has no links");
    }
    for node in 0..4000u32 {
        assert_eq!(grown.links.level_of(node), small.links.level_of(node));
    }
    let (r, _) = recall(&grown, &all, &queries, d, 10, 64, None);
    let full = build(&all, d, &p);
    let (rf, _) = recall(&full, &all, &queries, d, 10, 64, None);
    eprintln!("extended {r:.4}, full build {rf:.4}");
    assert!(r >= 0.95 && r >= rf - 0.02, "extended graph recall {r} vs full build {rf}");
    // A different `m` cannot reuse the links: a full build of the right shape.
    let other = small.extend(&all, d, &params(8, 100, 2), &AtomicUsize::new(0), &AtomicBool::new(false));
    assert_eq!(other.expect("built").m(), 8);
}

pub(super) fn subset(n: usize, pct: f64, seed: u64) -> Vec<bool> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_bool(pct / 100.0)).collect()
}

#[test]
fn filtered_recall_10_and_50_percent() {
    let d = Distance::Cosine;
    let data = clustered(6000, 32, 40, 3, d);
    let queries = clustered(60, 32, 40, 3_000_003, d);
    let g = build(&data, d, &params(16, 100, 2));
    for pct in [10.0, 50.0] {
        let mask = subset(data.len(), pct, 33);
        let accept = |i: u32| mask[i as usize];
        let (r, scored) = recall(&g, &data, &queries, d, 10, 64, Some(&accept));
        eprintln!("filter {pct}%: recall {r:.4} scored {scored:.0}");
        assert!(r >= 0.95, "filter {pct}%: recall {r}");
    }
}

/// A 1% filter. Rejected nodes are traversed, so the search keeps expanding until it holds
/// `ef` accepted points: at ef 64 plain search already finds them (at the cost of scoring most
/// of this small graph). At a small ef the group links of the filter's value raise recall, since
/// the accepted points become directly linked.
#[test]
fn filtered_recall_1_percent_and_group_links_help() {
    let d = Distance::Cosine;
    let n = 10_000;
    let data = clustered(n, 32, 40, 4, d);
    let queries = clustered(100, 32, 40, 4_000_004, d);
    // One thread: a deterministic graph, so the comparison below is stable.
    let mut g = build(&data, d, &params(16, 100, 1));
    // Ten disjoint "payload values" of ~1% each; the filter is the first one.
    let mut rng = StdRng::seed_from_u64(44);
    let value: Vec<usize> = (0..n).map(|_| rng.gen_range(0..100)).collect();
    let groups: Vec<Vec<u32>> = (0..10).map(|v| (0..n as u32).filter(|&i| value[i as usize] == v).collect()).collect();
    let accept = |i: u32| value[i as usize] == 0;

    let (r64, s64) = recall(&g, &data, &queries, d, 10, 64, Some(&accept));
    let (r_plain, s_plain) = recall(&g, &data, &queries, d, 10, 10, Some(&accept));
    g.add_group_links(&data, d, &groups, 16, &AtomicBool::new(false)).expect("not cancelled");
    assert!(g.extra_link_count() > 0);
    let (r_links, s_links) = recall(&g, &data, &queries, d, 10, 10, Some(&accept));
    eprintln!(
        "1% filter: ef64 recall {r64:.4} scored {s64:.0}; ef10 plain {r_plain:.4} scored {s_plain:.0}; \
         ef10 with group links {r_links:.4} scored {s_links:.0}"
    );
    assert!(r64 >= 0.95, "ef 64: {r64}");
    assert!(r_links >= 0.99, "group links: {r_links}");
    assert!(r_links > r_plain, "group links {r_links} vs plain {r_plain}");
    // Unfiltered search still works (it does not follow group links).
    assert_eq!(g.search(&data, d, queries.row(0), 10, 64, None, None).len(), 10);
    // A cancelled group-link build leaves the graph unchanged.
    let before = g.extra_link_count();
    let stop = AtomicBool::new(true);
    assert_eq!(g.add_group_links(&data, d, &groups, 8, &stop), Err(Cancelled));
    assert_eq!(g.extra_link_count(), before);
}

/// `g` written in its binary form and read back.
fn round_trip(g: &HnswGraph) -> HnswGraph {
    let mut buf = Vec::new();
    g.write_to(&mut buf).expect("write");
    HnswGraph::read_from(&mut buf.as_slice()).expect("read")
}

/// `m = 0` with `payload_m`: no global graph, one graph per group (tenant). Entered at one
/// member of each group a filter names, it finds the filter's nearest points; entered nowhere
/// it scans exactly; it survives the binary form.
#[test]
fn groups_only_graph_is_searched_from_the_filters_groups() {
    let d = Distance::Cosine;
    let n = 6_000;
    let data = clustered(n, 32, 40, 5, d);
    let queries = clustered(50, 32, 40, 5_000_005, d);
    // Three interleaved tenants of 2,000 points each.
    let tenant = |i: u32| i % 3;
    let groups: Vec<Vec<u32>> = (0..3).map(|t| (0..n as u32).filter(|&i| tenant(i) == t).collect()).collect();
    let mut g = HnswGraph::groups_only(n, &params(16, 100, 1));
    assert!(g.is_groups_only());
    assert_eq!(g.extra_link_count(), 0);
    g.add_group_links(&data, d, &groups, 16, &AtomicBool::new(false)).expect("not cancelled");
    assert!(g.extra_link_count() >= n, "every point linked within its group");

    let one = |i: u32| tenant(i) == 1;
    let two = |i: u32| tenant(i) != 0;
    let back = round_trip(&g);
    assert!(back.is_groups_only());
    assert!(!g.has_group(7));
    g.tag_groups([9, 7, 9]);
    let tagged = round_trip(&g);
    assert!(tagged.has_group(7) && tagged.has_group(9) && !tagged.has_group(8));
    let (mut hits, mut hits_two, mut total) = (0usize, 0usize, 0usize);
    for q in 0..queries.len() as u32 {
        let qv = queries.row(q);
        let truth: HashSet<u32> = exact_search(&data, d, qv, 10, Some(&one)).into_iter().map(|x| x.0).collect();
        let got = g.search(&data, d, qv, 10, 64, Some(&one), Some(&[groups[1][0]]));
        assert!(got.iter().all(|x| one(x.0)));
        assert_eq!(got, back.search(&data, d, qv, 10, 64, Some(&one), Some(&[groups[1][0]])));
        hits += got.iter().filter(|x| truth.contains(&x.0)).count();
        total += truth.len();
        // Two groups: entered at one member of each.
        let truth: HashSet<u32> = exact_search(&data, d, qv, 10, Some(&two)).into_iter().map(|x| x.0).collect();
        let got = g.search(&data, d, qv, 10, 64, Some(&two), Some(&[groups[1][0], groups[2][0]]));
        assert!(got.iter().all(|x| two(x.0)));
        hits_two += got.iter().filter(|x| truth.contains(&x.0)).count();
    }
    let (r, r2) = (hits as f64 / total as f64, hits_two as f64 / total as f64);
    eprintln!("groups-only recall: one group {r:.4}, two groups {r2:.4}");
    assert!(r >= 0.95 && r2 >= 0.95, "{r} {r2}");
    // Without entries (an unfiltered search, say) the whole graph is scanned exactly.
    let qv = queries.row(0);
    assert_eq!(g.search(&data, d, qv, 10, 64, None, None), exact_search(&data, d, qv, 10, None));
}

#[test]
fn cancellation() {
    let d = Distance::Euclid;
    let data = clustered(3000, 16, 10, 5, d);
    let progress = AtomicUsize::new(0);
    let stop = AtomicBool::new(true);
    let r = HnswGraph::build(&data, d, &params(8, 40, 2), &progress, &stop);
    assert!(matches!(r, Err(Cancelled)));
    // Stop mid-way from another thread once progress passes a threshold.
    let progress = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while progress.load(Ordering::Relaxed) < 200 {
                std::thread::yield_now();
            }
            stop.store(true, Ordering::Relaxed);
        });
        let r = HnswGraph::build(&data, d, &params(8, 40, 2), &progress, &stop);
        assert!(matches!(r, Err(Cancelled)));
    });
    assert!(progress.load(Ordering::Relaxed) < data.len());
}

#[test]
fn serialization_round_trip() {
    let d = Distance::Dot;
    let data = clustered(1500, 24, 12, 6, d);
    let queries = clustered(30, 24, 12, 6_000_006, d);
    let mut g = build(&data, d, &params(8, 50, 2));
    let groups: Vec<Vec<u32>> = (0..3).map(|v| (0..1500u32).filter(|i| i % 7 == v).collect()).collect();
    g.add_group_links(&data, d, &groups, 8, &AtomicBool::new(false)).expect("not cancelled");
    let mut bytes = Vec::new();
    g.write_to(&mut bytes).expect("write");
    let back = HnswGraph::read_from(&mut bytes.as_slice()).expect("read");
    assert_eq!(back.len(), g.len());
    assert_eq!(back.max_level(), g.max_level());
    assert_eq!(back.extra_link_count(), g.extra_link_count());
    assert_eq!(back.memory_bytes(), g.memory_bytes());
    let accept = |i: u32| i % 7 == 1;
    for q in 0..queries.len() as u32 {
        let qv = queries.row(q);
        assert_eq!(g.search(&data, d, qv, 10, 40, None, None), back.search(&data, d, qv, 10, 40, None, None));
        assert_eq!(
            g.search(&data, d, qv, 10, 40, Some(&accept), None),
            back.search(&data, d, qv, 10, 40, Some(&accept), None)
        );
    }
    // Writing again gives the same bytes.
    let mut again = Vec::new();
    back.write_to(&mut again).expect("write");
    assert_eq!(bytes, again);
    // Clone behaves the same too.
    let c = g.clone();
    assert_eq!(
        c.search(&data, d, queries.row(0), 5, 20, None, None),
        g.search(&data, d, queries.row(0), 5, 20, None, None)
    );
}

#[test]
fn corrupt_and_truncated_input_is_an_error() {
    let d = Distance::Euclid;
    let data = clustered(300, 8, 5, 7, d);
    let mut g = build(&data, d, &params(4, 20, 1));
    g.add_group_links(&data, d, &[(0..300u32).step_by(3).collect()], 4, &AtomicBool::new(false))
        .expect("not cancelled");
    let mut bytes = Vec::new();
    g.write_to(&mut bytes).expect("write");
    // Every truncation fails.
    for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        let r = HnswGraph::read_from(&mut &bytes[..len]);
        assert!(r.is_err(), "truncated at {len} accepted");
    }
    assert!(matches!(HnswGraph::read_from(&mut &bytes[..bytes.len() - 1]), Err(GraphError::Truncated)));
    // Every flipped byte fails.
    let mut rng = StdRng::seed_from_u64(77);
    for pos in (0..bytes.len()).step_by(5).chain([0, 8, bytes.len() - 1]) {
        let mut bad = bytes.clone();
        bad[pos] ^= 1 << rng.gen_range(0..8);
        assert!(HnswGraph::read_from(&mut bad.as_slice()).is_err(), "flip at {pos} accepted");
    }
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert!(matches!(HnswGraph::read_from(&mut bad.as_slice()), Err(GraphError::BadMagic)));
    let mut bad = bytes.clone();
    bad[20] ^= 0x40;
    assert!(matches!(HnswGraph::read_from(&mut bad.as_slice()), Err(GraphError::Checksum { .. })));
    // Random garbage and a huge claimed size fail without allocating it.
    let garbage: Vec<u8> = (0..500).map(|_| rng.gen()).collect();
    assert!(HnswGraph::read_from(&mut garbage.as_slice()).is_err());
    let mut huge = bytes[..64].to_vec();
    huge[44..52].copy_from_slice(&(u32::MAX as u64).to_le_bytes()); // n
    assert!(HnswGraph::read_from(&mut huge.as_slice()).is_err());
}

#[test]
fn edge_cases() {
    let d = Distance::Cosine;
    let empty = DenseVectors::new(4);
    let g = build(&empty, d, &params(16, 100, 2));
    assert!(g.is_empty());
    assert!(g.search(&empty, d, &[1.0, 0.0, 0.0, 0.0], 10, 10, None, None).is_empty());
    let mut bytes = Vec::new();
    g.write_to(&mut bytes).expect("write");
    assert!(HnswGraph::read_from(&mut bytes.as_slice()).expect("read").is_empty());

    let mut one = DenseVectors::new(2);
    one.push(&[1.0, 0.0]);
    let g = build(&one, d, &params(16, 100, 2));
    assert_eq!(g.search(&one, d, &[1.0, 0.0], 10, 10, None, None), vec![(0, 1.0)]);

    // k larger than n returns everything, sorted; a filter rejecting all returns nothing.
    let data = clustered(50, 4, 3, 8, d);
    let g = build(&data, d, &params(4, 10, 1));
    let all = g.search(&data, d, data.row(3), 100, 10, None, None);
    assert_eq!(all.len(), 50);
    assert_eq!(all[0].0, 3);
    let none = |_: u32| false;
    assert!(g.search(&data, d, data.row(3), 10, 10, Some(&none), None).is_empty());
    assert!(g.search(&data, d, data.row(3), 0, 10, None, None).is_empty());
    // A source shorter than the graph falls back to brute force instead of panicking.
    let short = DenseVectors::from_data(4, data.data[..40].to_vec()).expect("whole rows");
    assert_eq!(g.search(&short, d, data.row(3), 3, 10, None, None), exact_search(&short, d, data.row(3), 3, None));
}

#[test]
fn exact_search_matches_sorting() {
    let d = Distance::Manhattan;
    let data = clustered(500, 10, 5, 9, d);
    let q = data.row(17).to_vec();
    let mut all: Vec<(u32, f32)> = (0..500u32).map(|i| (i, d.score(&q, data.row(i)))).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    assert_eq!(exact_search(&data, d, &q, 7, None), all[..7].to_vec());
    let accept = |i: u32| i % 2 == 1;
    let odd: Vec<(u32, f32)> = all.iter().copied().filter(|x| x.0 % 2 == 1).take(7).collect();
    assert_eq!(exact_search(&data, d, &q, 7, Some(&accept)), odd);
    assert!(exact_search(&data, d, &q, 0, None).is_empty());
}

#[test]
fn dense_vectors_basics() {
    let mut v = DenseVectors::new(3);
    assert!(v.is_empty());
    assert_eq!(v.push(&[1.0, 2.0, 3.0]), 0);
    assert_eq!(v.push(&[4.0]), 1); // zero-padded
    assert_eq!(v.get(1), Some(&[4.0, 0.0, 0.0][..]));
    assert!(v.set(0, &[9.0, 9.0, 9.0, 9.0]));
    assert_eq!(VectorSource::vector(&v, 0), crate::elements::Elems::F32(&[9.0, 9.0, 9.0]));
    assert!(!v.set(5, &[1.0]));
    assert_eq!(v.get(2), None);
    assert_eq!(VectorSource::len(&v), 2);
    assert!(DenseVectors::from_data(3, vec![0.0; 7]).is_none());
}

#[test]
fn crc32_known_value() {
    let mut c = Crc32::new();
    c.update(b"123456789");
    assert_eq!(c.finish(), 0xCBF4_3926);
    let mut c = Crc32::new();
    c.update(b"1234");
    c.update(b"56789");
    assert_eq!(c.finish(), 0xCBF4_3926);
}

#[test]
fn memory_is_compact() {
    let d = Distance::Euclid;
    let data = clustered(2000, 8, 5, 10, d);
    let g = build(&data, d, &params(16, 40, 2));
    let level0 = 2000 * (32 + 1) * 4;
    let mem = g.memory_bytes();
    eprintln!("memory {mem} bytes, level0 {level0}");
    assert!(mem >= level0 && mem < level0 + level0 / 4, "{mem}");
}

/// Release benchmark: `cargo test -p qd-segment --release -- --ignored --nocapture bench_100k`.
/// Environment: BENCH_N (100000), BENCH_DIM (128), BENCH_THREADS (2), BENCH_M (16), BENCH_EFC (100).
#[test]
#[ignore]
fn bench_100k() {
    let env = |k: &str, def: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(def);
    let (n, dim, threads) = (env("BENCH_N", 100_000), env("BENCH_DIM", 128), env("BENCH_THREADS", 2));
    let (m, efc) = (env("BENCH_M", 16), env("BENCH_EFC", 100));
    let d = Distance::Cosine;
    let clusters = env("BENCH_CLUSTERS", 50);
    let data = clustered(n, dim, clusters, 11, d);
    let queries = clustered(1000, dim, clusters, 11_000_011, d);
    if let Ok(dir) = std::env::var("BENCH_DUMP") {
        // Raw little-endian f32 rows, for comparing with other libraries on identical data.
        let dump = |name: &str, v: &DenseVectors| {
            let bytes: Vec<u8> = v.data.iter().flat_map(|x| x.to_le_bytes()).collect();
            std::fs::write(format!("{dir}/{name}"), bytes).expect("dump");
        };
        dump("data.f32", &data);
        dump("queries.f32", &queries);
    }
    eprintln!("kernels: {}", qd_core::distance::simd_level());
    // BENCH_GRAPH=path: load the graph from there if present, else build and save it.
    let cached = std::env::var("BENCH_GRAPH").ok();
    let g = match cached.as_ref().and_then(|p| std::fs::File::open(p).ok()) {
        Some(f) => HnswGraph::read_from(&mut std::io::BufReader::new(f)).expect("cached graph"),
        None => {
            let t = Instant::now();
            let g = build(&data, d, &HnswParams { seed: env("BENCH_SEED", 7) as u64, ..params(m, efc, threads) });
            eprintln!(
                "build n={n} dim={dim} m={m} efc={efc} threads={threads}: {:.2}s, graph {} MB",
                t.elapsed().as_secs_f64(),
                g.memory_bytes() as f64 / 1e6
            );
            if let Some(p) = &cached {
                g.write_to(&mut std::fs::File::create(p).expect("create")).expect("save");
            }
            g
        }
    };
    let truth: Vec<HashSet<u32>> = (0..queries.len() as u32)
        .map(|q| exact_search(&data, d, queries.row(q), 10, None).into_iter().map(|x| x.0).collect())
        .collect();
    if let Ok(dir) = std::env::var("BENCH_DUMP") {
        let mut bytes = Vec::new();
        for q in 0..queries.len() as u32 {
            for (id, _) in exact_search(&data, d, queries.row(q), 10, None) {
                bytes.extend_from_slice(&id.to_le_bytes());
            }
        }
        std::fs::write(format!("{dir}/truth.u32"), bytes).expect("dump");
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    let efs: Vec<usize> = std::env::var("BENCH_EFS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 16, 24, 32, 48, 64, 96, 128, 192, 256]);
    for ef in efs {
        use rayon::prelude::*;
        let t = Instant::now();
        let mut rounds = 0;
        let mut hits = 0usize;
        while rounds < 2 || t.elapsed().as_secs_f64() < 1.0 {
            rounds += 1;
            hits = pool.install(|| {
                (0..queries.len() as u32)
                    .into_par_iter()
                    .map(|q| {
                        let got = g.search(&data, d, queries.row(q), 10, ef, None, None);
                        got.iter().filter(|x| truth[q as usize].contains(&x.0)).count()
                    })
                    .sum()
            });
        }
        let secs = t.elapsed().as_secs_f64();
        if std::env::var("BENCH_CPU").is_ok() {
            // Single thread, timed by this thread's CPU time (robust on a busy machine).
            let cpu = || {
                std::fs::read_to_string("/proc/thread-self/schedstat")
                    .ok()
                    .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse::<u64>().ok()))
                    .unwrap_or(0)
            };
            let c0 = cpu();
            let mut done = 0usize;
            while cpu() - c0 < 2_000_000_000 {
                for q in 0..queries.len() as u32 {
                    std::hint::black_box(g.search(&data, d, queries.row(q), 10, ef, None, None));
                }
                done += queries.len();
            }
            eprintln!("ef {ef:4}: single-thread CPU QPS {:.0}", done as f64 / ((cpu() - c0) as f64 / 1e9));
        }
        let scored: usize =
            (0..queries.len() as u32).map(|q| search_graph(&g, &data, d, queries.row(q), 10, ef, None, None).1).sum();
        eprintln!(
            "ef {ef:4}: recall@10 {:.4}  QPS {:.0}  scored {:.0}",
            hits as f64 / (10 * queries.len()) as f64,
            (rounds * queries.len()) as f64 / secs,
            scored as f64 / queries.len() as f64
        );
    }
}

/// Recall@k of quantized graph search with rescoring (`ceil(k * oversampling)` candidates by
/// quantized score, rescored with the originals), against full-precision brute force.
fn quantized_recall(d: Distance, dim: usize, n: usize, oversampling: f64, rescore: bool) -> f64 {
    use crate::quantized::QuantizedVectors;
    let data = clustered(n, dim, 40, 5, d);
    let queries = clustered(100, dim, 40, 5_000_005, d);
    let g = build(&data, d, &params(16, 100, 2));
    let qv = QuantizedVectors::build(&data, d, 0.99);
    let (k, ef) = (10, 64);
    let fetch = ((k as f64) * oversampling).ceil() as usize;
    let mut hits = 0usize;
    for q in 0..queries.len() as u32 {
        let query = queries.row(q);
        let truth: HashSet<u32> = exact_search(&data, d, query, k, None).into_iter().map(|x| x.0).collect();
        let mut got = g.search_with(&qv.query(query), fetch, ef.max(fetch), None, None);
        if rescore {
            got.iter_mut().for_each(|x| x.1 = d.score(query, data.row(x.0)));
            super::search::sort_best_first(&mut got);
        }
        got.truncate(k);
        hits += got.iter().filter(|x| truth.contains(&x.0)).count();
    }
    hits as f64 / (queries.len() * k) as f64
}

#[test]
fn quantized_recall_with_rescoring() {
    for (d, dim, n) in [(Distance::Cosine, 64, 5000), (Distance::Euclid, 48, 4000), (Distance::Dot, 32, 4000)] {
        let plain = quantized_recall(d, dim, n, 1.0, false);
        let r = quantized_recall(d, dim, n, 2.0, true);
        eprintln!("{d:?}: quantized recall@10 {plain:.4} without rescoring, {r:.4} rescored at oversampling 2");
        assert!(r >= 0.95, "{d:?}: rescored recall {r}");
        assert!(r >= plain, "{d:?}: rescoring made it worse ({r} < {plain})");
    }
}

#[test]
fn quantized_exact_scan_matches_brute_force_after_rescoring() {
    use crate::quantized::QuantizedVectors;
    let d = Distance::Manhattan;
    let data = clustered(2000, 24, 20, 9, d);
    let queries = clustered(30, 24, 20, 9_000_009, d);
    let qv = QuantizedVectors::build(&data, d, 1.0);
    let mut hits = 0;
    for q in 0..queries.len() as u32 {
        let query = queries.row(q);
        let truth: HashSet<u32> = exact_search(&data, d, query, 10, None).into_iter().map(|x| x.0).collect();
        let mut got = exact_search_by(&qv.query(query), data.len(), 30, None);
        got.iter_mut().for_each(|x| x.1 = d.score(query, data.row(x.0)));
        super::search::sort_best_first(&mut got);
        got.truncate(10);
        hits += got.iter().filter(|x| truth.contains(&x.0)).count();
    }
    let r = hits as f64 / 300.0;
    assert!(r >= 0.97, "recall {r}");
}
