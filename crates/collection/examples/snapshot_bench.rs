//! Snapshot benchmark: time to create and to restore a snapshot of N points, next to copying
//! the same bytes with `cp` and `tar`.
//!
//! ```text
//! cargo run --release -p qd-collection --example snapshot_bench -- \
//!     [--points 200000] [--dim 128] [--shards 1] [--backend rocksdb|sqlite] [--to rocksdb|sqlite]
//!     [--dir /tmp/x] [--settle 5] [--keep]
//! ```
//!
//! Steps: load N random points (indexing off, so only the snapshot is measured) into a fresh
//! storage; then
//! * create: `snapshot_collection` into a file under the snapshots dir (synced);
//! * reference: `cp -r` of the collection's directory, and `tar cf` of it (+ `sync`);
//! * restore (stream only): the archive streamed into new shard databases of `--to`;
//! * restore (full): `Registry::restore_collection`, i.e. stream + open (load into memory) +
//!   catalog switch;
//! * reference: `cp` of the snapshot file, `tar xf` of it (+ `sync`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use qd_collection::operations::{PointInsert, UpdateOp};
use qd_collection::snapshot::{self, no_progress, RestoreOptions, SnapshotDir};
use qd_collection::Registry;
use qd_core::config::{CollectionDefaults, CreateCollection};
use qd_core::PointId;
use qd_storage::BackendKind;
use serde_json::json;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn du(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if meta.is_dir() {
        std::fs::read_dir(path).map(|rd| rd.flatten().map(|e| du(&e.path())).sum()).unwrap_or(0)
    } else {
        meta.len()
    }
}

fn sh(cmd: &str) -> f64 {
    let t = Instant::now();
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(st.success(), "{cmd} failed");
    t.elapsed().as_secs_f64()
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = arg(&args, "--points", "200000").parse()?;
    let dim: usize = arg(&args, "--dim", "128").parse()?;
    let shards: u32 = arg(&args, "--shards", "1").parse()?;
    let from: BackendKind = arg(&args, "--backend", "rocksdb").parse()?;
    let to: BackendKind = arg(&args, "--to", from.name()).parse()?;
    let keep = args.iter().any(|a| a == "--keep");
    let base =
        PathBuf::from(arg(&args, "--dir", &std::env::temp_dir().join("qd-snapshot-bench").display().to_string()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;

    println!("snapshot benchmark: {n} points x {dim} dims, {shards} shard(s), {from} -> {to}, in {}", base.display());
    let reg = Registry::open(&base.join("storage"), from, CollectionDefaults::default())?;
    reg.load_all();
    let req: CreateCollection = serde_json::from_value(json!({
        "vectors": {"size": dim, "distance": "Dot"},
        "shard_number": shards,
        "optimizers_config": {"indexing_threshold": 0},
    }))?;
    reg.create("bench", req)?;
    let c = reg.get("bench")?;
    let t = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 20_000) as f32 / 10_000.0 - 1.0
    };
    for start in (0..n).step_by(2000) {
        let points = (start..(start + 2000).min(n))
            .map(|i| {
                let v: Vec<f32> = (0..dim).map(|_| next()).collect();
                let mut payload = qd_core::Payload::new();
                payload.insert("i".into(), json!(i));
                payload.insert("tag".into(), json!(format!("t{}", i % 10)));
                PointInsert {
                    id: PointId::from(i),
                    vectors: [(String::new(), qd_core::vectors::Vector::Dense(v))].into_iter().collect(),
                    payload: Some(payload),
                }
            })
            .collect();
        c.update(UpdateOp::Upsert(points), true, None)?;
    }
    println!("loaded in {:.1} s", t.elapsed().as_secs_f64());
    let coll_dir = reg.layout().collection_dir(c.dir());
    let data_bytes = du(&coll_dir);

    // Create (after the storage settles: background compactions of the load would slow
    // the first read; `--settle S` seconds, default 5).
    let settle: u64 = arg(&args, "--settle", "5").parse()?;
    std::thread::sleep(std::time::Duration::from_secs(settle));
    // Dirty pages of the load would otherwise be written back during the timed create.
    sh("sync");
    let snaps = base.join("snapshots");
    let t = Instant::now();
    let desc = SnapshotDir::write_new(&snaps, "bench", 0, |w, p| {
        let (_, size, sha) = snapshot::snapshot_collection(&c, w, p, &mut no_progress)?;
        Ok((size, sha))
    })?;
    let create_s = t.elapsed().as_secs_f64();
    eprintln!("created in {create_s:.2} s");
    let file = snaps.join(&desc.name);
    // The references copy the collection's files at rest.
    drop(c);
    reg.shutdown();
    drop(reg);
    let cp_dir_s = sh(&format!("cp -r '{}' '{}' && sync", coll_dir.display(), base.join("copy-of-dir").display()));
    let tar_dir_s = sh(&format!("tar cf '{}' -C '{}' . && sync", base.join("dir.tar").display(), coll_dir.display()));

    // Read and check only (no database writes).
    let t = Instant::now();
    snapshot::verify_collection(&mut std::fs::File::open(&file)?, None, &mut no_progress)?;
    let verify_s = t.elapsed().as_secs_f64();

    // Restore: streaming into new databases only, then the full registry restore.
    let layout = qd_storage::StorageLayout::open_or_init(&base.join("restore-target"), to)?;
    let t = Instant::now();
    let mut f = std::fs::File::open(&file)?;
    snapshot::restore::restore_into_dir(&layout, "d", &mut f, None, None, &mut no_progress)?;
    let stream_s = t.elapsed().as_secs_f64();
    let restored_bytes = du(&layout.collection_dir("d"));
    let reg2 = Registry::open(&base.join("storage2"), to, CollectionDefaults::default())?;
    reg2.load_all();
    let t = Instant::now();
    let mut f = std::fs::File::open(&file)?;
    let opts = RestoreOptions { replace_existing: true, ..Default::default() };
    let r = reg2.restore_collection("copy", &mut f, None, &opts, &mut no_progress)?;
    let restore_s = t.elapsed().as_secs_f64();
    assert_eq!(reg2.info("copy")?.points_count as u64, n);
    reg2.shutdown();
    let cp_file_s = sh(&format!("cp '{}' '{}' && sync", file.display(), base.join("copy.snapshot").display()));
    std::fs::create_dir_all(base.join("untar"))?;
    let untar_s = sh(&format!("tar xf '{}' -C '{}' && sync", file.display(), base.join("untar").display()));

    println!();
    println!(
        "collection on disk ({from}): {:.1} MiB; snapshot file: {:.1} MiB; restored ({to}): {:.1} MiB",
        mib(data_bytes),
        mib(desc.size),
        mib(restored_bytes)
    );
    println!("| step | seconds | MiB/s of snapshot | reference | seconds |");
    println!("|---|---|---|---|---|");
    let rate = |s: f64| mib(desc.size) / s.max(1e-9);
    println!(
        "| create snapshot (synced) | {create_s:.2} | {:.0} | `cp -r` collection dir + sync | {cp_dir_s:.2} |",
        rate(create_s)
    );
    println!("| | | | `tar cf` collection dir + sync | {tar_dir_s:.2} |");
    println!("| verify (read + check, no writes) | {verify_s:.2} | {:.0} | | |", rate(verify_s));
    println!("| restore: stream into new {to} databases | {stream_s:.2} | {:.0} | `cp` snapshot file + sync | {cp_file_s:.2} |", rate(stream_s));
    println!(
        "| restore: full (stream + load + switch) | {restore_s:.2} | {:.0} | `tar xf` snapshot + sync | {untar_s:.2} |",
        rate(restore_s)
    );
    println!("records restored: {}", r.records);
    if !keep {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok(())
}
