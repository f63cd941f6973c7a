//! Qdrant's multitenancy set-up: `hnsw_config: {m: 0, payload_m: 16}` with an `is_tenant`
//! keyword index builds no global graph, one graph per tenant large enough to need one.
//! Searches filtered by one tenant or several go through those graphs and keep to the filter
//! with the exact search's answers (recall); unfiltered searches, and filters naming a tenant
//! too small to be linked, scan exactly; the graphs load after a restart without a rebuild. A
//! field indexed after the graphs were built has no graphs of its own: filters on it still
//! find their points in every tenant. Both backends.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{create_collection, vector, wait_indexed, wait_payload_index_built, Server, BACKENDS};

const DIM: usize = 16;
const N: u64 = 3000;

/// Tenants `a` and `b` (1,200 points each), `c` (300) and `d`, `e` (150 each); with a
/// full-scan threshold of 10 KiB (160 points of 16 floats) `d` and `e` get no graph.
fn tenant(i: u64) -> &'static str {
    match i % 20 {
        0..=7 => "a",
        8..=15 => "b",
        16 | 17 => "c",
        18 => "d",
        _ => "e",
    }
}

fn query(s: &Server, filter: Option<&Value>, q: u64, exact: bool) -> Vec<(u64, String)> {
    let mut body = json!({"query": vector(1_000_000 + q, DIM), "limit": 10, "with_payload": true,
                          "params": {"hnsw_ef": 64, "exact": exact}});
    if let Some(f) = filter {
        body["filter"] = f.clone();
    }
    let r = s.ok("POST", "/collections/mt/points/query", Some(&body));
    r["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| (p["id"].as_u64().expect("id"), p["payload"]["group_id"].as_str().expect("tenant").to_string()))
        .collect()
}

/// Every answer of `filters` over 20 queries; asserts each keeps to its tenants and finds at
/// least 90 % of the exact search's points.
fn answers(s: &Server, filters: &[(Value, Vec<&str>)]) -> Vec<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for (filter, tenants) in filters {
        let (mut found, mut total) = (0, 0);
        for q in 0..20 {
            let got = query(s, Some(filter), q, false);
            assert!(got.iter().all(|(_, t)| tenants.contains(&t.as_str())), "{filter}: {got:?}");
            let want: HashSet<u64> = query(s, Some(filter), q, true).into_iter().map(|(id, _)| id).collect();
            found += got.iter().filter(|(id, _)| want.contains(id)).count();
            total += want.len();
            out.push(got);
        }
        assert!(found * 10 >= total * 9, "{filter}: recall {found}/{total}");
    }
    for q in 0..5 {
        let got = query(s, None, q, false);
        assert_eq!(got, query(s, None, q, true), "unfiltered: exact");
        out.push(got);
    }
    out
}

fn tenant_graphs(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, backend);
    create_collection(
        &s,
        "mt",
        json!({"vectors": {"size": DIM, "distance": "Cosine"},
               "hnsw_config": {"m": 0, "payload_m": 16, "ef_construct": 64, "full_scan_threshold": 10},
               "optimizers_config": {"indexing_threshold": 20, "default_segment_number": 1}}),
    );
    s.ok(
        "PUT",
        "/collections/mt/index?wait=true",
        Some(&json!({"field_name": "group_id", "field_schema": {"type": "keyword", "is_tenant": true}})),
    );
    for batch in 0..(N / 500) {
        let points: Vec<Value> = (batch * 500..(batch + 1) * 500)
            .map(|i| {
                let payload = json!({"group_id": tenant(i), "n": i, "cat": format!("c{}", i % 4)});
                json!({"id": i, "vector": vector(i, DIM), "payload": payload})
            })
            .collect();
        s.ok("PUT", "/collections/mt/points?wait=true", Some(&json!({ "points": points })));
    }
    let info = wait_indexed(&s, "mt");
    assert_eq!(info["indexed_vectors_count"], N, "tenant graphs cover every point: {info}");
    let is = |t: &str| json!({"must": [{"key": "group_id", "match": {"value": t}}]});
    let any = |t: &[&str]| json!({"must": [{"key": "group_id", "match": {"any": t}}]});
    let filters = vec![
        (is("a"), vec!["a"]),
        (is("c"), vec!["c"]),
        (any(&["a", "b"]), vec!["a", "b"]),
        (any(&["b", "d"]), vec!["b", "d"]),
        (is("e"), vec!["e"]),
        (
            json!({"must": [{"key": "group_id", "match": {"value": "b"}}, {"key": "n", "range": {"lt": 1500}}]}),
            vec!["b"],
        ),
    ];
    let before = answers(&s, &filters);
    drop(s);

    let s = Server::start(&storage, backend);
    std::thread::sleep(Duration::from_millis(700));
    let opt = s.ok("GET", "/collections/mt/optimizations", None);
    assert!(opt["completed"].as_array().expect("completed").is_empty(), "nothing rebuilt after restart: {opt}");
    assert_eq!(answers(&s, &filters), before, "the same graphs after a restart");

    // `cat` indexed after the build: its values were never linked, though every point has
    // its tenant's links; a filter on it scans exactly and finds points of every tenant.
    s.ok("PUT", "/collections/mt/index?wait=true", Some(&json!({"field_name": "cat", "field_schema": "keyword"})));
    wait_payload_index_built(&s, "mt");
    let cat = json!({"must": [{"key": "cat", "match": {"value": "c1"}}]});
    let mut tenants = HashSet::new();
    for q in 0..20 {
        let got = query(&s, Some(&cat), q, false);
        let want: Vec<u64> = query(&s, Some(&cat), q, true).into_iter().map(|(id, _)| id).collect();
        assert_eq!(got.iter().map(|(id, _)| *id).collect::<Vec<_>>(), want, "exact for an unlinked field");
        tenants.extend(got.into_iter().map(|(_, t)| t));
    }
    assert!(tenants.len() >= 3, "points of several tenants: {tenants:?}");
}

#[test]
fn tenant_graphs_sqlite() {
    tenant_graphs(BACKENDS[0]);
}

#[test]
fn tenant_graphs_rocksdb() {
    tenant_graphs(BACKENDS[1]);
}
