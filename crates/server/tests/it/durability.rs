//! kill -9 at several points of a write stream: every write acknowledged, with wait=true or
//! wait=false, must be there, identical, after a restart. Run for both backends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{create_collection, kill_cycles, Server, BACKENDS};

/// A point's (vector, payload).
type State = (Vec<f32>, Value);
type Acked = crate::common::Acked<State>;

fn vector(id: u64, round: u64) -> Vec<f32> {
    (0..8).map(|i| ((id * 31 + round * 7 + i) % 97) as f32 / 97.0).collect()
}

fn writer_waiting(port: u16, t: u64, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    write_stream(port, t, stop, acked, "true");
}

fn writer_not_waiting(port: u16, t: u64, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    write_stream(port, t, stop, acked, "false");
}

/// Upserts and deletes until stopped; every answer is recorded as acknowledged or not.
fn write_stream(port: u16, t: u64, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>, wait: &str) {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let base = format!("http://127.0.0.1:{port}/collections/d/points");
    let mut round = 0u64;
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        // 50 points per batch; ids overlap across rounds so later rounds overwrite earlier ones.
        let ids: Vec<u64> = (0..50).map(|i| t * 1_000_000 + (round * 50 + i) % 400).collect();
        let points: Vec<Value> = ids
            .iter()
            .map(|&id| json!({"id": id, "vector": vector(id, round), "payload": {"round": round, "writer": t, "tags": ["x", round]}}))
            .collect();
        let resp = client.put(format!("{base}?wait={wait}")).json(&json!({ "points": points })).send();
        let ok = matches!(&resp, Ok(r) if r.status().is_success());
        let state = |id| Some((vector(id, round), json!({"round": round, "writer": t, "tags": ["x", round]})));
        acked.lock().expect("lock").record(&ids, state, ok);
        if !ok {
            return; // server killed mid-request: not acknowledged
        }
        if round.is_multiple_of(3) {
            let del: Vec<u64> = ids.iter().copied().step_by(7).collect();
            let r = client.post(format!("{base}/delete?wait={wait}")).json(&json!({ "points": del })).send();
            let ok = matches!(&r, Ok(r) if r.status().is_success());
            acked.lock().expect("lock").record(&del, |_| None, ok);
            if !ok {
                return;
            }
        }
    }
}

/// Every point of `ids` the server has, with its vector and payload.
fn fetch(server: &Server, ids: &[u64]) -> BTreeMap<u64, State> {
    let got = server.ok(
        "POST",
        "/collections/d/points",
        Some(&json!({"ids": ids, "with_payload": true, "with_vector": true})),
    );
    got.as_array()
        .expect("list")
        .iter()
        .map(|r| {
            let v = r["vector"].as_array().expect("vec").iter().map(|x| x.as_f64().expect("f") as f32).collect();
            (r["id"].as_u64().expect("id"), (v, r["payload"].clone()))
        })
        .collect()
}

fn kill9_keeps_acknowledged_writes(backend: &str, writer: crate::common::CrashWriter<State>) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("storage");
    let server = Server::start(&storage, backend);
    create_collection(&server, "d", json!({"vectors": {"size": 8, "distance": "Euclid"}}));
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let server = kill_cycles(server, &storage, &[150, 400, 60, 900], &acked, writer, fetch);
    // The collection config survived too.
    let info = server.ok("GET", "/collections/d", None);
    assert_eq!(info["config"]["params"]["vectors"]["distance"], "Euclid");
}

#[test]
fn kill9_sqlite() {
    kill9_keeps_acknowledged_writes(BACKENDS[0], writer_waiting);
}

#[test]
fn kill9_rocksdb() {
    kill9_keeps_acknowledged_writes(BACKENDS[1], writer_waiting);
}

#[test]
fn kill9_no_wait_sqlite() {
    kill9_keeps_acknowledged_writes(BACKENDS[0], writer_not_waiting);
}

#[test]
fn kill9_no_wait_rocksdb() {
    kill9_keeps_acknowledged_writes(BACKENDS[1], writer_not_waiting);
}

/// Graceful SIGTERM: exit code 0 and data intact after restart.
fn sigterm_is_clean(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let mut server = Server::start(&storage, backend);
    create_collection(&server, "c", json!({"vectors": {"size": 2, "distance": "Dot"}}));
    // wait=false, then a graceful stop: the point is there after the restart.
    server.ok("PUT", "/collections/c/points", Some(&json!({"points": [{"id": 1, "vector": [1.0, 2.0]}]})));
    assert_eq!(server.terminate(), Some(0), "log:\n{}", server.log_text());
    let server = Server::start(&storage, backend);
    let r = server.ok("GET", "/collections/c/points/1", None);
    assert_eq!(r["vector"], json!([1.0, 2.0]));
}

#[test]
fn sigterm_sqlite() {
    sigterm_is_clean(BACKENDS[0]);
}

#[test]
fn sigterm_rocksdb() {
    sigterm_is_clean(BACKENDS[1]);
}
