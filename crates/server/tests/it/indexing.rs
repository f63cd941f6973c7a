//! The optimizer builds HNSW indexes in the background; searches stay correct meanwhile; a
//! restart loads the persisted graph instead of rebuilding it. Both backends.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{create_collection, vector, wait_indexed, Server, BACKENDS};

fn ids(hits: &Value) -> Vec<u64> {
    hits.as_array().expect("hits").iter().map(|h| h["id"].as_u64().expect("id")).collect()
}

fn index_build_and_reload(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, backend);
    let dim = 16;
    create_collection(
        &s,
        "h",
        json!({"vectors": {"size": dim, "distance": "Cosine"}, "shard_number": 2,
               "optimizers_config": {"indexing_threshold": 20}, "hnsw_config": {"m": 8, "ef_construct": 64}}),
    );
    s.ok("PUT", "/collections/h/index", Some(&json!({"field_name": "group", "field_schema": "keyword"})));
    for batch in 0..4u64 {
        let points: Vec<Value> = (batch * 500..(batch + 1) * 500)
            .map(|i| json!({"id": i, "vector": vector(i, dim), "payload": {"group": format!("g{}", i % 10)}}))
            .collect();
        s.ok("PUT", "/collections/h/points?wait=true", Some(&json!({ "points": points })));
    }
    let info = wait_indexed(&s, "h");
    assert_eq!(info["points_count"], 2000);
    assert!(info["segments_count"].as_u64().expect("segments") >= 3, "{info}");
    let opt = s.ok("GET", "/collections/h/optimizations", None);
    assert!(!opt["completed"].as_array().expect("completed").is_empty(), "{opt}");

    // HNSW results agree with exact search on most of the top 10.
    let mut overlap = 0;
    for q in 0..20u64 {
        let body = |exact: bool| json!({"vector": vector(10_000 + q, dim), "limit": 10, "params": {"exact": exact, "hnsw_ef": 128}});
        let approx = ids(&s.ok("POST", "/collections/h/points/search", Some(&body(false))));
        let exact = ids(&s.ok("POST", "/collections/h/points/search", Some(&body(true))));
        overlap += approx.iter().filter(|i| exact.contains(i)).count();
    }
    assert!(overlap >= 190, "recall@10 {} too low", overlap as f64 / 200.0);

    // Updates and deletes after indexing are visible at once.
    s.ok("POST", "/collections/h/points/delete?wait=true", Some(&json!({"points": [0, 1, 2]})));
    s.ok(
        "PUT",
        "/collections/h/points?wait=true",
        Some(&json!({"points": [{"id": 3, "vector": vector(99_999, dim), "payload": {"group": "moved"}}]})),
    );
    let hit = s.ok(
        "POST",
        "/collections/h/points/search",
        Some(&json!({"vector": vector(99_999, dim), "limit": 1, "with_payload": true})),
    );
    assert_eq!(hit[0]["id"], 3);
    assert_eq!(hit[0]["payload"]["group"], "moved");
    let filtered = s.ok(
        "POST",
        "/collections/h/points/search",
        Some(&json!({"vector": vector(5, dim), "limit": 5, "filter": {"must": [{"key": "group", "match": {"value": "g5"}}]}, "with_payload": true})),
    );
    assert!(filtered.as_array().expect("hits").iter().all(|h| h["payload"]["group"] == "g5"));
    assert_eq!(s.ok("POST", "/collections/h/points/count", Some(&json!({})))["count"], 1997);
    let indexed_before = s.ok("GET", "/collections/h", None)["indexed_vectors_count"].clone();
    drop(s);

    // Restart: graphs load from storage, no optimization runs again.
    let s = Server::start(&storage, backend);
    let info = s.ok("GET", "/collections/h", None);
    assert_eq!(info["points_count"], 1997);
    assert_eq!(info["indexed_vectors_count"], indexed_before, "index loaded, not rebuilt: {info}");
    std::thread::sleep(Duration::from_millis(700));
    let opt = s.ok("GET", "/collections/h/optimizations", None);
    assert!(opt["completed"].as_array().expect("completed").is_empty(), "nothing rebuilt after restart: {opt}");
    let hit = s.ok("POST", "/collections/h/points/search", Some(&json!({"vector": vector(99_999, dim), "limit": 1})));
    assert_eq!(hit[0]["id"], 3);
}

#[test]
fn indexing_sqlite() {
    index_build_and_reload(BACKENDS[0]);
}

#[test]
fn indexing_rocksdb() {
    index_build_and_reload(BACKENDS[1]);
}
