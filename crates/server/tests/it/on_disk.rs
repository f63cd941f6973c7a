//! `on_disk: true` vectors: sealed segments serve them from memory-mapped files in the shard's
//! `vectors/` directory, search results stay equal to exact ones, a restart maps the files
//! again (nothing rebuilt), a damaged file is refused and rewritten, and PATCH `on_disk: false`
//! brings the vectors back into RAM and removes the files. Both backends.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{create_collection, vector, wait_indexed, Server, BACKENDS};

const DIM: usize = 16;

/// Every `.vec` file under the storage root.
fn vec_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "vec") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Sum of a per-shard figure from `/telemetry`.
fn shard_sum(s: &Server, field: &str) -> u64 {
    let t = s.ok("GET", "/telemetry?details_level=2", None);
    let c = t["collections"]["collections"].as_array().expect("collections").iter().find(|c| c["id"] == "d").cloned();
    let shards = c.expect("collection d")["shards"].as_array().expect("shards").clone();
    shards.iter().map(|sh| sh["local"][field].as_u64().expect("figure")).sum()
}

fn ids(hits: &Value) -> Vec<u64> {
    hits.as_array().expect("hits").iter().map(|h| h["id"].as_u64().expect("id")).collect()
}

/// Exact and approximate top-10 agree closely on 20 queries; returns the exact answers.
fn check_search(s: &Server) -> Vec<Vec<u64>> {
    let mut overlap = 0;
    let mut exact_all = Vec::new();
    for q in 0..20u64 {
        let body = |exact: bool| json!({"vector": vector(90_000 + q, DIM), "limit": 10, "params": {"exact": exact, "hnsw_ef": 128}});
        let exact = ids(&s.ok("POST", "/collections/d/points/search", Some(&body(true))));
        let approx = ids(&s.ok("POST", "/collections/d/points/search", Some(&body(false))));
        overlap += approx.iter().filter(|i| exact.contains(i)).count();
        exact_all.push(exact);
    }
    assert!(overlap >= 190, "recall@10 {}", overlap as f64 / 200.0);
    exact_all
}

fn wait_files(storage: &Path, want_any: bool) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let files = vec_files(storage);
        if files.is_empty() != want_any {
            return files;
        }
        assert!(Instant::now() < deadline, "vector files never {}", if want_any { "appeared" } else { "went away" });
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn on_disk_vectors(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, backend);
    create_collection(
        &s,
        "d",
        json!({"vectors": {"size": DIM, "distance": "Cosine", "on_disk": true}, "shard_number": 2,
               "optimizers_config": {"indexing_threshold": 20}, "hnsw_config": {"m": 8, "ef_construct": 64}}),
    );
    for batch in 0..4u64 {
        let points: Vec<Value> = (batch * 500..(batch + 1) * 500)
            .map(|i| json!({"id": i, "vector": vector(i, DIM), "payload": {"n": i}}))
            .collect();
        s.ok("PUT", "/collections/d/points?wait=true", Some(&json!({ "points": points })));
    }
    let info = wait_indexed(&s, "d");
    assert_eq!(info["config"]["params"]["vectors"]["on_disk"], true);
    let files = wait_files(&storage, true);
    assert!(files.iter().all(|f| f.parent().is_some_and(|p| p.ends_with("vectors"))), "{files:?}");
    let exact = check_search(&s);
    // Sealed vectors left the heap: what stays there is the appendable remainder only.
    let ram = shard_sum(&s, "ram_vectors_bytes");
    assert!(ram < 2000 * DIM as u64 * 4 / 2, "{ram} bytes of vectors still in RAM");
    // Points are readable with their vectors from the mapped files.
    let p = s.ok("GET", "/collections/d/points/7", None);
    let got: Vec<f64> = p["vector"].as_array().expect("vector").iter().map(|x| x.as_f64().expect("f")).collect();
    assert_eq!(got.len(), DIM);
    // Deletes and updates of mapped points are visible at once.
    s.ok("POST", "/collections/d/points/delete?wait=true", Some(&json!({"points": [exact[0][0]]})));
    let after = ids(&s.ok(
        "POST",
        "/collections/d/points/search",
        Some(&json!({"vector": vector(90_000, DIM), "limit": 10, "params": {"exact": true}})),
    ));
    assert!(!after.contains(&exact[0][0]));
    drop(s);

    // Restart: the files are mapped again, nothing is rebuilt, answers are unchanged.
    let s = Server::start(&storage, backend);
    let before_restart = vec_files(&storage);
    let again = check_search(&s);
    assert_eq!(again[1..], exact[1..]);
    std::thread::sleep(Duration::from_millis(700));
    let opt = s.ok("GET", "/collections/d/optimizations", None);
    assert!(opt["completed"].as_array().expect("completed").is_empty(), "nothing rebuilt: {opt}");
    assert!(shard_sum(&s, "ram_vectors_bytes") < 2000 * DIM as u64 * 4 / 2);
    assert_eq!(vec_files(&storage), before_restart);
    drop(s);

    // A damaged file is refused at start-up and written again from the database.
    let victim = before_restart[0].clone();
    let mut bytes = std::fs::read(&victim).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&victim, &bytes).expect("damage");
    let s = Server::start(&storage, backend);
    assert_eq!(check_search(&s)[1..], exact[1..]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read(&victim).map(|b| b == bytes).unwrap_or(true) {
        assert!(Instant::now() < deadline, "damaged vector file never rewritten");
        std::thread::sleep(Duration::from_millis(100));
    }

    // on_disk off: vectors come back into RAM, the files go away, answers stay the same.
    s.ok("PATCH", "/collections/d", Some(&json!({"vectors": {"": {"on_disk": false}}})));
    wait_files(&storage, false);
    assert_eq!(check_search(&s)[1..], exact[1..]);
    assert!(shard_sum(&s, "ram_vectors_bytes") >= 1999 * DIM as u64 * 4);
}

#[test]
fn on_disk_vectors_sqlite() {
    on_disk_vectors(BACKENDS[0]);
}

#[test]
fn on_disk_vectors_rocksdb() {
    on_disk_vectors(BACKENDS[1]);
}
