//! Start-up behaviour: configuration errors, backend guard, restart persistence, a damaged
//! collection reported red while the others serve.

use std::process::Command;

use serde_json::json;

use crate::common::{bin, create_collection, free_port, Server, BACKENDS};

#[test]
fn unknown_backend_is_one_line_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("never");
    let out = Command::new(bin())
        .args(["--storage", "leveldb", "--storage-path"])
        .arg(&storage)
        .args(["--http-port", &free_port().to_string(), "--grpc-port", &free_port().to_string()])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("leveldb"), "{err}");
    assert!(!storage.exists(), "no directory left behind");
}

#[test]
fn unusable_storage_path_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("plainfile");
    std::fs::write(&file, b"x").expect("write");
    let out = Command::new(bin())
        .args(["--storage", "sqlite", "--storage-path"])
        .arg(file.join("sub"))
        .args(["--http-port", &free_port().to_string(), "--grpc-port", &free_port().to_string()])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plainfile"), "names the path: {err}");
}

#[test]
fn backend_mismatch_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    {
        let s = Server::start(&storage, "sqlite");
        create_collection(&s, "c", json!({"vectors": {"size": 2, "distance": "Dot"}}));
    }
    let out = Command::new(bin())
        .args(["--storage", "rocksdb", "--storage-path"])
        .arg(&storage)
        .args(["--http-port", &free_port().to_string(), "--grpc-port", &free_port().to_string()])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sqlite") && err.contains("snapshot"), "{err}");
}

#[test]
fn env_overrides_port_and_backend() {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let port = free_port();
    let mut child = Command::new(bin())
        .env("QDRANT__SERVICE__HTTP_PORT", port.to_string())
        .env("QDRANT__STORAGE__STORAGE_PATH", &storage)
        .env("QDRANT__STORAGE__BACKEND", "sqlite")
        .env("QDRANT__SERVICE__HOST", "127.0.0.1")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let client = reqwest::blocking::Client::new();
    let mut ok = false;
    for _ in 0..200 {
        if client.get(format!("http://127.0.0.1:{port}/readyz")).send().is_ok_and(|r| r.status().is_success()) {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "server answered on the env-configured port");
    let marker = std::fs::read_to_string(storage.join("storage.json")).expect("marker");
    assert!(marker.contains("sqlite"), "{marker}");
}

fn restart_and_broken_collection(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, backend);
    for name in ["good", "bad"] {
        create_collection(&s, name, json!({"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 2}));
        s.ok(
            "PUT",
            &format!("/collections/{name}/points?wait=true"),
            Some(&json!({"points": [{"id": 1, "vector": [1.0, 2.0]}, {"id": 2, "vector": [3.0, 4.0]}]})),
        );
    }
    drop(s);
    // Damage the first shard database of one (either) collection.
    let first = std::fs::read_dir(storage.join("collections")).expect("dirs").flatten().next().expect("a dir");
    let shard0 = first.path().join("shards/0");
    for f in std::fs::read_dir(&shard0).expect("shard").flatten() {
        let p = f.path();
        if p.is_dir() {
            for g in std::fs::read_dir(&p).expect("db dir").flatten() {
                std::fs::write(g.path(), b"garbage").expect("damage");
            }
        } else {
            std::fs::write(&p, b"garbage, not a database").expect("damage");
        }
    }
    let s = Server::start(&storage, backend);
    let good = s.call("GET", "/collections/good", None);
    let bad = s.call("GET", "/collections/bad", None);
    let (red, green) = if good.1["result"]["status"] == "red" { (good, bad) } else { (bad, good) };
    assert_eq!(red.1["result"]["status"], "red", "{}", red.1);
    assert!(red.1["result"]["warnings"][0]["message"].is_string());
    assert_eq!(green.1["result"]["status"], "green", "{}", green.1);
    assert_eq!(green.1["result"]["points_count"], 2, "the healthy collection serves after restart");
}

#[test]
fn restart_and_broken_sqlite() {
    restart_and_broken_collection(BACKENDS[0]);
}

#[test]
fn restart_and_broken_rocksdb() {
    restart_and_broken_collection(BACKENDS[1]);
}
