//! Sharding: the same data with shard_number 1 and 8 answers identically; custom shard keys
//! route as asked; /cluster reports the shards. Both backends.

use serde_json::{json, Value};

use crate::common::{create_collection, Server, BACKENDS};

fn vector(i: u64) -> Vec<f32> {
    let mut x = i.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    (0..8)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1000) as f32 / 500.0 - 1.0
        })
        .collect()
}

fn load(s: &Server, name: &str, shards: u32) {
    create_collection(s, name, json!({"vectors": {"size": 8, "distance": "Dot"}, "shard_number": shards}));
    // Facets need an index on their key.
    s.ok(
        "PUT",
        &format!("/collections/{name}/index?wait=true"),
        Some(&json!({"field_name": "k", "field_schema": "integer"})),
    );
    let points: Vec<Value> = (0..600u64)
        .map(|i| json!({"id": i, "vector": vector(i), "payload": {"k": i % 7, "tag": format!("t{}", i % 3)}}))
        .collect();
    s.ok("PUT", &format!("/collections/{name}/points?wait=true"), Some(&json!({ "points": points })));
    s.ok(
        "POST",
        &format!("/collections/{name}/points/delete?wait=true"),
        Some(&json!({"filter": {"must": [{"key": "k", "match": {"value": 3}}]}})),
    );
}

fn same_answers_with_1_and_8_shards(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("s"), backend);
    load(&s, "one", 1);
    load(&s, "eight", 8);
    let info = s.ok("GET", "/collections/eight", None);
    assert_eq!(info["shards"].as_array().expect("shards").len(), 8);
    assert!(
        info["shards"].as_array().expect("shards").iter().all(|sh| sh["points_count"].as_u64() > Some(0)),
        "{info}"
    );
    let requests: Vec<(&str, Value)> = vec![
        ("points/search", json!({"vector": vector(10_001), "limit": 15, "offset": 5, "with_payload": true})),
        (
            "points/search",
            json!({"vector": vector(10_002), "limit": 10, "filter": {"must": [{"key": "tag", "match": {"value": "t1"}}]}}),
        ),
        ("points/query", json!({"query": vector(10_003), "limit": 12, "with_vector": true})),
        (
            "points/query",
            json!({"query": {"recommend": {"positive": [1, 2], "negative": [5], "strategy": "best_score"}}, "limit": 7}),
        ),
        (
            "points/scroll",
            json!({"limit": 50, "offset": 100, "filter": {"must_not": [{"key": "k", "match": {"value": 1}}]}}),
        ),
        ("points/count", json!({"filter": {"must": [{"key": "tag", "match": {"value": "t2"}}]}})),
        ("points/query/groups", json!({"query": vector(10_004), "group_by": "tag", "group_size": 3, "limit": 3})),
        ("facet", json!({"key": "k"})),
    ];
    for (path, body) in requests {
        let a = s.ok("POST", &format!("/collections/one/{path}"), Some(&body));
        let b = s.ok("POST", &format!("/collections/eight/{path}"), Some(&body));
        assert_eq!(a, b, "{path} {body}");
    }
    let cluster = s.ok("GET", "/collections/eight/cluster", None);
    assert_eq!(cluster["shard_count"], 8);
    let total: u64 = cluster["local_shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| s["points_count"].as_u64().expect("n"))
        .sum();
    assert_eq!(
        total,
        s.ok("POST", "/collections/eight/points/count", Some(&json!({})))["count"].as_u64().expect("count")
    );
}

#[test]
fn shards_1_vs_8_sqlite() {
    same_answers_with_1_and_8_shards(BACKENDS[0]);
}

#[test]
fn shards_1_vs_8_rocksdb() {
    same_answers_with_1_and_8_shards(BACKENDS[1]);
}

fn custom_shard_keys(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, backend);
    create_collection(
        &s,
        "c",
        json!({"vectors": {"size": 2, "distance": "Dot"}, "sharding_method": "custom", "shard_number": 2}),
    );
    s.ok("PUT", "/collections/c/shards", Some(&json!({"shard_key": "eu"})));
    s.ok("PUT", "/collections/c/shards", Some(&json!({"shard_key": 7, "shards_number": 1})));
    let (st, body) = s.call("PUT", "/collections/c/shards", Some(&json!({"shard_key": "eu"})));
    assert_eq!(st, 409, "{body}");
    // Writes must name a key.
    let (st, body) =
        s.call("PUT", "/collections/c/points?wait=true", Some(&json!({"points": [{"id": 1, "vector": [1.0, 0.0]}]})));
    assert_eq!(st, 400, "{body}");
    let (st, _) = s.call(
        "PUT",
        "/collections/c/points?wait=true",
        Some(&json!({"points": [{"id": 1, "vector": [1.0, 0.0]}], "shard_key": "us"})),
    );
    assert_eq!(st, 400, "unknown key");
    s.ok(
        "PUT",
        "/collections/c/points?wait=true",
        Some(&json!({"points": [{"id": 1, "vector": [1.0, 0.0]}, {"id": 2, "vector": [0.5, 0.5]}], "shard_key": "eu"})),
    );
    s.ok(
        "PUT",
        "/collections/c/points?wait=true",
        Some(&json!({"points": [{"id": 3, "vector": [0.0, 1.0]}], "shard_key": 7})),
    );
    let count =
        |key: Value| s.ok("POST", "/collections/c/points/count", Some(&json!({"shard_key": key})))["count"].clone();
    assert_eq!(count(json!("eu")), 2);
    assert_eq!(count(json!(7)), 1);
    assert_eq!(count(Value::Null), 3);
    let hits =
        s.ok("POST", "/collections/c/points/query", Some(&json!({"query": [0.0, 1.0], "limit": 5, "shard_key": "eu"})));
    let ids: Vec<u64> = hits["points"].as_array().expect("pts").iter().map(|p| p["id"].as_u64().expect("id")).collect();
    assert_eq!(ids, vec![2, 1], "only the eu shards are searched");
    let cluster = s.ok("GET", "/collections/c/cluster", None);
    assert_eq!(cluster["shard_count"], 3);
    drop(s);
    // Keys survive a restart; deleting a key drops its points.
    let s = Server::start(&storage, backend);
    assert_eq!(s.ok("POST", "/collections/c/points/count", Some(&json!({"shard_key": 7})))["count"], 1);
    s.ok("POST", "/collections/c/shards/delete", Some(&json!({"shard_key": 7})));
    assert_eq!(s.ok("POST", "/collections/c/points/count", Some(&json!({})))["count"], 2);
    let (st, _) = s.call("POST", "/collections/c/points/count", Some(&json!({"shard_key": 7})));
    assert_eq!(st, 400);
}

#[test]
fn custom_keys_sqlite() {
    custom_shard_keys(BACKENDS[0]);
}

#[test]
fn custom_keys_rocksdb() {
    custom_shard_keys(BACKENDS[1]);
}

/// Searches, scrolls and counts fan out over shards and segments on a thread pool while
/// writes and the optimizer take the shards' write locks: with both running flat out, every
/// request must still answer (a lock-order mistake here would hang the server).
fn reads_and_writes_together_never_stall(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("s"), backend);
    create_collection(
        &s,
        "c",
        json!({"vectors": {"size": 8, "distance": "Dot"}, "shard_number": 2,
               "optimizers_config": {"indexing_threshold": 10}}),
    );
    let points = |from: u64, n: u64| -> Value {
        json!({"points": (from..from + n).map(|i| json!({"id": i, "vector": vector(i)})).collect::<Vec<_>>()})
    };
    s.ok("PUT", "/collections/c/points?wait=true", Some(&points(0, 1500)));
    let started = std::time::Instant::now();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for round in 0..150u64 {
                s.ok("PUT", "/collections/c/points?wait=true", Some(&points((round * 37) % 1500, 40)));
                s.ok("POST", "/collections/c/points/delete?wait=true", Some(&json!({"points": [round * 11 % 1500]})));
            }
        });
        for t in 0..8u64 {
            let s = &s;
            sc.spawn(move || {
                for i in 0..150u64 {
                    let hits = s.ok(
                        "POST",
                        "/collections/c/points/search",
                        Some(&json!({"vector": vector(t * 1000 + i), "limit": 5})),
                    );
                    assert_eq!(hits.as_array().map(Vec::len), Some(5));
                    if i % 10 == 0 {
                        s.ok("POST", "/collections/c/points/scroll", Some(&json!({"limit": 50})));
                        s.ok("POST", "/collections/c/points/count", Some(&json!({})));
                    }
                }
            });
        }
    });
    assert!(started.elapsed() < std::time::Duration::from_secs(120), "took {:?}", started.elapsed());
}

#[test]
fn reads_and_writes_together_sqlite() {
    reads_and_writes_together_never_stall(BACKENDS[0]);
}

#[test]
fn reads_and_writes_together_rocksdb() {
    reads_and_writes_together_never_stall(BACKENDS[1]);
}
