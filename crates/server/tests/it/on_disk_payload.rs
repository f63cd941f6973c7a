//! `on_disk_payload`: indexed segments read payloads from the shard's database instead of
//! holding them. Everything that reads payloads (retrieve, scroll and search with payloads,
//! filters on indexed and unindexed fields, nested keys and `is_null` conditions, counts, facets,
//! `order_by`, payload updates of indexed points) answers as it does for the same data held in
//! RAM, before and after a restart and a PATCH each way, while telemetry's RAM payload figure
//! drops to what the appendable segment holds. Both backends.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{create_collection, shard_sum_of, vector, wait_indexed, Server, BACKENDS};

const DIM: usize = 16;
const POINTS: u64 = 1500;

fn payload(i: u64) -> Value {
    let city = ["berlin", "paris", "rome"][(i % 3) as usize];
    let mut p = json!({
        "city": city,
        "n": i,
        "nested": {"k": i % 5, "tags": [i % 4, i % 6]},
        "note": format!("point {i} {}", "filler text ".repeat(20)),
    });
    if i.is_multiple_of(7) {
        p["maybe"] = json!(null);
    }
    p
}

/// What every payload-reading request answers for collection `c`.
fn answers(s: &Server, c: &str) -> Value {
    let post = |path: &str, body: Value| s.ok("POST", &format!("/collections/{c}/{path}"), Some(&body));
    let ids_of = |hits: &Value| -> Vec<Value> {
        hits.as_array().expect("hits").iter().map(|h| json!([h["id"], h["payload"]])).collect()
    };
    let unindexed = json!({"must": [{"key": "nested.k", "match": {"value": 2}}]});
    let mixed = json!({"must": [{"key": "city", "match": {"value": "rome"}}, {"key": "nested.tags", "match": {"any": [3]}}],
                       "must_not": [{"is_null": {"key": "maybe"}}]});
    let search = |filter: &Value| {
        let body = json!({"vector": vector(7, DIM), "limit": 10, "filter": filter, "with_payload": true,
                          "params": {"exact": true}});
        ids_of(&post("points/search", body))
    };
    json!({
        "retrieve": post("points", json!({"ids": [0, 1, 2, 700, 1499, 99_999], "with_payload": true})),
        "scroll": ids_of(&post("points/scroll", json!({"filter": unindexed, "limit": 40, "with_payload": ["n", "city"]}))["points"]),
        "search_unindexed": search(&unindexed),
        "search_mixed": search(&mixed),
        "search_graph": ids_of(&post("points/search", json!({"vector": vector(9, DIM), "limit": 5, "filter": unindexed,
                                                             "with_payload": {"exclude": ["note"]}}))),
        "count_unindexed": post("points/count", json!({"filter": unindexed, "exact": true})),
        "count_mixed": post("points/count", json!({"filter": mixed, "exact": true})),
        "facet": post("facet", json!({"key": "city", "filter": unindexed, "exact": true})),
        "order_by": ids_of(&post("points/scroll", json!({"order_by": {"key": "n", "direction": "desc"}, "limit": 15,
                                                        "filter": unindexed, "with_payload": ["n"]}))["points"]),
    })
}

fn ram_payload(s: &Server, c: &str) -> u64 {
    shard_sum_of(s, c, "ram_payload_bytes")
}

/// Wait until `pred` holds for collection `c`'s RAM payload figure and the collection is green.
fn wait_ram_payload(s: &Server, c: &str, what: &str, pred: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let bytes = ram_payload(s, c);
        let green = s.ok("GET", &format!("/collections/{c}"), None)["status"] == "green";
        if green && pred(bytes) {
            return bytes;
        }
        assert!(Instant::now() < deadline, "{c}: RAM payload bytes {bytes} never became {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn payloads_on_disk(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let mut s = Server::start(&storage, backend);
    for (name, on_disk) in [("ram", false), ("disk", true)] {
        create_collection(
            &s,
            name,
            json!({"vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": 2, "on_disk_payload": on_disk,
                   "optimizers_config": {"indexing_threshold": 10}}),
        );
        for (field, schema) in [("city", "keyword"), ("n", "integer")] {
            s.ok(
                "PUT",
                &format!("/collections/{name}/index?wait=true"),
                Some(&json!({"field_name": field, "field_schema": schema})),
            );
        }
        for batch in 0..3u64 {
            let points: Vec<Value> = (batch * 500..(batch + 1) * 500)
                .map(|i| json!({"id": i, "vector": vector(i, DIM), "payload": payload(i)}))
                .collect();
            s.ok("PUT", &format!("/collections/{name}/points?wait=true"), Some(&json!({ "points": points })));
        }
        let info = wait_indexed(&s, name);
        assert_eq!(info["config"]["params"]["on_disk_payload"], on_disk);
        assert_eq!(info["points_count"], POINTS);
    }
    let in_ram = wait_ram_payload(&s, "ram", "positive", |b| b > 0);
    let on_disk = wait_ram_payload(&s, "disk", "under a tenth of RAM storage's", |b| b * 10 < in_ram);
    let stored = |c: &str| shard_sum_of(&s, c, "payloads_size_bytes");
    assert_eq!(stored("disk"), stored("ram"), "stored payload bytes are counted wherever they live");
    eprintln!("{backend}: RAM payload bytes {in_ram} in RAM, {on_disk} on disk");

    let want = answers(&s, "ram");
    assert_eq!(want["count_unindexed"]["count"], POINTS / 5);
    assert!(!want["search_mixed"].as_array().expect("hits").is_empty());
    assert_eq!(answers(&s, "disk"), want, "{backend}: answers with payloads on disk");

    // Payload updates of points held by indexed segments.
    for c in ["ram", "disk"] {
        let path = |p: &str| format!("/collections/{c}/points/{p}?wait=true");
        s.ok("POST", &path("payload"), Some(&json!({"payload": {"nested": {"k": 2}}, "points": [0, 1, 3]})));
        s.ok("PUT", &path("payload"), Some(&json!({"payload": {"city": "rome"}, "points": [4, 700]})));
        s.ok("POST", &path("payload/delete"), Some(&json!({"keys": ["nested"], "points": [2, 12]})));
        s.ok("POST", &path("payload/clear"), Some(&json!({"points": [17]})));
    }
    let want = answers(&s, "ram");
    // Three points gained `nested.k == 2`, three (2, 12, 17) lost it.
    assert_eq!(want["count_unindexed"]["count"], POINTS / 5);
    assert_eq!(want["retrieve"][3]["payload"], json!({"city": "rome"}));
    assert_eq!(answers(&s, "disk"), want, "{backend}: after payload updates");

    s.terminate();
    let s = Server::start(&storage, backend);
    wait_indexed(&s, "disk");
    assert_eq!(answers(&s, "disk"), want, "{backend}: after a restart");
    let in_ram = wait_ram_payload(&s, "ram", "positive", |b| b > 0);
    wait_ram_payload(&s, "disk", "under a tenth of RAM storage's after a restart", |b| b * 10 < in_ram);

    // PATCH moves the payloads of indexed segments into RAM and back.
    s.ok("PATCH", "/collections/disk", Some(&json!({"params": {"on_disk_payload": false}})));
    wait_ram_payload(&s, "disk", "as large as RAM storage's", |b| b * 10 >= in_ram * 9);
    assert_eq!(answers(&s, "disk"), want, "{backend}: after PATCH on_disk_payload false");
    s.ok("PATCH", "/collections/disk", Some(&json!({"params": {"on_disk_payload": true}})));
    wait_ram_payload(&s, "disk", "small again", |b| b * 10 < in_ram);
    assert_eq!(answers(&s, "disk"), want, "{backend}: after PATCH on_disk_payload true");
    let info = s.ok("GET", "/collections/disk", None);
    assert_eq!(info["config"]["params"]["on_disk_payload"], true);
}

#[test]
fn payloads_on_disk_sqlite() {
    payloads_on_disk(BACKENDS[0]);
}

#[test]
fn payloads_on_disk_rocksdb() {
    payloads_on_disk(BACKENDS[1]);
}
