//! REST behaviour against the real server, on both backends.

use serde_json::{json, Value};

use crate::common::{create_collection, Server, BACKENDS};

fn basic_crud_and_errors(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("s"), backend);
    let root = s.client.get(s.url("/")).send().expect("root").json::<Value>().expect("json");
    assert_eq!(root["version"], "1.19.0", "the Qdrant API version, which clients compare with theirs");
    assert!(root["title"].as_str().is_some_and(|t| t.contains("independent")), "{root}");
    assert!(root["build"]["version"].is_string() && root["build"]["commit"].is_string(), "{root}");

    create_collection(&s, "c", json!({"vectors": {"size": 3, "distance": "Cosine"}}));
    let (st, body) = s.call("PUT", "/collections/c", Some(&json!({"vectors": {"size": 3, "distance": "Cosine"}})));
    assert_eq!(st, 409, "{body}");
    assert!(body["status"]["error"].as_str().expect("msg").contains("already exists"));
    assert_eq!(s.ok("GET", "/collections", None)["collections"], json!([{"name": "c"}]));
    assert_eq!(s.ok("GET", "/collections/c/exists", None)["exists"], json!(true));

    // Both upsert forms, numeric and UUID ids.
    let uuid = "550e8400-e29b-41d4-a716-446655440000";
    let r = s.ok(
        "PUT",
        "/collections/c/points?wait=true",
        Some(&json!({"points": [
            {"id": 1, "vector": [1.0, 0.0, 0.0], "payload": {"city": "Berlin", "n": 1}},
            {"id": uuid, "vector": [0.0, 1.0, 0.0], "payload": {"city": "London"}}
        ]})),
    );
    assert_eq!(r["status"], "completed");
    s.ok(
        "PUT",
        "/collections/c/points?wait=true",
        Some(&json!({"batch": {"ids": [2, 3], "vectors": [[0.0, 0.0, 2.0], [1.0, 1.0, 0.0]], "payloads": [{"city": "Paris"}, null]}})),
    );
    let got = s.ok("POST", "/collections/c/points", Some(&json!({"ids": [3, uuid, 99, 1]})));
    let ids: Vec<Value> = got.as_array().expect("list").iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, vec![json!(3), json!(uuid), json!(1)], "order of request, unknown skipped");
    assert_eq!(got[1]["payload"], json!({"city": "London"}));
    assert!(got[0]["vector"].is_null(), "retrieve has no vectors unless asked");

    let one = s.ok("GET", "/collections/c/points/2", None);
    assert_eq!(one["vector"], json!([0.0, 0.0, 1.0]), "cosine vectors are stored normalised");
    let (st, _) = s.call("GET", "/collections/c/points/12345", None);
    assert_eq!(st, 404);
    let (st, _) = s.call("GET", "/collections/c/points/not-an-id", None);
    assert_eq!(st, 400);

    let hits = s.ok(
        "POST",
        "/collections/c/points/search",
        Some(&json!({"vector": [1.0, 0.1, 0.0], "limit": 2, "with_payload": true})),
    );
    assert_eq!(hits[0]["id"], json!(1));
    assert_eq!(hits[0]["payload"]["city"], "Berlin");
    assert_eq!(hits.as_array().expect("hits").len(), 2);

    // Bad input: a 4xx naming the problem, nothing stored.
    let bad: Vec<(Value, &str)> = vec![
        (json!({"points": [{"id": 10, "vector": [1.0, 2.0]}]}), "dimension"),
        (json!({"points": [{"id": -5, "vector": [1.0, 2.0, 3.0]}]}), "negative"),
        (json!({"points": [{"id": "nope", "vector": [1.0, 2.0, 3.0]}]}), "UUID"),
        (json!({"points": [{"id": 10, "vector": [1.0, 2.0, 3.0], "payload": [1]}]}), "payload"),
        (json!({"points": [{"id": 10, "vector": [1.0, 2.0, 3.0]}, {"id": 11, "vector": [1.0]}]}), "dimension"),
        (json!({"points": [{"id": 10, "vector": {"nope": [1.0, 2.0, 3.0]}}]}), "nope"),
        (json!({"points": [{"id": 10, "vector": [1.0, 2.0, 3.0], "extra": 1}]}), "extra"),
        (json!({"batch": {"ids": [10, 11], "vectors": [[1.0, 2.0, 3.0]]}}), "vectors"),
    ];
    for (body, needle) in bad {
        let (st, resp) = s.call("PUT", "/collections/c/points?wait=true", Some(&body));
        assert_eq!(st, 400, "{body} -> {resp}");
        let msg = resp["status"]["error"].as_str().expect("error message");
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
    let malformed = s
        .client
        .put(s.url("/collections/c/points"))
        .body("{\"points\": [")
        .header("content-type", "application/json")
        .send()
        .expect("send");
    assert_eq!(malformed.status().as_u16(), 400);
    assert_eq!(
        s.ok("POST", "/collections/c/points/count", Some(&json!({})))["count"],
        json!(4),
        "rejected batches stored nothing"
    );
    let (st, _) = s.call("PUT", "/collections/missing/points", Some(&json!({"points": []})));
    assert_eq!(st, 404);

    // Delete by id and by filter.
    s.ok("POST", "/collections/c/points/delete?wait=true", Some(&json!({"points": [3]})));
    s.ok(
        "POST",
        "/collections/c/points/delete?wait=true",
        Some(&json!({"filter": {"must": [{"key": "city", "match": {"value": "Paris"}}]}})),
    );
    let page = s.ok("POST", "/collections/c/points/scroll", Some(&json!({"limit": 10})));
    let ids: Vec<Value> = page["points"].as_array().expect("pts").iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, vec![json!(1), json!(uuid)], "numeric ids sort before UUIDs");

    assert_eq!(s.ok("DELETE", "/collections/c", None), json!(true));
    let (st, _) = s.call("GET", "/collections/c", None);
    assert_eq!(st, 404);
}

#[test]
fn crud_sqlite() {
    basic_crud_and_errors(BACKENDS[0]);
}

#[test]
fn crud_rocksdb() {
    basic_crud_and_errors(BACKENDS[1]);
}

#[test]
fn api_key_guards_everything_but_health() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start_with(
        &dir.path().join("s"),
        "sqlite",
        &[("QDRANT__SERVICE__API_KEY", "secret"), ("QDRANT__SERVICE__READ_ONLY_API_KEY", "reader")],
    );
    let (st, body) = s.call("GET", "/collections", None);
    assert_eq!(st, 401, "{body}");
    let get = |key: &str, path: &str| {
        s.client.get(s.url(path)).header("api-key", key).send().expect("send").status().as_u16()
    };
    assert_eq!(get("wrong", "/collections"), 401);
    assert_eq!(get("secret", "/collections"), 200);
    assert_eq!(get("reader", "/collections"), 200);
    let bearer = s.client.get(s.url("/collections")).bearer_auth("secret").send().expect("send");
    assert_eq!(bearer.status().as_u16(), 200);
    let create = |key: &str| {
        s.client
            .put(s.url("/collections/x"))
            .header("api-key", key)
            .json(&json!({"vectors": {"size": 2, "distance": "Dot"}}))
            .send()
            .expect("send")
            .status()
            .as_u16()
    };
    assert_eq!(create("reader"), 403);
    assert_eq!(create("secret"), 200);
    assert_eq!(s.call("GET", "/readyz", None).0, 200, "probes need no key");
}

/// A browser's preflight for a PUT with an API key header.
fn preflight(s: &Server, path: &str) -> reqwest::blocking::Response {
    s.client
        .request(reqwest::Method::OPTIONS, s.url(path))
        .header("origin", "http://app.example")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "api-key, content-type")
        .send()
        .expect("preflight")
}

fn header<'a>(r: &'a reqwest::blocking::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn cors_on_by_default_and_before_the_api_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start_with(&dir.path().join("s"), "sqlite", &[("QDRANT__SERVICE__API_KEY", "secret")]);
    let r = preflight(&s, "/collections/c");
    assert_eq!(r.status().as_u16(), 200, "a preflight needs no API key");
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&r, "access-control-allow-headers"), Some("api-key, content-type"));
    assert!(header(&r, "access-control-allow-methods").is_some_and(|m| m.contains("PUT")));

    let get = |key: Option<&str>| {
        let mut req = s.client.get(s.url("/collections")).header("origin", "http://app.example");
        if let Some(k) = key {
            req = req.header("api-key", k);
        }
        req.send().expect("get")
    };
    let denied = get(None);
    assert_eq!(denied.status().as_u16(), 401);
    assert_eq!(header(&denied, "access-control-allow-origin"), Some("*"), "the browser may read the 401");
    let allowed = get(Some("secret"));
    assert_eq!(allowed.status().as_u16(), 200);
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some("*"));
}

#[test]
fn cors_off_sends_no_headers() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start_with(&dir.path().join("s"), "sqlite", &[("QDRANT__SERVICE__ENABLE_CORS", "false")]);
    let r = preflight(&s, "/collections/c");
    assert_eq!(r.status().as_u16(), 405, "no preflight handling: OPTIONS is not a route");
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    let r = s.client.get(s.url("/collections")).header("origin", "http://app.example").send().expect("get");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), None);
}
