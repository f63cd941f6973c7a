//! Filtered search quality at default settings (m=16, ef_construct=100, default thresholds):
//! recall@10 against exact search stays >= 0.95 for filters matching 1%, 10% and 50% of the
//! points. 768-d vectors make the default full_scan_threshold (10 MB) equal to ~3,300 points.
//! The choice is made per segment from its estimated cardinality: with the default segment
//! count (one per core) the 1% and 10% filters scan their matches exactly, the 50% filter walks
//! each segment's HNSW graph with the filter applied during traversal (plus payload_m links for
//! the indexed values). The graph path under selective filters (1%, 10%) is covered by the HNSW
//! tests in crates/segment.

use std::time::{Duration, Instant};

use qd_bench::data;
use qd_collection::catalog::PayloadIndexSpec;
use qd_collection::operations::SearchSettings;
use qd_collection::operations::{PointInsert, UpdateOp, WithSelectors};
use qd_collection::query::{Query, QueryRequest, VectorOrId};
use qd_collection::Registry;
use qd_core::config::{CollectionDefaults, CreateCollection};
use qd_core::filter::Filter;
use qd_core::vectors::{NamedVectors, Vector};
use qd_core::PointId;
use qd_storage::BackendKind;
use serde_json::json;

const N: usize = 30_000;
const DIM: usize = 768;
const QUERIES: usize = 40;

fn bucket(i: usize) -> u64 {
    // A hash, so filter membership is independent of the clusters.
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
}

#[test]
#[cfg_attr(debug_assertions, ignore = "needs an optimised build: run with --release (scripts/test.sh does)")]
fn filtered_recall_at_default_settings() {
    let dir = tempfile::tempdir().expect("tmp");
    let reg = Registry::open(dir.path(), BackendKind::Rocksdb, CollectionDefaults::default()).expect("open");
    reg.load_all();
    let body: CreateCollection =
        serde_json::from_value(json!({"vectors": {"size": DIM, "distance": "Cosine"}})).expect("body");
    reg.create("r", body).expect("create");
    for field in ["p1", "p10", "p50"] {
        reg.set_payload_index("r", field, Some(PayloadIndexSpec { data_type: "bool".into(), params: None }))
            .expect("index");
    }
    let c = reg.get("r").expect("collection");
    let base = data::clustered(N, DIM, 64, 11);
    for start in (0..N).step_by(2_000) {
        let points = (start..start + 2_000)
            .map(|i| PointInsert {
                id: PointId::Num(i as u64),
                vectors: NamedVectors::from([(String::new(), Vector::Dense(base[i * DIM..(i + 1) * DIM].to_vec()))]),
                payload: json!({"p1": bucket(i).is_multiple_of(100), "p10": bucket(i).is_multiple_of(10), "p50": bucket(i).is_multiple_of(2)})
                    .as_object()
                    .cloned(),
            })
            .collect();
        c.update(UpdateOp::Upsert(points), true, None).expect("upsert");
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let info = reg.info("r").expect("info");
        if info.status == "green" && info.indexed_vectors_count == N {
            break;
        }
        assert!(Instant::now() < deadline, "indexing did not finish: {} indexed", info.indexed_vectors_count);
        std::thread::sleep(Duration::from_millis(200));
    }
    let queries = data::clustered(QUERIES, DIM, 64, 12);
    for (field, share) in [("p1", 0.01), ("p10", 0.1), ("p50", 0.5)] {
        let filter: Filter =
            serde_json::from_value(json!({"must": [{"key": field, "match": {"value": true}}]})).expect("filter");
        let matching = c.count(Some(&filter), Default::default()).expect("count");
        assert!((matching as f64 - share * N as f64).abs() < share * N as f64 * 0.2, "{field}: {matching} match");
        let mut hits = 0;
        for q in queries.chunks(DIM) {
            let req = |exact: bool| QueryRequest {
                query: Some(Query::Nearest(VectorOrId::Vector(Vector::Dense(q.to_vec())))),
                filter: Some(filter.clone()),
                limit: 10,
                with: WithSelectors::default(),
                params: SearchSettings { exact, ..Default::default() },
                ..Default::default()
            };
            let truth: Vec<PointId> = c.query(&req(true)).expect("exact").into_iter().map(|p| p.id).collect();
            let got: Vec<PointId> = c.query(&req(false)).expect("hnsw").into_iter().map(|p| p.id).collect();
            hits += got.iter().filter(|id| truth.contains(id)).count();
        }
        let recall = hits as f64 / (QUERIES * 10) as f64;
        eprintln!("filter {field} ({matching} points): recall@10 = {recall:.3}");
        assert!(recall >= 0.95, "filter {field}: recall@10 {recall:.3} < 0.95");
    }
    reg.shutdown();
}
