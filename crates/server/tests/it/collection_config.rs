//! Collection config beyond vectors: `metadata` and `strict_mode_config` stored on create,
//! merged by PATCH and kept across a restart; `GET /collections/{name}/shards`. Both backends.

use serde_json::{json, Value};

use crate::common::{create_collection, Server, BACKENDS};

fn error_of(s: &Server, method: &str, path: &str, body: Value) -> String {
    let (st, resp) = s.call(method, path, Some(&body));
    assert_eq!(st, 400, "{method} {path} {body} -> {resp}");
    resp["status"]["error"].as_str().expect("error message").to_string()
}

fn metadata_and_strict_mode_survive_restart(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let mut s = Server::start(&storage, backend);
    create_collection(
        &s,
        "c",
        json!({
            "vectors": {"size": 2, "distance": "Dot"},
            "metadata": {"owner": "me", "model": {"name": "a"}, "drop": true},
            "strict_mode_config": {"enabled": true, "max_query_limit": 10, "sparse_config": {"s": {"max_length": 5}}}
        }),
    );
    create_collection(&s, "plain", json!({"vectors": {"size": 2, "distance": "Dot"}}));
    let plain = s.ok("GET", "/collections/plain", None)["config"].clone();
    assert_eq!(plain["strict_mode_config"], json!({"enabled": false}), "as Qdrant reports it");
    assert!(plain.get("metadata").is_none(), "{plain}");

    s.ok(
        "PATCH",
        "/collections/c",
        Some(&json!({
            "metadata": {"model": {"name": "b"}, "drop": null, "added": [1, 2]},
            "strict_mode_config": {"max_timeout": 5, "enabled": false}
        })),
    );
    s.ok("PATCH", "/collections/plain", Some(&json!({"metadata": {"first": 1}})));

    // Refused whole, with the field named; nothing changes.
    let e = error_of(&s, "PATCH", "/collections/c", json!({"metadata": "x"}));
    assert!(e.contains("metadata") && e.contains("expected a map"), "{e}");
    let e = error_of(&s, "PATCH", "/collections/c", json!({"strict_mode_config": {"max_query_limt": 1}}));
    assert!(e.contains("strict_mode_config.max_query_limt: unknown field"), "{e}");
    // A value out of its range is Qdrant's 422 validation error.
    let (st, resp) = s.call("PATCH", "/collections/c", Some(&json!({"strict_mode_config": {"max_query_limit": 0}})));
    assert_eq!(st, 422, "{resp}");
    assert_eq!(
        resp["status"]["error"],
        "Validation error in JSON body: [strict_mode_config.max_query_limit: value 0 invalid, must be 1 or larger]"
    );
    let e = error_of(&s, "PUT", "/collections/d", json!({"vectors": {"size": 2, "distance": "Dot"}, "metadata": [1]}));
    assert!(e.contains("metadata"), "{e}");
    assert_eq!(s.call("GET", "/collections/d", None).0, 404);

    let expected_metadata = json!({"owner": "me", "model": {"name": "b"}, "added": [1, 2]});
    let expected_strict =
        json!({"enabled": false, "max_query_limit": 10, "max_timeout": 5, "sparse_config": {"s": {"max_length": 5}}});
    let check = |s: &Server| {
        let config = s.ok("GET", "/collections/c", None)["config"].clone();
        assert_eq!(config["metadata"], expected_metadata, "{config}");
        assert_eq!(config["strict_mode_config"], expected_strict, "{config}");
        assert_eq!(s.ok("GET", "/collections/plain", None)["config"]["metadata"], json!({"first": 1}));
    };
    check(&s);
    assert_eq!(s.terminate(), Some(0));
    let s = Server::start(&storage, backend);
    check(&s);
}

#[test]
fn metadata_and_strict_mode_sqlite() {
    metadata_and_strict_mode_survive_restart(BACKENDS[0]);
}

#[test]
fn metadata_and_strict_mode_rocksdb() {
    metadata_and_strict_mode_survive_restart(BACKENDS[1]);
}

fn list_shard_keys(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("s"), backend);
    create_collection(&s, "auto", json!({"vectors": {"size": 2, "distance": "Dot"}}));
    assert_eq!(s.ok("GET", "/collections/auto/shards", None), json!({"shard_keys": null}));
    create_collection(&s, "c", json!({"vectors": {"size": 2, "distance": "Dot"}, "sharding_method": "custom"}));
    assert_eq!(s.ok("GET", "/collections/c/shards", None), json!({"shard_keys": []}));
    s.ok("PUT", "/collections/c/shards", Some(&json!({"shard_key": "eu"})));
    s.ok("PUT", "/collections/c/shards", Some(&json!({"shard_key": 7})));
    let keys = s.ok("GET", "/collections/c/shards", None)["shard_keys"].clone();
    let mut keys: Vec<String> = keys.as_array().expect("list").iter().map(|k| k["key"].to_string()).collect();
    keys.sort();
    assert_eq!(keys, vec!["\"eu\"".to_string(), "7".to_string()]);
    s.ok("POST", "/collections/c/shards/delete", Some(&json!({"shard_key": "eu"})));
    assert_eq!(s.ok("GET", "/collections/c/shards", None), json!({"shard_keys": [{"key": 7}]}));
    let (st, body) = s.call("GET", "/collections/missing/shards", None);
    assert_eq!(st, 404, "{body}");
}

#[test]
fn list_shard_keys_sqlite() {
    list_shard_keys(BACKENDS[0]);
}

#[test]
fn list_shard_keys_rocksdb() {
    list_shard_keys(BACKENDS[1]);
}
