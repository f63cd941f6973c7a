//! Benchmarks through the collection layer (no HTTP): restart time-to-ready, and ingest /
//! search throughput by shard count.

use std::path::Path;
use std::time::{Duration, Instant};

use qd_collection::operations::SearchSettings;
use qd_collection::operations::{PointInsert, UpdateOp, WithSelectors};
use qd_collection::query::{Query, QueryRequest, VectorOrId};
use qd_collection::Registry;
use qd_core::config::{CollectionDefaults, CreateCollection};
use qd_core::vectors::{NamedVectors, Vector};
use qd_core::PointId;
use qd_storage::BackendKind;
use rayon::prelude::*;
use serde_json::{json, Value};

use qd_bench::data;

fn create(reg: &Registry, name: &str, dim: usize, shards: u32) -> Result<(), String> {
    let body: CreateCollection = serde_json::from_value(json!({
        "vectors": {"size": dim, "distance": "Cosine"},
        "shard_number": shards,
    }))
    .map_err(|e| e.to_string())?;
    reg.create(name, body).map_err(|e| e.to_string())
}

/// Upsert `n` points in batches of `batch` from `threads` parallel writers; returns seconds.
fn ingest(reg: &Registry, name: &str, base: &[f32], dim: usize, batch: usize, threads: usize) -> Result<f64, String> {
    let c = reg.get(name).map_err(|e| e.to_string())?;
    let n = base.len() / dim;
    let chunks: Vec<(usize, usize)> = (0..n).step_by(batch).map(|s| (s, (s + batch).min(n))).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().map_err(|e| e.to_string())?;
    let t = Instant::now();
    pool.install(|| {
        chunks.par_iter().try_for_each(|&(s, e)| {
            let points = (s..e)
                .map(|i| PointInsert {
                    id: PointId::Num(i as u64),
                    vectors: NamedVectors::from([(
                        String::new(),
                        Vector::Dense(base[i * dim..(i + 1) * dim].to_vec()),
                    )]),
                    payload: None,
                })
                .collect();
            c.update(UpdateOp::Upsert(points), true, None).map(|_| ()).map_err(|e| e.to_string())
        })
    })?;
    Ok(t.elapsed().as_secs_f64())
}

/// Wait until green, then once more after a shard's quiet period (2 s) has passed, so that the
/// indexing of appendable remainders it triggers is included. Returns the seconds until the
/// last green (so at least the quiet period).
fn wait_indexed(reg: &Registry, name: &str, timeout: Duration) -> Result<f64, String> {
    let t = Instant::now();
    let green = || -> Result<(), String> {
        loop {
            if reg.info(name).map_err(|e| e.to_string())?.status == "green" {
                return Ok(());
            }
            if t.elapsed() > timeout {
                return Err(format!("not indexed after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    green()?;
    std::thread::sleep(Duration::from_millis(2500));
    green()?;
    Ok(t.elapsed().as_secs_f64())
}

/// Ingest throughput only, `repeat` rounds over all shard counts (alternating, so drifts of a
/// shared machine hit every count alike).
fn ingest_rounds(
    dir: &Path,
    backend: BackendKind,
    n: usize,
    dim: usize,
    counts: &[u32],
    repeat: usize,
) -> Result<Value, String> {
    let base = data::clustered(n, dim, 100, 1);
    let threads = rayon::current_num_threads();
    let mut runs: Vec<Value> = Vec::new();
    for round in 0..repeat {
        for &shards in counts {
            let root = dir.join(format!("ingest-{round}-{shards}"));
            let reg = Registry::open(&root, backend, CollectionDefaults::default()).map_err(|e| e.to_string())?;
            reg.load_all();
            create(&reg, "bench", dim, shards)?;
            let secs = ingest(&reg, "bench", &base, dim, 1_000, threads.max(2))?;
            eprintln!("qd-bench shards: round {round}, {shards} shard(s): {:.0} points/s", n as f64 / secs);
            runs.push(json!({"round": round, "shards": shards, "ingest_points_per_sec": n as f64 / secs}));
            reg.shutdown();
            drop(reg);
            let _ = std::fs::remove_dir_all(&root);
        }
    }
    Ok(json!({ "backend": backend.name(), "n": n, "dim": dim, "threads": threads, "ingest_runs": runs }))
}

/// `qd-bench reopen`: ingest N points, let the optimizer index them, stop, then time how long
/// opening the storage and loading every collection takes (the server's time-to-ready).
pub fn reopen(dir: &Path, backend: BackendKind, n: usize, dim: usize) -> Result<Value, String> {
    let base = data::clustered(n, dim, 100, 1);
    let (ingest_secs, index_secs) = {
        let reg = Registry::open(dir, backend, CollectionDefaults::default()).map_err(|e| e.to_string())?;
        reg.load_all();
        create(&reg, "bench", dim, 1)?;
        let ingest_secs = ingest(&reg, "bench", &base, dim, 10_000, 2)?;
        let index_secs = wait_indexed(&reg, "bench", Duration::from_secs(3600))?;
        reg.shutdown();
        (ingest_secs, index_secs)
    };
    drop(base);
    let t = Instant::now();
    let reg = Registry::open(dir, backend, CollectionDefaults::default()).map_err(|e| e.to_string())?;
    let (loaded, broken) = reg.load_all();
    let ready_secs = t.elapsed().as_secs_f64();
    let info = reg.info("bench").map_err(|e| e.to_string())?;
    reg.shutdown();
    Ok(json!({
        "backend": backend.name(), "n": n, "dim": dim,
        "ingest_secs": ingest_secs, "index_secs": index_secs,
        "time_to_ready_secs": ready_secs, "collections_loaded": loaded, "broken": broken,
        "points_after_reopen": info.points_count, "indexed_after_reopen": info.indexed_vectors_count,
        "rss_after_reopen_bytes": data::rss(),
    }))
}

/// `qd-bench shards`: for each shard count, ingest throughput, indexing time, and for each
/// `hnsw_ef` search QPS (all threads, and one client) with recall@10 against exact search
/// through the same API, so that shard counts can be compared at equal recall.
pub struct ShardsArgs<'a> {
    pub n: usize,
    pub dim: usize,
    pub counts: &'a [u32],
    pub efs: &'a [usize],
    pub queries: usize,
    /// Measure ingest only (no indexing wait, no search), `repeat` times per shard count,
    /// alternating the counts: ingest figures vary run to run.
    pub ingest_only: bool,
    pub repeat: usize,
}

pub fn shards(dir: &Path, backend: BackendKind, args: &ShardsArgs) -> Result<Value, String> {
    let ShardsArgs { n, dim, counts, efs, queries, ingest_only, repeat } = *args;
    if ingest_only {
        return ingest_rounds(dir, backend, n, dim, counts, repeat.max(1));
    }
    let base = data::clustered(n, dim, 100, 1);
    let qs = data::clustered(queries, dim, 100, 2);
    let threads = rayon::current_num_threads();
    let mut rows = Vec::new();
    for &shards in counts {
        let root = dir.join(format!("shards-{shards}"));
        let reg = Registry::open(&root, backend, CollectionDefaults::default()).map_err(|e| e.to_string())?;
        reg.load_all();
        create(&reg, "bench", dim, shards)?;
        let ingest_secs = ingest(&reg, "bench", &base, dim, 1_000, threads.max(2))?;
        let index_secs = wait_indexed(&reg, "bench", Duration::from_secs(3600))?;
        let c = reg.get("bench").map_err(|e| e.to_string())?;
        let req = |q: &[f32], ef: usize, exact: bool| QueryRequest {
            query: Some(Query::Nearest(VectorOrId::Vector(Vector::Dense(q.to_vec())))),
            limit: 10,
            with: WithSelectors::default(),
            params: SearchSettings { hnsw_ef: Some(ef), exact, quantization: None },
            ..Default::default()
        };
        let one = |q: &[f32], ef: usize, exact: bool| -> Result<Vec<PointId>, String> {
            c.query(&req(q, ef, exact)).map(|h| h.into_iter().map(|p| p.id).collect()).map_err(|e| e.to_string())
        };
        let truth: Vec<Vec<PointId>> = qs.par_chunks(dim).map(|q| one(q, 0, true)).collect::<Result<_, _>>()?;
        let recall = |got: &[Vec<PointId>]| {
            let hits: usize = got.iter().zip(&truth).map(|(g, t)| g.iter().filter(|i| t.contains(i)).count()).sum();
            hits as f64 / (queries * 10) as f64
        };
        let info = reg.info("bench").map_err(|e| e.to_string())?;
        let mut by_ef = Vec::new();
        for &ef in efs {
            // All threads: queries in parallel, as many clients as cores.
            let t = Instant::now();
            let got: Vec<Vec<PointId>> = qs.par_chunks(dim).map(|q| one(q, ef, false)).collect::<Result<_, _>>()?;
            let qps_parallel = queries as f64 / t.elapsed().as_secs_f64();
            // One client: one query at a time (fan-out over shards and segments may use the cores).
            let t = Instant::now();
            let seq: Vec<Vec<PointId>> = qs.chunks(dim).map(|q| one(q, ef, false)).collect::<Result<_, _>>()?;
            let qps_one_client = queries as f64 / t.elapsed().as_secs_f64();
            by_ef.push(json!({
                "hnsw_ef": ef,
                "qps_all_threads": qps_parallel,
                "qps_one_client": qps_one_client,
                "recall_at_10": recall(&got),
                "recall_at_10_one_client": recall(&seq),
            }));
        }
        eprintln!("qd-bench shards: {shards} shard(s) done ({ingest_secs:.1} s ingest, {index_secs:.1} s indexing)");
        rows.push(json!({
            "shards": shards,
            "ingest_points_per_sec": n as f64 / ingest_secs,
            "index_secs": index_secs,
            "segments": info.segments_count,
            "search": by_ef,
        }));
        reg.shutdown();
        drop(reg);
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(json!({ "backend": backend.name(), "n": n, "dim": dim, "threads": threads, "rows": rows }))
}
