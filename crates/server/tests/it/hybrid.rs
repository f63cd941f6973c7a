//! Hybrid collections (named dense + multivector + sparse vectors, with and without IDF) against
//! the real binary: a restart keeps data and indexes (nothing rebuilt), kill -9 keeps every
//! acknowledged write, collection snapshots carry everything across backends and back, and bad
//! vectors are refused with a 400 that names the problem. Both backends.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{assert_same, create_collection, kill_cycles, vector, Server, BACKENDS};

const DENSE: usize = 4;
const COLBERT: usize = 3;
const VOCAB: u64 = 200;

/// Dense (Dot, so vectors are stored as given) + late-interaction multivector + two sparse
/// vectors, one with IDF; a tiny indexing threshold seals and indexes segments at once.
fn config() -> Value {
    json!({
        "vectors": {
            "dense": {"size": DENSE, "distance": "Dot"},
            "colbert": {"size": COLBERT, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}},
        },
        "sparse_vectors": {"text": {"modifier": "idf"}, "splade": {}},
        "optimizers_config": {"indexing_threshold": 1},
    })
}

/// xorshift64, for sparse vectors and multivector row counts.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// 1..=`max_n` distinct indices below VOCAB with values in (0, 2]; every other vector is
/// given with its indices in descending order (the server sorts them).
fn sparse(r: &mut Rng, max_n: u64) -> Value {
    let n = 1 + r.below(max_n);
    let mut idx = BTreeSet::new();
    while (idx.len() as u64) < n {
        idx.insert(r.below(VOCAB));
    }
    let mut pairs: Vec<(u64, f32)> = idx.into_iter().map(|i| (i, (1 + r.below(1000)) as f32 / 500.0)).collect();
    if r.below(2) == 0 {
        pairs.reverse();
    }
    json!({"indices": pairs.iter().map(|p| p.0).collect::<Vec<_>>(), "values": pairs.iter().map(|p| p.1).collect::<Vec<_>>()})
}

fn multi(seed: u64, rows: u64) -> Value {
    json!((0..rows).map(|k| vector(seed * 8 + k + 1, COLBERT)).collect::<Vec<_>>())
}

/// The vectors of point `id` as written in `round`; every 7th point has no `splade`.
fn point_vectors(id: u64, round: u64) -> Value {
    let seed = id * 1_000 + round;
    let mut r = Rng::new(seed);
    let mut v = json!({
        "dense": vector(seed, DENSE),
        "colbert": multi(seed, 1 + r.below(3)),
        "text": sparse(&mut r, 8),
    });
    if id % 7 != 3 {
        v["splade"] = sparse(&mut r, 12);
    }
    v
}

fn point(id: u64, round: u64) -> Value {
    json!({"id": id, "vector": point_vectors(id, round), "payload": {"g": id % 3, "round": round}})
}

/// Numbers as the f32 the server stores; sparse vectors as sorted (index, value) pairs.
fn canon(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().expect("number") as f32),
        Value::Array(xs) => Value::Array(xs.iter().map(canon).collect()),
        Value::Object(o) if o.contains_key("indices") => {
            let idx = o["indices"].as_array().expect("indices");
            let val = o["values"].as_array().expect("values");
            assert_eq!(idx.len(), val.len(), "{v}");
            let mut pairs: Vec<(u64, f32)> = idx
                .iter()
                .zip(val)
                .map(|(i, x)| (i.as_u64().expect("index"), x.as_f64().expect("value") as f32))
                .collect();
            pairs.sort_by_key(|p| p.0);
            json!({"indices": pairs.iter().map(|p| p.0).collect::<Vec<_>>(), "values": pairs.iter().map(|p| p.1).collect::<Vec<_>>()})
        }
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), canon(x))).collect()),
        other => other.clone(),
    }
}

fn upsert(s: &Server, c: &str, points: &[Value]) {
    s.ok("PUT", &format!("/collections/{c}/points?wait=true"), Some(&json!({ "points": points })));
}

/// `n` points with ids 0..n (round 0), in batches of 500.
fn fill(s: &Server, c: &str, n: u64) {
    create_collection(s, c, config());
    for start in (0..n).step_by(500) {
        let points: Vec<Value> = (start..(start + 500).min(n)).map(|i| point(i, 0)).collect();
        upsert(s, c, &points);
    }
}

/// Wait until the optimizer is done for good: green, nothing running, and still so (with the
/// same index figures) after the shard went quiet (the quiet remainder is indexed too).
fn settle(s: &Server, c: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "{c} never settled: {}", s.ok("GET", &format!("/collections/{c}"), None));
        let info = s.ok("GET", &format!("/collections/{c}"), None);
        if info["status"] != "green" {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        std::thread::sleep(Duration::from_millis(2500));
        let again = s.ok("GET", &format!("/collections/{c}"), None);
        let running = s.ok("GET", &format!("/collections/{c}/optimizations"), None)["running"].clone();
        let same = |k: &str| info[k] == again[k];
        if again["status"] == "green"
            && same("indexed_vectors_count")
            && same("segments_count")
            && running.as_array().is_some_and(|r| r.is_empty())
        {
            return again;
        }
    }
}

/// How many vectors the points 0..n of round 0 hold, over all four names.
fn vectors_in(ids: impl Iterator<Item = u64>) -> u64 {
    ids.map(|i| if i % 7 == 3 { 3 } else { 4 }).sum()
}

fn query(s: &Server, c: &str, body: Value) -> Value {
    let r = s.ok("POST", &format!("/collections/{c}/points/query"), Some(&body));
    r["points"].clone()
}

/// Sparse (IDF and plain, filtered), multivector and dense (graph and exact), RRF/DBSF-fused
/// and reranked queries, a few retrieved points with their vectors, and the exact count.
fn answers(s: &Server, c: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for q in 0..3u64 {
        let mut r = Rng::new(7_000_000 + q);
        let (tq, sq) = (sparse(&mut r, 6), sparse(&mut r, 10));
        let (dq, cq) = (vector(8_000_000 + q, DENSE), multi(9_000_000 + q, 3));
        let flt = json!({"must": [{"key": "g", "match": {"value": 1}}]});
        let forms = [
            json!({"query": tq, "using": "text", "limit": 10}),
            json!({"query": sq, "using": "splade", "limit": 10}),
            json!({"query": tq, "using": "text", "limit": 5, "filter": flt, "with_payload": true}),
            json!({"query": cq, "using": "colbert", "limit": 10}),
            json!({"query": cq, "using": "colbert", "limit": 10, "params": {"exact": true}}),
            json!({"query": dq, "using": "dense", "limit": 10}),
            json!({"query": dq, "using": "dense", "limit": 10, "params": {"exact": true}}),
            json!({"prefetch": [{"query": tq, "using": "text", "limit": 20}, {"query": dq, "using": "dense", "limit": 20},
                                {"query": cq, "using": "colbert", "limit": 20}],
                   "query": {"fusion": "rrf"}, "limit": 10}),
            json!({"prefetch": [{"query": sq, "using": "splade", "limit": 20}, {"query": dq, "using": "dense", "limit": 20}],
                   "query": {"fusion": "dbsf"}, "limit": 10}),
            json!({"prefetch": [{"prefetch": [{"query": tq, "using": "text", "limit": 30},
                                              {"query": dq, "using": "dense", "limit": 30}],
                                 "query": {"fusion": "rrf"}, "limit": 20}],
                   "query": cq, "using": "colbert", "limit": 10, "with_vector": true}),
        ];
        for body in forms {
            let hits = query(s, c, body.clone());
            assert!(hits.as_array().is_some_and(|h| !h.is_empty()), "{c}: no hits for {body}");
            out.push(hits);
        }
    }
    out.push(s.ok(
        "POST",
        &format!("/collections/{c}/points"),
        Some(&json!({"ids": [0, 1, 3, 10, 17, 499, 1001, 1499], "with_vector": true, "with_payload": true})),
    ));
    out.push(s.ok("POST", &format!("/collections/{c}/points/count"), Some(&json!({"exact": true}))));
    out
}

// ---------------------------------------------------------------------------------------------
// 1. Restart keeps sparse and multivector data and their indexes.

fn restart_keeps_data_and_indexes(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let mut s = Server::start(&storage, backend);
    fill(&s, "h", 2000);
    let info = settle(&s, "h");
    assert_eq!(info["points_count"], 2000, "{info}");
    // Every vector of every name is in an indexed segment: graphs for dense and colbert,
    // inverted indexes for text and splade.
    assert_eq!(info["indexed_vectors_count"], vectors_in(0..2000), "{info}");
    let opt = s.ok("GET", "/collections/h/optimizations", None);
    assert!(!opt["completed"].as_array().expect("completed").is_empty(), "the optimizer indexed: {opt}");
    let want = answers(&s, "h");
    // Retrieved vectors are what was written.
    for r in want[want.len() - 2].as_array().expect("records") {
        let id = r["id"].as_u64().expect("id");
        assert_eq!(canon(&r["vector"]), canon(&point_vectors(id, 0)), "point {id}");
    }

    // A graceful stop, then a kill -9: both restarts load the persisted indexes.
    for graceful in [true, false] {
        if graceful {
            assert_eq!(s.terminate(), Some(0), "log:\n{}", s.log_text());
        } else {
            s.kill9();
        }
        let started = Instant::now();
        s = Server::start(&storage, backend);
        let after = s.ok("GET", "/collections/h", None);
        let ctx = format!("{backend}, graceful {graceful}");
        assert_eq!(after["status"], "green", "{ctx}: nothing to do right after start: {after}");
        for k in ["points_count", "indexed_vectors_count", "segments_count"] {
            assert_eq!(after[k], info[k], "{ctx}: {k} after restart: {after}");
        }
        assert_same(&answers(&s, "h"), &want, &ctx);
        // Past the quiet period: still nothing optimized since the start.
        std::thread::sleep(Duration::from_millis(2500).saturating_sub(started.elapsed()));
        let opt = s.ok("GET", "/collections/h/optimizations", None);
        assert_eq!(opt, json!({"running": [], "completed": []}), "{ctx}: nothing rebuilt after restart");
        assert_eq!(s.ok("GET", "/collections/h", None)["status"], "green");
    }
}

#[test]
fn restart_keeps_hybrid_indexes_sqlite() {
    restart_keeps_data_and_indexes(BACKENDS[0]);
}

#[test]
fn restart_keeps_hybrid_indexes_rocksdb() {
    restart_keeps_data_and_indexes(BACKENDS[1]);
}

// ---------------------------------------------------------------------------------------------
// 2. kill -9 during sparse + multivector upserts loses nothing acknowledged.

/// A point's canonical vectors.
type State = Value;
type Acked = crate::common::Acked<State>;

fn writer(port: u16, t: u64, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let base = format!("http://127.0.0.1:{port}/collections/d/points");
    let mut round = 0u64;
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        // 30 points per batch; ids overlap across rounds so later rounds overwrite earlier ones.
        let ids: Vec<u64> = (0..30).map(|i| t * 10_000 + (round * 30 + i) % 300).collect();
        let points: Vec<Value> = ids.iter().map(|&id| point(id, round)).collect();
        let resp = client.put(format!("{base}?wait=true")).json(&json!({ "points": points })).send();
        let ok = matches!(&resp, Ok(r) if r.status().is_success());
        if let Ok(r) = resp {
            let st = r.status();
            assert!(st.is_success() || st.is_server_error(), "upsert refused: {st} {}", r.text().unwrap_or_default());
        }
        acked.lock().expect("lock").record(&ids, |id| Some(canon(&point_vectors(id, round))), ok);
        if !ok {
            return; // server killed mid-request: not acknowledged
        }
        if round.is_multiple_of(4) {
            let del: Vec<u64> = ids.iter().copied().step_by(7).collect();
            let r = client.post(format!("{base}/delete?wait=true")).json(&json!({ "points": del })).send();
            let ok = matches!(&r, Ok(r) if r.status().is_success());
            acked.lock().expect("lock").record(&del, |_| None, ok);
            if !ok {
                return;
            }
        }
    }
}

/// Every point of `ids` the server has, with its vectors in canonical form.
fn fetch(s: &Server, ids: &[u64]) -> BTreeMap<u64, State> {
    let got = s.ok("POST", "/collections/d/points", Some(&json!({"ids": ids, "with_vector": true})));
    got.as_array().expect("list").iter().map(|r| (r["id"].as_u64().expect("id"), canon(&r["vector"]))).collect()
}

fn kill9_keeps_acknowledged_hybrid_writes(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("storage");
    let s = Server::start(&storage, backend);
    create_collection(&s, "d", config());
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let s = kill_cycles(s, &storage, &[150, 500, 60, 900], &acked, writer, fetch);
    // Queries are served at once (the optimizer may still be dropping the segments emptied by
    // overwrites): every hit is a live point. Sealed, indexed segments survived the kills.
    let info = s.ok("GET", "/collections/d", None);
    let a = acked.lock().expect("lock");
    assert_eq!(info["points_count"], a.live_count() as u64, "{info}");
    assert!(info["indexed_vectors_count"].as_u64().is_some_and(|n| n > 0), "{info}");
    let mut r = Rng::new(42);
    for using in ["text", "splade"] {
        let hits = query(&s, "d", json!({"query": sparse(&mut r, 8), "using": using, "limit": 20}));
        let hits = hits.as_array().expect("hits");
        assert!(!hits.is_empty(), "{using}");
        for h in hits {
            let id = h["id"].as_u64().expect("id");
            assert!(a.is_live(id), "{using}: hit {id} is not a live point");
        }
    }
    let hits = query(&s, "d", json!({"query": multi(5, 2), "using": "colbert", "limit": 5}));
    assert_eq!(hits.as_array().map(Vec::len), Some(5));
}

#[test]
fn kill9_hybrid_sqlite() {
    kill9_keeps_acknowledged_hybrid_writes(BACKENDS[0]);
}

#[test]
fn kill9_hybrid_rocksdb() {
    kill9_keeps_acknowledged_hybrid_writes(BACKENDS[1]);
}

// ---------------------------------------------------------------------------------------------
// 3. Collection snapshots: one backend -> the other -> back.

/// A server whose snapshots live in `<dir>/<name>-snapshots` and storage in `<dir>/<name>`.
fn start_snap(dir: &Path, name: &str, backend: &str) -> Server {
    let snaps = dir.join(format!("{name}-snapshots"));
    let snaps = snaps.to_str().expect("utf8");
    Server::start_with(&dir.join(name), backend, &[("QDRANT__STORAGE__SNAPSHOTS_PATH", snaps)])
}

/// Snapshot `c` on `from` and recover it as `c` on `to` from its download URL.
fn copy_by_snapshot(from: &Server, to: &Server, c: &str) {
    let d = from.ok("POST", &format!("/collections/{c}/snapshots?wait=true"), None);
    let name = d["name"].as_str().expect("name");
    let url = from.url(&format!("/collections/{c}/snapshots/{name}"));
    to.ok(
        "PUT",
        &format!("/collections/{c}/snapshots/recover"),
        Some(&json!({"location": url, "checksum": d["checksum"]})),
    );
}

fn snapshot_round_trip(first: &str) {
    let second = if first == BACKENDS[0] { BACKENDS[1] } else { BACKENDS[0] };
    let dir = tempfile::tempdir().expect("tmp");
    let a = start_snap(dir.path(), "a", first);
    fill(&a, "h", 1500);
    a.ok("POST", "/collections/h/points/delete?wait=true", Some(&json!({"points": (100..110).collect::<Vec<u64>>()})));
    // Some points changed after sealing: new versions in the appendable segment.
    upsert(&a, "h", &(200..220).map(|i| point(i, 1)).collect::<Vec<_>>());
    let info = settle(&a, "h");
    let mut want = answers(&a, "h");
    want.push(info["config"]["params"].clone());
    let all =
        |s: &Server| s.ok("POST", "/collections/h/points/scroll", Some(&json!({"limit": 2000, "with_vector": true})));
    let all_a = all(&a);
    assert_eq!(all_a["points"].as_array().map(Vec::len), Some(1490));

    let b = start_snap(dir.path(), "b", second);
    let c = start_snap(dir.path(), "c", first);
    for (from, to, ctx) in [(&a, &b, format!("{first} -> {second}")), (&b, &c, format!("{second} -> {first}"))] {
        copy_by_snapshot(from, to, "h");
        let got_info = settle(to, "h");
        let mut got = answers(to, "h");
        got.push(got_info["config"]["params"].clone());
        assert_same(&got, &want, &ctx);
        assert_eq!(all(to), all_a, "{ctx}: every point with its vectors");
        for k in ["points_count", "indexed_vectors_count"] {
            assert_eq!(got_info[k], info[k], "{ctx}: {k}: {got_info}");
        }
    }
}

#[test]
fn snapshot_round_trip_from_sqlite() {
    snapshot_round_trip(BACKENDS[0]);
}

#[test]
fn snapshot_round_trip_from_rocksdb() {
    snapshot_round_trip(BACKENDS[1]);
}

// ---------------------------------------------------------------------------------------------
// 4. Bad vectors: a 400 naming the problem, nothing written.

fn bad_vectors_are_refused(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("s"), backend);
    create_collection(&s, "h", config());
    let count =
        |s: &Server| s.ok("POST", "/collections/h/points/count", Some(&json!({"exact": true})))["count"].clone();
    let good = json!({"id": 1, "vector": {"dense": [0.1, 0.2, 0.3, 0.4], "text": {"indices": [1], "values": [1.0]}}});
    let cases = [
        (
            json!({"text": {"indices": [1, 5, 1], "values": [0.5, 0.5, 0.5]}}),
            r#"Format error in JSON body: points[1].vector: vector "text": sparse vector: indices must be unique, index 1 appears more than once"#,
        ),
        (
            json!({"text": {"indices": [1, 2], "values": [0.5]}}),
            r#"Format error in JSON body: points[1].vector: vector "text": sparse vector: indices and values must have the same length, got 2 indices and 1 values"#,
        ),
        (
            json!({"text": {"indices": [1], "values": [1e39]}}),
            r#"Format error in JSON body: points[1].vector: vector "text": values: element 0 (1e+39) is outside the range of a 32-bit float"#,
        ),
        (
            json!({"dense": [1.0, 1e39, 0.0, 0.0]}),
            r#"Format error in JSON body: points[1].vector: vector "dense": element 1 (1e+39) is outside the range of a 32-bit float"#,
        ),
        (
            json!({"colbert": [[1.0, 2.0, 3.0], [1e39, 0.0, 0.0]]}),
            r#"Format error in JSON body: points[1].vector: vector "colbert": [1]: element 0 (1e+39) is outside the range of a 32-bit float"#,
        ),
        (json!({"colbert": []}), "Bad request: point 2: Wrong input: colbert: a multivector needs at least one vector"),
        (
            json!({"colbert": [[1.0, 2.0, 3.0], [1.0]]}),
            r#"Format error in JSON body: points[1].vector: vector "colbert": all inner vectors must have the same size: [1] has 1, [0] has 3"#,
        ),
        (
            json!({"colbert": [[1.0, 2.0]]}),
            "Bad request: point 2: Wrong input: Vector dimension error: expected dim: 3, got 2",
        ),
        (
            json!({"colbert": [1.0, 2.0, 3.0]}),
            "Bad request: point 2: Wrong input: colbert is a multivector: give a list of vectors ([[...], ...]), not one vector",
        ),
        (
            json!({"dense": [[1.0, 2.0, 3.0, 4.0]]}),
            "Bad request: point 2: Wrong input: dense is a single dense vector, not a multivector (it has no multivector_config)",
        ),
        (
            json!({"dense": {"indices": [1], "values": [1.0]}}),
            "Bad request: point 2: Wrong input: dense is a dense vector, but a sparse vector was given",
        ),
        (
            json!({"text": [1.0, 2.0]}),
            "Bad request: point 2: Wrong input: text is a sparse vector, but a dense vector was given",
        ),
        (
            json!({"splade": [[1.0, 2.0]]}),
            "Bad request: point 2: Wrong input: splade is a sparse vector, but a multi vector was given",
        ),
        (json!({"nope": [1.0]}), "Bad request: point 2: Wrong input: Not existing vector name error: nope"),
    ];
    for (bad, expected) in &cases {
        let (code, v) = s.call(
            "PUT",
            "/collections/h/points?wait=true",
            Some(&json!({"points": [good, {"id": 2, "vector": bad}]})),
        );
        assert_eq!(code, 400, "{bad}: {v}");
        // Body format errors end with where the parser stood (" at line 1 column N").
        let msg = v["status"]["error"].as_str().unwrap_or_default();
        let msg = if msg.starts_with("Format error") { msg.rsplit_once(" at line ").map_or(msg, |m| m.0) } else { msg };
        assert_eq!(msg, *expected, "{bad}");
        assert_eq!(count(&s), 0, "{bad}: nothing written");
    }
    // The batch form is checked the same way.
    let batch = json!({"batch": {"ids": [1, 2], "vectors": {
        "dense": [[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]],
        "text": [{"indices": [1], "values": [1.0]}, {"indices": [3, 3], "values": [1.0, 2.0]}]}}});
    let (code, v) = s.call("PUT", "/collections/h/points?wait=true", Some(&batch));
    assert_eq!(code, 400, "{v}");
    let msg = v["status"]["error"].as_str().unwrap_or_default();
    assert_eq!(
        msg.rsplit_once(" at line ").map_or(msg, |m| m.0),
        "Format error in JSON body: batch.vectors: text[1]: sparse vector: indices must be unique, index 3 appears more than once"
    );
    assert_eq!(count(&s), 0, "batch: nothing written");

    // The collection still takes good points, and a bad vector update leaves a point as it was.
    upsert(&s, "h", std::slice::from_ref(&good));
    assert_eq!(count(&s), 1);
    let before = s.ok("GET", "/collections/h/points/1", None);
    for (bad, expected) in &cases[..3] {
        let body = json!({"points": [{"id": 1, "vector": bad}]});
        let (code, v) = s.call("PUT", "/collections/h/points/vectors?wait=true", Some(&body));
        assert_eq!(code, 400, "update {bad}: {v}");
        let msg = v["status"]["error"].as_str().unwrap_or_default();
        let msg = msg.rsplit_once(" at line ").map_or(msg, |m| m.0);
        assert_eq!(msg, expected.replace("points[1]", "points[0]"), "update {bad}");
    }
    assert_eq!(s.ok("GET", "/collections/h/points/1", None), before);
    assert_eq!(canon(&before["vector"]), canon(&good["vector"]));
}

#[test]
fn bad_hybrid_vectors_sqlite() {
    bad_vectors_are_refused(BACKENDS[0]);
}

#[test]
fn bad_hybrid_vectors_rocksdb() {
    bad_vectors_are_refused(BACKENDS[1]);
}
