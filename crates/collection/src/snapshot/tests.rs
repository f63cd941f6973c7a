//! Snapshot format and restore tests at the store level (backend pairs, damage, versions) and
//! at the registry level (atomic replacement). End-to-end tests through the REST API live in
//! crates/server/tests/it/snapshots.rs.

use std::path::Path;
use std::sync::Arc;

use qd_core::config::{CollectionDefaults, CreateCollection};
use qd_storage::{open_store, BackendKind, KvStore, ScanControl, StorageLayout, Table, WriteBatch};
use serde_json::json;

use super::create::{write_collection, CollectionSource};
use super::format::{ArchiveWriter, Checksums, FileHash, CHECKSUMS, CHUNK_BYTES, FORMAT_VERSION, MANIFEST};
use super::no_progress;
use super::restore::{restore_into_dir, verify_collection};
use crate::catalog::CatalogEntry;
use crate::error::CollectionError;
use crate::registry::Registry;

#[test]
fn partial_snapshot_files_are_removed_at_start_up_and_finished_ones_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = super::SnapshotDir::new(dir.path());
    let shard_dir = snapshots.shard_dir("c", 0).expect("shard dir");
    std::fs::create_dir_all(&shard_dir).expect("mkdir");
    let collection_dir = snapshots.collection_dir("c").expect("dir");
    for p in [
        dir.path().join("full.snapshot.partial"),
        collection_dir.join("c-1.snapshot.partial"),
        shard_dir.join("s.snapshot.partial"),
    ] {
        std::fs::write(p, b"half").expect("write");
    }
    std::fs::write(collection_dir.join("c-2.snapshot"), b"done").expect("write");
    assert_eq!(snapshots.remove_partials(), 3);
    assert!(collection_dir.join("c-2.snapshot").exists());
    assert_eq!(snapshots.remove_partials(), 0);
}

fn entry(name: &str, size: u64) -> CatalogEntry {
    let req: CreateCollection =
        serde_json::from_value(json!({"vectors": {"size": size, "distance": "Cosine"}})).expect("request");
    let config = req.into_config(&CollectionDefaults::default()).expect("config");
    serde_json::from_value(json!({
        "name": name,
        "dir": "source-dir",
        "config": config,
        "created_at": "2024-01-02T03:04:05.000000Z",
    }))
    .expect("entry")
}

fn db_path(dir: &Path, kind: BackendKind) -> std::path::PathBuf {
    dir.join(match kind {
        BackendKind::Sqlite => "db.sqlite",
        BackendKind::Rocksdb => "db.rocksdb",
    })
}

/// A store with records in every table; enough point data for several data files.
fn filled_store(dir: &Path, kind: BackendKind, points: u32) -> Arc<dyn KvStore> {
    let s = open_store(kind, &db_path(dir, kind)).expect("open");
    let mut b = WriteBatch::new();
    b.put(Table::Meta, b"last_op".to_vec(), 42u64.to_le_bytes().to_vec());
    for i in 0..points {
        let mut key = vec![0u8];
        key.extend_from_slice(&(i as u64).to_be_bytes());
        let value: Vec<u8> = (0..4096u32).map(|j| (i.wrapping_mul(31).wrapping_add(j) % 251) as u8).collect();
        b.put(Table::Points, key, value);
        if b.len() >= 500 {
            s.write(std::mem::take(&mut b), false).expect("write");
        }
    }
    b.put(Table::Index, b"graph/0".to_vec(), vec![7u8; 1000]);
    b.put(Table::Index, Vec::new(), b"empty key".to_vec());
    b.put(Table::Points, b"\x01empty-value".to_vec(), Vec::new());
    s.write(b, true).expect("write");
    s
}

fn dump(s: &dyn KvStore) -> Vec<(Table, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for t in Table::ALL {
        s.scan(t, b"", None, &mut |k, v| {
            out.push((t, k.to_vec(), v.to_vec()));
            ScanControl::Continue
        })
        .expect("scan");
    }
    out
}

fn archive_of(store: &Arc<dyn KvStore>, kind: BackendKind, name: &str) -> (Vec<u8>, String) {
    let views = vec![(0u32, store.read_view().expect("view"))];
    let src = CollectionSource { entry: entry(name, 4), backend: kind, views };
    let (bytes, size, sha) =
        write_collection(Vec::new(), &src, Path::new("mem"), &mut no_progress).expect("write snapshot");
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(sha, super::format::sha256_hex(&bytes));
    (bytes, sha)
}

#[test]
fn round_trip_between_all_backend_pairs() {
    for from in BackendKind::ALL {
        for to in BackendKind::ALL {
            let dir = tempfile::tempdir().expect("tmp");
            let src = filled_store(dir.path(), from, 2500);
            let (bytes, sha) = archive_of(&src, from, "c");
            assert!(bytes.len() > CHUNK_BYTES, "several data files are exercised");
            let layout = StorageLayout::open_or_init(&dir.path().join("target"), to).expect("layout");
            let report = restore_into_dir(&layout, "d1", &mut bytes.as_slice(), None, Some(&sha), &mut no_progress)
                .expect("restore");
            assert_eq!(report.records, 2500 + 1 + 1 + 2);
            assert_eq!(report.sha256.as_deref(), Some(sha.as_str()));
            let restored = open_store(to, &layout.shard_db_path("d1", 0)).expect("reopen");
            assert_eq!(dump(restored.as_ref()), dump(src.as_ref()), "{from} -> {to}");
            let e = report.catalog_entry("renamed", "d1").expect("entry");
            assert_eq!((e.name.as_str(), e.dir.as_str()), ("renamed", "d1"));
            assert_eq!(
                serde_json::to_value(&e.config).expect("json"),
                serde_json::to_value(&entry("c", 4).config).expect("json")
            );
            assert_eq!(e.created_at, "2024-01-02T03:04:05.000000Z");
        }
    }
}

/// The same archive as a format-1 build wrote it (per-file sha256 in `checksums.json`).
fn as_format_1(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut ar = tar::Archive::new(bytes);
    let mut aw = ArchiveWriter::with_file_hash(Vec::new(), 0, FileHash::Sha256);
    let mut shards = Vec::new();
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read");
        if path == MANIFEST {
            let mut v: serde_json::Value = serde_json::from_slice(&data).expect("json");
            v["format_version"] = json!(1);
            data = serde_json::to_vec(&v).expect("json");
        } else if path == CHECKSUMS {
            shards = serde_json::from_slice::<Checksums>(&data).expect("checksums").shards;
            continue;
        }
        aw.add(&path, &data, None).expect("add");
    }
    aw.finish(shards).expect("finish").0
}

fn checksums_of(bytes: &[u8]) -> Checksums {
    use std::io::Read;
    let mut ar = tar::Archive::new(bytes);
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.path().expect("path").to_string_lossy() == CHECKSUMS {
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("read");
            return serde_json::from_slice(&data).expect("checksums");
        }
    }
    panic!("no {CHECKSUMS}");
}

#[test]
fn format_1_archives_still_restore() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = filled_store(dir.path(), BackendKind::Sqlite, 1200);
    let (bytes, _) = archive_of(&src, BackendKind::Sqlite, "c");
    // The current format lists CRC-32C per file, format 1 sha256.
    let now = checksums_of(&bytes);
    assert!(now.files.iter().all(|f| f.crc32c.len() == 8 && f.sha256.is_empty()), "{now:?}");
    let old = as_format_1(&bytes);
    let then = checksums_of(&old);
    assert!(then.files.iter().all(|f| f.sha256.len() == 64 && f.crc32c.is_empty()), "{then:?}");
    for to in BackendKind::ALL {
        let layout = StorageLayout::open_or_init(&dir.path().join(format!("t-{to}")), to).expect("layout");
        let report =
            restore_into_dir(&layout, "d1", &mut old.as_slice(), None, None, &mut no_progress).expect("restore v1");
        assert_eq!(report.records, 1200 + 1 + 1 + 2);
        let restored = open_store(to, &layout.shard_db_path("d1", 0)).expect("reopen");
        assert_eq!(dump(restored.as_ref()), dump(src.as_ref()), "format 1 -> {to}");
    }
    // A damaged data file of a format-1 archive is caught by its sha256.
    let mut bad = old.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x40;
    let layout = StorageLayout::open_or_init(&dir.path().join("bad"), BackendKind::Rocksdb).expect("layout");
    assert!(restore_into_dir(&layout, "d2", &mut bad.as_slice(), None, None, &mut no_progress).is_err());
}

#[test]
fn snapshot_is_a_point_in_time_view() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = filled_store(dir.path(), BackendKind::Rocksdb, 10);
    let before = dump(store.as_ref());
    let views = vec![(0u32, store.read_view().expect("view"))];
    let mut b = WriteBatch::new();
    b.put(Table::Points, b"\x00later".to_vec(), b"x".to_vec());
    store.write(b, true).expect("write");
    let src = CollectionSource { entry: entry("c", 4), backend: BackendKind::Rocksdb, views };
    let (bytes, _, _) = write_collection(Vec::new(), &src, Path::new("mem"), &mut no_progress).expect("write");
    let layout = StorageLayout::open_or_init(&dir.path().join("t"), BackendKind::Sqlite).expect("layout");
    restore_into_dir(&layout, "d", &mut bytes.as_slice(), None, None, &mut no_progress).expect("restore");
    let restored = open_store(BackendKind::Sqlite, &layout.shard_db_path("d", 0)).expect("reopen");
    assert_eq!(dump(restored.as_ref()), before);
}

fn expect_invalid(bytes: &[u8], checksum: Option<&str>, what: &str) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let layout = StorageLayout::open_or_init(&dir.path().join("t"), BackendKind::Sqlite).expect("layout");
    let err = restore_into_dir(&layout, "d", &mut &bytes[..], None, checksum, &mut no_progress).expect_err(what);
    let CollectionError::BadRequest(msg) = &err else { panic!("{what}: expected a bad request, got {err}") };
    assert!(verify_collection(&mut &bytes[..], checksum, &mut no_progress).is_err(), "{what}: verify agrees");
    msg.clone()
}

#[test]
fn damaged_archives_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = filled_store(dir.path(), BackendKind::Sqlite, 2500);
    let (bytes, sha) = archive_of(&src, BackendKind::Sqlite, "c");
    let n = bytes.len();
    // Truncated anywhere before the checksums file ends.
    for cut in [0, 100, 511, 512, 700, n / 3, n / 2, n - 3000, n - 1100] {
        let msg = expect_invalid(&bytes[..cut], None, &format!("cut at {cut}"));
        assert!(msg.starts_with("Invalid snapshot"), "{msg}");
    }
    // A flipped byte in the manifest, in data files, in the checksums file.
    for at in [530, 600, 2048, n / 2, n / 2 + 1, n - 1500] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x5a;
        let msg = expect_invalid(&bad, None, &format!("flip at {at}"));
        assert!(!msg.is_empty());
    }
    // Damage that no inner checksum covers (a padding byte) is caught by the archive checksum.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] = 1;
    let msg = expect_invalid(&bad, Some(&sha), "padding");
    assert!(msg.contains("checksum mismatch"), "{msg}");
    // Wrong expected checksum.
    let msg = expect_invalid(&bytes, Some(&"0".repeat(64)), "wrong checksum");
    assert!(msg.contains("checksum mismatch"), "{msg}");
    // Not a tar at all.
    expect_invalid(b"hello, this is not a snapshot", None, "garbage");
}

fn archive_with_manifest(manifest: serde_json::Value, first: &str) -> Vec<u8> {
    let mut aw = ArchiveWriter::new(Vec::new(), 0);
    aw.add(first, &serde_json::to_vec(&manifest).expect("json"), None).expect("add");
    aw.finish(Vec::new()).expect("finish").0
}

#[test]
fn incompatible_or_foreign_archives_are_refused() {
    let newer = archive_with_manifest(
        json!({"format": super::format::COLLECTION_FORMAT, "format_version": FORMAT_VERSION + 1}),
        MANIFEST,
    );
    let msg = expect_invalid(&newer, None, "newer version");
    assert!(msg.contains(&format!("incompatible snapshot format version {}", FORMAT_VERSION + 1)), "{msg}");
    let full = archive_with_manifest(json!({"format": super::format::FULL_FORMAT, "format_version": 1}), MANIFEST);
    let msg = expect_invalid(&full, None, "full snapshot as a collection");
    assert!(msg.contains("full-storage snapshot"), "{msg}");
    let qdrant = archive_with_manifest(json!({"params": {}}), "config.json");
    let msg = expect_invalid(&qdrant, None, "Qdrant's own format");
    assert!(msg.contains("Qdrant itself"), "{msg}");
}

#[test]
fn registry_restore_replaces_atomically_and_failures_keep_the_old_collection() {
    for backend in BackendKind::ALL {
        let dir = tempfile::tempdir().expect("tmp");
        let reg = Registry::open(&dir.path().join("s"), backend, CollectionDefaults::default()).expect("open");
        reg.load_all();
        let create = |size: u64| {
            serde_json::from_value::<CreateCollection>(json!({"vectors": {"size": size, "distance": "Dot"}}))
        };
        reg.create("four", create(4).expect("req")).expect("create");
        reg.create("eight", create(8).expect("req")).expect("create");
        let (bytes, _, sha) = super::create::snapshot_collection(
            &reg.get("four").expect("get"),
            Vec::new(),
            Path::new("mem"),
            &mut no_progress,
        )
        .expect("snapshot");
        let dirs_before = reg.layout().list_collection_dirs().expect("dirs");
        let opts = super::RestoreOptions { replace_existing: true, ..Default::default() };

        // A damaged archive: error, "eight" untouched, no directory left behind.
        let mut bad = bytes.clone();
        let mid = bad.len() / 2;
        bad.truncate(mid);
        let err = reg.restore_collection("eight", &mut bad.as_slice(), None, &opts, &mut no_progress);
        assert!(matches!(err, Err(CollectionError::BadRequest(_))), "{err:?}");
        assert_eq!(reg.info("eight").expect("info").config.params.vectors.get("").map(|p| p.size), Some(8));
        assert_eq!(reg.layout().list_collection_dirs().expect("dirs"), dirs_before);

        // Without permission to replace, an existing name is refused.
        let keep = super::RestoreOptions::default();
        let err = reg.restore_collection("eight", &mut bytes.as_slice(), None, &keep, &mut no_progress);
        assert!(matches!(err, Err(CollectionError::AlreadyExists(_))), "{err:?}");

        // A good archive replaces "eight"; its old directory goes.
        let opts_sum = super::RestoreOptions { checksum: Some(sha.clone()), ..opts.clone() };
        reg.restore_collection("eight", &mut bytes.as_slice(), None, &opts_sum, &mut no_progress).expect("restore");
        assert_eq!(reg.info("eight").expect("info").config.params.vectors.get("").map(|p| p.size), Some(4));
        let dirs_after = reg.layout().list_collection_dirs().expect("dirs");
        assert_eq!(dirs_after.len(), 2);
        assert_ne!(dirs_after, dirs_before);

        // A new name is created.
        reg.restore_collection("copy", &mut bytes.as_slice(), None, &opts, &mut no_progress).expect("new");
        assert_eq!(reg.list(), vec!["copy".to_string(), "eight".to_string(), "four".to_string()]);
        reg.shutdown();
        drop(reg);

        // The switch is durable: a restart sees the restored collections.
        let reg = Registry::open(&dir.path().join("s"), backend, CollectionDefaults::default()).expect("reopen");
        reg.load_all();
        assert_eq!(reg.info("eight").expect("info").config.params.vectors.get("").map(|p| p.size), Some(4));
        assert_eq!(reg.layout().list_collection_dirs().expect("dirs").len(), 3);
        reg.shutdown();
    }
}
