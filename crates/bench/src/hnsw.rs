//! `qd-bench hnsw`: index build time, QPS (1 thread and all threads) and recall@10 against
//! exact ground truth at several `ef`, for our HNSW graph. Writes the dataset and ground truth
//! so that `scripts/bench_hnswlib.py` measures hnswlib on exactly the same data.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Instant;

use qd_core::Distance;
use qd_segment::hnsw::{exact_search, DenseVectors, HnswGraph, HnswParams};
use rayon::prelude::*;
use serde_json::{json, Value};

use qd_bench::data;

pub struct Args {
    pub n: usize,
    pub dim: usize,
    pub queries: usize,
    pub m: usize,
    pub ef_construct: usize,
    pub threads: usize,
    pub out_dir: Option<std::path::PathBuf>,
}

const EFS: [usize; 5] = [16, 32, 64, 128, 256];
const K: usize = 10;

pub fn run(a: &Args) -> Value {
    let distance = Distance::Cosine;
    let rss_start = data::rss();
    let mut base = data::clustered(a.n, a.dim, 100, 1);
    let mut queries = data::clustered(a.queries, a.dim, 100, 2);
    for row in base.chunks_mut(a.dim).chain(queries.chunks_mut(a.dim)) {
        distance.preprocess(row);
    }
    let vectors = DenseVectors::from_data(a.dim, base).unwrap_or_else(|| DenseVectors::new(a.dim));
    let rss_before = data::rss();
    let t = Instant::now();
    let truth: Vec<Vec<u32>> = queries
        .par_chunks(a.dim)
        .map(|q| exact_search(&vectors, distance, q, K, None).into_iter().map(|(o, _)| o).collect())
        .collect();
    let truth_secs = t.elapsed().as_secs_f64();
    if let Some(dir) = &a.out_dir {
        write_dataset(dir, &vectors.data, &queries, &truth, a);
    }
    let params = HnswParams { m: a.m, ef_construct: a.ef_construct, max_threads: a.threads, seed: 42 };
    let progress = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let graph = match HnswGraph::build(&vectors, distance, &params, &progress, &stop) {
        Ok(g) => g,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let build_secs = t.elapsed().as_secs_f64();
    let peak = data::peak_rss();
    let mut rows = Vec::new();
    for ef in EFS {
        let search = |q: &[f32]| graph.search(&vectors, distance, q, K, ef, None, None);
        let t = Instant::now();
        let results: Vec<Vec<(u32, f32)>> = queries.chunks(a.dim).map(search).collect();
        let qps1 = a.queries as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _: Vec<Vec<(u32, f32)>> = queries.par_chunks(a.dim).map(search).collect();
        let qps_all = a.queries as f64 / t.elapsed().as_secs_f64();
        let hits: usize =
            results.iter().zip(&truth).map(|(r, t)| r.iter().filter(|(o, _)| t.contains(o)).count()).sum();
        rows.push(json!({
            "ef": ef,
            "recall_at_10": hits as f64 / (a.queries * K) as f64,
            "qps_1_thread": qps1,
            "qps_all_threads": qps_all,
        }));
    }
    let vector_bytes = vectors.data.len() * 4;
    json!({
        "engine": "qd-segment hnsw",
        "n": a.n, "dim": a.dim, "m": a.m, "ef_construct": a.ef_construct,
        "threads": rayon::current_num_threads(),
        "build_secs": build_secs,
        "ground_truth_secs": truth_secs,
        "vector_bytes": vector_bytes,
        "graph_bytes": graph.memory_bytes(),
        "peak_rss_bytes": peak,
        "rss_before_build_bytes": rss_before,
        // Everything the process grew by (vectors, queries, ground truth, graph, build scratch)
        // over what the index needs to serve: raw vectors + graph links.
        "memory_ratio": peak.saturating_sub(rss_start) as f64 / (vector_bytes + graph.memory_bytes()) as f64,
        "search": rows,
    })
}

fn write_dataset(dir: &Path, base: &[f32], queries: &[f32], truth: &[Vec<u32>], a: &Args) {
    let _ = std::fs::create_dir_all(dir);
    let _ = data::write_f32(&dir.join("base.f32"), base);
    let _ = data::write_f32(&dir.join("queries.f32"), queries);
    let flat: Vec<u32> = truth.iter().flatten().copied().collect();
    let bytes: Vec<u8> = flat.iter().flat_map(|x| x.to_le_bytes()).collect();
    let _ = std::fs::write(dir.join("truth.u32"), bytes);
    let meta = json!({"n": a.n, "dim": a.dim, "queries": a.queries, "k": K, "m": a.m, "ef_construct": a.ef_construct, "efs": EFS});
    let _ = std::fs::write(dir.join("meta.json"), meta.to_string());
}
