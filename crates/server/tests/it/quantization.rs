//! Scalar int8 quantization: config validation, quantized search with rescoring against exact
//! results, PATCH enabling/disabling it, and quantized vectors reloaded (not rebuilt) after a
//! restart. Both backends.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{create_collection, shard_sum_of, vector, wait_indexed, Server, BACKENDS};

fn ids(hits: &Value) -> Vec<u64> {
    let list = hits.get("points").unwrap_or(hits);
    list.as_array().expect("hits").iter().map(|h| h["id"].as_u64().expect("id")).collect()
}

fn completed(s: &Server, name: &str) -> Vec<String> {
    let opt = s.ok("GET", &format!("/collections/{name}/optimizations"), None);
    opt["completed"]
        .as_array()
        .expect("completed")
        .iter()
        .map(|o| o["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Recall@10 of searches with `quantization` params against exact search, over 20 queries.
fn recall(s: &Server, dim: usize, quantization: Value, via_query: bool) -> f64 {
    let mut overlap = 0;
    for q in 0..20u64 {
        let v = vector(50_000 + q, dim);
        let exact = ids(&s.ok(
            "POST",
            "/collections/q/points/search",
            Some(&json!({"vector": v, "limit": 10, "params": {"exact": true}})),
        ));
        let params = json!({"hnsw_ef": 128, "quantization": quantization});
        let got = if via_query {
            ids(&s.ok("POST", "/collections/q/points/query", Some(&json!({"query": v, "limit": 10, "params": params}))))
        } else {
            ids(&s.ok(
                "POST",
                "/collections/q/points/search",
                Some(&json!({"vector": v, "limit": 10, "params": params})),
            ))
        };
        assert_eq!(got.len(), 10);
        overlap += got.iter().filter(|i| exact.contains(i)).count();
    }
    overlap as f64 / 200.0
}

fn quantized_search(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, backend);
    let dim = 16;

    // Unsupported kinds and bad values are rejected with 400.
    for bad in [
        json!({"binary": {"encoding": "two_bits"}}),
        json!({"binary": {"query_encoding": "scalar4bits"}}),
        json!({"product": {"compression": "x16"}}),
        json!({"scalar": {"type": "int8", "quantile": 0.3}}),
        json!({"scalar": {"type": "int4"}}),
        json!({"scalar": {"type": "int8"}, "binary": {}}),
    ] {
        let (code, body) = s.call(
            "PUT",
            "/collections/bad",
            Some(&json!({"vectors": {"size": 4, "distance": "Dot"}, "quantization_config": bad})),
        );
        // A quantile out of its range is Qdrant's 422 validation error; the rest are 400.
        let expected = if bad["scalar"]["quantile"].is_number() { 422 } else { 400 };
        assert_eq!(code, expected, "{bad} -> {body}");
    }

    create_collection(
        &s,
        "q",
        json!({"vectors": {"size": dim, "distance": "Euclid"}, "shard_number": 2,
               "optimizers_config": {"indexing_threshold": 20}, "hnsw_config": {"m": 8, "ef_construct": 64},
               "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": true}}}),
    );
    let cfg = s.ok("GET", "/collections/q", None);
    assert_eq!(
        cfg["config"]["quantization_config"],
        json!({"scalar": {"type": "int8", "quantile": 0.99, "always_ram": true}}),
        "{cfg}"
    );
    for batch in 0..4u64 {
        let points: Vec<Value> =
            (batch * 500..(batch + 1) * 500).map(|i| json!({"id": i, "vector": vector(i, dim)})).collect();
        s.ok("PUT", "/collections/q/points?wait=true", Some(&json!({ "points": points })));
    }
    wait_indexed(&s, "q");

    let r = recall(&s, dim, json!({"rescore": true, "oversampling": 2.0}), false);
    assert!(r >= 0.9, "quantized recall@10 with rescoring {r}");
    let r = recall(&s, dim, json!({"rescore": true, "oversampling": 2.0}), true);
    assert!(r >= 0.9, "quantized recall@10 with rescoring via /points/query {r}");
    let r = recall(&s, dim, json!({"ignore": true}), false);
    assert!(r >= 0.9, "recall@10 ignoring quantization {r}");
    let r = recall(&s, dim, json!({"rescore": false}), false);
    assert!(r >= 0.6, "recall@10 without rescoring {r}");

    // Rescored scores are exact distances: the top hit of a stored vector is itself at 0.
    let hit = s.ok(
        "POST",
        "/collections/q/points/search",
        Some(&json!({"vector": vector(7, dim), "limit": 1, "params": {"quantization": {"rescore": true}}})),
    );
    assert_eq!(hit[0]["id"], 7);
    assert!(hit[0]["score"].as_f64().expect("score").abs() < 1e-4, "{hit}");

    let (code, body) = s.call(
        "POST",
        "/collections/q/points/search",
        Some(&json!({"vector": vector(1, dim), "limit": 3, "params": {"quantization": {"oversampling": 0.5}}})),
    );
    // Below its minimum: Qdrant's 422 validation error, naming the field.
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["status"]["error"],
        "Validation error in JSON body: [params.quantization.oversampling: value 0.5 invalid, must be 1.0 or larger]"
    );
    let (code, body) = s.call(
        "POST",
        "/collections/q/points/query",
        Some(&json!({"query": vector(1, dim), "limit": 3, "params": {"quantization": {"oversampling": 0.5}}})),
    );
    assert_eq!(code, 422, "{body}");

    // Disabling drops the quantized vectors, enabling again (per vector) rebuilds them; the
    // graphs are kept.
    s.ok("PATCH", "/collections/q", Some(&json!({"quantization_config": "Disabled"})));
    assert_eq!(s.ok("GET", "/collections/q", None)["config"]["quantization_config"], Value::Null);
    wait_indexed(&s, "q");
    s.ok(
        "PATCH",
        "/collections/q",
        Some(&json!({"vectors": {"": {"quantization_config": {"scalar": {"type": "int8"}}}}})),
    );
    let (code, body) =
        s.call("PATCH", "/collections/q", Some(&json!({"quantization_config": {"product": {"compression": "x4"}}})));
    assert_eq!(code, 400, "{body}");
    wait_indexed(&s, "q");
    let done = completed(&s, "q");
    assert!(done.iter().filter(|n| n.ends_with("quantization")).count() >= 4, "{done:?}");
    let r = recall(&s, dim, json!({"rescore": true, "oversampling": 2.0}), false);
    assert!(r >= 0.9, "recall@10 after re-enabling {r}");
    drop(s);

    // Restart: quantized vectors load with the graphs; nothing is rebuilt.
    let s = Server::start(&storage, backend);
    let info = s.ok("GET", "/collections/q", None);
    assert_eq!(info["points_count"], 2000);
    assert_eq!(info["config"]["params"]["vectors"]["quantization_config"], json!({"scalar": {"type": "int8"}}));
    std::thread::sleep(Duration::from_millis(700));
    assert!(completed(&s, "q").is_empty(), "nothing rebuilt after restart");
    assert_eq!(s.ok("GET", "/collections/q", None)["status"], "green");
    let r = recall(&s, dim, json!({"rescore": true, "oversampling": 2.0}), false);
    assert!(r >= 0.9, "recall@10 after restart {r}");
}

#[test]
fn quantization_sqlite() {
    quantized_search(BACKENDS[0]);
}

#[test]
fn quantization_rocksdb() {
    quantized_search(BACKENDS[1]);
}

/// Centred clustered vectors: 100 clusters, members close to their centre, so that sign bits
/// carry the neighbourhood (the data binary quantization is meant for).
fn clustered(i: u64, dim: usize) -> Vec<f32> {
    let centre = vector(1_000_000 + i % 100, dim);
    let noise = vector(i, dim);
    centre.iter().zip(noise).map(|(c, n)| c + 0.15 * n).collect()
}

fn binary_search(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, backend);
    let dim = 128;
    let bq = json!({"binary": {"always_ram": true}});
    create_collection(
        &s,
        "b",
        json!({"vectors": {"size": dim, "distance": "Cosine"}, "shard_number": 2,
               "optimizers_config": {"indexing_threshold": 100}, "quantization_config": bq}),
    );
    assert_eq!(s.ok("GET", "/collections/b", None)["config"]["quantization_config"], bq);
    for batch in 0..4u64 {
        let points: Vec<Value> =
            (batch * 500..(batch + 1) * 500).map(|i| json!({"id": i, "vector": clustered(i, dim)})).collect();
        s.ok("PUT", "/collections/b/points?wait=true", Some(&json!({ "points": points })));
    }
    wait_indexed(&s, "b");
    let ram_index: u64 = {
        let t = s.ok("GET", "/telemetry?details_level=2", None);
        let c = &t["collections"]["collections"][0];
        c["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .map(|sh| sh["local"]["ram_index_bytes"].as_u64().unwrap_or(0))
            .sum()
    };
    assert!(ram_index > 0);
    let recall = |quantization: Value| {
        let mut overlap = 0;
        for q in 0..20u64 {
            let v = clustered(70_000 + q * 7, dim);
            let exact = ids(&s.ok(
                "POST",
                "/collections/b/points/search",
                Some(&json!({"vector": v, "limit": 10, "params": {"exact": true}})),
            ));
            let params = json!({"hnsw_ef": 128, "quantization": quantization});
            let got = ids(&s.ok(
                "POST",
                "/collections/b/points/search",
                Some(&json!({"vector": v, "limit": 10, "params": params})),
            ));
            overlap += got.iter().filter(|i| exact.contains(i)).count();
        }
        overlap as f64 / 200.0
    };
    let r = recall(json!({"rescore": true, "oversampling": 3.0}));
    assert!(r >= 0.9, "binary recall@10 with oversampling 3 and rescoring {r}");
    // Without rescoring, scores are the fraction of agreeing signs (in [-1, 1]).
    let hit = s.ok(
        "POST",
        "/collections/b/points/search",
        Some(&json!({"vector": clustered(7, dim), "limit": 1, "params": {"quantization": {"rescore": false}}})),
    );
    let score = hit[0]["score"].as_f64().expect("score");
    assert!((-1.0..=1.0).contains(&score), "{hit}");
    // Rescored: exact cosine, a stored vector finds itself.
    let hit = s.ok("POST", "/collections/b/points/search", Some(&json!({"vector": clustered(7, dim), "limit": 1})));
    assert_eq!(hit[0]["id"], 7);
    assert!((hit[0]["score"].as_f64().expect("score") - 1.0).abs() < 1e-4, "{hit}");
    drop(s);

    // Restart: the bits load with the graphs, nothing is rebuilt; switching to scalar
    // re-quantizes in the background and keeps answering.
    let s = Server::start(&storage, backend);
    std::thread::sleep(Duration::from_millis(700));
    assert!(completed(&s, "b").is_empty(), "nothing rebuilt after restart");
    s.ok("PATCH", "/collections/b", Some(&json!({"quantization_config": {"scalar": {"type": "int8"}}})));
    wait_indexed(&s, "b");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while completed(&s, "b").iter().filter(|n| n.ends_with("quantization")).count() < 2 {
        assert!(std::time::Instant::now() < deadline, "scalar re-quantization never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    let hit = s.ok("POST", "/collections/b/points/search", Some(&json!({"vector": clustered(7, dim), "limit": 1})));
    assert_eq!(hit[0]["id"], 7);
}

#[test]
fn binary_quantization_sqlite() {
    binary_search(BACKENDS[0]);
}

#[test]
fn binary_quantization_rocksdb() {
    binary_search(BACKENDS[1]);
}

/// Rows of point `i`'s multivector: 2 to 4 rows near one of 20 centres.
fn multi_rows(i: u64, dim: usize) -> Vec<Vec<f32>> {
    (0..2 + i % 3).map(|r| clustered(i * 4 + r, dim)).collect()
}

fn multivector_quantization(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, backend);
    let dim = 32;
    // `q` quantizes its multivector rows, `p` keeps them plain; same data.
    for (name, quantization) in [("q", json!({"scalar": {"type": "int8", "always_ram": true}})), ("p", Value::Null)] {
        let mut body = json!({"vectors": {"colbert": {"size": dim, "distance": "Cosine",
                                                      "multivector_config": {"comparator": "max_sim"}}},
                              "shard_number": 2, "optimizers_config": {"indexing_threshold": 100}});
        if !quantization.is_null() {
            body["quantization_config"] = quantization;
        }
        create_collection(&s, name, body);
        for batch in 0..4u64 {
            let points: Vec<Value> = (batch * 400..(batch + 1) * 400)
                .map(|i| json!({"id": i, "vector": {"colbert": multi_rows(i, dim)}}))
                .collect();
            s.ok("PUT", &format!("/collections/{name}/points?wait=true"), Some(&json!({ "points": points })));
        }
        wait_indexed(&s, name);
    }
    let (rq, rp) = (shard_sum_of(&s, "q", "ram_index_bytes"), shard_sum_of(&s, "p", "ram_index_bytes"));
    // One byte per component of ~4,800 rows of 32, plus a correction term and the row groups.
    assert!(rq >= rp + 4800 * dim as u64, "quantized rows in RAM: {rq} B against {rp} B without");
    let query = |c: &str, q: &Value, params: Value| {
        s.ok(
            "POST",
            &format!("/collections/{c}/points/query"),
            Some(&json!({"query": q, "using": "colbert",
                                                                           "limit": 10, "params": params})),
        )
    };
    let answers = |c: &str| -> Vec<Value> {
        (0..20u64).map(|q| query(c, &json!(multi_rows(60_000 + q * 3, dim)), json!({"hnsw_ef": 128}))).collect()
    };
    let (mut overlap, want) = (0, answers("q"));
    for (q, got) in want.iter().enumerate() {
        let exact = query("p", &json!(multi_rows(60_000 + q as u64 * 3, dim)), json!({"exact": true}));
        let exact_ids = ids(&exact);
        overlap += ids(got).iter().filter(|i| exact_ids.contains(i)).count();
        // Rescored hits carry the exact max-sim score.
        for h in got["points"].as_array().expect("points") {
            if let Some(e) = exact["points"].as_array().expect("points").iter().find(|e| e["id"] == h["id"]) {
                assert!((h["score"].as_f64().expect("s") - e["score"].as_f64().expect("e")).abs() < 1e-4);
            }
        }
    }
    assert!(overlap >= 180, "recall@10 of quantized max-sim with rescoring: {overlap}/200");
    // Without rescoring the scores come from the codes: close to, but not, the exact ones.
    let own = json!(multi_rows(77, dim));
    let approx = query("q", &own, json!({"quantization": {"rescore": false}}));
    let exact = query("p", &own, json!({"exact": true}));
    let (a, e) = (approx["points"][0]["score"].as_f64().expect("a"), exact["points"][0]["score"].as_f64().expect("e"));
    assert_eq!(exact["points"][0]["id"], 77);
    assert!(a != e && (a - e).abs() < 0.05 * e.abs(), "quantized {a} against exact {e}");
    drop(s);

    // Restart: the codes load with the graphs (nothing rebuilt) and answer the same.
    let s = Server::start(&storage, backend);
    std::thread::sleep(Duration::from_millis(700));
    assert!(completed(&s, "q").is_empty(), "nothing rebuilt after restart");
    let again: Vec<Value> = (0..20u64)
        .map(|q| {
            let body = json!({"query": multi_rows(60_000 + q * 3, dim), "using": "colbert", "limit": 10,
                              "params": {"hnsw_ef": 128}});
            s.ok("POST", "/collections/q/points/query", Some(&body))
        })
        .collect();
    assert_eq!(again.iter().map(ids).collect::<Vec<_>>(), want.iter().map(ids).collect::<Vec<_>>());
    // Binary codes for the rows after a PATCH; a stored multivector still finds itself.
    s.ok("PATCH", "/collections/q", Some(&json!({"quantization_config": {"binary": {}}})));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while completed(&s, "q").iter().filter(|n| n.ends_with("quantization")).count() < 2 {
        assert!(std::time::Instant::now() < deadline, "binary re-quantization never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    let body = json!({"query": own, "using": "colbert", "limit": 1, "params": {"quantization": {"oversampling": 4.0}}});
    assert_eq!(s.ok("POST", "/collections/q/points/query", Some(&body))["points"][0]["id"], 77);
}

#[test]
fn multivector_quantization_sqlite() {
    multivector_quantization(BACKENDS[0]);
}

#[test]
fn multivector_quantization_rocksdb() {
    multivector_quantization(BACKENDS[1]);
}
