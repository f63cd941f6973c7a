//! `datatype: float16 / uint8` vectors are held in 2 / 1 bytes per component (dense and
//! multivectors, appendable and indexed segments, heap and `on_disk` files, Cosine included),
//! answer exactly like float32 storage of the same values, survive a restart, and keep working
//! with PATCH. Both backends.

use serde_json::{json, Value};

use crate::common::{create_collection, files_with, shard_sum_of, vector, wait_indexed, Server, BACKENDS};

const DIM: usize = 24;

/// Whole numbers 0..=255 (the shared test vectors scaled): exact in float16 and uint8, so
/// every collection stores the same.
fn components(i: u64, n: usize) -> Vec<f32> {
    vector(i, n).into_iter().map(|x| ((x + 1.0) * 127.5).floor().clamp(0.0, 255.0)).collect()
}

fn point(i: u64) -> Value {
    let rows: Vec<Vec<f32>> = (0..1 + i % 3).map(|r| components(i * 5 + r, 6)).collect();
    json!({"id": i, "vector": {"d": components(i, DIM), "m": rows}})
}

/// Ids and scores of exact dense and multivector queries, and the point each stored point's
/// vector finds first through the graph.
fn answers(s: &Server, c: &str) -> Value {
    let query = |body: Value| {
        let hits = s.ok("POST", &format!("/collections/{c}/points/query"), Some(&body))["points"].clone();
        json!(hits.as_array().expect("points").iter().map(|h| json!([h["id"], h["score"]])).collect::<Vec<_>>())
    };
    let exact: Vec<Value> = (0..8u64)
        .map(|q| {
            let rows: Vec<Vec<f32>> = (0..2).map(|r| components(90_000 + q * 3 + r, 6)).collect();
            json!([
                query(
                    json!({"query": components(80_000 + q, DIM), "using": "d", "limit": 10, "params": {"exact": true}})
                ),
                query(json!({"query": rows, "using": "m", "limit": 10, "params": {"exact": true}})),
            ])
        })
        .collect();
    let firsts: Vec<Value> = [3u64, 500, 1999]
        .iter()
        // A beam as wide as a segment: a stored point is found unless the graph lost it.
        .map(|&i| {
            let body = json!({"query": components(i, DIM), "using": "d", "limit": 1, "params": {"hnsw_ef": 1000}});
            query(body)[0][0].clone()
        })
        .collect();
    json!({"exact": exact, "graph": firsts})
}

fn ram(s: &Server, c: &str) -> u64 {
    shard_sum_of(s, c, "ram_vectors_bytes")
}

/// Bytes of all memory-mapped vector files (`.vec` and `.mvc`) under the storage root.
fn file_bytes(storage: &std::path::Path) -> u64 {
    let files = [files_with(storage, "vec"), files_with(storage, "mvc")].concat();
    files.iter().map(|f| std::fs::metadata(f).expect("file").len()).sum()
}

fn typed_storage(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, backend);
    // (name, datatype, on_disk, distance): each typed collection answers like the float32 one
    // of its distance.
    let kinds = [
        ("f32", "float32", false, "Euclid"),
        ("f16", "float16", false, "Euclid"),
        ("u8", "uint8", false, "Euclid"),
        ("f32d", "float32", true, "Euclid"),
        ("f16d", "float16", true, "Euclid"),
        ("f32c", "float32", false, "Cosine"),
        ("u8c", "uint8", false, "Cosine"),
        ("u8cd", "uint8", true, "Cosine"),
    ];
    // Bytes of vector files each on-disk collection added (files of sealed segments never change).
    let mut files = std::collections::BTreeMap::new();
    for (name, datatype, on_disk, distance) in kinds {
        let before = file_bytes(&storage);
        let multi_distance = if distance == "Cosine" { "Cosine" } else { "Dot" };
        create_collection(
            &s,
            name,
            json!({"vectors": {
                       "d": {"size": DIM, "distance": distance, "datatype": datatype, "on_disk": on_disk},
                       "m": {"size": 6, "distance": multi_distance, "datatype": datatype, "on_disk": on_disk,
                             "multivector_config": {"comparator": "max_sim"}}},
                   "shard_number": 2, "optimizers_config": {"indexing_threshold": 10}}),
        );
        for batch in 0..4u64 {
            let points: Vec<Value> = (batch * 500..(batch + 1) * 500).map(point).collect();
            s.ok("PUT", &format!("/collections/{name}/points?wait=true"), Some(&json!({ "points": points })));
        }
        let info = wait_indexed(&s, name);
        assert_eq!(info["config"]["params"]["vectors"]["d"]["datatype"], datatype);
        files.insert(name, file_bytes(&storage) - before);
        assert_eq!(files[name] > 0, on_disk, "{name}: vector files");
    }
    let want = answers(&s, "f32");
    assert_eq!(want["graph"], json!([3, 500, 1999]));
    let want_cosine = answers(&s, "f32c");
    assert_eq!(want_cosine["graph"], json!([3, 500, 1999]));
    let typed = [("f16", &want), ("u8", &want), ("f16d", &want), ("u8c", &want_cosine), ("u8cd", &want_cosine)];
    for (c, want) in typed {
        assert_eq!(&answers(&s, c), want, "{c} answers like float32");
        // What a read returns is what was written (Cosine uint8: the whole numbers, as Qdrant).
        assert_eq!(s.ok("GET", &format!("/collections/{c}/points/77"), None)["vector"], point(77)["vector"], "{c}");
    }
    let (r32, r16, r8, r8c) = (ram(&s, "f32"), ram(&s, "f16"), ram(&s, "u8"), ram(&s, "u8c"));
    eprintln!("vectors in RAM: float32 {r32} B, float16 {r16} B, uint8 {r8} B, uint8 Cosine {r8c} B");
    assert!(r16 * 10 < r32 * 6, "float16 holds {r16} B against float32's {r32} B");
    assert!(r8 * 10 < r32 * 4, "uint8 holds {r8} B against float32's {r32} B");
    assert!(r8c * 10 < r32 * 4, "uint8 Cosine holds {r8c} B against float32's {r32} B");
    let (d32, d16, d8) = (files["f32d"], files["f16d"], files["u8cd"]);
    eprintln!("vector files: float32 {d32} B, float16 {d16} B, uint8 Cosine {d8} B");
    assert!(d16 * 10 < d32 * 6, "float16 files take {d16} B against float32's {d32} B");
    assert!(d8 * 10 < d32 * 4, "uint8 files take {d8} B against float32's {d32} B");
    drop(s);

    // A restart loads the same typed columns; the on-disk ones map their files again.
    let s = Server::start(&storage, backend);
    for (c, want) in typed {
        assert_eq!(&answers(&s, c), want, "{c} after restart");
    }
    assert_eq!(file_bytes(&storage), files.values().sum::<u64>(), "the files were mapped, not written again");
    let (l16, l8) = (ram(&s, "f16"), ram(&s, "u8"));
    assert!(l16 * 10 < r32 * 6 && l8 * 10 < r32 * 4, "typed columns load typed: {l16} B, {l8} B against {r32} B");
    // on_disk off: the mapped rows come back onto the heap in their type.
    for c in ["f16d", "u8cd"] {
        s.ok(
            "PATCH",
            &format!("/collections/{c}"),
            Some(&json!({"vectors": {"d": {"on_disk": false}, "m": {"on_disk": false}}})),
        );
    }
    for (c, in_ram) in [("f16d", ram(&s, "f16")), ("u8cd", ram(&s, "u8c"))] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while ram(&s, c) < in_ram * 9 / 10 {
            assert!(std::time::Instant::now() < deadline, "{c}: vectors never came back into RAM");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let back = ram(&s, c);
        eprintln!("{c} back in RAM after on_disk off: {back} B (loaded {in_ram} B)");
        assert!(back * 10 < in_ram * 12, "{c} back in RAM: {back} B, loaded {in_ram} B");
    }
    assert_eq!(answers(&s, "f16d"), want);
    assert_eq!(answers(&s, "u8cd"), want_cosine);
}

#[test]
fn typed_storage_sqlite() {
    typed_storage(BACKENDS[0]);
}

#[test]
fn typed_storage_rocksdb() {
    typed_storage(BACKENDS[1]);
}
