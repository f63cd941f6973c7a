//! A full disk (a small tmpfs filled by another file): writes are refused with Qdrant's "No space
//! left on device" while searches keep working, nothing acknowledged is lost, and writes resume
//! once space is freed, without a restart. A start on a full disk serves reads (never an abort
//! inside a backend), and a snapshot that would not fit is refused before it starts. Both backends; needs root to mount (skipped with a message otherwise).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{create_collection, Server, BACKENDS};

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    fn free(&self) -> u64 {
        qd_storage::disk::free_bytes(&self.0).expect("statvfs")
    }

    /// Fill the filesystem until `leave` bytes are free (or it is full: the server may take
    /// some of the space meanwhile).
    fn fill(&self, leave: u64) {
        use std::io::Write;
        let mut n = self.free().saturating_sub(leave);
        let filler = self.0.join("filler");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&filler).expect("filler opened");
        let chunk = vec![0u8; 1 << 20];
        while n > 0 {
            let len = n.min(chunk.len() as u64) as usize;
            match f.write_all(&chunk[..len]) {
                Ok(()) => n -= len as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filler written: {e}"),
            }
        }
    }

    fn unfill(&self) {
        std::fs::remove_file(self.0.join("filler")).expect("filler removed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn points(first: u64, n: u64, payload_bytes: usize) -> Value {
    let text = "x".repeat(payload_bytes);
    let pts: Vec<Value> =
        (first..first + n).map(|i| json!({"id": i, "vector": [1.0, 0.5, 0.25, 0.0], "payload": {"t": text}})).collect();
    json!({ "points": pts })
}

fn count(s: &Server) -> u64 {
    s.ok("POST", "/collections/d/points/count", Some(&json!({"exact": true})))["count"].as_u64().expect("count")
}

fn assert_no_space(status: u16, body: &Value) {
    let msg = body["status"]["error"].as_str().unwrap_or_default();
    assert_eq!(status, 500, "{body}");
    assert!(msg.starts_with("Service internal error: No space left on device"), "{msg}");
}

/// Retry a small write until it is accepted (a backend may take a few seconds to notice the
/// freed space); panics after `limit`.
fn write_until_accepted(s: &Server, first: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = s.call("PUT", "/collections/d/points?wait=true", Some(&points(first, 5, 10)));
        if status == 200 {
            return;
        }
        assert_no_space(status, &body);
        assert!(Instant::now() < deadline, "writes still refused after space was freed: {body}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn full_disk(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("storage");
    let Some(fs) = Tmpfs::mount(&storage, 256) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let snapshots = storage.join("snapshots");
    let snapshots = snapshots.to_str().expect("utf-8 path");
    let env = [("QDRANT__SERVICE__MAX_REQUEST_SIZE_MB", "256"), ("QDRANT__STORAGE__SNAPSHOTS_PATH", snapshots)];
    let mut s = Server::start_with(&storage, backend, &env);
    create_collection(&s, "d", json!({"vectors": {"size": 4, "distance": "Dot"}}));
    s.ok("PUT", "/collections/d/points?wait=true", Some(&points(0, 10, 10)));

    // Room for the reserve but not for a 120 MiB batch: SQLite itself hits ENOSPC; RocksDB's
    // store refuses the batch before it reaches the library (see `RocksStore::ensure_room_for`).
    fs.fill(34 << 20);
    let (status, body) = s.call("PUT", "/collections/d/points?wait=true", Some(&points(1000, 120, 1 << 20)));
    assert_no_space(status, &body);
    // Below the reserve: refused before any write, naming the free space.
    fs.fill(16 << 20);
    let (status, body) = s.call("PUT", "/collections/d/points?wait=true", Some(&points(2000, 5, 10)));
    assert_no_space(status, &body);
    // Reads keep working and nothing of the failed batches is visible.
    assert_eq!(count(&s), 10);
    let hits = s.ok("POST", "/collections/d/points/query", Some(&json!({"query": [1, 1, 1, 1], "limit": 3})));
    assert_eq!(hits["points"].as_array().map(Vec::len), Some(3));

    // Space freed: writes resume without a restart.
    fs.unfill();
    write_until_accepted(&s, 3000, Duration::from_secs(30));
    assert_eq!(count(&s), 15);

    // Killed while the disk is full, then started on the full disk: it serves reads (RocksDB
    // opened read-only) and refuses writes, then takes them once space is back, no restart.
    fs.fill(0);
    s.kill9();
    let mut again = Server::spawn(&storage, backend, &env, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !again.client.get(again.url("/readyz")).send().is_ok_and(|r| r.status().is_success()) {
        if let Some(status) = again.child.as_mut().and_then(|c| c.try_wait().expect("wait")) {
            panic!("a start on a full disk must serve reads, it exited: {status:?}\n{}", again.log_text());
        }
        assert!(Instant::now() < deadline, "not ready on a full disk:\n{}", again.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count(&again), 15);
    let hits = again.ok("POST", "/collections/d/points/query", Some(&json!({"query": [1, 1, 1, 1], "limit": 3})));
    assert_eq!(hits["points"].as_array().map(Vec::len), Some(3));
    let (status, body) = again.call("PUT", "/collections/d/points?wait=true", Some(&points(4000, 5, 10)));
    assert_no_space(status, &body);
    fs.unfill();
    write_until_accepted(&again, 5000, Duration::from_secs(30));
    assert_eq!(count(&again), 20, "every acknowledged write is there, nothing of the refused ones");
    drop(again);
    let restarted = Server::start_with(&storage, backend, &env);
    assert_eq!(count(&restarted), 20);

    // A snapshot larger than the free space beside the reserve is refused before it starts,
    // while writes (which need only the reserve) go on.
    for first in [6000, 6020] {
        restarted.ok("PUT", "/collections/d/points?wait=true", Some(&points(first, 20, 1 << 20)));
    }
    fs.fill(50 << 20);
    let (status, body) = restarted.call("POST", "/collections/d/snapshots?wait=true", None);
    let msg = body["status"]["error"].as_str().unwrap_or_default();
    assert_eq!(status, 500, "{body}");
    assert!(msg.starts_with("Service internal error: No space left on device: "), "{msg}");
    assert!(msg.contains(" bytes free under ") && msg.contains(", the snapshot needs about "), "{msg}");
    assert!(msg.ends_with("; free disk space and retry"), "{msg}");
    let listed = restarted.ok("GET", "/collections/d/snapshots", None);
    assert_eq!(listed, json!([]), "nothing is left of a refused snapshot");
    restarted.ok("PUT", "/collections/d/points?wait=true", Some(&points(7000, 5, 10)));
    assert_eq!(count(&restarted), 65);
}

#[test]
fn full_disk_sqlite() {
    full_disk(BACKENDS[0]);
}

#[test]
fn full_disk_rocksdb() {
    full_disk(BACKENDS[1]);
}
