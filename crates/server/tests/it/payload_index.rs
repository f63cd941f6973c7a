//! Payload indexes answer filters on sealed and appendable segments: the same data in a
//! collection with keyword, integer, float, bool and datetime indexes (one created after the
//! data, which the optimizer then builds), in one that never seals a segment (indexing off:
//! its appendable segment keeps the same indexes while it is written), and in one without
//! indexes (every answer read from payloads) give the same counts, scrolls, facets, orders and
//! exact searches for filters mixing indexed and unindexed conditions; graph searches keep to
//! the filter; a restart loads the indexes instead of rebuilding them. Without an index,
//! facets and `order_by` are refused as in Qdrant. Both backends.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{create_collection, vector, wait_indexed, wait_payload_index_built, Server, BACKENDS};

const DIM: usize = 8;
const N: u64 = 3000;

fn payload(i: u64) -> Value {
    let mut p = json!({
        "cat": format!("c{}", i % 10),
        "n": (i % 37) as i64 - 10,
        "x": (i % 101) as f64 / 10.0,
        "flag": i.is_multiple_of(3),
        "ts": format!("2024-01-{:02}T{:02}:00:00Z", 1 + i % 28, i % 24),
        "free": format!("w{}", i % 5),
        "loc": {"lon": (i % 360) as f64 - 179.5, "lat": ((i * 7) % 170) as f64 - 84.75},
    });
    if i.is_multiple_of(11) {
        p["cat"] = json!(["c1", format!("c{}", i % 7)]);
    }
    if i.is_multiple_of(13) {
        p["n"] = json!("not a number");
    }
    p
}

fn filters() -> Vec<Value> {
    vec![
        json!({"must": [{"key": "cat", "match": {"value": "c3"}}]}),
        json!({"must": [{"key": "cat", "match": {"any": ["c1", "c5"]}}, {"key": "flag", "match": {"value": true}}]}),
        json!({"must": [{"key": "n", "range": {"gte": -3, "lt": 4}}]}),
        json!({"must": [{"key": "n", "match": {"value": 7}}, {"key": "free", "match": {"value": "w2"}}]}),
        json!({"must": [{"key": "x", "range": {"gt": 2.5, "lte": 3.0}}]}),
        json!({"must": [{"key": "ts", "range": {"gte": "2024-01-05T00:00:00Z", "lt": "2024-01-06T12:00:00Z"}}]}),
        json!({"must": [{"key": "cat", "match": {"value": "c1"}}], "must_not": [{"key": "n", "range": {"lt": 0}}]}),
        json!({"must": [{"key": "cat", "match": {"value": "c2"}}], "should": [{"key": "flag", "match": {"value": true}}, {"key": "x", "range": {"lt": 1}}]}),
        json!({"must": [{"key": "cat", "match": {"value": "nowhere"}}]}),
        json!({"must": [{"key": "free", "match": {"value": "w1"}}]}),
        json!({"must": [{"key": "loc", "geo_radius": {"center": {"lon": 10.0, "lat": 20.0}, "radius": 2_000_000.0}}]}),
        json!({"must": [{"key": "loc", "geo_bounding_box": {"top_left": {"lon": 170.0, "lat": 60.0},
                                                             "bottom_right": {"lon": -170.0, "lat": -10.0}}},
                        {"key": "flag", "match": {"value": false}}]}),
        json!({"must": [{"key": "loc", "geo_polygon": {"exterior": {"points": [
            {"lon": -50.0, "lat": -20.0}, {"lon": 40.0, "lat": -25.0}, {"lon": 0.0, "lat": 45.0}, {"lon": -50.0, "lat": -20.0}]}}}]}),
    ]
}

fn ids(v: &Value) -> Vec<Value> {
    v.as_array().expect("list").iter().map(|p| p["id"].clone()).collect()
}

/// Counts, scrolls and exact searches of `a` and `b` agree on every filter, and so do `order_by`
/// and facets where `b` has the indexes they need; graph searches of `a` return only matching
/// points.
fn same_answers(s: &Server, a: &str, b: &str, b_indexed: bool) {
    for (fi, f) in filters().into_iter().enumerate() {
        let count = |c: &str| {
            s.ok("POST", &format!("/collections/{c}/points/count"), Some(&json!({"filter": f, "exact": true})))["count"]
                .clone()
        };
        assert_eq!(count(a), count(b), "count, filter {fi}");
        let scroll = |c: &str| {
            ids(&s.ok("POST", &format!("/collections/{c}/points/scroll"), Some(&json!({"filter": f, "limit": 40})))
                ["points"])
        };
        assert_eq!(scroll(a), scroll(b), "scroll, filter {fi}");
        // order_by from the sorted values of the integer, float and datetime indexes in `a`.
        for key in ["n", "x", "ts"].into_iter().filter(|_| b_indexed) {
            for direction in ["asc", "desc"] {
                let body = json!({"filter": f, "limit": 25, "order_by": {"key": key, "direction": direction}});
                // Both answer alike, or both refuse alike (a key whose index was dropped).
                let ordered = |c: &str| {
                    let (st, v) = s.call("POST", &format!("/collections/{c}/points/scroll"), Some(&body));
                    (st, v["result"]["points"].clone(), v["status"]["error"].clone())
                };
                assert_eq!(ordered(a), ordered(b), "order_by {key} {direction}, filter {fi}");
            }
        }
        // Facets: from the payload indexes in `a` where they hold every value, and in `b` from its
        // appendable segment's indexes and the payloads of slots they do not hold yet.
        for key in ["cat", "flag", "n"].into_iter().filter(|_| b_indexed) {
            let body = json!({"key": key, "filter": f, "limit": 50});
            let facet = |c: &str| {
                let (st, v) = s.call("POST", &format!("/collections/{c}/facet"), Some(&body));
                (st, v["result"]["hits"].clone(), v["status"]["error"].clone())
            };
            assert_eq!(facet(a), facet(b), "facet {key}, filter {fi}");
        }
        for q in 0..3u64 {
            let body = json!({"query": vector(50_000 + q, DIM), "filter": f, "limit": 10, "params": {"exact": true}});
            let search = |c: &str| ids(&s.ok("POST", &format!("/collections/{c}/points/query"), Some(&body))["points"]);
            assert_eq!(search(a), search(b), "exact search, filter {fi}");
            let approx = json!({"query": vector(60_000 + q, DIM), "filter": f, "limit": 10, "with_payload": true});
            let hits = s.ok("POST", &format!("/collections/{a}/points/query"), Some(&approx))["points"].clone();
            let allowed: Vec<Value> =
                ids(&s.ok("POST", &format!("/collections/{b}/points/scroll"), Some(&json!({"filter": f, "limit": N})))
                    ["points"]);
            for h in hits.as_array().expect("hits") {
                assert!(allowed.contains(&h["id"]), "graph search returned a point outside filter {fi}: {h}");
            }
        }
    }
}

fn payload_indexes(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, backend);
    let config = json!({"vectors": {"size": DIM, "distance": "Cosine"},
                        "optimizers_config": {"indexing_threshold": 20}, "hnsw_config": {"m": 8, "ef_construct": 32}});
    create_collection(&s, "ix", config.clone());
    let mut unsealed = config;
    unsealed["optimizers_config"]["indexing_threshold"] = json!(0);
    create_collection(&s, "plain", unsealed.clone());
    create_collection(&s, "bare", unsealed);
    // Facets and order_by need an index, as in Qdrant.
    let (st, body) = s.call("POST", "/collections/plain/facet", Some(&json!({"key": "cat"})));
    assert_eq!(st, 400, "{body}");
    assert!(body["status"]["error"].as_str().is_some_and(|e| e.contains("No appropriate index for faceting: `cat`")));
    let (st, body) =
        s.call("POST", "/collections/plain/points/scroll", Some(&json!({"order_by": {"key": "x"}, "limit": 3})));
    assert_eq!(st, 400, "{body}");
    assert!(body["status"]["error"].as_str().is_some_and(|e| e.contains("No range index for `order_by` key: `x`")));
    for (field, schema) in [("cat", "keyword"), ("n", "integer"), ("flag", "bool"), ("ts", "datetime"), ("loc", "geo")]
    {
        for c in ["ix", "plain"] {
            s.ok(
                "PUT",
                &format!("/collections/{c}/index?wait=true"),
                Some(&json!({"field_name": field, "field_schema": schema})),
            );
        }
    }
    s.ok("PUT", "/collections/plain/index?wait=true", Some(&json!({"field_name": "x", "field_schema": "float"})));
    for batch in 0..(N / 500) {
        let points: Vec<Value> = (batch * 500..(batch + 1) * 500)
            .map(|i| json!({"id": i, "vector": vector(i, DIM), "payload": payload(i)}))
            .collect();
        for c in ["ix", "plain", "bare"] {
            s.ok("PUT", &format!("/collections/{c}/points?wait=true"), Some(&json!({ "points": points })));
        }
    }
    // Some points deleted and some moved after sealing (rewritten in `plain`'s indexed slots).
    for c in ["ix", "plain", "bare"] {
        if c == "ix" {
            wait_indexed(&s, c); // `plain` never seals
        }
        s.ok("POST", &format!("/collections/{c}/points/delete?wait=true"), Some(&json!({"points": [3, 13, 23, 1000]})));
        s.ok(
            "PUT",
            &format!("/collections/{c}/points/payload?wait=true"),
            Some(&json!({"payload": {"cat": "c3"}, "points": [5, 6]})),
        );
    }
    // An index created on existing sealed segments: the optimizer builds it.
    s.ok("PUT", "/collections/ix/index?wait=true", Some(&json!({"field_name": "x", "field_schema": "float"})));
    wait_payload_index_built(&s, "ix");
    // The appendable segment of `plain` holds its indexes (`bare` has none to hold).
    let index_bytes = |c: &str| -> u64 {
        let info = s.ok("GET", &format!("/collections/{c}"), None);
        info["shards"].as_array().expect("shards").iter().filter_map(|sh| sh["ram_index_bytes"].as_u64()).sum()
    };
    assert!(index_bytes("plain") > 0);
    assert_eq!(index_bytes("bare"), 0);
    same_answers(&s, "ix", "plain", true);
    same_answers(&s, "plain", "bare", false);
    drop(s);

    // Restart: the indexes load with the segments; nothing is rebuilt.
    let s = Server::start(&storage, backend);
    std::thread::sleep(Duration::from_millis(700));
    let opt = s.ok("GET", "/collections/ix/optimizations", None);
    assert!(opt["completed"].as_array().expect("completed").is_empty(), "nothing rebuilt after restart: {opt}");
    same_answers(&s, "ix", "plain", true);
    same_answers(&s, "plain", "bare", false);

    // Dropping an index rebuilds the segments' payload indexes without it; answers stay.
    for c in ["ix", "plain"] {
        s.ok("DELETE", &format!("/collections/{c}/index/cat?wait=true"), None);
    }
    std::thread::sleep(Duration::from_millis(300));
    wait_indexed(&s, "ix");
    same_answers(&s, "ix", "plain", true);
    same_answers(&s, "plain", "bare", false);
}

#[test]
fn payload_indexes_sqlite() {
    payload_indexes(BACKENDS[0]);
}

#[test]
fn payload_indexes_rocksdb() {
    payload_indexes(BACKENDS[1]);
}
