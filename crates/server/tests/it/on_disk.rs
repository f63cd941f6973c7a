//! `on_disk: true` vectors: sealed segments serve them from memory-mapped files in the shard's
//! `vectors/` directory, search results stay equal to exact ones, a restart maps the files
//! again (nothing rebuilt), a damaged file is refused and rewritten, and PATCH `on_disk: false`
//! brings the vectors back into RAM and removes the files. The same for sparse vectors whose
//! index is `on_disk` (vectors and inverted index in one `.spv` file) and for multivectors
//! (`.mvc` files). Both backends.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{create_collection, files_with, shard_sum_of, vector, wait_indexed, Server, BACKENDS};

const DIM: usize = 16;

/// Every `.vec` file under the storage root.
fn vec_files(root: &Path) -> Vec<PathBuf> {
    files_with(root, "vec")
}

/// Sum of a per-shard figure of collection `d` from `/telemetry`.
fn shard_sum(s: &Server, field: &str) -> u64 {
    shard_sum_of(s, "d", field)
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
    wait_files_with(storage, "vec", want_any)
}

fn wait_files_with(storage: &Path, ext: &str, want_any: bool) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let files = files_with(storage, ext);
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
    nothing_rebuilt(&s);
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
    wait_rewritten(&victim, &bytes);

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

/// Sparse vector of point `i`: 3 to 10 dimensions out of 300, deterministic.
fn sparse_of(i: u64) -> Value {
    let mut state = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let n = 3 + next() % 8;
    let mut dims: Vec<u64> = (0..n).map(|_| next() % 300).collect();
    dims.sort_unstable();
    dims.dedup();
    let values: Vec<f64> = dims.iter().map(|_| (next() % 1000) as f64 / 100.0 - 1.0).collect();
    json!({"indices": dims, "values": values})
}

/// Top-10 (ids and scores) of the 20 queries `body(0..20)` against collection `c`.
fn answers(s: &Server, c: &str, body: impl Fn(u64) -> Value) -> Vec<Value> {
    (0..20u64)
        .map(|q| {
            let hits = s.ok("POST", &format!("/collections/{c}/points/query"), Some(&body(q)))["points"].clone();
            let pairs: Vec<Value> =
                hits.as_array().expect("points").iter().map(|h| json!([h["id"], h["score"]])).collect();
            json!(pairs)
        })
        .collect()
}

/// Top-10 of 20 sparse queries against collection `c`.
fn sparse_answers(s: &Server, c: &str) -> Vec<Value> {
    answers(s, c, |q| json!({"query": sparse_of(50_000 + q), "using": "text", "limit": 10}))
}

/// After a restart: no optimization ran on collection `d` (its files were mapped, nothing was
/// rebuilt).
fn nothing_rebuilt(s: &Server) {
    std::thread::sleep(Duration::from_millis(700));
    let opt = s.ok("GET", "/collections/d/optimizations", None);
    assert!(opt["completed"].as_array().expect("completed").is_empty(), "nothing rebuilt: {opt}");
}

/// Wait until the optimizer rewrote `file`, whose (damaged) content was `damaged`.
fn wait_rewritten(file: &Path, damaged: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read(file).map(|b| b == damaged).unwrap_or(true) {
        assert!(Instant::now() < deadline, "damaged file {} never rewritten", file.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sparse_ram(s: &Server, c: &str) -> u64 {
    shard_sum_of(s, c, "ram_vectors_bytes") + shard_sum_of(s, c, "ram_index_bytes")
}

fn on_disk_sparse(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, backend);
    // `d` keeps its sparse vectors and index on disk, `r` the same data in RAM.
    for (name, on_disk) in [("d", true), ("r", false)] {
        create_collection(
            &s,
            name,
            json!({"sparse_vectors": {"text": {"index": {"on_disk": on_disk}}}, "shard_number": 2,
                   "optimizers_config": {"indexing_threshold": 20}}),
        );
        for batch in 0..4u64 {
            let points: Vec<Value> =
                (batch * 500..(batch + 1) * 500).map(|i| json!({"id": i, "vector": {"text": sparse_of(i)}})).collect();
            s.ok("PUT", &format!("/collections/{name}/points?wait=true"), Some(&json!({ "points": points })));
        }
        wait_indexed(&s, name);
    }
    let files = wait_files_with(&storage, "spv", true);
    assert!(files.iter().all(|f| f.parent().is_some_and(|p| p.ends_with("vectors"))), "{files:?}");
    let want = sparse_answers(&s, "r");
    assert_eq!(sparse_answers(&s, "d"), want);
    // Sealed vectors and postings left the heap (presence flags and the dimension table stay).
    let (ram_d, ram_r) = (sparse_ram(&s, "d"), sparse_ram(&s, "r"));
    assert!(ram_d * 4 < ram_r, "on disk {ram_d} B in RAM, in RAM {ram_r} B");
    // Vectors read back from the file, and deletes visible at once.
    let p = s.ok("GET", "/collections/d/points/7", None);
    assert_eq!(p["vector"]["text"], s.ok("GET", "/collections/r/points/7", None)["vector"]["text"]);
    let first = want[0][0][0].clone();
    for c in ["d", "r"] {
        s.ok("POST", &format!("/collections/{c}/points/delete?wait=true"), Some(&json!({"points": [first]})));
    }
    let want = sparse_answers(&s, "r");
    assert_eq!(sparse_answers(&s, "d"), want);
    drop(s);

    // Restart: the files are mapped again, nothing is rebuilt, answers are unchanged.
    let s = Server::start(&storage, backend);
    let before_restart = files_with(&storage, "spv");
    assert_eq!(sparse_answers(&s, "d"), want);
    nothing_rebuilt(&s);
    assert!(sparse_ram(&s, "d") * 4 < sparse_ram(&s, "r"));
    assert_eq!(files_with(&storage, "spv"), before_restart);
    drop(s);

    // A damaged file is refused at start-up (the index is built from the vectors meanwhile)
    // and written again.
    let victim = before_restart[0].clone();
    let mut bytes = std::fs::read(&victim).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&victim, &bytes).expect("damage");
    let s = Server::start(&storage, backend);
    assert_eq!(sparse_answers(&s, "d"), want);
    wait_rewritten(&victim, &bytes);
    assert_eq!(sparse_answers(&s, "d"), want);

    // on_disk off: vectors and postings come back into RAM, the files go away, same answers.
    s.ok("PATCH", "/collections/d", Some(&json!({"sparse_vectors": {"text": {"index": {"on_disk": false}}}})));
    wait_files_with(&storage, "spv", false);
    assert_eq!(sparse_answers(&s, "d"), want);
    assert!(sparse_ram(&s, "d") * 2 > sparse_ram(&s, "r"));
    drop(s);
    // Its index was never stored in the database: a restart builds it from the vectors.
    let s = Server::start(&storage, backend);
    assert_eq!(sparse_answers(&s, "d"), want);

    // on_disk on again for a collection indexed in RAM: files written, the stored index
    // dropped from the database, and a restart maps the files with the same answers.
    s.ok("PATCH", "/collections/d", Some(&json!({"sparse_vectors": {"text": {"index": {"on_disk": true}}}})));
    wait_files_with(&storage, "spv", true);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sparse_ram(&s, "d") * 4 >= sparse_ram(&s, "r") {
        assert!(Instant::now() < deadline, "sparse data never left the heap");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sparse_answers(&s, "d"), want);
    drop(s);
    let s = Server::start(&storage, backend);
    assert_eq!(sparse_answers(&s, "d"), want);
    assert!(sparse_ram(&s, "d") * 4 < sparse_ram(&s, "r"));
}

#[test]
fn on_disk_sparse_sqlite() {
    on_disk_sparse(BACKENDS[0]);
}

#[test]
fn on_disk_sparse_rocksdb() {
    on_disk_sparse(BACKENDS[1]);
}

/// Multivector of point `i`: 1 to 4 rows of 8 dimensions.
fn multi_of(i: u64) -> Value {
    let rows: Vec<Vec<f32>> = (0..1 + i % 4).map(|r| vector(i * 7 + r, 8)).collect();
    json!(rows)
}

/// Top-10 of 20 exact max-sim queries against collection `c`.
fn multi_answers(s: &Server, c: &str) -> Vec<Value> {
    answers(
        s,
        c,
        |q| json!({"query": multi_of(70_000 + q), "using": "colbert", "limit": 10, "params": {"exact": true}}),
    )
}

fn on_disk_multivectors(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, backend);
    // `d` keeps its multivectors on disk, `r` the same data in RAM; exact max-sim queries, so
    // both answer exactly alike.
    for (name, on_disk) in [("d", true), ("r", false)] {
        create_collection(
            &s,
            name,
            json!({"vectors": {"colbert": {"size": 8, "distance": "Cosine", "on_disk": on_disk,
                                           "multivector_config": {"comparator": "max_sim"}}},
                   "shard_number": 2, "optimizers_config": {"indexing_threshold": 20}}),
        );
        let points: Vec<Value> = (0..1500u64).map(|i| json!({"id": i, "vector": {"colbert": multi_of(i)}})).collect();
        s.ok("PUT", &format!("/collections/{name}/points?wait=true"), Some(&json!({ "points": points })));
        wait_indexed(&s, name);
    }
    wait_files_with(&storage, "mvc", true);
    let want = multi_answers(&s, "r");
    assert_eq!(multi_answers(&s, "d"), want);
    let ram = |c: &str| shard_sum_of(&s, c, "ram_vectors_bytes");
    assert!(ram("d") * 4 < ram("r"), "on disk {} B in RAM, in RAM {} B", ram("d"), ram("r"));
    let p = s.ok("GET", "/collections/d/points/7", None);
    assert_eq!(p["vector"]["colbert"], s.ok("GET", "/collections/r/points/7", None)["vector"]["colbert"]);
    // The graph searches the mapped rows too: stored points find themselves first. A max-sim
    // graph built in parallel may miss one now and then (its score is asymmetric), so one miss
    // in five is allowed; a graph that did not read the mapping would miss them all.
    let found = [3u64, 400, 777, 1024, 1499]
        .iter()
        .filter(|&&i| {
            let body = json!({"query": multi_of(i), "using": "colbert", "limit": 3, "params": {"hnsw_ef": 200}});
            s.ok("POST", "/collections/d/points/query", Some(&body))["points"][0]["id"] == json!(i)
        })
        .count();
    assert!(found >= 4, "{found} of 5 stored points found themselves first through the graph");
    drop(s);

    // Restart: the files are mapped again, nothing is rebuilt, answers are unchanged.
    let s = Server::start(&storage, backend);
    let files = files_with(&storage, "mvc");
    assert_eq!(multi_answers(&s, "d"), want);
    nothing_rebuilt(&s);
    assert!(shard_sum_of(&s, "d", "ram_vectors_bytes") * 4 < shard_sum_of(&s, "r", "ram_vectors_bytes"));
    assert_eq!(files_with(&storage, "mvc"), files);

    // on_disk off: rows come back into RAM, the files go away, answers stay the same.
    s.ok("PATCH", "/collections/d", Some(&json!({"vectors": {"colbert": {"on_disk": false}}})));
    wait_files_with(&storage, "mvc", false);
    assert_eq!(multi_answers(&s, "d"), want);
    assert!(shard_sum_of(&s, "d", "ram_vectors_bytes") * 2 > shard_sum_of(&s, "r", "ram_vectors_bytes"));
}

#[test]
fn on_disk_multivectors_sqlite() {
    on_disk_multivectors(BACKENDS[0]);
}

#[test]
fn on_disk_multivectors_rocksdb() {
    on_disk_multivectors(BACKENDS[1]);
}
