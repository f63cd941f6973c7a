//! Input that once bricked a collection or bypassed a check: answered with a 4xx, nothing
//! written, and the collection still serving after a restart. Both backends.

use serde_json::{json, Value};

use crate::common::{create_collection, Server, BACKENDS};

fn points(s: &Server) -> usize {
    s.ok("POST", "/collections/l/points/count", Some(&json!({"exact": true})))["count"].as_u64().expect("count")
        as usize
}

/// The error message of an answer.
fn error(body: &Value) -> &str {
    body["status"]["error"].as_str().unwrap_or_default()
}

fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!({ "n": v });
    }
    v
}

fn bad_input_is_refused_and_harmless(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("storage");
    let mut s = Server::start(&storage, backend);
    create_collection(&s, "l", json!({"vectors": {"size": 2, "distance": "Dot"}}));
    s.ok(
        "PUT",
        "/collections/l/points?wait=true",
        Some(
            &json!({"points": [{"id": 1, "vector": [1.0, 0.0], "payload": {"a": 1}}, {"id": 2, "vector": [0.0, 1.0]}]}),
        ),
    );

    // A JSON body sent as text/plain (what any web page may POST cross-site): 415, nothing deleted.
    let r = s
        .client
        .post(s.url("/collections/l/points/delete?wait=true"))
        .header("content-type", "text/plain")
        .body(r#"{"filter": {}}"#)
        .send()
        .expect("send");
    assert_eq!(r.status().as_u16(), 415);
    assert_eq!(points(&s), 2);

    // Key paths of 130 and 20,000 parts: 400, nothing written, no crash.
    for parts in [130, 20_000] {
        let key = vec!["k"; parts].join(".");
        let (status, body) = s.call(
            "POST",
            "/collections/l/points/payload?wait=true",
            Some(&json!({"payload": {"x": 1}, "points": [1], "key": key})),
        );
        assert_eq!(status, 400, "{parts} parts: {body}");
        let shown: String = key.chars().take(64).collect();
        assert_eq!(
            error(&body),
            format!(
                "Bad request: key: Invalid JSON path `{shown}… ({} characters)`: a key path may have at most 32 parts",
                key.len()
            )
        );
    }
    // A payload nested beyond 64 levels, directly or through a key path: 400.
    let (status, body) = s.call(
        "PUT",
        "/collections/l/points?wait=true",
        Some(&json!({"points": [{"id": 3, "vector": [1.0, 1.0], "payload": {"deep": nested(70)}}]})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(error(&body), "Bad request: payload of point 3 would nest 71 levels deep; at most 64 are allowed");
    let key = vec!["k"; 30].join(".");
    let (status, body) = s.call(
        "POST",
        "/collections/l/points/payload?wait=true",
        Some(&json!({"payload": {"deep": nested(40)}, "points": [1], "key": key})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(error(&body), "Bad request: payload of point 1 would nest 71 levels deep; at most 64 are allowed");
    // Within the limits it works.
    let key = ["k"; 10].join(".");
    s.ok(
        "POST",
        "/collections/l/points/payload?wait=true",
        Some(&json!({"payload": {"x": 1}, "points": [1], "key": key})),
    );

    // After a restart the collection is green and every point reads back.
    assert_eq!(s.terminate(), Some(0));
    let s = Server::start(&storage, backend);
    let info = s.ok("GET", "/collections/l", None);
    assert_eq!(info["status"], "green", "{info}");
    assert_eq!(points(&s), 2);
    let p = s.ok("GET", "/collections/l/points/1", None);
    assert_eq!(p["payload"]["a"], 1);
    assert_eq!(p["payload"]["k"]["k"]["k"]["k"]["k"]["k"]["k"]["k"]["k"]["k"]["x"], 1);
}

#[test]
fn bad_input_sqlite() {
    bad_input_is_refused_and_harmless(BACKENDS[0]);
}

#[test]
fn bad_input_rocksdb() {
    bad_input_is_refused_and_harmless(BACKENDS[1]);
}

/// 5,000 idle connections (opened and never used) do not stop reads or writes, and the server
/// keeps its file descriptors for storage.
#[test]
fn idle_connections_do_not_stop_service() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("storage"), "rocksdb");
    create_collection(&s, "l", json!({"vectors": {"size": 2, "distance": "Dot"}}));
    let idle: Vec<std::net::TcpStream> =
        (0..5_000).filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", s.port)).ok()).collect();
    assert!(idle.len() >= 4_000, "only {} connections opened", idle.len());
    for i in 0..20u64 {
        s.ok(
            "PUT",
            "/collections/l/points?wait=true",
            Some(&json!({"points": [{"id": i, "vector": [1.0, i as f64]}]})),
        );
    }
    assert_eq!(points(&s), 20);
    drop(idle);
    s.ok("PUT", "/collections/l/points?wait=true", Some(&json!({"points": [{"id": 99, "vector": [1.0, 1.0]}]})));
    assert_eq!(points(&s), 21);
    assert_eq!(s.ok("GET", "/collections/l", None)["status"], "green");
}

/// Sizes over the caps of `qd_core::limits`: a 400 naming the cap, and the server serving on.
#[test]
fn sizes_over_the_caps_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("storage"), "sqlite");
    let (status, body) = s.call(
        "PUT",
        "/collections/many",
        Some(&json!({"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 1000})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(error(&body), "Bad request: shard_number: 1000 is out of range, expected 1 to 64");
    create_collection(&s, "l", json!({"vectors": {"size": 2, "distance": "Dot"}}));
    s.ok("PUT", "/collections/l/points?wait=true", Some(&json!({"points": [{"id": 1, "vector": [1.0, 0.0]}]})));
    let q = json!({"vector": [1.0, 0.0], "limit": 1});
    let cases = [
        (
            "/collections/l/points/search/batch",
            json!({"searches": vec![q.clone(); 2000]}),
            "Bad request: searches: 2000 is over the limit of 1024",
        ),
        (
            "/collections/l/points/query",
            json!({"query": [1.0, 0.0], "limit": 10_000_000_000u64}),
            "Bad request: limit: 10000000000 is over the limit of 1000000",
        ),
        (
            "/collections/l/points/query",
            json!({"prefetch": vec![json!({"query": [1.0, 0.0]}); 100], "query": {"fusion": "rrf"}}),
            "Bad request: prefetch: 100 is over the limit of 64",
        ),
        (
            "/collections/l/points/count",
            json!({"filter": {"must": [{"has_id": (0..200_000u64).collect::<Vec<_>>()}]}}),
            "Format error in JSON body: filter: filter.must[0]: has_id: 200000 is over the limit of 100000",
        ),
        (
            "/collections/l/points/scroll",
            json!({"filter": {"must": [{"key": "t", "match": {"text": "word ".repeat(2000)}}]}}),
            "Format error in JSON body: filter: filter.must[0]: text length: 10000 is over the limit of 4096",
        ),
    ];
    for (path, body, expected) in cases {
        let (status, answer) = s.call("POST", path, Some(&body));
        assert_eq!(status, 400, "{path}: {answer}");
        // Body format errors end with where the parser stood (" at line 1 column N").
        let msg = error(&answer);
        let msg = if msg.starts_with("Format error") { msg.rsplit_once(" at line ").map_or(msg, |m| m.0) } else { msg };
        assert_eq!(msg, expected, "{path}");
    }
    assert_eq!(points(&s), 1);
}
